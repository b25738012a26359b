/*
 * input.c - the request bodies and query parameters of ternd's routes
 * other than VM definitions (spec.c): checked before any handler runs,
 * every bad field named, all of them together, unknown fields refused.
 * Pure: no daemon state. Routes and fields: docs/api/ternd.yaml.
 */
#include "parse.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define PEER_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:/[]"

enum arg_kind {
	ARG_INVALID = 0,
	ARG_BOOL,
	ARG_UINT32,
	ARG_ENUM,
	ARG_PEER,
};

struct arg_spec {
	const char *name;
	enum arg_kind kind;
	const char *values;	/* ARG_ENUM: "a|b|c" */
};

static const struct arg_spec migrate_spec[] = {
	{ "to", ARG_PEER, NULL },
	{ "check", ARG_BOOL, NULL },
	{ "downtime_ms", ARG_UINT32, NULL },
	{ "bandwidth_mibs", ARG_UINT32, NULL },
	{ "auto_converge", ARG_ENUM, "auto|on|off" },
	{ "throttle_initial", ARG_UINT32, NULL },
	{ "throttle_increment", ARG_UINT32, NULL },
	{ "throttle_max", ARG_UINT32, NULL },
	{ "completion_timeout_per_gib", ARG_UINT32, NULL },
	{ "progress_timeout_s", ARG_UINT32, NULL },
	{ "timeout_action", ARG_ENUM, "abort|force|postcopy" },
	{ "xbzrle", ARG_BOOL, NULL },
	{ "xbzrle_cache_mib", ARG_UINT32, NULL },
	{ NULL, ARG_INVALID, NULL },
};

static const struct arg_spec stop_spec[] = {
	{ "force", ARG_BOOL, NULL },
	{ "timeout_s", ARG_UINT32, NULL },	/* range checked below */
	{ NULL, ARG_INVALID, NULL },
};

static const struct arg_spec maintenance_spec[] = {
	{ "maintenance", ARG_BOOL, NULL },
	{ NULL, ARG_INVALID, NULL },
};

static const struct arg_spec none_spec[] = {
	{ NULL, ARG_INVALID, NULL },
};

bool ternd_peer_ok(const char *to)
{
	size_t n = to ? strlen(to) : 0;

	return n && n <= 120 && strspn(to, PEER_CHARS) == n;
}

static bool enum_has(const char *values, const char *s)
{
	size_t len = strlen(s);

	while (*values) {
		size_t n = strcspn(values, "|");

		if (n == len && !strncmp(values, s, n))
			return true;
		values += n + (values[n] == '|');
	}
	return false;
}

static void arg_check(const struct arg_spec *a, const json_t *v,
		      json_t *errors)
{
	const char *s = json_string_value(v);
	bool nul = s && strlen(s) != json_string_length(v);

	if (a->kind == ARG_BOOL && !json_is_boolean(v))
		ternd_field_err(errors, a->name, "must be true or false");
	else if (a->kind == ARG_UINT32 && (!json_is_integer(v) ||
		 json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX))
		ternd_field_err(errors, a->name, "must be an integer from 0 to 4294967295");
	else if (a->kind == ARG_ENUM && (!s || nul || !enum_has(a->values, s)))
		ternd_field_err(errors, a->name, "must be one of %s", a->values);
	else if (a->kind == ARG_PEER && (!s || nul || !ternd_peer_ok(s)))
		ternd_field_err(errors, a->name,
				"the destination ternd: HOST:PORT or http://HOST:PORT, at most 120 bytes");
}

