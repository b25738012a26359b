/*
 * precheck.c - STAND-IN pre-migration checks with h/cpumodel's contract:
 * every rule evaluated, every failure reported with its reason.
 */
#include "precheck.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static json_int_t num(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void fail(json_t *out, const char *check, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(json_t *out, const char *check, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(out, json_pack("{s:s, s:s}", "check", check,
					     "reason", buf));
}

static bool in_array(const json_t *a, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(a, i, v)
		if (!strcmp(json_string_value(v) ? json_string_value(v) : "", s))
			return true;
	return false;
}

static void check_hosts(json_t *out, const json_t *vm, const json_t *src,
			const json_t *dst)
{
	if (!strcmp(str(src, "host"), str(dst, "host")))
		fail(out, "destination", "the destination %s is the source host",
		     str(dst, "host"));
	if (!json_is_true(json_object_get(src, "up")) ||
	    !json_is_true(json_object_get(dst, "up")))
		fail(out, "hosts_up", "both hosts must be up");
	if (strcmp(str(src, "cluster"), str(dst, "cluster")))
		fail(out, "cluster", "source is in cluster '%s', destination in '%s'",
		     str(src, "cluster"), str(dst, "cluster"));
	if (json_is_true(json_object_get(dst, "maintenance")))
		fail(out, "maintenance", "destination %s is in maintenance",
		     str(dst, "host"));
	if (strcmp(str(vm, "state"), "running") && strcmp(str(vm, "state"), "paused"))
		fail(out, "vm_state", "the VM is %s; only a running or paused VM migrates",
		     str(vm, "state"));
}

static void check_mode(json_t *out, const json_t *vm, const json_t *dst)
{
	const char *mode = str(vm, "migration_mode");

	if (!strcmp(mode, "none"))
		fail(out, "migration_mode", "the VM's migration mode is 'none'");
	else if (!strcmp(mode, "manual-only") &&
		 !json_is_true(json_object_get(vm, "manual")))
		fail(out, "migration_mode", "the VM migrates only when asked by hand (manual-only)");
	else if (!strcmp(mode, "pinned") &&
		 !in_array(json_object_get(vm, "pinned_hosts"), str(dst, "host")))
		fail(out, "migration_mode", "the VM is pinned to hosts that do not include %s",
		     str(dst, "host"));
}

static void check_cpu(json_t *out, const json_t *vm, const json_t *src,
		      const json_t *dst)
{
	const char *m = str(vm, "cpu_model");

	if (!*m || !strcmp(m, "host-model")) {
		if (strcmp(str(src, "host_model"), str(dst, "host_model")))
			fail(out, "cpu_model", "host-model VM: destination CPU '%s' differs from '%s'",
			     str(dst, "host_model"), str(src, "host_model"));
		return;
	}
	if (!in_array(json_object_get(dst, "models"), m))
		fail(out, "cpu_model", "destination %s does not offer CPU model %s",
		     str(dst, "host"), m);
}

static void check_resources(json_t *out, const json_t *vm, const json_t *dst,
			    const json_t *st)
{
	json_int_t free_mem = num(dst, "memory_allocatable") - num(st, "allocated_memory");
	json_int_t free_cpu = num(dst, "cpus_allocatable") - num(st, "allocated_vcpus");
	size_t i;
	json_t *v;

	if (num(vm, "memory") > free_mem)
		fail(out, "memory", "the VM needs %" JSON_INTEGER_FORMAT " MiB, the destination has %" JSON_INTEGER_FORMAT " MiB free",
		     num(vm, "memory") >> 20, free_mem > 0 ? free_mem >> 20 : 0);
	if (num(vm, "vcpus") > free_cpu)
		fail(out, "cpus", "the VM needs %" JSON_INTEGER_FORMAT " vCPUs, the destination has %" JSON_INTEGER_FORMAT " free",
		     num(vm, "vcpus"), free_cpu > 0 ? free_cpu : 0);
	json_array_foreach(json_object_get(vm, "networks"), i, v)
		if (!in_array(json_object_get(dst, "networks"), json_string_value(v) ? json_string_value(v) : ""))
			fail(out, "networks", "network %s is missing on the destination", json_string_value(v));
	json_array_foreach(json_object_get(vm, "disks"), i, v)
		if (!in_array(json_object_get(dst, "storage"), json_string_value(v) ? json_string_value(v) : ""))
			fail(out, "storage", "storage %s is missing on the destination", json_string_value(v));
}

json_t *host_precheck(const json_t *vm, const json_t *src_facts,
		      const json_t *dst_facts, const json_t *dst_state,
		      json_t *warnings_out)
{
	json_t *out = json_array();

	if (!out)
		return NULL;
	check_hosts(out, vm, src_facts, dst_facts);
	check_mode(out, vm, dst_facts);
	check_cpu(out, vm, src_facts, dst_facts);
	check_resources(out, vm, dst_facts, dst_state);
	if (warnings_out && num(vm, "memory") >= ((json_int_t)1 << 40))
		json_array_append_new(warnings_out, json_string(
			"VM memory is 1 TiB or more: the migration may take very long"));
	return out;
}
