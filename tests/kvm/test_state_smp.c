/*
 * test_state_smp.c - vm_state_save/load with several vCPUs, and through the
 * real VMM path: vCPU threads started by vm_start(), stopped by vm_pause()
 * (KVM_RUN left with EINTR), saved, loaded into a second VM, vm_start()ed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "kvm_test_util.h"
#include "util.h"

#define MSR_LSTAR	0xc0000082

static void save_ok(struct vm *vm, struct mig_stream *out)
{
	struct err err = { 0 };

	if (kt_save(vm, out, &err))
		fail_msg("save: %s", err_msg(&err));
}

static void load_ok(struct vm *vm, const struct mig_stream *saved)
{
	struct err err = { 0 };
	size_t len;
	const uint8_t *data = mig_stream_data(saved, &len);

	if (kt_load(vm, data, len, &err))
		fail_msg("load: %s", err_msg(&err));
}

static uint32_t mp_state(struct vm *vm, unsigned i)
{
	struct kvm_mp_state mp;

	assert_int_equal(ioctl(vm->vcpus[i].kfd.fd, KVM_GET_MP_STATE, &mp), 0);
	return mp.mp_state;
}

/*
 * (b) vCPU 0 and 1 run the loop from different registers for different
 * numbers of syncs; vCPU 2 is left halted. Each comes back as it was.
 */
static void test_smp_roundtrip(void **state)
{
	static const uint64_t rbx0[2] = { 100, 5000 };
	static const unsigned syncs[2] = { 4, 7 }, more[2] = { 2, 3 };
	struct kvm_mp_state halted = { .mp_state = KVM_MP_STATE_HALTED };
	struct kvm_regs before[3], after;
	struct mig_stream saved;
	struct vm src, dst;
	uint64_t v;

	assert_int_equal(kt_vm_new(&src, 3), 0);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(kt_vcpu_enter(&src, i, rbx0[i]), 0);
		assert_int_equal(kt_set_msr(&src, i, MSR_LSTAR,
					    0xffffffff81000000ULL + 0x1000 * i), 0);
		assert_int_equal(kt_run_syncs(&src, i, syncs[i]), 0);
		assert_int_equal(kt_park(&src, i), 0);
	}
	assert_int_equal(ioctl(src.vcpus[2].kfd.fd, KVM_SET_MP_STATE, &halted), 0);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(kt_get_regs(&src, i, &before[i]), 0);
	assert_int_not_equal(before[0].rbx, before[1].rbx);
	save_ok(&src, &saved);

	assert_int_equal(kt_vm_new(&dst, 3), 0);
	assert_int_equal(mp_state(&dst, 2), KVM_MP_STATE_UNINITIALIZED);
	kt_copy_ram(&dst, &src);
	load_ok(&dst, &saved);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(kt_get_regs(&dst, i, &after), 0);
		assert_memory_equal(&after, &before[i], sizeof(after));
	}
	assert_int_equal(mp_state(&dst, 2), KVM_MP_STATE_HALTED);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(mp_state(&dst, i), KVM_MP_STATE_RUNNABLE);
		assert_int_equal(kt_get_msr(&dst, i, MSR_LSTAR, &v), 0);
		assert_int_equal(v, 0xffffffff81000000ULL + 0x1000 * i);
		assert_int_equal(kt_run_syncs(&dst, i, more[i]), 0);
		assert_int_equal(*kt_counter(&dst, i), syncs[i] + more[i]);
		assert_int_equal(kt_get_regs(&dst, i, &after), 0);
		assert_int_equal(after.rbx, rbx0[i] + syncs[i] + more[i]);
	}
	mig_stream_fini(&saved);
	vm_destroy(&dst);
	vm_destroy(&src);
}

/* Wait (up to 20 s) until vCPU 0's counter reaches `n`. */
static bool wait_counter(struct vm *vm, uint64_t n)
{
	volatile uint64_t *c = kt_counter(vm, 0);

	for (int k = 0; k < 20000; k++) {
		if (*c >= n)
			return true;
		usleep(1000);
	}
	return false;
}

/* rbx and the memory counter move together: rbx0 + count (+1 mid-loop). */
static void assert_consistent(struct vm *vm, uint64_t rbx0)
{
	struct kvm_regs r;
	uint64_t c = *kt_counter(vm, 0);

	assert_int_equal(kt_get_regs(vm, 0, &r), 0);
	assert_true(r.rbx - rbx0 == c || r.rbx - rbx0 == c + 1);
}

/* The real VMM path: vCPU threads, vm_pause, save, load, vm_start. */
static void test_threaded_pause_load(void **state)
{
	const uint64_t rbx0 = 0x77;
	struct mig_stream saved;
	struct err err = { 0 };
	struct kvm_regs at_save, r;
	struct vm src, dst;
	uint64_t count;

	assert_int_equal(kt_vm_new(&src, 1), 0);
	assert_int_equal(kt_vcpu_enter(&src, 0, rbx0), 0);
	assert_int_equal(vm_start(&src, &err), 0);
	assert_true(wait_counter(&src, 20));
	mig_stream_init_mem_writer(&saved, 0);
	assert_int_equal(vm_state_save(&src, &saved, &err), -EBUSY);
	fprintf(stderr, "# refused while running: %s\n", err.msg);
	mig_stream_fini(&saved);
	err_clear(&err);
	assert_int_equal(vm_pause(&src, &err), 0);
	count = *kt_counter(&src, 0);
	assert_consistent(&src, rbx0);
	assert_int_equal(kt_get_regs(&src, 0, &at_save), 0);
	save_ok(&src, &saved);

	assert_int_equal(kt_vm_new(&dst, 1), 0);
	kt_copy_ram(&dst, &src);
	load_ok(&dst, &saved);
	assert_int_equal(kt_get_regs(&dst, 0, &r), 0);
	assert_memory_equal(&r, &at_save, sizeof(r));
	assert_int_equal(vm_start(&dst, &err), 0);
	assert_true(wait_counter(&dst, count + 20));
	assert_int_equal(vm_pause(&dst, &err), 0);
	assert_consistent(&dst, rbx0);
	fprintf(stderr, "# source stopped at %llu, destination went on to %llu\n",
		(unsigned long long)count, (unsigned long long)*kt_counter(&dst, 0));
	assert_int_equal(*kt_counter(&src, 0), count);	/* source stayed put */
	mig_stream_fini(&saved);
	vm_destroy(&dst);
	vm_destroy(&src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smp_roundtrip),
		cmocka_unit_test(test_threaded_pause_load),
	};
	const char *no_kvm = kt_kvm_unavailable();

	if (no_kvm) {
		fprintf(stderr, "\n*** SKIP: %s ***\n\n", no_kvm);
		printf("1..0 # SKIP %s\n", no_kvm);
		return 0;
	}
	return cmocka_run_group_tests_name("kvm-state-smp", tests, NULL, NULL);
}
