/*
 * config.c - ternd's configuration file: one "key = value" per line, '#'
 * starts a comment, unknown keys are errors (a typo must not silently
 * change nothing). Every key and its default is listed in docs/ternd.md.
 */
#include "ternd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

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
	cfg->port_min = 49152;
	cfg->port_max = 49215;
	cfg->stop_timeout_s = 30;
	cfg->hook_timeout_s = 30;
	cfg->keepalive_interval_s = 2;
	cfg->keepalive_timeout_s = 10;
}

static int cfg_uint(const char *v, uint64_t max, unsigned *out)
{
	uint64_t n;

	if (parse_uint(v, 0, max, &n))
		return -EINVAL;
	*out = (unsigned)n;
	return 0;
}

static int cfg_str(char *dst, size_t size, const char *v)
{
	if (strlen(v) >= size)
		return -ENAMETOOLONG;
	str_copy(dst, size, v);
	return 0;
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
	unsigned a, b;
	char tail;

	if (sscanf(v, "%u-%u%c", &a, &b, &tail) != 2 || !a || a > b ||
	    b > 65535)
		return -EINVAL;
	cfg->port_min = a;
	cfg->port_max = b;
	return 0;
}

static int cfg_set(struct ternd_config *c, const char *k, const char *v)
{
#define S(name, field) if (!strcmp(k, name)) return cfg_str(c->field, sizeof(c->field), v)
#define U(name, field, max) if (!strcmp(k, name)) return cfg_uint(v, max, &c->field)
	S("host", host); S("cluster", cluster); S("listen", listen);
	S("socket", socket); S("state_dir", state_dir); S("run_dir", run_dir);
	S("hooks_dir", hooks_dir); S("vmm", vmm);
	S("migration_address", migration_address); S("peer_token", peer_token);
	S("tls_cert", tls_cert); S("tls_key", tls_key); S("tls_ca", tls_ca);
	S("networks", networks); S("storage", storage); S("cpu_models", models);
	U("stop_timeout", stop_timeout_s, 86400);
	U("hook_timeout", hook_timeout_s, 3600);
	U("keepalive_interval", keepalive_interval_s, 3600);
	U("keepalive_timeout", keepalive_timeout_s, 3600);
	U("reserved_cpus", reserved_cpus, 4096);
#undef S
#undef U
	if (!strcmp(k, "migration_ports"))
		return cfg_ports(c, v);
	if (!strcmp(k, "token"))
		return cfg_token(c, v);
	if (!strcmp(k, "reserved_memory"))
		return parse_size(v, &c->reserved_memory) ? -EINVAL : 0;
	if (!strcmp(k, "maintenance")) {
		if (strcmp(v, "true") && strcmp(v, "false"))
			return -EINVAL;
		c->maintenance = !strcmp(v, "true");
		return 0;
	}
	return -ENOENT;
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

int ternd_config_load(struct ternd_config *cfg, const char *path,
		      bool must_exist, struct err *err)
{
	char line[1024], *k, *v, *eq;
	unsigned lineno = 0;
	int ret = 0;
	FILE *f = fopen(path, "r");

	if (!f) {
		if (errno == ENOENT && !must_exist)
			return 0;
		return err_set(err, -errno, "cannot read config %s: %s", path,
			       strerror(errno));
	}
	while (!ret && fgets(line, sizeof(line), f)) {
		lineno++;
		k = cfg_trim(line);
		if (!*k || *k == '#')
			continue;
		eq = strchr(k, '=');
		if (!eq) {
			ret = err_set(err, -EINVAL, "%s:%u: expected key = value",
				      path, lineno);
			break;
		}
		*eq = '\0';
		v = cfg_trim(eq + 1);
		k = cfg_trim(k);
		ret = cfg_set(cfg, k, v);
		if (ret == -ENOENT)
			ret = err_set(err, -EINVAL, "%s:%u: unknown key '%s'",
				      path, lineno, k);
		else if (ret)
			ret = err_set(err, -EINVAL, "%s:%u: bad value for %s: '%s'",
				      path, lineno, k, v);
	}
	fclose(f);
	return ret;
}

/* Derived values: default socket path, the host_config for host facts. */
int ternd_config_finish(struct ternd_config *cfg, struct err *err)
{
	char *p, *save = NULL;

	if (!cfg->socket[0] &&
	    snprintf(cfg->socket, sizeof(cfg->socket), "%s/ternd.sock",
		     cfg->run_dir) >= (int)sizeof(cfg->socket))
		return err_set(err, -ENAMETOOLONG, "run_dir is too long");
	if (cfg->tls_cert[0] || cfg->tls_key[0] || cfg->tls_ca[0])
		return err_set(err, -ENOTSUP,
			       "tls_cert/tls_key/tls_ca: TLS is not built into this ternd yet");
	cfg->hostcfg.reserved_memory = cfg->reserved_memory;
	cfg->hostcfg.reserved_cpus = cfg->reserved_cpus;
	cfg->hostcfg.n_allowed = 0;
	for (p = strtok_r(cfg->models, ", ", &save); p && cfg->hostcfg.n_allowed < 32;
	     p = strtok_r(NULL, ", ", &save))
		cfg->hostcfg.allowed_models[cfg->hostcfg.n_allowed++] = p;
	if (!cfg->host[0])
		return err_set(err, -EINVAL, "host name is empty");
	return 0;
}
