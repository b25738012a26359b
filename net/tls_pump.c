/*
 * tls_pump.c - one thread per TLS connection that owns the SSL object and
 * the TCP socket, and moves bytes between them and a socketpair whose
 * other end the caller uses as if it were the TCP socket:
 *
 *   caller fd <-> [plain] pump [SSL <-> net] <-> peer
 *
 * Both of the pump's sockets are non-blocking; one poll() loop serves both
 * directions (OpenSSL allows one thread per SSL object only). End of
 * stream is passed along each way: the caller's shutdown(SHUT_WR) becomes
 * a close_notify + TCP FIN, the peer's becomes EOF on the caller's fd. The
 * pump ends when both directions are done, when the caller closes its fd
 * (unsent data then gets TLS_LINGER_MS to leave), or when the connection
 * fails (the caller then reads EOF and its writes fail with EPIPE).
 */
#define NET_TLS_INTERNAL
#include "tls_int.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "tls.h"

struct dir_buf {
	uint8_t *p;
	size_t len, off;		/* bytes held, bytes already sent */
};

struct pump {
	SSL *ssl;
	int net, plain;
	struct dir_buf up;		/* plain -> net */
	struct dir_buf down;		/* net -> plain */
	bool plain_eof;			/* caller shut its write side */
	bool net_eof;			/* peer shut its side, or the net failed */
	bool net_shut, plain_shut;	/* we passed EOF on */
	bool plain_gone;		/* caller closed its fd */
	bool net_dead;			/* TLS or TCP failed */
	bool want_net_in, want_net_out;
	uint64_t linger_end_ms;
};

static atomic_uint pumps_live;

