/*
 * host.h - STAND-IN for branch h/cpumodel's host facts (same contract):
 * what this host offers a VM. Deleted when h/cpumodel lands in main.
 */
#ifndef HOST_HOST_H
#define HOST_HOST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct host_config {
	const char *allowed_models[32];	/* CPU models offered; none = all */
	size_t n_allowed;
	uint64_t reserved_memory;	/* bytes kept for the host */
	unsigned reserved_cpus;
};

/*
 * {"cpu_vendor","cpu_model_name","host_model","models":[...],
 *  "memory_total","memory_allocatable","cpus","cpus_allocatable",
 *  "kernel","tern_version"}; NULL with `err` set on failure.
 */
json_t *host_facts_collect(const struct host_config *cfg, struct err *err);

#endif
