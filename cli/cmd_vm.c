/*
 * cmd_vm.c - `tern vm ...`: VMs kept by a ternd (--host URL|SOCKET).
 *   vm define FILE.json | list | show NAME | console NAME
 *   vm start|pause|resume|undefine NAME
 *   vm stop NAME [--force] [--timeout S]   (both: graceful for S, then SIGKILL)
 *   vm migrate NAME --to HOST [--check] [--wait] [engine options]
 *   vm migrate-cancel NAME
 * Also holds the table of ternd commands (vm, host, events).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

static bool name_ok(const char *s)
{
	return *s && strlen(s) < 64 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == strlen(s);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = malloc(256 * 1024 + 1);
	size_t n;

	if (!f || !buf) {
		if (f)
			fclose(f);
		free(buf);
		return NULL;
	}
	n = fread(buf, 1, 256 * 1024, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int vm_define(struct cli_ctx *ctx, const char *file)
{
	char *body = read_file(file);
	json_t *r;
	int ret;

	if (!body)
		return cli_fail("vm define: cannot read %s", file);
	ret = cli_host_call(ctx, "POST", "/vms", body, &r);
	if (!ret && !ctx->json)
		printf("defined %s\n", json_string_value(json_object_get(r, "name")));
	free(body);
	json_decref(r);
	return ret;
}

static const char *dget(const json_t *vm, const char *k)
{
	const char *s = json_string_value(json_object_get(json_object_get(vm, "definition"), k));

	return s ? s : "";
}

static int vm_list(struct cli_ctx *ctx)
{
	json_t *r, *vm;
	size_t i;
	int ret = cli_host_call(ctx, "GET", "/vms", NULL, &r);

	if (!ret && !ctx->json) {
		printf("%-20s %-10s %-8s %6s %5s %-12s %s\n", "NAME", "STATE", "PID",
		       "MEMORY", "VCPUS", "CPU_MODEL", "MIGRATION");
		json_array_foreach(json_object_get(r, "vms"), i, vm) {
			json_t *def = json_object_get(vm, "definition");

			printf("%-20s %-10s %-8" JSON_INTEGER_FORMAT " %5" JSON_INTEGER_FORMAT "M %5" JSON_INTEGER_FORMAT " %-12s %s\n",
			       json_string_value(json_object_get(vm, "name")),
			       json_string_value(json_object_get(vm, "state")),
			       json_integer_value(json_object_get(vm, "pid")),
			       json_integer_value(json_object_get(def, "memory")) >> 20,
			       json_integer_value(json_object_get(def, "vcpus")),
			       dget(vm, "cpu_model"), dget(vm, "migration_mode"));
		}
	}
	json_decref(r);
	return ret;
}

static void print_bar(const json_t *m, bool tty)
{
	json_int_t pct = json_integer_value(json_object_get(m, "progress_pct"));
	char bar[41], tr[32];
	int fill = (int)(pct > 100 ? 40 : pct * 40 / 100);

	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(40 - fill));
	bar[40] = '\0';
	printf("%s[%s] %3" JSON_INTEGER_FORMAT "%% %-10s pass %" JSON_INTEGER_FORMAT " sent %s%s",
	       tty ? "\r" : "", bar, pct,
	       json_string_value(json_object_get(m, "state")) ?: "",
	       json_integer_value(json_object_get(m, "pass")),
	       fmt_bytes((uint64_t)json_integer_value(json_object_get(m, "transferred_bytes")),
			 tr, sizeof(tr)), tty ? "   " : "\n");
	fflush(stdout);
}

static int vm_show(struct cli_ctx *ctx, const char *name)
{
	char path[96];
	json_t *r, *m;
	int ret;

	snprintf(path, sizeof(path), "/vms/%s", name);
	ret = cli_host_call(ctx, "GET", path, NULL, &r);
	if (!ret && !ctx->json) {
		json_t *def = json_object_get(r, "definition");

		printf("name:      %s\nhost:      %s\nstate:     %s\npid:       %" JSON_INTEGER_FORMAT "\n"
		       "memory:    %" JSON_INTEGER_FORMAT " MiB\nvcpus:     %" JSON_INTEGER_FORMAT "\n"
		       "cpu_model: %s\nmigration_mode: %s\n",
		       json_string_value(json_object_get(r, "name")),
		       json_string_value(json_object_get(r, "host")),
		       json_string_value(json_object_get(r, "state")),
		       json_integer_value(json_object_get(r, "pid")),
		       json_integer_value(json_object_get(def, "memory")) >> 20,
		       json_integer_value(json_object_get(def, "vcpus")),
		       dget(r, "cpu_model"), dget(r, "migration_mode"));
		if (json_is_true(json_object_get(r, "migrating"))) {
			printf("migrating to %s: ",
			       json_string_value(json_object_get(r, "migrating_to")));
			m = json_object_get(r, "migration");
			if (m)
				print_bar(m, false);
			else
				printf("starting\n");
		}
		if (json_object_get(r, "last_migration"))
			printf("last migration: %s\n",
			       json_string_value(json_object_get(r, "last_migration")));
	}
	json_decref(r);
	return ret;
}

static int vm_console(struct cli_ctx *ctx, const char *name)
{
	char path[96];
	json_t *r;
	int ret;

	snprintf(path, sizeof(path), "/vms/%s/console", name);
	ret = cli_host_call(ctx, "GET", path, NULL, &r);
	if (!ret && !ctx->json)
		fputs(json_string_value(json_object_get(r, "log")) ?: "", stdout);
	json_decref(r);
	return ret;
}

static int vm_simple(struct cli_ctx *ctx, const char *op, const char *name,
		     const char *body)
{
	char path[96];
	json_t *r;
	int ret;

	snprintf(path, sizeof(path), "/vms/%s%s%s", name, strcmp(op, "undefine") ? "/" : "",
		 strcmp(op, "undefine") ? op : "");
	ret = cli_host_call(ctx, strcmp(op, "undefine") ? "POST" : "DELETE", path, body, &r);
	if (!ret && !ctx->json)
		printf("%s: %s\n", name, json_string_value(json_object_get(r, "state")) ?:
		       (!strcmp(op, "undefine") ? "undefined" : "ok"));
	json_decref(r);
	return ret;
}

/* vm stop NAME [--force] [--timeout S], options in any order. */
static int vm_stop(struct cli_ctx *ctx, int argc, char **argv)
{
	bool force = false;
	uint64_t t = 0;
	char body[64];

	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--force"))
			force = true;
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			if (parse_uint(argv[++i], 1, 3600, &t))
				return cli_usage_error("vm stop: --timeout: '%s' is not 1..3600 seconds",
						       argv[i]);
		} else
			return cli_usage_error("vm stop: unexpected argument '%s'", argv[i]);
	}
	if (t)
		snprintf(body, sizeof(body), "{\"force\":%s,\"timeout_s\":%" PRIu64 "}",
			 force ? "true" : "false", t);
	else
		snprintf(body, sizeof(body), "{\"force\":%s}", force ? "true" : "false");
	return vm_simple(ctx, "stop", argv[2], body);
}

