/*
 * proc.c - tern-vmm processes and calls to other processes.
 *
 * A VM's tern-vmm is started by a double fork into its own session, so
 * it is never ternd's child: it keeps running when ternd stops or
 * crashes, and ternd treats every VM alike, whether it started it or
 * adopted it after a restart. A pid counts as the VM's only while
 * /proc/PID/cmdline names the VM's API socket (pids get reused; a zombie
 * has an empty cmdline).
 */
#include "ternd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "util.h"

#define ARGV_MAX 32

static void proc_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int proc_argv(struct ternd *d, struct ternd_vm *vm, const char *incoming,
		     char bufs[][PATH_MAX], const char **argv)
{
	const json_t *def = vm->def;
	const char *model = json_string_value(json_object_get(def, "cpu_model"));
	int n = 0;

#define ARG(s) (argv[n++] = (s))
	ARG(d->cfg.vmm);
	/* a destination too: it maps the RAM before the source connects and
	 * refuses a stream of another size */
	snprintf(bufs[0], sizeof(bufs[0]), "%" JSON_INTEGER_FORMAT "K",
		 json_integer_value(json_object_get(def, "memory")) / 1024);
	ARG("--memory");
	ARG(bufs[0]);
	if (json_is_true(json_object_get(def, "memory_prealloc")))
		ARG("--mem-prealloc");
	if (incoming) {
		ARG("--incoming");
		ARG(incoming);
	} else {
		ARG("--kernel");
		ARG(json_string_value(json_object_get(def, "kernel")));
		if (json_object_get(def, "initrd")) {
			ARG("--initrd");
			ARG(json_string_value(json_object_get(def, "initrd")));
		}
		ARG("--cmdline");
		ARG(json_string_value(json_object_get(def, "cmdline")));
		snprintf(bufs[1], sizeof(bufs[1]), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(def, "vcpus")));
		ARG("--vcpus");
		ARG(bufs[1]);
		if (model && strcmp(model, "host-model")) {
			ARG("--cpu-model");
			ARG(model);
		}
	}
	snprintf(bufs[2], sizeof(bufs[2]), "file:%s/console.log", vm->dir);
	ARG("--serial");
	ARG(bufs[2]);
	ARG("--api");
	ARG(vm->sock);
	if (d->cfg.tls) {	/* both directions of its migrations use TLS */
		ARG("--tls-cert");
		ARG(d->cfg.tls_cert);
		ARG("--tls-key");
		ARG(d->cfg.tls_key);
		ARG("--tls-ca");
		ARG(d->cfg.tls_ca);
	}
	argv[n] = NULL;
#undef ARG
	return n;
}

