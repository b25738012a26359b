/*
 * fuzz_ternd_config.c - libFuzzer target for ternd's configuration file
 * parser (ternd_config_parse + ternd_config_finish) and bearer tokens.
 *
 * The whole input is the file's text (an exact-size heap copy, so
 * over-reads are caught). Invariants: the parser reports exactly as many
 * errors as it returns, each with a line number inside the text; the
 * configured values stay within their documented limits; a token from the
 * file maps to its role.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

static struct ternd_config cfg;

static void check_cfg(size_t lines)
{
	if (cfg.port_min < 1 || cfg.port_min > cfg.port_max || cfg.port_max > 65535 ||
	    cfg.n_tokens > TERND_TOKENS_MAX || cfg.stop_timeout_s > 86400 ||
	    memchr(cfg.host, '\0', sizeof(cfg.host)) == NULL)
		abort();
	for (unsigned i = 0; i < cfg.n_tokens; i++)
		if (ternd_token_role(&cfg, cfg.tokens[i].secret) < cfg.tokens[i].role)
			abort();
	(void)lines;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	json_t *errors = json_array(), *e;
	struct err err = { 0 };
	size_t n, i, lines = 1;

	if (!text || !errors)
		abort();
	memcpy(text, data, size);
	for (i = 0; i < size; i++)
		lines += data[i] == '\n';
	ternd_config_defaults(&cfg);
	n = ternd_config_parse(&cfg, text, size, errors);
	if (n != json_array_size(errors))
		abort();
	json_array_foreach(errors, i, e) {
		json_int_t line = json_integer_value(json_object_get(e, "line"));

		if (line < 1 || (size_t)line > lines || !json_string_length(json_object_get(e, "error")))
			abort();
	}
	check_cfg(lines);
	ternd_config_finish(&cfg, &err);
	if (cfg.hostcfg.n_allowed > 32)
		abort();
	/* certificate names -> role, with the lists as both sides */
	if (ternd_tls_role(&cfg, cfg.tls_admins) > TERND_ROLE_ADMIN ||
	    ternd_tls_role(&cfg, cfg.tls_viewers) > TERND_ROLE_ADMIN ||
	    ternd_tls_role(&cfg, cfg.tls_peers) > TERND_ROLE_ADMIN)
		abort();
	free(text);
	json_decref(errors);
	return 0;
}
