/*
 * cpu_identity.c - the identity a named CPU model gives the guest, so the
 * CPUID a VM sees depends only on (model, vCPU count, vendor) and not on
 * the host it happens to run on (docs/cpu-models.md, "Identity"):
 *   - family/model/stepping and the brand string come from the table below
 *     (the values of QEMU's named models; the psABI levels x86-64-v1..v4
 *     look like QEMU's qemu64),
 *   - the guest gets a fixed set of leaves: 0, 1, 7.0, 0xb, 0xd (the
 *     model's XSAVE components only), KVM's 0x40000000/1, 0x80000000..4 and
 *     0x80000008; cache, PMU, trace and other host-specific leaves go,
 *   - registers that no model feature lives in are fixed values (max leaf
 *     numbers, 40 physical address bits) or zero.
 * Pure: works on a CPUID list already masked by cpu_model_apply().
 */
#include <stdlib.h>
#include <string.h>

#include "cpu_models.h"
#include "util.h"

#define ID_MAX_BASIC	0xdu
#define ID_MAX_EXT	0x80000008u
#define ID_KVM_BASE	0x40000000u
#define ID_PHYS_BITS	40u
/* KVM paravirt features every kernel tern supports has: clocksource,
 * nop_io_delay, clocksource2, async_pf, steal_time, pv_eoi, pv_unhalt,
 * clocksource_stable. */
#define ID_KVM_FEATURES	((1u << 0) | (1u << 1) | (1u << 3) | (1u << 4) | (1u << 5) | \
			 (1u << 6) | (1u << 7) | (1u << 24))

struct cpu_identity {
	const char *model;
	unsigned family, model_nr, stepping;
	const char *brand;
};

static const struct cpu_identity identities[] = {
	{ "x86-64-v1", 15, 107, 1, "tern x86-64-v1 CPU" },
	{ "x86-64-v2", 15, 107, 1, "tern x86-64-v2 CPU" },
	{ "x86-64-v3", 15, 107, 1, "tern x86-64-v3 CPU" },
	{ "x86-64-v4", 15, 107, 1, "tern x86-64-v4 CPU" },
	{ "Nehalem", 6, 26, 3, "Intel Core i7 9xx (Nehalem Class Core i7)" },
	{ "Westmere", 6, 44, 1, "Westmere E56xx/L56xx/X56xx (Nehalem-C)" },
	{ "SandyBridge", 6, 42, 1, "Intel Xeon E312xx (Sandy Bridge)" },
	{ "IvyBridge", 6, 58, 9, "Intel Xeon E3-12xx v2 (Ivy Bridge)" },
	{ "Haswell", 6, 60, 4, "Intel Core Processor (Haswell)" },
	{ "Broadwell", 6, 61, 2, "Intel Core Processor (Broadwell)" },
	{ "Skylake-Server", 6, 85, 4, "Intel Xeon Processor (Skylake)" },
	{ "Cascadelake-Server", 6, 85, 6, "Intel Xeon Processor (Cascadelake)" },
	{ "Icelake-Server", 6, 134, 0, "Intel Xeon Processor (Icelake)" },
	{ "EPYC", 23, 1, 2, "AMD EPYC Processor" },
	{ "EPYC-Rome", 23, 49, 0, "AMD EPYC-Rome Processor" },
	{ "EPYC-Milan", 25, 1, 1, "AMD EPYC-Milan Processor" },
};

static const struct cpu_identity *identity_find(const struct cpu_model *m)
{
	for (size_t i = 0; i < ARRAY_SIZE(identities); i++)
		if (!strcmp(identities[i].model, cpu_model_name(m)))
			return &identities[i];
	return &identities[0];
}

/* CPUID.1:EAX from family/model/stepping (SDM vol. 2, CPUID). */
static uint32_t identity_signature(const struct cpu_identity *id)
{
	uint32_t fam = id->family > 15 ? 15 : id->family;
	uint32_t ext_fam = id->family > 15 ? id->family - 15 : 0;

	return (id->stepping & 0xf) | (id->model_nr & 0xf) << 4 | fam << 8 |
	       (id->model_nr >> 4 & 0xf) << 16 | ext_fam << 20;
}

static bool leaf_kept(const struct kvm_cpuid_entry2 *e, uint32_t xcr0)
{
	uint32_t f = e->function;

	if (f == 0 || f == 1 || f == ID_KVM_BASE || f == ID_KVM_BASE + 1 ||
	    (f >= 0x80000000u && f <= 0x80000004u) || f == ID_MAX_EXT)
		return true;
	if (f == 7 || f == 0xb)
		return e->index <= (f == 7 ? 0u : 1u);
	if (f == 0xd)
		return e->index <= 1 || (e->index < 32 && (xcr0 >> e->index & 1));
	return false;
}

static uint32_t xcr0_of(const struct kvm_cpuid_entry2 *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].function == 0xd && e[i].index == 0)
			return e[i].eax;
	return 3;	/* x87 and SSE */
}

