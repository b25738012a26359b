/*
 * http.c - ternd's HTTP+JSON API (libmicrohttpd, a thread per
 * connection so a long-poll or a peer call never blocks other clients)
 * on a unix socket (mode 0600: whoever can open it is admin) and on TCP
 * (`listen`). TCP clients authenticate with "Authorization: Bearer
 * TOKEN"; the token's role decides: a viewer may only GET, an admin token
 * or the cluster's peer_token may do everything. A TCP client without a
 * valid token is refused (401), whatever it asks, also when no token is
 * configured at all. With tls_cert/tls_key/tls_ca the TCP API is HTTPS
 * only (https.c) and a client certificate named in tls_peers/tls_admins/
 * tls_viewers earns that role, tokens too. Request bodies and query parameters are checked by
 * input.c and spec.c before any handler runs. Routes: docs/api/ternd.yaml.
 */
#include "ternd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define BODY_MAX (256 * 1024)

/* https.c (here because it needs microhttpd.h) */
void ternd_https_notify(void *cls, struct MHD_Connection *conn,
			void **socket_context, enum MHD_ConnectionNotificationCode toe);

struct ternd_http {
	struct ternd *d;
	struct MHD_Daemon *unix_mhd, *tcp_mhd;
	char sock[TERND_PATH_MAX];
	struct ternd_https *https;
};

struct http_listener {
	struct ternd *d;
	bool is_unix;
};

static struct http_listener unix_l, tcp_l;

struct http_req {
	struct ternd *d;
	struct MHD_Connection *conn;
	const char *method;
	char path[256];
	json_t *body;
	enum ternd_role role;
};

struct http_conn {
	char *body;
	size_t len;
	bool too_big;
};

static int http_status(int code)
{
	switch (code) {
	case -EINVAL:	return 400;
	case -EACCES:	return 403;
	case -ENOENT:	return 404;
	case -EBUSY: case -EALREADY: case -EEXIST: case -EPERM:	return 409;
	case -ETIMEDOUT:	return 504;
	default:	return 500;
	}
}

static enum MHD_Result http_send(struct MHD_Connection *conn, int status,
				 json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	json_decref(o);
	if (!s)
		s = strdup("{\"error\":\"out of memory\"}");
	if (!s)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	ret = MHD_queue_response(conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static int http_error(json_t **reply, struct err *err)
{
	if (!*reply)
		*reply = json_object();
	json_object_set_new(*reply, "error", json_string(err_msg(err)));
	return http_status(err->code ? err->code : -EIO);
}

/* 400 with every bad field of the request in "errors". */
static int http_bad_request(json_t **reply, json_t *errors, struct err *err)
{
	json_t *first = json_array_get(errors, 0);

	err_set(err, -EINVAL, "bad request: %s%s%s%s",
		json_string_value(json_object_get(first, "field")) ?: "",
		*(json_string_value(json_object_get(first, "field")) ?: "") ? ": " : "",
		json_string_value(json_object_get(first, "error")) ?: "?",
		json_array_size(errors) > 1 ? " (and more, see errors)" : "");
	*reply = json_pack("{s:o}", "errors", errors);
	return http_error(reply, err);
}

static int route_vms(struct http_req *r, json_t **reply, struct err *err)
{
	json_t *errors, *def;
	struct ternd_vm *vm;

	if (!strcmp(r->method, "GET")) {
		*reply = json_array();
		pthread_mutex_lock(&r->d->lock);
		for (vm = r->d->vms; vm; vm = vm->next)
			json_array_append_new(*reply, ternd_vm_json(r->d, vm));
		pthread_mutex_unlock(&r->d->lock);
		*reply = json_pack("{s:o}", "vms", *reply);
		return 200;
	}
	errors = json_array();
	def = ternd_vm_validate(r->body, r->d->cfg.default_cpu_model, errors);
	if (!def) {
		*reply = json_pack("{s:o}", "errors", errors);
		err_set(err, -EINVAL, "invalid VM definition (%zu bad fields)",
			json_array_size(errors));
		return http_error(reply, err);
	}
	json_decref(errors);
	pthread_mutex_lock(&r->d->lock);
	vm = ternd_vm_find(r->d, json_string_value(json_object_get(def, "name")));
	if (vm) {
		pthread_mutex_unlock(&r->d->lock);
		json_decref(def);
		err_set(err, -EEXIST, "a VM named %s is already defined", vm->name);
		return http_error(reply, err);
	}
	vm = ternd_vm_new(r->d, json_string_value(json_object_get(def, "name")), def);
	ternd_vm_save(r->d, vm);
	*reply = ternd_vm_json(r->d, vm);
	pthread_mutex_unlock(&r->d->lock);
	ternd_event(r->d, vm->name, "defined", "cpu_model %s, %d vCPUs",
		    json_string_value(json_object_get(def, "cpu_model")),
		    (int)json_integer_value(json_object_get(def, "vcpus")));
	return 201;
}

static int route_vm(struct http_req *r, const char *name, const char *op,
		    json_t **reply, struct err *err)
{
	struct ternd_vm *vm;
	json_t *errors;
	int ret;

	if (!op && !strcmp(r->method, "GET")) {
		pthread_mutex_lock(&r->d->lock);
		ret = ternd_vm_lookup(r->d, name, &vm, err);
		if (!ret)
			*reply = ternd_vm_json(r->d, vm);
		pthread_mutex_unlock(&r->d->lock);
		return ret ? http_error(reply, err) : 200;
	}
	if (!op)
		op = "undefine";	/* DELETE */
	errors = json_array();
	if (ternd_op_args_check(op, r->body, errors))
		return http_bad_request(reply, errors, err);
	json_decref(errors);
	if (!strcmp(op, "migrate"))
		ret = ternd_migrate(r->d, name, r->body, reply, err);
	else if (!strcmp(op, "migrate-cancel"))
		ret = ternd_migrate_cancel(r->d, name, err);
	else
		ret = ternd_op(r->d, name, op, r->body, reply, err);
	if (ret)
		return http_error(reply, err);
	if (!*reply)
		*reply = json_pack("{s:s}", "result", "ok");
	return !strcmp(op, "migrate") && !json_object_get(r->body, "check") ? 202 : 200;
}

static const char *http_arg(struct http_req *r, const char *k)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, k);
}

