/*
 * cpu_models.c - the CPU model table: named CPUID feature bits, the
 * x86-64 psABI levels (v1..v4) and a few server families whose feature sets
 * are modelled on QEMU's definitions of the same names (written here as
 * our own lists of feature names), and the operations over them.
 *
 * A model is a parent plus the features it adds, so each level or
 * generation is a superset of the one it extends (unit-tested).
 */
#include "cpu_models.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define F(n, l, s, r, b) { n, l, s, CPU_REG_##r, b }

static const struct cpu_feature cpu_features[] = {
	/* leaf 1 EDX */
	F("fpu", 1, 0, EDX, 0), F("vme", 1, 0, EDX, 1), F("de", 1, 0, EDX, 2),
	F("pse", 1, 0, EDX, 3), F("tsc", 1, 0, EDX, 4), F("msr", 1, 0, EDX, 5),
	F("pae", 1, 0, EDX, 6), F("mce", 1, 0, EDX, 7), F("cx8", 1, 0, EDX, 8),
	F("apic", 1, 0, EDX, 9), F("sep", 1, 0, EDX, 11), F("mtrr", 1, 0, EDX, 12),
	F("pge", 1, 0, EDX, 13), F("mca", 1, 0, EDX, 14), F("cmov", 1, 0, EDX, 15),
	F("pat", 1, 0, EDX, 16), F("pse36", 1, 0, EDX, 17),
	F("clflush", 1, 0, EDX, 19), F("mmx", 1, 0, EDX, 23),
	F("fxsr", 1, 0, EDX, 24), F("sse", 1, 0, EDX, 25), F("sse2", 1, 0, EDX, 26),
	F("ss", 1, 0, EDX, 27),
	/* leaf 1 ECX */
	F("sse3", 1, 0, ECX, 0), F("pclmulqdq", 1, 0, ECX, 1),
	F("ssse3", 1, 0, ECX, 9), F("fma", 1, 0, ECX, 12), F("cx16", 1, 0, ECX, 13),
	F("pcid", 1, 0, ECX, 17), F("sse4_1", 1, 0, ECX, 19),
	F("sse4_2", 1, 0, ECX, 20), F("movbe", 1, 0, ECX, 22),
	F("popcnt", 1, 0, ECX, 23), F("aes", 1, 0, ECX, 25), F("xsave", 1, 0, ECX, 26),
	F("avx", 1, 0, ECX, 28), F("f16c", 1, 0, ECX, 29), F("rdrand", 1, 0, ECX, 30),
	/* leaf 7.0 EBX */
	F("fsgsbase", 7, 0, EBX, 0), F("tsc_adjust", 7, 0, EBX, 1),
	F("bmi1", 7, 0, EBX, 3), F("hle", 7, 0, EBX, 4), F("avx2", 7, 0, EBX, 5),
	F("smep", 7, 0, EBX, 7), F("bmi2", 7, 0, EBX, 8), F("erms", 7, 0, EBX, 9),
	F("invpcid", 7, 0, EBX, 10), F("rtm", 7, 0, EBX, 11),
	F("avx512f", 7, 0, EBX, 16), F("avx512dq", 7, 0, EBX, 17),
	F("rdseed", 7, 0, EBX, 18), F("adx", 7, 0, EBX, 19), F("smap", 7, 0, EBX, 20),
	F("avx512ifma", 7, 0, EBX, 21), F("clflushopt", 7, 0, EBX, 23),
	F("clwb", 7, 0, EBX, 24), F("avx512cd", 7, 0, EBX, 28),
	F("sha_ni", 7, 0, EBX, 29), F("avx512bw", 7, 0, EBX, 30),
	F("avx512vl", 7, 0, EBX, 31),
	/* leaf 7.0 ECX */
	F("avx512vbmi", 7, 0, ECX, 1), F("umip", 7, 0, ECX, 2), F("pku", 7, 0, ECX, 3),
	F("avx512_vbmi2", 7, 0, ECX, 6), F("gfni", 7, 0, ECX, 8),
	F("vaes", 7, 0, ECX, 9), F("vpclmulqdq", 7, 0, ECX, 10),
	F("avx512_vnni", 7, 0, ECX, 11), F("avx512_bitalg", 7, 0, ECX, 12),
	F("avx512_vpopcntdq", 7, 0, ECX, 14), F("la57", 7, 0, ECX, 16),
	F("rdpid", 7, 0, ECX, 22),
	/* leaf 7.0 EDX */
	F("fsrm", 7, 0, EDX, 4), F("md_clear", 7, 0, EDX, 10),
	F("serialize", 7, 0, EDX, 14), F("spec_ctrl", 7, 0, EDX, 26),
	F("stibp", 7, 0, EDX, 27), F("arch_capabilities", 7, 0, EDX, 29),
	F("ssbd", 7, 0, EDX, 31),
	/* leaf 7.1 EAX */
	F("avx_vnni", 7, 1, EAX, 4), F("avx512_bf16", 7, 1, EAX, 5),
	/* leaf 0xd.1 EAX */
	F("xsaveopt", 0xd, 1, EAX, 0), F("xsavec", 0xd, 1, EAX, 1),
	F("xgetbv1", 0xd, 1, EAX, 2), F("xsaves", 0xd, 1, EAX, 3),
	/* leaf 0x80000001 ECX */
	F("lahf_lm", 0x80000001, 0, ECX, 0), F("abm", 0x80000001, 0, ECX, 5),
	F("sse4a", 0x80000001, 0, ECX, 6), F("misalignsse", 0x80000001, 0, ECX, 7),
	F("3dnowprefetch", 0x80000001, 0, ECX, 8), F("xop", 0x80000001, 0, ECX, 11),
	F("fma4", 0x80000001, 0, ECX, 16), F("tbm", 0x80000001, 0, ECX, 21),
	F("topoext", 0x80000001, 0, ECX, 22),
	/* leaf 0x80000001 EDX */
	F("syscall", 0x80000001, 0, EDX, 11), F("nx", 0x80000001, 0, EDX, 20),
	F("mmxext", 0x80000001, 0, EDX, 22), F("fxsr_opt", 0x80000001, 0, EDX, 25),
	F("pdpe1gb", 0x80000001, 0, EDX, 26), F("rdtscp", 0x80000001, 0, EDX, 27),
	F("lm", 0x80000001, 0, EDX, 29),
};

