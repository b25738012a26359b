/*
 * test_parse.c - what ternd reads from outside (ternd/parse.h): VM
 * definitions (each bad field with its own message, all together,
 * defaults and the cluster's default CPU model), the configuration file
 * (each bad key, every bad line reported), request bodies and query
 * parameters, and what a bearer token is worth.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "parse.h"
#include "util.h"

static char kernel[64];

static int setup_kernel(void **state)
{
	int fd;

	snprintf(kernel, sizeof(kernel), "/tmp/ternd-test-kernel-XXXXXX");
	fd = mkstemp(kernel);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown_kernel(void **state)
{
	unlink(kernel);
	return 0;
}

/* The error message for `field`, or NULL. */
static const char *field_msg(json_t *errors, const char *field)
{
	size_t i;
	json_t *e;

	json_array_foreach(errors, i, e)
		if (!strcmp(json_string_value(json_object_get(e, "field")), field))
			return json_string_value(json_object_get(e, "error"));
	return NULL;
}

static json_t *good_spec(void)
{
	return json_pack("{s:s, s:s, s:i, s:s}", "name", "vm1", "memory", "128M",
			 "vcpus", 2, "kernel", kernel);
}

/* ---- VM definitions ---- */

static void spec_good_normalized(void **state)
{
	json_t *spec = good_spec(), *errors = json_array();
	json_t *out = ternd_vm_validate(spec, NULL, errors);

	assert_non_null(out);
	assert_int_equal(json_array_size(errors), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "memory")), 128 << 20);
	assert_string_equal(json_string_value(json_object_get(out, "cpu_model")), "host-model");
	assert_string_equal(json_string_value(json_object_get(out, "migration_mode")), "migratable");
	assert_int_equal(json_array_size(json_object_get(out, "networks")), 0);
	assert_true(json_is_false(json_object_get(out, "memory_prealloc")));
	json_decref(out);
	json_decref(spec);
	json_decref(errors);
}

static void spec_default_cpu_model(void **state)
{
	json_t *spec = good_spec(), *errors = json_array(), *out;

	out = ternd_vm_validate(spec, "x86-64-v2", errors);
	assert_non_null(out);
	assert_string_equal(json_string_value(json_object_get(out, "cpu_model")), "x86-64-v2");
	json_decref(out);
	/* the VM's own model wins over the default */
	json_object_set_new(spec, "cpu_model", json_string("x86-64-v1"));
	out = ternd_vm_validate(spec, "x86-64-v2", errors);
	assert_string_equal(json_string_value(json_object_get(out, "cpu_model")), "x86-64-v1");
	json_decref(out);
	json_decref(spec);
	json_decref(errors);
}

/* Every field wrong at once: one message each, all reported. */
static void spec_all_errors_together(void **state)
{
	static const char *const fields[] = {
		"bogus", "name", "memory", "vcpus", "kernel", "initrd", "cmdline",
		"cpu_model", "migration_mode", "pinned_hosts", "networks", "disks",
		"memory_prealloc",
	};
	json_t *errors = json_array();
	json_t *spec = json_pack("{s:i, s:s, s:s, s:i, s:s, s:s, s:i, s:s, s:s, s:s, s:[s], s:i, s:s}",
				 "bogus", 1, "name", "-bad", "memory", "1K", "vcpus", 999,
				 "kernel", "relative/path", "initrd", "/no/such/file",
				 "cmdline", 7, "cpu_model", "Pentium", "migration_mode", "often",
				 "pinned_hosts", "", "networks", "a b", "disks", 3,
				 "memory_prealloc", "yes");

	assert_null(ternd_vm_validate(spec, NULL, errors));
	assert_int_equal(json_array_size(errors), ARRAY_SIZE(fields));
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		assert_non_null(field_msg(errors, fields[i]));
	assert_non_null(strstr(field_msg(errors, "bogus"), "unknown field"));
	assert_non_null(strstr(field_msg(errors, "memory"), "64M..4T"));
	assert_non_null(strstr(field_msg(errors, "vcpus"), "1 to 254"));
	assert_non_null(strstr(field_msg(errors, "kernel"), "absolute"));
	assert_non_null(strstr(field_msg(errors, "initrd"), "no such file"));
	assert_non_null(strstr(field_msg(errors, "cpu_model"), "'Pentium'"));
	assert_non_null(strstr(field_msg(errors, "migration_mode"), "pinned"));
	assert_non_null(strstr(field_msg(errors, "memory_prealloc"), "true or false"));
	json_decref(spec);
	json_decref(errors);
}

