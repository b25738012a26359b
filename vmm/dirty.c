/*
 * dirty.c - KVM dirty-page logging for guest RAM, bitmap flavour with
 * manual protection (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2).
 *
 * With KVM_DIRTY_LOG_INITIALLY_SET, enabling logging costs nothing up front:
 * pages are write-protected only when their bits are cleared, which the
 * engine does chunk by chunk right before sending them.
 *
 * A VM created with the dirty ring (dirty_ring.c, vm->dirty_ring set) uses
 * it instead, with the same contract: every call dispatches there.
 * docs/architecture.md ("Dirty tracking") compares the two.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "dirty_ring.h"
#include "log.h"
#include "migratable.h"

unsigned vm_ram_blocks(struct vm *vm, struct mig_ram_block *blocks, unsigned max)
{
	unsigned n = vm->mem.nr_regions < max ? vm->mem.nr_regions : max;

	for (unsigned i = 0; i < n; i++) {
		memset(&blocks[i], 0, sizeof(blocks[i]));
		blocks[i].id = i + 1;
		blocks[i].page_size = VM_PAGE_SIZE;
		blocks[i].size = vm->mem.regions[i].size;
		blocks[i].host = vm->mem.regions[i].hva;
		snprintf(blocks[i].idstr, sizeof(blocks[i].idstr), "ram%u", i);
	}
	return n;
}

static int set_slots_logging(struct vm *vm, bool on, struct err *err)
{
	for (unsigned i = 0; i < vm->mem.nr_regions; i++) {
		const struct gmem_region *r = &vm->mem.regions[i];
		int ret = kvm_set_memslot(&vm->kvm, i, r->gpa, r->size, r->hva,
					  on ? KVM_MEM_LOG_DIRTY_PAGES : 0, err);

		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Ring backend: drop stale entries, every page starts dirty (as with
 * INITIALLY_SET), then turning logging on write-protects all RAM.
 */
static int ring_log_start(struct vm *vm, struct err *err)
{
	struct dirty_ring_stats st;
	int ret = dirty_ring_restart(vm, true, err);

	if (!ret)
		ret = set_slots_logging(vm, true, err);
	dirty_ring_get_stats(vm, &st);
	if (!ret)
		log_info("dirty", "dirty logging on: KVM dirty ring, %u entries per vCPU%s",
			 st.entries, st.acq_rel ? " (acq/rel)" : "");
	return ret;
}

int vm_dirty_log_start(struct vm *vm, struct err *err)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 };
	int caps;

	if (vm->dirty_ring)	/* ring backend (dirty_ring.c) */
		return ring_log_start(vm, err);
	caps = kvm_vm_check_cap(&vm->kvm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	if (caps <= 0)
		return err_set(err, -ENOTSUP,
			       "KVM lacks KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (needs Linux 5.8+)");
	if (!vm->dirty_manual_enabled) {
		cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
			      (caps & KVM_DIRTY_LOG_INITIALLY_SET);
		if (ioctl(vm->kvm.vm_fd, KVM_ENABLE_CAP, &cap) < 0)
			return kvm_ioctl_err(err, "KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2)");
		vm->dirty_manual_enabled = true;
		vm->dirty_initially_set = caps & KVM_DIRTY_LOG_INITIALLY_SET;
	}
	return set_slots_logging(vm, true, err);
}

int vm_dirty_log_get(struct vm *vm, unsigned block, uint64_t *bitmap,
		     struct err *err)
{
	struct kvm_dirty_log log = { .slot = block, .dirty_bitmap = bitmap };

	if (block >= vm->mem.nr_regions)
		return err_set(err, -EINVAL, "no RAM block %u", block);
	if (vm->dirty_ring)	/* ring backend: harvest, copy */
		return dirty_ring_get(vm, block, bitmap, err);
	if (ioctl(vm->kvm.vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
		return kvm_ioctl_err(err, "KVM_GET_DIRTY_LOG");
	return 0;
}

int vm_dirty_log_clear(struct vm *vm, unsigned block, uint64_t first_page,
		       uint64_t npages, uint64_t *bitmap, struct err *err)
{
	struct kvm_clear_dirty_log c = {
		.slot = block, .first_page = first_page,
		.num_pages = (uint32_t)npages, .dirty_bitmap = bitmap,
	};

	if (!npages)
		return 0;
	if (vm->dirty_ring)	/* ring backend: harvest, drop the bits */
		return dirty_ring_clear(vm, block, first_page, npages, bitmap, err);
	if (ioctl(vm->kvm.vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0)
		return kvm_ioctl_err(err, "KVM_CLEAR_DIRTY_LOG");
	return 0;
}

void vm_dirty_log_stop(struct vm *vm)
{
	struct err err = { 0 };

	if (set_slots_logging(vm, false, &err))
		log_warn("dirty", "stopping dirty logging: %s", err.msg);
	/* ring backend: empty the rings so no stale entry outlives logging */
	if (vm->dirty_ring && dirty_ring_restart(vm, false, &err))
		log_warn("dirty", "emptying the dirty rings: %s", err.msg);
}
