/*
 * cmd_migrate.c - live migration of one tern-vmm's VM:
 *   migrate URI [--downtime-ms N] [--bandwidth MIB_PER_S] [--wait]
 *   migrate-status
 *   migrate-cancel
 * With --wait, a live progress line until the migration ends, then a
 * summary; the exit status says whether the VM moved (0) or not (1).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

#define POLL_MS 200

static uint64_t jget(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ?
	       (uint64_t)json_integer_value(v) : 0;
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static bool final_state(const char *s)
{
	return !strcmp(s, "completed") || !strcmp(s, "failed") ||
	       !strcmp(s, "cancelled") || !strcmp(s, "unconfirmed") ||
	       !strcmp(s, "postcopy-failed") || !strcmp(s, "postcopy-paused") ||
	       !strcmp(s, "none");
}

static void print_postcopy(const json_t *o, bool tty)
{
	printf("%s  post-copy: %" PRIu64 " pages left, %" PRIu64 " requested, %" PRIu64
	       " pushed, faults %" PRIu64 ", fault latency avg %" PRIu64 " us median %" PRIu64
	       " us max %" PRIu64 " us, recoveries %" PRIu64 "%s",
	       tty ? "\r" : "", jget(o, "postcopy_pages_left"), jget(o, "postcopy_requests"),
	       jget(o, "postcopy_bg_pages"), jget(o, "postcopy_faults"),
	       jget(o, "postcopy_fault_avg_us"), jget(o, "postcopy_fault_p50_us"),
	       jget(o, "postcopy_fault_max_us"), jget(o, "postcopy_recoveries"),
	       tty ? "  " : "\n");
}

static void print_progress(const json_t *o, bool tty)
{
	char tr[32], rem[32], dr[32], tp[32], eta[24];

	if (jget(o, "eta_ms"))
		snprintf(eta, sizeof(eta), "%5.1f s", jget(o, "eta_ms") / 1000.0);
	else
		snprintf(eta, sizeof(eta), "    -  ");

	printf("%s%-10s %3" PRIu64 "%%  pass %-3" PRIu64 " sent %10s  remaining %10s  dirty %10s/s  "
	       "throughput %10s/s  exp. downtime %4" PRIu64 " ms  ETA %s  throttle %2" PRIu64 "%%%s",
	       tty ? "\r" : "", jstr(o, "state"), jget(o, "progress_pct"), jget(o, "pass"),
	       fmt_bytes(jget(o, "transferred_bytes"), tr, sizeof(tr)),
	       fmt_bytes(jget(o, "remaining_bytes"), rem, sizeof(rem)),
	       fmt_bytes(jget(o, "dirty_rate_bps"), dr, sizeof(dr)),
	       fmt_bytes(jget(o, "throughput_bps"), tp, sizeof(tp)),
	       jget(o, "expected_downtime_ms"), eta,
	       jget(o, "throttle_pct"), tty && !strstr(jstr(o, "state"), "postcopy") ? "  " : "\n");
	if (strstr(jstr(o, "state"), "postcopy"))
		print_postcopy(o, tty);
	fflush(stdout);
}

/* "12.3 s, downtime 45 ms", or that it was not predicted to converge. */
static void fmt_prediction(char *buf, size_t len, uint64_t total_ms, uint64_t downtime_ms)
{
	if (total_ms)
		snprintf(buf, len, "%.1f s, downtime %" PRIu64 " ms", total_ms / 1000.0, downtime_ms);
	else
		snprintf(buf, len, "not converging");
}

/* The planner's prediction (first and last) next to what happened. */
static void print_prediction(const json_t *o)
{
	if (!*jstr(o, "plan"))
		return;
	char first[48], last[48];

	fmt_prediction(first, sizeof(first), jget(o, "initial_predicted_total_ms"),
		       jget(o, "initial_predicted_downtime_ms"));
	fmt_prediction(last, sizeof(last), jget(o, "predicted_total_ms"),
		       jget(o, "predicted_downtime_ms"));
	printf("  plan:        %s; predicted at the start %s; at the end %s\n",
	       jstr(o, "plan"), first, last);
	printf("  actual:      %.1f s, downtime %" PRIu64 " ms\n",
	       jget(o, "elapsed_ms") / 1000.0, jget(o, "downtime_ms"));
	if (jget(o, "downtime_limit_ms") != jget(o, "downtime_limit_initial_ms"))
		printf("  downtime limit relaxed: %" PRIu64 " ms -> %" PRIu64 " ms\n",
		       jget(o, "downtime_limit_initial_ms"), jget(o, "downtime_limit_ms"));
}

