/*
 * test_server.c - the API server on a temporary unix socket, driven by
 * api_client_call() and by raw HTTP, with a fake backend: status codes,
 * JSON bodies, error mapping, socket mode, in-use/stale/not-a-socket
 * paths, unlink on stop, and the client's errors when nobody listens.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api.h"
#include "client.h"

struct fake {
	int ret;
	const char *msg;
	int calls;
	enum api_action last;
};

struct fixture {
	char dir[64];
	char sock[128];
	struct fake fake;
	struct api_backend be;
	struct api_server *srv;
};

static void expect_contains(const char *hay, const char *needle)
{
	if (!hay || !strstr(hay, needle)) {
		print_error("'%s' does not contain '%s'\n", hay ? hay : "(null)",
			    needle);
		fail();
	}
}

static int fake_execute(void *opaque, const struct api_request *req,
			struct api_reply *reply, struct err *err)
{
	struct fake *f = opaque;

	f->calls++;
	f->last = req->action;
	if (f->ret)
		return err_set(err, f->ret, "%s", f->msg);
	if (req->action == API_ACTION_GET_INFO) {
		reply->info.state = API_VM_RUNNING;
		reply->info.vcpus = 2;
		reply->info.memory_bytes = 512ULL << 20;
		reply->info.uptime_ms = 4200;
		strcpy(reply->info.kernel, "/boot/vmlinuz");
		strcpy(reply->info.cmdline, "console=ttyS0 quiet");
	}
	return 0;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct err err = { 0 };

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/tern-api-test-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->sock, sizeof(fx->sock), "%s/vm.sock", fx->dir);
	fx->be.opaque = &fx->fake;
	fx->be.execute = fake_execute;
	fx->srv = api_server_start(fx->sock, &fx->be, &err);
	if (!fx->srv)
		print_error("api_server_start: %s\n", err.msg);
	assert_non_null(fx->srv);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	api_server_stop(fx->srv);
	unlink(fx->sock);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* One call through the client; returns the status, *out the parsed body. */
static long call(struct fixture *fx, const char *method, const char *path,
		 const char *body, json_t **out)
{
	struct err err = { 0 };
	char *resp = NULL;
	long status;
	int ret;

	ret = api_client_call(fx->sock, method, path, body, &status, &resp,
			      &err);
	if (ret)
		print_error("api_client_call: %s\n", err.msg);
	assert_int_equal(ret, 0);
	assert_non_null(resp);
	*out = json_loads(resp, 0, NULL);
	if (!*out)
		print_error("not JSON: '%s'\n", resp);
	assert_non_null(*out);
	free(resp);
	return status;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "(missing)";
}

