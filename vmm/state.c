/*
 * state.c - the VM's non-RAM state as migration sections: one "cpu"
 * section per vCPU, "kvm-vm" (irqchip, PIT, kvmclock), the UART and CMOS.
 *
 * Every section is a field table over a plain wire struct; kernel structs
 * travel as byte fields of their exact size (both ends are x86-64), the MSRs
 * as a count plus index/value arrays, the XSAVE area as bytes plus its
 * length. Loading decodes each section into a pending copy and validates it
 * (sizes, counts, MP state, MSRs known to this host's KVM, CPUID equal to
 * what this VM set); only vm_state_load_finish() touches KVM, once every
 * section is there. docs/vm-state.md has the details and the clock policy.
 */
#include "state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"
#include "util.h"

#define STATE_MSRS_MAX		256u
#define STATE_CPUID_MAX		256u	/* KVM_MAX_CPUID_ENTRIES */
#define STATE_XSAVE_MAX		16384u	/* AMX hosts need 11008 */
#define STATE_XSAVE_MIN		4096u	/* sizeof(struct kvm_xsave) */

#define SEC_ID_KVM_VM	(VM_STATE_SECTION_ID_BASE + 1)
#define SEC_ID_UART	(VM_STATE_SECTION_ID_BASE + 2)
#define SEC_ID_CMOS	(VM_STATE_SECTION_ID_BASE + 3)
#define SEC_ID_CPU(i)	(VM_STATE_SECTION_ID_BASE + 0x100 + (i))

#define MSR_MTRR_CAP		0xfe
#define MSR_MTRR_PHYS_BASE0	0x200	/* 8 base/mask pairs: 0x200..0x20f */
#define MSR_MTRR_FIX_64K	0x250
#define MSR_MTRR_FIX_16K_80	0x258
#define MSR_MTRR_FIX_16K_A0	0x259
#define MSR_MTRR_FIX_4K_C0	0x268	/* 8 of them: 0x268..0x26f */
#define MSR_MTRR_DEF_TYPE	0x2ff

#define VCPU_EVENTS_KNOWN	0x3fu	/* KVM_VCPUEVENT_VALID_* up to TRIPLE_FAULT */

/* ---- wire structs and their field tables ---- */

struct cpu_wire {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint8_t has_sregs2;		/* sregs2 valid (source had SREGS2) */
	struct kvm_sregs2 sregs2;
	uint32_t xsave_len;		/* bytes of xsave[] in use */
	uint32_t xsave[STATE_XSAVE_MAX / 4];
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp_state;
	uint32_t nmsrs;
	uint32_t msr_index[STATE_MSRS_MAX];
	uint64_t msr_data[STATE_MSRS_MAX];
	uint32_t ncpuid;
	struct kvm_cpuid_entry2 cpuid[STATE_CPUID_MAX];
};

#define REQ .flags = MIG_FIELD_REQUIRED
static const struct mig_field cpu_fields[] = {
	MIG_BYTES(struct cpu_wire, regs, 1, REQ),
	MIG_BYTES(struct cpu_wire, sregs, 2, REQ),
	MIG_BOOL(struct cpu_wire, has_sregs2, 3, REQ),
	MIG_BYTES(struct cpu_wire, sregs2, 4, REQ),
	MIG_U32(struct cpu_wire, xsave_len, 5, REQ),
	MIG_BYTES(struct cpu_wire, xsave, 6, REQ),
	MIG_BYTES(struct cpu_wire, xcrs, 7, REQ),
	MIG_BYTES(struct cpu_wire, debugregs, 8, REQ),
	MIG_BYTES(struct cpu_wire, lapic, 9, REQ),
	MIG_BYTES(struct cpu_wire, events, 10, REQ),
	MIG_BYTES(struct cpu_wire, mp_state, 11, REQ),
	MIG_U32(struct cpu_wire, nmsrs, 12, REQ),
	MIG_ARRAY_U32(struct cpu_wire, msr_index, 13, REQ),
	MIG_ARRAY_U64(struct cpu_wire, msr_data, 14, REQ),
	MIG_U32(struct cpu_wire, ncpuid, 15, REQ),
	MIG_BYTES(struct cpu_wire, cpuid, 16, REQ),
	MIG_END
};

