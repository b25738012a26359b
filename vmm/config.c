/*
 * config.c - the VM configuration carried in the migration stream's CONFIG
 * record, as JSON:
 *   {"memory": 1073741824, "vcpus": 2, "kernel": "...", "initrd": "...",
 *    "cmdline": "...", "devices": ["uart16550@0x3f8", "cmos@0x70"],
 *    "cpu_model": "host-model"}
 * (no "cpu_model", as from older sources: host-model).
 * The destination parses it as hostile input: every field is type- and
 * range-checked, unknown fields are refused.
 */
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "migratable.h"
#include "util.h"

char *vm_config_to_json(struct vm *vm)
{
	json_t *o = json_pack("{s:I, s:i, s:s, s:s, s:s, s:[s,s]}",
			      "memory", (json_int_t)vm->mem.size,
			      "vcpus", (int)vm->nr_vcpus,
			      "kernel", vm->kernel_path,
			      "initrd", vm->initrd_path,
			      "cmdline", vm->cmdline,
			      "devices", "uart16550@0x3f8", "cmos@0x70");
	char *s;

	if (!o)
		return NULL;
	json_object_set_new(o, "cpu_model",
			    json_string(vm->cpu_model[0] ? vm->cpu_model : "host-model"));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static int get_str(json_t *o, const char *key, char *dst, size_t size,
		   struct err *err)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return 0;
	if (!json_is_string(v))
		return err_set(err, -EPROTO, "config: '%s' is not a string", key);
	if (json_string_length(v) >= size)
		return err_set(err, -EPROTO, "config: '%s' longer than %zu bytes", key, size - 1);
	str_copy(dst, size, json_string_value(v));
	return 0;
}

static int check_keys(json_t *o, struct err *err)
{
	static const char *const known[] = {
		"memory", "vcpus", "kernel", "initrd", "cmdline", "devices",
		"cpu_model",
	};
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v) {
		bool ok = false;

		for (size_t i = 0; i < ARRAY_SIZE(known); i++)
			ok |= !strcmp(key, known[i]);
		if (!ok)
			return err_set(err, -EPROTO, "config: unknown field '%s'", key);
	}
	return 0;
}

int vm_config_from_json(const char *json, size_t len, struct vm_config *cfg,
			struct vm_config_strings *st, struct err *err)
{
	json_error_t je;
	json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je), *mem, *cpus;
	int ret;

	memset(cfg, 0, sizeof(*cfg));
	memset(st, 0, sizeof(*st));
	if (!o)
		return err_set(err, -EPROTO, "config: bad JSON: %s", je.text);
	ret = json_is_object(o) ? check_keys(o, err) :
	      err_set(err, -EPROTO, "config: not a JSON object");
	if (ret)
		goto out;
	mem = json_object_get(o, "memory");
	cpus = json_object_get(o, "vcpus");
	if (!json_is_integer(mem) || json_integer_value(mem) < (json_int_t)VM_MIN_MEMORY ||
	    json_integer_value(mem) % VM_PAGE_SIZE) {
		ret = err_set(err, -EPROTO, "config: 'memory' missing or invalid");
		goto out;
	}
	if (!json_is_integer(cpus) || json_integer_value(cpus) < 1 ||
	    json_integer_value(cpus) > VM_MAX_VCPUS) {
		ret = err_set(err, -EPROTO, "config: 'vcpus' missing or not in 1..%d", VM_MAX_VCPUS);
		goto out;
	}
	cfg->mem_size = (uint64_t)json_integer_value(mem);
	cfg->nr_vcpus = (unsigned)json_integer_value(cpus);
	ret = get_str(o, "kernel", st->kernel, sizeof(st->kernel), err);
	if (!ret)
		ret = get_str(o, "initrd", st->initrd, sizeof(st->initrd), err);
	if (!ret)
		ret = get_str(o, "cmdline", st->cmdline, sizeof(st->cmdline), err);
	cfg->kernel_path = st->kernel;
	cfg->initrd_path = st->initrd[0] ? st->initrd : NULL;
	cfg->cmdline = st->cmdline;
	if (!ret)
		ret = get_str(o, "cpu_model", st->cpu_model, sizeof(st->cpu_model), err);
	cfg->cpu_model = st->cpu_model[0] ? st->cpu_model : NULL;
out:
	json_decref(o);
	return ret;
}
