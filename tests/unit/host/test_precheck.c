/*
 * test_precheck.c - the pre-migration checks: each rule failing on its
 * own, all failures reported together, paused and stopped VMs, warnings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "precheck.h"

static json_t *host(const char *name)
{
	return json_pack("{s:s, s:s, s:b, s:b, s:s, s:s, s:{s:s, s:[s,s,s]},"
			 " s:[s,s], s:b, s:{s:I}, s:{s:I}, s:[s], s:[s]}",
			 "host", name, "cluster", "c1", "up", 1, "maintenance", 0,
			 "host_model", "Haswell", "host_model_id", "abc",
			 "cpu", "vendor", "GenuineIntel", "flags", "sse2", "avx", "avx2",
			 "cpu_models", "x86-64-v2", "Haswell", "host_model_allowed", 1,
			 "memory", "allocatable", (json_int_t)(8ULL << 30),
			 "cpus", "allocatable", (json_int_t)2,
			 "networks", "br0", "storage", "nfs1");
}

static json_t *vm(void)
{
	return json_pack("{s:s, s:I, s:i, s:s, s:s, s:s, s:[s], s:[{s:s, s:s}]}",
			 "name", "vm1", "memory", (json_int_t)(1ULL << 30), "vcpus", 1,
			 "cpu_model", "x86-64-v2", "migration_mode", "migratable",
			 "state", "running", "networks", "br0",
			 "disks", "path", "/d/vm1.img", "storage", "nfs1");
}

struct fx {
	json_t *vm, *src, *dst, *st, *warn;
};

static int setup(void **state)
{
	static struct fx f;

	f.vm = vm();
	f.src = host("a");
	f.dst = host("b");
	f.st = json_pack("{s:I, s:i}", "allocated_memory", (json_int_t)(1ULL << 30),
			 "allocated_vcpus", 1);
	f.warn = json_array();
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	json_decref(f->vm);
	json_decref(f->src);
	json_decref(f->dst);
	json_decref(f->st);
	json_decref(f->warn);
	return 0;
}

static json_t *run(struct fx *f)
{
	json_array_clear(f->warn);
	return host_precheck(f->vm, f->src, f->dst, f->st, f->warn);
}

/* The result has exactly one failure and it is `check`; returns its reason. */
static void expect_one(struct fx *f, const char *check, const char *needle)
{
	json_t *r = run(f);
	const char *reason;

	if (json_array_size(r) != 1) {
		char *s = json_dumps(r, 0);

		print_error("expected one failure (%s), got %s\n", check, s);
		free(s);
		fail();
	}
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "check")), check);
	reason = json_string_value(json_object_get(json_array_get(r, 0), "reason"));
	assert_non_null(strstr(reason, needle));
	json_decref(r);
}

static void expect_none(struct fx *f)
{
	json_t *r = run(f);

	assert_int_equal(json_array_size(r), 0);
	json_decref(r);
}

static void test_ok(void **state)
{
	struct fx *f = *state;
	json_t *r = run(f);

	assert_int_equal(json_array_size(r), 0);
	/* the duration estimate is always given; 1 GiB at 1 Gbit/s ~ 9 s */
	assert_int_equal(json_array_size(f->warn), 1);
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(f->warn, 0), "reason")),
			       "about 9 s"));
	json_decref(r);
}

static void test_each_host_rule(void **state)
{
	struct fx *f = *state;

	json_object_set_new(f->dst, "host", json_string("a"));
	expect_one(f, "same-host", "current host");
	json_object_set_new(f->dst, "host", json_string("b"));
	json_object_set_new(f->dst, "up", json_false());
	expect_one(f, "host-down", "destination host b is down");
	json_object_set_new(f->dst, "up", json_true());
	json_object_set_new(f->src, "up", json_false());
	expect_one(f, "host-down", "source host a is down");
	json_object_set_new(f->src, "up", json_true());
	json_object_set_new(f->dst, "cluster", json_string("c2"));
	expect_one(f, "cluster-mismatch", "'c2'");
	json_object_set_new(f->dst, "cluster", json_string("c1"));
	json_object_set_new(f->dst, "maintenance", json_true());
	expect_one(f, "maintenance", "maintenance");
}

static void test_vm_state(void **state)
{
	struct fx *f = *state;
	json_t *r;

	json_object_set_new(f->vm, "state", json_string("stopped"));
	expect_one(f, "vm-state", "stopped");
	json_object_set_new(f->vm, "state", json_string("paused"));
	r = run(f);
	assert_int_equal(json_array_size(r), 0);	/* a paused VM migrates */
	assert_string_equal(json_string_value(json_object_get(json_array_get(f->warn, 0), "check")),
			    "paused");
	json_decref(r);
	json_object_set_new(f->vm, "state", json_string("crashed"));
	expect_one(f, "vm-state", "'crashed'");
}

