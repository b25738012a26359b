/*
 * test_dirty.c - dirty-page logging on real KVM, for both backends (the
 * KVM dirty bitmap and the KVM dirty ring), selftest dirty_log_test style.
 *
 * The guest (below, copied into guest RAM) writes the current iteration
 * number, which the host keeps at DT_ITER_GPA, into pseudo-random pages of
 * a 16 MiB test region, forever. The host drives the vCPU through the real
 * VMM path (vm_start / vm_pause, so KVM_EXIT_DIRTY_RING_FULL is handled by
 * vcpu.c) and uses the interface exactly as the engine does: get, then
 * clear the bits it got, then read the pages. The invariant checked after
 * every get, over many iterations: every page whose content changed since
 * the previous read is marked dirty (no missed page).
 *
 * - strict: the vCPU is paused for each get, so "changed" and "dirty" must
 *   be equal, page for page (no missed page, no stale bit);
 * - concurrent: the vCPU keeps running; a page that changed without its
 *   bit may only have been written after the get, so it must be marked by
 *   the next get (the kernel test's rule);
 * - a 4 KiB ring (256 entries) fills up many times between gets: the vCPU
 *   thread harvests on KVM_EXIT_DIRTY_RING_FULL and nothing is lost.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <cmocka.h>

#include "dirty_ring.h"
#include "kvm_test_util.h"
#include "migratable.h"
#include "util.h"

#define DT_ITER_GPA	0x300000ULL		/* iteration number (host writes) */
#define DT_TEST_GPA	0x400000ULL		/* first test page */
#define DT_PAGES	4096u			/* 16 MiB, a power of two */
#define DT_BLOCK_PAGES	(KT_MEM_SIZE / 4096)
#define DT_FIRST_PFN	(DT_TEST_GPA / 4096)

/*
 * The guest: a ring-0 stub that irets to ring 3, where the loop runs (on
 * kvm_pvm, ring-0 code is emulated and every emulated store pushes a ring
 * entry; ring-3 code runs natively and dirties pages through write
 * faults, as a real workload does). Registers: rdi = DT_TEST_GPA, rsi =
 * DT_ITER_GPA, r8 = DT_PAGES - 1, rcx = xorshift64 seed (non-zero), r10 =
 * spin count between stores (paces the guest). Each round picks a page and
 * stores the current iteration number into its first word. It never exits
 * by itself. Assembled with this file; only its bytes are used (position
 * independent).
 */
#define DT_SEL_UDATA	0x20
#define DT_SEL_UCODE	0x28
__asm__(".pushsection .rodata\n"
	".globl dt_guest_start, dt_guest_end\n"
	"dt_guest_start:\n"
	"	pushq $0x23\n"			/* SS: user data | RPL 3 */
	"	pushq $0x8000\n"		/* RSP (unused) */
	"	pushq $0x2\n"			/* RFLAGS: interrupts off */
	"	pushq $0x2b\n"			/* CS: user code | RPL 3 */
	"	leaq 1f(%rip), %rax\n"
	"	pushq %rax\n"
	"	iretq\n"
	"1:	mov %rcx, %rax\n"
	"	shl $13, %rax\n"
	"	xor %rax, %rcx\n"
	"	mov %rcx, %rax\n"
	"	shr $7, %rax\n"
	"	xor %rax, %rcx\n"
	"	mov %rcx, %rax\n"
	"	shl $17, %rax\n"
	"	xor %rax, %rcx\n"
	"	mov %rcx, %rdx\n"
	"	and %r8, %rdx\n"
	"	shl $12, %rdx\n"
	"	mov (%rsi), %rax\n"
	"	mov %rax, (%rdi,%rdx)\n"
	"	mov %r10, %r9\n"
	"2:	dec %r9\n"
	"	jnz 2b\n"
	"	jmp 1b\n"
	"dt_guest_end:\n"
	".popsection\n");