/* Every field of body against spec; body NULL counts as {}. */
static int args_check(const struct arg_spec *spec, const json_t *body,
		      json_t *errors)
{
	size_t before = json_array_size(errors);
	const struct arg_spec *a;
	const char *k;
	json_t *v;

	if (body && !json_is_object(body)) {
		ternd_field_err(errors, "", "the request body must be a JSON object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)body, k, v) {
		for (a = spec; a->name && strcmp(a->name, k); a++)
			;
		if (a->name)
			arg_check(a, v, errors);
		else
			ternd_field_err(errors, k, "unknown field");
	}
	return json_array_size(errors) > before ? -EINVAL : 0;
}

int ternd_migrate_args_check(const json_t *body, json_t *errors)
{
	int ret = args_check(migrate_spec, body, errors);

	if (json_is_object(body) && !json_object_get(body, "to")) {
		ternd_field_err(errors, "to", "required: the destination ternd (HOST:PORT)");
		ret = -EINVAL;
	}
	return ret;
}

int ternd_stop_args_parse(const json_t *body, bool *force,
			  unsigned *timeout_s, json_t *errors)
{
	json_t *t = json_object_get(body, "timeout_s");
	int ret = args_check(stop_spec, body, errors);

	if (json_is_integer(t) && json_integer_value(t) >= 0 &&
	    (json_integer_value(t) < 1 || json_integer_value(t) > 3600)) {
		ternd_field_err(errors, "timeout_s", "must be from 1 to 3600 seconds");
		ret = -EINVAL;
	}
	if (ret)
		return ret;
	*force = json_is_true(json_object_get(body, "force"));
	*timeout_s = t ? (unsigned)json_integer_value(t) : 0;
	return 0;
}

int ternd_maintenance_args_parse(const json_t *body, bool *on, json_t *errors)
{
	int ret = args_check(maintenance_spec, body, errors);

	if (!ret && !json_is_boolean(json_object_get(body, "maintenance"))) {
		ternd_field_err(errors, "maintenance", "required: true or false");
		ret = -EINVAL;
	}
	if (!ret)
		*on = json_is_true(json_object_get(body, "maintenance"));
	return ret;
}

int ternd_op_args_check(const char *op, const json_t *body, json_t *errors)
{
	bool force;
	unsigned t;

	if (!strcmp(op, "migrate"))
		return ternd_migrate_args_check(body, errors);
	if (!strcmp(op, "stop"))
		return ternd_stop_args_parse(body, &force, &t, errors);
	return args_check(none_spec, body, errors);
}

/* A decimal integer in [min, max] (no sign unless min < 0, no blanks). */
static int parse_int_arg(const char *s, int64_t min, int64_t max, int64_t *out)
{
	uint64_t n;
	bool neg = s[0] == '-';

	if (neg && min >= 0)
		return -EINVAL;
	if (!*s || strspn(s + neg, "0123456789") != strlen(s + neg) ||
	    parse_uint(s + neg, 0, (uint64_t)INT64_MAX, &n))
		return -EINVAL;
	*out = neg ? -(int64_t)n : (int64_t)n;
	return *out < min || *out > max ? -EINVAL : 0;
}

int ternd_events_args_parse(const char *vm, const char *after,
			    const char *wait, struct ternd_events_args *out,
			    json_t *errors)
{
	size_t before = json_array_size(errors);
	int64_t n;

	memset(out, 0, sizeof(*out));
	out->after = -1;
	if (vm && !ternd_vm_name_ok(vm))
		ternd_field_err(errors, "vm", "must be a VM name");
	else if (vm)
		str_copy(out->vm, sizeof(out->vm), vm);
	if (after && parse_int_arg(after, -1, INT64_MAX, &n))
		ternd_field_err(errors, "after", "must be an event id (an integer >= -1)");
	else if (after)
		out->after = n;
	if (wait && parse_int_arg(wait, 0, 30, &n))
		ternd_field_err(errors, "wait", "must be from 0 to 30 seconds");
	else if (wait)
		out->wait_s = (unsigned)n;
	return json_array_size(errors) > before ? -EINVAL : 0;
}

/* Equal strings, in time that depends on the lengths only. */
static bool secret_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return !diff && lb;
}

enum ternd_role ternd_token_role(const struct ternd_config *cfg,
				 const char *token)
{
	enum ternd_role role = TERND_ROLE_INVALID;

	if (!token || !*token)
		return TERND_ROLE_INVALID;
	for (unsigned i = 0; i < cfg->n_tokens && i < TERND_TOKENS_MAX; i++)
		if (secret_equal(token, cfg->tokens[i].secret) &&
		    cfg->tokens[i].role > role)
			role = cfg->tokens[i].role;
	if (cfg->peer_token[0] && secret_equal(token, cfg->peer_token))
		role = TERND_ROLE_ADMIN;
	return role;
}

bool ternd_list_has(const char *list, const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (!list || !len)
		return false;
	while (*list) {
		size_t n;

		list += strspn(list, ", \t");
		n = strcspn(list, ", \t");
		if (n == len && !strncasecmp(list, name, n))
			return true;
		list += n;
	}
	return false;
}

/* The role one certificate name earns. */
static enum ternd_role tls_name_role(const struct ternd_config *cfg,
				     const char *name)
{
	if (ternd_list_has(cfg->tls_peers, name) ||
	    ternd_list_has(cfg->tls_admins, name))
		return TERND_ROLE_ADMIN;
	if (ternd_list_has(cfg->tls_viewers, name))
		return TERND_ROLE_VIEWER;
	return TERND_ROLE_INVALID;
}

enum ternd_role ternd_tls_role(const struct ternd_config *cfg,
			       const char *names)
{
	enum ternd_role role = TERND_ROLE_INVALID, r;
	char name[256];
	size_t n;

	while (names && *names) {
		names += strspn(names, ", ");
		n = strcspn(names, ", ");
		if (n && n < sizeof(name)) {
			memcpy(name, names, n);
			name[n] = '\0';
			r = tls_name_role(cfg, name);
			if (r > role)
				role = r;
		}
		names += n;
	}
	return role;
}