/* Raw HTTP: send `req` as is, read the whole reply (server closes). */
static void raw(struct fixture *fx, const char *req, size_t len, char *out,
		size_t out_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t got = 0;
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	strcpy(sa.sun_path, fx->sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	while (len) {
		n = send(fd, req, len, MSG_NOSIGNAL);
		if (n <= 0)
			break;	/* the server may answer and close early */
		req += n;
		len -= (size_t)n;
	}
	while (got < out_len - 1 && (n = read(fd, out + got, out_len - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(fd);
}

static void test_get_info(void **state)
{
	struct fixture *fx = *state;
	json_t *o;

	assert_int_equal(call(fx, "GET", "/vm", NULL, &o), 200);
	assert_string_equal(jstr(o, "state"), "running");
	assert_int_equal(json_integer_value(json_object_get(o, "vcpus")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "memory_bytes")),
			 512 << 20);
	assert_int_equal(json_integer_value(json_object_get(o, "uptime_ms")),
			 4200);
	assert_string_equal(jstr(o, "kernel"), "/boot/vmlinuz");
	assert_string_equal(jstr(o, "cmdline"), "console=ttyS0 quiet");
	assert_string_equal(jstr(o, "version"), TERN_VERSION);
	json_decref(o);
	assert_int_equal(fx->fake.last, API_ACTION_GET_INFO);
}

static void test_actions(void **state)
{
	static const struct {
		const char *path, *body, *state;
		enum api_action action;
	} acts[] = {
		{ "/vm/pause", NULL, "paused", API_ACTION_PAUSE },
		{ "/vm/resume", "{}", "running", API_ACTION_RESUME },
		{ "/vm/shutdown", " ", "shutting_down", API_ACTION_SHUTDOWN },
	};
	struct fixture *fx = *state;
	json_t *o;

	for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
		assert_int_equal(call(fx, "POST", acts[i].path, acts[i].body, &o),
				 200);
		assert_string_equal(jstr(o, "state"), acts[i].state);
		json_decref(o);
		assert_int_equal(fx->fake.last, acts[i].action);
	}
	assert_int_equal(fx->fake.calls, 3);
}

static void test_error_mapping(void **state)
{
	static const struct {
		int ret;
		long status;
	} cases[] = {
		{ -EINVAL, 400 }, { -ENOENT, 404 }, { -EBUSY, 409 },
		{ -EALREADY, 409 }, { -EEXIST, 409 }, { -EIO, 500 },
		{ -ENOMEM, 500 },
	};
	struct fixture *fx = *state;
	json_t *o;

	fx->fake.msg = "VM is not paused";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fx->fake.ret = cases[i].ret;
		assert_int_equal(call(fx, "POST", "/vm/resume", NULL, &o),
				 cases[i].status);
		assert_string_equal(jstr(o, "error"), "VM is not paused");
		json_decref(o);
	}
}

static void test_bad_requests(void **state)
{
	struct fixture *fx = *state;
	json_t *o;

	assert_int_equal(call(fx, "GET", "/nope", NULL, &o), 404);
	assert_string_equal(jstr(o, "error"), "no such endpoint: /nope");
	json_decref(o);
	assert_int_equal(call(fx, "POST", "/vm", NULL, &o), 405);
	expect_contains(jstr(o, "error"), "not allowed");
	json_decref(o);
	assert_int_equal(call(fx, "DELETE", "/vm/pause", NULL, &o), 405);
	json_decref(o);
	assert_int_equal(call(fx, "POST", "/vm/pause", "{\"now\":1}", &o), 400);
	assert_string_equal(jstr(o, "error"), "unknown field 'now'");
	json_decref(o);
	assert_int_equal(call(fx, "POST", "/vm/pause", "{\"now\"", &o), 400);
	expect_contains(jstr(o, "error"), "invalid JSON at line 1");
	json_decref(o);
	assert_int_equal(call(fx, "POST", "/vm/pause", "[1]", &o), 400);
	json_decref(o);
	assert_int_equal(fx->fake.calls, 0);
}

static void test_body_too_large(void **state)
{
	struct fixture *fx = *state;
	size_t len = API_BODY_MAX + 100;
	char *body = malloc(len + 1);
	json_t *o;

	if (!body)
		abort();
	memset(body, ' ', len);
	body[len] = '\0';
	body[0] = '{';
	body[len - 1] = '}';
	assert_int_equal(call(fx, "POST", "/vm/pause", body, &o), 413);
	expect_contains(jstr(o, "error"), "too large");
	json_decref(o);
	/* at the cap it is fine */
	body[API_BODY_MAX - 1] = '}';
	body[API_BODY_MAX] = '\0';
	assert_int_equal(call(fx, "POST", "/vm/pause", body, &o), 200);
	json_decref(o);
	free(body);
	assert_int_equal(fx->fake.calls, 1);
}

/* POST /vm/pause with a chunked body of nchunks * 8 KiB spaces. */
static void chunked(struct fixture *fx, size_t nchunks, char *reply,
		    size_t reply_len)
{
	const char *head = "POST /vm/pause HTTP/1.1\r\nHost: x\r\n"
			   "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
	size_t chunk = 8192, off = 0;
	size_t len = strlen(head) + nchunks * (chunk + 16) + 16;
	char *req = malloc(len);

	if (!req)
		abort();
	off += (size_t)sprintf(req, "%s", head);
	for (size_t i = 0; i < nchunks; i++) {
		off += (size_t)sprintf(req + off, "%zx\r\n", chunk);
		memset(req + off, ' ', chunk);
		off += chunk;
		off += (size_t)sprintf(req + off, "\r\n");
	}
	off += (size_t)sprintf(req + off, "0\r\n\r\n");
	raw(fx, req, off, reply, reply_len);
	free(req);
}

static void test_chunked_too_large(void **state)
{
	struct fixture *fx = *state;
	char reply[4096];
	json_t *o;

	chunked(fx, 4, reply, sizeof(reply));		/* 32 KiB: fine */
	expect_contains(reply, "HTTP/1.1 200");
	chunked(fx, 10, reply, sizeof(reply));		/* 80 KiB: read, refused */
	expect_contains(reply, "HTTP/1.1 413");
	expect_contains(reply, "too large");
	chunked(fx, 256, reply, sizeof(reply));		/* 2 MiB: cut off */
	assert_null(strstr(reply, "HTTP/1.1 200"));
	assert_int_equal(fx->fake.calls, 1);
	assert_int_equal(call(fx, "GET", "/vm", NULL, &o), 200);
	json_decref(o);
}

static void test_declared_length_too_large(void **state)
{
	struct fixture *fx = *state;
	const char *req = "POST /vm/pause HTTP/1.1\r\nHost: x\r\n"
			  "Content-Length: 99999999999\r\n\r\n{}";
	char reply[4096];

	raw(fx, req, strlen(req), reply, sizeof(reply));
	expect_contains(reply, "HTTP/1.1 413");
	assert_int_equal(fx->fake.calls, 0);
}

static void test_raw_headers(void **state)
{
	struct fixture *fx = *state;
	const char *get = "GET /vm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	const char *put = "PUT /vm/pause HTTP/1.1\r\nHost: x\r\n"
			  "Content-Length: 0\r\nConnection: close\r\n\r\n";
	const char *query = "GET /vm?verbose=1 HTTP/1.1\r\nHost: x\r\n"
			    "Connection: close\r\n\r\n";
	char reply[4096];

	raw(fx, get, strlen(get), reply, sizeof(reply));
	expect_contains(reply, "HTTP/1.1 200");
	expect_contains(reply, "Content-Type: application/json");
	raw(fx, put, strlen(put), reply, sizeof(reply));
	expect_contains(reply, "HTTP/1.1 405");
	expect_contains(reply, "Allow: POST");
	raw(fx, query, strlen(query), reply, sizeof(reply));
	expect_contains(reply, "HTTP/1.1 200");
}

static void test_garbage_http(void **state)
{
	struct fixture *fx = *state;
	const char *junk = "\x01\x02 not http at all\r\n\r\n";
	char reply[4096];
	json_t *o;

	raw(fx, junk, strlen(junk), reply, sizeof(reply));
	assert_null(strstr(reply, "HTTP/1.1 200"));
	/* the server is still fine afterwards */
	assert_int_equal(call(fx, "GET", "/vm", NULL, &o), 200);
	json_decref(o);
}

static void test_socket_mode(void **state)
{
	struct fixture *fx = *state;
	struct stat st;

	assert_int_equal(lstat(fx->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, getuid());
}

static void test_already_in_use(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	char want[256];
	json_t *o;

	assert_null(api_server_start(fx->sock, &fx->be, &err));
	assert_int_equal(err.code, -EADDRINUSE);
	snprintf(want, sizeof(want), "API socket %s is already in use", fx->sock);
	assert_string_equal(err.msg, want);
	/* the first server is untouched */
	assert_int_equal(call(fx, "GET", "/vm", NULL, &o), 200);
	json_decref(o);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void make_stale(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);	/* the file stays; nobody listens */
}

static void test_stale_socket_replaced(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	json_t *o;

	api_server_stop(fx->srv);
	fx->srv = NULL;
	make_stale(fx->sock);
	fx->srv = api_server_start(fx->sock, &fx->be, &err);
	assert_non_null(fx->srv);
	assert_int_equal(call(fx, "GET", "/vm", NULL, &o), 200);
	json_decref(o);
}

static void test_not_a_socket(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	struct stat st;
	int fd;

	api_server_stop(fx->srv);
	fx->srv = NULL;
	fd = open(fx->sock, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_null(api_server_start(fx->sock, &fx->be, &err));
	assert_int_equal(err.code, -EEXIST);
	expect_contains(err.msg, "exists and is not a socket");
	assert_int_equal(stat(fx->sock, &st), 0);
	assert_int_equal(st.st_size, 4);	/* untouched */
	unlink(fx->sock);
	fx->srv = api_server_start(fx->sock, &fx->be, &err);
	assert_non_null(fx->srv);
}

static void test_stop_unlinks(void **state)
{
	struct fixture *fx = *state;
	struct stat st;

	api_server_stop(fx->srv);
	fx->srv = NULL;
	assert_int_equal(lstat(fx->sock, &st), -1);
	assert_int_equal(errno, ENOENT);
	api_server_stop(NULL);
}

static void test_stop_keeps_foreign_socket(void **state)
{
	struct fixture *fx = *state;
	struct api_server *second;
	struct err err = { 0 };
	struct stat st;
	json_t *o;

	unlink(fx->sock);	/* someone removed ours and started anew */
	second = api_server_start(fx->sock, &fx->be, &err);
	assert_non_null(second);
	api_server_stop(fx->srv);
	fx->srv = second;
	assert_int_equal(lstat(fx->sock, &st), 0);
	assert_int_equal(call(fx, "GET", "/vm", NULL, &o), 200);
	json_decref(o);
}

static void test_no_fd_leak(void **state)
{
	struct fixture *fx = *state;
	struct err err = { 0 };
	int before;
	json_t *o;

	api_server_stop(fx->srv);
	before = count_fds();
	fx->srv = api_server_start(fx->sock, &fx->be, &err);
	assert_non_null(fx->srv);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(call(fx, "GET", "/vm", NULL, &o), 200);
		json_decref(o);
	}
	api_server_stop(fx->srv);
	assert_int_equal(count_fds(), before);
	fx->srv = api_server_start(fx->sock, &fx->be, &err);
	assert_non_null(fx->srv);
	assert_int_equal(fx->fake.calls, 100);
}

static void test_bad_paths(void **state)
{
	struct fake f = { 0 };
	struct api_backend be = { .opaque = &f, .execute = fake_execute };
	struct api_backend none = { 0 };
	struct err err = { 0 };
	char long_path[200];

	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	assert_null(api_server_start(long_path, &be, &err));
	assert_int_equal(err.code, -ENAMETOOLONG);
	err_clear(&err);
	assert_null(api_server_start("", &be, &err));
	err_clear(&err);
	assert_null(api_server_start("/nonexistent-dir/x/vm.sock", &be, &err));
	expect_contains(err.msg, "cannot bind");
	err_clear(&err);
	assert_null(api_server_start("/tmp/unused.sock", &none, &err));
	expect_contains(err.msg, "backend");
}

static void test_client_no_server(void **state)
{
	struct err err = { 0 };
	char *resp = (char *)1;
	long status = 7;
	char dir[] = "/tmp/tern-api-test-XXXXXX", path[128];

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.sock", dir);
	assert_int_equal(api_client_call(path, "GET", "/vm", NULL, &status,
					 &resp, &err), -ENOENT);
	assert_null(resp);
	assert_int_equal(status, 0);
	expect_contains(err.msg, "cannot connect to ");
	expect_contains(err.msg, "vm.sock: No such file or directory");
	expect_contains(err.msg, "is tern-vmm running with --api ");

	make_stale(path);
	err_clear(&err);
	assert_int_equal(api_client_call(path, "GET", "/vm", NULL, &status,
					 &resp, &err), -ECONNREFUSED);
	expect_contains(err.msg, "Connection refused");
	unlink(path);
	rmdir(dir);
}

static void test_client_bad_args(void **state)
{
	struct err err = { 0 };
	long status;

	assert_int_equal(api_client_call("/tmp/x.sock", "get", "/vm", NULL,
					 &status, NULL, &err), -EINVAL);
	assert_int_equal(api_client_call("/tmp/x.sock", "GET", "vm", NULL,
					 &status, NULL, NULL), -EINVAL);
	assert_int_equal(api_client_call("/tmp/x.sock", "GET", "/v m", NULL,
					 &status, NULL, NULL), -EINVAL);
	assert_int_equal(api_client_call("", "GET", "/vm", NULL, &status, NULL,
					 NULL), -ENAMETOOLONG);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_get_info),
		T(test_actions),
		T(test_error_mapping),
		T(test_bad_requests),
		T(test_body_too_large),
		T(test_chunked_too_large),
		T(test_declared_length_too_large),
		T(test_raw_headers),
		T(test_garbage_http),
		T(test_socket_mode),
		T(test_already_in_use),
		T(test_stale_socket_replaced),
		T(test_not_a_socket),
		T(test_stop_unlinks),
		T(test_stop_keeps_foreign_socket),
		T(test_no_fd_leak),
		T(test_bad_paths),
		cmocka_unit_test(test_client_no_server),
		cmocka_unit_test(test_client_bad_args),
	};

	return cmocka_run_group_tests_name("api-server", tests, NULL, NULL);
}
