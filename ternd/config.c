/*
 * config.c - ternd's configuration file: one "key = value" per line, '#'
 * starts a comment, unknown keys are errors (a typo must not silently
 * change nothing). Every bad line is reported, each with its own message,
 * all together. Every key and its default is listed in docs/ternd.md.
 * Pure except ternd_config_load's read of the file.
 */
#include "parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_models.h"
#include "util.h"

#define CONFIG_MAX (1024 * 1024)
#define LINE_MAX_LEN 1024

enum cfg_kind {
	CFG_INVALID = 0,
	CFG_STR,
	CFG_UINT,
	CFG_BOOL,
	CFG_PORTS,
	CFG_TOKEN,
	CFG_SIZE,
};

struct cfg_key {
	const char *name;
	enum cfg_kind kind;
	size_t off, size;	/* CFG_STR: the char array */
	uint64_t max;		/* CFG_UINT */
	const char *want;	/* what a good value looks like */
};

#define STR(k, f, w) { k, CFG_STR, offsetof(struct ternd_config, f), \
		       sizeof(((struct ternd_config *)0)->f), 0, w }
#define UINT(k, f, m) { k, CFG_UINT, offsetof(struct ternd_config, f), 0, m, \
			"a whole number from 0 to " #m }
static const struct cfg_key cfg_keys[] = {
	STR("host", host, "a name of at most 63 bytes"),
	STR("cluster", cluster, "a name of at most 63 bytes"),
	STR("listen", listen, "IPv4:PORT, or empty for no TCP"),
	STR("socket", socket, "a path of at most 255 bytes"),
	STR("state_dir", state_dir, "a path of at most 255 bytes"),
	STR("run_dir", run_dir, "a path of at most 255 bytes"),
	STR("hooks_dir", hooks_dir, "a path of at most 255 bytes"),
	STR("vmm", vmm, "a path of at most 255 bytes"),
	STR("migration_address", migration_address, "an IPv4 address"),
	STR("peer_token", peer_token, "a secret of at most 127 bytes"),
	STR("tls_cert", tls_cert, "a path of at most 255 bytes"),
	STR("tls_key", tls_key, "a path of at most 255 bytes"),
	STR("tls_ca", tls_ca, "a path of at most 255 bytes"),
	STR("networks", networks, "a list of names of at most 511 bytes"),
	STR("storage", storage, "a list of names of at most 511 bytes"),
	STR("cpu_models", models, "a list of CPU models of at most 511 bytes"),
	STR("default_cpu_model", default_cpu_model, "a CPU model name"),
	STR("tls_peers", tls_peers, "a list of host names of at most 511 bytes"),
	STR("tls_admins", tls_admins, "a list of certificate names of at most 511 bytes"),
	STR("tls_viewers", tls_viewers, "a list of certificate names of at most 511 bytes"),
	UINT("stop_timeout", stop_timeout_s, 86400),
	UINT("hook_timeout", hook_timeout_s, 3600),
	UINT("keepalive_interval", keepalive_interval_s, 3600),
	UINT("keepalive_timeout", keepalive_timeout_s, 3600),
	UINT("reserved_cpus", reserved_cpus, 4096),
	{ "maintenance", CFG_BOOL, offsetof(struct ternd_config, maintenance), 0, 0,
	  "true or false" },
	{ "tls_require_client_cert", CFG_BOOL,
	  offsetof(struct ternd_config, tls_require_client_cert), 0, 0, "true or false" },
	{ "migration_ports", CFG_PORTS, 0, 0, 0, "FIRST-LAST, 1..65535" },
	{ "token", CFG_TOKEN, 0, 0, 0,
	  "admin:SECRET or viewer:SECRET (no blanks, at most 127 bytes, at most 16 tokens)" },
	{ "reserved_memory", CFG_SIZE, 0, 0, 0, "a size such as 2G" },
};
#undef STR
#undef UINT

