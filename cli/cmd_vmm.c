/*
 * cmd_vmm.c - commands that drive one tern-vmm over its API socket:
 * status, pause, resume, shutdown.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static void cli_print_str(const json_t *o, const char *key, const char *label)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (s)
		printf("%s: %s\n", label, s);
}

static void cli_print_uptime(uint64_t ms)
{
	uint64_t s = ms / 1000;

	if (ms < 60000)
		printf("uptime: %.1f s\n", (double)ms / 1000.0);
	else if (s < 3600)
		printf("uptime: %" PRIu64 "m %02" PRIu64 "s\n", s / 60, s % 60);
	else
		printf("uptime: %" PRIu64 "h %02" PRIu64 "m %02" PRIu64 "s\n",
		       s / 3600, s / 60 % 60, s % 60);
}

static void cli_print_info(const json_t *o)
{
	json_t *v;
	char buf[32];

	cli_print_str(o, "state", "state");
	v = json_object_get(o, "vcpus");
	if (json_is_integer(v))
		printf("vcpus: %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
	v = json_object_get(o, "memory_bytes");
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		printf("memory: %s\n",
		       fmt_bytes((uint64_t)json_integer_value(v), buf,
				 sizeof(buf)));
	v = json_object_get(o, "uptime_ms");
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		cli_print_uptime((uint64_t)json_integer_value(v));
	cli_print_str(o, "kernel", "kernel");
	cli_print_str(o, "cmdline", "cmdline");
	cli_print_str(o, "version", "version");
}

static int cli_vmm_run(struct cli_ctx *ctx, int argc, char **argv,
		       const char *method, const char *path)
{
	json_t *reply;
	int status;

	if (cli_parse_common(ctx, argc, argv, &status))
		return status;
	status = cli_vmm_call(ctx, method, path, NULL, &reply);
	if (status != CLI_EXIT_OK || ctx->json)
		goto out;
	if (!strcmp(path, "/vm"))
		cli_print_info(reply);
	else
		cli_print_str(reply, "state", "state");
out:
	json_decref(reply);
	return status;
}

static int cli_cmd_status(struct cli_ctx *ctx, int argc, char **argv)
{
	return cli_vmm_run(ctx, argc, argv, "GET", "/vm");
}

static int cli_cmd_pause(struct cli_ctx *ctx, int argc, char **argv)
{
	return cli_vmm_run(ctx, argc, argv, "POST", "/vm/pause");
}

static int cli_cmd_resume(struct cli_ctx *ctx, int argc, char **argv)
{
	return cli_vmm_run(ctx, argc, argv, "POST", "/vm/resume");
}

static int cli_cmd_shutdown(struct cli_ctx *ctx, int argc, char **argv)
{
	return cli_vmm_run(ctx, argc, argv, "POST", "/vm/shutdown");
}

const struct cli_cmd cli_vmm_cmds[] = {
	{ "status",   "", "show the VM's state, vCPUs, memory, uptime",
	  cli_cmd_status },
	{ "pause",    "", "pause all vCPUs", cli_cmd_pause },
	{ "resume",   "", "resume a paused VM", cli_cmd_resume },
	{ "shutdown", "", "stop the VM; tern-vmm exits", cli_cmd_shutdown },
	{ NULL },
};