/*
 * Bits in masked registers that are not model features: KVM emulates or
 * computes them (hypervisor, x2apic and tsc-deadline of the in-kernel
 * LAPIC, OSXSAVE/OSPKE from CR4, HTT from topology), so they pass through.
 */
static const struct cpu_feature cpu_passthrough[] = {
	F("hypervisor", 1, 0, ECX, 31), F("x2apic", 1, 0, ECX, 21),
	F("tsc_deadline", 1, 0, ECX, 24), F("osxsave", 1, 0, ECX, 27),
	F("ht", 1, 0, EDX, 28), F("ospke", 7, 0, ECX, 4),
};

struct cpu_model {
	const char *name;
	const char *parent;
	const char *vendor;		/* NULL: a vendor-neutral level */
	const char *adds;		/* features added to the parent's */
};

#define INTEL	"GenuineIntel"
#define AMD	"AuthenticAMD"

static const struct cpu_model cpu_models[] = {
	/* x86-64 psABI micro-architecture levels */
	{ "x86-64-v1", NULL, NULL,
	  "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat "
	  "pse36 clflush mmx fxsr sse sse2 syscall nx lm" },
	{ "x86-64-v2", "x86-64-v1", NULL,
	  "cx16 lahf_lm popcnt sse3 sse4_1 sse4_2 ssse3" },
	{ "x86-64-v3", "x86-64-v2", NULL,
	  "avx avx2 bmi1 bmi2 f16c fma abm movbe xsave" },
	{ "x86-64-v4", "x86-64-v3", NULL,
	  "avx512f avx512bw avx512cd avx512dq avx512vl" },
	/* Intel server generations (TSX left out, as QEMU's -noTSX models) */
	{ "Nehalem", "x86-64-v2", INTEL, "" },
	{ "Westmere", "Nehalem", INTEL, "aes pclmulqdq" },
	{ "SandyBridge", "Westmere", INTEL, "avx xsave xsaveopt rdtscp" },
	{ "IvyBridge", "SandyBridge", INTEL, "fsgsbase smep erms f16c rdrand" },
	{ "Haswell", "IvyBridge", INTEL,
	  "fma pcid movbe avx2 bmi1 bmi2 invpcid abm" },
	{ "Broadwell", "Haswell", INTEL, "rdseed adx smap 3dnowprefetch" },
	{ "Skylake-Server", "Broadwell", INTEL,
	  "xsavec xgetbv1 clflushopt clwb pku pdpe1gb avx512f avx512dq "
	  "avx512cd avx512bw avx512vl" },
	{ "Cascadelake-Server", "Skylake-Server", INTEL, "avx512_vnni" },
	{ "Icelake-Server", "Cascadelake-Server", INTEL,
	  "avx512vbmi umip avx512_vbmi2 gfni vaes vpclmulqdq avx512_bitalg "
	  "avx512_vpopcntdq rdpid la57 fsrm" },
	/* AMD EPYC generations */
	{ "EPYC", "x86-64-v3", AMD,
	  "aes pclmulqdq sse4a misalignsse 3dnowprefetch rdrand fsgsbase smep "
	  "rdseed adx smap clflushopt sha_ni xsaveopt xsavec xgetbv1 mmxext "
	  "fxsr_opt pdpe1gb rdtscp topoext" },
	{ "EPYC-Rome", "EPYC", AMD, "clwb umip rdpid" },
	{ "EPYC-Milan", "EPYC-Rome", AMD,
	  "pku erms fsrm invpcid pcid vaes vpclmulqdq" },
};

