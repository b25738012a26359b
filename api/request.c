/*
 * request.c - the API's route table and request parser: (method, path,
 * body) -> struct api_request, or an HTTP status with a one-line reason.
 *
 * Pure (jansson only, no HTTP library), so it links alone into the fuzzer.
 * The body is hostile: it is bounded before parsing, must be exactly one
 * JSON object (no trailing bytes, no duplicate keys), and every member must
 * be a field the route declares, with the declared type and range.
 */
#define API_INTERNAL
#include "api_internal.h"

#include <errno.h>
#include <string.h>

#include "util.h"

static const struct api_field api_migrate_fields[] = {
	{ "uri", API_FIELD_STRING, offsetof(struct api_request, migrate.uri),
	  sizeof(((struct api_migrate_params *)0)->uri), 0, 0, true },
	{ "downtime_ms", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.downtime_ms), 0, 1, 600000, false },
	{ "bandwidth_mibs", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.bandwidth_mibs), 0, 1, 1 << 20, false },
	{ "auto_converge", API_FIELD_STRING, offsetof(struct api_request, migrate.auto_converge),
	  sizeof(((struct api_migrate_params *)0)->auto_converge), 0, 0, false },
	{ "throttle_initial", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.throttle_initial), 0, 1, 99, false },
	{ "throttle_increment", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.throttle_increment), 0, 1, 99, false },
	{ "throttle_max", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.throttle_max), 0, 1, 99, false },
	{ "completion_timeout_per_gib", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.completion_timeout_per_gib), 0, 1, 1000000, false },
	{ "progress_timeout_s", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.progress_timeout_s), 0, 1, 1000000, false },
	{ "timeout_action", API_FIELD_STRING, offsetof(struct api_request, migrate.timeout_action),
	  sizeof(((struct api_migrate_params *)0)->timeout_action), 0, 0, false },
	{ "xbzrle", API_FIELD_BOOL, offsetof(struct api_request, migrate.xbzrle), 0, 0, 0, false },
	{ "xbzrle_cache_mib", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.xbzrle_cache_mib), 0, 1, 65536, false },
	{ "channels", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.channels), 0, 0, 16, false },
	{ "compress", API_FIELD_STRING, offsetof(struct api_request, migrate.compress),
	  sizeof(((struct api_migrate_params *)0)->compress), 0, 0, false },
	{ "compress_level", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.compress_level), 0, 1, 19, false },
	{ "keepalive_interval_s", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.keepalive_interval_s), 0, 1, 3600, false },
	{ "keepalive_count", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.keepalive_count), 0, 1, 100, false },
	{ "postcopy", API_FIELD_BOOL, offsetof(struct api_request, migrate.postcopy), 0, 0, 0, false },
	{ "auto_postcopy", API_FIELD_BOOL, offsetof(struct api_request, migrate.auto_postcopy),
	  0, 0, 0, false },
	{ "strategy", API_FIELD_STRING, offsetof(struct api_request, migrate.strategy),
	  sizeof(((struct api_migrate_params *)0)->strategy), 0, 0, false },
	{ "downtime_max_ms", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.downtime_max_ms), 0, 1, 600000, false },
	{ "downtime_steps", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.downtime_steps), 0, 1, 100, false },
	{ "probe_ms", API_FIELD_UINT,
	  offsetof(struct api_request, migrate.probe_ms), 0, 1, 60000, false },
	{ "no_probe", API_FIELD_BOOL, offsetof(struct api_request, migrate.no_probe), 0, 0, 0, false },
	{ "no_defer_hot", API_FIELD_BOOL, offsetof(struct api_request, migrate.no_defer_hot),
	  0, 0, 0, false },
	{ "tls", API_FIELD_STRING, offsetof(struct api_request, migrate.tls),
	  sizeof(((struct api_migrate_params *)0)->tls), 0, 0, false },
	{ "tls_hostname", API_FIELD_STRING, offsetof(struct api_request, migrate.tls_hostname),
	  sizeof(((struct api_migrate_params *)0)->tls_hostname), 0, 0, false },
	API_FIELD_END,
};

/* POST /vm/migration/recover {"uri": optional, default the migration's} */
static const struct api_field api_recover_fields[] = {
	{ "uri", API_FIELD_STRING, offsetof(struct api_request, migrate.uri),
	  sizeof(((struct api_migrate_params *)0)->uri), 0, 0, false },
	API_FIELD_END,
};

static const struct api_field api_abandon_fields[] = {
	{ "resume_source", API_FIELD_BOOL, offsetof(struct api_request, migrate.resume_source),
	  0, 0, 0, false },
	API_FIELD_END,
};

static const struct api_field api_dirty_rate_fields[] = {
	{ "seconds", API_FIELD_UINT,
	  offsetof(struct api_request, dirty_rate.seconds), 0, 1, 60, false },
	API_FIELD_END,
};