extern const uint8_t dt_guest_start[], dt_guest_end[];

struct dt {
	struct vm vm;
	bool started;
	uint64_t *iter;			/* guest's iteration word */
	uint8_t *pages;			/* host view of the test region */
	uint64_t snap[DT_PAGES];	/* word 0 of each page at the last read */
	bool pending[DT_PAGES];		/* changed unmarked: must be in the next get */
	uint64_t bitmap[DT_BLOCK_PAGES / 64 + 1];
	unsigned changed, dirty;	/* totals over the run */
	unsigned missed, stale;		/* invariant violations */
	bool stop_kicks;
};

static uint64_t dt_word(struct dt *t, unsigned p)
{
	return __atomic_load_n((uint64_t *)(t->pages + (uint64_t)p * 4096), __ATOMIC_RELAXED);
}

static bool dt_bit(struct dt *t, unsigned p)
{
	uint64_t pfn = DT_FIRST_PFN + p;

	return t->bitmap[pfn / 64] >> (pfn % 64) & 1;
}

#define DT_GDT_GPA	0x600ULL

/*
 * Let ring 3 reach the first GiB: the U bit on the test util's page tables,
 * and a GDT with its kernel segments plus user data and 64-bit user code.
 */
static void dt_user_mode(struct dt *t)
{
	struct kvm_sregs sr;
	int fd = t->vm.vcpus[0].kfd.fd;
	uint64_t *pml4, *pdpt, *pd, *old, *gdt;

	assert_int_equal(ioctl(fd, KVM_GET_SREGS, &sr), 0);
	pml4 = gmem_ptr(&t->vm.mem, sr.cr3, 4096);
	assert_non_null(pml4);
	pdpt = gmem_ptr(&t->vm.mem, pml4[0] & ~0xfffULL, 4096);
	assert_non_null(pdpt);
	pd = gmem_ptr(&t->vm.mem, pdpt[0] & ~0xfffULL, 4096);
	assert_non_null(pd);
	pml4[0] |= 4;
	pdpt[0] |= 4;
	for (unsigned i = 0; i < 512; i++)
		pd[i] |= 4;
	old = gmem_ptr(&t->vm.mem, sr.gdt.base, sr.gdt.limit + 1);
	gdt = gmem_ptr(&t->vm.mem, DT_GDT_GPA, 6 * 8);
	assert_non_null(old);
	assert_non_null(gdt);
	memset(gdt, 0, 6 * 8);
	memcpy(gdt, old, sr.gdt.limit + 1 < 32 ? sr.gdt.limit + 1 : 32);
	gdt[DT_SEL_UDATA / 8] = 0x00cff3000000ffffULL;	/* data, DPL 3 */
	gdt[DT_SEL_UCODE / 8] = 0x00affb000000ffffULL;	/* 64-bit code, DPL 3 */
	sr.gdt.base = DT_GDT_GPA;
	sr.gdt.limit = 6 * 8 - 1;
	assert_int_equal(ioctl(fd, KVM_SET_SREGS, &sr), 0);
}

/*
 * A VM with the given backend whose guest spins `delay` rounds between
 * stores; skips the test if KVM lacks the ring.
 */
static struct dt *dt_new(const char *backend, const char *ring_size, uint64_t delay)
{
	struct dt *t = calloc(1, sizeof(*t));
	struct kvm_regs r;
	int ret;

