/*
 * state.h - save and load a VM's whole non-RAM state as migration stream
 * sections: every vCPU (regs, sregs, XSAVE, XCRs, MSRs, LAPIC, events,
 * MP state, debug registers, CPUID), the in-kernel irqchip (PIC x2,
 * IOAPIC), the PIT, kvmclock, and the devices (UART, CMOS).
 *
 * Save runs with every vCPU parked (vm_pause). Load runs on a VM built
 * with vm_create() from the same configuration, before vm_start(): each
 * section is decoded and validated into a pending copy; vm_state_load_finish()
 * checks that everything arrived and applies it to KVM in the order that
 * works (Firecracker's, see MACHINE.md), so a bad stream changes nothing.
 *
 * docs/vm-state.md describes the sections, their fields, the load order and
 * the clock/TSC policy.
 */
#ifndef VMM_STATE_H
#define VMM_STATE_H

#include "stream.h"
#include "vm.h"

/* Section names (idstr) and the version every one of them is written as. */
#define VM_STATE_SEC_CPU	"cpu"		/* instance_id = vCPU index */
#define VM_STATE_SEC_KVM_VM	"kvm-vm"	/* irqchip, PIT, kvmclock */
#define VM_STATE_SEC_UART	"uart16550@0x3f8"
#define VM_STATE_SEC_CMOS	"cmos@0x70"
#define VM_STATE_VERSION	1

/*
 * Section ids vm_state_save() uses (unique per stream): BASE + 1..3 for
 * kvm-vm, uart, cmos; BASE + 0x100 + i for vCPU i. Other writers of the
 * same stream must stay below BASE.
 */
#define VM_STATE_SECTION_ID_BASE	0x10000000u

/*
 * Find out ahead what a save must ask KVM (which MSRs it reads, with one
 * ioctl per candidate), so that vm_state_save() inside the downtime reads
 * them with one ioctl per vCPU. vm_create() calls it while no vCPU runs (an
 * ioctl on a running vCPU waits for its next exit); a save does it itself
 * if it was not done. Loading checks incoming MSRs against the same list.
 */
int vm_state_prepare(struct vm *vm, struct err *err);

/* Write one SECTION_FULL record per device/vCPU to `s`. */
int vm_state_save(struct vm *vm, struct mig_stream *s, struct err *err);

struct vm_state_loader;		/* pending, decoded state (private) */

/* NULL if out of memory. */
struct vm_state_loader *vm_state_loader_new(struct vm *vm);
/* Decode and validate one section (from mig_load_ops.on_section). */
int vm_state_load_section(struct vm_state_loader *l,
			  const struct mig_section_info *info,
			  struct mig_stream *in, struct err *err);
/* Check completeness and apply everything to the VM. */
int vm_state_load_finish(struct vm_state_loader *l, struct err *err);
void vm_state_loader_free(struct vm_state_loader *l);

#endif
