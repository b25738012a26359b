/*
 * host.c - STAND-IN host facts: /proc/cpuinfo, sysinfo(2), uname(2).
 * Just enough for ternd's checks until h/cpumodel lands.
 */
#include "host.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef TERN_VERSION
#define TERN_VERSION "unknown"
#endif

static const char *const host_models[] = {
	"host-model", "x86-64-v1", "x86-64-v2", "x86-64-v3",
};

static void host_cpuinfo(char *vendor, char *model, size_t len)
{
	char line[512], *v;
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(vendor, len, "unknown");
	snprintf(model, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		v = strchr(line, ':');
		if (!v)
			continue;
		v += 1 + (v[1] == ' ');
		v[strcspn(v, "\n")] = '\0';
		if (!strncmp(line, "vendor_id", 9))
			snprintf(vendor, len, "%s", v);
		else if (!strncmp(line, "model name", 10)) {
			snprintf(model, len, "%s", v);
			break;
		}
	}
	fclose(f);
}

static json_t *host_models_json(const struct host_config *cfg)
{
	json_t *a = json_array();

	if (cfg && cfg->n_allowed) {
		for (size_t i = 0; i < cfg->n_allowed && i < 32; i++)
			json_array_append_new(a, json_string(cfg->allowed_models[i]));
		return a;
	}
	for (size_t i = 0; i < sizeof(host_models) / sizeof(host_models[0]); i++)
		json_array_append_new(a, json_string(host_models[i]));
	return a;
}

json_t *host_facts_collect(const struct host_config *cfg, struct err *err)
{
	char vendor[128], model[256];
	struct sysinfo si;
	struct utsname u;
	uint64_t mem, rmem = cfg ? cfg->reserved_memory : 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned rcpu = cfg ? cfg->reserved_cpus : 0;

	if (sysinfo(&si) < 0 || uname(&u) < 0) {
		err_set(err, -errno, "cannot read host facts: %s",
			strerror(errno));
		return NULL;
	}
	host_cpuinfo(vendor, model, sizeof(vendor));
	mem = (uint64_t)si.totalram * si.mem_unit;
	return json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:s, s:s}",
			 "cpu_vendor", vendor, "cpu_model_name", model,
			 "host_model", model, "models", host_models_json(cfg),
			 "memory_total", (json_int_t)mem,
			 "memory_allocatable",
			 (json_int_t)(mem > rmem ? mem - rmem : 0),
			 "cpus", (json_int_t)cpus,
			 "cpus_allocatable",
			 (json_int_t)(cpus > rcpu ? cpus - rcpu : 0),
			 "kernel", u.release, "tern_version", TERN_VERSION);
}