	assert_non_null(t);
	setenv("TERN_DIRTY_LOG", backend, 1);
	if (ring_size)
		setenv("TERN_DIRTY_RING_SIZE", ring_size, 1);
	ret = kt_vm_new(&t->vm, 1);
	unsetenv("TERN_DIRTY_LOG");
	unsetenv("TERN_DIRTY_RING_SIZE");
	if (ret == -ENOTSUP) {
		free(t);
		skip();
	}
	assert_int_equal(ret, 0);
	assert_true(!strcmp(backend, "ring") == (t->vm.dirty_ring != NULL));
	memcpy(gmem_ptr(&t->vm.mem, KT_CODE_ADDR, dt_guest_end - dt_guest_start),
	       dt_guest_start, dt_guest_end - dt_guest_start);
	t->iter = gmem_ptr(&t->vm.mem, DT_ITER_GPA, 8);
	t->pages = gmem_ptr(&t->vm.mem, DT_TEST_GPA, DT_PAGES * 4096ULL);
	assert_non_null(t->iter);
	assert_non_null(t->pages);
	*t->iter = 1;
	assert_int_equal(kt_vcpu_enter(&t->vm, 0, 0), 0);
	dt_user_mode(t);
	assert_int_equal(kt_get_regs(&t->vm, 0, &r), 0);
	r.rdi = DT_TEST_GPA;
	r.rsi = DT_ITER_GPA;
	r.r8 = DT_PAGES - 1;
	r.rcx = 0x9e3779b97f4a7c15ULL;
	r.r10 = delay;
	assert_int_equal(kt_set_regs(&t->vm, 0, &r), 0);
	return t;
}

static void dt_free(struct dt *t)
{
	vm_destroy(&t->vm);
	free(t);
}

static void dt_ok(int ret, const struct err *err, const char *what)
{
	if (ret)
		fail_msg("%s: %s", what, err_msg(err));
}

/* Logging on, and every page re-armed (what the engine's pass 1 does). */
static void dt_start_logging(struct dt *t)
{
	struct err err = { 0 };

	dt_ok(vm_dirty_log_start(&t->vm, &err), &err, "vm_dirty_log_start");
	memset(t->bitmap, 0xff, sizeof(t->bitmap));
	dt_ok(vm_dirty_log_clear(&t->vm, 0, 0, DT_BLOCK_PAGES, t->bitmap, &err), &err,
	      "vm_dirty_log_clear");
	for (unsigned p = 0; p < DT_PAGES; p++)
		t->snap[p] = dt_word(t, p);
}

static void dt_run(struct dt *t)
{
	struct err err = { 0 };

	if (!t->started) {
		dt_ok(vm_start(&t->vm, &err), &err, "vm_start");
		t->started = true;
	} else {
		dt_ok(vm_resume(&t->vm, &err), &err, "vm_resume");
	}
}

static void dt_pause(struct dt *t)
{
	struct err err = { 0 };

	dt_ok(vm_pause(&t->vm, &err), &err, "vm_pause");
	if (t->vm.exit_reason != VM_EXIT_NONE)
		fail_msg("the vCPU stopped: %s", t->vm.exit_msg);
}

/* get, then clear what it returned: the engine's order. */
static void dt_get_clear(struct dt *t)
{
	struct err err = { 0 };

	memset(t->bitmap, 0, sizeof(t->bitmap));
	dt_ok(vm_dirty_log_get(&t->vm, 0, t->bitmap, &err), &err, "vm_dirty_log_get");
	dt_ok(vm_dirty_log_clear(&t->vm, 0, 0, DT_BLOCK_PAGES, t->bitmap, &err), &err,
	      "vm_dirty_log_clear");
}

/* Paused: changed since the last read <=> dirty. */
static void dt_verify_strict(struct dt *t, unsigned iter)
{
	unsigned missed = 0, stale = 0, changed = 0;

	for (unsigned p = 0; p < DT_PAGES; p++) {
		uint64_t v = dt_word(t, p);
		bool ch = v != t->snap[p], d = dt_bit(t, p);

		if (ch && !d && !missed++)
			fprintf(stderr, "# iteration %u: page %u changed %llu -> %llu, not dirty\n",
				iter, p, (unsigned long long)t->snap[p], (unsigned long long)v);
		stale += d && !ch;
		changed += ch;
		t->dirty += d;
		t->snap[p] = v;
	}
	t->changed += changed;
	t->missed += missed;
	/*
	 * Dirty but unchanged is harmless (a page sent twice), but more than
	 * two per vCPU would be a stale bit: only the store in flight at a
	 * pause may be logged and not done yet, or done after the resume with
	 * the iteration number it loaded before the pause.
	 */
	if (stale > 2 * t->vm.nr_vcpus) {
		fprintf(stderr, "# iteration %u: %u pages dirty but unchanged\n", iter, stale);
		t->stale += stale;
	}
}

