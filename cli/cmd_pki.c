/*
 * cmd_pki.c - a cluster's certificates without openssl commands:
 *   pki init  [--dir D] [--cn NAME] [--days N] [--force]
 *   pki issue NAME [--ip A]... [--dns N]... [--dir D] [--days N] [--force]
 * Files go to D (default /etc/tern/pki): ca.pem + ca-key.pem, and
 * NAME.pem + NAME-key.pem (keys mode 0600). Work is done by net/pki.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "pki.h"
#include "util.h"

struct pki_args {
	const char *dir;
	const char *cn;
	uint64_t days;
	bool days_set;
	struct pki_issue_opts issue;
};

/* An option of either sub-command at argv[*i]: 0 taken, > 0 exit status. */
static int pki_option(struct pki_args *a, bool issue, int argc, char **argv, int *i)
{
	const char *o = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;

	if (!strcmp(o, "--force")) {
		a->issue.force = true;
		return 0;
	}
	if (!v || strncmp(o, "--", 2))
		return cli_usage_error("pki: unexpected argument '%s'", o);
	++*i;
	if (!strcmp(o, "--dir"))
		a->dir = v;
	else if (!strcmp(o, "--cn") && !issue)
		a->cn = v;
	else if (!strcmp(o, "--days")) {
		if (parse_uint(v, 0, PKI_MAX_DAYS, &a->days))
			return cli_usage_error("pki: --days needs a number from 0 to %d", PKI_MAX_DAYS);
		a->days_set = true;
	} else if (!strcmp(o, "--ip") && issue && a->issue.nips < PKI_MAX_SAN)
		a->issue.ips[a->issue.nips++] = v;
	else if (!strcmp(o, "--dns") && issue && a->issue.ndns < PKI_MAX_SAN)
		a->issue.dns[a->issue.ndns++] = v;
	else
		return cli_usage_error("pki: unexpected option '%s'", o);
	return 0;
}

static int parse_pki(struct pki_args *a, bool issue, int argc, char **argv)
{
	memset(a, 0, sizeof(*a));
	a->dir = PKI_DEFAULT_DIR;
	a->cn = PKI_DEFAULT_CA_CN;
	for (int i = 1; i < argc; i++) {
		int r;

		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return cli_usage_error("pki %s: options are listed", issue ? "issue" : "init");
		if (issue && argv[i][0] != '-' && !a->issue.name) {
			a->issue.name = argv[i];
			continue;
		}
		r = pki_option(a, issue, argc, argv, &i);
		if (r)
			return r;
	}
	if (issue && !a->issue.name)
		return cli_usage_error("pki issue: give the host's name");
	return 0;
}

static int cli_cmd_pki_init(struct cli_ctx *ctx, int argc, char **argv)
{
	struct pki_args a;
	struct err err = { 0 };
	int status = parse_pki(&a, false, argc, argv);

	if (status)
		return status;
	if (!a.days_set)
		a.days = PKI_DEFAULT_CA_DAYS;
	if (pki_init(a.dir, a.cn, (unsigned)a.days, a.issue.force, &err))
		return cli_fail("pki init: %s", err.msg);
	printf("cluster CA '%s' in %s/ca.pem (key %s/ca-key.pem, mode 0600), valid %" PRIu64
	       " days\n", a.cn, a.dir, a.dir, a.days);
	return CLI_EXIT_OK;
}

static int cli_cmd_pki_issue(struct cli_ctx *ctx, int argc, char **argv)
{
	struct pki_args a;
	struct err err = { 0 };
	int status = parse_pki(&a, true, argc, argv);

	if (status)
		return status;
	a.issue.days = a.days_set ? (unsigned)a.days : PKI_DEFAULT_DAYS;
	if (pki_issue(a.dir, &a.issue, &err))
		return cli_fail("pki issue: %s", err.msg);
	printf("certificate for '%s' in %s/%s.pem (key %s/%s-key.pem, mode 0600), valid %u days%s\n",
	       a.issue.name, a.dir, a.issue.name, a.dir, a.issue.name, a.issue.days,
	       a.issue.days ? "" : " (already expired: for tests)");
	return CLI_EXIT_OK;
}

static int cli_cmd_pki(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "init"))
		return cli_cmd_pki_init(ctx, argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "issue"))
		return cli_cmd_pki_issue(ctx, argc - 1, argv + 1);
	return cli_usage_error("pki: give init or issue");
}

const struct cli_cmd cli_pki_cmds[] = {
	{ "pki", "init|issue ...", "cluster CA and host certificates for TLS (see below)",
	  cli_cmd_pki },
	{ NULL },
};