static void spec_required_fields(void **state)
{
	json_t *errors = json_array(), *spec = json_object();

	assert_null(ternd_vm_validate(spec, NULL, errors));
	assert_int_equal(json_array_size(errors), 3);
	assert_non_null(field_msg(errors, "name"));
	assert_non_null(field_msg(errors, "memory"));
	assert_non_null(field_msg(errors, "kernel"));
	json_decref(spec);
	json_decref(errors);
}

static void spec_not_an_object(void **state)
{
	json_t *errors = json_array(), *spec = json_array();

	assert_null(ternd_vm_validate(spec, NULL, errors));
	assert_null(ternd_vm_validate(NULL, NULL, errors));
	assert_int_equal(json_array_size(errors), 2);
	json_decref(spec);
	json_decref(errors);
}

static void spec_edge_values(void **state)
{
	json_t *errors = json_array(), *spec = good_spec(), *out;

	json_object_set_new(spec, "name", json_stringn("a\0b", 3));	/* NUL inside */
	json_object_set_new(spec, "memory", json_integer(INT64_MAX));
	json_object_set_new(spec, "cmdline", json_stringn("x\0y", 3));
	assert_null(ternd_vm_validate(spec, NULL, errors));
	assert_int_equal(json_array_size(errors), 3);
	json_array_clear(errors);
	json_decref(spec);
	spec = good_spec();
	json_object_set_new(spec, "memory", json_integer(4096LL << 30));	/* 4T: max */
	json_object_set_new(spec, "migration_mode", json_string("pinned"));
	json_object_set_new(spec, "pinned_hosts", json_pack("[s]", "h1"));
	out = ternd_vm_validate(spec, NULL, errors);
	assert_non_null(out);
	json_decref(out);
	json_object_del(spec, "pinned_hosts");
	assert_null(ternd_vm_validate(spec, NULL, errors));
	assert_non_null(field_msg(errors, "pinned_hosts"));
	json_decref(spec);
	json_decref(errors);
}

/* ---- the configuration file ---- */

static size_t parse(struct ternd_config *cfg, const char *text, json_t *errors)
{
	ternd_config_defaults(cfg);
	return ternd_config_parse(cfg, text, strlen(text), errors);
}

static void config_good(void **state)
{
	static struct ternd_config cfg;
	json_t *errors = json_array();
	struct err err = { 0 };

	assert_int_equal(parse(&cfg, "# comment\n\nhost = h1\n  listen= 10.0.0.1:7070 \n"
			       "migration_ports = 100-200\nstop_timeout = 5\r\n"
			       "token = admin:s3cret\ntoken = viewer:look\nmaintenance = true\n"
			       "reserved_memory = 2G\ndefault_cpu_model = x86-64-v2\n"
			       "cpu_models = x86-64-v1, x86-64-v2\npeer_token = p33r", errors), 0);
	assert_string_equal(cfg.host, "h1");
	assert_string_equal(cfg.listen, "10.0.0.1:7070");
	assert_int_equal(cfg.port_min, 100);
	assert_int_equal(cfg.port_max, 200);
	assert_int_equal(cfg.stop_timeout_s, 5);
	assert_int_equal(cfg.n_tokens, 2);
	assert_true(cfg.maintenance);
	assert_int_equal(cfg.reserved_memory, 2ULL << 30);
	assert_string_equal(cfg.peer_token, "p33r");
	assert_int_equal(ternd_config_finish(&cfg, &err), 0);
	assert_string_equal(cfg.default_cpu_model, "x86-64-v2");
	assert_int_equal(cfg.hostcfg.n_allowed, 2);
	assert_string_equal(cfg.socket, "/run/tern/ternd.sock");
	json_decref(errors);
}

