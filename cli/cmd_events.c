/*
 * cmd_events.c - `tern events [--vm NAME] [--follow]`: a ternd's event
 * log; --follow long-polls for new events until interrupted.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* The highest event id in a reply, or `last` if it has none. */
static json_int_t last_id(const json_t *r, json_int_t last)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(r, "events"), i, e)
		if (json_integer_value(json_object_get(e, "id")) > last)
			last = json_integer_value(json_object_get(e, "id"));
	return last;
}

static void print_events(const json_t *r, bool json)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(r, "events"), i, e) {
		if (json) {
			json_dumpf(e, stdout, JSON_COMPACT);
			putchar('\n');
			continue;
		}
		printf("%s %-10s %-12s %-20s %s\n",
		       json_string_value(json_object_get(e, "time")),
		       json_string_value(json_object_get(e, "host")),
		       *json_string_value(json_object_get(e, "vm")) ?
		       json_string_value(json_object_get(e, "vm")) : "-",
		       json_string_value(json_object_get(e, "kind")),
		       json_string_value(json_object_get(e, "message")));
	}
	fflush(stdout);
}

int cli_cmd_events(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *vm = NULL;
	bool follow = false, json = false;
	json_int_t last = -1;
	char path[256];
	json_t *r;
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--vm") && i + 1 < argc)
			vm = argv[++i];
		else if (!strcmp(argv[i], "--follow") || !strcmp(argv[i], "-f"))
			follow = true;
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else
			return cli_usage_error("events: unexpected argument '%s'", argv[i]);
	}
	if (vm && strspn(vm, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(vm))
		return cli_usage_error("events: bad VM name '%s'", vm);
	do {
		snprintf(path, sizeof(path), "/events?after=%" JSON_INTEGER_FORMAT "%s%s%s",
			 last, vm ? "&vm=" : "", vm ? vm : "", last >= 0 && follow ? "&wait=25" : "");
		ret = cli_host_call(ctx, "GET", path, NULL, &r);
		if (!ret && !ctx->json)	/* --json before the command: printed raw */
			print_events(r, json);
		if (!ret)
			last = last_id(r, last < 0 ? 0 : last);
		fflush(stdout);
		json_decref(r);
	} while (!ret && follow);
	return ret;
}
