/*
 * cmd_host.c - talking to a ternd, and `tern host ...`:
 *   host facts | state | maintenance on|off
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"

static void cli_print_list(const json_t *a, const char *k1, const char *k2)
{
	size_t i;
	json_t *e;

	json_array_foreach(a, i, e)
		fprintf(stderr, "  %s: %s\n", json_string_value(json_object_get(e, k1)),
			json_string_value(json_object_get(e, k2)));
}

static const char *cli_env(const char *opt, const char *env)
{
	const char *v = opt ? opt : getenv(env);

	return v && *v ? v : NULL;
}

static const char *cli_target(struct cli_ctx *ctx, char *buf, size_t len)
{
	const char *h = ctx->host ? ctx->host : getenv("TERN_HOST");

	if (!h || !*h)
		return "/run/tern/ternd.sock";
	if (h[0] == '/' || !strncmp(h, "http://", 7) || !strncmp(h, "https://", 8))
		return h;
	snprintf(buf, len, "%s://%s", cli_env(ctx->tls_ca, "TERN_TLS_CA") ? "https" : "http", h);
	return buf;
}

int cli_host_call(struct cli_ctx *ctx, const char *method, const char *path,
		  const char *body, json_t **reply)
{
	const char *tok = ctx->token ? ctx->token : getenv("TERN_TOKEN");
	struct err err = { 0 };
	char buf[300], *resp = NULL;
	const char *target = cli_target(ctx, buf, sizeof(buf));
	const char *msg;
	long status;
	int ret = CLI_EXIT_OK;

	*reply = NULL;
	struct api_client_tls tls = {
		cli_env(ctx->tls_ca, "TERN_TLS_CA"),
		cli_env(ctx->tls_cert, "TERN_TLS_CERT"),
		cli_env(ctx->tls_key, "TERN_TLS_KEY"),
	};

	if (api_client_request_tls(target, tok, &tls, method, path, body, &status, &resp, &err))
		return cli_fail("%s: %s", ctx->cmd, err_msg(&err));
	if (ctx->json)
		printf("%s\n", resp);
	*reply = json_loads(resp, 0, NULL);
	if (!json_is_object(*reply)) {
		json_decref(*reply);
		*reply = NULL;
		ret = cli_fail("%s: bad reply from %s (HTTP %ld)", ctx->cmd, target, status);
	} else if ((status < 200 || status > 299) && ctx->quiet) {
		ret = CLI_EXIT_FAIL;
	} else if (status < 200 || status > 299) {
		msg = json_string_value(json_object_get(*reply, "error"));
		ret = cli_fail("%s: %s", ctx->cmd, msg ? msg : "request failed");
		cli_print_list(json_object_get(*reply, "errors"), "field", "error");
		cli_print_list(json_object_get(*reply, "failures"), "check", "reason");
	}
	free(resp);
	return ret;
}

int cli_cmd_host(struct cli_ctx *ctx, int argc, char **argv)
{
	json_t *r = NULL;
	int ret;

	if (argc < 2)
		return cli_usage_error("host: facts, state or maintenance on|off");
	if (!strcmp(argv[1], "facts") || !strcmp(argv[1], "state"))
		ret = cli_host_call(ctx, "GET", !strcmp(argv[1], "facts") ? "/host" :
				    "/host/state", NULL, &r);
	else if (!strcmp(argv[1], "maintenance") && argc == 3 &&
		 (!strcmp(argv[2], "on") || !strcmp(argv[2], "off")))
		ret = cli_host_call(ctx, "POST", "/host/maintenance",
				    !strcmp(argv[2], "on") ? "{\"maintenance\":true}" :
				    "{\"maintenance\":false}", &r);
	else
		return cli_usage_error("host: facts, state or maintenance on|off");
	if (!ret && !ctx->json)
		json_dumpf(r, stdout, JSON_INDENT(2)), putchar('\n');
	json_decref(r);
	return ret;
}