/* Running: a change without its bit must be marked by the next get. */
static void dt_verify_running(struct dt *t, unsigned iter)
{
	unsigned missed = 0;

	for (unsigned p = 0; p < DT_PAGES; p++) {
		uint64_t v = dt_word(t, p);
		bool ch = v != t->snap[p], d = dt_bit(t, p);

		if (t->pending[p] && !d && !missed++)
			fprintf(stderr, "# iteration %u: page %u changed after get %u, "
				"not dirty in this one\n", iter, p, iter - 1);
		t->pending[p] = ch && !d;
		t->changed += ch;
		t->dirty += d;
		t->snap[p] = v;
	}
	t->missed += missed;
}

/* Totals, then the invariant: nothing missed, no stale bit. */
static void dt_report(struct dt *t, const char *what, unsigned iters)
{
	struct dirty_ring_stats st;

	dirty_ring_get_stats(&t->vm, &st);
	fprintf(stderr, "# %s: %u iterations, %u page changes, %u dirty bits, "
		"%u missed, %u stale; ring %u entries, %llu harvested, %llu ring-full exits\n",
		what, iters, t->changed, t->dirty, t->missed, t->stale, st.entries,
		(unsigned long long)st.harvested, (unsigned long long)st.full_exits);
	assert_int_equal(t->missed, 0);
	assert_int_equal(t->stale, 0);
	assert_true(t->changed > iters);	/* the guest did run */
}

/* Paused for every get: changed <=> dirty. */
static void dt_strict(struct dt *t, unsigned iters, unsigned interval_us)
{
	dt_start_logging(t);
	for (unsigned k = 1; k <= iters; k++) {
		__atomic_store_n(t->iter, k, __ATOMIC_RELAXED);
		dt_run(t);
		usleep(interval_us);
		dt_pause(t);
		dt_get_clear(t);
		dt_verify_strict(t, k);
	}
}

static void dt_throttle(struct dt *t, unsigned pct)
{
	struct err err = { 0 };

	dt_ok(vm_set_throttle(&t->vm, pct, &err), &err, "vm_set_throttle");
}

/*
 * Running during every get (throttled `pct` %, as auto-converge does, if
 * pct); at rest at the end.
 */
static void dt_running(struct dt *t, unsigned iters, unsigned interval_us, unsigned pct)
{
	dt_start_logging(t);
	dt_run(t);
	if (pct)
		dt_throttle(t, pct);
	for (unsigned k = 1; k <= iters; k++) {
		usleep(interval_us);
		dt_get_clear(t);
		dt_verify_running(t, k);
		__atomic_store_n(t->iter, k + 1, __ATOMIC_RELAXED);
	}
	dt_pause(t);
	if (pct)
		dt_throttle(t, 0);
	dt_get_clear(t);
	dt_verify_running(t, iters + 1);
	/* at rest, the last get must account for everything */
	for (unsigned p = 0; p < DT_PAGES; p++)
		t->missed += t->pending[p];
}

/* ~20 us between stores: a part of the 4096 pages changes per get */
#define DT_DELAY_SLOW	20000
/* ~1 us: thousands of pages per get, a 256-entry ring fills many times */
#define DT_DELAY_FAST	500

