/*
 * secure.c - TLS for migration connections (net/tls.h), one call each:
 *
 *   fd = mig_secure_connect(fd, &params, uri, err);   after connect()
 *   fd = mig_secure_accept(fd, err);                  after accept()
 *
 * Either returns the fd to use from then on (with TLS, the plaintext end
 * of the connection's pump; the same fd without) or a negative errno with
 * fd closed. Use them on EVERY migration connection, main stream, extra
 * channels and return paths alike: the returned fd takes read/readv/
 * write/writev/poll/shutdown/close from any thread like a TCP socket, but
 * TCP socket options must be set on the original fd before the call.
 *
 * The source's identity comes with its parameters (mig_params.tls, NULL =
 * plain TCP); the destination's is process-wide (mig_dest_set_tls()). A
 * plain destination refuses a TLS source with a clear message instead of
 * reporting a bad stream magic.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "mig_int.h"
#include "tls.h"

/* A TLS source's first bytes arrive with its connect: wait this long. */
#define PEEK_MS 2000

static struct tls_ctx *dest_tls;

void mig_dest_set_tls(struct tls_ctx *tls)
{
	dest_tls = tls;
}

bool mig_dest_has_tls(void)
{
	return dest_tls != NULL;
}

int mig_secure_connect(int fd, const struct mig_params *p, const char *uri,
		       struct err *err)
{
	char host[256], port[16];
	const char *name = p->tls_hostname[0] ? p->tls_hostname : host;
	int ret;

	if (!p->tls)
		return fd;
	ret = mig_uri_parse(uri, host, sizeof(host), port, sizeof(port), err);
	if (!ret)
		ret = tls_wrap_client(p->tls, fd, name, TLS_HANDSHAKE_TIMEOUT_MS, err);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	mig_sock_tune(ret);	/* the timeouts; TCP options fail harmlessly */
	log_info("mig", "TLS 1.3 to %s, server certificate for '%s' verified", uri, name);
	return ret;
}

/* A plain tern source starts with the stream magic: tell it in words. */
static bool plain_stream(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char b[MIG_STREAM_MAGIC_LEN];

	return poll(&p, 1, PEEK_MS) > 0 &&
	       recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT) == (ssize_t)sizeof(b) &&
	       !memcmp(b, MIG_STREAM_MAGIC, sizeof(b));
}

int mig_secure_accept(int fd, struct err *err)
{
	int ret;

	if (!dest_tls) {
		if (!tls_peek_client_hello(fd, PEEK_MS))
			return fd;
		mig_ctl_send(fd, MIG_CTL_ERROR, "destination does not use TLS (tern-vmm "
			     "--incoming without --tls-*); migrate with --tls off, or set it up");
		close(fd);
		return err_set(err, -EPROTO, "source speaks TLS but this destination has no "
			       "--tls-cert/--tls-key/--tls-ca");
	}
	if (plain_stream(fd)) {
		mig_ctl_send(fd, MIG_CTL_ERROR, "destination requires TLS: start the source's "
			     "tern-vmm with --tls-cert/--tls-key/--tls-ca");
		close(fd);
		return err_set(err, -EPROTO, "TLS: source does not speak TLS (plain TCP) but "
			       "this destination requires it");
	}
	ret = tls_wrap_server(dest_tls, fd, TLS_HANDSHAKE_TIMEOUT_MS, err);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	mig_sock_tune(ret);
	log_info("mig", "dest: TLS 1.3, client certificate verified");
	return ret;
}