/* Each bad line gets its own error naming the key; all are reported. */
static void config_every_bad_line(void **state)
{
	static const char *const bad[] = {
		"bogus_key = 1", "no equals sign", "stop_timeout = soon",
		"stop_timeout = 86401", "hook_timeout = -1", "maintenance = yes",
		"migration_ports = 200-100", "migration_ports = 0-10",
		"migration_ports = 1-70000", "migration_ports = 5", "token = root:x",
		"token = admin:", "token = admin:a b", "reserved_memory = lots",
		"keepalive_interval = 1.5", "reserved_cpus = 99999",
	};
	static struct ternd_config cfg;
	json_t *errors = json_array();
	char text[2048] = "", host[300];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		strcat(text, bad[i]);
		strcat(text, "\nhost = ok\n");
	}
	memset(host, 'h', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	strcat(text, "host = ");
	strcat(text, host);
	assert_int_equal(parse(&cfg, text, errors), ARRAY_SIZE(bad) + 1);
	for (size_t i = 0; i < json_array_size(errors); i++) {
		json_t *e = json_array_get(errors, i);

		assert_int_equal(json_integer_value(json_object_get(e, "line")), 2 * i + 1);
		assert_true(strlen(json_string_value(json_object_get(e, "error"))) > 5);
	}
	assert_non_null(strstr(field_msg(errors, "bogus_key"), "unknown key"));
	assert_non_null(strstr(field_msg(errors, "stop_timeout"), "0 to 86400"));
	assert_non_null(strstr(field_msg(errors, "token"), "admin:SECRET"));
	assert_non_null(strstr(field_msg(errors, "host"), "63 bytes"));
	assert_string_equal(cfg.host, "ok");	/* good lines still apply */
	json_decref(errors);
}

static void config_tokens_limit_and_nul(void **state)
{
	static struct ternd_config cfg;
	json_t *errors = json_array();
	char text[1024] = "";
	const char nul[] = "host = a\0b\n";

	for (int i = 0; i < TERND_TOKENS_MAX + 1; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "token = viewer:t%d\n", i);
	assert_int_equal(parse(&cfg, text, errors), 1);
	assert_int_equal(cfg.n_tokens, TERND_TOKENS_MAX);
	ternd_config_defaults(&cfg);
	assert_int_equal(ternd_config_parse(&cfg, nul, sizeof(nul) - 1, errors), 1);
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(errors, 1), "error")),
			       "NUL"));
	json_decref(errors);
}