/* XSAVE state components (XCR0 bits in leaf 0xd.0 EAX) and their feature. */
static const struct { uint32_t mask; const char *feature; } cpu_xsave_comps[] = {
	{ 1u << 2, "avx" },				/* YMM upper halves */
	{ 3u << 3, NULL },				/* MPX: never offered */
	{ 7u << 5, "avx512f" },				/* opmask, ZMM */
	{ 1u << 9, "pku" },				/* PKRU */
	{ 3u << 17, NULL },				/* AMX: never offered */
};

size_t cpu_feature_count(void)
{
	return ARRAY_SIZE(cpu_features);
}

const struct cpu_feature *cpu_feature_get(size_t i)
{
	return i < ARRAY_SIZE(cpu_features) ? &cpu_features[i] : NULL;
}

int cpu_feature_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(cpu_features); i++)
		if (!strcmp(cpu_features[i].name, name))
			return (int)i;
	return -ENOENT;
}

const char *cpu_reg_name(enum cpu_reg reg)
{
	static const char *const names[] = { "?", "eax", "ebx", "ecx", "edx" };

	return (unsigned)reg < ARRAY_SIZE(names) ? names[reg] : "?";
}

size_t cpu_featset_count(const struct cpu_featset *s)
{
	size_t n = 0;

	for (size_t i = 0; i < CPU_FEAT_WORDS; i++)
		n += (size_t)__builtin_popcountll(s->w[i]);
	return n;
}

bool cpu_featset_subset(const struct cpu_featset *a, const struct cpu_featset *b)
{
	for (size_t i = 0; i < CPU_FEAT_WORDS; i++)
		if (a->w[i] & ~b->w[i])
			return false;
	return true;
}

size_t cpu_model_count(void)
{
	return ARRAY_SIZE(cpu_models);
}

const struct cpu_model *cpu_model_get(size_t i)
{
	return i < ARRAY_SIZE(cpu_models) ? &cpu_models[i] : NULL;
}

const struct cpu_model *cpu_model_find(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(cpu_models); i++)
		if (!strcmp(cpu_models[i].name, name))
			return &cpu_models[i];
	return NULL;
}

const char *cpu_model_name(const struct cpu_model *m)
{
	return m->name;
}

const char *cpu_model_vendor(const struct cpu_model *m)
{
	return m->vendor;
}

