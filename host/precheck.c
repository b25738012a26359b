/*
 * precheck.c - the pre-migration checks (precheck.h). Every rule runs, each
 * failure adds {"check", "reason"} to the result, so the user sees all the
 * reasons at once (as the SUSE and RHEL guides list them). Inputs are JSON
 * from peers and users: a missing or mistyped field is read as absent.
 */
#include "precheck.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cpu_models.h"
#include "util.h"

struct pc {
	const json_t *vm, *src, *dst, *dst_state;
	json_t *fails;
	json_t *warns;
};

static void add(json_t *arr, const char *check, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add(json_t *arr, const char *check, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	if (!arr)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	json_array_append_new(arr, json_pack("{s:s, s:s}", "check", check, "reason", reason));
}

static const char *str(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : dflt;
}

static bool boolean(const json_t *o, const char *key, bool dflt)
{
	json_t *v = json_object_get(o, key);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A non-negative integer field (nested "a.b" allowed), or dflt. */
static uint64_t num(const json_t *o, const char *key, const char *sub, uint64_t dflt)
{
	json_t *v = json_object_get(o, key);

	if (sub)
		v = json_object_get(v, sub);
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		return (uint64_t)json_integer_value(v);
	if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 1.8e19)
		return (uint64_t)json_real_value(v);
	return dflt;
}

/* An array element's name: the string itself or its "name" field. */
static const char *item_name(const json_t *v, const char *field)
{
	if (json_is_string(v))
		return json_string_value(v);
	return json_string_value(json_object_get(v, field));
}

static bool list_has(const json_t *arr, const char *field, const char *name)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v) {
		const char *s = item_name(v, field);

		if (s && !strcmp(s, name))
			return true;
	}
	return false;
}

/* ---- hosts ---- */

static void check_hosts(struct pc *p)
{
	const char *sh = str(p->src, "host", NULL), *dh = str(p->dst, "host", NULL);
	const char *sc = str(p->src, "cluster", ""), *dc = str(p->dst, "cluster", "");

	if (sh && dh && !strcmp(sh, dh))
		add(p->fails, "same-host", "the destination %s is the VM's current host", dh);
	if (!boolean(p->src, "up", true))
		add(p->fails, "host-down", "the source host %s is down", sh ? sh : "?");
	if (!boolean(p->dst, "up", true))
		add(p->fails, "host-down", "the destination host %s is down", dh ? dh : "?");
	if (strcmp(sc, dc))
		add(p->fails, "cluster-mismatch",
		    "the source is in cluster '%s', the destination in cluster '%s'", sc, dc);
	if (boolean(p->dst, "maintenance", false))
		add(p->fails, "maintenance",
		    "the destination %s is in maintenance and takes no new VMs", dh ? dh : "?");
}

static void check_state(struct pc *p)
{
	const char *st = str(p->vm, "state", "");

	if (!strcmp(st, "running"))
		return;
	if (!strcmp(st, "paused")) {
		add(p->warns, "paused",
		    "the VM is paused: it migrates and stays paused on the destination (resume it there)");
		return;
	}
	if (!strcmp(st, "stopped"))
		add(p->fails, "vm-state",
		    "the VM is stopped: only a running or paused VM live-migrates (start it, or define it on the destination)");
	else
		add(p->fails, "vm-state", "the VM's state '%s' is not running or paused", st);
}

/* ---- CPU model ---- */

/* The first flag of `a` missing from `b`, or NULL. */
static const char *first_missing(const json_t *a, const json_t *b)
{
	size_t i;
	json_t *v;

	json_array_foreach(a, i, v)
		if (json_is_string(v) && !list_has(b, "name", json_string_value(v)))
			return json_string_value(v);
	return NULL;
}

static void check_host_model(struct pc *p)
{
	const char *sm = str(p->src, "host_model", "?"), *dm = str(p->dst, "host_model", "?");
	const json_t *sf = json_object_get(json_object_get(p->src, "cpu"), "flags");
	const json_t *df = json_object_get(json_object_get(p->dst, "cpu"), "flags");
	const char *miss;

	if (!boolean(p->dst, "host_model_allowed", true)) {
		add(p->fails, "cpu-model",
		    "the VM uses host-model, which the destination does not offer");
	} else if (strcmp(sm, dm)) {
		add(p->fails, "cpu-model",
		    "the VM uses host-model: the destination's host model %s differs from the source's %s",
		    dm, sm);
	} else if ((miss = first_missing(sf, df))) {
		add(p->fails, "cpu-model",
		    "the VM uses host-model: the destination lacks %s, which the guest may use", miss);
	} else if ((miss = first_missing(df, sf)) ||
		   strcmp(str(p->src, "host_model_id", ""), str(p->dst, "host_model_id", ""))) {
		add(p->fails, "cpu-model",
		    "the VM uses host-model: the destination's CPU differs from the source's (%s%s), so the guest would see a different CPU",
		    miss ? "it also has " : "vendor, family, model or stepping", miss ? miss : "");
	}
}

