/*
 * https.c - ternd's TCP API over TLS (when tls_cert/tls_key/tls_ca are
 * set): TLS is terminated by net/tls (OpenSSL, TLS 1.3 only, the same
 * code and the same certificates as migrations), and libmicrohttpd serves
 * the plaintext side of each connection like any other:
 *
 *   client --TLS--> accept thread -> handshake thread (tls_wrap_server_std)
 *          -> plaintext socketpair end -> MHD_add_connection()
 *
 * A client's certificate, if it sends one, is verified against the
 * cluster CA during the handshake; one from another CA (or none, with
 * tls_require_client_cert) fails the handshake and is logged with its
 * address and the reason, before any HTTP is read. The verified names
 * travel to the request handler through a small table keyed by the
 * plaintext fd (filled before MHD_add_connection, emptied by MHD's
 * connection-started notification into the connection's socket context).
 * A client speaking plain HTTP to this port gets one 400 reply saying so.
 */
#include "ternd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "tls.h"
#include "util.h"

#define PEEK_MS 5000
#define NAMES_MAX 256
#define LINGER_MS 1000

struct https_ident {
	struct https_ident *next;
	int fd;				/* the plaintext fd, while pending */
	char names[NAMES_MAX];		/* the client certificate's, or "" */
};

struct ternd_https {
	struct ternd *d;
	struct tls_ctx *tls;
	struct MHD_Daemon *mhd;
	int lfd;
	bool thread_started;
	pthread_t accepter;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	struct https_ident *pending;	/* handed to MHD, not started yet */
	unsigned live;			/* handshake threads running */
	bool stopping;
};

struct https_conn {
	struct ternd_https *hs;
	int fd;
	struct sockaddr_in sa;
};

static void https_addr(const struct sockaddr_in *sa, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN] = "?";

	inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
	snprintf(buf, len, "%s:%u", ip, ntohs(sa->sin_port));
}

/* Plain HTTP on the HTTPS port: one clear reply, then close. */
static void https_refuse_plain(int fd, const char *who)
{
	static const char body[] =
		"{\"error\":\"this ternd serves HTTPS on this port: use https://HOST:PORT with --tls-ca\"}";
	char msg[512];
	int n;

	n = snprintf(msg, sizeof(msg), "HTTP/1.1 400 Bad Request\r\n"
		     "Content-Type: application/json\r\nConnection: close\r\n"
		     "Content-Length: %zu\r\n\r\n%s", sizeof(body) - 1, body);
	if (write(fd, msg, (size_t)n) < 0)
		log_debug("https", "%s: %s", who, strerror(errno));
	log_warn("https", "refused %s: plain HTTP (or no TLS ClientHello) on the HTTPS port", who);
}

static void https_pending_remove(struct ternd_https *hs, struct https_ident *id)
{
	struct https_ident **pp;

	for (pp = &hs->pending; *pp; pp = &(*pp)->next)
		if (*pp == id) {
			*pp = id->next;
			free(id);
			return;
		}
}

/*
 * After a refused handshake: stop sending, and read what the client still
 * sends (its first request) for a moment before closing, so the close is
 * no RST that would destroy our TLS alert before the client reads it.
 */