const char *cpu_model_parent(const struct cpu_model *m)
{
	return m->parent;
}

/* Add the space-separated feature names of `list` (all in the table). */
static void featset_add_names(struct cpu_featset *s, const char *list)
{
	while (*list) {
		char name[32];
		size_t len = strcspn(list, " ");
		int idx;

		if (len && len < sizeof(name)) {
			memcpy(name, list, len);
			name[len] = '\0';
			idx = cpu_feature_find(name);
			if (idx >= 0)
				cpu_featset_add(s, (size_t)idx);
		}
		list += len;
		list += strspn(list, " ");
	}
}

void cpu_model_features(const struct cpu_model *m, struct cpu_featset *out)
{
	memset(out, 0, sizeof(*out));
	/* the table is a tree of depth < its size: bound the walk anyway */
	for (size_t depth = 0; m && depth < ARRAY_SIZE(cpu_models); depth++) {
		featset_add_names(out, m->adds);
		m = cpu_model_find(m->parent);
	}
}

const char *cpu_model_names(char *buf, size_t size)
{
	size_t off = 0;

	if (!size)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(cpu_models); i++) {
		int n = snprintf(buf + off, size - off, "%s%s", i ? ", " : "",
				 cpu_models[i].name);

		if (n < 0 || (size_t)n >= size - off)
			break;
		off += (size_t)n;
	}
	return buf;
}

static uint32_t *entry_reg(struct kvm_cpuid_entry2 *e, enum cpu_reg reg)
{
	switch (reg) {
	case CPU_REG_EAX: return &e->eax;
	case CPU_REG_EBX: return &e->ebx;
	case CPU_REG_ECX: return &e->ecx;
	case CPU_REG_EDX: return &e->edx;
	default: return NULL;
	}
}

static const struct kvm_cpuid_entry2 *
find_leaf(const struct kvm_cpuid_entry2 *e, size_t n, uint32_t leaf,
	  uint32_t subleaf)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].function == leaf && e[i].index == subleaf)
			return &e[i];
	return NULL;
}

void cpu_featset_from_cpuid(const struct kvm_cpuid_entry2 *e, size_t n,
			    struct cpu_featset *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < ARRAY_SIZE(cpu_features); i++) {
		const struct cpu_feature *f = &cpu_features[i];
		const struct kvm_cpuid_entry2 *l = find_leaf(e, n, f->leaf, f->subleaf);
		struct kvm_cpuid_entry2 copy;

		if (!l)
			continue;
		copy = *l;
		if ((*entry_reg(&copy, f->reg) >> f->bit) & 1)
			cpu_featset_add(out, i);
	}
}

void cpu_featset_host_quirks(struct cpu_featset *host, bool is_pvm)
{
	int cx16 = cpu_feature_find("cx16");

	if (is_pvm && cx16 >= 0)
		host->w[cx16 / 64] &= ~(1ULL << (cx16 % 64));
}

bool cpu_model_supported(const struct cpu_model *m,
			 const struct cpu_featset *host, const char **missing)
{
	struct cpu_featset need;

	cpu_model_features(m, &need);
	for (size_t i = 0; i < ARRAY_SIZE(cpu_features); i++) {
		if (cpu_featset_has(&need, i) && !cpu_featset_has(host, i)) {
			if (missing)
				*missing = cpu_features[i].name;
			return false;
		}
	}
	return true;
}

const struct cpu_model *cpu_model_closest(const struct cpu_featset *host,
					  const char *vendor)
{
	const struct cpu_model *best = NULL;
	size_t best_n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cpu_models); i++) {
		const struct cpu_model *m = &cpu_models[i];
		struct cpu_featset fs;
		size_t n;

		if (m->vendor && (!vendor || strcmp(m->vendor, vendor)))
			continue;
		if (!cpu_model_supported(m, host, NULL))
			continue;
		cpu_model_features(m, &fs);
		n = cpu_featset_count(&fs);
		if (!best || n > best_n) {
			best = m;
			best_n = n;
		}
	}
	return best;
}

