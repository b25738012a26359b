/*
 * dirty_ring.c - dirty-page logging with the KVM dirty ring
 * (KVM_CAP_DIRTY_LOG_RING, with _ACQ_REL where KVM offers it).
 *
 * KVM gives every vCPU a ring of struct kvm_dirty_gfn (slot, page offset,
 * flags), mapped at KVM_DIRTY_LOG_PAGE_OFFSET of the vCPU fd. A write to a
 * write-protected page of a logged slot pushes one entry (flags = DIRTY)
 * and leaves the page writable. We harvest: walk the ring from our fetch
 * index while entries carry DIRTY, set the page's bit in the block's
 * accumulator, store RESET (release). KVM_RESET_DIRTY_RINGS then
 * write-protects the pages of all RESET entries and frees the slots, so
 * the next write to such a page pushes a new entry. A vCPU whose ring is
 * nearly full leaves KVM_RUN with KVM_EXIT_DIRTY_RING_FULL and may not
 * re-enter until its ring was harvested and reset; its own thread does
 * that (dirty_ring_vcpu_full).
 *
 * One lock serialises every harvest (engine and vCPU threads): it guards
 * the fetch indexes, the accumulators and the reset.
 */
#include "dirty_ring.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "vm.h"

/*
 * Default when TERN_DIRTY_LOG is unset: the bitmap. Measured on kvm_pvm
 * (docs/architecture.md, "Dirty tracking"): the guest keeps about twice
 * its write rate during a migration with the bitmap, and kvm_pvm can
 * overflow a ring while it emulates guest ring-0 code.
 */
#define DIRTY_DEFAULT_RING	false

struct dirty_ring_vcpu {
	struct kvm_dirty_gfn *gfns;	/* mapped ring, NULL until mapped */
	uint32_t fetch;			/* next entry to look at */
};

struct dirty_ring {
	uint32_t entries;		/* per vCPU, power of two */
	size_t bytes;
	bool acq_rel;
	unsigned nr_vcpus;
	struct dirty_ring_vcpu *rings;
	unsigned nr_blocks;
	uint64_t npages[GMEM_MAX_REGIONS];
	uint64_t *acc[GMEM_MAX_REGIONS];	/* harvested, not yet handed out */
	pthread_mutex_t lock;
	bool overflowed;		/* a ring wrapped: pages were lost */
	struct dirty_ring_stats st;
};

/* ---- choosing and enabling ---- */

/* 1 = ring, 0 = bitmap, from TERN_DIRTY_LOG (or the default). */
static int backend_wanted(bool *forced, struct err *err)
{
	const char *s = getenv("TERN_DIRTY_LOG");

	*forced = s && *s;
	if (!*forced)
		return DIRTY_DEFAULT_RING;
	if (!strcmp(s, "ring"))
		return 1;
	if (!strcmp(s, "bitmap"))
		return 0;
	return err_set(err, -EINVAL, "TERN_DIRTY_LOG=%.32s: expected ring or bitmap", s);
}

static int ring_bytes_wanted(int max, size_t *bytes, struct err *err)
{
	const char *s = getenv("TERN_DIRTY_RING_SIZE");
	uint64_t v = DIRTY_RING_DEFAULT_BYTES;

	if (s && *s && parse_size(s, &v))
		return err_set(err, -EINVAL, "TERN_DIRTY_RING_SIZE=%.32s: not a size", s);
	if (v < 4096 || (v & (v - 1)))
		return err_set(err, -EINVAL,
			       "dirty ring size %llu: must be a power of two >= 4096",
			       (unsigned long long)v);
	if (v > (uint64_t)max) {
		if (s && *s)
			return err_set(err, -EINVAL, "dirty ring size %llu: KVM allows at most %d",
				       (unsigned long long)v, max);
		v = max;	/* our default only: take what KVM has */
	}
	*bytes = v;
	return 0;
}

static int ring_alloc_acc(struct dirty_ring *dr, struct vm *vm, struct err *err)
{
	dr->nr_blocks = vm->mem.nr_regions;
	for (unsigned b = 0; b < dr->nr_blocks; b++) {
		dr->npages[b] = vm->mem.regions[b].size / 4096;
		dr->acc[b] = calloc((dr->npages[b] + 63) / 64, 8);
		if (!dr->acc[b])
			return err_set(err, -ENOMEM, "out of memory for dirty bitmaps");
	}
	return 0;
}

