/*
 * test_state.c - vm_state_save/load on real KVM, one vCPU (selftest
 * state_test style): run the test guest to a sync point, park it, save,
 * build a second VM in this process, copy RAM, load, compare everything
 * read back, run it on and check the counters continue. Also: the clock
 * and TSC policy, MSR coverage, and refusals (missing, corrupted,
 * truncated sections, CPUID mismatch) that must leave the target untouched.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <cmocka.h>

#include "kvm_test_util.h"
#include "util.h"

#define RBX0		0x5000
#define SYNCS_SRC	5
#define SYNCS_DST	3

#define APIC_REG_TPR	0x80
#define APIC_REG_SVR	0xf0
#define APIC_REG_LVTT	0x320
#define APIC_REG_TMCCT	0x390

/* Field ids of the "cpu" section (vmm/state.c, docs/vm-state.md). */
#define F_REGS		1
#define F_XSAVE_LEN	5
#define F_EVENTS	10
#define F_MP_STATE	11
#define F_NMSRS		12
#define F_MSR_INDEX	13

static const struct {
	uint32_t index;
	uint64_t value;
} test_msrs[] = {
	{ 0x174, 0x10 },				/* SYSENTER_CS */
	{ 0x175, 0xffff888000001000ULL },		/* SYSENTER_ESP */
	{ 0x176, 0xffffffff81001000ULL },		/* SYSENTER_EIP */
	{ 0xc0000081, 0x0023001000000000ULL },		/* STAR */
	{ 0xc0000082, 0xffffffff81002000ULL },		/* LSTAR */
	{ 0xc0000083, 0xffffffff81003000ULL },		/* CSTAR */
	{ 0xc0000084, 0x47700 },			/* SFMASK */
	{ 0xc0000102, 0xffff888000004000ULL },		/* KERNEL_GS_BASE */
	{ 0x277, 0x0007010600070106ULL },		/* PAT */
	{ 0x2ff, 0xc06 },				/* MTRR default type */
	{ 0x250, 0x0606060606060606ULL },		/* MTRR fix 64K */
	{ 0x200, 0x6 },					/* MTRR phys base 0 */
};

/* MSRs the save must cover whenever this host's KVM can read them. */
static const uint32_t must_save[] = {
	0x10, 0x11, 0x12, 0x4b564d00, 0x4b564d01, 0x4b564d02, 0x4b564d03,
	0x4b564d04, 0x6e0, 0x277, 0x1a0, 0x174, 0x175, 0x176, 0xc0000081,
	0xc0000082, 0xc0000083, 0xc0000084, 0xc0000102, 0x2ff, 0x200, 0x250,
};

/* ---- source preparation ---- */

static void set_lapic(struct vm *vm, unsigned i)
{
	struct kvm_lapic_state l;
	uint32_t v;
	int fd = vm->vcpus[i].kfd.fd;

	assert_int_equal(ioctl(fd, KVM_GET_LAPIC, &l), 0);
	v = 0x10;
	memcpy(&l.regs[APIC_REG_TPR], &v, 4);
	v = 0x1ff;
	memcpy(&l.regs[APIC_REG_SVR], &v, 4);
	v = 0x100ec;			/* masked, vector 0xec */
	memcpy(&l.regs[APIC_REG_LVTT], &v, 4);
	assert_int_equal(ioctl(fd, KVM_SET_LAPIC, &l), 0);
}

static void set_fpu_debug(struct vm *vm, unsigned i)
{
	struct kvm_debugregs d;
	struct kvm_fpu f;
	int fd = vm->vcpus[i].kfd.fd;

	assert_int_equal(ioctl(fd, KVM_GET_FPU, &f), 0);
	for (unsigned k = 0; k < 16; k++)
		memset(f.xmm[k], 0xa0 + k + i, 16);
	f.mxcsr = 0x1f80;
	assert_int_equal(ioctl(fd, KVM_SET_FPU, &f), 0);
	assert_int_equal(ioctl(fd, KVM_GET_DEBUGREGS, &d), 0);
	d.db[0] = 0x1000 + i;
	d.db[3] = 0x3000;
	assert_int_equal(ioctl(fd, KVM_SET_DEBUGREGS, &d), 0);
}

