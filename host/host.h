/*
 * host.h - what this host can offer to VMs, as JSON ("host facts"): the
 * CPU as KVM can offer it to a guest, the CPU models tern can run here,
 * memory, CPUs, NUMA nodes, kernel/KVM/tern versions, and scheduler labels
 * in KubeVirt's spirit. ternd serves it (GET /host) and sends it to peers
 * for the pre-migration checks (precheck.h). Schema: docs/api.md.
 */
#ifndef HOST_HOST_H
#define HOST_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <linux/kvm.h>

#include "err.h"

struct host_config {
	/* Named models (and/or "host-model") this host offers; n_allowed == 0:
	 * every model its CPU supports. Admins restrict hosts to make them alike. */
	const char *allowed_models[32];
	size_t n_allowed;
	uint64_t reserved_memory;	/* bytes kept for the host itself */
	unsigned reserved_cpus;
};

/*
 * Collect the facts of this host (opens /dev/kvm, or $TERN_KVM_DEVICE;
 * reads /proc and /sys). NULL with err set on failure. Caller json_decref()s.
 */
json_t *host_facts_collect(const struct host_config *cfg, struct err *err);

/*
 * The CPU part of the facts from a CPUID list (pure, for tests): adds
 * "cpu", "host_model", "host_model_id", "host_model_allowed", "cpu_models",
 * "cpu_models_unsupported" and "labels" to `facts`. `brand` may be NULL.
 */
int host_facts_cpu(json_t *facts, const struct kvm_cpuid_entry2 *e, size_t n,
		   bool is_pvm, const char *brand, const struct host_config *cfg);

/*
 * Fill cfg's allow list from a comma-separated list, cut in place in `csv`
 * (which must outlive cfg). -E2BIG beyond 32 names.
 */
int host_config_parse_allowed(struct host_config *cfg, char *csv);

/* The CPU model and feature tables as JSON (tern-vmm --print-cpu-models). */
json_t *host_cpu_models_json(void);

/* cfg's allow list as "a,b,c" into buf ("" = everything). */
const char *host_config_allowed_csv(const struct host_config *cfg, char *buf,
				    size_t size);

#endif