static int route_events(struct http_req *r, json_t **reply, struct err *err)
{
	struct ternd_events_args a;
	json_t *errors = json_array();

	if (ternd_events_args_parse(http_arg(r, "vm"), http_arg(r, "after"),
				    http_arg(r, "wait"), &a, errors))
		return http_bad_request(reply, errors, err);
	json_decref(errors);
	*reply = json_pack("{s:o}", "events", ternd_events_query(r->d,
				a.vm[0] ? a.vm : NULL, a.after, a.wait_s));
	return 200;
}

static int route_host(struct http_req *r, const char *sub, json_t **reply,
		      struct err *err)
{
	json_t *errors;
	bool on;

	if (!sub) {
		*reply = ternd_host_facts(r->d, err);
		return *reply ? 200 : http_error(reply, err);
	}
	if (!strcmp(sub, "state")) {
		*reply = ternd_host_state(r->d);
		return 200;
	}
	errors = json_array();
	if (ternd_maintenance_args_parse(r->body, &on, errors))
		return http_bad_request(reply, errors, err);
	json_decref(errors);
	r->d->cfg.maintenance = on;
	ternd_event(r->d, NULL, "maintenance", "host maintenance %s",
		    r->d->cfg.maintenance ? "on" : "off");
	*reply = json_pack("{s:b}", "maintenance", r->d->cfg.maintenance);
	return 200;
}

/* Splits /a/b/c into up to three segments; the route decides. */
static int route(struct http_req *r, json_t **reply, struct err *err)
{
	char *seg[4] = { 0 }, *save = NULL, *p;
	int n = 0;
	bool get = !strcmp(r->method, "GET");

	for (p = strtok_r(r->path, "/", &save); p && n < 4; p = strtok_r(NULL, "/", &save))
		seg[n++] = p;
	if (p || n == 0 || n > 3)
		goto not_found;
	if (!get && r->role != TERND_ROLE_ADMIN) {
		err_set(err, -EACCES, "only an admin may %s %s", r->method, r->path);
		return http_error(reply, err);
	}
	if (!strcmp(seg[0], "ping") && n == 1 && get) {
		*reply = json_pack("{s:s, s:s}", "host", r->d->cfg.host, "version", TERN_VERSION);
		return 200;
	}
	if (!strcmp(seg[0], "host") && n <= 2 &&
	    (n == 1 ? get : !strcmp(seg[1], "state") ? get :
	     !strcmp(seg[1], "maintenance") && !get))
		return route_host(r, seg[1], reply, err);
	if (!strcmp(seg[0], "events") && n == 1 && get)
		return route_events(r, reply, err);
	if (!strcmp(seg[0], "vms") && n == 1)
		return route_vms(r, reply, err);
	if (!strcmp(seg[0], "vms") && n == 2 && (get || !strcmp(r->method, "DELETE")))
		return route_vm(r, seg[1], NULL, reply, err);
	if (!strcmp(seg[0], "vms") && n == 3 &&
	    (!strcmp(seg[2], "console") ? get : !strcmp(r->method, "POST")))
		return route_vm(r, seg[1], seg[2], reply, err);
	if (!strcmp(seg[0], "incoming") && n == 1 && !get) {
		if (ternd_incoming(r->d, r->body, reply, err))
			return http_error(reply, err);
		return 200;
	}
	if (!strcmp(seg[0], "incoming") && n == 3 && !get &&
	    (!strcmp(seg[2], "commit") || !strcmp(seg[2], "abort"))) {
		if (ternd_incoming_end(r->d, seg[1], !strcmp(seg[2], "commit"), err))
			return http_error(reply, err);
		*reply = json_pack("{s:s}", "result", "ok");
		return 200;
	}
not_found:
	err_set(err, -ENOENT, "no such API route: %s %s", r->method, r->path);
	return http_error(reply, err);
}

