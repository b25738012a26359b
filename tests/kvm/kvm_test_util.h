/*
 * kvm_test_util.h - helpers for the KVM state tests (tests/kvm/): a tiny
 * 64-bit guest written into guest RAM by the test itself, a KVM_RUN loop
 * driven from the test thread, and stream helpers that save a VM's state,
 * split a saved stream into its sections, and load sections into a VM.
 *
 * The guest (at KT_CODE_ADDR, long mode, identity-mapped first GiB):
 *     loop: inc %rbx; incq (%rdi); out %al, $KT_SYNC_PORT; jmp loop
 * so after its k-th sync exit a vCPU has rbx = rbx0 + k and *rdi = k.
 */
#ifndef KVM_TEST_UTIL_H
#define KVM_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "state.h"
#include "vm.h"

#define KT_MEM_SIZE	(64ULL << 20)
#define KT_CODE_ADDR	0x100000ULL
#define KT_DATA_ADDR	0x200000ULL	/* vCPU i's counter at + 64 * i */
#define KT_SYNC_PORT	0xe0
#define KT_COPY_BYTES	(4ULL << 20)	/* RAM the guest uses: all we copy */

/* NULL if /dev/kvm can be used, else why not (for a loud skip). */
const char *kt_kvm_unavailable(void);

/* vm_create() with KT_MEM_SIZE and n vCPUs, guest code and tables written. */
int kt_vm_new(struct vm *vm, unsigned nr_vcpus);
/* Long-mode entry for vCPU i (RUNNABLE), counter at KT_DATA_ADDR + 64 i. */
int kt_vcpu_enter(struct vm *vm, unsigned i, uint64_t rbx0);
uint64_t *kt_counter(struct vm *vm, unsigned i);

/* Run vCPU i until it made n sync exits. 0 or a negative errno. */
int kt_run_syncs(struct vm *vm, unsigned i, unsigned n);
/* Finish the pending exit and leave KVM_RUN with EINTR (as vm_pause). */
int kt_park(struct vm *vm, unsigned i);
/* Copy the guest's part of RAM from src to dst. */
void kt_copy_ram(struct vm *dst, const struct vm *src);

int kt_get_regs(struct vm *vm, unsigned i, struct kvm_regs *r);
int kt_set_regs(struct vm *vm, unsigned i, struct kvm_regs *r);
int kt_get_msr(struct vm *vm, unsigned i, uint32_t index, uint64_t *v);
int kt_set_msr(struct vm *vm, unsigned i, uint32_t index, uint64_t v);

/* Header + vm_state_save() + EOF into a new memory writer. */
int kt_save(struct vm *vm, struct mig_stream *out, struct err *err);
/* mig_load() the stream into a new loader for vm, then finish. */
int kt_load(struct vm *vm, const void *data, size_t len, struct err *err);

/* One SECTION_FULL of a saved stream, payload copied. */
struct kt_section {
	struct mig_section_info info;
	uint8_t *data;
	size_t len;
};

struct kt_sections {
	struct kt_section s[64];
	size_t n;
};

int kt_split(const void *data, size_t len, struct kt_sections *out,
	     struct err *err);
void kt_sections_free(struct kt_sections *ss);
/* The first section called idstr with that instance, or NULL. */
struct kt_section *kt_find(struct kt_sections *ss, const char *idstr,
			   uint32_t instance);
/*
 * Feed sections [0, n) to a fresh loader, skipping index `skip` (-1: none),
 * then finish. Returns the first error.
 */
int kt_load_sections(struct vm *vm, struct kt_section *s, size_t n, int skip,
		     struct err *err);
/* Find field `id` in a field-table payload: value offset and length. */
bool kt_tlv_find(const uint8_t *p, size_t len, uint16_t id, size_t *off,
		 uint32_t *flen);

#endif