static void print_summary(const json_t *o)
{
	char tr[32], ram[32];
	const char *st = jstr(o, "state");

	printf("migration %s", st);
	if (*jstr(o, "uri"))
		printf(" (%s)", jstr(o, "uri"));
	printf("\n  result:      %s\n", st);
	if (*jstr(o, "error"))
		printf("  error:       %s\n", jstr(o, "error"));
	printf("  total time:  %.3f s\n", jget(o, "elapsed_ms") / 1000.0);
	if (!strcmp(st, "completed"))
		printf("  downtime:    %.1f ms (limit %" PRIu64 " ms)\n",
		       jget(o, "downtime_us") ? jget(o, "downtime_us") / 1000.0 :
		       (double)jget(o, "downtime_ms"), jget(o, "downtime_limit_ms"));
	if (jget(o, "postcopy_requests") || jget(o, "postcopy_bg_pages") || strstr(st, "postcopy"))
		print_postcopy(o, false);
	printf("  on the wire: %s (guest RAM %s)\n",
	       fmt_bytes(jget(o, "transferred_bytes"), tr, sizeof(tr)),
	       fmt_bytes(jget(o, "ram_bytes"), ram, sizeof(ram)));
	printf("  pages:       %" PRIu64 " normal, %" PRIu64 " zero, %" PRIu64 " xbzrle"
	       " (%" PRIu64 " hot pages left by pass 1 for pass 2)\n",
	       jget(o, "pages_normal"), jget(o, "pages_zero"), jget(o, "pages_xbzrle"),
	       jget(o, "pages_deferred"));
	if (jget(o, "channels"))
		printf("  channels:    %" PRIu64 " (%" PRIu64 " pages in compressed batches)\n",
		       jget(o, "channels"), jget(o, "pages_compressed"));
	if (jget(o, "pages_xbzrle") || jget(o, "xbzrle_cache_misses"))
		printf("  xbzrle:      %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64
		       " overflows, %s saved\n", jget(o, "xbzrle_cache_hits"),
		       jget(o, "xbzrle_cache_misses"), jget(o, "xbzrle_overflows"),
		       fmt_bytes(jget(o, "xbzrle_bytes_saved"), tr, sizeof(tr)));
	printf("  passes:      %" PRIu64 "\n", jget(o, "pass"));
	if (*jstr(o, "strategy"))
		printf("  strategy:    %s\n", jstr(o, "strategy"));
	print_prediction(o);
}

/* Poll until a final state; returns the exit status. */
static int wait_migration(struct cli_ctx *ctx)
{
	bool tty = isatty(STDOUT_FILENO), json = ctx->json;
	struct timespec ts = { 0, POLL_MS * 1000000L };
	json_t *o = NULL;
	int status;

	ctx->json = false;	/* print only the final reply as JSON */
	for (;;) {
		json_decref(o);
		status = cli_vmm_call(ctx, "GET", "/vm/migration", NULL, &o);
		if (status != CLI_EXIT_OK)
			return status;
		if (final_state(jstr(o, "state")))
			break;
		if (!json)
			print_progress(o, tty);
		nanosleep(&ts, NULL);
	}
	if (json) {
		char *s = json_dumps(o, JSON_COMPACT);

		printf("%s\n", s);
		free(s);
	} else {
		if (tty)
			printf("\n");
		print_summary(o);
	}
	status = strcmp(jstr(o, "state"), "completed") ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	json_decref(o);
	return status;
}

/* Numeric options of `migrate`, each a field of POST /vm/migrate. */
static const struct {
	const char *opt, *field;
	uint64_t min, max;
} num_opts[] = {
	{ "--downtime-ms", "downtime_ms", 1, 600000 },
	{ "--bandwidth", "bandwidth_mibs", 1, 1 << 20 },
	{ "--throttle-initial", "throttle_initial", 1, 99 },
	{ "--throttle-increment", "throttle_increment", 1, 99 },
	{ "--throttle-max", "throttle_max", 1, 99 },
	{ "--completion-timeout", "completion_timeout_per_gib", 1, 1000000 },
	{ "--progress-timeout", "progress_timeout_s", 1, 1000000 },
	{ "--xbzrle-cache", "xbzrle_cache_mib", 1, 65536 },
	{ "--channels", "channels", 0, 16 },
	{ "--compress-level", "compress_level", 1, 19 },
	{ "--keepalive-interval", "keepalive_interval_s", 1, 3600 },
	{ "--keepalive-count", "keepalive_count", 1, 100 },
	{ "--downtime-max-ms", "downtime_max_ms", 1, 600000 },
	{ "--downtime-steps", "downtime_steps", 1, 100 },
	{ "--probe-ms", "probe_ms", 1, 60000 },
};

