/*
 * mem.h - guest physical memory as the host sees it.
 *
 * Guest RAM is one anonymous host mapping split into at most two regions:
 * [0, min(size, MMIO_HOLE_START)) and, for larger guests, the rest from
 * 4 GiB up. Everything that writes into guest memory by guest-physical
 * address goes through gmem_ptr(), which bounds-checks the whole range.
 */
#ifndef VMM_MEM_H
#define VMM_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GMEM_MAX_REGIONS 2

struct gmem_region {
	uint64_t gpa;		/* guest-physical start */
	uint64_t size;		/* bytes */
	uint8_t *hva;		/* host address of gpa */
};

struct guest_mem {
	uint64_t size;		/* total RAM bytes */
	uint8_t *base;		/* host mapping of all RAM (regions are slices) */
	unsigned nr_regions;
	struct gmem_region regions[GMEM_MAX_REGIONS];
};

/*
 * Split `size` bytes of RAM at host address `base` into regions around the
 * MMIO hole. Pure: allocates nothing (tests use a malloc'd buffer).
 */
void gmem_layout(struct guest_mem *mem, uint8_t *base, uint64_t size);

/* Host pointer for [gpa, gpa+len) if it lies wholly inside one region. */
void *gmem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Highest guest-physical address +1 of RAM. */
uint64_t gmem_end(const struct guest_mem *mem);

#endif