static void set_msrs(struct vm *vm, unsigned i)
{
	for (size_t k = 0; k < ARRAY_SIZE(test_msrs); k++)
		assert_int_equal(kt_set_msr(vm, i, test_msrs[k].index,
					    test_msrs[k].value + (k == 4 ? i : 0)), 0);
}

static void set_devices(struct vm *vm)
{
	const uint8_t rx[2] = { 'x', 'y' };

	uart16550_write(&vm->uart, 3, 0x83);	/* DLAB */
	uart16550_write(&vm->uart, 0, 0x01);	/* 115200 */
	uart16550_write(&vm->uart, 1, 0x00);
	uart16550_write(&vm->uart, 3, 0x03);	/* 8N1 */
	uart16550_write(&vm->uart, 7, 0x5a);	/* scratch */
	uart16550_write(&vm->uart, 2, 0x01);	/* FCR: FIFOs on */
	uart16550_write(&vm->uart, 1, 0x01);	/* IER: rx data */
	assert_int_equal(uart16550_receive(&vm->uart, rx, 2), 2);
	vm->sysdev.cmos.index = 0x0f;
	vm->sysdev.cmos.nvram[0x40] = 0xab;
}

/* A 1-vCPU source with distinctive state, parked after SYNCS_SRC syncs. */
static void source_new(struct vm *src)
{
	assert_int_equal(kt_vm_new(src, 1), 0);
	assert_int_equal(kt_vcpu_enter(src, 0, RBX0), 0);
	set_lapic(src, 0);
	set_fpu_debug(src, 0);
	set_msrs(src, 0);
	set_devices(src);
	assert_int_equal(kt_run_syncs(src, 0, SYNCS_SRC), 0);
	assert_int_equal(kt_park(src, 0), 0);
	assert_int_equal(*kt_counter(src, 0), SYNCS_SRC);
}

static void save_ok(struct vm *vm, struct mig_stream *out)
{
	struct err err = { 0 };
	int ret = kt_save(vm, out, &err);

	if (ret)
		fail_msg("save: %s", err_msg(&err));
}

static void load_ok(struct vm *vm, const struct mig_stream *saved)
{
	struct err err = { 0 };
	size_t len;
	const uint8_t *data = mig_stream_data(saved, &len);
	int ret = kt_load(vm, data, len, &err);

	if (ret)
		fail_msg("load: %s", err_msg(&err));
}

/* ---- comparisons ---- */

struct cpu_snap {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_lapic_state lapic;
	struct kvm_debugregs dregs;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_xcrs xcrs;
	uint8_t xsave[16384];
};