/* Word options: value checked by the server too. */
static const struct {
	const char *opt, *field, *choices[6];
} word_opts[] = {
	{ "--auto-converge", "auto_converge", { "auto", "on", "off", NULL } },
	{ "--timeout-action", "timeout_action", { "abort", "force", "postcopy", NULL } },
	{ "--compress", "compress", { "none", "zstd", "lz4", NULL } },
	{ "--tls", "tls", { "on", "off", NULL } },
	{ "--strategy", "strategy", { "auto", "precopy", "xbzrle", "auto-converge", "postcopy", NULL } },
};

static int choice_error(const char *opt, const char *const *choices)
{
	char list[128] = "";

	for (size_t c = 0; choices[c]; c++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 c ? ", " : "", choices[c]);
	return cli_usage_error("migrate: %s needs one of: %s", opt, list);
}

static int migrate_option(json_t *body, int argc, char **argv, int *i)
{
	const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;

	for (size_t k = 0; k < sizeof(num_opts) / sizeof(num_opts[0]); k++) {
		uint64_t n;

		if (strcmp(argv[*i], num_opts[k].opt))
			continue;
		if (!v || parse_uint(v, num_opts[k].min, num_opts[k].max, &n))
			return cli_usage_error("migrate: %s needs a number from %" PRIu64 " to %" PRIu64,
					       num_opts[k].opt, num_opts[k].min, num_opts[k].max);
		json_object_set_new(body, num_opts[k].field, json_integer((json_int_t)n));
		++*i;
		return 0;
	}
	for (size_t k = 0; k < sizeof(word_opts) / sizeof(word_opts[0]); k++) {
		bool ok = false;

		if (strcmp(argv[*i], word_opts[k].opt))
			continue;
		for (size_t c = 0; v && word_opts[k].choices[c]; c++)
			ok |= !strcmp(v, word_opts[k].choices[c]);
		if (!ok)
			return choice_error(word_opts[k].opt, word_opts[k].choices);
		json_object_set_new(body, word_opts[k].field, json_string(v));
		++*i;
		return 0;
	}
	return -1;
}

static int cli_cmd_migrate(struct cli_ctx *ctx, int argc, char **argv)
{
	json_t *body = json_object(), *reply = NULL;
	const char *uri = NULL;
	bool wait = false;
	int status = CLI_EXIT_OK;
	char *b;

	for (int i = 1; i < argc && status == CLI_EXIT_OK; i++) {
		int r = cli_common_option(ctx, argc, argv, &i);

		if (r > 0)
			status = r;
		if (r >= 0)
			continue;
		if (!strcmp(argv[i], "--wait"))
			wait = true;
		else if (!strcmp(argv[i], "--xbzrle"))
			json_object_set_new(body, "xbzrle", json_true());
		else if (!strcmp(argv[i], "--postcopy"))
			json_object_set_new(body, "postcopy", json_true());
		else if (!strcmp(argv[i], "--auto-postcopy"))
			json_object_set_new(body, "auto_postcopy", json_true());
		else if (!strcmp(argv[i], "--tls-hostname") && i + 1 < argc)
			json_object_set_new(body, "tls_hostname", json_string(argv[++i]));
		else if (!strcmp(argv[i], "--no-probe"))
			json_object_set_new(body, "no_probe", json_true());
		else if (!strcmp(argv[i], "--no-defer-hot"))
			json_object_set_new(body, "no_defer_hot", json_true());
		else if ((r = migrate_option(body, argc, argv, &i)) >= 0)
			status = r ? r : status;
		else if (argv[i][0] != '-' && !uri)
			uri = argv[i];
		else
			status = cli_usage_error("migrate: unexpected argument '%s'", argv[i]);
	}
	if (status == CLI_EXIT_OK && !uri)
		status = cli_usage_error("migrate: give the destination, e.g. tcp:HOST:PORT");
	if (status != CLI_EXIT_OK) {
		json_decref(body);
		return status;
	}
	json_object_set_new(body, "uri", json_string(uri));
	b = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (wait) {
		bool json = ctx->json;

		ctx->json = false;
		status = cli_vmm_call(ctx, "POST", "/vm/migrate", b, &reply);
		ctx->json = json;
		if (status == CLI_EXIT_OK)
			status = wait_migration(ctx);
	} else {
		status = cli_vmm_call(ctx, "POST", "/vm/migrate", b, &reply);
		if (status == CLI_EXIT_OK && !ctx->json)
			printf("migration to %s started\n", uri);
	}
	free(b);
	json_decref(reply);
	return status;
}