static enum ternd_role http_role(struct ternd *d, struct MHD_Connection *conn,
				 bool is_unix)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	enum ternd_role role = TERND_ROLE_INVALID, cert;

	if (is_unix)
		return TERND_ROLE_ADMIN;
	if (h && !strncmp(h, "Bearer ", 7))
		role = ternd_token_role(&d->cfg, h + 7);
	cert = d->cfg.tls ? ternd_tls_role(&d->cfg, ternd_https_names(conn)) :
	       TERND_ROLE_INVALID;
	return cert > role ? cert : role;
}

static enum MHD_Result http_unauthorized(struct MHD_Connection *conn)
{
	const char *names = ternd_https_names(conn);

	if (names && *names)
		return http_send(conn, 401, json_pack("{s:s++}", "error",
				 "certificate '", names,
				 "' has no role here (tls_peers/tls_admins/tls_viewers) and no valid API token was given"));
	return http_send(conn, 401, json_pack("{s:s}", "error",
			 "missing or unknown API token (Authorization: Bearer TOKEN)"));
}

static enum MHD_Result http_run(struct http_listener *l, struct MHD_Connection *conn,
				const char *url, const char *method,
				struct http_conn *c)
{
	struct http_req r = { .d = l->d, .conn = conn, .method = method };
	struct err err = { 0 };
	json_t *reply = NULL;
	json_error_t jerr;
	int status;

	r.role = http_role(l->d, conn, l->is_unix);
	if (!r.role)
		return http_unauthorized(conn);
	if (c->too_big)
		return http_send(conn, 413, json_pack("{s:s}", "error", "request body too large"));
	if (strlen(url) >= sizeof(r.path))
		return http_send(conn, 414, json_pack("{s:s}", "error", "path too long"));
	str_copy(r.path, sizeof(r.path), url);
	if (c->len) {
		r.body = json_loadb(c->body, c->len, JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(r.body)) {
			json_decref(r.body);
			return http_send(conn, 400, json_pack("{s:s+}", "error",
					 "request body is not a JSON object: ", jerr.text));
		}
	}
	status = route(&r, &reply, &err);
	json_decref(r.body);
	log_debug("http", "%s %s -> %d", method, url, status);
	return http_send(conn, status, reply);
}

