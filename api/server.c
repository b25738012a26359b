/*
 * server.c - the API's HTTP/1.1 server on a unix socket (libmicrohttpd).
 *
 * We create the socket ourselves (so we control the stale-socket check and
 * the 0600 mode) and hand the listening fd to MHD, which runs one internal
 * polling thread: requests are handled one at a time, and the backend is
 * always called from that thread. Bodies are buffered up to API_BODY_MAX;
 * everything else is api_dispatch()'s job.
 */
#define API_INTERNAL
#include "api_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

struct api_server {
	struct MHD_Daemon *mhd;
	struct api_backend backend;
	dev_t dev;			/* identity of the socket file we made, */
	ino_t ino;			/* so stop never unlinks someone else's */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	atomic_int in_flight;		/* requests whose reply is not sent yet */
};

/*
 * Bodies over API_BODY_MAX are read and dropped, so that a client still
 * sending gets its 413 instead of a broken pipe; past API_DRAIN_MAX (or a
 * Content-Length beyond it) the connection is cut short.
 */
#define API_DRAIN_MAX (16 * API_BODY_MAX)

/* Per-request state: the body read so far. */
struct api_conn {
	char *body;
	size_t len;		/* bytes kept in body */
	size_t seen;		/* bytes received, kept or not */
	bool too_big;
};

static int api_fill_addr(const char *path, struct sockaddr_un *sa,
			 struct err *err)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return err_set(err, -ENAMETOOLONG,
			       "API socket path is longer than %zu bytes: %.64s...",
			       sizeof(sa->sun_path) - 1, path);
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

/*
 * A leftover socket file is reused only when nobody answers on it: a live
 * server means a second tern-vmm was pointed at the same path.
 */