static void test_cpu_model(void **state)
{
	struct fx *f = *state;

	json_object_set_new(f->vm, "cpu_model", json_string("x86-64-v3"));
	expect_one(f, "cpu-model", "does not offer cpu model 'x86-64-v3'");
	json_object_set_new(f->dst, "cpu_models_unsupported",
			    json_pack("{s:s}", "x86-64-v3", "needs avx2, which this host lacks"));
	expect_one(f, "cpu-model", "needs avx2");
	/* named model: vendor stays the host's */
	json_object_set_new(f->vm, "cpu_model", json_string("Haswell"));
	json_object_set_new(json_object_get(f->dst, "cpu"), "vendor", json_string("AuthenticAMD"));
	expect_one(f, "cpu-model", "vendor");
	json_object_set_new(json_object_get(f->dst, "cpu"), "vendor", json_string("GenuineIntel"));
	/* host-model: same model name, same flags, same id */
	json_object_set_new(f->vm, "cpu_model", json_string("host-model"));
	expect_none(f);
	json_object_set_new(f->dst, "host_model", json_string("Broadwell"));
	expect_one(f, "cpu-model", "host model Broadwell differs from the source's Haswell");
	json_object_set_new(f->dst, "host_model", json_string("Haswell"));
	json_array_remove(json_object_get(json_object_get(f->dst, "cpu"), "flags"), 2);
	expect_one(f, "cpu-model", "lacks avx2");
	json_array_append_new(json_object_get(json_object_get(f->dst, "cpu"), "flags"),
			      json_string("avx2"));
	json_object_set_new(f->dst, "host_model_id", json_string("other"));
	expect_one(f, "cpu-model", "differs from the source's");
	json_object_set_new(f->dst, "host_model_id", json_string("abc"));
	json_object_set_new(f->dst, "host_model_allowed", json_false());
	expect_one(f, "cpu-model", "does not offer");
}

static void test_resources(void **state)
{
	struct fx *f = *state;

	json_object_set_new(f->vm, "memory", json_integer((json_int_t)(8ULL << 30)));
	expect_one(f, "memory", "needs 8.0 GiB");
	json_object_set_new(f->vm, "memory", json_integer(1 << 30));
	json_object_set_new(f->vm, "vcpus", json_integer(8));	/* 1 + 8 > 2 x 4 */
	expect_one(f, "cpu", "needs 8 vCPUs");
	json_object_set_new(f->vm, "vcpus", json_integer(7));	/* 1 + 7 = 8: fits */
	expect_none(f);
}

static void test_devices(void **state)
{
	struct fx *f = *state;

	json_array_append_new(json_object_get(f->vm, "networks"), json_string("br9"));
	expect_one(f, "network", "'br9'");
	json_array_remove(json_object_get(f->vm, "networks"), 1);
	json_object_set_new(json_array_get(json_object_get(f->vm, "disks"), 0), "storage",
			    json_string("local"));
	expect_one(f, "storage", "'local'");
}

static void test_migration_mode(void **state)
{
	struct fx *f = *state;

	json_object_set_new(f->vm, "migration_mode", json_string("none"));
	expect_one(f, "migration-mode", "never migrates");
	json_object_set_new(f->vm, "migration_mode", json_string("manual-only"));
	expect_one(f, "migration-mode", "manual-only");
	json_object_set_new(f->vm, "manual", json_true());
	expect_none(f);
	json_object_set_new(f->vm, "migration_mode", json_string("pinned"));
	json_object_set_new(f->vm, "pinned_hosts", json_pack("[s,s]", "a", "c"));
	expect_one(f, "migration-mode", "b is not one of its hosts");
	json_array_append_new(json_object_get(f->vm, "pinned_hosts"), json_string("b"));
	expect_none(f);
	json_object_set_new(f->vm, "migration_mode", json_string("sometimes"));
	expect_one(f, "migration-mode", "unknown");
}

static void test_all_failures_together(void **state)
{
	struct fx *f = *state;
	static const char *const want[] = {
		"same-host", "host-down", "maintenance", "vm-state", "cpu-model", "memory",
		"network", "migration-mode",
	};
	json_t *r;

	json_object_set_new(f->dst, "host", json_string("a"));
	json_object_set_new(f->dst, "up", json_false());
	json_object_set_new(f->dst, "maintenance", json_true());
	json_object_set_new(f->vm, "state", json_string("stopped"));
	json_object_set_new(f->vm, "cpu_model", json_string("EPYC"));
	json_object_set_new(f->vm, "memory", json_integer((json_int_t)(64ULL << 30)));
	json_object_set_new(f->vm, "networks", json_pack("[s]", "br7"));
	json_object_set_new(f->vm, "migration_mode", json_string("none"));
	r = run(f);
	assert_int_equal(json_array_size(r), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(r, i), "check")),
				    want[i]);
	json_decref(r);
}

static void test_large_memory_warning(void **state)
{
	struct fx *f = *state;
	json_t *r;

	json_object_set_new(f->vm, "memory", json_integer((json_int_t)(1ULL << 40)));
	json_object_set_new(f->dst, "memory", json_pack("{s:I}", "allocatable", (json_int_t)(4ULL << 40)));
	json_object_set_new(f->dst, "bandwidth", json_integer(1250000000));	/* 10 Gbit/s */
	r = run(f);
	assert_int_equal(json_array_size(r), 0);
	assert_int_equal(json_array_size(f->warn), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(f->warn, 0), "check")),
			    "large-memory");
	/* 2^40 / 1.25e9 = 879.6 s */
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(f->warn, 1), "reason")),
			       "about 880 s"));
	json_decref(r);
}

static void test_hostile_input(void **state)
{
	json_t *junk = json_pack("{s:i, s:[i], s:{}}", "memory", -5, "networks", 3, "disks");
	json_t *r = host_precheck(junk, junk, junk, junk, NULL);

	assert_non_null(r);		/* no crash; reports what it can */
	json_decref(r);
	r = host_precheck(NULL, NULL, NULL, NULL, NULL);
	assert_non_null(r);
	json_decref(r);
	json_decref(junk);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_ok), T(test_each_host_rule), T(test_vm_state), T(test_cpu_model),
		T(test_resources), T(test_devices), T(test_migration_mode),
		T(test_all_failures_together), T(test_large_memory_warning),
		T(test_hostile_input),
	};

	return cmocka_run_group_tests_name("host-precheck", tests, NULL, NULL);
}
