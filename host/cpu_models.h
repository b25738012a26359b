/*
 * cpu_models.h - tern's table of named x86 CPU models and the CPUID feature
 * bits they are made of, and the operations on them: which models a host's
 * KVM can offer, which table entry a host is closest to, and masking a
 * vCPU's CPUID so the guest sees only one model's features.
 *
 * Pure (no KVM, no I/O): the CPUID lists are plain arrays of
 * struct kvm_cpuid_entry2, so unit tests feed fake ones. The table and its
 * rules are described in docs/cpu-models.md.
 */
#ifndef HOST_CPU_MODELS_H
#define HOST_CPU_MODELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "err.h"

#define CPU_MODEL_HOST	"host-model"
#define CPU_FEAT_WORDS	4		/* up to 256 features in the table */

enum cpu_reg {
	CPU_REG_INVALID = 0,
	CPU_REG_EAX,
	CPU_REG_EBX,
	CPU_REG_ECX,
	CPU_REG_EDX,
};

/* One feature: a CPUID bit with its /proc/cpuinfo-style name. */
struct cpu_feature {
	const char *name;
	uint32_t leaf;
	uint32_t subleaf;
	enum cpu_reg reg;
	uint8_t bit;
};

/* A set of features: bit i = cpu_feature_get(i). */
struct cpu_featset {
	uint64_t w[CPU_FEAT_WORDS];
};

struct cpu_model;

/* ---- the feature table ---- */
size_t cpu_feature_count(void);
const struct cpu_feature *cpu_feature_get(size_t i);
int cpu_feature_find(const char *name);		/* index or -ENOENT */
const char *cpu_reg_name(enum cpu_reg reg);	/* "eax" ... */

static inline bool cpu_featset_has(const struct cpu_featset *s, size_t i)
{
	return i < 64 * CPU_FEAT_WORDS && (s->w[i / 64] >> (i % 64)) & 1;
}

static inline void cpu_featset_add(struct cpu_featset *s, size_t i)
{
	if (i < 64 * CPU_FEAT_WORDS)
		s->w[i / 64] |= 1ULL << (i % 64);
}

size_t cpu_featset_count(const struct cpu_featset *s);
/* a is a subset of b */
bool cpu_featset_subset(const struct cpu_featset *a, const struct cpu_featset *b);

/* ---- the model table ---- */
size_t cpu_model_count(void);
const struct cpu_model *cpu_model_get(size_t i);
const struct cpu_model *cpu_model_find(const char *name);	/* NULL: unknown */
const char *cpu_model_name(const struct cpu_model *m);
const char *cpu_model_vendor(const struct cpu_model *m);	/* NULL: any */
const char *cpu_model_parent(const struct cpu_model *m);	/* NULL: none */
/* Every feature of the model, its parents' included. */
void cpu_model_features(const struct cpu_model *m, struct cpu_featset *out);
/* The known names, comma separated, into buf (for messages). */
const char *cpu_model_names(char *buf, size_t size);

/* ---- a host's CPUID ---- */
/* The features set in a CPUID list (KVM_GET_SUPPORTED_CPUID or a vCPU's). */
void cpu_featset_from_cpuid(const struct kvm_cpuid_entry2 *e, size_t n,
			    struct cpu_featset *out);
/*
 * Features tern hides from every guest on this kind of host, whatever the
 * model: on PVM, cx16 (vmm/kvm.c hides it, MACHINE.md says why).
 */
void cpu_featset_host_quirks(struct cpu_featset *host, bool is_pvm);
/* All features of m are in host. Else the first missing one's name. */
bool cpu_model_supported(const struct cpu_model *m,
			 const struct cpu_featset *host, const char **missing);
/*
 * The table entry closest to a host: among supported models whose vendor
 * is `vendor` (or any vendor), the one with the most features. Never NULL
 * while x86-64-v1 is supported; NULL if nothing is.
 */
const struct cpu_model *cpu_model_closest(const struct cpu_featset *host,
					  const char *vendor);
/* Is name in a comma-separated allow list? NULL or "" allows everything. */
bool cpu_model_allowed(const char *csv, const char *name);

/*
 * For tern-vmm: may this host run a VM with CPU model `name`? NULL means
 * "host-model", which every host can run unless its allow list leaves it
 * out. Refuses an unknown model, one not in the
 * allow list `allowed_csv`, and one needing a feature the host lacks:
 * "cpu model 'x86-64-v4' needs avx512f, which this host lacks".
 * *out is the model (NULL for host-model).
 */
int cpu_model_check(const char *name, const struct cpu_featset *host,
		    const char *allowed_csv, const struct cpu_model **out,
		    struct err *err);

/*
 * Mask a vCPU's CPUID to model m: in every register the table has
 * features in, keep only m's features (and the bits KVM manages itself:
 * hypervisor, x2apic, tsc-deadline, OSXSAVE, OSPKE, HTT); in leaf 0xd.0
 * drop the XSAVE components of features m lacks. Vendor, family, model,
 * stepping, brand string, caches and topology stay the host's.
 */
void cpu_model_apply(const struct cpu_model *m, struct kvm_cpuid_entry2 *e,
		     size_t n);

/*
 * After cpu_model_apply(): give the guest model m's identity instead of
 * the host's (cpu_identity.c): family/model/stepping and brand from the
 * table, a fixed set of leaves (others dropped, missing ones added as
 * zeros, up to `cap` entries), host-specific registers fixed or zeroed,
 * sorted by (function, index). The result depends only on m, the host
 * vendor and what the caller set for the vCPU (APIC ID, topology), as
 * long as the host supports m. Returns the new number of entries.
 */
size_t cpu_model_identity(const struct cpu_model *m, struct kvm_cpuid_entry2 *e,
			  size_t n, size_t cap);

#endif
