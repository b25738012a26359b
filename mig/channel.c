/*
 * channel.c - migration transport: "tcp:HOST:PORT" URIs, connect with a
 * time limit, listen on exactly the given address, socket tuning.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "mig.h"
#include "mig_int.h"
#include "util.h"

#define CONNECT_TIMEOUT_MS 10000

int mig_uri_parse(const char *uri, char *host, size_t hostlen, char *port,
		  size_t portlen, struct err *err)
{
	const char *h, *colon;
	size_t hl;
	uint64_t pn;

	if (!uri || strncmp(uri, "tcp:", 4))
		return err_set(err, -EINVAL, "migration URI '%s' must look like tcp:HOST:PORT",
			       uri ? uri : "");
	h = uri + 4;
	if (*h == '[') {			/* tcp:[::1]:4444 */
		const char *end = strchr(h, ']');

		if (!end || end[1] != ':')
			return err_set(err, -EINVAL, "migration URI '%s': bad [IPv6] address", uri);
		h++;
		hl = end - h;
		colon = end + 1;
	} else {
		colon = strrchr(h, ':');
		if (!colon)
			return err_set(err, -EINVAL, "migration URI '%s' has no :PORT", uri);
		hl = colon - h;
	}
	if (!hl || hl >= hostlen)
		return err_set(err, -EINVAL, "migration URI '%s': bad host", uri);
	if (parse_uint(colon + 1, 1, 65535, &pn) || strlen(colon + 1) >= portlen)
		return err_set(err, -EINVAL, "migration URI '%s': port must be 1-65535", uri);
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
}

void mig_sock_tune(int fd)
{
	struct timeval tv = { MIG_IO_TIMEOUT_MS / 1000, 0 };
	int one = 1, buf = 4 << 20;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	/* a silent peer must not hang us: see MIG_IO_TIMEOUT_MS */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len)
{
	int fl = fcntl(fd, F_GETFL), soerr = 0;
	socklen_t sl = sizeof(soerr);
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (connect(fd, sa, len) < 0) {
		if (errno != EINPROGRESS)
			return -errno;
		int r = poll(&p, 1, CONNECT_TIMEOUT_MS);

		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0)
			return -errno;
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr)
			return -soerr;
	}
	fcntl(fd, F_SETFL, fl);
	return 0;
}

int mig_tcp_connect(const char *uri, struct err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char host[256], port[16];
	int ret, fd = -1, last = -ECONNREFUSED;

	ret = mig_uri_parse(uri, host, sizeof(host), port, sizeof(port), err);
	if (ret)
		return ret;
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret)
		return err_set(err, -EHOSTUNREACH, "cannot resolve '%s': %s", host,
			       gai_strerror(ret));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		last = connect_timeout(fd, ai->ai_addr, ai->ai_addrlen);
		if (!last)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return err_set(err, last, "cannot connect to %s: %s", uri, strerror(-last));
	mig_sock_tune(fd);
	return fd;
}

int mig_dest_listen(const char *uri, struct err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
	char host[256], port[16];
	int ret, fd, one = 1;

	ret = mig_uri_parse(uri, host, sizeof(host), port, sizeof(port), err);
	if (ret)
		return ret;
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret)
		return err_set(err, -EADDRNOTAVAIL, "cannot resolve '%s': %s", host,
			       gai_strerror(ret));
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0) {
		ret = err_set(err, -errno, "socket: %s", strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1 + MIG_MFD_CHANNELS_MAX) < 0) {
		ret = err_set(err, -errno, "cannot listen on %s: %s", uri, strerror(errno));
		close(fd);
		goto out;
	}
	ret = fd;
out:
	freeaddrinfo(res);
	return ret;
}