bool cpu_model_allowed(const char *csv, const char *name)
{
	size_t len = strlen(name);

	if (!csv || !*csv)
		return true;
	while (*csv) {
		size_t n = strcspn(csv, ", ");

		if (n == len && !strncmp(csv, name, len))
			return true;
		csv += n;
		csv += strspn(csv, ", ");
	}
	return false;
}

int cpu_model_check(const char *name, const struct cpu_featset *host,
		    const char *allowed_csv, const struct cpu_model **out,
		    struct err *err)
{
	const struct cpu_model *m;
	const char *missing = "?";
	char names[512];

	*out = NULL;
	if (!name || !*name)
		name = CPU_MODEL_HOST;
	if (!strcmp(name, CPU_MODEL_HOST))
		return cpu_model_allowed(allowed_csv, name) ? 0 :
		       err_set(err, -EPERM,
			       "cpu model 'host-model' is not allowed on this host (allowed: %s)",
			       allowed_csv);
	m = cpu_model_find(name);
	if (!m)
		return err_set(err, -EINVAL, "unknown cpu model '%s' (known: %s, %s)",
			       name, CPU_MODEL_HOST, cpu_model_names(names, sizeof(names)));
	if (!cpu_model_allowed(allowed_csv, name))
		return err_set(err, -EPERM,
			       "cpu model '%s' is not allowed on this host (allowed: %s)",
			       name, allowed_csv);
	if (!cpu_model_supported(m, host, &missing))
		return err_set(err, -ENOTSUP, "cpu model '%s' needs %s, which this host lacks",
			       name, missing);
	*out = m;
	return 0;
}

/* Is (leaf, subleaf, reg) a register the table has features in? */
static bool reg_is_masked(uint32_t leaf, uint32_t subleaf, enum cpu_reg reg)
{
	for (size_t i = 0; i < ARRAY_SIZE(cpu_features); i++)
		if (cpu_features[i].leaf == leaf && cpu_features[i].subleaf == subleaf &&
		    cpu_features[i].reg == reg)
			return true;
	return false;
}

/* The bits of (leaf, subleaf, reg) that model set fs keeps. */
static uint32_t reg_keep(const struct cpu_featset *fs, uint32_t leaf,
			 uint32_t subleaf, enum cpu_reg reg)
{
	uint32_t keep = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cpu_features); i++) {
		const struct cpu_feature *f = &cpu_features[i];

		if (f->leaf == leaf && f->subleaf == subleaf && f->reg == reg &&
		    cpu_featset_has(fs, i))
			keep |= 1u << f->bit;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cpu_passthrough); i++) {
		const struct cpu_feature *f = &cpu_passthrough[i];

		if (f->leaf == leaf && f->subleaf == subleaf && f->reg == reg)
			keep |= 1u << f->bit;
	}
	return keep;
}

static void mask_xcr0(const struct cpu_featset *fs, struct kvm_cpuid_entry2 *e)
{
	for (size_t i = 0; i < ARRAY_SIZE(cpu_xsave_comps); i++) {
		int f = cpu_xsave_comps[i].feature ?
			cpu_feature_find(cpu_xsave_comps[i].feature) : -1;

		if (f < 0 || !cpu_featset_has(fs, (size_t)f))
			e->eax &= ~cpu_xsave_comps[i].mask;
	}
	e->edx = 0;	/* XCR0 bits 32..63: none is a model feature */
}

void cpu_model_apply(const struct cpu_model *m, struct kvm_cpuid_entry2 *e,
		     size_t n)
{
	static const enum cpu_reg regs[] = {
		CPU_REG_EAX, CPU_REG_EBX, CPU_REG_ECX, CPU_REG_EDX,
	};
	struct cpu_featset fs;

	cpu_model_features(m, &fs);
	for (size_t i = 0; i < n; i++) {
		for (size_t r = 0; r < ARRAY_SIZE(regs); r++) {
			if (reg_is_masked(e[i].function, e[i].index, regs[r]))
				*entry_reg(&e[i], regs[r]) &=
					reg_keep(&fs, e[i].function, e[i].index, regs[r]);
		}
		if (e[i].function == 0xd && e[i].index == 0)
			mask_xcr0(&fs, &e[i]);
	}
}
