/*
 * kvm.h - thin typed wrappers over /dev/kvm: the system, VM and vCPU file
 * descriptors, capabilities, memory slots and CPUID.
 *
 * Every failing ioctl is reported through `struct err` with the ioctl's
 * name and errno, so a user sees "KVM_CREATE_IRQCHIP failed: ..." rather
 * than a bare errno.
 */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "err.h"

struct cpu_model;

struct kvm {
	int sys_fd;		/* /dev/kvm */
	int vm_fd;
	int run_size;		/* mmap size of struct kvm_run */
	int max_vcpus;
	bool is_pvm;		/* the kvm_pvm module (software nested virt) */
	struct kvm_cpuid2 *cpuid;	/* KVM_GET_SUPPORTED_CPUID */
	const struct cpu_model *cpu_model;	/* NULL: host-model, else masked */
};

/* Open /dev/kvm (or `dev`), check the API version and required caps. */
int kvm_open(struct kvm *kvm, const char *dev, struct err *err);
void kvm_close(struct kvm *kvm);

int kvm_check_cap(struct kvm *kvm, long cap);	/* sys fd; <=0 = absent */
int kvm_vm_check_cap(struct kvm *kvm, long cap);

/* Create the VM with in-kernel irqchip and PIT. */
int kvm_create_vm(struct kvm *kvm, struct err *err);

/* Register guest RAM at `gpa`. flags: KVM_MEM_LOG_DIRTY_PAGES etc. */
int kvm_set_memslot(struct kvm *kvm, uint32_t slot, uint64_t gpa,
		    uint64_t size, void *hva, uint32_t flags, struct err *err);

/* Raise/lower an irqchip input line (GSI). */
int kvm_irq_line(struct kvm *kvm, uint32_t gsi, int level);

struct kvm_vcpu_fd {
	int fd;
	struct kvm_run *run;
};

int kvm_create_vcpu(struct kvm *kvm, unsigned id, struct kvm_vcpu_fd *v,
		    struct err *err);
void kvm_destroy_vcpu(struct kvm *kvm, struct kvm_vcpu_fd *v);

/* CPUID for vCPU `id` of `nr_vcpus`, derived from what KVM supports. */
int kvm_vcpu_set_cpuid(struct kvm *kvm, struct kvm_vcpu_fd *v, unsigned id,
		       unsigned nr_vcpus, struct err *err);

/* Name of an ioctl-failure for messages: "KVM_RUN failed: Invalid argument" */
int kvm_ioctl_err(struct err *err, const char *name);

#endif