static enum MHD_Result http_handler(void *cls, struct MHD_Connection *conn,
				    const char *url, const char *method,
				    const char *version, const char *upload,
				    size_t *upload_size, void **con_cls)
{
	struct http_conn *c = *con_cls;
	char *p;

	if (!c) {
		c = calloc(1, sizeof(*c));
		*con_cls = c;
		return c ? MHD_YES : MHD_NO;
	}
	if (*upload_size) {
		if (c->len + *upload_size > BODY_MAX) {
			c->too_big = true;
		} else {
			p = realloc(c->body, c->len + *upload_size + 1);
			if (!p)
				return MHD_NO;
			memcpy(p + c->len, upload, *upload_size);
			c->len += *upload_size;
			p[c->len] = '\0';
			c->body = p;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	return http_run(cls, conn, url, method, c);
}

static void http_completed(void *cls, struct MHD_Connection *conn,
			   void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http_conn *c = *con_cls;

	if (c) {
		free(c->body);
		free(c);
		*con_cls = NULL;
	}
}

static int http_unix_fd(const char *path, struct err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(err, -ENAMETOOLONG, "socket path too long: %s", path);
	str_copy(sa.sun_path, sizeof(sa.sun_path), path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(err, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return err_set(err, -EADDRINUSE, "%s: another ternd answers there", path);
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 64) < 0) {
		err_set(err, -errno, "cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -EIO;
	}
	return fd;
}

static int http_tcp_fd(const char *listen_on, struct err *err)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char host[64];
	unsigned port;
	int fd, one = 1;

	if (sscanf(listen_on, "%63[^:]:%u", host, &port) != 2 || port > 65535 ||
	    inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return err_set(err, -EINVAL, "listen = %s: want IPv4:PORT", listen_on);
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(err, -errno, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		err_set(err, -errno, "cannot listen on %s: %s", listen_on, strerror(errno));
		close(fd);
		return -EIO;
	}
	return fd;
}

static struct MHD_Daemon *http_mhd(int fd, struct http_listener *l)
{
	return MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION |
				MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
				http_handler, l, MHD_OPTION_LISTEN_SOCKET, fd,
				MHD_OPTION_CONNECTION_LIMIT, 256U,
				MHD_OPTION_CONNECTION_TIMEOUT, 120U,
				MHD_OPTION_NOTIFY_COMPLETED, http_completed, l,
				MHD_OPTION_END);
}

/* HTTPS: MHD serves the plaintext ends that https.c hands it. */
static struct MHD_Daemon *http_mhd_tls(int fd, struct http_listener *l,
				       struct ternd_https **hs, struct err *err)
{
	struct MHD_Daemon *mhd;

	*hs = ternd_https_new(l->d, fd, err);
	if (!*hs) {
		close(fd);
		return NULL;
	}
	mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			       MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC, 0, NULL, NULL,
			       http_handler, l,
			       MHD_OPTION_CONNECTION_LIMIT, 256U,
			       MHD_OPTION_CONNECTION_TIMEOUT, 120U,
			       MHD_OPTION_NOTIFY_COMPLETED, http_completed, l,
			       MHD_OPTION_NOTIFY_CONNECTION, ternd_https_notify, *hs,
			       MHD_OPTION_END);
	if (mhd && ternd_https_run(*hs, mhd, err)) {
		MHD_stop_daemon(mhd);
		mhd = NULL;
	}
	return mhd;
}

struct ternd_http *ternd_http_start(struct ternd *d, struct err *err)
{
	struct ternd_http *h = calloc(1, sizeof(*h));
	int fd;

	if (!h) {
		err_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	h->d = d;
	unix_l = (struct http_listener){ d, true };
	tcp_l = (struct http_listener){ d, false };
	str_copy(h->sock, sizeof(h->sock), d->cfg.socket);
	fd = http_unix_fd(h->sock, err);
	if (fd >= 0 && !(h->unix_mhd = http_mhd(fd, &unix_l)))
		err_set(err, -EIO, "cannot start the API server on %s", h->sock);
	if (h->unix_mhd && d->cfg.listen[0]) {
		fd = http_tcp_fd(d->cfg.listen, err);
		if (fd >= 0 && d->cfg.tls)
			h->tcp_mhd = http_mhd_tls(fd, &tcp_l, &h->https, err);
		if (fd >= 0 && d->cfg.tls && !h->tcp_mhd)
			err_set(err, -EIO, "cannot start the HTTPS API server on %s", d->cfg.listen);
		else if (fd >= 0 && !d->cfg.tls && !(h->tcp_mhd = http_mhd(fd, &tcp_l)))
			err_set(err, -EIO, "cannot start the API server on %s", d->cfg.listen);
	}
	if (!h->unix_mhd || (d->cfg.listen[0] && !h->tcp_mhd)) {
		ternd_http_stop(h);
		return NULL;
	}
	log_info("ternd", "API on %s and %s%s", h->sock, d->cfg.listen[0] ? d->cfg.listen : "(no TCP)",
		 d->cfg.listen[0] && d->cfg.tls ? " (HTTPS)" : "");
	return h;
}

void ternd_http_stop(struct ternd_http *h)
{
	if (!h)
		return;
	ternd_https_quiesce(h->https);
	if (h->tcp_mhd)
		MHD_stop_daemon(h->tcp_mhd);
	ternd_https_free(h->https);
	if (h->unix_mhd) {
		MHD_stop_daemon(h->unix_mhd);
		unlink(h->sock);
	}
	free(h);
}
