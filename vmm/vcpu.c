/*
 * vcpu.c - one thread per vCPU: register set-up for the 64-bit boot entry,
 * the KVM_RUN loop with its exit handling, and the park/kick protocol used
 * by pause, stop and (later) migration.
 *
 * Kick protocol: under vm->lock the controller changes vm->state, sets
 * run->immediate_exit = 1 and sends vcpu_kick_signal() to the thread. KVM_RUN
 * then returns EINTR whether the vCPU was inside the guest or about to enter
 * it; the thread takes the lock, sees the new state, and parks (or exits).
 * It clears immediate_exit only under the lock while the state is RUNNING,
 * so a kick is never lost.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "boot/boot.h"
#include "dirty_ring.h"
#include "log.h"
#include "util.h"
#include "vm.h"

#define MSR_IA32_SYSENTER_CS	0x174
#define MSR_IA32_SYSENTER_ESP	0x175
#define MSR_IA32_SYSENTER_EIP	0x176
#define MSR_IA32_MISC_ENABLE	0x1a0
#define MSR_MTRR_DEF_TYPE	0x2ff
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_KERNEL_GS_BASE	0xc0000102

#define APIC_LVT_LINT0		0x350
#define APIC_LVT_LINT1		0x360
#define APIC_MODE_EXTINT	0x7
#define APIC_MODE_NMI		0x4

#define X86_CR0_PE		(1ULL << 0)
#define X86_CR0_ET		(1ULL << 4)
#define X86_CR0_NE		(1ULL << 5)
#define X86_CR0_PG		(1ULL << 31)
#define X86_CR4_PAE		(1ULL << 5)
#define EFER_LME		(1ULL << 8)
#define EFER_LMA		(1ULL << 10)

int vcpu_kick_signal(void)
{
	return SIGRTMIN;
}

#define APIC_LVT_MASKED		(1u << 16)

static void lapic_set_lvt(struct kvm_lapic_state *l, unsigned reg, unsigned mode,
			  bool masked)
{
	uint32_t v;

	memcpy(&v, &l->regs[reg], 4);
	v = (v & ~(0x700u | APIC_LVT_MASKED)) | (mode << 8) |
	    (masked ? APIC_LVT_MASKED : 0);
	memcpy(&l->regs[reg], &v, 4);
}

/*
 * LINT0 = ExtINT (the 8259 output) but masked, LINT1 = NMI. Our ACPI tables
 * are hardware-reduced, so Linux never programs the 8259; an unmasked
 * ExtINT would let its unprogrammed vectors (base 0) reach the CPU, and
 * Linux keeps LINT0 as it finds it when masked (setup_local_APIC).
 */
static int vcpu_setup_lapic(struct vcpu *v, struct err *err)
{
	struct kvm_lapic_state l;

	if (ioctl(v->kfd.fd, KVM_GET_LAPIC, &l) < 0)
		return kvm_ioctl_err(err, "KVM_GET_LAPIC");
	lapic_set_lvt(&l, APIC_LVT_LINT0, APIC_MODE_EXTINT, true);
	lapic_set_lvt(&l, APIC_LVT_LINT1, APIC_MODE_NMI, false);
	if (ioctl(v->kfd.fd, KVM_SET_LAPIC, &l) < 0)
		return kvm_ioctl_err(err, "KVM_SET_LAPIC");
	return 0;
}

static int vcpu_setup_msrs(struct vcpu *v)
{
	static const struct { uint32_t index; uint64_t data; } init[] = {
		{ MSR_IA32_SYSENTER_CS, 0 }, { MSR_IA32_SYSENTER_ESP, 0 },
		{ MSR_IA32_SYSENTER_EIP, 0 }, { MSR_STAR, 0 }, { MSR_CSTAR, 0 },
		{ MSR_KERNEL_GS_BASE, 0 }, { MSR_SYSCALL_MASK, 0 }, { MSR_LSTAR, 0 },
		{ MSR_IA32_MISC_ENABLE, 1 },		/* fast strings */
		{ MSR_MTRR_DEF_TYPE, (1u << 11) | 6 },	/* MTRRs on, default WB */
	};
	unsigned n = sizeof(init) / sizeof(init[0]);
	uint64_t buf[(sizeof(struct kvm_msrs) +
		      sizeof(init) / sizeof(init[0]) * sizeof(struct kvm_msr_entry)) / 8 + 1];
	struct kvm_msrs *m = (struct kvm_msrs *)buf;

	memset(buf, 0, sizeof(buf));
	m->nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		m->entries[i].index = init[i].index;
		m->entries[i].data = init[i].data;
	}
	int ret = ioctl(v->kfd.fd, KVM_SET_MSRS, m);

	if (ret != (int)n)
		log_debug("vcpu", "vCPU %u: KVM_SET_MSRS set %d of %u boot MSRs",
			  v->id, ret, n);
	return 0;
}

int vcpu_init(struct vm *vm, struct vcpu *v, unsigned id, struct err *err)
{
	int ret;

	v->vm = vm;
	v->id = id;
	ret = kvm_create_vcpu(&vm->kvm, id, &v->kfd, err);
	if (ret)
		return ret;
	ret = kvm_vcpu_set_cpuid(&vm->kvm, &v->kfd, id, vm->nr_vcpus, err);
	if (!ret)
		ret = vcpu_setup_lapic(v, err);
	if (!ret)
		ret = vcpu_setup_msrs(v);
	if (ret)
		err_prefix(err, "vCPU %u", id);
	return ret;
}