static void snap(struct vm *vm, unsigned i, struct cpu_snap *s)
{
	int fd = vm->vcpus[i].kfd.fd;
	int xs = ioctl(vm->kvm.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	memset(s, 0, sizeof(*s));
	assert_int_equal(ioctl(fd, KVM_GET_REGS, &s->regs), 0);
	assert_int_equal(ioctl(fd, KVM_GET_SREGS, &s->sregs), 0);
	assert_int_equal(ioctl(fd, KVM_GET_LAPIC, &s->lapic), 0);
	assert_int_equal(ioctl(fd, KVM_GET_DEBUGREGS, &s->dregs), 0);
	assert_int_equal(ioctl(fd, KVM_GET_VCPU_EVENTS, &s->events), 0);
	assert_int_equal(ioctl(fd, KVM_GET_MP_STATE, &s->mp), 0);
	assert_int_equal(ioctl(fd, KVM_GET_XCRS, &s->xcrs), 0);
	assert_true(xs <= (int)sizeof(s->xsave));
	assert_int_equal(ioctl(fd, xs >= 4096 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE,
			       s->xsave), 0);
}

static void assert_same_cpu(const struct cpu_snap *a, const struct cpu_snap *b)
{
	struct kvm_lapic_state la = a->lapic, lb = b->lapic;
	struct kvm_vcpu_events ea = a->events, eb = b->events;

	assert_memory_equal(&a->regs, &b->regs, sizeof(a->regs));
	assert_memory_equal(&a->sregs, &b->sregs, sizeof(a->sregs));
	/* the timer's current count is computed at read time */
	memset(&la.regs[APIC_REG_TMCCT], 0, 4);
	memset(&lb.regs[APIC_REG_TMCCT], 0, 4);
	assert_memory_equal(&la, &lb, sizeof(la));
	assert_memory_equal(&a->dregs, &b->dregs, sizeof(a->dregs));
	ea.flags = eb.flags = 0;
	assert_memory_equal(&ea, &eb, sizeof(ea));
	assert_int_equal(a->mp.mp_state, b->mp.mp_state);
	assert_memory_equal(&a->xcrs, &b->xcrs, sizeof(a->xcrs));
	assert_memory_equal(a->xsave, b->xsave, sizeof(a->xsave));
}

/* The MSR indexes the saved "cpu" section of vCPU i carries. */
static unsigned saved_msrs(const struct mig_stream *saved, unsigned i,
			   uint32_t *idx, unsigned max)
{
	struct kt_sections ss;
	struct kt_section *s;
	struct err err = { 0 };
	const uint8_t *data;
	size_t len, off;
	uint32_t flen, n;

	data = mig_stream_data(saved, &len);
	assert_int_equal(kt_split(data, len, &ss, &err), 0);
	s = kt_find(&ss, VM_STATE_SEC_CPU, i);
	assert_non_null(s);
	assert_true(kt_tlv_find(s->data, s->len, F_NMSRS, &off, &flen));
	memcpy(&n, s->data + off, 4);
	assert_true(n <= max);
	assert_true(kt_tlv_find(s->data, s->len, F_MSR_INDEX, &off, &flen));
	memcpy(idx, s->data + off, n * 4);
	kt_sections_free(&ss);
	return n;
}

/* Every saved MSR but the TSC reads back with the value the source had. */
static void assert_same_msrs(struct vm *a, struct vm *b, unsigned i,
			     const uint32_t *idx, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		uint64_t va, vb;

		if (idx[k] == 0x10)
			continue;
		assert_int_equal(kt_get_msr(a, i, idx[k], &va), 0);
		assert_int_equal(kt_get_msr(b, i, idx[k], &vb), 0);
		if (va != vb)
			fail_msg("vCPU %u MSR 0x%x: source 0x%llx, destination 0x%llx",
				 i, idx[k], (unsigned long long)va, (unsigned long long)vb);
	}
}

/* ---- (a) round trip ---- */