static void strict_case(const char *backend, const char *ring_size, uint64_t delay,
			unsigned iters, unsigned interval_us)
{
	struct dt *t = dt_new(backend, ring_size, delay);
	char what[64];

	dt_strict(t, iters, interval_us);
	snprintf(what, sizeof(what), "%s%s strict", backend, ring_size ? " (small)" : "");
	dt_report(t, what, iters);
	dt_free(t);
}

static void running_case(const char *backend, const char *ring_size, uint64_t delay,
			 unsigned iters, unsigned interval_us)
{
	struct dt *t = dt_new(backend, ring_size, delay);
	char what[64];

	dt_running(t, iters, interval_us, 0);
	snprintf(what, sizeof(what), "%s%s running", backend, ring_size ? " (small)" : "");
	dt_report(t, what, iters);
	dt_free(t);
}

/*
 * The engine's auto-converge case: the vCPU is throttled (put to sleep
 * outside KVM_RUN most of the time, kicked out of it again and again)
 * while pages are logged, read and re-armed. Nothing may be missed.
 */
static void throttled_case(const char *backend, unsigned pct, unsigned iters,
			   unsigned interval_us)
{
	struct dt *t = dt_new(backend, NULL, DT_DELAY_FAST);
	char what[64];

	dt_running(t, iters, interval_us, pct);
	snprintf(what, sizeof(what), "%s running, throttled %u%%", backend, pct);
	dt_report(t, what, iters);
	dt_free(t);
}

static void test_bitmap_throttled(void **state)
{
	(void)state;
	throttled_case("bitmap", 90, 150, 5000);
}

static void test_bitmap_strict(void **state)
{
	(void)state;
	strict_case("bitmap", NULL, DT_DELAY_SLOW, 40, 20000);
}

static void test_ring_strict(void **state)
{
	(void)state;
	strict_case("ring", NULL, DT_DELAY_SLOW, 40, 20000);
}

static void test_bitmap_running(void **state)
{
	(void)state;
	running_case("bitmap", NULL, DT_DELAY_SLOW, 60, 10000);
}

static void test_ring_running(void **state)
{
	(void)state;
	running_case("ring", NULL, DT_DELAY_SLOW, 60, 10000);
}

/* A 4 KiB ring (256 entries): the vCPU thread harvests many times per get. */
static void ring_full_check(struct dt *t)
{
	struct dirty_ring_stats st;

	dirty_ring_get_stats(&t->vm, &st);
	assert_int_equal(st.entries, 256);
	assert_true(st.full_exits > 0);
}

static void test_ring_full_strict(void **state)
{
	struct dt *t = dt_new("ring", "4096", DT_DELAY_FAST);

	(void)state;
	dt_strict(t, 20, 30000);
	dt_report(t, "ring (256 entries) strict", 20);
	ring_full_check(t);
	dt_free(t);
}

static void test_ring_full_running(void **state)
{
	struct dt *t = dt_new("ring", "4096", DT_DELAY_FAST);

	(void)state;
	dt_running(t, 20, 30000, 0);
	dt_report(t, "ring (256 entries) running", 20);
	ring_full_check(t);
	dt_free(t);
}

/* Signals the vCPU thread every 50 us, as kicks and the throttle do. */
static void *kicker(void *arg)
{
	struct dt *t = arg;

	while (!__atomic_load_n(&t->stop_kicks, __ATOMIC_RELAXED)) {
		pthread_kill(t->vm.vcpus[0].thread, vcpu_kick_signal());
		usleep(50);
	}
	return NULL;
}

/*
 * The same with signals raining on the vCPU thread while it resets its
 * full ring: KVM cuts a reset short when a signal is pending, and the
 * pages it did not reach would stay writable (and their writes unlogged).
 */
