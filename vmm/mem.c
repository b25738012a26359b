/* mem.c - guest RAM regions around the 32-bit MMIO hole. */
#include "mem.h"
#include "layout.h"

void gmem_layout(struct guest_mem *mem, uint8_t *base, uint64_t size)
{
	uint64_t low = size < MMIO_HOLE_START ? size : MMIO_HOLE_START;

	mem->size = size;
	mem->base = base;
	mem->nr_regions = 1;
	mem->regions[0] = (struct gmem_region){ .gpa = 0, .size = low, .hva = base };
	if (size > low) {
		mem->regions[1] = (struct gmem_region){
			.gpa = MMIO_HOLE_END, .size = size - low, .hva = base + low,
		};
		mem->nr_regions = 2;
	}
}

void *gmem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct gmem_region *r = &mem->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa <= r->size &&
		    len <= r->size - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

uint64_t gmem_end(const struct guest_mem *mem)
{
	const struct gmem_region *r = &mem->regions[mem->nr_regions - 1];

	return r->gpa + r->size;
}
