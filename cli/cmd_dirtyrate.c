/*
 * cmd_dirtyrate.c - measure the guest's dirty rate without migrating:
 *   dirty-rate [--seconds N]
 * Starts the measurement (POST /vm/dirty-rate), waits for it (GET), and
 * prints the rate, the busiest window and the working set.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "util.h"

static uint64_t dget(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ?
	       (uint64_t)json_integer_value(v) : 0;
}

static void print_result(const json_t *o)
{
	char r[32], p[32], w[32];
	const char *err = json_string_value(json_object_get(o, "error"));

	printf("dirty rate:  %s/s (busiest %" PRIu64 " ms window %s/s)\n",
	       fmt_bytes(dget(o, "dirty_rate_bps"), r, sizeof(r)), dget(o, "window_ms"),
	       fmt_bytes(dget(o, "peak_dirty_rate_bps"), p, sizeof(p)));
	printf("working set: %s dirtied in %.1f s (%" PRIu64 " windows)\n",
	       fmt_bytes(dget(o, "working_set_bytes"), w, sizeof(w)),
	       dget(o, "duration_ms") / 1000.0, dget(o, "windows"));
	if (err)
		printf("error:       %s\n", err);
}

/* Poll until the measurement is no longer running. */
static int wait_result(struct cli_ctx *ctx, json_t **o)
{
	struct timespec ts = { 0, 200 * 1000000L };
	int status;

	for (;;) {
		status = cli_vmm_call(ctx, "GET", "/vm/dirty-rate", NULL, o);
		if (status != CLI_EXIT_OK)
			return status;
		if (strcmp(json_string_value(json_object_get(*o, "state")) ?: "", "measuring"))
			return CLI_EXIT_OK;
		json_decref(*o);
		*o = NULL;
		nanosleep(&ts, NULL);
	}
}

static int cli_cmd_dirty_rate(struct cli_ctx *ctx, int argc, char **argv)
{
	json_t *body = json_object(), *o = NULL;
	int status = CLI_EXIT_OK;
	bool json;
	char *b;

	for (int i = 1; i < argc && status == CLI_EXIT_OK; i++) {
		int r = cli_common_option(ctx, argc, argv, &i);
		uint64_t n;

		if (r >= 0) {
			status = r ? r : status;
			continue;
		}
		if (strcmp(argv[i], "--seconds") || i + 1 >= argc ||
		    parse_uint(argv[i + 1], 1, 60, &n))
			status = cli_usage_error("dirty-rate: expected [--seconds N] (1 to 60), got '%s'",
						 argv[i]);
		else
			json_object_set_new(body, "seconds", json_integer((json_int_t)n)), i++;
	}
	b = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	json = ctx->json;
	ctx->json = false;
	if (status == CLI_EXIT_OK)
		status = cli_vmm_call(ctx, "POST", "/vm/dirty-rate", b, &o);
	free(b);
	json_decref(o);
	o = NULL;
	if (status == CLI_EXIT_OK)
		status = wait_result(ctx, &o);
	ctx->json = json;
	if (status == CLI_EXIT_OK && json) {
		char *s = json_dumps(o, JSON_COMPACT);

		printf("%s\n", s);
		free(s);
	} else if (status == CLI_EXIT_OK) {
		print_result(o);
	}
	if (status == CLI_EXIT_OK && strcmp(json_string_value(json_object_get(o, "state")) ?: "", "done"))
		status = CLI_EXIT_FAIL;
	json_decref(o);
	return status;
}

const struct cli_cmd cli_dirtyrate_cmds[] = {
	{ "dirty-rate", "[--seconds N]",
	  "measure how fast the guest dirties memory (no migration)", cli_cmd_dirty_rate },
	{ NULL },
};