static void test_roundtrip(void **state)
{
	struct vm src, dst;
	struct mig_stream saved;
	struct cpu_snap *before = calloc(1, sizeof(*before));
	struct cpu_snap *after = calloc(1, sizeof(*after));
	uint32_t idx[256];
	unsigned n;

	source_new(&src);
	snap(&src, 0, before);
	save_ok(&src, &saved);
	assert_int_equal(kt_vm_new(&dst, 1), 0);
	kt_copy_ram(&dst, &src);
	load_ok(&dst, &saved);

	snap(&dst, 0, after);
	assert_same_cpu(before, after);
	assert_int_equal(before->regs.rbx, RBX0 + SYNCS_SRC);
	n = saved_msrs(&saved, 0, idx, ARRAY_SIZE(idx));
	assert_true(n > ARRAY_SIZE(test_msrs));
	assert_same_msrs(&src, &dst, 0, idx, n);
	for (size_t k = 0; k < ARRAY_SIZE(test_msrs); k++) {
		uint64_t v;

		assert_int_equal(kt_get_msr(&dst, 0, test_msrs[k].index, &v), 0);
		assert_int_equal(v, test_msrs[k].value);
	}
	assert_memory_equal(&dst.uart.s, &src.uart.s, sizeof(src.uart.s));
	assert_int_equal(dst.uart.s.rx_len, 2);
	assert_memory_equal(&dst.sysdev.cmos, &src.sysdev.cmos, sizeof(src.sysdev.cmos));

	/* the guest goes on from where it was */
	assert_int_equal(kt_run_syncs(&dst, 0, SYNCS_DST), 0);
	assert_int_equal(*kt_counter(&dst, 0), SYNCS_SRC + SYNCS_DST);
	assert_int_equal(kt_get_regs(&dst, 0, &after->regs), 0);
	assert_int_equal(after->regs.rbx, RBX0 + SYNCS_SRC + SYNCS_DST);
	assert_int_equal(*kt_counter(&src, 0), SYNCS_SRC);

	mig_stream_fini(&saved);
	free(before);
	free(after);
	vm_destroy(&dst);
	vm_destroy(&src);
}

/* Every must_save MSR this host can read is in the saved list. */
static void test_msr_coverage(void **state)
{
	struct vm src;
	struct mig_stream saved;
	uint32_t idx[256];
	unsigned n, covered = 0;

	source_new(&src);
	save_ok(&src, &saved);
	n = saved_msrs(&saved, 0, idx, ARRAY_SIZE(idx));
	for (size_t k = 0; k < ARRAY_SIZE(must_save); k++) {
		uint64_t v;
		bool found = false;

		if (kt_get_msr(&src, 0, must_save[k], &v)) {
			fprintf(stderr, "# MSR 0x%x not readable on this host\n",
				must_save[k]);
			continue;
		}
		for (unsigned j = 0; j < n; j++)
			found |= idx[j] == must_save[k];
		if (!found)
			fail_msg("MSR 0x%x is readable but was not saved", must_save[k]);
		covered++;
	}
	fprintf(stderr, "# %u MSRs saved, %u of %zu required ones readable here\n",
		n, covered, ARRAY_SIZE(must_save));
	mig_stream_fini(&saved);
	vm_destroy(&src);
}

/* Does this host's KVM honour a host write of IA32_TSC? (kvm_pvm: no) */
static bool tsc_writable(struct vm *vm)
{
	uint64_t v = 0;

	if (kt_set_msr(vm, 0, 0x10, 1000000) || kt_get_msr(vm, 0, 0x10, &v))
		return false;
	return v < 1000000 + 10000000000ULL;
}

/*
 * Policy (docs/vm-state.md): kvmclock and the TSC resume from their saved
 * values, so across a stop the guest's clock neither jumps nor goes back.
 * Here "downtime" is a 200 ms sleep between save and load. Where KVM
 * ignores TSC writes (kvm_pvm) the TSC runs on with the host's: it then
 * advances by the downtime, still no more.
 */