static void check_cpu_model(struct pc *p)
{
	const char *m = str(p->vm, "cpu_model", CPU_MODEL_HOST);
	const char *sv, *dv;

	if (!*m || !strcmp(m, CPU_MODEL_HOST)) {
		check_host_model(p);
		return;
	}
	if (!list_has(json_object_get(p->dst, "cpu_models"), "name", m)) {
		const char *why = str(json_object_get(p->dst, "cpu_models_unsupported"), m, NULL);

		add(p->fails, "cpu-model", "the destination does not offer cpu model '%s'%s%s", m,
		    why ? ": " : "", why ? why : "");
		return;
	}
	sv = str(json_object_get(p->src, "cpu"), "vendor", "");
	dv = str(json_object_get(p->dst, "cpu"), "vendor", "");
	if (strcmp(sv, dv))
		add(p->fails, "cpu-model",
		    "cpu model '%s' keeps the host's vendor: the source is %s, the destination %s",
		    m, sv, dv);
}

/* ---- resources ---- */

static void check_resources(struct pc *p)
{
	uint64_t mem = num(p->vm, "memory", NULL, 0), vcpus = num(p->vm, "vcpus", NULL, 1);
	uint64_t avail = num(p->dst, "memory", "allocatable", 0);
	uint64_t used = num(p->dst_state, "allocated_memory", NULL, 0);
	uint64_t cpus = num(p->dst, "cpus", "allocatable", 0);
	uint64_t cpus_used = num(p->dst_state, "allocated_vcpus", NULL, 0);
	json_t *r = json_object_get(json_object_get(p->dst, "cpus"), "allocation_ratio");
	double ratio = json_is_number(r) && json_number_value(r) >= 1 ?
		       json_number_value(r) : HOST_PRECHECK_CPU_RATIO;
	uint64_t free_mem = avail > used ? avail - used : 0;
	double cap = (double)cpus * ratio;
	char a[32], b[32];

	if (mem > free_mem)
		add(p->fails, "memory", "the VM needs %s, the destination has %s free",
		    fmt_bytes(mem, a, sizeof(a)), fmt_bytes(free_mem, b, sizeof(b)));
	if ((double)(cpus_used + vcpus) > cap)
		add(p->fails, "cpu",
		    "the VM needs %" PRIu64 " vCPUs, the destination has %" PRIu64 " of %.0f free (%" PRIu64 " CPUs x %.1f)",
		    vcpus, cap > (double)cpus_used ? (uint64_t)(cap - (double)cpus_used) : 0,
		    cap, cpus, ratio);
}

static void check_devices(struct pc *p)
{
	const json_t *nets = json_object_get(p->dst, "networks");
	const json_t *stor = json_object_get(p->dst, "storage");
	size_t i;
	json_t *v;

	json_array_foreach(json_object_get(p->vm, "networks"), i, v) {
		const char *n = item_name(v, "name");

		if (n && !list_has(nets, "name", n))
			add(p->fails, "network", "network '%s' does not exist on the destination", n);
	}
	json_array_foreach(json_object_get(p->vm, "disks"), i, v) {
		const char *s = item_name(v, "storage");

		if (s && !list_has(stor, "name", s))
			add(p->fails, "storage", "storage '%s' (disk %zu) is not available on the destination",
			    s, i);
	}
}

static void check_mode(struct pc *p)
{
	const char *mode = str(p->vm, "migration_mode", "migratable");
	const char *dh = str(p->dst, "host", "?");

	if (!strcmp(mode, "migratable"))
		return;
	if (!strcmp(mode, "manual-only")) {
		if (!boolean(p->vm, "manual", false))
			add(p->fails, "migration-mode",
			    "the VM is manual-only: only an administrator's explicit request may migrate it");
	} else if (!strcmp(mode, "pinned")) {
		if (!list_has(json_object_get(p->vm, "pinned_hosts"), "name", dh))
			add(p->fails, "migration-mode",
			    "the VM is pinned and %s is not one of its hosts", dh);
	} else if (!strcmp(mode, "none")) {
		add(p->fails, "migration-mode", "the VM's migration mode is 'none': it never migrates");
	} else {
		add(p->fails, "migration-mode", "unknown migration mode '%s'", mode);
	}
}

static void warn_size(struct pc *p)
{
	uint64_t mem = num(p->vm, "memory", NULL, 0);
	uint64_t bw = num(p->dst, "bandwidth", NULL, 0);
	bool dflt = bw == 0;
	double secs;
	char a[32];

	if (dflt)
		bw = HOST_PRECHECK_DEFAULT_BANDWIDTH;
	secs = (double)mem / (double)bw;
	if (mem >= HOST_PRECHECK_LARGE_MEMORY)
		add(p->warns, "large-memory",
		    "the VM has %s of memory (1 TiB or more): migration takes long and may not converge while the guest writes memory",
		    fmt_bytes(mem, a, sizeof(a)));
	add(p->warns, "duration-estimate",
	    "copying %s once at %.0f MB/s%s takes about %.0f s; pages the guest rewrites are copied again",
	    fmt_bytes(mem, a, sizeof(a)), (double)bw / 1e6, dflt ? " (1 Gbit/s, assumed)" : "",
	    secs < 1 ? 1 : secs);
}

json_t *host_precheck(const json_t *vm, const json_t *src_facts,
		      const json_t *dst_facts, const json_t *dst_state,
		      json_t *warnings_out)
{
	struct pc p = {
		.vm = vm, .src = src_facts, .dst = dst_facts, .dst_state = dst_state,
		.fails = json_array(), .warns = json_is_array(warnings_out) ? warnings_out : NULL,
	};

	if (!p.fails)
		return NULL;
	check_hosts(&p);
	check_state(&p);
	check_cpu_model(&p);
	check_resources(&p);
	check_devices(&p);
	check_mode(&p);
	warn_size(&p);
	return p.fails;
}