/* Engine options pass through: --downtime-ms N -> "downtime_ms": N. */
static const struct { const char *opt, *key; bool is_str, is_flag; } knobs[] = {
	{ "--downtime-ms", "downtime_ms", false, false },
	{ "--bandwidth", "bandwidth_mibs", false, false },
	{ "--auto-converge", "auto_converge", true, false },
	{ "--throttle-initial", "throttle_initial", false, false },
	{ "--throttle-increment", "throttle_increment", false, false },
	{ "--throttle-max", "throttle_max", false, false },
	{ "--completion-timeout", "completion_timeout_per_gib", false, false },
	{ "--progress-timeout", "progress_timeout_s", false, false },
	{ "--timeout-action", "timeout_action", true, false },
	{ "--xbzrle", "xbzrle", false, true },
	{ "--xbzrle-cache", "xbzrle_cache_mib", false, false },
};

static int migrate_args(json_t *b, int argc, char **argv, bool *wait)
{
	uint64_t n;
	size_t k;

	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--wait")) {
			*wait = true;
			continue;
		}
		if (!strcmp(argv[i], "--check")) {
			json_object_set_new(b, "check", json_true());
			continue;
		}
		if (!strcmp(argv[i], "--to") && i + 1 < argc) {
			json_object_set_new(b, "to", json_string(argv[++i]));
			continue;
		}
		for (k = 0; k < ARRAY_SIZE(knobs) && strcmp(argv[i], knobs[k].opt); k++)
			;
		if (k == ARRAY_SIZE(knobs))
			return cli_usage_error("vm migrate: unknown option '%s'", argv[i]);
		if (knobs[k].is_flag)
			json_object_set_new(b, knobs[k].key, json_true());
		else if (i + 1 >= argc)
			return cli_usage_error("vm migrate: %s needs a value", argv[i]);
		else if (knobs[k].is_str)
			json_object_set_new(b, knobs[k].key, json_string(argv[++i]));
		else if (parse_uint(argv[++i], 0, UINT32_MAX, &n))
			return cli_usage_error("vm migrate: %s: '%s' is not a number", argv[i - 1], argv[i]);
		else
			json_object_set_new(b, knobs[k].key, json_integer((json_int_t)n));
	}
	if (!json_object_get(b, "to"))
		return cli_usage_error("vm migrate: --to HOST is required");
	return 0;
}

static void print_verdict(const json_t *r)
{
	size_t i;
	json_t *e;

	printf("migration check: %s\n", json_is_true(json_object_get(r, "ok")) ?
	       "OK, the migration may go ahead" : "REFUSED");
	json_array_foreach(json_object_get(r, "failures"), i, e)
		printf("  FAIL %s: %s\n", json_string_value(json_object_get(e, "check")),
		       json_string_value(json_object_get(e, "reason")));
	json_array_foreach(json_object_get(r, "warnings"), i, e)
		printf("  WARN %s: %s\n", json_string_value(json_object_get(e, "check")),
		       json_string_value(json_object_get(e, "reason")));
}