void ternd_config_defaults(struct ternd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	if (gethostname(cfg->host, sizeof(cfg->host) - 1) < 0)
		str_copy(cfg->host, sizeof(cfg->host), "localhost");
	str_copy(cfg->cluster, sizeof(cfg->cluster), "default");
	str_copy(cfg->listen, sizeof(cfg->listen), "127.0.0.1:7070");
	str_copy(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/tern");
	str_copy(cfg->run_dir, sizeof(cfg->run_dir), "/run/tern");
	str_copy(cfg->hooks_dir, sizeof(cfg->hooks_dir), "/etc/tern/hooks.d");
	str_copy(cfg->vmm, sizeof(cfg->vmm), "tern-vmm");
	str_copy(cfg->migration_address, sizeof(cfg->migration_address),
		 "127.0.0.1");
	str_copy(cfg->default_cpu_model, sizeof(cfg->default_cpu_model),
		 CPU_MODEL_HOST);
	cfg->port_min = 49152;
	cfg->port_max = 49215;
	cfg->stop_timeout_s = 30;
	cfg->hook_timeout_s = 30;
	cfg->keepalive_interval_s = 2;
	cfg->keepalive_timeout_s = 10;
}

static int cfg_token(struct ternd_config *cfg, const char *v)
{
	const char *colon = strchr(v, ':');
	struct ternd_token *t;

	if (!colon || cfg->n_tokens >= TERND_TOKENS_MAX || !colon[1] ||
	    strlen(colon + 1) >= sizeof(t->secret) || strpbrk(colon + 1, " \t"))
		return -EINVAL;
	t = &cfg->tokens[cfg->n_tokens];
	if (!strncmp(v, "admin:", 6))
		t->role = TERND_ROLE_ADMIN;
	else if (!strncmp(v, "viewer:", 7))
		t->role = TERND_ROLE_VIEWER;
	else
		return -EINVAL;
	str_copy(t->secret, sizeof(t->secret), colon + 1);
	cfg->n_tokens++;
	return 0;
}

static int cfg_ports(struct ternd_config *cfg, const char *v)
{
	uint64_t a, b;
	const char *dash = strchr(v, '-');
	char first[16];

	if (!dash || (size_t)(dash - v) >= sizeof(first))
		return -EINVAL;
	memcpy(first, v, (size_t)(dash - v));
	first[dash - v] = '\0';
	if (parse_uint(first, 1, 65535, &a) || parse_uint(dash + 1, 1, 65535, &b) ||
	    a > b)
		return -EINVAL;
	cfg->port_min = (unsigned)a;
	cfg->port_max = (unsigned)b;
	return 0;
}

static int cfg_apply(struct ternd_config *c, const struct cfg_key *k,
		     const char *v)
{
	char *field = (char *)c + k->off;
	uint64_t n;

	switch (k->kind) {
	case CFG_STR:
		if (strlen(v) >= k->size)
			return -ENAMETOOLONG;
		str_copy(field, k->size, v);
		return 0;
	case CFG_UINT:
		if (parse_uint(v, 0, k->max, &n))
			return -EINVAL;
		*(unsigned *)(void *)field = (unsigned)n;
		return 0;
	case CFG_BOOL:
		if (strcmp(v, "true") && strcmp(v, "false"))
			return -EINVAL;
		*(bool *)(void *)field = !strcmp(v, "true");
		return 0;
	case CFG_PORTS:
		return cfg_ports(c, v);
	case CFG_TOKEN:
		return cfg_token(c, v);
	case CFG_SIZE:
		return parse_size(v, &c->reserved_memory) ? -EINVAL : 0;
	default:
		return -EINVAL;
	}
}

static const struct cfg_key *cfg_key_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(cfg_keys); i++)
		if (!strcmp(cfg_keys[i].name, name))
			return &cfg_keys[i];
	return NULL;
}

static char *cfg_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && strchr(" \t\r\n", e[-1]))
		*--e = '\0';
	return s;
}

