/*
 * ram.h - the host mapping behind guest RAM, and --mem-prealloc.
 *
 * A tern-vmm started with --incoming and --memory maps (and preallocates)
 * RAM before the source connects; vm_create() then adopts that mapping
 * (struct vm_config.ram) if the stream's memory size matches.
 */
#ifndef VMM_RAM_H
#define VMM_RAM_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct guest_ram {
	uint8_t *host;		/* NULL: none mapped (or adopted by a VM) */
	uint64_t size;
	bool prealloc;		/* every page populated */
	uint64_t prealloc_ns;	/* time the preallocation took */
};

/* Map `size` bytes of guest RAM; with `prealloc` populate every page. */
int ram_map(struct guest_ram *r, uint64_t size, bool prealloc, struct err *err);
void ram_unmap(struct guest_ram *r);

#endif