static void https_close_gently(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[4096];

	shutdown(fd, SHUT_WR);
	while (poll(&p, 1, LINGER_MS) > 0 && read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

/* TLS handshake, then the plaintext end goes to MHD with its identity. */
static void https_serve(struct https_conn *c)
{
	struct ternd_https *hs = c->hs;
	struct https_ident *id = calloc(1, sizeof(*id));
	struct err err = { 0 };
	char who[64];
	int pfd;

	https_addr(&c->sa, who, sizeof(who));
	if (!id || !tls_peek_client_hello(c->fd, PEEK_MS)) {
		if (id)
			https_refuse_plain(c->fd, who);
		free(id);
		https_close_gently(c->fd);
		return;
	}
	pfd = tls_wrap_server_std(hs->tls, c->fd, 0, hs->d->cfg.tls_require_client_cert,
				  id->names, sizeof(id->names), &err);
	if (pfd < 0) {
		log_warn("https", "refused %s during the TLS handshake: %s", who, err_msg(&err));
		free(id);
		https_close_gently(c->fd);
		return;
	}
	log_debug("https", "%s: TLS client '%s'", who, id->names[0] ? id->names : "(no certificate)");
	id->fd = pfd;
	pthread_mutex_lock(&hs->lock);
	id->next = hs->pending;
	hs->pending = id;
	pthread_mutex_unlock(&hs->lock);
	if (MHD_add_connection(hs->mhd, pfd, (const struct sockaddr *)&c->sa,
			       sizeof(c->sa)) != MHD_YES) {
		/* MHD closed pfd */
		log_warn("https", "%s: the API server did not take the connection", who);
		pthread_mutex_lock(&hs->lock);
		https_pending_remove(hs, id);
		pthread_mutex_unlock(&hs->lock);
	}
}

static void *https_conn_thread(void *opaque)
{
	struct https_conn *c = opaque;
	struct ternd_https *hs = c->hs;

	https_serve(c);
	free(c);
	pthread_mutex_lock(&hs->lock);
	if (--hs->live == 0)
		pthread_cond_broadcast(&hs->idle);
	pthread_mutex_unlock(&hs->lock);
	return NULL;
}

static void https_spawn(struct ternd_https *hs, int fd, const struct sockaddr_in *sa)
{
	struct https_conn *c = malloc(sizeof(*c));
	pthread_t t;

	if (!c) {
		close(fd);
		return;
	}
	*c = (struct https_conn){ hs, fd, *sa };
	pthread_mutex_lock(&hs->lock);
	hs->live++;
	pthread_mutex_unlock(&hs->lock);
	if (pthread_create(&t, NULL, https_conn_thread, c)) {
		close(fd);
		free(c);
		pthread_mutex_lock(&hs->lock);
		hs->live--;
		pthread_mutex_unlock(&hs->lock);
		return;
	}
	pthread_detach(t);
}

static void *https_accept_loop(void *opaque)
{
	struct ternd_https *hs = opaque;
	struct sockaddr_in sa;
	socklen_t len;
	int fd;

	for (;;) {
		len = sizeof(sa);
		fd = accept4(hs->lfd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
		if (hs->stopping) {
			if (fd >= 0)
				close(fd);
			return NULL;
		}
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				usleep(10000);	/* EMFILE and friends: do not spin */
			continue;
		}
		https_spawn(hs, fd, &sa);
	}
}

struct ternd_https *ternd_https_new(struct ternd *d, int lfd, struct err *err)
{
	struct ternd_https *hs = calloc(1, sizeof(*hs));

	if (!hs) {
		err_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	hs->tls = tls_ctx_new(d->cfg.tls_cert, d->cfg.tls_key, d->cfg.tls_ca, err);
	if (!hs->tls) {
		free(hs);
		return NULL;
	}
	hs->d = d;
	hs->lfd = lfd;
	pthread_mutex_init(&hs->lock, NULL);
	pthread_cond_init(&hs->idle, NULL);
	return hs;
}

int ternd_https_run(struct ternd_https *hs, struct MHD_Daemon *mhd,
		    struct err *err)
{
	hs->mhd = mhd;
	if (pthread_create(&hs->accepter, NULL, https_accept_loop, hs))
		return err_set(err, -EAGAIN, "cannot start the HTTPS accept thread");
	hs->thread_started = true;
	return 0;
}

/* Before MHD_stop_daemon: no handshake thread may add a connection after. */
void ternd_https_quiesce(struct ternd_https *hs)
{
	if (!hs)
		return;
	hs->stopping = true;
	shutdown(hs->lfd, SHUT_RDWR);
	if (hs->thread_started)
		pthread_join(hs->accepter, NULL);
	hs->thread_started = false;
	pthread_mutex_lock(&hs->lock);
	while (hs->live)
		pthread_cond_wait(&hs->idle, &hs->lock);
	pthread_mutex_unlock(&hs->lock);
}

void ternd_https_free(struct ternd_https *hs)
{
	if (!hs)
		return;
	ternd_https_quiesce(hs);
	while (hs->pending)
		https_pending_remove(hs, hs->pending);
	close(hs->lfd);
	tls_ctx_free(hs->tls);
	pthread_mutex_destroy(&hs->lock);
	pthread_cond_destroy(&hs->idle);
	free(hs);
}

/* MHD_OPTION_NOTIFY_CONNECTION: the identity moves into the connection. */
void ternd_https_notify(void *cls, struct MHD_Connection *conn,
			void **socket_context, enum MHD_ConnectionNotificationCode toe)
{
	struct ternd_https *hs = cls;
	const union MHD_ConnectionInfo *ci;
	struct https_ident **pp;
	int fd;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		free(*socket_context);
		*socket_context = NULL;
		return;
	}
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	fd = ci ? ci->connect_fd : -1;
	pthread_mutex_lock(&hs->lock);
	for (pp = &hs->pending; *pp; pp = &(*pp)->next)
		if ((*pp)->fd == fd) {
			*socket_context = *pp;
			*pp = (*pp)->next;
			break;
		}
	pthread_mutex_unlock(&hs->lock);
}

const char *ternd_https_names(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	const struct https_ident *id = ci ? ci->socket_context : NULL;

	return id ? id->names : NULL;
}