static void config_finish_checks(void **state)
{
	static struct ternd_config cfg;
	json_t *errors = json_array();
	struct err err = { 0 };

	parse(&cfg, "default_cpu_model = Pentium\n", errors);
	assert_int_equal(ternd_config_finish(&cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "default_cpu_model"));
	err_clear(&err);
	parse(&cfg, "cpu_models = x86-64-v1, nope\n", errors);
	assert_int_equal(ternd_config_finish(&cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'nope'"));
	err_clear(&err);
	parse(&cfg, "cpu_models = x86-64-v1\ndefault_cpu_model = x86-64-v2\n", errors);
	assert_int_equal(ternd_config_finish(&cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not in cpu_models"));
	err_clear(&err);
	parse(&cfg, "tls_cert = /x\n", errors);
	assert_int_equal(ternd_config_finish(&cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "all three"));
	err_clear(&err);
	parse(&cfg, "tls_admins = ops\n", errors);
	assert_int_equal(ternd_config_finish(&cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "need tls_cert"));
	err_clear(&err);
	parse(&cfg, "tls_require_client_cert = true\n", errors);
	assert_int_equal(ternd_config_finish(&cfg, &err), -EINVAL);
	err_clear(&err);
	parse(&cfg, "tls_cert = /c\ntls_key = /k\ntls_ca = /ca\n", errors);
	assert_int_equal(ternd_config_finish(&cfg, &err), 0);
	assert_true(cfg.tls);
	assert_false(cfg.tls_require_client_cert);
	assert_int_equal(json_array_size(errors), 0);
	json_decref(errors);
}

/* The TLS keys: each parsed, bad values named with their line. */
static void config_tls_keys(void **state)
{
	static struct ternd_config cfg;
	json_t *errors = json_array();
	struct err err = { 0 };
	char long_list[600];

	parse(&cfg, "tls_cert = /p/a.pem\ntls_key = /p/a-key.pem\ntls_ca = /p/ca.pem\n"
		    "tls_peers = a, b,c\ntls_admins = ops\ntls_viewers = mon1 mon2\n"
		    "tls_require_client_cert = true\n", errors);
	assert_int_equal(json_array_size(errors), 0);
	assert_int_equal(ternd_config_finish(&cfg, &err), 0);
	assert_true(cfg.tls && cfg.tls_require_client_cert);
	assert_string_equal(cfg.tls_peers, "a, b,c");
	assert_string_equal(cfg.tls_viewers, "mon1 mon2");
	memset(long_list, 'x', sizeof(long_list) - 1);
	long_list[sizeof(long_list) - 1] = '\0';
	ternd_config_defaults(&cfg);
	ternd_config_parse(&cfg, "tls_require_client_cert = yes\n", 30, errors);
	assert_int_equal(json_array_size(errors), 1);
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(errors, 0), "error")),
			       "true or false"));
	json_array_clear(errors);
	{
		char text[700];

		snprintf(text, sizeof(text), "tls_admins = %s\n", long_list);
		ternd_config_parse(&cfg, text, strlen(text), errors);
	}
	assert_int_equal(json_array_size(errors), 1);
	assert_string_equal(field_msg(errors, "tls_admins"),
			    "bad value: want a list of certificate names of at most 511 bytes");
	json_decref(errors);
}

/* Certificate names -> role: peers and admins are admin, best wins. */
static void tls_roles(void **state)
{
	static struct ternd_config cfg;
	json_t *errors = json_array();

	parse(&cfg, "tls_peers = host-a,host-b\ntls_admins = Ops\ntls_viewers = mon, ops2\n",
	      errors);
	assert_int_equal(ternd_tls_role(&cfg, "host-a, 10.0.0.1"), TERND_ROLE_ADMIN);
	assert_int_equal(ternd_tls_role(&cfg, "10.0.0.2, host-b"), TERND_ROLE_ADMIN);
	assert_int_equal(ternd_tls_role(&cfg, "ops"), TERND_ROLE_ADMIN);	/* DNS: any case */
	assert_int_equal(ternd_tls_role(&cfg, "mon"), TERND_ROLE_VIEWER);
	assert_int_equal(ternd_tls_role(&cfg, "mon, ops"), TERND_ROLE_ADMIN);
	assert_int_equal(ternd_tls_role(&cfg, "ops2"), TERND_ROLE_VIEWER);
	assert_int_equal(ternd_tls_role(&cfg, "host"), TERND_ROLE_INVALID);	/* no prefixes */
	assert_int_equal(ternd_tls_role(&cfg, "host-a-evil"), TERND_ROLE_INVALID);
	assert_int_equal(ternd_tls_role(&cfg, "op"), TERND_ROLE_INVALID);
	assert_int_equal(ternd_tls_role(&cfg, ""), TERND_ROLE_INVALID);
	assert_int_equal(ternd_tls_role(&cfg, NULL), TERND_ROLE_INVALID);
	assert_int_equal(ternd_tls_role(&cfg, ", ,"), TERND_ROLE_INVALID);
	assert_true(ternd_list_has(" a ,b\tc", "c"));
	assert_false(ternd_list_has("a,b", ""));
	assert_false(ternd_list_has(NULL, "a"));
	parse(&cfg, "", errors);
	assert_int_equal(ternd_tls_role(&cfg, "host-a"), TERND_ROLE_INVALID);
	json_decref(errors);
}

