/*
 * dirty_ring.h - the KVM dirty ring, the second dirty-tracking backend
 * behind vmm/migratable.h (private to vmm/; the engine never sees it).
 *
 * The backend is chosen when the VM is created, because KVM accepts the
 * ring only before the first vCPU exists and then refuses the bitmap
 * ioctls for the VM's whole life. TERN_DIRTY_LOG=ring|bitmap overrides the
 * default; TERN_DIRTY_RING_SIZE=BYTES (power of two, >= 4K) the ring size
 * per vCPU. docs/architecture.md ("Dirty tracking") has the measurements
 * behind the defaults.
 */
#ifndef VMM_DIRTY_RING_H
#define VMM_DIRTY_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct vm;

/* Default ring size per vCPU in bytes (16-byte entries). */
#define DIRTY_RING_DEFAULT_BYTES	(64u << 10)

struct dirty_ring_stats {
	uint32_t entries;		/* per vCPU */
	bool acq_rel;			/* KVM_CAP_DIRTY_LOG_RING_ACQ_REL */
	uint64_t harvested;		/* entries collected */
	uint64_t full_exits;		/* KVM_EXIT_DIRTY_RING_FULL handled */
	uint64_t resets;		/* KVM_RESET_DIRTY_RINGS calls */
	uint64_t bogus;			/* entries outside every RAM block */
};

/*
 * In vm_create, after guest RAM and before any vCPU: pick the backend and,
 * for the ring, enable it (vm->dirty_ring set). Bitmap: vm->dirty_ring
 * stays NULL.
 */
int dirty_ring_enable(struct vm *vm, struct err *err);
/* In vm_create, after the vCPUs: map each vCPU's ring. */
int dirty_ring_map(struct vm *vm, struct err *err);
/* Unmap and free (before the vCPU fds close). Safe on a partial set-up. */
void dirty_ring_free(struct vm *vm);

/*
 * The same contract as the manual-protect bitmap (migratable.h), so the
 * engine cannot tell the backends apart. Each RAM block has an accumulated
 * bitmap, the counterpart of KVM's: a harvest (every get and clear, and a
 * vCPU whose ring filled up) moves ring entries into it and resets them,
 * which write-protects those pages again.
 *
 * get: harvest, then copy block's accumulated bits ((npages + 63) / 64
 * words) into bitmap; they stay set until cleared.
 * clear: harvest, then drop the given bits of [first_page, +npages)
 * (first_page a multiple of 64). Safe because every accumulated page was
 * reset when it was harvested: the caller's read after clear sees every
 * write made before, and a later write faults and is logged again.
 * restart: harvest and reset, then set every page dirty (all_dirty, as
 * KVM_DIRTY_LOG_INITIALLY_SET: used when logging starts) or none (stop).
 */
int dirty_ring_get(struct vm *vm, unsigned block, uint64_t *bitmap,
		   struct err *err);
int dirty_ring_clear(struct vm *vm, unsigned block, uint64_t first_page,
		     uint64_t npages, const uint64_t *bitmap, struct err *err);
int dirty_ring_restart(struct vm *vm, bool all_dirty, struct err *err);
/*
 * KVM_EXIT_DIRTY_RING_FULL on vCPU `id`, from its own thread: harvest that
 * ring and reset, so the vCPU may enter the guest again.
 */
int dirty_ring_vcpu_full(struct vm *vm, unsigned id, struct err *err);

void dirty_ring_get_stats(struct vm *vm, struct dirty_ring_stats *st);

#endif