static void test_clock_tsc(void **state)
{
	struct vm src, dst;
	struct mig_stream saved;
	struct kvm_clock_data c0 = { 0 }, c1 = { 0 };
	uint64_t t0, t1, h0, h1, khz, clock_ns, tsc_ns;

	source_new(&src);
	khz = (uint64_t)ioctl(src.vcpus[0].kfd.fd, KVM_GET_TSC_KHZ, 0);
	assert_true(khz > 0);
	h0 = time_now_ns();
	assert_int_equal(ioctl(src.kvm.vm_fd, KVM_GET_CLOCK, &c0), 0);
	assert_int_equal(kt_get_msr(&src, 0, 0x10, &t0), 0);
	save_ok(&src, &saved);
	usleep(200 * 1000);
	assert_int_equal(kt_vm_new(&dst, 1), 0);
	kt_copy_ram(&dst, &src);
	load_ok(&dst, &saved);
	assert_int_equal(ioctl(dst.kvm.vm_fd, KVM_GET_CLOCK, &c1), 0);
	assert_int_equal(kt_get_msr(&dst, 0, 0x10, &t1), 0);
	h1 = time_now_ns();

	assert_true(c1.clock >= c0.clock);		/* never backwards */
	assert_true(t1 >= t0);
	clock_ns = c1.clock - c0.clock;
	tsc_ns = (t1 - t0) * 1000000ULL / khz;
	fprintf(stderr, "# host %.1f ms, guest kvmclock +%.3f ms, guest TSC +%.3f ms\n",
		(h1 - h0) / 1e6, clock_ns / 1e6, tsc_ns / 1e6);
	assert_true(clock_ns <= h1 - h0);		/* no forward jump */
	assert_true(tsc_ns <= h1 - h0);
	assert_true(clock_ns < 100 * 1000000ULL);	/* frozen over the sleep */
	if (tsc_writable(&dst))
		assert_true(tsc_ns < 100 * 1000000ULL);
	else
		fprintf(stderr, "# this host's KVM ignores IA32_TSC writes: "
			"the guest TSC follows the host's\n");

	mig_stream_fini(&saved);
	vm_destroy(&dst);
	vm_destroy(&src);
}

/* ---- (c) refusals leave the target untouched ---- */

struct refusal_fixture {
	struct vm src, dst;
	struct mig_stream saved;
	struct kt_sections ss;
	struct kvm_regs dst_regs;	/* before any load attempt */
};

static int refusal_setup(void **state)
{
	struct refusal_fixture *f;
	struct err err = { 0 };
	const uint8_t *data;
	size_t len;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	source_new(&f->src);
	save_ok(&f->src, &f->saved);
	data = mig_stream_data(&f->saved, &len);
	assert_int_equal(kt_split(data, len, &f->ss, &err), 0);
	assert_int_equal(f->ss.n, 4);
	assert_int_equal(kt_vm_new(&f->dst, 1), 0);
	kt_copy_ram(&f->dst, &f->src);
	assert_int_equal(kt_get_regs(&f->dst, 0, &f->dst_regs), 0);
	*state = f;
	return 0;
}

static int refusal_teardown(void **state)
{
	struct refusal_fixture *f = *state;

	if (!f)
		return 0;
	kt_sections_free(&f->ss);
	mig_stream_fini(&f->saved);
	vm_destroy(&f->dst);
	vm_destroy(&f->src);
	free(f);
	return 0;
}

static void assert_untouched(struct refusal_fixture *f)
{
	struct kvm_regs r;

	assert_int_equal(kt_get_regs(&f->dst, 0, &r), 0);
	assert_memory_equal(&r, &f->dst_regs, sizeof(r));
}

static void expect_refusal(struct refusal_fixture *f, struct kt_section *s,
			   size_t n, int skip, const char *msg)
{
	struct err err = { 0 };
	int ret = kt_load_sections(&f->dst, s, n, skip, &err);

	if (ret >= 0)
		fail_msg("expected a refusal mentioning \"%s\", got success", msg);
	if (!strstr(err.msg, msg))
		fail_msg("expected \"%s\" in \"%s\"", msg, err.msg);
	fprintf(stderr, "# refused: %s\n", err.msg);
	assert_untouched(f);
}

static void test_missing(void **state)
{
	struct refusal_fixture *f = *state;
	static const char *const want[] = {
		"no 'cpu' section for vCPU 0", "no 'kvm-vm' section",
		"no 'uart16550@0x3f8' section",
	};

	for (size_t k = 0; k < ARRAY_SIZE(want); k++) {
		const char *id = k == 0 ? VM_STATE_SEC_CPU :
				 k == 1 ? VM_STATE_SEC_KVM_VM : VM_STATE_SEC_UART;
		struct kt_section *s = kt_find(&f->ss, id, 0);

		assert_non_null(s);
		expect_refusal(f, f->ss.s, f->ss.n, (int)(s - f->ss.s), want[k]);
	}
}