struct kvm_vm_wire {
	struct kvm_irqchip pic_master;
	struct kvm_irqchip pic_slave;
	struct kvm_irqchip ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

static const struct mig_field kvm_vm_fields[] = {
	MIG_BYTES(struct kvm_vm_wire, pic_master, 1, REQ),
	MIG_BYTES(struct kvm_vm_wire, pic_slave, 2, REQ),
	MIG_BYTES(struct kvm_vm_wire, ioapic, 3, REQ),
	MIG_BYTES(struct kvm_vm_wire, pit, 4, REQ),
	MIG_BYTES(struct kvm_vm_wire, clock, 5, REQ),
	MIG_END
};

static const struct mig_field uart_fields[] = {
	MIG_U8(struct uart16550_state, ier, 1, REQ),
	MIG_U8(struct uart16550_state, lcr, 2, REQ),
	MIG_U8(struct uart16550_state, mcr, 3, REQ),
	MIG_U8(struct uart16550_state, lsr, 4, REQ),
	MIG_U8(struct uart16550_state, msr, 5, REQ),
	MIG_U8(struct uart16550_state, scr, 6, REQ),
	MIG_U8(struct uart16550_state, fcr, 7, REQ),
	MIG_U8(struct uart16550_state, dll, 8, REQ),
	MIG_U8(struct uart16550_state, dlm, 9, REQ),
	MIG_U8(struct uart16550_state, thr_ipending, 10, REQ),
	MIG_U8(struct uart16550_state, rx_len, 11, REQ),
	MIG_ARRAY_U8(struct uart16550_state, rx, 12, REQ),
	MIG_END
};

static const struct mig_field cmos_fields[] = {
	MIG_U8(struct cmos_state, index, 1, REQ),
	MIG_ARRAY_U8(struct cmos_state, nvram, 2, REQ),
	MIG_END
};
#undef REQ

/* ---- what this host's KVM offers ---- */

struct state_caps {
	bool sregs2;
	bool xsave2;		/* use KVM_GET_XSAVE2 */
	uint32_t xsave_size;	/* bytes KVM_GET_XSAVE(2) writes */
	bool clock_ctrl;	/* KVM_KVMCLOCK_CTRL */
};

static int state_caps_get(struct vm *vm, struct state_caps *c, struct err *err)
{
	static const struct { long cap; const char *name; } need[] = {
		{ KVM_CAP_XSAVE, "KVM_CAP_XSAVE" },
		{ KVM_CAP_XCRS, "KVM_CAP_XCRS" },
		{ KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS" },
		{ KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS" },
		{ KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
		{ KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK" },
	};
	int n;

	for (size_t i = 0; i < ARRAY_SIZE(need); i++)
		if (kvm_check_cap(&vm->kvm, need[i].cap) <= 0)
			return err_set(err, -ENOTSUP,
				       "KVM lacks %s, needed to save or load VM state",
				       need[i].name);
	n = kvm_vm_check_cap(&vm->kvm, KVM_CAP_XSAVE2);
	c->xsave2 = n >= (int)STATE_XSAVE_MIN;
	c->xsave_size = c->xsave2 ? (uint32_t)n : STATE_XSAVE_MIN;
	if (c->xsave_size > STATE_XSAVE_MAX)
		return err_set(err, -ENOTSUP,
			       "KVM's XSAVE area is %u bytes; tern handles at most %u",
			       c->xsave_size, STATE_XSAVE_MAX);
	c->sregs2 = kvm_check_cap(&vm->kvm, KVM_CAP_SREGS2) > 0;
	c->clock_ctrl = kvm_check_cap(&vm->kvm, KVM_CAP_KVMCLOCK_CTRL) > 0;
	return 0;
}

/* ---- MSRs ---- */

static int msr_get_one(int fd, uint32_t index, uint64_t *val)
{
	uint64_t buf[(sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)) / 8 + 1];
	struct kvm_msrs *m = (struct kvm_msrs *)buf;

	memset(buf, 0, sizeof(buf));
	m->nmsrs = 1;
	m->entries[0].index = index;
	if (ioctl(fd, KVM_GET_MSRS, m) != 1)
		return -1;
	*val = m->entries[0].data;
	return 0;
}

static bool msr_listed(const uint32_t *list, unsigned n, uint32_t index)
{
	for (unsigned i = 0; i < n; i++)
		if (list[i] == index)
			return true;
	return false;
}

/* Add the MTRRs, which KVM_GET_MSR_INDEX_LIST does not report. */
static unsigned msr_add_mtrrs(uint32_t *list, unsigned n, unsigned max)
{
	uint32_t extra[16 + 3 + 8 + 1];
	unsigned k = 0;

	for (unsigned i = 0; i < 16; i++)
		extra[k++] = MSR_MTRR_PHYS_BASE0 + i;
	extra[k++] = MSR_MTRR_FIX_64K;
	extra[k++] = MSR_MTRR_FIX_16K_80;
	extra[k++] = MSR_MTRR_FIX_16K_A0;
	for (unsigned i = 0; i < 8; i++)
		extra[k++] = MSR_MTRR_FIX_4K_C0 + i;
	extra[k++] = MSR_MTRR_DEF_TYPE;
	for (unsigned i = 0; i < k && n < max; i++)
		if (!msr_listed(list, n, extra[i]))
			list[n++] = extra[i];
	return n;
}

/*
 * Candidate MSRs: what KVM_GET_MSR_INDEX_LIST reports plus the MTRRs.
 * Returns the count (into list[STATE_MSRS_MAX]) or a negative errno.
 */
static int msr_candidates(struct vm *vm, uint32_t *list, struct err *err)
{
	struct kvm_msr_list *ml;
	unsigned n;

	ml = calloc(1, sizeof(*ml) + STATE_MSRS_MAX * sizeof(uint32_t));
	if (!ml)
		return err_set(err, -ENOMEM, "out of memory for the MSR list");
	ml->nmsrs = STATE_MSRS_MAX;
	if (ioctl(vm->kvm.sys_fd, KVM_GET_MSR_INDEX_LIST, ml) < 0) {
		int ret = errno == E2BIG ?
			err_set(err, -E2BIG, "KVM lists more than %u MSRs", STATE_MSRS_MAX) :
			kvm_ioctl_err(err, "KVM_GET_MSR_INDEX_LIST");

		free(ml);
		return ret;
	}
	n = ml->nmsrs;
	memcpy(list, ml->indices, n * sizeof(uint32_t));
	free(ml);
	return (int)msr_add_mtrrs(list, n, STATE_MSRS_MAX);
}

/*
 * The candidates KVM_GET_MSRS reads on this VM's vCPUs, found once with one
 * ioctl per candidate (vCPU 0 answers for all: they share the CPUID) and
 * kept, so a save inside the downtime reads them with one ioctl per vCPU.
 */
static int msr_readable(struct vm *vm, int fd, struct err *err)
{
	uint32_t list[STATE_MSRS_MAX];
	int n;

	if (vm->save_msrs)
		return 0;
	n = msr_candidates(vm, list, err);
	if (n < 0)
		return n;
	vm->save_msrs = malloc(STATE_MSRS_MAX * sizeof(uint32_t));
	if (!vm->save_msrs)
		return err_set(err, -ENOMEM, "out of memory for the MSR list");
	vm->nsave_msrs = 0;
	for (int i = 0; i < n; i++) {
		uint64_t v;

		if (!msr_get_one(fd, list[i], &v))
			vm->save_msrs[vm->nsave_msrs++] = list[i];
	}
	return 0;
}

/* Read the readable MSRs in one KVM_GET_MSRS (one by one if that fails). */
static int msr_save(struct vm *vm, int fd, struct cpu_wire *w, struct err *err)
{
	struct kvm_msrs *m;
	int ret = msr_readable(vm, fd, err), n;

	if (ret)
		return ret;
	n = vm->nsave_msrs;
	m = calloc(1, sizeof(*m) + (size_t)n * sizeof(m->entries[0]));
	if (!m)
		return err_set(err, -ENOMEM, "out of memory for MSRs");
	m->nmsrs = (uint32_t)n;
	for (int i = 0; i < n; i++)
		m->entries[i].index = vm->save_msrs[i];
	ret = ioctl(fd, KVM_GET_MSRS, m);
	w->nmsrs = 0;
	for (int i = 0; i < n; i++) {
		uint64_t v = m->entries[i].data;

		/* a short count: the rest one by one, skipping what fails */
		if (i >= ret && msr_get_one(fd, vm->save_msrs[i], &v))
			continue;
		w->msr_index[w->nmsrs] = vm->save_msrs[i];
		w->msr_data[w->nmsrs++] = v;
	}
	free(m);
	return 0;
}

int vm_state_prepare(struct vm *vm, struct err *err)
{
	if (!vm->nr_vcpus)
		return 0;
	return msr_readable(vm, vm->vcpus[0].kfd.fd, err);
}

/* ---- CPUID ---- */

/* The CPUID the vCPU was given, into ent[STATE_CPUID_MAX]. */
static int cpuid_get(int fd, struct kvm_cpuid_entry2 *ent, uint32_t *n,
		     struct err *err)
{
	struct kvm_cpuid2 *c;
	int ret = 0;

	c = calloc(1, sizeof(*c) + STATE_CPUID_MAX * sizeof(c->entries[0]));
	if (!c)
		return err_set(err, -ENOMEM, "out of memory for CPUID");
	c->nent = STATE_CPUID_MAX;
	if (ioctl(fd, KVM_GET_CPUID2, c) < 0)
		ret = kvm_ioctl_err(err, "KVM_GET_CPUID2");
	if (!ret) {
		*n = c->nent;
		memcpy(ent, c->entries, c->nent * sizeof(c->entries[0]));
	}
	free(c);
	return ret;
}

/*
 * Bits KVM rewrites at run time from guest state (CR4, XCR0, APIC base,
 * MISC_ENABLE): they legitimately differ between a running source and a
 * fresh destination, and the destination's follow once state is loaded.
 */
static void cpuid_mask_dynamic(struct kvm_cpuid_entry2 *e)
{
	switch (e->function) {
	case 1:
		e->ecx &= ~((1u << 27) | (1u << 3));	/* OSXSAVE, MONITOR */
		e->edx &= ~(1u << 9);			/* APIC */
		break;
	case 7:
		if (e->index == 0)
			e->ecx &= ~(1u << 4);		/* OSPKE */
		break;
	case 0xd:
		if (e->index <= 1)
			e->ebx = 0;			/* size for XCR0 / XSS */
		break;
	}
}

static bool cpuid_same_leaf(const struct kvm_cpuid_entry2 *a,
			    const struct kvm_cpuid_entry2 *b)
{
	if (a->function != b->function)
		return false;
	return !(a->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || a->index == b->index;
}

static const struct kvm_cpuid_entry2 *
cpuid_find(const struct kvm_cpuid_entry2 *tab, unsigned n,
	   const struct kvm_cpuid_entry2 *e)
{
	for (unsigned i = 0; i < n; i++)
		if (cpuid_same_leaf(&tab[i], e))
			return &tab[i];
	return NULL;
}

static int cpuid_differs(unsigned vcpu, const struct kvm_cpuid_entry2 *src,
			 const struct kvm_cpuid_entry2 *dst, struct err *err)
{
	struct kvm_cpuid_entry2 a = *src, b = *dst;

	cpuid_mask_dynamic(&a);
	cpuid_mask_dynamic(&b);
	if (a.eax == b.eax && a.ebx == b.ebx && a.ecx == b.ecx && a.edx == b.edx)
		return 0;
	return err_set(err, -EINVAL,
		       "vCPU %u: CPUID leaf 0x%x index %u differs: source eax=0x%x ebx=0x%x ecx=0x%x edx=0x%x, this VM eax=0x%x ebx=0x%x ecx=0x%x edx=0x%x",
		       vcpu, src->function, src->index, src->eax, src->ebx, src->ecx,
		       src->edx, dst->eax, dst->ebx, dst->ecx, dst->edx);
}

/* The source's CPUID must equal what this VM's vCPU was given. */
static int cpuid_check(struct vm *vm, unsigned vcpu, const struct cpu_wire *w,
		       struct err *err)
{
	struct kvm_cpuid_entry2 *mine = calloc(STATE_CPUID_MAX, sizeof(*mine));
	const struct kvm_cpuid_entry2 *e;
	uint32_t n = 0;
	int ret;

	if (!mine)
		return err_set(err, -ENOMEM, "out of memory for CPUID");
	ret = cpuid_get(vm->vcpus[vcpu].kfd.fd, mine, &n, err);
	for (unsigned i = 0; !ret && i < w->ncpuid; i++) {
		e = cpuid_find(mine, n, &w->cpuid[i]);
		if (!e)
			ret = err_set(err, -EINVAL,
				      "vCPU %u: CPUID leaf 0x%x index %u is on the source but not in this VM",
				      vcpu, w->cpuid[i].function, w->cpuid[i].index);
		else
			ret = cpuid_differs(vcpu, &w->cpuid[i], e, err);
	}
	for (unsigned i = 0; !ret && i < n; i++)
		if (!cpuid_find(w->cpuid, w->ncpuid, &mine[i]))
			ret = err_set(err, -EINVAL,
				      "vCPU %u: CPUID leaf 0x%x index %u is in this VM but not on the source",
				      vcpu, mine[i].function, mine[i].index);
	free(mine);
	return ret;
}

/* ---- save ---- */

static int kvm_call(int fd, unsigned long req, const char *name, void *arg,
		    struct err *err)
{
	if (ioctl(fd, req, arg) < 0)
		return kvm_ioctl_err(err, name);
	return 0;
}

static int cpu_save_regs(int fd, const struct state_caps *caps,
			 struct cpu_wire *w, struct err *err)
{
	int ret;

	ret = kvm_call(fd, KVM_GET_REGS, "KVM_GET_REGS", &w->regs, err);
	if (!ret)
		ret = kvm_call(fd, KVM_GET_SREGS, "KVM_GET_SREGS", &w->sregs, err);
	if (!ret && caps->sregs2) {
		ret = kvm_call(fd, KVM_GET_SREGS2, "KVM_GET_SREGS2", &w->sregs2, err);
		w->has_sregs2 = 1;
	}
	w->xsave_len = caps->xsave_size;
	if (!ret && caps->xsave2)
		ret = kvm_call(fd, KVM_GET_XSAVE2, "KVM_GET_XSAVE2", w->xsave, err);
	else if (!ret)
		ret = kvm_call(fd, KVM_GET_XSAVE, "KVM_GET_XSAVE", w->xsave, err);
	if (!ret)
		ret = kvm_call(fd, KVM_GET_XCRS, "KVM_GET_XCRS", &w->xcrs, err);
	if (!ret)
		ret = kvm_call(fd, KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS",
			       &w->debugregs, err);
	return ret;
}

static int cpu_save_rest(int fd, struct cpu_wire *w, struct err *err)
{
	int ret;

	ret = kvm_call(fd, KVM_GET_LAPIC, "KVM_GET_LAPIC", &w->lapic, err);
	if (!ret)
		ret = kvm_call(fd, KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS",
			       &w->events, err);
	if (!ret)
		ret = kvm_call(fd, KVM_GET_MP_STATE, "KVM_GET_MP_STATE",
			       &w->mp_state, err);
	/* As QEMU does: tell SET_VCPU_EVENTS to restore these too. */
	w->events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING |
			   KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	if (!ret)
		ret = cpuid_get(fd, w->cpuid, &w->ncpuid, err);
	return ret;
}

/* Encode `obj` with `fields` and write it as one SECTION_FULL record. */
static int put_section(struct mig_stream *s, const char *idstr,
		       uint32_t section_id, uint32_t instance,
		       const struct mig_field *fields, const void *obj,
		       size_t size, struct err *err)
{
	struct mig_section_info info = {
		.section_id = section_id, .instance_id = instance,
		.version = VM_STATE_VERSION, .min_version = VM_STATE_VERSION,
	};
	struct mig_stream buf;
	const uint8_t *data;
	size_t len;
	int ret;

	str_copy(info.idstr, sizeof(info.idstr), idstr);
	mig_stream_init_mem_writer(&buf, MIG_SECTION_MAX);
	ret = mig_fields_save(fields, obj, size, VM_STATE_VERSION, &buf);
	if (ret) {
		mig_stream_get_err(&buf, err);
	} else {
		data = mig_stream_data(&buf, &len);
		ret = mig_stream_put_section_full(s, &info, data, len);
		if (ret)
			mig_stream_get_err(s, err);
	}
	mig_stream_fini(&buf);
	if (ret)
		err_prefix(err, "section '%s' instance %u", idstr, instance);
	return ret;
}

static int cpu_save(struct vm *vm, unsigned i, const struct state_caps *caps,
		    struct mig_stream *s, struct err *err)
{
	struct cpu_wire *w = calloc(1, sizeof(*w));
	int fd = vm->vcpus[i].kfd.fd;
	int ret;

	if (!w)
		return err_set(err, -ENOMEM, "out of memory saving vCPU %u", i);
	ret = cpu_save_regs(fd, caps, w, err);
	if (!ret)
		ret = cpu_save_rest(fd, w, err);
	if (!ret)
		ret = msr_save(vm, fd, w, err);
	if (ret)
		err_prefix(err, "vCPU %u", i);
	else
		ret = put_section(s, VM_STATE_SEC_CPU, SEC_ID_CPU(i), i, cpu_fields,
				  w, sizeof(*w), err);
	free(w);
	return ret;
}

static int irqchip_get(struct vm *vm, struct kvm_irqchip *chip, uint32_t id,
		       struct err *err)
{
	memset(chip, 0, sizeof(*chip));
	chip->chip_id = id;
	if (ioctl(vm->kvm.vm_fd, KVM_GET_IRQCHIP, chip) < 0)
		return kvm_ioctl_err(err, "KVM_GET_IRQCHIP");
	return 0;
}

static int kvm_vm_save(struct vm *vm, struct mig_stream *s, struct err *err)
{
	struct kvm_vm_wire w;
	int fd = vm->kvm.vm_fd;
	int ret;

	memset(&w, 0, sizeof(w));
	ret = irqchip_get(vm, &w.pic_master, KVM_IRQCHIP_PIC_MASTER, err);
	if (!ret)
		ret = irqchip_get(vm, &w.pic_slave, KVM_IRQCHIP_PIC_SLAVE, err);
	if (!ret)
		ret = irqchip_get(vm, &w.ioapic, KVM_IRQCHIP_IOAPIC, err);
	if (!ret)
		ret = kvm_call(fd, KVM_GET_PIT2, "KVM_GET_PIT2", &w.pit, err);
	if (!ret)
		ret = kvm_call(fd, KVM_GET_CLOCK, "KVM_GET_CLOCK", &w.clock, err);
	if (ret)
		return ret;
	return put_section(s, VM_STATE_SEC_KVM_VM, SEC_ID_KVM_VM, 0,
			   kvm_vm_fields, &w, sizeof(w), err);
}

static int devices_save(struct vm *vm, struct mig_stream *s, struct err *err)
{
	struct uart16550_state uart;
	struct cmos_state cmos;
	int ret;

	uart16550_save(&vm->uart, &uart);
	pthread_mutex_lock(&vm->sysdev.lock);
	cmos = vm->sysdev.cmos;
	pthread_mutex_unlock(&vm->sysdev.lock);
	ret = put_section(s, VM_STATE_SEC_UART, SEC_ID_UART, 0, uart_fields,
			  &uart, sizeof(uart), err);
	if (!ret)
		ret = put_section(s, VM_STATE_SEC_CMOS, SEC_ID_CMOS, 0, cmos_fields,
				  &cmos, sizeof(cmos), err);
	return ret;
}

int vm_state_save(struct vm *vm, struct mig_stream *s, struct err *err)
{
	struct state_caps caps;
	int ret;

	if (vm_get_state(vm) == VM_STATE_RUNNING)
		return err_set(err, -EBUSY, "VM is running: pause it before saving its state");
	ret = state_caps_get(vm, &caps, err);
	for (unsigned i = 0; !ret && i < vm->nr_vcpus; i++)
		ret = cpu_save(vm, i, &caps, s, err);
	if (!ret)
		ret = kvm_vm_save(vm, s, err);
	if (!ret)
		ret = devices_save(vm, s, err);
	return ret;
}

/* ---- load: decode and validate ---- */

struct vm_state_loader {
	struct vm *vm;
	struct state_caps caps;
	int caps_ret;			/* state_caps_get() result */
	struct err caps_err;
	struct cpu_wire **cpu;		/* [nr_vcpus], NULL = not seen */
	struct kvm_vm_wire *kvm_vm;
	struct uart16550_state uart;
	bool have_uart;
	struct cmos_state cmos;
	bool have_cmos;
	bool done;			/* finish ran (applied or not) */
};

struct vm_state_loader *vm_state_loader_new(struct vm *vm)
{
	struct vm_state_loader *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->vm = vm;
	l->cpu = calloc(vm->nr_vcpus ? vm->nr_vcpus : 1, sizeof(*l->cpu));
	if (!l->cpu) {
		free(l);
		return NULL;
	}
	l->caps_ret = state_caps_get(vm, &l->caps, &l->caps_err);
	return l;
}

void vm_state_loader_free(struct vm_state_loader *l)
{
	if (!l)
		return;
	for (unsigned i = 0; i < l->vm->nr_vcpus; i++)
		free(l->cpu[i]);
	free(l->cpu);
	free(l->kvm_vm);
	free(l);
}

static int cpu_check_msrs(struct vm_state_loader *l, unsigned i,
			  const struct cpu_wire *w, struct err *err)
{
	int ret;

	if (w->nmsrs > STATE_MSRS_MAX)
		return err_set(err, -EPROTO, "vCPU %u: %u MSRs, at most %u",
			       i, w->nmsrs, STATE_MSRS_MAX);
	ret = msr_readable(l->vm, l->vm->vcpus[0].kfd.fd, err);
	if (ret)
		return ret;
	for (unsigned k = 0; k < w->nmsrs; k++) {
		if (!msr_listed(l->vm->save_msrs, (unsigned)l->vm->nsave_msrs, w->msr_index[k]))
			return err_set(err, -EINVAL,
				       "vCPU %u: MSR 0x%x is not supported by KVM on this host",
				       i, w->msr_index[k]);
		if (msr_listed(w->msr_index, k, w->msr_index[k]))
			return err_set(err, -EPROTO, "vCPU %u: MSR 0x%x listed twice",
				       i, w->msr_index[k]);
	}
	return 0;
}

static bool mp_state_known(uint32_t s)
{
	return s == KVM_MP_STATE_RUNNABLE || s == KVM_MP_STATE_UNINITIALIZED ||
	       s == KVM_MP_STATE_INIT_RECEIVED || s == KVM_MP_STATE_HALTED ||
	       s == KVM_MP_STATE_SIPI_RECEIVED;
}

/* Everything that can be checked without touching the vCPU's state. */
static int cpu_validate(struct vm_state_loader *l, unsigned i,
			const struct cpu_wire *w, struct err *err)
{
	if (w->xsave_len != l->caps.xsave_size)
		return err_set(err, -EINVAL,
			       "vCPU %u: XSAVE area is %u bytes, this host's KVM uses %u",
			       i, w->xsave_len, l->caps.xsave_size);
	if (!mp_state_known(w->mp_state.mp_state))
		return err_set(err, -EPROTO, "vCPU %u: unknown MP state %u",
			       i, w->mp_state.mp_state);
	if (w->events.flags & ~VCPU_EVENTS_KNOWN)
		return err_set(err, -EPROTO, "vCPU %u: unknown vCPU event flags 0x%x",
			       i, w->events.flags);
	if (w->ncpuid > STATE_CPUID_MAX)
		return err_set(err, -EPROTO, "vCPU %u: %u CPUID entries, at most %u",
			       i, w->ncpuid, STATE_CPUID_MAX);
	if (w->xcrs.nr_xcrs > KVM_MAX_XCRS)
		return err_set(err, -EPROTO, "vCPU %u: %u XCRs, at most %u",
			       i, w->xcrs.nr_xcrs, KVM_MAX_XCRS);
	if (cpu_check_msrs(l, i, w, err))
		return err->code;
	return cpuid_check(l->vm, i, w, err);
}

static int load_cpu(struct vm_state_loader *l, const struct mig_section_info *info,
		    struct mig_stream *in, struct err *err)
{
	unsigned i = info->instance_id;
	struct cpu_wire *w;
	int ret;

	if (i >= l->vm->nr_vcpus)
		return err_set(err, -EINVAL, "vCPU %u: this VM has only %u vCPUs",
			       i, l->vm->nr_vcpus);
	if (l->cpu[i])
		return err_set(err, -EPROTO, "vCPU %u: state sent twice", i);
	w = calloc(1, sizeof(*w));
	if (!w)
		return err_set(err, -ENOMEM, "out of memory loading vCPU %u", i);
	ret = mig_fields_load(cpu_fields, w, sizeof(*w), info->version, in, err);
	if (ret)
		err_prefix(err, "vCPU %u", i);
	else
		ret = cpu_validate(l, i, w, err);
	if (ret) {
		free(w);
		return ret;
	}
	l->cpu[i] = w;
	return 0;
}

static int load_kvm_vm(struct vm_state_loader *l, const struct mig_section_info *info,
		       struct mig_stream *in, struct err *err)
{
	struct kvm_vm_wire *w;
	int ret;

	if (l->kvm_vm)
		return err_set(err, -EPROTO, "section '%s' sent twice", info->idstr);
	w = calloc(1, sizeof(*w));
	if (!w)
		return err_set(err, -ENOMEM, "out of memory loading VM state");
	ret = mig_fields_load(kvm_vm_fields, w, sizeof(*w), info->version, in, err);
	if (!ret && (w->pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER ||
		     w->pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
		     w->ioapic.chip_id != KVM_IRQCHIP_IOAPIC))
		ret = err_set(err, -EPROTO, "irqchip ids %u/%u/%u, expected 0/1/2",
			      w->pic_master.chip_id, w->pic_slave.chip_id,
			      w->ioapic.chip_id);
	if (ret) {
		err_prefix(err, "%s", info->idstr);
		free(w);
		return ret;
	}
	l->kvm_vm = w;
	return 0;
}

/* Same checks as uart16550_load(), done before anything is applied. */
static int uart_validate(const struct uart16550_state *st, struct err *err)
{
	if (st->rx_len > UART_FIFO_LEN)
		return err_set(err, -EPROTO, "rx_len %u > FIFO size %u",
			       st->rx_len, UART_FIFO_LEN);
	if (st->ier & 0xf0)
		return err_set(err, -EPROTO, "reserved IER bits set (0x%02x)", st->ier);
	return 0;
}

static int load_uart(struct vm_state_loader *l, const struct mig_section_info *info,
		     struct mig_stream *in, struct err *err)
{
	struct uart16550_state st;
	int ret;

	if (l->have_uart)
		return err_set(err, -EPROTO, "section '%s' sent twice", info->idstr);
	memset(&st, 0, sizeof(st));
	ret = mig_fields_load(uart_fields, &st, sizeof(st), info->version, in, err);
	if (!ret)
		ret = uart_validate(&st, err);
	if (ret) {
		err_prefix(err, "%s", info->idstr);
		return ret;
	}
	l->uart = st;
	l->have_uart = true;
	return 0;
}

static int load_cmos(struct vm_state_loader *l, const struct mig_section_info *info,
		     struct mig_stream *in, struct err *err)
{
	struct cmos_state st;
	int ret;

	if (l->have_cmos)
		return err_set(err, -EPROTO, "section '%s' sent twice", info->idstr);
	memset(&st, 0, sizeof(st));
	ret = mig_fields_load(cmos_fields, &st, sizeof(st), info->version, in, err);
	if (ret) {
		err_prefix(err, "%s", info->idstr);
		return ret;
	}
	l->cmos = st;
	l->have_cmos = true;
	return 0;
}

int vm_state_load_section(struct vm_state_loader *l,
			  const struct mig_section_info *info,
			  struct mig_stream *in, struct err *err)
{
	static const struct {
		const char *idstr;
		int (*load)(struct vm_state_loader *, const struct mig_section_info *,
			    struct mig_stream *, struct err *);
	} handlers[] = {
		{ VM_STATE_SEC_CPU, load_cpu },
		{ VM_STATE_SEC_KVM_VM, load_kvm_vm },
		{ VM_STATE_SEC_UART, load_uart },
		{ VM_STATE_SEC_CMOS, load_cmos },
	};
	int ret;

	if (l->done)
		return err_set(err, -EINVAL, "VM state was already loaded");
	if (l->caps_ret)
		return err_set(err, l->caps_ret, "%s", l->caps_err.msg);
	for (size_t i = 0; i < ARRAY_SIZE(handlers); i++) {
		if (strcmp(info->idstr, handlers[i].idstr))
			continue;
		ret = mig_section_check_version(info, VM_STATE_VERSION,
						VM_STATE_VERSION, err);
		return ret ? ret : handlers[i].load(l, info, in, err);
	}
	return err_set(err, -EPROTO, "unknown section '%s' (instance %u)",
		       info->idstr, info->instance_id);
}

/* ---- load: apply ---- */

static int check_complete(const struct vm_state_loader *l, struct err *err)
{
	for (unsigned i = 0; i < l->vm->nr_vcpus; i++)
		if (!l->cpu[i])
			return err_set(err, -ENODATA, "no '%s' section for vCPU %u",
				       VM_STATE_SEC_CPU, i);
	if (!l->kvm_vm)
		return err_set(err, -ENODATA, "no '%s' section", VM_STATE_SEC_KVM_VM);
	if (!l->have_uart)
		return err_set(err, -ENODATA, "no '%s' section", VM_STATE_SEC_UART);
	if (!l->have_cmos)
		log_info("state", "no '%s' section: CMOS keeps its defaults",
			 VM_STATE_SEC_CMOS);
	return 0;
}

static int cpu_set_msrs(int fd, const struct cpu_wire *w, struct err *err)
{
	struct kvm_msrs *m;
	int ret;

	m = calloc(1, sizeof(*m) + w->nmsrs * sizeof(m->entries[0]));
	if (!m)
		return err_set(err, -ENOMEM, "out of memory for MSRs");
	m->nmsrs = w->nmsrs;
	for (unsigned k = 0; k < w->nmsrs; k++) {
		m->entries[k].index = w->msr_index[k];
		m->entries[k].data = w->msr_data[k];
	}
	ret = ioctl(fd, KVM_SET_MSRS, m);
	if (ret < 0)
		ret = kvm_ioctl_err(err, "KVM_SET_MSRS");
	else if ((unsigned)ret < w->nmsrs)
		ret = err_set(err, -EINVAL, "KVM_SET_MSRS refused MSR 0x%x (value 0x%llx)",
			      w->msr_index[ret], (unsigned long long)w->msr_data[ret]);
	else
		ret = 0;
	free(m);
	return ret;
}

/* Firecracker's order (MACHINE.md); the MSRs follow the LAPIC (TSC deadline). */
static int cpu_apply(struct vm_state_loader *l, unsigned i, struct err *err)
{
	struct cpu_wire *w = l->cpu[i];
	bool v2 = w->has_sregs2 && l->caps.sregs2;
	const struct { unsigned long req; const char *name; void *arg; } steps[] = {
		{ KVM_SET_MP_STATE, "KVM_SET_MP_STATE", &w->mp_state },
		{ KVM_SET_REGS, "KVM_SET_REGS", &w->regs },
		{ v2 ? KVM_SET_SREGS2 : KVM_SET_SREGS,
		  v2 ? "KVM_SET_SREGS2" : "KVM_SET_SREGS",
		  v2 ? (void *)&w->sregs2 : (void *)&w->sregs },
		{ KVM_SET_XSAVE, "KVM_SET_XSAVE", w->xsave },
		{ KVM_SET_XCRS, "KVM_SET_XCRS", &w->xcrs },
		{ KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", &w->debugregs },
		{ KVM_SET_LAPIC, "KVM_SET_LAPIC", &w->lapic },
	};
	int fd = l->vm->vcpus[i].kfd.fd;
	int ret = 0;

	for (size_t k = 0; !ret && k < ARRAY_SIZE(steps); k++)
		ret = kvm_call(fd, steps[k].req, steps[k].name, steps[k].arg, err);
	if (!ret)
		ret = cpu_set_msrs(fd, w, err);
	if (!ret)
		ret = kvm_call(fd, KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS",
			       &w->events, err);
	if (ret)
		err_prefix(err, "vCPU %u", i);
	return ret;
}

/*
 * Clock policy (docs/vm-state.md): kvmclock resumes from the saved value,
 * like the TSC, so on a KVM that honours TSC writes guest time stands still
 * while the VM is stopped and never jumps or goes back; KVM_CLOCK_REALTIME
 * is not passed. On PVM hosts TSC writes are ignored and the guest's TSC
 * keeps the host's, so there it moves on by the downtime (measured in
 * docs/benchmarks.md).
 */
static int kvm_vm_apply(struct vm_state_loader *l, struct err *err)
{
	struct kvm_vm_wire *w = l->kvm_vm;
	struct kvm_clock_data clock = { .clock = w->clock.clock };
	int fd = l->vm->kvm.vm_fd;
	int ret;

	ret = kvm_call(fd, KVM_SET_PIT2, "KVM_SET_PIT2", &w->pit, err);
	if (!ret)
		ret = kvm_call(fd, KVM_SET_CLOCK, "KVM_SET_CLOCK", &clock, err);
	if (!ret)
		ret = kvm_call(fd, KVM_SET_IRQCHIP, "KVM_SET_IRQCHIP (PIC master)",
			       &w->pic_master, err);
	if (!ret)
		ret = kvm_call(fd, KVM_SET_IRQCHIP, "KVM_SET_IRQCHIP (PIC slave)",
			       &w->pic_slave, err);
	if (!ret)
		ret = kvm_call(fd, KVM_SET_IRQCHIP, "KVM_SET_IRQCHIP (IOAPIC)",
			       &w->ioapic, err);
	return ret;
}

/* Tell each guest it was stopped (no soft-lockup warnings); advisory. */
static void kvmclock_ctrl(struct vm_state_loader *l)
{
	if (!l->caps.clock_ctrl)
		return;
	for (unsigned i = 0; i < l->vm->nr_vcpus; i++)
		if (ioctl(l->vm->vcpus[i].kfd.fd, KVM_KVMCLOCK_CTRL, 0) < 0 &&
		    errno != EINVAL)
			log_warn("state", "vCPU %u: KVM_KVMCLOCK_CTRL: %s", i,
				 strerror(errno));
}

int vm_state_load_finish(struct vm_state_loader *l, struct err *err)
{
	int ret;

	if (l->done)
		return err_set(err, -EINVAL, "VM state was already loaded");
	ret = check_complete(l, err);
	if (ret)
		return ret;
	l->done = true;
	for (unsigned i = 0; !ret && i < l->vm->nr_vcpus; i++)
		ret = cpu_apply(l, i, err);
	if (!ret)
		ret = kvm_vm_apply(l, err);
	if (!ret)
		ret = uart16550_load(&l->vm->uart, &l->uart, err);
	if (ret)
		return ret;
	if (l->have_cmos) {
		pthread_mutex_lock(&l->vm->sysdev.lock);
		l->vm->sysdev.cmos = l->cmos;
		pthread_mutex_unlock(&l->vm->sysdev.lock);
	}
	kvmclock_ctrl(l);
	return 0;
}
