/*
 * test_request.c - the API's pure half: route table, request parser,
 * typed field parser and api_dispatch() with a fake backend.
 */
#define API_INTERNAL
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_internal.h"

static void expect_contains(const char *hay, const char *needle)
{
	if (!hay || !strstr(hay, needle)) {
		print_error("'%s' does not contain '%s'\n", hay ? hay : "(null)",
			    needle);
		fail();
	}
}

static void expect_printable(const char *s)
{
	for (; *s; s++)
		assert_true((unsigned char)*s >= 0x20 &&
			    (unsigned char)*s < 0x7f);
}

/* Parse with a body copied to an exact-size heap buffer (ASan sees over-reads). */
static int parse(const char *method, const char *path, const char *body,
		 size_t len, struct api_request *req, struct err *err)
{
	char *copy = len ? malloc(len) : NULL;
	int status;

	if (len)
		memcpy(copy, body, len);
	err_clear(err);
	status = api_parse_request(method, path, copy, len, req, err);
	free(copy);
	if (status != 200) {
		assert_true(err->code < 0);
		expect_printable(err->msg);
		assert_int_equal(req->action, API_ACTION_INVALID);
	}
	return status;
}

static int parse_s(const char *method, const char *path, const char *body,
		   struct api_request *req, struct err *err)
{
	return parse(method, path, body, body ? strlen(body) : 0, req, err);
}

/* ---- routes ---- */

static const struct {
	const char *method, *path;
	enum api_action action;
} good_routes[] = {
	{ "GET",  "/vm",          API_ACTION_GET_INFO },
	{ "POST", "/vm/pause",    API_ACTION_PAUSE },
	{ "POST", "/vm/resume",   API_ACTION_RESUME },
	{ "POST", "/vm/shutdown", API_ACTION_SHUTDOWN },
};

static void test_every_route(void **state)
{
	struct api_request req;
	struct err err;

	for (size_t i = 0; i < sizeof(good_routes) / sizeof(good_routes[0]); i++) {
		assert_int_equal(parse_s(good_routes[i].method,
					 good_routes[i].path, NULL, &req, &err),
				 200);
		assert_int_equal(req.action, good_routes[i].action);
		assert_int_equal(parse_s(good_routes[i].method,
					 good_routes[i].path, " \r\n\t", &req,
					 &err), 200);
		assert_int_equal(req.action, good_routes[i].action);
	}
}

static void test_post_bodies(void **state)
{
	static const char *const ok[] = { "{}", " { } \n", "{}\n" };
	struct api_request req;
	struct err err;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(parse_s("POST", "/vm/pause", ok[i], &req, &err),
				 200);
		assert_int_equal(req.action, API_ACTION_PAUSE);
	}
}

static void test_wrong_method(void **state)
{
	static const char *const methods[] = {
		"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "get", "post",
		"", "OPTIONS",
	};
	struct api_request req;
	struct err err;

	for (size_t i = 0; i < sizeof(good_routes) / sizeof(good_routes[0]); i++)
		for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
			if (!strcmp(methods[m], good_routes[i].method))
				continue;
			assert_int_equal(parse_s(methods[m], good_routes[i].path,
						 NULL, &req, &err), 405);
			expect_contains(err.msg, good_routes[i].method);
			expect_contains(err.msg, "not allowed");
		}
	assert_string_equal(api_allowed_methods("/vm"), "GET");
	assert_string_equal(api_allowed_methods("/vm/shutdown"), "POST");
	assert_null(api_allowed_methods("/nope"));
}

