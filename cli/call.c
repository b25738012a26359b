/*
 * call.c - one API call on behalf of a command: send, check the status,
 * turn `{"error": "..."}` replies into "tern: <cmd>: <message>".
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "client.h"

/* The server's one-line message, or a generic one for non-JSON replies. */
static int cli_api_error(const struct cli_ctx *ctx, long status,
			 const char *body)
{
	json_t *o = json_loads(body, 0, NULL);
	const char *msg = json_string_value(json_object_get(o, "error"));
	int ret;

	if (msg)
		ret = cli_fail("%s: %s", ctx->cmd, msg);
	else
		ret = cli_fail("%s: HTTP status %ld", ctx->cmd, status);
	json_decref(o);
	return ret;
}

int cli_vmm_call(struct cli_ctx *ctx, const char *method, const char *path,
		 const char *body, json_t **reply)
{
	struct err err = { 0 };
	json_error_t jerr;
	char *resp = NULL;
	long status;
	int ret;

	*reply = NULL;
	if (!ctx->vmm)
		return cli_usage_error("%s: which VM? give --vmm PATH", ctx->cmd);
	if (api_client_call(ctx->vmm, method, path, body, &status, &resp,
			    &err))
		return cli_fail("%s", err_msg(&err));
	if (ctx->json)
		printf("%s\n", resp);
	if (status < 200 || status > 299) {
		ret = cli_api_error(ctx, status, resp);
		goto out;
	}
	*reply = json_loads(resp, 0, &jerr);
	ret = CLI_EXIT_OK;
	if (!json_is_object(*reply)) {
		json_decref(*reply);
		*reply = NULL;
		ret = cli_fail("%s: bad reply from %s: %s", ctx->cmd, ctx->vmm,
			       jerr.text[0] ? jerr.text : "not a JSON object");
	}
out:
	free(resp);
	return ret;
}