/* The ring capability KVM offers (ACQ_REL preferred) and its maximum size. */
static long ring_cap(struct vm *vm, int *max)
{
	*max = kvm_vm_check_cap(&vm->kvm, KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
	if (*max > 0)
		return KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
	*max = kvm_vm_check_cap(&vm->kvm, KVM_CAP_DIRTY_LOG_RING);
	return *max > 0 ? KVM_CAP_DIRTY_LOG_RING : 0;
}

int dirty_ring_enable(struct vm *vm, struct err *err)
{
	struct kvm_enable_cap cap = { 0 };
	struct dirty_ring *dr;
	bool forced;
	int want = backend_wanted(&forced, err), max, ret;

	if (want <= 0)
		return want;
	cap.cap = ring_cap(vm, &max);
	if (!cap.cap) {
		if (forced)
			return err_set(err, -ENOTSUP,
				       "TERN_DIRTY_LOG=ring but KVM lacks KVM_CAP_DIRTY_LOG_RING");
		return 0;	/* default only: fall back to the bitmap */
	}
	dr = calloc(1, sizeof(*dr));
	if (!dr)
		return err_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&dr->lock, NULL);
	dr->acq_rel = cap.cap == KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
	vm->dirty_ring = dr;	/* dirty_ring_free() cleans up from here */
	ret = ring_bytes_wanted(max, &dr->bytes, err);
	if (!ret)
		ret = ring_alloc_acc(dr, vm, err);
	if (ret)
		return ret;
	dr->entries = dr->bytes / sizeof(struct kvm_dirty_gfn);
	cap.args[0] = dr->bytes;
	if (ioctl(vm->kvm.vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return kvm_ioctl_err(err, dr->acq_rel ? "KVM_ENABLE_CAP(DIRTY_LOG_RING_ACQ_REL)" :
						       "KVM_ENABLE_CAP(DIRTY_LOG_RING)");
	dr->st.entries = dr->entries;
	dr->st.acq_rel = dr->acq_rel;
	return 0;
}

int dirty_ring_map(struct vm *vm, struct err *err)
{
	struct dirty_ring *dr = vm->dirty_ring;
	long page = sysconf(_SC_PAGESIZE);

	if (!dr)
		return 0;
	dr->rings = calloc(vm->nr_vcpus, sizeof(*dr->rings));
	if (!dr->rings)
		return err_set(err, -ENOMEM, "out of memory");
	dr->nr_vcpus = vm->nr_vcpus;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		void *p = mmap(NULL, dr->bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
			       vm->vcpus[i].kfd.fd, (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * page);

		if (p == MAP_FAILED)
			return err_set(err, -errno, "mmap of vCPU %u dirty ring failed: %s",
				       i, strerror(errno));
		dr->rings[i].gfns = p;
	}
	return 0;
}

void dirty_ring_free(struct vm *vm)
{
	struct dirty_ring *dr = vm->dirty_ring;

	if (!dr)
		return;
	if (dr->st.harvested || dr->st.full_exits)
		log_info("dirty", "dirty ring: %llu entries harvested, %llu ring-full exits, %llu resets",
			 (unsigned long long)dr->st.harvested,
			 (unsigned long long)dr->st.full_exits,
			 (unsigned long long)dr->st.resets);
	for (unsigned i = 0; i < dr->nr_vcpus; i++) {
		if (dr->rings[i].gfns)
			munmap(dr->rings[i].gfns, dr->bytes);
	}
	free(dr->rings);
	for (unsigned b = 0; b < dr->nr_blocks; b++)
		free(dr->acc[b]);
	pthread_mutex_destroy(&dr->lock);
	free(dr);
	vm->dirty_ring = NULL;
}

/* ---- harvesting ---- */

/* Record one entry: slot = address space << 16 | memslot (= block). */
static void acc_set(struct dirty_ring *dr, uint32_t slot, uint64_t offset)
{
	if (slot >= dr->nr_blocks || offset >= dr->npages[slot]) {
		if (!dr->st.bogus++)
			log_warn("dirty", "dirty ring entry outside guest RAM: slot %u page %llu",
				 slot, (unsigned long long)offset);
		return;
	}
	dr->acc[slot][offset / 64] |= 1ULL << (offset % 64);
}

/* Collect the published entries of one ring. Caller holds dr->lock. */
static uint32_t ring_collect(struct dirty_ring *dr, struct dirty_ring_vcpu *r)
{
	uint32_t n = 0;

	if (!r->gfns)
		return 0;
	while (n < dr->entries) {
		struct kvm_dirty_gfn *e = &r->gfns[r->fetch & (dr->entries - 1)];

		/* acquire: slot and offset are valid once DIRTY is seen */
		if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY))
			break;
		acc_set(dr, e->slot, e->offset);
		/* release: we are done reading the entry; KVM may reuse it */
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		r->fetch++;
		n++;
	}
	dr->st.harvested += n;
	/*
	 * A whole ring of entries: KVM pushed past the soft limit without
	 * stopping the vCPU and overwrote entries we had not read. Seen on
	 * kvm_pvm while it emulates guest ring-0 code (docs/architecture.md).
	 */
	if (n == dr->entries && !dr->overflowed) {
		dr->overflowed = true;
		log_err("dirty", "a dirty ring overflowed: dirty pages were lost "
			"(use TERN_DIRTY_LOG=bitmap on this host)");
	}
	return n;
}