static int cli_cmd_migrate_status(struct cli_ctx *ctx, int argc, char **argv)
{
	json_t *o;
	int status;

	if (cli_parse_common(ctx, argc, argv, &status))
		return status;
	status = cli_vmm_call(ctx, "GET", "/vm/migration", NULL, &o);
	if (status == CLI_EXIT_OK && !ctx->json) {
		if (final_state(jstr(o, "state")))
			print_summary(o);
		else
			print_progress(o, false);
	}
	json_decref(o);
	return status;
}

/* POST an action on the migration; say what was done and the state it left. */
static int migration_action(struct cli_ctx *ctx, const char *path, const char *body,
			    const char *done)
{
	json_t *o = NULL;
	int status = cli_vmm_call(ctx, "POST", path, body, &o);

	if (status == CLI_EXIT_OK && !ctx->json)
		printf("%s (state: %s)\n", done, jstr(o, "state"));
	json_decref(o);
	return status;
}

/* A sub-command that takes only the common options and POSTs an action. */
static int migration_plain_action(struct cli_ctx *ctx, int argc, char **argv,
				  const char *path, const char *done)
{
	int status;

	if (cli_parse_common(ctx, argc, argv, &status))
		return status;
	return migration_action(ctx, path, NULL, done);
}

static int cli_cmd_migrate_cancel(struct cli_ctx *ctx, int argc, char **argv)
{
	return migration_plain_action(ctx, argc, argv, "/vm/migration/cancel",
				      "migration cancel requested");
}

static int cli_cmd_migrate_postcopy(struct cli_ctx *ctx, int argc, char **argv)
{
	return migration_plain_action(ctx, argc, argv, "/vm/migration/postcopy",
				      "switch to post-copy requested");
}

/* migrate-recover [tcp:H:P]: reconnect a paused post-copy. */
static int cli_cmd_migrate_recover(struct cli_ctx *ctx, int argc, char **argv)
{
	json_t *body = json_object();
	int status = CLI_EXIT_OK;
	char *b;

	for (int i = 1; i < argc && status == CLI_EXIT_OK; i++) {
		int r = cli_common_option(ctx, argc, argv, &i);

		if (r > 0)
			status = r;
		else if (r < 0 && argv[i][0] != '-' && !json_object_get(body, "uri"))
			json_object_set_new(body, "uri", json_string(argv[i]));
		else if (r < 0)
			status = cli_usage_error("migrate-recover: unexpected argument '%s'", argv[i]);
	}
	b = status == CLI_EXIT_OK ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (status != CLI_EXIT_OK)
		return status;
	status = migration_action(ctx, "/vm/migration/recover", b, "post-copy recovered");
	free(b);
	return status;
}

/* migrate-abandon --resume-source: the destination is dead; run here. */
static int cli_cmd_migrate_abandon(struct cli_ctx *ctx, int argc, char **argv)
{
	bool resume = false;
	int status = CLI_EXIT_OK;
	json_t *o = NULL;

	for (int i = 1; i < argc && status == CLI_EXIT_OK; i++) {
		int r = cli_common_option(ctx, argc, argv, &i);

		if (r > 0)
			status = r;
		else if (r < 0 && !strcmp(argv[i], "--resume-source"))
			resume = true;
		else if (r < 0)
			status = cli_usage_error("migrate-abandon: unexpected argument '%s'", argv[i]);
	}
	if (status != CLI_EXIT_OK)
		return status;
	status = cli_vmm_call(ctx, "POST", "/vm/migration/abandon",
			      resume ? "{\"resume_source\":true}" : NULL, &o);
	if (status == CLI_EXIT_OK && !ctx->json)
		printf("post-copy abandoned%s\n", resume ? "; the VM runs here again" : "");
	json_decref(o);
	return status;
}

const struct cli_cmd cli_migrate_cmds[] = {
	{ "migrate", "URI [OPTIONS]",
	  "live-migrate the VM to a tern-vmm --incoming URI", cli_cmd_migrate },
	{ "migrate-status", "", "show the migration's progress or result",
	  cli_cmd_migrate_status },
	{ "migrate-cancel", "", "cancel the migration; the VM keeps running here",
	  cli_cmd_migrate_cancel },
	{ "migrate-postcopy", "", "switch the migration to post-copy at the end of this pass",
	  cli_cmd_migrate_postcopy },
	{ "migrate-recover", "[tcp:HOST:PORT]",
	  "post-copy paused: reconnect to the destination (default: the migration's URI)",
	  cli_cmd_migrate_recover },
	{ "migrate-abandon", "[--resume-source]",
	  "post-copy paused and the destination is dead: give it up (--resume-source: run here)",
	  cli_cmd_migrate_abandon },
	{ NULL },
};
