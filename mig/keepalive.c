/*
 * keepalive.c - how long a migration waits for a silent peer.
 *
 * One rule, interval x count (default 5 s x 5 = 25 s), applied three ways
 * on each migration socket:
 *  - TCP keepalive: after `interval` s without a segment from the peer the
 *    kernel probes it every `interval` s; both ends do so, so a dead link is
 *    seen by the side that is only reading too;
 *  - TCP_USER_TIMEOUT = interval x count: data (or probes) unacknowledged
 *    for that long ends the connection with ETIMEDOUT;
 *  - the application: a read or write that makes no progress for interval
 *    x count fails (SO_RCVTIMEO/SO_SNDTIMEO = interval, then the stream's
 *    poll for the rest), which also catches a peer whose kernel answers
 *    but whose process is stopped.
 * An outage shorter than that only stalls the migration; a longer one
 * fails it (docs/migration-protocol.md, "Keepalive and outages").
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "mig_int.h"

static struct mig_keepalive dest_ka = {
	.interval_s = MIG_KEEPALIVE_INTERVAL_S,
	.count = MIG_KEEPALIVE_COUNT,
};

void mig_keepalive_default(struct mig_keepalive *ka)
{
	ka->interval_s = MIG_KEEPALIVE_INTERVAL_S;
	ka->count = MIG_KEEPALIVE_COUNT;
}

int mig_keepalive_check(uint32_t interval_s, uint32_t count, struct err *err)
{
	if (interval_s < 1 || interval_s > MIG_KEEPALIVE_INTERVAL_MAX)
		return err_set(err, -EINVAL, "keepalive interval must be 1-%u s",
			       MIG_KEEPALIVE_INTERVAL_MAX);
	if (count < 1 || count > MIG_KEEPALIVE_COUNT_MAX)
		return err_set(err, -EINVAL, "keepalive count must be 1-%u",
			       MIG_KEEPALIVE_COUNT_MAX);
	return 0;
}

int mig_dest_set_keepalive(uint32_t interval_s, uint32_t count, struct err *err)
{
	int ret = mig_keepalive_check(interval_s, count, err);

	if (ret)
		return ret;
	dest_ka.interval_s = interval_s;
	dest_ka.count = count;
	return 0;
}

const struct mig_keepalive *mig_keepalive_dest(void)
{
	return &dest_ka;
}

int mig_keepalive_timeout_ms(const struct mig_keepalive *ka)
{
	return (int)(ka->interval_s * ka->count * 1000);
}

/* What the stream's poll waits after the socket's own timeout expired. */
int mig_keepalive_stream_timeout_ms(const struct mig_keepalive *ka)
{
	int rest = mig_keepalive_timeout_ms(ka) - (int)ka->interval_s * 1000;

	return rest > 0 ? rest : 1;
}

void mig_keepalive_tune(int fd, const struct mig_keepalive *ka)
{
	struct timeval tv = { .tv_sec = ka->interval_s };
	unsigned int user_ms = (unsigned int)mig_keepalive_timeout_ms(ka);
	int one = 1, idle = (int)ka->interval_s, cnt = (int)ka->count;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof(user_ms));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}
