/*
 * test_cpu_identity.c - a named CPU model's identity (host/cpu_identity.c):
 * two fake hosts with different family/model, brand, caches, address
 * sizes, extra leaves, XSAVE components and entry order give the guest the
 * same CPUID for the same model; the identity is the table's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cpu_models.h"

#define CAP 64

static size_t add(struct kvm_cpuid_entry2 *e, size_t n, uint32_t f, uint32_t i,
		  uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
	e[n] = (struct kvm_cpuid_entry2){ .function = f, .index = i, .eax = a, .ebx = b,
					  .ecx = c, .edx = d };
	if (f == 4 || f == 7 || f == 0xb || f == 0xd)
		e[n].flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	return n + 1;
}

/* An Intel host: every feature bit on, the rest as `sig`, `phys`, ... say. */
static size_t fake_host(struct kvm_cpuid_entry2 *e, uint32_t sig, uint32_t max,
			uint32_t phys, bool avx512, uint32_t salt)
{
	size_t n = 0;

	n = add(e, n, 0, 0, max, 0x756e6547, 0x6c65746e, 0x49656e69);	/* GenuineIntel */
	n = add(e, n, 1, 0, sig, 0x00400800 | salt, 0xffffffff, 0xffffffff);
	n = add(e, n, 2, 0, 0x00feff01 ^ salt, 0xf0, 0, 0);
	n = add(e, n, 4, 0, 0x1c004121, 0x01c0003f ^ salt, 0x3f, 0);
	n = add(e, n, 4, 1, 0x1c004122, 0x01c0003f, 0x3f ^ salt, 0);
	n = add(e, n, 6, 0, 4 | salt, 0, 0, 0);
	n = add(e, n, 7, 0, salt & 2, 0xffffffff, 0xffffffff, 0xffffffff);
	n = add(e, n, 7, 1, salt, 0, 0, 0);
	n = add(e, n, 0xa, 0, 0x07300402 ^ salt, 0, 0, 0x603);
	n = add(e, n, 0xb, 0, 0, 1, 0x100, 0);
	n = add(e, n, 0xb, 1, 1, 2, 0x201, 0);
	n = add(e, n, 0xd, 0, avx512 ? 0xe7 : 0x7, 0x240, avx512 ? 0xa88 : 0x340, 0);
	n = add(e, n, 0xd, 1, 0xf, 0x240, 0x100 | salt, 0);
	n = add(e, n, 0xd, 2, 0x100, 0x240, 0, 0);
	if (avx512) {
		n = add(e, n, 0xd, 5, 0x40, 0x440, 0, 0);
		n = add(e, n, 0xd, 6, 0x200, 0x480, 0, 0);
		n = add(e, n, 0xd, 7, 0x400, 0x680, 0, 0);
	}
	n = add(e, n, 0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d);
	n = add(e, n, 0x40000001, 0, 0x01007afb | (salt << 9), salt, 0, 1);
	n = add(e, n, 0x80000000, 0, 0x80000008, 0, 0, 0);
	n = add(e, n, 0x80000001, 0, 0, 0, 0xffffffff, 0xffffffff);
	n = add(e, n, 0x80000002, 0, 0x65746e49 ^ salt, 0x2952286c, 0x6f655820, 0x2952286e);
	n = add(e, n, 0x80000003, 0, salt, 0, 0, 0);
	n = add(e, n, 0x80000004, 0, 0, salt, 0, 0);
	n = add(e, n, 0x80000006, 0, 0, 0, 0x01006040 ^ salt, 0);
	n = add(e, n, 0x80000008, 0, phys | 48 << 8, 0x100d000 ^ salt, 0, 0);
	return n;
}

static size_t guest(const char *model, struct kvm_cpuid_entry2 *e, size_t n)
{
	const struct cpu_model *m = cpu_model_find(model);

	assert_non_null(m);
	cpu_model_apply(m, e, n);
	return cpu_model_identity(m, e, n, CAP);
}

static const struct kvm_cpuid_entry2 *leaf(const struct kvm_cpuid_entry2 *e, size_t n,
					   uint32_t f, uint32_t i)
{
	for (size_t k = 0; k < n; k++)
		if (e[k].function == f && e[k].index == i)
			return &e[k];
	return NULL;
}

