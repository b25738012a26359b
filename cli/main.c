/*
 * main.c - `tern`, the command-line client for tern's control APIs.
 *
 *   tern [--vmm PATH] [--json] COMMAND [ARGS...]
 *
 * Global options come before the command; each command group lives in its
 * own file (cmd_vmm.c, ...) and parses its own arguments. Exit status: 0
 * ok, 1 the operation failed, 2 bad usage.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "pki.h"
#include "util.h"

#ifndef TERN_VERSION
#define TERN_VERSION "unknown"
#endif

static const struct cli_cmd *const cli_groups[] = {
	cli_vmm_cmds,
	cli_migrate_cmds,
	cli_ternd_cmds,
	cli_pki_cmds,
	cli_dirtyrate_cmds,
};

int cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("tern: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("tern: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see 'tern --help')\n", stderr);
	return CLI_EXIT_USAGE;
}

static void cli_help(FILE *f)
{
	char synopsis[64];

	fputs("usage: tern [--vmm PATH | --host URL [--token T] [--tls-ca F [--tls-cert F --tls-key F]]]\n"
	      "            [--json] COMMAND [ARGS...]\n"
	      "       tern --help | --version\n\n"
	      "Commands:\n", f);
	for (size_t g = 0; g < ARRAY_SIZE(cli_groups); g++)
		for (const struct cli_cmd *c = cli_groups[g]; c->name; c++) {
			snprintf(synopsis, sizeof(synopsis), "%s%s%s", c->name,
				 *c->args ? " " : "", c->args);
			fprintf(f, "  %-14s %s\n", synopsis, c->summary);
		}
	fputs("\nmigrate URI options (URI is tcp:HOST:PORT of a tern-vmm --incoming):\n"
	      "  --wait                      show progress until it ends; exit 0 only if the VM moved\n"
	      "  --downtime-ms N             longest pause allowed (default 300)\n"
	      "  --bandwidth MIB             link cap in MiB/s (default unlimited)\n"
	      "  --auto-converge auto|on|off throttle vCPUs when passes stop shrinking (default auto)\n"
	      "  --throttle-initial PCT      first throttle (default 20)\n"
	      "  --throttle-increment PCT    added each time (default 10)\n"
	      "  --throttle-max PCT          at most (default 99)\n"
	      "  --completion-timeout S      seconds per GiB of guest RAM (default 150)\n"
	      "  --progress-timeout S        seconds without progress (default 150)\n"
	      "  --timeout-action abort|force|postcopy  on a timeout: give up, pause and finish,\n"
	      "                              or switch to post-copy (default abort)\n"
	      "  --postcopy                  allow a switch to post-copy (tern migrate-postcopy)\n"
	      "  --auto-postcopy             switch to post-copy when passes stop converging\n"
	      "  --xbzrle                    re-send dirty pages as XBZRLE deltas\n"
	      "  --xbzrle-cache MIB          cache of sent pages for XBZRLE (default 64)\n"
	      "  --channels N                parallel page channels, 0-16 (default 2; 0: main stream)\n"
	      "  --compress none|zstd|lz4    per-batch compression on the channels (default none)\n"
	      "  --compress-level N          zstd level 1-19 (default 1)\n"
	      "  --strategy S                auto|precopy|xbzrle|auto-converge|postcopy (default auto:\n"
	      "                              the planner picks; post-copy only with --auto-postcopy)\n"
	      "  --downtime-max-ms N         on stalls relax the downtime limit up to N (default: never)\n"
	      "  --downtime-steps N          ... in N steps (default 4)\n"
	      "  --probe-ms N                measure the dirty rate up to N ms first (default 400)\n"
	      "  --no-probe                  no dirty-rate probe\n"
	      "  --no-defer-hot              pass 1 sends pages the guest rewrites, too\n"
	      "  --keepalive-interval S      keepalive probe interval (default 5)\n"
	      "  --keepalive-count N         probes unanswered before the peer is gone (default 5)\n"
	      "  --tls on|off                TLS 1.3, both sides authenticated (default: on when\n"
	      "                              tern-vmm has --tls-*)\n"
	      "  --tls-hostname NAME         name the destination's certificate must carry\n"
	      "                              (default: the host in the URI)\n", f);
	fputs("\npki options (DIR defaults to " PKI_DEFAULT_DIR "):\n"
	      "  pki init  [--dir DIR] [--cn NAME] [--days N] [--force]       make the cluster CA\n"
	      "  pki issue NAME [--ip A]... [--dns N]... [--dir DIR] [--days N] [--force]\n"
	      "                              make NAME.pem + NAME-key.pem, signed by the CA\n", f);
	fputs("\nOptions:\n"
	      "  --vmm PATH     API socket of the tern-vmm to talk to (its --api PATH)\n"
	      "  --host URL|SOCKET  the ternd to talk to: https://HOST:PORT, http://HOST:PORT,\n"
	      "                 HOST:PORT or its unix socket (default $TERN_HOST, else\n"
	      "                 /run/tern/ternd.sock); HOST:PORT means https when a CA is given\n"
	      "  --token TOKEN  API token for a ternd over TCP (default $TERN_TOKEN)\n"
	      "  --tls-ca FILE  the cluster CA that signed the ternd's certificate (https; its\n"
	      "                 name must match HOST) (default $TERN_TLS_CA)\n"
	      "  --tls-cert FILE, --tls-key FILE  our certificate and key, from tern pki issue:\n"
	      "                 a ternd gives it the role its tls_admins/tls_viewers name\n"
	      "                 (default $TERN_TLS_CERT, $TERN_TLS_KEY)\n"
	      "  --json         print the API's JSON reply instead of text\n"
	      "  -h, --help     show this help\n"
	      "  -V, --version  show the version\n\n"
	      "Exit status: 0 ok, 1 the operation failed, 2 bad usage.\n", f);
}

static const struct cli_cmd *cli_find(const char *name)
{
	for (size_t g = 0; g < ARRAY_SIZE(cli_groups); g++)
		for (const struct cli_cmd *c = cli_groups[g]; c->name; c++)
			if (!strcmp(c->name, name))
				return c;
	return NULL;
}

/*
 * One option at argv[*i]. Returns 0 when consumed, -1 when it is not an
 * option we know, or an exit status (> 0) to return at once.
 */
