/*
 * spec.c - VM definitions as clients send them (POST /vms), as a source
 * ternd forwards them (POST /incoming) and as definition.json keeps them:
 * validated field by field, every bad field named with its own message,
 * all of them together. The result is normalized (defaults filled in,
 * sizes in bytes) so the rest of ternd trusts it. Pure: no daemon state;
 * the only look at the host is whether kernel/initrd files exist.
 */
#include "parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cpu_models.h"
#include "util.h"

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"

void ternd_field_err(json_t *errors, const char *field, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field,
						"error", buf));
}

bool ternd_vm_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n && n < TERND_NAME_MAX && s[0] != '.' && s[0] != '-' &&
	       strspn(s, NAME_CHARS) == n;
}

/* A JSON string without NUL bytes inside, or NULL. */
static const char *spec_str(const json_t *v)
{
	const char *s = json_string_value(v);

	return s && strlen(s) == json_string_length(v) ? s : NULL;
}

static void v_name(const json_t *spec, json_t *out, json_t *errors)
{
	const char *s = spec_str(json_object_get(spec, "name"));

	if (!ternd_vm_name_ok(s))
		ternd_field_err(errors, "name", "required: 1-63 of [A-Za-z0-9_.-], not starting with '.' or '-'");
	else
		json_object_set_new(out, "name", json_string(s));
}

static void v_memory(const json_t *spec, json_t *out, json_t *errors)
{
	json_t *v = json_object_get(spec, "memory");
	const char *s = spec_str(v);
	uint64_t m = 0;

	if (json_is_integer(v) && json_integer_value(v) > 0)
		m = (uint64_t)json_integer_value(v);
	else if (!s || parse_size(s, &m)) {
		ternd_field_err(errors, "memory", "required: bytes or a size such as \"256M\"");
		return;
	}
	if (m < 64 * MiB || m % 4096 || m > 4096 * GiB)
		ternd_field_err(errors, "memory", "must be 64M..4T and a multiple of 4K");
	else
		json_object_set_new(out, "memory", json_integer((json_int_t)m));
}

static void v_vcpus(const json_t *spec, json_t *out, json_t *errors)
{
	json_t *v = json_object_get(spec, "vcpus");

	if (!v)
		json_object_set_new(out, "vcpus", json_integer(1));
	else if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		 json_integer_value(v) > 254)
		ternd_field_err(errors, "vcpus", "must be an integer from 1 to 254");
	else
		json_object_set(out, "vcpus", v);
}

static void v_file(const json_t *spec, const char *key, bool required,
		   json_t *out, json_t *errors)
{
	json_t *v = json_object_get(spec, key);
	const char *s = spec_str(v);
	struct stat st;

	if (!v && !required)
		return;
	if (!s || s[0] != '/' || strlen(s) >= TERND_PATH_MAX)
		ternd_field_err(errors, key, "%s: an absolute file path", required ? "required" : "must be");
	else if (stat(s, &st) < 0 || !S_ISREG(st.st_mode))
		ternd_field_err(errors, key, "%s: no such file on this host", s);
	else
		json_object_set_new(out, key, json_string(s));
}

static void v_string(const json_t *spec, const char *key, const char *def,
		     size_t max, json_t *out, json_t *errors)
{
	json_t *v = json_object_get(spec, key);

	if (!v)
		json_object_set_new(out, key, json_string(def));
	else if (!spec_str(v) || json_string_length(v) > max)
		ternd_field_err(errors, key, "must be a string of at most %zu bytes", max);
	else
		json_object_set(out, key, v);
}

static void v_bool(const json_t *spec, const char *key, bool def, json_t *out,
		   json_t *errors)
{
	json_t *v = json_object_get(spec, key);

	if (v && !json_is_boolean(v))
		ternd_field_err(errors, key, "must be true or false");
	else
		json_object_set_new(out, key, json_boolean(v ? json_is_true(v) : def));
}

static void v_cpu_model(const json_t *spec, const char *def, json_t *out,
			json_t *errors)
{
	json_t *v = json_object_get(spec, "cpu_model");
	const char *s = v ? spec_str(v) : def && *def ? def : CPU_MODEL_HOST;
	char known[512];

	if (!s || (strcmp(s, CPU_MODEL_HOST) && !cpu_model_find(s)))
		ternd_field_err(errors, "cpu_model", "unknown CPU model%s%.63s%s; known: %s, %s",
				s ? " '" : "", s ? s : "", s ? "'" : "", CPU_MODEL_HOST,
				cpu_model_names(known, sizeof(known)));
	else
		json_object_set_new(out, "cpu_model", json_string(s));
}

static void v_names(const json_t *spec, const char *key, json_t *out,
		    json_t *errors)
{
	json_t *v = json_object_get(spec, key), *e;
	size_t i;

	if (!v) {
		json_object_set_new(out, key, json_array());
		return;
	}
	if (!json_is_array(v) || json_array_size(v) > 64)
		goto bad;
	json_array_foreach(v, i, e)
		if (!ternd_vm_name_ok(spec_str(e)))
			goto bad;
	json_object_set(out, key, v);
	return;
bad:
	ternd_field_err(errors, key, "must be a list of at most 64 names");
}

static void v_mode(json_t *out, json_t *errors)
{
	const char *m = json_string_value(json_object_get(out, "migration_mode"));

	if (!m)
		return;
	if (strcmp(m, "migratable") && strcmp(m, "manual-only") &&
	    strcmp(m, "pinned") && strcmp(m, "none"))
		ternd_field_err(errors, "migration_mode", "must be migratable, manual-only, pinned or none");
	else if (!strcmp(m, "pinned") &&
		 !json_array_size(json_object_get(out, "pinned_hosts")))
		ternd_field_err(errors, "pinned_hosts", "a pinned VM needs at least one host");
}

static const char *const vm_fields[] = {
	"name", "memory", "vcpus", "kernel", "initrd", "cmdline", "cpu_model",
	"migration_mode", "pinned_hosts", "networks", "disks", "memory_prealloc",
};

static void v_unknown(const json_t *spec, json_t *errors)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)spec, k, v) {
		size_t i;

		for (i = 0; i < ARRAY_SIZE(vm_fields); i++)
			if (!strcmp(k, vm_fields[i]))
				break;
		if (i == ARRAY_SIZE(vm_fields))
			ternd_field_err(errors, k, "unknown field");
	}
}

json_t *ternd_vm_validate(const json_t *spec, const char *default_model,
			  json_t *errors)
{
	json_t *out;

	if (!json_is_object(spec)) {
		ternd_field_err(errors, "", "the definition must be a JSON object");
		return NULL;
	}
	out = json_object();
	v_unknown(spec, errors);
	v_name(spec, out, errors);
	v_memory(spec, out, errors);
	v_vcpus(spec, out, errors);
	v_file(spec, "kernel", true, out, errors);
	v_file(spec, "initrd", false, out, errors);
	v_string(spec, "cmdline", "", 2048, out, errors);
	v_cpu_model(spec, default_model, out, errors);
	v_string(spec, "migration_mode", "migratable", 16, out, errors);
	v_names(spec, "pinned_hosts", out, errors);
	v_names(spec, "networks", out, errors);
	v_names(spec, "disks", out, errors);
	v_bool(spec, "memory_prealloc", false, out, errors);
	v_mode(out, errors);
	if (json_array_size(errors)) {
		json_decref(out);
		return NULL;
	}
	return out;
}
