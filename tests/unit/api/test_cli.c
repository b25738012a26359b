/*
 * test_cli.c - runs the built `tern` binary ($TERN_BUILD_DIR/cli/tern)
 * against an API server with a fake VMM backend in this process, and
 * checks exit codes, stdout and stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api.h"

struct fake_vm {
	enum api_vm_state state;
};

struct fixture {
	char dir[64];
	char sock[128];
	char vmm_opt[160];	/* "--vmm=<sock>" */
	char tern[4096];
	struct fake_vm vm;
	struct api_backend be;
	struct api_server *srv;
};

struct run {
	int status;		/* exit code */
	char out[8192];
	char errs[8192];
};

static int fake_execute(void *opaque, const struct api_request *req,
			struct api_reply *reply, struct err *err)
{
	struct fake_vm *vm = opaque;

	switch (req->action) {
	case API_ACTION_GET_INFO:
		reply->info.vcpus = 2;
		reply->info.memory_bytes = 1ULL << 30;
		reply->info.uptime_ms = 12345;
		strcpy(reply->info.kernel, "/boot/vmlinuz");
		strcpy(reply->info.cmdline, "console=ttyS0");
		break;
	case API_ACTION_PAUSE:
		if (vm->state == API_VM_PAUSED)
			return err_set(err, -EALREADY, "VM is already paused");
		vm->state = API_VM_PAUSED;
		break;
	case API_ACTION_RESUME:
		if (vm->state != API_VM_PAUSED)
			return err_set(err, -EBUSY, "VM is not paused");
		vm->state = API_VM_RUNNING;
		break;
	case API_ACTION_SHUTDOWN:
		vm->state = API_VM_SHUTTING_DOWN;
		break;
	default:
		return err_set(err, -EINVAL, "bad action");
	}
	reply->info.state = vm->state;
	return 0;
}

static int setup(void **state)
{
	const char *build = getenv("TERN_BUILD_DIR");
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct err err = { 0 };

	assert_non_null(fx);
	*state = fx;
	if (!build)
		return 0;	/* each test skips */
	snprintf(fx->tern, sizeof(fx->tern), "%s/cli/tern", build);
	strcpy(fx->dir, "/tmp/tern-cli-test-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->sock, sizeof(fx->sock), "%s/vm.sock", fx->dir);
	snprintf(fx->vmm_opt, sizeof(fx->vmm_opt), "--vmm=%s", fx->sock);
	fx->vm.state = API_VM_RUNNING;
	fx->be.opaque = &fx->vm;
	fx->be.execute = fake_execute;
	fx->srv = api_server_start(fx->sock, &fx->be, &err);
	assert_non_null(fx->srv);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	if (fx->srv) {
		api_server_stop(fx->srv);
		rmdir(fx->dir);
	}
	free(fx);
	return 0;
}

static void slurp(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	lseek(fd, 0, SEEK_SET);
	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fd);
}

static int temp_fd(const struct fixture *fx, const char *name)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

/* Run tern with the given arguments (NULL-terminated). */
static void run_tern(struct fixture *fx, struct run *r, ...)
{
	char *argv[16] = { fx->tern };
	int argc = 1, out, errs, wstatus;
	va_list ap;
	pid_t pid;

	if (!fx->srv)
		skip();
	out = temp_fd(fx, "out");
	errs = temp_fd(fx, "err");
	va_start(ap, r);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out, 1);
		dup2(errs, 2);
		execv(fx->tern, argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &wstatus, 0), pid);
	assert_true(WIFEXITED(wstatus));
	r->status = WEXITSTATUS(wstatus);
	slurp(out, r->out, sizeof(r->out));
	slurp(errs, r->errs, sizeof(r->errs));
}

static void test_status_human(void **state)
{
	struct fixture *fx = *state;
	struct run r;

	run_tern(fx, &r, "--vmm", fx->sock, "status", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "state: running\n"
				   "vcpus: 2\n"
				   "memory: 1.0 GiB\n"
				   "uptime: 12.3 s\n"
				   "kernel: /boot/vmlinuz\n"
				   "cmdline: console=ttyS0\n"
				   "version: " TERN_VERSION "\n");
	assert_string_equal(r.errs, "");
}