int cli_common_option(struct cli_ctx *ctx, int argc, char **argv, int *i)
{
	const char *a = argv[*i];

	if (!strcmp(a, "--json")) {
		ctx->json = true;
	} else if (!strncmp(a, "--vmm=", 6)) {
		ctx->vmm = a + 6;
	} else if (!strcmp(a, "--host") || !strcmp(a, "--token")) {
		if (*i + 1 >= argc)
			return cli_usage_error("option %s needs a value", a);
		*(a[2] == 'h' ? &ctx->host : &ctx->token) = argv[++*i];
	} else if (!strcmp(a, "--tls-ca") || !strcmp(a, "--tls-cert") ||
		   !strcmp(a, "--tls-key")) {
		if (*i + 1 >= argc || !argv[*i + 1][0])
			return cli_usage_error("option %s needs a FILE", a);
		*(!strcmp(a, "--tls-ca") ? &ctx->tls_ca : !strcmp(a, "--tls-cert") ?
		  &ctx->tls_cert : &ctx->tls_key) = argv[++*i];
	} else if (!strcmp(a, "--vmm")) {
		if (*i + 1 >= argc)
			return cli_usage_error("option --vmm needs a PATH");
		ctx->vmm = argv[++*i];
	} else {
		return -1;
	}
	if (ctx->vmm && !*ctx->vmm)
		return cli_usage_error("option --vmm needs a PATH");
	return 0;
}

bool cli_parse_common(struct cli_ctx *ctx, int argc, char **argv,
		      int *status)
{
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			cli_help(stdout);
			*status = CLI_EXIT_OK;
			return true;
		}
		ret = cli_common_option(ctx, argc, argv, &i);
		if (ret > 0)
			*status = ret;
		else if (ret < 0 && argv[i][0] == '-')
			*status = cli_usage_error("%s: unknown option '%s'",
						  ctx->cmd, argv[i]);
		else if (ret < 0)
			*status = cli_usage_error("%s: unexpected argument '%s'",
						  ctx->cmd, argv[i]);
		if (ret)
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	struct cli_ctx ctx = { 0 };
	const struct cli_cmd *cmd;
	int i, ret;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			cli_help(stdout);
			return CLI_EXIT_OK;
		}
		if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
			printf("tern %s\n", TERN_VERSION);
			return CLI_EXIT_OK;
		}
		ret = cli_common_option(&ctx, argc, argv, &i);
		if (ret > 0)
			return ret;
		if (ret < 0)
			return cli_usage_error("unknown option '%s'", argv[i]);
	}
	if (i >= argc)
		return cli_usage_error("no command given");
	cmd = cli_find(argv[i]);
	if (!cmd)
		return cli_usage_error("unknown command '%s'", argv[i]);
	ctx.cmd = cmd->name;
	return cmd->run(&ctx, argc - i, argv + i);
}