/* A copy of the sections with one replaced by (data, len, info). */
struct variant {
	struct kt_section s[8];
	size_t n;
	uint8_t *buf;
};

static struct kt_section *variant_new(struct variant *v, struct refusal_fixture *f,
				      const char *idstr)
{
	struct kt_section *t = NULL;

	memset(v, 0, sizeof(*v));
	v->n = f->ss.n;
	memcpy(v->s, f->ss.s, v->n * sizeof(v->s[0]));
	for (size_t i = 0; i < v->n; i++)
		if (!strcmp(v->s[i].info.idstr, idstr))
			t = &v->s[i];
	assert_non_null(t);
	v->buf = malloc(t->len);
	memcpy(v->buf, t->data, t->len);
	t->data = v->buf;
	return t;
}

/* Overwrite the first bytes of field `id` in section `idstr`. */
static void expect_field_refusal(struct refusal_fixture *f, const char *idstr,
				 uint16_t id, size_t at, const void *val,
				 size_t n, const char *msg)
{
	struct variant v;
	struct kt_section *t = variant_new(&v, f, idstr);
	size_t off;
	uint32_t flen;

	assert_true(kt_tlv_find(t->data, t->len, id, &off, &flen));
	assert_true(at + n <= flen);
	memcpy(t->data + off + at, val, n);
	expect_refusal(f, v.s, v.n, -1, msg);
	free(v.buf);
}

static void expect_cut_refusal(struct refusal_fixture *f, size_t keep,
			       const char *msg)
{
	struct variant v;
	struct kt_section *t = variant_new(&v, f, VM_STATE_SEC_CPU);

	assert_true(keep < t->len);
	t->len = keep;
	expect_refusal(f, v.s, v.n, -1, msg);
	free(v.buf);
}

static void test_corrupt_fields(void **state)
{
	struct refusal_fixture *f = *state;
	uint32_t mp = 77, many = 100000, xlen = 8192, bogus_msr = 0x12345678;
	uint32_t bad_flags = 0x80000000u;
	uint8_t rx_len = 200;
	uint32_t chip = 0;

	expect_field_refusal(f, VM_STATE_SEC_CPU, F_MP_STATE, 0, &mp, 4,
			     "unknown MP state 77");
	expect_field_refusal(f, VM_STATE_SEC_CPU, F_NMSRS, 0, &many, 4,
			     "100000 MSRs, at most");
	expect_field_refusal(f, VM_STATE_SEC_CPU, F_XSAVE_LEN, 0, &xlen, 4,
			     "XSAVE area is 8192 bytes");
	expect_field_refusal(f, VM_STATE_SEC_CPU, F_MSR_INDEX, 0, &bogus_msr, 4,
			     "MSR 0x12345678 is not supported");
	expect_field_refusal(f, VM_STATE_SEC_CPU, F_EVENTS,
			     offsetof(struct kvm_vcpu_events, flags), &bad_flags, 4,
			     "unknown vCPU event flags");
	/* kvm-vm field 2 = PIC slave, whose chip_id must be 1 */
	expect_field_refusal(f, VM_STATE_SEC_KVM_VM, 2, 0, &chip, 4, "irqchip ids");
	/* uart field 11 = rx_len */
	expect_field_refusal(f, VM_STATE_SEC_UART, 11, 0, &rx_len, 1, "rx_len 200");
}