static void seg_flat(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

/* Long mode, paging on, flat segments: the 64-bit boot protocol entry. */
int vcpu_setup_boot(struct vcpu *v, const void *entry_arg, struct err *err)
{
	const struct boot_entry *be = entry_arg;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_fpu fpu;

	if (ioctl(v->kfd.fd, KVM_GET_SREGS, &sregs) < 0)
		return kvm_ioctl_err(err, "KVM_GET_SREGS");
	seg_flat(&sregs.cs, be->cs_selector, 0xb, true);
	seg_flat(&sregs.ds, be->ds_selector, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr.base = 0;
	sregs.tr.limit = 0xffff;
	sregs.tr.type = 0xb;		/* 64-bit busy TSS */
	sregs.tr.present = 1;
	sregs.gdt.base = be->gdt_base;
	sregs.gdt.limit = be->gdt_limit;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
	sregs.cr3 = be->cr3;
	sregs.cr4 = X86_CR4_PAE;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(v->kfd.fd, KVM_SET_SREGS, &sregs) < 0)
		return kvm_ioctl_err(err, "KVM_SET_SREGS");

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = be->rip;
	regs.rsi = be->rsi;
	regs.rsp = 0x8ff0;		/* free page between boot_params and page tables */
	if (ioctl(v->kfd.fd, KVM_SET_REGS, &regs) < 0)
		return kvm_ioctl_err(err, "KVM_SET_REGS");

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(v->kfd.fd, KVM_SET_FPU, &fpu) < 0)
		return kvm_ioctl_err(err, "KVM_SET_FPU");
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	v->kfd.run->immediate_exit = 1;
	if (v->thread_started)
		pthread_kill(v->thread, vcpu_kick_signal());
}

static void vcpu_handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->kfd.run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++) {
		bus_pio(&v->vm->bus, run->io.port, is_write, data, run->io.size);
		data += run->io.size;
	}
	v->exits_io++;
}

static void vcpu_report_failure(struct vcpu *v, const char *what)
{
	struct kvm_regs regs;
	unsigned long long rip = 0;

	if (ioctl(v->kfd.fd, KVM_GET_REGS, &regs) == 0)
		rip = regs.rip;
	vm_request_exit(v->vm, VM_EXIT_ERROR, 0, "vCPU %u: %s at rip 0x%llx",
			v->id, what, rip);
}

/* Returns false when the vCPU thread should end. */
static bool vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->kfd.run;
	char what[96];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_handle_io(v);
		return true;
	case KVM_EXIT_MMIO:
		if (!run->mmio.is_write)
			memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
		return true;
	case KVM_EXIT_HLT:
	case KVM_EXIT_IRQ_WINDOW_OPEN:
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_DIRTY_RING_FULL: {
		/* ring backend: harvest + reset before re-entering (dirty_ring.c) */
		struct err err = { 0 };

		if (!dirty_ring_vcpu_full(v->vm, v->id, &err))
			return true;
		vcpu_report_failure(v, err.msg);
		return false;
	}
	case KVM_EXIT_SHUTDOWN:
		vm_request_exit(v->vm, VM_EXIT_RESET, 0, "vCPU %u: triple fault (guest reset)", v->id);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
			vm_request_exit(v->vm, VM_EXIT_POWEROFF, 0, "guest powered off");
		else
			vm_request_exit(v->vm, VM_EXIT_RESET, 0, "guest reset");
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what), "KVM internal error (suberror %u)",
			 run->internal.suberror);
		vcpu_report_failure(v, what);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what), "VM entry failed (reason 0x%llx)",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vcpu_report_failure(v, what);
		return false;
	default:
		snprintf(what, sizeof(what), "unhandled KVM exit %u", run->exit_reason);
		vcpu_report_failure(v, what);
		return false;
	}
}

/* Park while paused; false when the VM is stopping. Takes vm->lock. */
static bool vcpu_wait_runnable(struct vcpu *v)
{
	struct vm *vm = v->vm;
	bool run;

	pthread_mutex_lock(&vm->lock);
	for (;;) {
		bool paused = vm->state == VM_STATE_PAUSED;
		bool throttled = vm->state == VM_STATE_RUNNING &&
				 v->throttle_until_ns > time_now_ns();

		if (!paused && !throttled)
			break;
		/* a throttled vCPU is outside KVM_RUN too: it counts as parked */
		if (!v->parked) {
			v->parked = true;
			vm->nr_parked++;
			pthread_cond_broadcast(&vm->cond);
		}
		if (paused) {
			pthread_cond_wait(&vm->cond, &vm->lock);
		} else {
			struct timespec ts = {
				v->throttle_until_ns / 1000000000ULL,
				v->throttle_until_ns % 1000000000ULL,
			};

			pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
		}
	}
	if (v->parked) {
		v->parked = false;
		vm->nr_parked--;
	}
	run = vm->state == VM_STATE_RUNNING;
	if (run)
		v->kfd.run->immediate_exit = 0;
	pthread_mutex_unlock(&vm->lock);
	return run;
}

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	char name[16];
	sigset_t set;

	snprintf(name, sizeof(name), "vcpu%u", v->id);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, vcpu_kick_signal());
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	while (vcpu_wait_runnable(v)) {
		if (ioctl(v->kfd.fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			vm_request_exit(v->vm, VM_EXIT_ERROR, 0, "vCPU %u: KVM_RUN failed: %s",
					v->id, strerror(errno));
			break;
		}
		if (!vcpu_handle_exit(v))
			break;
	}
	/* Count ourselves parked so a pause never waits for a dead thread. */
	pthread_mutex_lock(&v->vm->lock);
	if (!v->parked) {
		v->parked = true;
		v->vm->nr_parked++;
	}
	pthread_cond_broadcast(&v->vm->cond);
	pthread_mutex_unlock(&v->vm->lock);
	return NULL;
}