static void cfg_err(json_t *errors, unsigned lineno, const char *key,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void cfg_err(json_t *errors, unsigned lineno, const char *key,
		    const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_array_append_new(errors, json_pack("{s:I, s:s, s:s}", "line",
						(json_int_t)lineno, "field", key,
						"error", msg));
}

/* One line (NUL-terminated, writable); adds at most one error. */
static void cfg_line(struct ternd_config *cfg, char *line, unsigned lineno,
		     json_t *errors)
{
	const struct cfg_key *key;
	char *k = cfg_trim(line), *v, *eq;
	char shown[64];

	if (!*k || *k == '#')
		return;
	eq = strchr(k, '=');
	if (!eq)
		return cfg_err(errors, lineno, "", "expected key = value");
	*eq = '\0';
	v = cfg_trim(eq + 1);
	k = cfg_trim(k);
	key = cfg_key_find(k);
	snprintf(shown, sizeof(shown), "%s", k);
	if (!key)
		return cfg_err(errors, lineno, shown, "unknown key '%s'", shown);
	if (cfg_apply(cfg, key, v))
		cfg_err(errors, lineno, key->name, "bad value: want %s", key->want);
}

size_t ternd_config_parse(struct ternd_config *cfg, const char *text,
			  size_t len, json_t *errors)
{
	char line[LINE_MAX_LEN + 1];
	size_t before = json_array_size(errors), pos = 0, n;
	unsigned lineno = 0;
	const char *nl;

	while (pos < len) {
		lineno++;
		nl = memchr(text + pos, '\n', len - pos);
		n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		if (n > LINE_MAX_LEN || memchr(text + pos, '\0', n))
			cfg_err(errors, lineno, "", "%s", n > LINE_MAX_LEN ?
				"line longer than 1024 bytes" : "NUL byte in line");
		else {
			memcpy(line, text + pos, n);
			line[n] = '\0';
			cfg_line(cfg, line, lineno, errors);
		}
		pos += n + (nl != NULL);
	}
	return json_array_size(errors) - before;
}

static char *cfg_read(const char *path, size_t *len, int *errnum)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;

	*errnum = 0;
	if (!f) {
		*errnum = errno;
		return NULL;
	}
	buf = malloc(CONFIG_MAX + 1);
	*len = buf ? fread(buf, 1, CONFIG_MAX + 1, f) : 0;
	if (!buf || ferror(f) || *len > CONFIG_MAX) {
		*errnum = !buf ? ENOMEM : ferror(f) ? EIO : EFBIG;
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

int ternd_config_load(struct ternd_config *cfg, const char *path,
		      bool must_exist, json_t *errors, struct err *err)
{
	size_t len = 0, n;
	int errnum;
	char *text = cfg_read(path, &len, &errnum);
	json_t *first;

	if (!text) {
		if (errnum == ENOENT && !must_exist)
			return 0;
		return err_set(err, -errnum, "cannot read config %s: %s", path,
			       errnum == EFBIG ? "larger than 1 MiB" : strerror(errnum));
	}
	n = ternd_config_parse(cfg, text, len, errors);
	free(text);
	if (!n)
		return 0;
	first = json_array_get(errors, json_array_size(errors) - n);
	return err_set(err, -EINVAL, "%s:%" JSON_INTEGER_FORMAT ": %s%s%s (%zu bad line%s)",
		       path, json_integer_value(json_object_get(first, "line")),
		       json_string_value(json_object_get(first, "field")),
		       *json_string_value(json_object_get(first, "field")) ? ": " : "",
		       json_string_value(json_object_get(first, "error")), n, n == 1 ? "" : "s");
}

static int cfg_models(struct ternd_config *cfg, struct err *err)
{
	char *p, *save = NULL;
	const char *def = cfg->default_cpu_model;

	if (strcmp(def, CPU_MODEL_HOST) && !cpu_model_find(def))
		return err_set(err, -EINVAL, "default_cpu_model: unknown CPU model '%s'", def);
	cfg->hostcfg.n_allowed = 0;
	for (p = strtok_r(cfg->models, ", ", &save); p; p = strtok_r(NULL, ", ", &save)) {
		if (strcmp(p, CPU_MODEL_HOST) && !cpu_model_find(p))
			return err_set(err, -EINVAL, "cpu_models: unknown CPU model '%s'", p);
		if (cfg->hostcfg.n_allowed == ARRAY_SIZE(cfg->hostcfg.allowed_models))
			return err_set(err, -E2BIG, "cpu_models: more than %zu models",
				       ARRAY_SIZE(cfg->hostcfg.allowed_models));
		cfg->hostcfg.allowed_models[cfg->hostcfg.n_allowed++] = p;
	}
	if (cfg->hostcfg.n_allowed && !cpu_model_allowed(cfg->models_csv, def))
		return err_set(err, -EINVAL, "default_cpu_model %s is not in cpu_models", def);
	return 0;
}

/* Derived values: default socket path, the host_config for host facts. */
int ternd_config_finish(struct ternd_config *cfg, struct err *err)
{
	if (!cfg->socket[0] &&
	    snprintf(cfg->socket, sizeof(cfg->socket), "%s/ternd.sock",
		     cfg->run_dir) >= (int)sizeof(cfg->socket))
		return err_set(err, -ENAMETOOLONG, "run_dir is too long");
	cfg->tls = cfg->tls_cert[0] && cfg->tls_key[0] && cfg->tls_ca[0];
	if (!cfg->tls && (cfg->tls_cert[0] || cfg->tls_key[0] || cfg->tls_ca[0]))
		return err_set(err, -EINVAL, "TLS needs all three of tls_cert, tls_key and tls_ca");
	if (!cfg->tls && (cfg->tls_require_client_cert || cfg->tls_peers[0] ||
			  cfg->tls_admins[0] || cfg->tls_viewers[0]))
		return err_set(err, -EINVAL,
			       "tls_peers/tls_admins/tls_viewers/tls_require_client_cert need tls_cert, tls_key and tls_ca");
	if (!cfg->host[0])
		return err_set(err, -EINVAL, "host name is empty");
	cfg->hostcfg.reserved_memory = cfg->reserved_memory;
	cfg->hostcfg.reserved_cpus = cfg->reserved_cpus;
	str_copy(cfg->models_csv, sizeof(cfg->models_csv), cfg->models);
	return cfg_models(cfg, err);
}
