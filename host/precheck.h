/*
 * precheck.h - the pre-migration checks: can this VM live-migrate from the
 * source host to the destination? Pure (JSON in, JSON out), so ternd runs
 * it on either side and tests drive every rule. The rules and their ids
 * are listed in docs/cpu-models.md and docs/api.md.
 */
#ifndef HOST_PRECHECK_H
#define HOST_PRECHECK_H

#include <jansson.h>

/* Default link speed for the duration estimate: 1 Gbit/s, in bytes/s. */
#define HOST_PRECHECK_DEFAULT_BANDWIDTH	125000000ULL
/* The RHEL guide's caveat: VMs with 1 TiB of memory or more. */
#define HOST_PRECHECK_LARGE_MEMORY	(1ULL << 40)
/* vCPUs per allocatable host CPU when dst_facts.cpus has no ratio. */
#define HOST_PRECHECK_CPU_RATIO		4.0

/*
 * vm = {"name","memory","vcpus","cpu_model","migration_mode":
 *       "migratable|manual-only|pinned|none","pinned_hosts":[...],
 *       "state":"running|paused|stopped","networks":[...],"disks":[...],
 *       "manual":true|false}
 * src_facts/dst_facts: host_facts_collect() plus {"host","cluster","up",
 *       "maintenance","networks":[...],"storage":[...],"bandwidth"}
 * dst_state = {"allocated_memory": N, "allocated_vcpus": N}
 *
 * Returns a new JSON array of {"check": "<id>", "reason": "<one line>"}:
 * every failure, empty if the migration may go ahead (NULL only when out
 * of memory). Warnings (same shape) are appended to warnings_out if not
 * NULL: "paused", "large-memory", "duration-estimate".
 */
json_t *host_precheck(const json_t *vm, const json_t *src_facts,
		      const json_t *dst_facts, const json_t *dst_state,
		      json_t *warnings_out);

#endif