unsigned tls_pumps_live(void)
{
	return atomic_load(&pumps_live);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* SSL_read/SSL_write said no: wait for the socket, or the net is done. */
static bool ssl_blocked(struct pump *pp, int rc)
{
	int e = SSL_get_error(pp->ssl, rc);

	if (e == SSL_ERROR_WANT_READ)
		pp->want_net_in = true;
	else if (e == SSL_ERROR_WANT_WRITE)
		pp->want_net_out = true;
	else
		return false;
	return true;
}

/* plain -> up buffer -> SSL. Returns true if anything moved. */
static bool pump_up(struct pump *pp)
{
	bool moved = false;

	if (!pp->up.len && !pp->plain_eof) {
		ssize_t n = recv(pp->plain, pp->up.p, TLS_PUMP_BUF, MSG_DONTWAIT);

		if (n > 0) {
			pp->up.len = (size_t)n;
			pp->up.off = 0;
			moved = true;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			pp->plain_eof = true;
			moved = true;
		}
	}
	while (pp->up.len && !pp->net_dead) {
		int rc;

		ERR_clear_error();
		rc = SSL_write(pp->ssl, pp->up.p + pp->up.off,
				   (int)(pp->up.len - pp->up.off));

		if (rc <= 0) {
			if (!ssl_blocked(pp, rc))
				pp->net_dead = pp->net_eof = true;
			break;
		}
		pp->up.off += (size_t)rc;
		if (pp->up.off == pp->up.len)
			pp->up.len = pp->up.off = 0;
		moved = true;
	}
	return moved;
}

/* SSL -> down buffer (as much as is there) -> plain. */
static bool pump_down(struct pump *pp)
{
	bool moved = false;

	while (!pp->net_eof && pp->down.len < TLS_PUMP_BUF) {
		int rc;

		ERR_clear_error();
		rc = SSL_read(pp->ssl, pp->down.p + pp->down.len,
				  (int)(TLS_PUMP_BUF - pp->down.len));

		if (rc <= 0) {
			if (!ssl_blocked(pp, rc)) {
				pp->net_eof = true;
				pp->net_dead = SSL_get_error(pp->ssl, rc) != SSL_ERROR_ZERO_RETURN;
				moved = true;
			}
			break;
		}
		pp->down.len += (size_t)rc;
		moved = true;
	}
	while (pp->down.off < pp->down.len && !pp->plain_gone) {
		ssize_t n = send(pp->plain, pp->down.p + pp->down.off,
				 pp->down.len - pp->down.off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				pp->plain_gone = true;	/* caller closed: drop it */
			break;
		}
		pp->down.off += (size_t)n;
		moved = true;
	}
	if (pp->down.off == pp->down.len || pp->plain_gone)
		pp->down.len = pp->down.off = 0;
	return moved;
}

/* Pass end-of-stream along, each way, once its data has gone. */
static void pass_eof(struct pump *pp)
{
	if (pp->plain_eof && !pp->up.len && !pp->net_shut) {
		if (!pp->net_dead)
			SSL_shutdown(pp->ssl);	/* close_notify, best effort */
		shutdown(pp->net, SHUT_WR);
		pp->net_shut = true;
	}
	if (pp->net_eof && !pp->down.len && !pp->plain_shut) {
		shutdown(pp->plain, SHUT_WR);
		pp->plain_shut = true;
	}
}

static bool pump_done(struct pump *pp)
{
	if (pp->plain_eof && pp->net_shut && pp->plain_shut)
		return true;		/* both ways finished */
	if (pp->net_dead && !pp->down.len)
		return true;		/* nothing more can be delivered */
	if (pp->plain_gone && pp->linger_end_ms && mono_ms() >= pp->linger_end_ms)
		return true;
	return pp->plain_gone && pp->plain_eof && !pp->up.len;
}

/* Wait for whatever the last attempts were blocked on. */
static void pump_wait(struct pump *pp)
{
	struct pollfd p[2] = {
		{ .fd = pp->plain },
		{ .fd = pp->net },
	};
	int timeout = -1;

	if (!pp->up.len && !pp->plain_eof)
		p[0].events |= POLLIN;
	if (pp->down.len)
		p[0].events |= POLLOUT;
	if (pp->want_net_in)
		p[1].events |= POLLIN;
	if (pp->want_net_out)
		p[1].events |= POLLOUT;
	if (pp->linger_end_ms)
		timeout = 100;
	if (poll(p, 2, timeout) > 0 && (p[0].revents & (POLLHUP | POLLERR)) &&
	    !pp->plain_shut && !pp->plain_gone) {
		pp->plain_gone = true;	/* caller closed its fd */
		pp->linger_end_ms = mono_ms() + TLS_LINGER_MS;
	}
}

static void pump_loop(struct pump *pp)
{
	while (!pump_done(pp)) {
		bool moved;

		pp->want_net_in = pp->want_net_out = false;
		moved = pump_up(pp);
		moved |= pump_down(pp);
		pass_eof(pp);
		if (pp->plain_gone)
			pp->net_eof = true;	/* nobody to give it to */
		if (!moved && !pump_done(pp))
			pump_wait(pp);
	}
}

static void pump_free(struct pump *pp)
{
	if (pp->plain >= 0)
		close(pp->plain);
	SSL_free(pp->ssl);
	if (pp->net >= 0)
		close(pp->net);
	free(pp->up.p);
	free(pp->down.p);
	free(pp);
}

static void *pump_thread(void *arg)
{
	struct pump *pp = arg;

	pthread_setname_np(pthread_self(), "tls-pump");
	pump_loop(pp);
	pump_free(pp);
	OPENSSL_thread_stop();
	atomic_fetch_sub(&pumps_live, 1);
	return NULL;
}

static int pump_new(SSL *ssl, int net_fd, int *caller_fd, struct pump **out)
{
	struct pump *pp = calloc(1, sizeof(*pp));
	int sv[2], buf = 4 << 20;

	if (!pp)
		return -ENOMEM;
	pp->up.p = malloc(TLS_PUMP_BUF);
	pp->down.p = malloc(TLS_PUMP_BUF);
	if (!pp->up.p || !pp->down.p ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		int e = pp->up.p && pp->down.p ? -errno : -ENOMEM;

		free(pp->up.p);
		free(pp->down.p);
		free(pp);
		return e;
	}
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	}
	pp->ssl = ssl;
	pp->net = net_fd;
	pp->plain = sv[0];
	*caller_fd = sv[1];
	*out = pp;
	return 0;
}

int tls_pump_start(SSL *ssl, int net_fd, struct err *err)
{
	struct pump *pp = NULL;
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	int fd = -1, ret = pump_new(ssl, net_fd, &fd, &pp);

	if (ret)
		return err_set(err, ret, "TLS: cannot start the connection's pump: %s", strerror(-ret));
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);	/* signals go to other threads */
	atomic_fetch_add(&pumps_live, 1);
	ret = pthread_create(&th, &attr, pump_thread, pp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (ret) {
		atomic_fetch_sub(&pumps_live, 1);
		close(fd);
		pp->ssl = NULL;
		pp->net = -1;
		pump_free(pp);
		return err_set(err, -ret, "TLS: cannot start the pump thread: %s", strerror(ret));
	}
	return fd;
}