static void config_load_file(void **state)
{
	static struct ternd_config cfg;
	char path[] = "/tmp/ternd-test-conf-XXXXXX";
	json_t *errors = json_array();
	struct err err = { 0 };
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "host = a\nwat = 1\nstop_timeout = x\n", 34), 34);
	close(fd);
	ternd_config_defaults(&cfg);
	assert_int_equal(ternd_config_load(&cfg, path, true, errors, &err), -EINVAL);
	assert_non_null(strstr(err.msg, ":2: wat: unknown key 'wat' (2 bad lines)"));
	unlink(path);
	assert_int_equal(ternd_config_load(&cfg, path, false, errors, &err), 0);
	err_clear(&err);
	assert_int_equal(ternd_config_load(&cfg, path, true, errors, &err), -ENOENT);
	json_decref(errors);
}

/* ---- request input ---- */

static void events_args(void **state)
{
	struct ternd_events_args a;
	json_t *errors = json_array();

	assert_int_equal(ternd_events_args_parse(NULL, NULL, NULL, &a, errors), 0);
	assert_int_equal(a.after, -1);
	assert_int_equal(a.wait_s, 0);
	assert_int_equal(ternd_events_args_parse("vm1", "42", "25", &a, errors), 0);
	assert_string_equal(a.vm, "vm1");
	assert_int_equal(a.after, 42);
	assert_int_equal(a.wait_s, 25);
	assert_int_equal(ternd_events_args_parse("../x", "1e3", "31", &a, errors), -EINVAL);
	assert_int_equal(json_array_size(errors), 3);
	assert_non_null(field_msg(errors, "vm"));
	assert_non_null(field_msg(errors, "after"));
	assert_non_null(field_msg(errors, "wait"));
	json_array_clear(errors);
	assert_int_equal(ternd_events_args_parse(NULL, "-2", "-1", &a, errors), -EINVAL);
	assert_int_equal(ternd_events_args_parse(NULL, "99999999999999999999", " 1", &a, errors),
			 -EINVAL);
	assert_int_equal(json_array_size(errors), 4);
	json_decref(errors);
}

static void stop_args(void **state)
{
	json_t *errors = json_array(), *b;
	unsigned t;
	bool force;

	assert_int_equal(ternd_stop_args_parse(NULL, &force, &t, errors), 0);
	assert_false(force);
	assert_int_equal(t, 0);
	b = json_pack("{s:b, s:i}", "force", 1, "timeout_s", 5);
	assert_int_equal(ternd_stop_args_parse(b, &force, &t, errors), 0);
	assert_true(force);
	assert_int_equal(t, 5);
	json_decref(b);
	b = json_pack("{s:s, s:i, s:i}", "force", "yes", "timeout_s", 0, "now", 1);
	assert_int_equal(ternd_stop_args_parse(b, &force, &t, errors), -EINVAL);
	assert_int_equal(json_array_size(errors), 3);
	assert_non_null(strstr(field_msg(errors, "timeout_s"), "1 to 3600"));
	assert_non_null(strstr(field_msg(errors, "now"), "unknown"));
	json_decref(b);
	json_decref(errors);
}