/* The engine's summary, from the source's "migrated" event. */
static void print_summary(struct cli_ctx *ctx, const char *name)
{
	const char *msg = NULL, *sum;
	char path[128];
	json_t *r, *e;
	size_t i;

	snprintf(path, sizeof(path), "/events?vm=%s", name);
	if (cli_host_call(ctx, "GET", path, NULL, &r))
		return;
	json_array_foreach(json_object_get(r, "events"), i, e)
		if (!strcmp(json_string_value(json_object_get(e, "kind")) ?: "", "migrated"))
			msg = json_string_value(json_object_get(e, "message"));
	sum = msg ? strstr(msg, "): ") : NULL;
	if (sum)
		printf("  %s\n", sum + 3);
	json_decref(r);
}

/* Poll the source until the VM left (404 there) or the migration ended. */
static int migrate_wait(struct cli_ctx *ctx, const char *name)
{
	struct timespec ts = { 0, 300000000L };
	bool tty = isatty(1), json = ctx->json;
	const char *last;
	char path[96];
	json_t *r;
	int ret;

	snprintf(path, sizeof(path), "/vms/%s", name);
	ctx->json = false;
	ctx->quiet = true;
	for (;;) {
		nanosleep(&ts, NULL);
		ret = cli_host_call(ctx, "GET", path, NULL, &r);
		if (ret && !r)
			break;
		if (ret) {	/* 404: the VM left this host */
			json_decref(r);
			printf("%smigration completed: %s now runs on the destination\n",
			       tty ? "\n" : "", name);
			print_summary(ctx, name);
			ret = CLI_EXIT_OK;
			break;
		}
		if (!json_is_true(json_object_get(r, "migrating"))) {
			last = json_string_value(json_object_get(r, "last_migration"));
			ret = cli_fail("vm migrate: %s stays here: %s", name, last ?: "migration ended");
			json_decref(r);
			break;
		}
		if (json_object_get(r, "migration"))
			print_bar(json_object_get(r, "migration"), tty);
		json_decref(r);
	}
	ctx->json = json;
	ctx->quiet = false;
	return ret;
}

static int vm_migrate(struct cli_ctx *ctx, int argc, char **argv)
{
	json_t *b = json_object(), *r = NULL;
	bool wait = false, check;
	char path[96], *body;
	int ret = migrate_args(b, argc, argv, &wait);

	check = json_is_true(json_object_get(b, "check"));
	if (ret) {
		json_decref(b);
		return ret;
	}
	snprintf(path, sizeof(path), "/vms/%s/migrate", argv[2]);
	body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	ret = cli_host_call(ctx, "POST", path, body, &r);
	free(body);
	if (!ret && check && !ctx->json)
		print_verdict(r);
	if (!ret && check && !json_is_true(json_object_get(r, "ok")))
		ret = CLI_EXIT_FAIL;
	else if (!ret && !check && !ctx->json)
		printf("migrating %s to %s (%s)\n", argv[2],
		       json_string_value(json_object_get(r, "to")),
		       json_string_value(json_object_get(r, "uri")));
	json_decref(r);
	if (!ret && wait && !check)
		ret = migrate_wait(ctx, argv[2]);
	return ret;
}

static int cli_cmd_vm(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char *const simple[] = { "start", "pause", "resume", "undefine",
					      "migrate-cancel" };
	const char *sub = argc > 1 ? argv[1] : "";

	if (!strcmp(sub, "list") && argc == 2)
		return vm_list(ctx);
	if (argc < 3 || (strcmp(sub, "define") && !name_ok(argv[2])))
		return cli_usage_error("vm: want 'vm SUBCOMMAND NAME' (define FILE, list, show, "
				       "console, start, stop, pause, resume, undefine, migrate, "
				       "migrate-cancel)");
	if (!strcmp(sub, "define") && argc == 3)
		return vm_define(ctx, argv[2]);
	if (!strcmp(sub, "show") && argc == 3)
		return vm_show(ctx, argv[2]);
	if (!strcmp(sub, "console") && argc == 3)
		return vm_console(ctx, argv[2]);
	if (!strcmp(sub, "migrate"))
		return vm_migrate(ctx, argc, argv);
	if (!strcmp(sub, "stop"))
		return vm_stop(ctx, argc, argv);
	for (size_t i = 0; i < ARRAY_SIZE(simple); i++)
		if (!strcmp(sub, simple[i]) && argc == 3)
			return vm_simple(ctx, simple[i], argv[2], NULL);
	return cli_usage_error("vm: unknown subcommand or arguments '%s'", sub);
}

const struct cli_cmd cli_ternd_cmds[] = {
	{ "vm", "SUBCOMMAND ...", "VMs on a ternd: define FILE, list, show, console, start, stop, "
	  "pause, resume, undefine, migrate NAME --to HOST [--check] [--wait], migrate-cancel",
	  cli_cmd_vm },
	{ "host", "facts|state|maintenance on|off", "a ternd's host facts, allocations, maintenance",
	  cli_cmd_host },
	{ "events", "[--vm NAME] [--follow]", "a ternd's event log", cli_cmd_events },
	{ NULL, NULL, NULL, NULL },
};