static void test_migrate_body(void **state)
{
	struct api_request req;
	struct err err;

	assert_int_equal(parse_s("POST", "/vm/migrate",
				 "{\"uri\":\"tcp:10.0.0.2:4444\",\"downtime_ms\":50,"
				 "\"bandwidth_mibs\":100}", &req, &err), 200);
	assert_int_equal(req.action, API_ACTION_MIGRATE);
	assert_string_equal(req.migrate.uri, "tcp:10.0.0.2:4444");
	assert_int_equal(req.migrate.downtime_ms, 50);
	assert_int_equal(req.migrate.bandwidth_mibs, 100);
	/* uri is required; limits are range-checked; nothing unknown */
	assert_int_equal(parse_s("POST", "/vm/migrate", "{}", &req, &err), 400);
	expect_contains(err.msg, "uri");
	assert_int_equal(parse_s("POST", "/vm/migrate", NULL, &req, &err), 400);
	assert_int_equal(parse_s("POST", "/vm/migrate",
				 "{\"uri\":\"tcp:h:1\",\"downtime_ms\":0}", &req, &err), 400);
	expect_contains(err.msg, "downtime_ms");
	assert_int_equal(parse_s("POST", "/vm/migrate",
				 "{\"uri\":\"tcp:h:1\",\"downtime_ms\":-5}", &req, &err), 400);
	assert_int_equal(parse_s("POST", "/vm/migrate",
				 "{\"uri\":\"tcp:h:1\",\"speed\":1}", &req, &err), 400);
	expect_contains(err.msg, "speed");
	assert_int_equal(parse_s("POST", "/vm/migrate",
				 "{\"uri\":42}", &req, &err), 400);
	assert_int_equal(parse_s("GET", "/vm/migration", NULL, &req, &err), 200);
	assert_int_equal(req.action, API_ACTION_MIGRATE_STATUS);
	assert_int_equal(parse_s("POST", "/vm/migration/cancel", NULL, &req, &err), 200);
	assert_int_equal(req.action, API_ACTION_MIGRATE_CANCEL);
	assert_int_equal(parse_s("GET", "/vm/migration/cancel", NULL, &req, &err), 405);
}

static void test_unknown_path(void **state)
{
	static const char *const paths[] = {
		"", "/", "/vm/", "/VM", "/vm/pause/", "//vm", "/vm?x=1",
		"/vm/migrat", "/vm/migration/", "/vm/pause\n", "vm", "/vm/../vm",
	};
	struct api_request req;
	struct err err;

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		assert_int_equal(parse_s("GET", paths[i], NULL, &req, &err), 404);
		expect_contains(err.msg, "no such endpoint");
		assert_int_equal(parse_s("POST", paths[i], "{}", &req, &err),
				 404);
	}
}

static void test_hostile_path_in_message(void **state)
{
	char path[4096];
	struct api_request req;
	struct err err;

	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	path[0] = '/';
	path[1] = '\x01';
	path[2] = '\xff';
	path[3] = '\n';
	assert_int_equal(parse_s("GET", path, NULL, &req, &err), 404);
	expect_contains(err.msg, "/???aaa");
	expect_contains(err.msg, "...");
	assert_true(strlen(err.msg) < 128);
}

/* ---- bodies ---- */

static void test_get_with_body(void **state)
{
	struct api_request req;
	struct err err;

	assert_int_equal(parse_s("GET", "/vm", "{}", &req, &err), 400);
	expect_contains(err.msg, "takes no request body");
	assert_int_equal(parse_s("GET", "/vm", "x", &req, &err), 400);
}

static void test_malformed_json(void **state)
{
	static const char *const bad[] = {
		"{", "}", "{\"a\"", "{\"a\":}", "{'a':1}", "{,}", "nul",
		"{\"a\":1,}", "\xff\xfe", "{\"\xc3\x28\":1}", "{\"a\":\"\\u0000\"}",
		"{\"a\":01}", "{\"a\":99999999999999999999999}",
	};
	struct api_request req;
	struct err err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_s("POST", "/vm/shutdown", bad[i], &req,
					 &err), 400);
		expect_contains(err.msg, "invalid JSON at line 1 column");
	}
}

static void test_json_position_reported(void **state)
{
	struct api_request req;
	struct err err;

	assert_int_equal(parse_s("POST", "/vm/pause", "{\n  \"a\": ?\n}", &req,
				 &err), 400);
	expect_contains(err.msg, "line 2 column");
}

static void test_trailing_garbage(void **state)
{
	static const char *const bad[] = { "{} x", "{}{}", "{}]", "{} 1" };
	struct api_request req;
	struct err err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_s("POST", "/vm/resume", bad[i], &req,
					 &err), 400);
		expect_contains(err.msg, "invalid JSON");
	}
}

static void test_nul_bytes(void **state)
{
	struct api_request req;
	struct err err;

	assert_int_equal(parse("POST", "/vm/pause", "{}\0", 3, &req, &err), 400);
	assert_int_equal(parse("POST", "/vm/pause", "\0{}", 3, &req, &err), 400);
	assert_int_equal(parse("POST", "/vm/pause", " \0", 2, &req, &err), 400);
	assert_int_equal(parse("GET", "/vm", "\0", 1, &req, &err), 400);
}

static void test_non_object(void **state)
{
	static const char *const bad[] = {
		"[]", "[{}]", "1", "-1.5", "\"{}\"", "null", "true", "false",
	};
	struct api_request req;
	struct err err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_s("POST", "/vm/pause", bad[i], &req,
					 &err), 400);
		expect_contains(err.msg, "must be a JSON object");
	}
}