static const struct api_route api_routes[] = {
	{ "GET",  "/vm",          API_ACTION_GET_INFO, API_BODY_NONE,     NULL },
	{ "POST", "/vm/pause",    API_ACTION_PAUSE,    API_BODY_OPTIONAL, NULL },
	{ "POST", "/vm/resume",   API_ACTION_RESUME,   API_BODY_OPTIONAL, NULL },
	{ "POST", "/vm/shutdown", API_ACTION_SHUTDOWN, API_BODY_OPTIONAL, NULL },
	{ "POST", "/vm/migrate",  API_ACTION_MIGRATE,  API_BODY_REQUIRED,
	  api_migrate_fields },
	{ "GET",  "/vm/migration", API_ACTION_MIGRATE_STATUS, API_BODY_NONE, NULL },
	{ "POST", "/vm/migration/cancel", API_ACTION_MIGRATE_CANCEL,
	  API_BODY_OPTIONAL, NULL },
	{ "POST", "/vm/migration/postcopy", API_ACTION_MIGRATE_POSTCOPY,
	  API_BODY_OPTIONAL, NULL },
	{ "POST", "/vm/migration/recover", API_ACTION_MIGRATE_RECOVER,
	  API_BODY_OPTIONAL, api_recover_fields },
	{ "POST", "/vm/migration/abandon", API_ACTION_MIGRATE_ABANDON,
	  API_BODY_OPTIONAL, api_abandon_fields },
	{ "POST", "/vm/dirty-rate", API_ACTION_DIRTY_RATE, API_BODY_OPTIONAL,
	  api_dirty_rate_fields },
	{ "GET",  "/vm/dirty-rate", API_ACTION_DIRTY_RATE_STATUS, API_BODY_NONE, NULL },
};

const char *api_vm_state_name(enum api_vm_state s)
{
	switch (s) {
	case API_VM_RUNNING:		return "running";
	case API_VM_PAUSED:		return "paused";
	case API_VM_SHUTTING_DOWN:	return "shutting_down";
	case API_VM_POSTCOPY_PAUSED:	return "postcopy-paused";
	case API_VM_INVALID:		break;
	}
	return "invalid";
}

const char *api_action_name(enum api_action a)
{
	switch (a) {
	case API_ACTION_GET_INFO:	return "info";
	case API_ACTION_PAUSE:		return "pause";
	case API_ACTION_RESUME:		return "resume";
	case API_ACTION_SHUTDOWN:	return "shutdown";
	case API_ACTION_MIGRATE:	return "migrate";
	case API_ACTION_MIGRATE_STATUS:	return "migrate-status";
	case API_ACTION_MIGRATE_CANCEL:	return "migrate-cancel";
	case API_ACTION_MIGRATE_POSTCOPY: return "migrate-postcopy";
	case API_ACTION_MIGRATE_RECOVER: return "migrate-recover";
	case API_ACTION_MIGRATE_ABANDON: return "migrate-abandon";
	case API_ACTION_DIRTY_RATE:	return "dirty-rate";
	case API_ACTION_DIRTY_RATE_STATUS: return "dirty-rate-status";
	case API_ACTION_INVALID:	break;
	}
	return "invalid";
}

void api_sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/* A bounded, printable copy of a hostile string for error messages. */
static const char *api_quote(const char *s, char *buf, size_t len)
{
	size_t n = strnlen(s, len - 1);

	memcpy(buf, s, n);
	buf[n] = '\0';
	if (n == len - 1 && s[n] && len > 4)
		memcpy(buf + len - 4, "...", 4);
	api_sanitize(buf);
	return buf;
}

const char *api_allowed_methods(const char *path)
{
	const char *m = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(api_routes); i++)
		if (!strcmp(api_routes[i].path, path)) {
			if (m)
				return "GET, POST";	/* the only pair we have */
			m = api_routes[i].method;
		}
	return m;
}

static int api_parse_uint(const json_t *v, const struct api_field *f,
			  void *dst, struct err *err)
{
	json_int_t n;
	uint64_t u;

	if (!json_is_integer(v))
		return err_set(err, -EINVAL,
			       "field '%s' must be an unsigned integer",
			       f->name);
	n = json_integer_value(v);
	if (n < 0)
		return err_set(err, -EINVAL, "field '%s' must not be negative",
			       f->name);
	u = (uint64_t)n;
	if (u < f->min || u > f->max)
		return err_set(err, -EINVAL,
			       "field '%s' is out of range [%llu, %llu]",
			       f->name, (unsigned long long)f->min,
			       (unsigned long long)f->max);
	memcpy((char *)dst + f->offset, &u, sizeof(u));
	return 0;
}

static int api_parse_string(const json_t *v, const struct api_field *f,
			    void *dst, struct err *err)
{
	size_t n;

	if (!json_is_string(v))
		return err_set(err, -EINVAL, "field '%s' must be a string",
			       f->name);
	n = json_string_length(v);
	if (n == 0)
		return err_set(err, -EINVAL, "field '%s' must not be empty",
			       f->name);
	if (n >= f->size)
		return err_set(err, -EINVAL,
			       "field '%s' is too long (max %zu bytes)",
			       f->name, f->size - 1);
	/* jansson rejects \u0000 unless JSON_ALLOW_NUL, so n is strlen. */
	memcpy((char *)dst + f->offset, json_string_value(v), n + 1);
	return 0;
}