static int api_check_stale(const char *path, const struct sockaddr_un *sa,
			   struct err *err)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_set(err, -errno, "API socket %s: %s", path,
			       strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return err_set(err, -EEXIST,
			       "API socket %s exists and is not a socket", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(err, -errno, "socket: %s", strerror(errno));
	ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	if (ret == 0 || errno != ECONNREFUSED) {
		ret = ret == 0 ? -EADDRINUSE : -errno;
		close(fd);
		if (ret == -EADDRINUSE)
			return err_set(err, ret, "API socket %s is already in use",
				       path);
		return err_set(err, ret, "API socket %s: %s", path,
			       strerror(-ret));
	}
	close(fd);
	if (unlink(path) < 0 && errno != ENOENT)
		return err_set(err, -errno, "cannot remove stale API socket %s: %s",
			       path, strerror(errno));
	log_info("api", "removed stale API socket %s", path);
	return 0;
}

/* bind, chmod 0600, listen: nobody can connect before the mode is set. */
static int api_listen(const char *path, struct err *err)
{
	struct sockaddr_un sa;
	int fd, ret;

	ret = api_fill_addr(path, &sa, err);
	if (!ret)
		ret = api_check_stale(path, &sa, err);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err_set(err, -errno, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = err_set(err, -errno, "cannot bind API socket %s: %s",
			      path, strerror(errno));
		goto out_close;
	}
	if (chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
		ret = err_set(err, -errno, "cannot listen on API socket %s: %s",
			      path, strerror(errno));
		goto out_unlink;
	}
	return fd;

out_unlink:
	unlink(path);
out_close:
	close(fd);
	return ret;
}

static enum MHD_Result api_respond(struct MHD_Connection *conn, int status,
				   char *json, const char *path)
{
	static const char oom[] = "{\"error\":\"out of memory\"}";
	struct MHD_Response *resp;
	const char *allow;
	enum MHD_Result ret;

	if (json)
		resp = MHD_create_response_from_buffer(strlen(json), json,
						       MHD_RESPMEM_MUST_FREE);
	else
		resp = MHD_create_response_from_buffer(sizeof(oom) - 1,
						       (void *)oom,
						       MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(json);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	allow = status == 405 && path ? api_allowed_methods(path) : NULL;
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result api_respond_error(struct MHD_Connection *conn,
					 int status, const char *msg)
{
	json_t *o = json_pack("{s:s}", "error", msg);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return api_respond(conn, status, s, NULL);
}

static int api_append(struct api_conn *c, const char *data, size_t size)
{
	char *p;

	if (size > API_DRAIN_MAX - c->seen)
		return -E2BIG;
	c->seen += size;
	if (c->too_big || size > API_BODY_MAX - c->len) {
		c->too_big = true;
		free(c->body);
		c->body = NULL;
		c->len = 0;
		return 0;
	}
	p = realloc(c->body, c->len + size + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p + c->len, data, size);
	c->len += size;
	p[c->len] = '\0';
	c->body = p;
	return 0;
}

/* A declared Content-Length past API_DRAIN_MAX is refused unread. */
static bool api_declared_too_big(struct MHD_Connection *conn)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	char *end;
	unsigned long long n;

	if (!cl)
		return false;
	errno = 0;
	n = strtoull(cl, &end, 10);
	return errno == ERANGE || (end != cl && n > API_DRAIN_MAX);
}

static enum MHD_Result api_handler(void *cls, struct MHD_Connection *conn,
				   const char *url, const char *method,
				   const char *version, const char *upload,
				   size_t *upload_size, void **con_cls)
{
	struct api_server *srv = cls;
	struct api_conn *c = *con_cls;
	char *json;
	int status;

	if (!c) {
		if (api_declared_too_big(conn))
			return api_respond_error(conn, 413,
						 "request body too large");
		c = calloc(1, sizeof(*c));
		if (!c)
			return MHD_NO;
		*con_cls = c;
		atomic_fetch_add(&srv->in_flight, 1);	/* until api_completed */
		return MHD_YES;
	}
	if (*upload_size) {
		if (api_append(c, upload, *upload_size))
			return MHD_NO;	/* drops the connection */
		*upload_size = 0;
		return MHD_YES;
	}
	if (c->too_big)
		return api_respond_error(conn, 413, "request body too large");
	status = api_dispatch(&srv->backend, method, url, c->body, c->len,
			      &json);
	log_debug("api", "%s %s -> %d", method, url, status);
	return api_respond(conn, status, json, url);
}

static void api_completed(void *cls, struct MHD_Connection *conn,
			  void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct api_server *srv = cls;
	struct api_conn *c = *con_cls;

	if (c) {
		free(c->body);
		free(c);
		*con_cls = NULL;
		atomic_fetch_sub(&srv->in_flight, 1);
	}
}

struct api_server *api_server_start(const char *path,
				    const struct api_backend *backend,
				    struct err *err)
{
	struct api_server *srv;
	struct stat st;
	int fd;

	if (!path || !*path) {
		err_set(err, -EINVAL, "no API socket path given");
		return NULL;
	}
	if (!backend || !backend->execute) {
		err_set(err, -EINVAL, "API server needs a backend");
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		err_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	srv->backend = *backend;
	fd = api_listen(path, err);
	if (fd < 0)
		goto out_free;
	snprintf(srv->path, sizeof(srv->path), "%s", path);
	if (stat(path, &st) == 0) {
		srv->dev = st.st_dev;
		srv->ino = st.st_ino;
	}
	srv->mhd = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL,
				    api_handler, srv,
				    MHD_OPTION_LISTEN_SOCKET, fd,
				    MHD_OPTION_CONNECTION_LIMIT, 64U,
				    MHD_OPTION_CONNECTION_TIMEOUT, 30U,
				    MHD_OPTION_NOTIFY_COMPLETED, api_completed,
				    srv, MHD_OPTION_END);
	if (!srv->mhd) {
		err_set(err, -EIO, "cannot start the HTTP server on %s", path);
		goto out_close;
	}
	log_info("api", "listening on %s", path);
	return srv;

out_close:
	unlink(path);
	close(fd);
out_free:
	free(srv);
	return NULL;
}

void api_server_stop(struct api_server *srv)
{
	struct stat st;

	if (!srv)
		return;
	/*
	 * A request that made the process stop (shutdown, a finished
	 * migration) is still waiting for its reply to go out: let the
	 * replies in flight leave (a second at most) before stopping.
	 */
	for (int i = 0; i < 100 && atomic_load(&srv->in_flight) > 0; i++) {
		struct timespec ts = { 0, 10000000 };

		nanosleep(&ts, NULL);
	}
	MHD_stop_daemon(srv->mhd);	/* joins the thread, closes the fd */
	if (stat(srv->path, &st) < 0)
		;	/* already gone */
	else if (st.st_dev != srv->dev || st.st_ino != srv->ino)
		log_warn("api", "%s is no longer our socket; not removing it",
			 srv->path);
	else if (unlink(srv->path) < 0 && errno != ENOENT)
		log_warn("api", "cannot remove %s: %s", srv->path,
			 strerror(errno));
	free(srv);
}