static void test_unknown_fields(void **state)
{
	struct api_request req;
	struct err err;

	assert_int_equal(parse_s("POST", "/vm/shutdown", "{\"force\": true}",
				 &req, &err), 400);
	assert_string_equal(err.msg, "unknown field 'force'");
	assert_int_equal(parse_s("POST", "/vm/pause", "{\"a\\u0001b\": 1}",
				 &req, &err), 400);
	assert_string_equal(err.msg, "unknown field 'a?b'");
	assert_int_equal(parse_s("POST", "/vm/pause", "{\"a\":1,\"a\":2}",
				 &req, &err), 400);
	expect_contains(err.msg, "duplicate");
}

static void test_huge_bodies(void **state)
{
	size_t len = API_BODY_MAX + 1;
	char *body = malloc(len);
	struct api_request req;
	struct err err;

	if (!body)
		abort();
	memset(body, ' ', len);
	body[0] = '{';
	body[len - 1] = '}';
	assert_int_equal(parse("POST", "/vm/pause", body, len, &req, &err), 413);
	expect_contains(err.msg, "too large");
	/* exactly at the cap is parsed */
	body[len - 2] = '}';
	assert_int_equal(parse("POST", "/vm/pause", body, len - 1, &req, &err),
			 200);
	/* deep nesting inside the cap fails cleanly */
	memset(body, '[', API_BODY_MAX);
	assert_int_equal(parse("POST", "/vm/pause", body, API_BODY_MAX, &req,
			       &err), 400);
	free(body);
}

static void test_bad_arguments(void **state)
{
	struct api_request req;
	struct err err = { 0 };

	assert_int_equal(api_parse_request(NULL, "/vm", NULL, 0, &req, &err),
			 400);
	assert_int_equal(api_parse_request("GET", NULL, NULL, 0, &req, NULL),
			 400);
	assert_int_equal(api_parse_request("POST", "/vm/pause", NULL, 5, &req,
					   NULL), 400);
	/* err may be NULL */
	assert_int_equal(api_parse_request("GET", "/nope", NULL, 0, &req, NULL),
			 404);
	assert_int_equal(api_parse_request("GET", "/vm", NULL, 0, &req, NULL),
			 200);
}

/* ---- typed fields ---- */

struct test_params {
	bool flag;
	uint64_t count;
	char name[8];
};

static const struct api_field test_fields[] = {
	{ "flag", API_FIELD_BOOL, offsetof(struct test_params, flag) },
	{ "count", API_FIELD_UINT, offsetof(struct test_params, count),
	  .min = 1, .max = 100, .required = true },
	{ "name", API_FIELD_STRING, offsetof(struct test_params, name),
	  .size = sizeof(((struct test_params *)0)->name) },
	API_FIELD_END,
};

static int fields(const char *json, struct test_params *p, struct err *err)
{
	json_t *o = json_loads(json, 0, NULL);
	int ret;

	assert_non_null(o);
	memset(p, 0, sizeof(*p));
	err_clear(err);
	ret = api_parse_fields(o, test_fields, p, err);
	json_decref(o);
	return ret;
}

static void test_fields_ok(void **state)
{
	struct test_params p;
	struct err err;

	assert_int_equal(fields("{\"count\": 7}", &p, &err), 0);
	assert_int_equal(p.count, 7);
	assert_false(p.flag);
	assert_int_equal(fields("{\"name\":\"1234567\",\"flag\":true,"
				"\"count\":100}", &p, &err), 0);
	assert_true(p.flag);
	assert_int_equal(p.count, 100);
	assert_string_equal(p.name, "1234567");
	assert_int_equal(fields("{\"count\": 1}", &p, &err), 0);
}

static void test_fields_bad(void **state)
{
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{ "{}", "missing field 'count'" },
		{ "{\"count\": 0}", "field 'count' is out of range [1, 100]" },
		{ "{\"count\": 101}", "field 'count' is out of range [1, 100]" },
		{ "{\"count\": 9223372036854775807}", "out of range" },
		{ "{\"count\": -1}", "field 'count' must not be negative" },
		{ "{\"count\": 1.0}", "field 'count' must be an unsigned integer" },
		{ "{\"count\": \"5\"}", "must be an unsigned integer" },
		{ "{\"count\": null}", "must be an unsigned integer" },
		{ "{\"count\": 5, \"flag\": 1}", "field 'flag' must be true or false" },
		{ "{\"count\": 5, \"name\": \"12345678\"}",
		  "field 'name' is too long (max 7 bytes)" },
		{ "{\"count\": 5, \"name\": \"\"}", "field 'name' must not be empty" },
		{ "{\"count\": 5, \"name\": 5}", "field 'name' must be a string" },
		{ "{\"count\": 5, \"nam\": \"x\"}", "unknown field 'nam'" },
	};
	struct test_params p;
	struct err err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(fields(bad[i].json, &p, &err), -EINVAL);
		expect_contains(err.msg, bad[i].msg);
	}
}