static void test_status_json(void **state)
{
	struct fixture *fx = *state;
	struct run r;
	json_t *o;

	run_tern(fx, &r, fx->vmm_opt, "status", "--json", NULL);
	assert_int_equal(r.status, 0);
	o = json_loads(r.out, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "state")),
			    "running");
	assert_int_equal(json_integer_value(json_object_get(o, "vcpus")), 2);
	json_decref(o);
	run_tern(fx, &r, "--json", "--vmm", fx->sock, "status", NULL);
	assert_int_equal(r.status, 0);
	assert_true(r.out[0] == '{');
}

static void test_pause_resume(void **state)
{
	struct fixture *fx = *state;
	struct run r;

	run_tern(fx, &r, fx->vmm_opt, "pause", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "state: paused\n");
	run_tern(fx, &r, fx->vmm_opt, "pause", NULL);
	assert_int_equal(r.status, 1);
	assert_string_equal(r.errs, "tern: pause: VM is already paused\n");
	run_tern(fx, &r, fx->vmm_opt, "resume", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "state: running\n");
	run_tern(fx, &r, fx->vmm_opt, "resume", NULL);
	assert_int_equal(r.status, 1);
	assert_string_equal(r.out, "");
	assert_string_equal(r.errs, "tern: resume: VM is not paused\n");
	run_tern(fx, &r, fx->vmm_opt, "resume", "--json", NULL);
	assert_int_equal(r.status, 1);
	assert_string_equal(r.out, "{\"error\":\"VM is not paused\"}\n");
}

static void test_shutdown(void **state)
{
	struct fixture *fx = *state;
	struct run r;

	run_tern(fx, &r, fx->vmm_opt, "shutdown", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "state: shutting_down\n");
	run_tern(fx, &r, fx->vmm_opt, "shutdown", "--json", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "{\"state\":\"shutting_down\"}\n");
}

static void test_no_server(void **state)
{
	struct fixture *fx = *state;
	char path[256];
	struct run r;

	snprintf(path, sizeof(path), "%s/none.sock", fx->dir);
	run_tern(fx, &r, "--vmm", path, "status", NULL);
	assert_int_equal(r.status, 1);
	assert_string_equal(r.out, "");
	assert_non_null(strstr(r.errs, "tern: cannot connect to "));
	assert_non_null(strstr(r.errs, "No such file or directory"));
	assert_non_null(strstr(r.errs, "is tern-vmm running with --api"));
	assert_non_null(strchr(r.errs, '\n'));
	assert_true(strchr(r.errs, '\n')[1] == '\0');	/* one line */
}

static void test_usage_errors(void **state)
{
	struct fixture *fx = *state;
	struct run r;

	run_tern(fx, &r, "status", NULL);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.errs, "tern: status: which VM? give --vmm PATH"));
	run_tern(fx, &r, NULL);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.errs, "tern: no command given"));
	run_tern(fx, &r, fx->vmm_opt, "frobnicate", NULL);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.errs, "tern: unknown command 'frobnicate'"));
	run_tern(fx, &r, "--bogus", "status", NULL);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.errs, "unknown option '--bogus'"));
	run_tern(fx, &r, fx->vmm_opt, "status", "--bogus", NULL);
	assert_int_equal(r.status, 2);
	run_tern(fx, &r, fx->vmm_opt, "status", "extra", NULL);
	assert_int_equal(r.status, 2);
	run_tern(fx, &r, "--vmm", NULL);
	assert_int_equal(r.status, 2);
	run_tern(fx, &r, "--vmm=", "status", NULL);
	assert_int_equal(r.status, 2);
	assert_string_equal(r.out, "");
}

static void test_help_version(void **state)
{
	struct fixture *fx = *state;
	struct run r;

	run_tern(fx, &r, "--help", NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "usage: tern"));
	assert_non_null(strstr(r.out, "status"));
	assert_non_null(strstr(r.out, "shutdown"));
	run_tern(fx, &r, "status", "-h", NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "usage: tern"));
	run_tern(fx, &r, "--version", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "tern " TERN_VERSION "\n");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_status_human),
		T(test_status_json),
		T(test_pause_resume),
		T(test_shutdown),
		T(test_no_server),
		T(test_usage_errors),
		T(test_help_version),
	};

	return cmocka_run_group_tests_name("api-cli", tests, NULL, NULL);
}
