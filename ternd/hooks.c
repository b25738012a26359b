/*
 * hooks.c - site hooks: every executable file in hooks_dir, in name
 * order, run as `HOOK VM PHASE` with TERN_HOOK_SIDE (source, destination
 * or local) and TERN_HOST in its environment, and a timeout. The first
 * hook that fails (non-zero exit, a signal or the timeout) stops the
 * list; its first stderr line is the message (a veto for
 * before_migration).
 */
#include "ternd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static pid_t hook_spawn(struct ternd *d, const char *path, const char *vm,
			const char *phase, const char *side, int *errfd)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(p[1], 2);
		setenv("TERN_HOOK_SIDE", side, 1);
		setenv("TERN_HOST", d->cfg.host, 1);
		execl(path, path, vm, phase, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*errfd = p[0];
	return pid;
}

/* Reads the hook's stderr until it exits or the deadline; the exit status. */
static int hook_wait(pid_t pid, int fd, unsigned timeout_s, char *out,
		     size_t len)
{
	uint64_t deadline = time_now_ns() + (uint64_t)timeout_s * 1000000000ULL;
	size_t used = 0;
	int status;
	ssize_t n;

	out[0] = '\0';
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };

		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		if (time_now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			snprintf(out, len, "timed out after %u s", timeout_s);
			return -ETIMEDOUT;
		}
		if (poll(&pfd, 1, 100) > 0 && used + 1 < len) {
			n = read(fd, out + used, len - used - 1);
			if (n > 0)
				used += (size_t)n;
			out[used] = '\0';
		}
	}
	while (used + 1 < len && (n = read(fd, out + used, len - used - 1)) > 0)
		used += (size_t)n;
	out[used] = '\0';
	out[strcspn(out, "\n")] = '\0';
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

static int hook_one(struct ternd *d, const char *path, const char *vm,
		    const char *phase, const char *side, char *msg, size_t len)
{
	char out[512];
	int fd = -1, ret;
	pid_t pid = hook_spawn(d, path, vm, phase, side, &fd);

	if (pid < 0) {
		snprintf(msg, len, "hook %s: cannot run: %s", path, strerror(-pid));
		return -EPERM;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	ret = hook_wait(pid, fd, d->cfg.hook_timeout_s, out, sizeof(out));
	close(fd);
	if (!ret)
		return 0;
	if (ret == -ETIMEDOUT)
		snprintf(msg, len, "hook %s %s: %s", strrchr(path, '/') + 1,
			 phase, out);
	else
		snprintf(msg, len, "hook %s %s failed (%d): %s",
			 strrchr(path, '/') + 1, phase, ret,
			 out[0] ? out : "no message");
	return -EPERM;
}

int ternd_hook_run(struct ternd *d, const char *vm, const char *phase,
		   const char *side, char *msg, size_t len)
{
	struct dirent **names;
	char path[PATH_MAX];
	struct stat st;
	int n, ret = 0;

	msg[0] = '\0';
	n = scandir(d->cfg.hooks_dir, &names, NULL, alphasort);
	if (n < 0)
		return 0;	/* no hooks directory: no hooks */
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", d->cfg.hooks_dir,
			 names[i]->d_name);
		if (!ret && names[i]->d_name[0] != '.' && stat(path, &st) == 0 &&
		    S_ISREG(st.st_mode) && access(path, X_OK) == 0) {
			ret = hook_one(d, path, vm, phase, side, msg, len);
			if (ret)
				log_warn("hook", "%s", msg);
		}
		free(names[i]);
	}
	free(names);
	return ret;
}