static void test_fields_empty_table(void **state)
{
	json_t *o = json_object();
	struct test_params p;
	struct err err = { 0 };

	assert_int_equal(api_parse_fields(o, NULL, &p, &err), 0);
	json_object_set_new(o, "x", json_true());
	assert_int_equal(api_parse_fields(o, NULL, &p, &err), -EINVAL);
	assert_string_equal(err.msg, "unknown field 'x'");
	json_decref(o);
}

/* ---- names and status mapping ---- */

static void test_names(void **state)
{
	assert_string_equal(api_vm_state_name(API_VM_RUNNING), "running");
	assert_string_equal(api_vm_state_name(API_VM_PAUSED), "paused");
	assert_string_equal(api_vm_state_name(API_VM_SHUTTING_DOWN),
			    "shutting_down");
	assert_string_equal(api_vm_state_name(API_VM_INVALID), "invalid");
	assert_string_equal(api_vm_state_name((enum api_vm_state)99), "invalid");
	assert_string_equal(api_action_name(API_ACTION_PAUSE), "pause");
	assert_string_equal(api_action_name((enum api_action)99), "invalid");
}

static void test_status_from_errno(void **state)
{
	assert_int_equal(api_status_from_errno(-EINVAL), 400);
	assert_int_equal(api_status_from_errno(-ENOENT), 404);
	assert_int_equal(api_status_from_errno(-EBUSY), 409);
	assert_int_equal(api_status_from_errno(-EALREADY), 409);
	assert_int_equal(api_status_from_errno(-EEXIST), 409);
	assert_int_equal(api_status_from_errno(-EIO), 500);
	assert_int_equal(api_status_from_errno(-ENOMEM), 500);
	assert_int_equal(api_status_from_errno(-12345), 500);
}

/* ---- dispatch with a fake backend ---- */

struct fake {
	int ret;
	const char *msg;
	enum api_vm_state state;
	bool fill_strings;
	int calls;
	enum api_action last;
};

static int fake_execute(void *opaque, const struct api_request *req,
			struct api_reply *reply, struct err *err)
{
	struct fake *f = opaque;

	f->calls++;
	f->last = req->action;
	if (f->ret)
		return f->msg ? err_set(err, f->ret, "%s", f->msg) : f->ret;
	reply->info.state = f->state;
	if (req->action != API_ACTION_GET_INFO)
		return 0;
	reply->info.vcpus = 2;
	reply->info.memory_bytes = 1ULL << 30;
	reply->info.uptime_ms = 12345;
	if (f->fill_strings) {	/* no NUL, hostile bytes */
		memset(reply->info.kernel, '\xff', sizeof(reply->info.kernel));
		memset(reply->info.cmdline, 'c', sizeof(reply->info.cmdline));
	} else {
		strcpy(reply->info.kernel, "/boot/vmlinuz");
		strcpy(reply->info.cmdline, "console=ttyS0");
	}
	return 0;
}

static int dispatch(struct fake *f, const char *method, const char *path,
		    const char *body, json_t **out)
{
	struct api_backend be = { .opaque = f, .execute = fake_execute };
	char *resp;
	int status;

	status = api_dispatch(&be, method, path, body, body ? strlen(body) : 0,
			      &resp);
	assert_non_null(resp);
	*out = json_loads(resp, 0, NULL);
	assert_non_null(*out);
	free(resp);
	return status;
}

static void test_dispatch_info(void **state)
{
	struct fake f = { .state = API_VM_RUNNING };
	json_t *o;

	assert_int_equal(dispatch(&f, "GET", "/vm", NULL, &o), 200);
	assert_string_equal(json_string_value(json_object_get(o, "state")),
			    "running");
	assert_int_equal(json_integer_value(json_object_get(o, "vcpus")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "memory_bytes")),
			 1 << 30);
	assert_int_equal(json_integer_value(json_object_get(o, "uptime_ms")),
			 12345);
	assert_string_equal(json_string_value(json_object_get(o, "kernel")),
			    "/boot/vmlinuz");
	assert_string_equal(json_string_value(json_object_get(o, "cmdline")),
			    "console=ttyS0");
	assert_string_equal(json_string_value(json_object_get(o, "version")),
			    TERN_VERSION);
	json_decref(o);
}

