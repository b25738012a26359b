/*
 * cli.h - private to cli/: what the `tern` command groups share.
 *
 * main.c parses the global options (up to the command name) and
 * dispatches to a command from one of the groups' tables (cmd_vmm.c, ...).
 * A command gets its own arguments, parses them with cli_parse_common()
 * or its own parser, and returns the process exit status.
 */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <jansson.h>
#include <stdbool.h>

enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,	/* the operation failed (API error, no server) */
	CLI_EXIT_USAGE = 2,	/* bad command line */
};

struct cli_ctx {
	const char *vmm;	/* --vmm PATH: tern-vmm's API socket */
	bool json;		/* --json: print the raw API reply */
	const char *cmd;	/* the command being run, for messages */
	const char *host;	/* --host URL|SOCKET: a ternd (TERN_HOST) */
	const char *token;	/* --token TOKEN (TERN_TOKEN) */
	bool quiet;		/* cli_host_call prints no error */
	const char *tls_ca;	/* --tls-ca FILE (TERN_TLS_CA): https:// */
	const char *tls_cert;	/* --tls-cert FILE (TERN_TLS_CERT) */
	const char *tls_key;	/* --tls-key FILE (TERN_TLS_KEY) */
};

struct cli_cmd {
	const char *name;	/* NULL ends a table */
	const char *args;	/* argument synopsis for the help text */
	const char *summary;
	int (*run)(struct cli_ctx *ctx, int argc, char **argv);
};

/* Command groups, one file each. */
extern const struct cli_cmd cli_vmm_cmds[];
extern const struct cli_cmd cli_migrate_cmds[];
extern const struct cli_cmd cli_ternd_cmds[];	/* vm, host, events */
int cli_cmd_host(struct cli_ctx *ctx, int argc, char **argv);
int cli_cmd_events(struct cli_ctx *ctx, int argc, char **argv);
extern const struct cli_cmd cli_pki_cmds[];
extern const struct cli_cmd cli_dirtyrate_cmds[];

/* "tern: <message>" on stderr. Returns CLI_EXIT_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "tern: <message>" + a hint to run --help. Returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Parse what every command accepts after its name: --json, --vmm PATH
 * (--vmm=PATH), -h/--help. Anything else is a usage error. Returns false
 * to go on, or true when the command must stop now and return *status
 * (help printed: 0; usage error printed: 2).
 */
bool cli_parse_common(struct cli_ctx *ctx, int argc, char **argv,
		      int *status);

/*
 * One option every command accepts (--json, --vmm PATH) at argv[*i]:
 * 0 taken (*i may advance), -1 not a common option, > 0 usage error
 * already printed (the exit status).
 */
int cli_common_option(struct cli_ctx *ctx, int argc, char **argv, int *i);

/*
 * Call the tern-vmm API (needs ctx->vmm). On success returns CLI_EXIT_OK
 * with the parsed JSON object in *reply (caller decrefs) and, with --json,
 * the raw body already printed. On failure prints one line
 * ("tern: <cmd>: <server's message>") and returns CLI_EXIT_FAIL.
 */
int cli_vmm_call(struct cli_ctx *ctx, const char *method, const char *path,
		 const char *body, json_t **reply);

/*
 * Call a ternd's API (--host, else $TERN_HOST, else /run/tern/ternd.sock)
 * with --token / $TERN_TOKEN. Like cli_vmm_call; on failure also prints
 * the field errors or check failures the server listed. *reply is set
 * whenever the server sent a JSON object (caller decrefs).
 */
int cli_host_call(struct cli_ctx *ctx, const char *method, const char *path,
		  const char *body, json_t **reply);

#endif