static void brand_set(struct kvm_cpuid_entry2 *e, const char *brand)
{
	char b[48] = { 0 };
	uint32_t *r = &e->eax;
	unsigned part = e->function - 0x80000002u;

	strncpy(b, brand, sizeof(b) - 1);
	/* eax, ebx, ecx, edx are consecutive in kvm_cpuid_entry2 */
	memcpy(r, b + 16 * part, 4);
	memcpy(&e->ebx, b + 16 * part + 4, 4);
	memcpy(&e->ecx, b + 16 * part + 8, 4);
	memcpy(&e->edx, b + 16 * part + 12, 4);
}

/* 0xd.0 ECX: the XSAVE area for every component of the model. */
static uint32_t xsave_size(const struct kvm_cpuid_entry2 *e, size_t n, uint32_t xcr0)
{
	uint32_t size = 576;	/* legacy area + header */

	for (size_t i = 0; i < n; i++)
		if (e[i].function == 0xd && e[i].index >= 2 && e[i].index < 32 &&
		    (xcr0 >> e[i].index & 1) && e[i].eax + e[i].ebx > size)
			size = e[i].eax + e[i].ebx;
	return size;
}

static void identity_leaf(const struct cpu_identity *id, bool la57,
			  struct kvm_cpuid_entry2 *e, const struct kvm_cpuid_entry2 *all,
			  size_t n, uint32_t xcr0)
{
	bool amd = all[0].ebx == 0x68747541;	/* "Auth"enticAMD */

	switch (e->function) {
	case 0:
		e->eax = ID_MAX_BASIC;
		break;
	case 1:
		e->eax = identity_signature(id);
		e->ebx = (e->ebx & 0xffff0000u) | 0x0800;	/* clflush 64 B */
		break;
	case 7:
		e->eax = 0;
		break;
	case 0xd:
		if (e->index == 0)
			e->ecx = xsave_size(all, n, xcr0);
		else if (e->index == 1)
			e->ecx = e->edx = 0;	/* no supervisor states */
		break;
	case ID_KVM_BASE:
		e->eax = ID_KVM_BASE + 1;
		break;
	case ID_KVM_BASE + 1:
		e->eax &= ID_KVM_FEATURES;
		e->ebx = e->ecx = e->edx = 0;
		break;
	case 0x80000000u:
		e->eax = ID_MAX_EXT;
		break;
	case 0x80000001u:
		e->eax = amd ? identity_signature(id) : 0;
		e->ebx = 0;
		break;
	case 0x80000002u: case 0x80000003u: case 0x80000004u:
		brand_set(e, id->brand);
		break;
	case ID_MAX_EXT:
		e->eax = ID_PHYS_BITS | (la57 ? 57u : 48u) << 8;
		e->ebx = e->ecx = e->edx = 0;
		break;
	}
}

static int leaf_cmp(const void *a, const void *b)
{
	const struct kvm_cpuid_entry2 *x = a, *y = b;

	if (x->function != y->function)
		return x->function < y->function ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Append (function, index) as zeros if the host has no such leaf. */
static size_t leaf_ensure(struct kvm_cpuid_entry2 *e, size_t n, size_t cap,
			  uint32_t function, uint32_t index, uint32_t flags)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].function == function && e[i].index == index)
			return n;
	if (n == cap)
		return n;
	memset(&e[n], 0, sizeof(e[n]));
	e[n].function = function;
	e[n].index = index;
	e[n].flags = flags;
	return n + 1;
}

size_t cpu_model_identity(const struct cpu_model *m, struct kvm_cpuid_entry2 *e,
			  size_t n, size_t cap)
{
	static const uint32_t must[] = {
		0, 1, 0x80000000u, 0x80000001u, 0x80000002u, 0x80000003u,
		0x80000004u, ID_MAX_EXT,
	};
	const struct cpu_identity *id = identity_find(m);
	uint32_t xcr0 = xcr0_of(e, n);
	int la57 = cpu_feature_find("la57");
	struct cpu_featset fs;
	size_t k = 0;

	cpu_model_features(m, &fs);
	for (size_t i = 0; i < n; i++)
		if (leaf_kept(&e[i], xcr0))
			e[k++] = e[i];
	for (size_t i = 0; i < ARRAY_SIZE(must); i++)
		k = leaf_ensure(e, k, cap, must[i], 0, 0);
	for (uint32_t i = 0; i < 2; i++)
		k = leaf_ensure(e, k, cap, 0xb, i, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
	k = leaf_ensure(e, k, cap, 7, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
	for (size_t i = 0; i < k; i++)
		identity_leaf(id, la57 >= 0 && cpu_featset_has(&fs, (size_t)la57),
			      &e[i], e, k, xcr0);
	qsort(e, k, sizeof(*e), leaf_cmp);
	return k;
}
