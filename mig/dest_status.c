/*
 * dest_status.c - what an incoming migration is doing, readable from the
 * API thread while the main thread receives (GET /vm, GET /vm/migration
 * on a destination), and the fd that ends a post-copy destination's wait
 * for recovery (the VMM's signalfd: SIGTERM/SIGINT end it cleanly).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>

#include "mig_int.h"
#include "util.h"

static struct {
	pthread_mutex_t lock;
	enum mig_state state;
	char reason[256];
	uint32_t recoveries;
	int stop_fd;
} dst = { .lock = PTHREAD_MUTEX_INITIALIZER, .stop_fd = -1 };

void mig_dest_status_set(enum mig_state st, const char *reason)
{
	pthread_mutex_lock(&dst.lock);
	if (st == MIG_STATE_POSTCOPY_ACTIVE && dst.state == MIG_STATE_POSTCOPY_PAUSED)
		dst.recoveries++;
	dst.state = st;
	str_copy(dst.reason, sizeof(dst.reason), reason ? reason : "");
	pthread_mutex_unlock(&dst.lock);
}

void mig_dest_status(struct mig_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&dst.lock);
	out->state = dst.state;
	str_copy(out->error, sizeof(out->error), dst.reason);
	out->postcopy_recoveries = dst.recoveries;
	pthread_mutex_unlock(&dst.lock);
}

void mig_dest_set_stop_fd(int fd)
{
	dst.stop_fd = fd;		/* set once, before mig_dest_receive() */
}

int mig_dest_stop_fd(void)
{
	return dst.stop_fd;
}

/*
 * Wait for a connection on listen_fd while post-copy is paused; the stop
 * fd (a signal) ends the wait: -EINTR, "VM lost: post-copy was paused".
 */
int mig_dest_wait_recovery(int listen_fd, const char *why, struct err *err)
{
	struct pollfd p[2] = { { .fd = listen_fd, .events = POLLIN },
			       { .fd = dst.stop_fd, .events = POLLIN } };

	for (;;) {
		if (poll(p, dst.stop_fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return err_set(err, -errno, "waiting for recovery: %s", strerror(errno));
		}
		if (p[1].revents)
			return err_set(err, -EINTR, "VM lost: post-copy was paused (%s) and "
				       "the process was asked to stop", why);
		if (p[0].revents)
			return 0;
	}
}