static void same_guest_cpuid_on_different_hosts(void **state)
{
	static const char *const models[] = { "x86-64-v2", "Haswell", "Skylake-Server" };

	for (size_t mi = 0; mi < sizeof(models) / sizeof(models[0]); mi++) {
		struct kvm_cpuid_entry2 a[CAP], b[CAP], tmp;
		/* Skylake (family 6 model 85), 46 phys bits, AVX-512 */
		size_t na = fake_host(a, 0x50654, 0x1f, 46, true, 0);
		/* Sapphire Rapids (6/143), 52 phys bits, no AVX-512 state for v2/Haswell */
		size_t nb = fake_host(b, 0x806f8, 0x20, 52, !strcmp(models[mi], "Skylake-Server"), 0x55);

		tmp = b[0];	/* another entry order */
		b[0] = b[nb - 1];
		b[nb - 1] = tmp;
		na = guest(models[mi], a, na);
		nb = guest(models[mi], b, nb);
		assert_int_equal(na, nb);
		for (size_t i = 0; i < na; i++) {
			assert_int_equal(a[i].function, b[i].function);
			assert_int_equal(a[i].index, b[i].index);
			assert_int_equal(a[i].eax, b[i].eax);
			assert_int_equal(a[i].ebx, b[i].ebx);
			assert_int_equal(a[i].ecx, b[i].ecx);
			assert_int_equal(a[i].edx, b[i].edx);
		}
	}
}

static void identity_from_the_table(void **state)
{
	struct kvm_cpuid_entry2 e[CAP];
	size_t n = guest("Haswell", e, fake_host(e, 0x50654, 0x1f, 46, true, 0));
	const struct kvm_cpuid_entry2 *l;
	char brand[49] = { 0 };

	assert_int_equal(leaf(e, n, 0, 0)->eax, 0xd);
	assert_int_equal(leaf(e, n, 0, 0)->ebx, 0x756e6547);	/* vendor stays */
	assert_int_equal(leaf(e, n, 1, 0)->eax, 0x306c4);		/* 6/60/4 */
	assert_int_equal(leaf(e, n, 0x80000008, 0)->eax & 0xff, 40);
	assert_null(leaf(e, n, 4, 0));
	assert_null(leaf(e, n, 0xa, 0));
	assert_null(leaf(e, n, 0x80000006, 0));
	assert_null(leaf(e, n, 0xd, 5));		/* AVX-512 state is not Haswell's */
	assert_non_null(leaf(e, n, 0xd, 2));
	assert_int_equal(leaf(e, n, 0xd, 0)->ecx, 0x340);	/* recomputed for x87|SSE|AVX */
	for (uint32_t f = 0; f < 3; f++) {
		l = leaf(e, n, 0x80000002 + f, 0);
		memcpy(brand + 16 * f, &l->eax, 4);
		memcpy(brand + 16 * f + 4, &l->ebx, 4);
		memcpy(brand + 16 * f + 8, &l->ecx, 4);
		memcpy(brand + 16 * f + 12, &l->edx, 4);
	}
	assert_string_equal(brand, "Intel Core Processor (Haswell)");
	for (size_t i = 1; i < n; i++)		/* sorted */
		assert_true(e[i - 1].function < e[i].function ||
			    (e[i - 1].function == e[i].function && e[i - 1].index < e[i].index));
}

static void amd_family_above_15(void **state)
{
	struct kvm_cpuid_entry2 e[CAP];
	size_t n = fake_host(e, 0x830f10, 0x10, 48, false, 0);

	e[0].ebx = 0x68747541;	/* AuthenticAMD */
	e[0].ecx = 0x444d4163;
	e[0].edx = 0x69746e65;
	n = guest("EPYC", e, n);
	assert_int_equal(leaf(e, n, 1, 0)->eax, 0x800f12);		/* 23/1/2 */
	assert_int_equal(leaf(e, n, 0x80000001, 0)->eax, 0x800f12);
}

static void leaves_added_when_missing(void **state)
{
	struct kvm_cpuid_entry2 e[CAP];
	size_t n = 0;

	n = add(e, n, 0, 0, 1, 0x756e6547, 0x6c65746e, 0x49656e69);
	n = add(e, n, 1, 0, 0x50654, 0, 0xffffffff, 0xffffffff);
	n = guest("x86-64-v1", e, n);
	assert_non_null(leaf(e, n, 0x80000008, 0));
	assert_non_null(leaf(e, n, 0xb, 1));
	assert_non_null(leaf(e, n, 7, 0));
	assert_int_equal(guest("x86-64-v1", e, n), n);	/* idempotent */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(same_guest_cpuid_on_different_hosts),
		cmocka_unit_test(identity_from_the_table),
		cmocka_unit_test(amd_family_above_15),
		cmocka_unit_test(leaves_added_when_missing),
	};

	return cmocka_run_group_tests_name("cpu_identity", tests, NULL, NULL);
}