static void test_ring_full_signals(void **state)
{
	struct dt *t = dt_new("ring", "4096", DT_DELAY_FAST);
	pthread_t th;

	(void)state;
	dt_start_logging(t);
	dt_run(t);
	assert_int_equal(pthread_create(&th, NULL, kicker, t), 0);
	for (unsigned k = 1; k <= 20; k++) {
		usleep(30000);
		dt_get_clear(t);
		dt_verify_running(t, k);
		__atomic_store_n(t->iter, k + 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&t->stop_kicks, true, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	dt_pause(t);
	dt_get_clear(t);
	dt_verify_running(t, 21);
	for (unsigned p = 0; p < DT_PAGES; p++)
		t->missed += t->pending[p];
	dt_report(t, "ring (256 entries) running, signalled", 20);
	ring_full_check(t);
	dt_free(t);
}

/*
 * The contract both backends keep: logging starts with every page dirty,
 * and a get does not consume (the engine may get twice before it clears).
 */
static void get_keeps_bits(const char *backend)
{
	struct dt *t = dt_new(backend, NULL, DT_DELAY_SLOW);
	struct err err = { 0 };
	uint64_t first[DT_BLOCK_PAGES / 64];
	unsigned n = 0;

	dt_ok(vm_dirty_log_start(&t->vm, &err), &err, "vm_dirty_log_start");
	dt_ok(vm_dirty_log_get(&t->vm, 0, t->bitmap, &err), &err, "vm_dirty_log_get");
	for (unsigned w = 0; w < DT_BLOCK_PAGES / 64; w++)
		assert_true(t->bitmap[w] == ~0ULL);
	dt_start_logging(t);	/* clears all */
	dt_run(t);
	usleep(20000);
	dt_pause(t);
	dt_ok(vm_dirty_log_get(&t->vm, 0, t->bitmap, &err), &err, "vm_dirty_log_get");
	memcpy(first, t->bitmap, sizeof(first));
	dt_run(t);
	usleep(20000);
	dt_pause(t);
	dt_ok(vm_dirty_log_get(&t->vm, 0, t->bitmap, &err), &err, "vm_dirty_log_get");
	for (unsigned w = 0; w < DT_BLOCK_PAGES / 64; w++) {
		assert_true((first[w] & ~t->bitmap[w]) == 0);
		n += __builtin_popcountll(first[w]);
	}
	assert_true(n > 0);
	/* cleared bits are gone; nothing ran, so nothing is dirty */
	dt_ok(vm_dirty_log_clear(&t->vm, 0, 0, DT_BLOCK_PAGES, t->bitmap, &err), &err,
	      "vm_dirty_log_clear");
	memset(t->bitmap, 0, sizeof(t->bitmap));
	dt_ok(vm_dirty_log_get(&t->vm, 0, t->bitmap, &err), &err, "vm_dirty_log_get");
	for (unsigned w = 0; w < DT_BLOCK_PAGES / 64; w++)
		assert_true(t->bitmap[w] == 0);
	vm_dirty_log_stop(&t->vm);
	dt_free(t);
}

static void test_bitmap_get_keeps_bits(void **state)
{
	(void)state;
	get_keeps_bits("bitmap");
}

static void test_ring_get_keeps_bits(void **state)
{
	(void)state;
	get_keeps_bits("ring");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bitmap_get_keeps_bits),
		cmocka_unit_test(test_ring_get_keeps_bits),
		cmocka_unit_test(test_bitmap_strict),
		cmocka_unit_test(test_ring_strict),
		cmocka_unit_test(test_bitmap_running),
		cmocka_unit_test(test_ring_running),
		cmocka_unit_test(test_ring_full_strict),
		cmocka_unit_test(test_ring_full_running),
		cmocka_unit_test(test_ring_full_signals),
		cmocka_unit_test(test_bitmap_throttled),
	};
	const char *no_kvm = kt_kvm_unavailable();

	if (no_kvm) {
		fprintf(stderr, "\n*** SKIP: %s ***\n\n", no_kvm);
		printf("1..0 # SKIP %s\n", no_kvm);
		return 0;
	}
	return cmocka_run_group_tests_name("kvm-dirty", tests, NULL, NULL);
}
