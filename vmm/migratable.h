/*
 * migratable.h - the narrow interface the migration engine (mig/) uses to
 * reach a VM: its RAM blocks, KVM dirty-page logging, run control, the
 * configuration that travels in the stream, and device state (state.h).
 *
 * The engine never touches KVM or device internals directly.
 */
#ifndef VMM_MIGRATABLE_H
#define VMM_MIGRATABLE_H

#include <stdint.h>

#include "err.h"
#include "state.h"
#include "stream.h"
#include "vm.h"

#define VM_PAGE_SIZE 4096u

/*
 * Describe guest RAM as stream blocks: id i+1, idstr "ram<i>", size, host
 * pointer. Returns the number of blocks (<= max).
 */
unsigned vm_ram_blocks(struct vm *vm, struct mig_ram_block *blocks, unsigned max);

/*
 * Dirty logging over all RAM, with manual protection: every page starts
 * dirty (KVM_DIRTY_LOG_INITIALLY_SET), vm_dirty_log_get() reads a block's
 * bitmap (bit i = page i, 64-bit words, little-endian), and
 * vm_dirty_log_clear() re-protects a range of pages just before they are
 * sent, so a write after the clear is caught by the next get. A get does
 * not consume: bits stay set until cleared.
 *
 * Two backends keep this contract, chosen when the VM is created
 * (TERN_DIRTY_LOG=ring|bitmap, dirty_ring.h): the KVM dirty bitmap, and
 * the KVM dirty ring, where get and clear first harvest the rings into an
 * accumulated bitmap and re-protect the harvested pages at once.
 */
int vm_dirty_log_start(struct vm *vm, struct err *err);
int vm_dirty_log_get(struct vm *vm, unsigned block, uint64_t *bitmap,
		     struct err *err);
/* first_page and npages multiples of 64 (or npages reaching the end). */
int vm_dirty_log_clear(struct vm *vm, unsigned block, uint64_t first_page,
		       uint64_t npages, uint64_t *bitmap, struct err *err);
void vm_dirty_log_stop(struct vm *vm);

/* The configuration the destination needs to build the same VM (JSON). */
char *vm_config_to_json(struct vm *vm);
/*
 * Parse and validate a configuration from a (hostile) stream into cfg;
 * strings are copied into `strings` (kept alive by the caller).
 */
struct vm_config_strings {
	char kernel[4096];
	char initrd[4096];
	char cmdline[4096];
	char cpu_model[64];
};
int vm_config_from_json(const char *json, size_t len, struct vm_config *cfg,
			struct vm_config_strings *strings, struct err *err);

#endif