/* Re-protect every collected page. Caller holds dr->lock. */
static int ring_reset(struct vm *vm, struct err *err)
{
	sigset_t all, old;
	int ret = 0;

	vm->dirty_ring->st.resets++;
	/*
	 * No signal may be pending during the reset. KVM bails out of a reset
	 * when one is (a kick, for a vCPU thread), and on this host's kernel
	 * the entries it had gathered but not yet re-protected stay writable
	 * although they count as reset: their next writes went unlogged
	 * (tests/kvm/test_dirty.c, test_ring_full_signals). Blocked signals
	 * are not pending to KVM; they arrive once we unblock.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (ioctl(vm->kvm.vm_fd, KVM_RESET_DIRTY_RINGS) < 0)
		ret = kvm_ioctl_err(err, "KVM_RESET_DIRTY_RINGS");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

/* Harvest all rings and reset. Caller holds dr->lock. */
static int harvest_all(struct vm *vm, struct err *err)
{
	struct dirty_ring *dr = vm->dirty_ring;
	uint64_t n = 0;

	int ret;

	for (unsigned i = 0; i < dr->nr_vcpus; i++)
		n += ring_collect(dr, &dr->rings[i]);
	ret = n ? ring_reset(vm, err) : 0;
	if (!ret && dr->overflowed)
		ret = err_set(err, -EIO, "a dirty ring overflowed: dirty pages were lost");
	return ret;
}

int dirty_ring_get(struct vm *vm, unsigned block, uint64_t *bitmap,
		   struct err *err)
{
	struct dirty_ring *dr = vm->dirty_ring;
	uint64_t t0 = time_now_ns(), n0;
	int ret;

	if (block >= dr->nr_blocks)
		return err_set(err, -EINVAL, "no RAM block %u", block);
	pthread_mutex_lock(&dr->lock);
	n0 = dr->st.harvested;
	ret = harvest_all(vm, err);
	if (!ret)
		memcpy(bitmap, dr->acc[block], (dr->npages[block] + 63) / 64 * 8);
	n0 = dr->st.harvested - n0;
	pthread_mutex_unlock(&dr->lock);
	log_debug("dirty", "block %u: harvested %llu entries in %.3f ms", block,
		  (unsigned long long)n0, (time_now_ns() - t0) / 1e6);
	return ret;
}

int dirty_ring_clear(struct vm *vm, unsigned block, uint64_t first_page,
		     uint64_t npages, const uint64_t *bitmap, struct err *err)
{
	struct dirty_ring *dr = vm->dirty_ring;
	uint64_t *acc;
	int ret;

	if (block >= dr->nr_blocks || first_page % 64 ||
	    first_page > dr->npages[block] || npages > dr->npages[block] - first_page)
		return err_set(err, -EINVAL, "dirty log clear: pages %llu+%llu outside block %u",
			       (unsigned long long)first_page, (unsigned long long)npages, block);
	acc = dr->acc[block] + first_page / 64;
	pthread_mutex_lock(&dr->lock);
	/* harvest first, so what was written until now is read next, once */
	ret = harvest_all(vm, err);
	for (uint64_t w = 0; w < npages / 64; w++)
		acc[w] &= ~bitmap[w];
	if (npages % 64)
		acc[npages / 64] &= ~(bitmap[npages / 64] & ((1ULL << (npages % 64)) - 1));
	pthread_mutex_unlock(&dr->lock);
	return ret;
}

int dirty_ring_restart(struct vm *vm, bool all_dirty, struct err *err)
{
	struct dirty_ring *dr = vm->dirty_ring;
	int ret;

	pthread_mutex_lock(&dr->lock);
	ret = harvest_all(vm, err);
	for (unsigned b = 0; b < dr->nr_blocks; b++) {
		uint64_t words = (dr->npages[b] + 63) / 64;

		memset(dr->acc[b], all_dirty ? 0xff : 0, words * 8);
		/* bits past the end of the block are not pages */
		if (all_dirty && dr->npages[b] % 64)
			dr->acc[b][words - 1] = (1ULL << (dr->npages[b] % 64)) - 1;
	}
	pthread_mutex_unlock(&dr->lock);
	return ret;
}

int dirty_ring_vcpu_full(struct vm *vm, unsigned id, struct err *err)
{
	struct dirty_ring *dr = vm->dirty_ring;
	int ret;

	if (!dr || id >= dr->nr_vcpus)
		return err_set(err, -EINVAL, "dirty ring full, but vCPU %u has no ring", id);
	pthread_mutex_lock(&dr->lock);
	dr->st.full_exits++;
	ring_collect(dr, &dr->rings[id]);
	/* reset even if the engine took the entries first: then it is a no-op */
	ret = ring_reset(vm, err);
	pthread_mutex_unlock(&dr->lock);
	return ret;
}

void dirty_ring_get_stats(struct vm *vm, struct dirty_ring_stats *st)
{
	struct dirty_ring *dr = vm->dirty_ring;

	memset(st, 0, sizeof(*st));
	if (!dr)
		return;
	pthread_mutex_lock(&dr->lock);
	*st = dr->st;
	pthread_mutex_unlock(&dr->lock);
}