static int api_parse_field(const json_t *v, const struct api_field *f,
			   void *dst, struct err *err)
{
	bool b;

	switch (f->type) {
	case API_FIELD_BOOL:
		if (!json_is_boolean(v))
			return err_set(err, -EINVAL,
				       "field '%s' must be true or false",
				       f->name);
		b = json_is_true(v);
		memcpy((char *)dst + f->offset, &b, sizeof(b));
		return 0;
	case API_FIELD_UINT:
		return api_parse_uint(v, f, dst, err);
	case API_FIELD_STRING:
		return api_parse_string(v, f, dst, err);
	case API_FIELD_INVALID:
		break;
	}
	return err_set(err, -EINVAL, "field '%s' has no type", f->name);
}

static const struct api_field *api_find_field(const struct api_field *fields,
					      const char *name)
{
	for (; fields && fields->name; fields++)
		if (!strcmp(fields->name, name))
			return fields;
	return NULL;
}

int api_parse_fields(const json_t *obj, const struct api_field *fields,
		     void *dst, struct err *err)
{
	const struct api_field *f;
	const char *key;
	json_t *v;
	char q[64];
	int ret;

	json_object_foreach((json_t *)obj, key, v) {
		f = api_find_field(fields, key);
		if (!f)
			return err_set(err, -EINVAL, "unknown field '%s'",
				       api_quote(key, q, sizeof(q)));
		ret = api_parse_field(v, f, dst, err);
		if (ret)
			return ret;
	}
	for (f = fields; f && f->name; f++)
		if (f->required && !json_object_get(obj, f->name))
			return err_set(err, -EINVAL, "missing field '%s'",
				       f->name);
	return 0;
}

static bool api_body_blank(const char *body, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!strchr(" \t\r\n", body[i]) || !body[i])
			return false;
	return true;
}

static int api_parse_body(const struct api_route *r, const char *body,
			  size_t len, struct api_request *req, struct err *err)
{
	json_error_t jerr;
	json_t *obj;
	int ret;

	if (api_body_blank(body, len)) {
		if (r->body == API_BODY_REQUIRED)
			return err_set(err, -EINVAL,
				       "%s %s needs a JSON object body",
				       r->method, r->path);
		return 0;
	}
	if (r->body == API_BODY_NONE)
		return err_set(err, -EINVAL, "%s %s takes no request body",
			       r->method, r->path);
	obj = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
			 &jerr);
	if (!obj)
		return err_set(err, -EINVAL,
			       "invalid JSON at line %d column %d (byte %d): %s",
			       jerr.line, jerr.column, jerr.position,
			       jerr.text);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return err_set(err, -EINVAL,
			       "request body must be a JSON object");
	}
	ret = api_parse_fields(obj, r->fields, req, err);
	json_decref(obj);
	return ret;
}

static int api_route_request(const char *method, const char *path,
			     const char *body, size_t len,
			     struct api_request *req, struct err *err)
{
	const struct api_route *r = NULL;
	const char *allowed;
	char qm[16], qp[64];

	for (size_t i = 0; i < ARRAY_SIZE(api_routes); i++)
		if (!strcmp(api_routes[i].path, path) &&
		    !strcmp(api_routes[i].method, method))
			r = &api_routes[i];
	if (!r) {
		allowed = api_allowed_methods(path);
		api_quote(method, qm, sizeof(qm));
		api_quote(path, qp, sizeof(qp));
		if (!allowed) {
			err_set(err, -ENOENT, "no such endpoint: %s", qp);
			return 404;
		}
		err_set(err, -EINVAL, "method %s not allowed on %s (use %s)",
			qm, qp, allowed);
		return 405;
	}
	if (len > API_BODY_MAX) {
		err_set(err, -E2BIG, "request body too large (%zu > %d bytes)",
			len, API_BODY_MAX);
		return 413;
	}
	if (api_parse_body(r, body, len, req, err))
		return 400;
	req->action = r->action;
	return 200;
}

int api_parse_request(const char *method, const char *path,
		      const char *body, size_t body_len,
		      struct api_request *req, struct err *err)
{
	struct err local = { 0 };
	int status;

	memset(req, 0, sizeof(*req));
	req->migrate.channels = API_CHANNELS_DEFAULT;	/* 0 means "none" */
	if (!method || !path || (!body && body_len)) {
		err_set(err, -EINVAL, "malformed request");
		return 400;
	}
	status = api_route_request(method, path, body ? body : "", body_len,
				   req, &local);
	if (status != 200) {
		memset(req, 0, sizeof(*req));
		api_sanitize(local.msg);
		err_set(err, local.code, "%s", local.msg);
	}
	return status;
}