static void test_corrupt_framing(void **state)
{
	struct refusal_fixture *f = *state;
	struct kt_section *t;
	struct variant v;
	uint16_t id99 = 99;
	uint32_t len143 = 143;

	t = kt_find(&f->ss, VM_STATE_SEC_CPU, 0);
	expect_cut_refusal(f, 0, "required field 'regs' missing");
	expect_cut_refusal(f, t->len - 1, "vCPU 0");
	expect_cut_refusal(f, t->len / 2, "vCPU 0");
	/* regs TLV: id 1 at offset 0, length at 3 */
	t = variant_new(&v, f, VM_STATE_SEC_CPU);
	memcpy(t->data, &id99, 2);
	expect_refusal(f, v.s, v.n, -1, "unknown field id 99");
	free(v.buf);
	t = variant_new(&v, f, VM_STATE_SEC_CPU);
	memcpy(t->data + 3, &len143, 4);
	expect_refusal(f, v.s, v.n, -1, "vCPU 0");
	free(v.buf);
}

static void test_bad_sections(void **state)
{
	struct refusal_fixture *f = *state;
	struct kt_section s[8];
	size_t n = f->ss.n;

	/* a vCPU twice */
	memcpy(s, f->ss.s, n * sizeof(s[0]));
	s[n] = *kt_find(&f->ss, VM_STATE_SEC_CPU, 0);
	expect_refusal(f, s, n + 1, -1, "vCPU 0: state sent twice");
	/* unknown idstr */
	memcpy(s, f->ss.s, n * sizeof(s[0]));
	s[n] = s[0];
	strcpy(s[n].info.idstr, "bogus@0x99");
	expect_refusal(f, s, n + 1, -1, "unknown section 'bogus@0x99'");
	/* from a newer writer */
	memcpy(s, f->ss.s, n * sizeof(s[0]));
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s[i].info.idstr, VM_STATE_SEC_KVM_VM))
			s[i].info.version = s[i].info.min_version = 2;
	expect_refusal(f, s, n, -1, "needs a reader of version >= 2");
	/* a vCPU this VM does not have */
	memcpy(s, f->ss.s, n * sizeof(s[0]));
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s[i].info.idstr, VM_STATE_SEC_CPU))
			s[i].info.instance_id = 5;
	expect_refusal(f, s, n, -1, "vCPU 5: this VM has only 1 vCPUs");
}

static void test_truncated_stream(void **state)
{
	struct refusal_fixture *f = *state;
	const uint8_t *data;
	size_t len;

	data = mig_stream_data(&f->saved, &len);
	const size_t cuts[] = { 0, 16, 40, len / 3, len / 2, len - 17, len - 1 };

	for (size_t k = 0; k < ARRAY_SIZE(cuts); k++) {
		struct err err = { 0 };

		assert_true(kt_load(&f->dst, data, cuts[k], &err) < 0);
		fprintf(stderr, "# cut at %zu of %zu: %s\n", cuts[k], len, err.msg);
		assert_untouched(f);
	}
}

/* After all the refusals the same target still loads the good stream. */
static void test_good_after_refusals(void **state)
{
	struct refusal_fixture *f = *state;
	struct kvm_regs r;

	load_ok(&f->dst, &f->saved);
	assert_int_equal(kt_get_regs(&f->dst, 0, &r), 0);
	assert_int_equal(r.rbx, RBX0 + SYNCS_SRC);
	assert_int_equal(kt_run_syncs(&f->dst, 0, 1), 0);
	assert_int_equal(*kt_counter(&f->dst, 0), SYNCS_SRC + 1);
}

/* ---- (d) CPUID ---- */

#define F_NCPUID	15
#define F_CPUID		16

/* Offset of leaf `fn`'s entry in the "cpu" section's CPUID field. */
static size_t cpuid_entry_off(struct kt_section *t, uint32_t fn)
{
	struct kvm_cpuid_entry2 e;
	size_t off;
	uint32_t flen;

	assert_true(kt_tlv_find(t->data, t->len, F_CPUID, &off, &flen));
	for (size_t p = 0; p + sizeof(e) <= flen; p += sizeof(e)) {
		memcpy(&e, t->data + off + p, sizeof(e));
		if (e.function == fn)
			return off + p;
	}
	fail_msg("leaf 0x%x not saved", fn);
	return 0;
}