static void test_dispatch_hostile_strings(void **state)
{
	struct fake f = { .state = API_VM_PAUSED, .fill_strings = true };
	json_t *o;

	assert_int_equal(dispatch(&f, "GET", "/vm", NULL, &o), 200);
	assert_int_equal(json_string_length(json_object_get(o, "kernel")), 256);
	assert_int_equal(json_string_length(json_object_get(o, "cmdline")), 512);
	json_decref(o);
}

static void test_dispatch_actions(void **state)
{
	static const struct {
		const char *path, *implied;
	} acts[] = {
		{ "/vm/pause", "paused" },
		{ "/vm/resume", "running" },
		{ "/vm/shutdown", "shutting_down" },
	};
	struct fake f = { 0 };
	json_t *o;

	for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
		f.state = API_VM_INVALID;
		assert_int_equal(dispatch(&f, "POST", acts[i].path, "{}", &o), 200);
		assert_string_equal(json_string_value(json_object_get(o, "state")),
				    acts[i].implied);
		assert_int_equal(json_object_size(o), 1);
		json_decref(o);
		f.state = API_VM_PAUSED;	/* the backend's word wins */
		assert_int_equal(dispatch(&f, "POST", acts[i].path, NULL, &o), 200);
		assert_string_equal(json_string_value(json_object_get(o, "state")),
				    "paused");
		json_decref(o);
	}
	assert_int_equal(f.calls, 6);
}

static void test_dispatch_errors(void **state)
{
	static const struct {
		int ret;
		const char *msg;
		int status;
		const char *expect;
	} cases[] = {
		{ -EINVAL, "bad thing", 400, "bad thing" },
		{ -ENOENT, "no VM", 404, "no VM" },
		{ -EBUSY, "VM is not paused", 409, "VM is not paused" },
		{ -EALREADY, "already paused", 409, "already paused" },
		{ -EEXIST, "exists", 409, "exists" },
		{ -EIO, "KVM_RUN failed", 500, "KVM_RUN failed" },
		{ -EPERM, NULL, 500, "resume failed: Operation not permitted" },
		{ -EIO, "bad \xff\x01 bytes", 500, "bad ?? bytes" },
	};
	struct fake f = { 0 };
	json_t *o;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		f.ret = cases[i].ret;
		f.msg = cases[i].msg;
		assert_int_equal(dispatch(&f, "POST", "/vm/resume", NULL, &o),
				 cases[i].status);
		assert_string_equal(json_string_value(json_object_get(o, "error")),
				    cases[i].expect);
		assert_int_equal(json_object_size(o), 1);
		json_decref(o);
	}
}

static void test_dispatch_bad_request_skips_backend(void **state)
{
	struct fake f = { 0 };
	json_t *o;

	assert_int_equal(dispatch(&f, "POST", "/vm/pause", "{\"x\":1}", &o), 400);
	assert_string_equal(json_string_value(json_object_get(o, "error")),
			    "unknown field 'x'");
	json_decref(o);
	assert_int_equal(dispatch(&f, "PUT", "/vm", NULL, &o), 405);
	json_decref(o);
	assert_int_equal(dispatch(&f, "GET", "/x\xff", NULL, &o), 404);
	assert_string_equal(json_string_value(json_object_get(o, "error")),
			    "no such endpoint: /x?");
	json_decref(o);
	assert_int_equal(f.calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_route),
		cmocka_unit_test(test_post_bodies),
		cmocka_unit_test(test_wrong_method),
		cmocka_unit_test(test_unknown_path),
		cmocka_unit_test(test_migrate_body),
		cmocka_unit_test(test_hostile_path_in_message),
		cmocka_unit_test(test_get_with_body),
		cmocka_unit_test(test_malformed_json),
		cmocka_unit_test(test_json_position_reported),
		cmocka_unit_test(test_trailing_garbage),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_non_object),
		cmocka_unit_test(test_unknown_fields),
		cmocka_unit_test(test_huge_bodies),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_fields_ok),
		cmocka_unit_test(test_fields_bad),
		cmocka_unit_test(test_fields_empty_table),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_status_from_errno),
		cmocka_unit_test(test_dispatch_info),
		cmocka_unit_test(test_dispatch_hostile_strings),
		cmocka_unit_test(test_dispatch_actions),
		cmocka_unit_test(test_dispatch_errors),
		cmocka_unit_test(test_dispatch_bad_request_skips_backend),
	};

	return cmocka_run_group_tests_name("api-request", tests, NULL, NULL);
}