static void migrate_args(void **state)
{
	json_t *errors = json_array(), *b;

	b = json_pack("{s:s, s:i, s:s, s:b}", "to", "10.0.0.2:7070", "bandwidth_mibs", 16,
		      "auto_converge", "on", "xbzrle", 1);
	assert_int_equal(ternd_migrate_args_check(b, errors), 0);
	json_decref(b);
	b = json_pack("{s:s, s:i, s:s, s:s, s:I, s:i, s:s}", "to", "a b", "bandwidth_mibs", -1,
		      "auto_converge", "maybe", "timeout_action", "explode",
		      "downtime_ms", (json_int_t)1 << 40, "check", 1, "extra", "x");
	assert_int_equal(ternd_migrate_args_check(b, errors), -EINVAL);
	assert_int_equal(json_array_size(errors), 7);
	assert_non_null(strstr(field_msg(errors, "auto_converge"), "auto|on|off"));
	assert_non_null(strstr(field_msg(errors, "check"), "true or false"));
	json_decref(b);
	json_array_clear(errors);
	b = json_object();
	assert_int_equal(ternd_migrate_args_check(b, errors), -EINVAL);
	assert_non_null(strstr(field_msg(errors, "to"), "required"));
	json_decref(b);
	json_decref(errors);
}

static void op_and_maintenance_args(void **state)
{
	json_t *errors = json_array(), *b = json_pack("{s:b}", "force", 1), *arr = json_array();
	bool on;

	assert_int_equal(ternd_op_args_check("start", NULL, errors), 0);
	assert_int_equal(ternd_op_args_check("start", b, errors), -EINVAL);
	assert_int_equal(ternd_op_args_check("stop", b, errors), 0);
	assert_int_equal(ternd_op_args_check("pause", arr, errors), -EINVAL);
	assert_int_equal(ternd_maintenance_args_parse(b, &on, errors), -EINVAL);
	assert_int_equal(ternd_maintenance_args_parse(NULL, &on, errors), -EINVAL);
	json_decref(b);
	b = json_pack("{s:b}", "maintenance", 1);
	assert_int_equal(ternd_maintenance_args_parse(b, &on, errors), 0);
	assert_true(on);
	json_decref(b);
	json_decref(arr);
	json_decref(errors);
}

static void token_roles(void **state)
{
	static struct ternd_config cfg;
	json_t *errors = json_array();

	parse(&cfg, "", errors);
	assert_int_equal(ternd_token_role(&cfg, "anything"), TERND_ROLE_INVALID);
	assert_int_equal(ternd_token_role(&cfg, ""), TERND_ROLE_INVALID);
	assert_int_equal(ternd_token_role(&cfg, NULL), TERND_ROLE_INVALID);
	parse(&cfg, "token = viewer:look\ntoken = admin:boss\npeer_token = p33r\n", errors);
	assert_int_equal(ternd_token_role(&cfg, "look"), TERND_ROLE_VIEWER);
	assert_int_equal(ternd_token_role(&cfg, "boss"), TERND_ROLE_ADMIN);
	assert_int_equal(ternd_token_role(&cfg, "p33r"), TERND_ROLE_ADMIN);
	assert_int_equal(ternd_token_role(&cfg, "boss2"), TERND_ROLE_INVALID);
	assert_int_equal(ternd_token_role(&cfg, "bos"), TERND_ROLE_INVALID);
	assert_int_equal(ternd_token_role(&cfg, "p33"), TERND_ROLE_INVALID);
	json_decref(errors);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(spec_good_normalized),
		cmocka_unit_test(spec_default_cpu_model),
		cmocka_unit_test(spec_all_errors_together),
		cmocka_unit_test(spec_required_fields),
		cmocka_unit_test(spec_not_an_object),
		cmocka_unit_test(spec_edge_values),
		cmocka_unit_test(config_good),
		cmocka_unit_test(config_every_bad_line),
		cmocka_unit_test(config_tokens_limit_and_nul),
		cmocka_unit_test(config_finish_checks),
		cmocka_unit_test(config_load_file),
		cmocka_unit_test(events_args),
		cmocka_unit_test(stop_args),
		cmocka_unit_test(migrate_args),
		cmocka_unit_test(op_and_maintenance_args),
		cmocka_unit_test(token_roles),
		cmocka_unit_test(config_tls_keys),
		cmocka_unit_test(tls_roles),
	};

	return cmocka_run_group_tests_name("ternd_parse", tests, setup_kernel, teardown_kernel);
}
