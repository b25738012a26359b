/*
 * parse.h - private to ternd/: everything ternd reads from outside, parsed
 * and validated without the daemon (no threads, no sockets, no KVM), so
 * unit tests and the fuzzers link it alone (libternd_parse):
 *   config.c  the configuration file (key = value)
 *   spec.c    VM definitions (POST /vms, POST /incoming, definition.json)
 *   input.c   request bodies and query parameters of the other routes
 * Validators report every bad field, all at once, as an array of
 * {"field": NAME, "error": MESSAGE} in `errors`; config errors name the
 * line as well.
 */
#ifndef TERND_PARSE_H
#define TERND_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "host.h"

#define TERND_PATH_MAX 256
#define TERND_NAME_MAX 64
#define TERND_TOKENS_MAX 16

enum ternd_role {
	TERND_ROLE_INVALID = 0,
	TERND_ROLE_VIEWER,
	TERND_ROLE_ADMIN,
};

struct ternd_token {
	enum ternd_role role;
	char secret[128];
};

struct ternd_config {
	char host[TERND_NAME_MAX];		/* host = (default: hostname) */
	char cluster[TERND_NAME_MAX];		/* cluster = default */
	char listen[128];			/* listen = 127.0.0.1:7070 ("" off) */
	char socket[TERND_PATH_MAX];		/* socket = RUN_DIR/ternd.sock */
	char state_dir[TERND_PATH_MAX];		/* state_dir = /var/lib/tern */
	char run_dir[TERND_PATH_MAX];		/* run_dir = /run/tern */
	char hooks_dir[TERND_PATH_MAX];		/* hooks_dir = /etc/tern/hooks.d */
	char vmm[TERND_PATH_MAX];		/* vmm = tern-vmm */
	char migration_address[64];		/* migration_address = 127.0.0.1 */
	unsigned port_min, port_max;		/* migration_ports = 49152-49215 */
	unsigned stop_timeout_s;		/* stop_timeout = 30 */
	unsigned hook_timeout_s;		/* hook_timeout = 30 */
	unsigned keepalive_interval_s;		/* keepalive_interval = 2 */
	unsigned keepalive_timeout_s;		/* keepalive_timeout = 10 */
	bool maintenance;			/* maintenance = false */
	char peer_token[128];			/* peer_token = (none) */
	struct ternd_token tokens[TERND_TOKENS_MAX];	/* token = ROLE:SECRET */
	unsigned n_tokens;
	char tls_cert[TERND_PATH_MAX];		/* tls_cert/tls_key/tls_ca: */
	char tls_key[TERND_PATH_MAX];		/* HTTPS on `listen`, TLS for */
	char tls_ca[TERND_PATH_MAX];		/* peers and migrations */
	char networks[512];			/* networks = a,b (offered) */
	char storage[512];			/* storage = a,b (offered) */
	char models[512];			/* cpu_models = (all) */
	uint64_t reserved_memory;		/* reserved_memory = 0 */
	unsigned reserved_cpus;			/* reserved_cpus = 0 */
	struct host_config hostcfg;		/* built from the above */
	char default_cpu_model[64];		/* default_cpu_model = host-model */
	char models_csv[512];			/* cpu_models as written */
	char tls_peers[512];			/* tls_peers = a,b (admin) */
	char tls_admins[512];			/* tls_admins = a,b */
	char tls_viewers[512];			/* tls_viewers = a,b */
	bool tls_require_client_cert;		/* = false (tokens suffice) */
	bool tls;				/* derived: tls_* all set */
};

/* ---- config.c ---- */
void ternd_config_defaults(struct ternd_config *cfg);
/*
 * Parse configuration text (`len` bytes, NUL bytes refused). Every bad
 * line adds {"line": N, "field": KEY, "error": MESSAGE} to `errors`; the
 * keys of good lines are applied. Returns the number of errors.
 */
size_t ternd_config_parse(struct ternd_config *cfg, const char *text,
			  size_t len, json_t *errors);
/* Read and parse a file; err names the first error and how many more. */
int ternd_config_load(struct ternd_config *cfg, const char *path,
		      bool must_exist, json_t *errors, struct err *err);
/* Derived values and cross-key checks (default socket, CPU models). */
int ternd_config_finish(struct ternd_config *cfg, struct err *err);

/* ---- spec.c ---- */
/*
 * The normalized definition, or NULL with one entry per bad field in
 * `errors`. A spec without cpu_model gets `default_model` (NULL:
 * "host-model").
 */
json_t *ternd_vm_validate(const json_t *spec, const char *default_model,
			  json_t *errors);
bool ternd_vm_name_ok(const char *s);
void ternd_field_err(json_t *errors, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- input.c ---- */
struct ternd_events_args {
	char vm[TERND_NAME_MAX];	/* "" = all */
	int64_t after;			/* -1 = the latest few */
	unsigned wait_s;		/* long-poll, 0..30 */
};

/* GET /events?vm=&after=&wait= (each may be NULL). 0 or -EINVAL. */
int ternd_events_args_parse(const char *vm, const char *after,
			    const char *wait, struct ternd_events_args *out,
			    json_t *errors);
/* POST /vms/NAME/stop: {"force": bool, "timeout_s": 1..3600} */
int ternd_stop_args_parse(const json_t *body, bool *force,
			  unsigned *timeout_s, json_t *errors);
/* POST /vms/NAME/migrate: "to", "check" and the engine's knobs. */
int ternd_migrate_args_check(const json_t *body, json_t *errors);
/* POST /host/maintenance: {"maintenance": bool} */
int ternd_maintenance_args_parse(const json_t *body, bool *on,
				 json_t *errors);
/* The body of POST /vms/NAME/OP for any OP (or NULL for a bodiless one). */
int ternd_op_args_check(const char *op, const json_t *body, json_t *errors);
/*
 * What a TCP client's bearer token is worth: the best role of the
 * `token` entries it matches; the peer_token (other ternd's) is admin.
 * TERND_ROLE_INVALID for no, empty or unknown tokens.
 */
enum ternd_role ternd_token_role(const struct ternd_config *cfg,
				 const char *token);
/*
 * What a TLS client's verified certificate is worth. `names` is the
 * certificate's name list as net/tls gives it ("b, 10.0.0.2"); a name in
 * tls_peers or tls_admins makes it admin, in tls_viewers a viewer (the
 * best role wins). TERND_ROLE_INVALID for "" or unmapped names.
 */
enum ternd_role ternd_tls_role(const struct ternd_config *cfg,
			       const char *names);
/* Is `name` an entry of the comma/blank separated `list`? */
bool ternd_list_has(const char *list, const char *name);
/* Is a route path segment a VM name / a peer address we would call? */
bool ternd_peer_ok(const char *to);

#endif
