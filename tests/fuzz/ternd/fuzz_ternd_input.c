/*
 * fuzz_ternd_input.c - libFuzzer target for what ternd's API receives:
 * VM definitions (ternd_vm_validate) and the other routes' bodies and
 * query parameters (ternd/input.c), as JSON parsed the way http.c does.
 *
 * Input layout: byte 0 picks the validator (low 3 bits), the rest is the
 * request body (or, for the events query, "vm\nafter\nwait").
 * Invariants: a validator fails exactly when it reported errors, every
 * error names a field and has a message, and a normalized definition is
 * valid again and unchanged when validated a second time.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

static void check_errors(const json_t *errors, size_t before)
{
	size_t i;
	json_t *e;

	json_array_foreach(errors, i, e) {
		if (i < before)
			continue;
		if (!json_is_string(json_object_get(e, "field")) ||
		    !json_string_length(json_object_get(e, "error")))
			abort();
	}
}

static void fuzz_spec(const json_t *body, json_t *errors)
{
	json_t *out = ternd_vm_validate(body, "x86-64-v2", errors), *again, *e2;

	if (!out != !!json_array_size(errors))
		abort();
	if (!out)
		return;
	e2 = json_array();
	again = ternd_vm_validate(out, NULL, e2);
	if (!again || !json_equal(again, out))
		abort();
	json_decref(again);
	json_decref(e2);
	json_decref(out);
}

/* "vm\nafter\nwait": each piece NULL when absent. */
static void fuzz_events(const uint8_t *data, size_t size, json_t *errors)
{
	char *buf = malloc(size + 1), *p[3] = { NULL, NULL, NULL }, *s, *save = NULL;
	struct ternd_events_args a;
	int n = 0, ret;

	if (!buf)
		return;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (s = strtok_r(buf, "\n", &save); s && n < 3; s = strtok_r(NULL, "\n", &save))
		p[n++] = s;
	ret = ternd_events_args_parse(p[0], p[1], p[2], &a, errors);
	if (!ret != !json_array_size(errors) || (!ret && (a.after < -1 || a.wait_s > 30)))
		abort();
	free(buf);
}

static void fuzz_body(int which, const json_t *body, json_t *errors)
{
	unsigned t;
	bool b;
	int ret;

	switch (which) {
	case 1:
		ret = ternd_migrate_args_check(body, errors);
		break;
	case 2:
		ret = ternd_stop_args_parse(body, &b, &t, errors);
		if (!ret && t > 3600)
			abort();
		break;
	case 3:
		ret = ternd_maintenance_args_parse(body, &b, errors);
		break;
	default:
		ret = ternd_op_args_check(which == 4 ? "start" : "console", body, errors);
		break;
	}
	if (!ret != !json_array_size(errors))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *errors, *body;
	int which;

	if (!size)
		return 0;
	errors = json_array();
	which = data[0] & 7;
	if (which == 6) {
		fuzz_events(data + 1, size - 1, errors);
	} else {
		body = json_loadb((const char *)data + 1, size - 1,
				  JSON_REJECT_DUPLICATES, NULL);
		if (which == 0 || which == 7)
			fuzz_spec(which == 7 ? json_object_get(body, "definition") : body,
				  errors);
		else if (!body || json_is_object(body))
			fuzz_body(which, body, errors);
		json_decref(body);
	}
	check_errors(errors, 0);
	json_decref(errors);
	return 0;
}