/* The grandchild: own session, no terminal, stderr to vmm.log. */
static void proc_exec(const char *dir, const char **argv)
{
	char log[PATH_MAX];
	int fd;

	setsid();
	snprintf(log, sizeof(log), "%s/vmm.log", dir);
	fd = open("/dev/null", O_RDWR);
	dup2(fd, 0);
	dup2(fd, 1);
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd >= 0)
		dup2(fd, 2);
	for (int i = 3; i < 1024; i++)
		close(i);
	signal(SIGPIPE, SIG_DFL);
	execvp(argv[0], (char *const *)argv);
	fprintf(stderr, "ternd: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static pid_t proc_double_fork(const char *dir, const char **argv)
{
	int p[2], status;
	pid_t mid, pid = -1;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	mid = fork();
	if (mid == 0) {
		pid_t g = fork();

		if (g == 0)
			proc_exec(dir, argv);
		if (write(p[1], &g, sizeof(g)) != sizeof(g))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (mid < 0 || read(p[0], &pid, sizeof(pid)) != sizeof(pid))
		pid = -EAGAIN;
	close(p[0]);
	if (mid > 0)
		waitpid(mid, &status, 0);
	return pid;
}

static void proc_last_line(const char *dir, char *buf, size_t len)
{
	char p[PATH_MAX], line[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/vmm.log", dir);
	buf[0] = '\0';
	f = fopen(p, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (line[0] != '\n')
			str_copy(buf, len, line);
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

/* Start tern-vmm for `vm` and wait until its API answers. */
int ternd_proc_spawn(struct ternd *d, struct ternd_vm *vm, const char *incoming,
		     pid_t *pidp, struct err *err)
{
	char bufs[3][PATH_MAX], last[256];
	const char *argv[ARGV_MAX];
	struct stat st;
	pid_t pid;

	if (mkdir(vm->dir, 0700) < 0 && errno != EEXIST)
		return err_set(err, -errno, "cannot create %s: %s", vm->dir, strerror(errno));
	unlink(vm->sock);
	proc_argv(d, vm, incoming, bufs, argv);
	pid = proc_double_fork(vm->dir, argv);
	if (pid < 0)
		return err_set(err, pid, "cannot start tern-vmm: %s", strerror(-pid));
	for (int i = 0; i < 200; i++) {
		if (stat(vm->sock, &st) == 0) {
			*pidp = pid;
			return 0;
		}
		if (i > 2 && !ternd_proc_alive(pid, vm->sock))
			break;
		proc_sleep_ms(50);
	}
	ternd_proc_kill(pid, vm->sock, 0);
	proc_last_line(vm->dir, last, sizeof(last));
	return err_set(err, -EIO, "tern-vmm did not start: %s",
		       last[0] ? last : "no API socket within 10 s");
}

bool ternd_proc_alive(pid_t pid, const char *sock)
{
	char p[64], buf[4096];
	ssize_t n;
	int fd;

	if (pid <= 0)
		return false;
	snprintf(p, sizeof(p), "/proc/%d/cmdline", (int)pid);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
		if (!strcmp(buf + i, sock))
			return true;
	return false;
}

/* SIGTERM... no: tern-vmm is asked nicely by the API; this is the hard way. */
int ternd_proc_kill(pid_t pid, const char *sock, unsigned timeout_ms)
{
	if (!ternd_proc_alive(pid, sock))
		return 0;
	kill(pid, SIGKILL);
	for (unsigned t = 0; t < 5000 + timeout_ms; t += 20) {
		if (!ternd_proc_alive(pid, sock))
			return 0;
		proc_sleep_ms(20);
	}
	return -ETIMEDOUT;
}

static int call_reply(long status, char *body, json_t **reply,
		      const char *who, struct err *err)
{
	json_t *o = json_loads(body ? body : "", 0, NULL);
	const char *msg = json_string_value(json_object_get(o, "error"));
	int ret = 0;

	if (status < 200 || status > 299) {
		ret = status == 404 ? -ENOENT : status == 409 ? -EBUSY :
		      status == 401 || status == 403 ? -EACCES : -EIO;
		err_set(err, ret, "%s: %s", who, msg ? msg : "request failed");
	}
	if (reply)
		*reply = o;
	else
		json_decref(o);
	return ret;
}

/* One call to a tern-vmm; *reply (may be NULL) gets the JSON reply. */
int ternd_vmm_call(const char *sock, const char *method, const char *path,
		   const char *body, json_t **reply, struct err *err)
{
	char *resp = NULL;
	long status;
	int ret;

	if (reply)
		*reply = NULL;
	ret = api_client_call(sock, method, path, body, &status, &resp, err);
	if (!ret)
		ret = call_reply(status, resp, reply, "tern-vmm", err);
	free(resp);
	return ret;
}

/*
 * One call to another ternd (URL http(s)://HOST:PORT) with the peer
 * token; over https our own certificate is our identity and the peer's
 * must be signed by our CA and carry HOST.
 */
int ternd_peer_call(struct ternd *d, const char *peer, const char *method,
		    const char *path, json_t *body, json_t **reply,
		    struct err *err)
{
	struct api_client_tls tls = { d->cfg.tls_ca, d->cfg.tls_cert, d->cfg.tls_key };
	char *b = body ? json_dumps(body, JSON_COMPACT) : NULL, *resp = NULL;
	long status;
	int ret;

	if (reply)
		*reply = NULL;
	ret = api_client_request_tls(peer, d->cfg.peer_token[0] ? d->cfg.peer_token : NULL,
				     d->cfg.tls ? &tls : NULL, method, path, b,
				     &status, &resp, err);
	if (!ret)
		ret = call_reply(status, resp, reply, peer, err);
	free(b);
	free(resp);
	return ret;
}