/* The source's CPUID (as saved) differs from what this VM was given. */
static void test_cpuid_mismatch(void **state)
{
	struct refusal_fixture *f = *state;
	struct kt_section *t;
	struct variant v;
	size_t off;
	uint32_t flen, n;

	t = variant_new(&v, f, VM_STATE_SEC_CPU);
	t->data[cpuid_entry_off(t, 1) + offsetof(struct kvm_cpuid_entry2, ecx)] ^= 1;
	expect_refusal(f, v.s, v.n, -1, "vCPU 0: CPUID leaf 0x1 index 0 differs");
	free(v.buf);

	t = variant_new(&v, f, VM_STATE_SEC_CPU);
	assert_true(kt_tlv_find(t->data, t->len, F_NCPUID, &off, &flen));
	memcpy(&n, t->data + off, 4);
	n--;
	memcpy(t->data + off, &n, 4);
	expect_refusal(f, v.s, v.n, -1, "is in this VM but not on the source");
	free(v.buf);

	t = variant_new(&v, f, VM_STATE_SEC_CPU);
	off = cpuid_entry_off(t, 0x80000001);
	memset(t->data + off, 0xee, 4);		/* function 0xeeeeeeee */
	expect_refusal(f, v.s, v.n, -1,
		       "CPUID leaf 0xeeeeeeee index 0 is on the source but not in this VM");
	free(v.buf);
}

/* The destination VM's own CPUID was changed (KVM_SET_CPUID2) before load. */
static void test_cpuid_set_differs(void **state)
{
	struct refusal_fixture *f = *state;
	struct kvm_cpuid2 *c;
	struct err err = { 0 };
	const uint8_t *data;
	size_t len;
	bool found = false;
	int fd;

	fd = f->dst.vcpus[0].kfd.fd;
	c = calloc(1, sizeof(*c) + 256 * sizeof(c->entries[0]));
	c->nent = 256;
	assert_int_equal(ioctl(fd, KVM_GET_CPUID2, c), 0);
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0x80000001)
			c->entries[i].ecx ^= 1;		/* LAHF/SAHF */
	assert_int_equal(ioctl(fd, KVM_SET_CPUID2, c), 0);
	c->nent = 256;
	assert_int_equal(ioctl(fd, KVM_GET_CPUID2, c), 0);
	data = mig_stream_data(&f->saved, &len);
	for (unsigned i = 0; i < c->nent; i++)
		found |= c->entries[i].function == 0x80000001;
	assert_true(found);
	assert_true(kt_load(&f->dst, data, len, &err) < 0);
	fprintf(stderr, "# refused: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "CPUID leaf 0x80000001 index 0 differs"));
	assert_untouched(f);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_msr_coverage),
		cmocka_unit_test(test_clock_tsc),
		cmocka_unit_test_setup_teardown(test_missing, refusal_setup,
						refusal_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_fields, refusal_setup,
						refusal_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_framing, refusal_setup,
						refusal_teardown),
		cmocka_unit_test_setup_teardown(test_bad_sections, refusal_setup,
						refusal_teardown),
		cmocka_unit_test_setup_teardown(test_truncated_stream, refusal_setup,
						refusal_teardown),
		cmocka_unit_test_setup_teardown(test_good_after_refusals, refusal_setup,
						refusal_teardown),
		cmocka_unit_test_setup_teardown(test_cpuid_mismatch, refusal_setup,
						refusal_teardown),
		cmocka_unit_test_setup_teardown(test_cpuid_set_differs, refusal_setup,
						refusal_teardown),
	};
	const char *no_kvm = kt_kvm_unavailable();

	if (no_kvm) {
		fprintf(stderr, "\n*** SKIP: %s ***\n\n", no_kvm);
		printf("1..0 # SKIP %s\n", no_kvm);
		return 0;
	}
	return cmocka_run_group_tests_name("kvm-state", tests, NULL, NULL);
}
