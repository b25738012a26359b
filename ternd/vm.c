/*
 * vm.c - VM definitions: validation (every bad field named, all at once),
 * the in-memory list, and the per-VM files under STATE_DIR/vms/NAME/:
 *   definition.json  the validated spec
 *   runtime.json     state, tern-vmm pid, migration in progress
 *   console.log      the guest's serial console
 *   vmm.log          tern-vmm's stderr
 */
#include "ternd.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static void field_err(json_t *errors, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void field_err(json_t *errors, const char *field, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field,
						"error", buf));
}

static bool vm_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n && n < TERND_NAME_MAX && s[0] != '.' && s[0] != '-' &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static void v_name(const json_t *spec, json_t *out, json_t *errors)
{
	const char *s = json_string_value(json_object_get(spec, "name"));

	if (!vm_name_ok(s))
		field_err(errors, "name", "required: 1-63 of [A-Za-z0-9_.-], not starting with '.' or '-'");
	else
		json_object_set_new(out, "name", json_string(s));
}

static void v_memory(const json_t *spec, json_t *out, json_t *errors)
{
	json_t *v = json_object_get(spec, "memory");
	uint64_t m = 0;

	if (json_is_integer(v) && json_integer_value(v) > 0)
		m = (uint64_t)json_integer_value(v);
	else if (!json_is_string(v) || parse_size(json_string_value(v), &m)) {
		field_err(errors, "memory", "required: bytes or a size such as \"256M\"");
		return;
	}
	if (m < 64 * MiB || m % 4096 || m > 4096 * GiB)
		field_err(errors, "memory", "must be 64M..4T and a multiple of 4K");
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
		field_err(errors, "vcpus", "must be an integer from 1 to 254");
	else
		json_object_set(out, "vcpus", v);
}

static void v_file(const json_t *spec, const char *key, bool required,
		   json_t *out, json_t *errors)
{
	json_t *v = json_object_get(spec, key);
	const char *s = json_string_value(v);
	struct stat st;

	if (!v && !required)
		return;
	if (!s || s[0] != '/' || strlen(s) >= TERND_PATH_MAX)
		field_err(errors, key, "%s: an absolute file path", required ? "required" : "must be");
	else if (stat(s, &st) < 0 || !S_ISREG(st.st_mode))
		field_err(errors, key, "%s: no such file on this host", s);
	else
		json_object_set_new(out, key, json_string(s));
}

static void v_string(const json_t *spec, const char *key, const char *def,
		     size_t max, json_t *out, json_t *errors)
{
	json_t *v = json_object_get(spec, key);

	if (!v)
		json_object_set_new(out, key, json_string(def));
	else if (!json_is_string(v) || json_string_length(v) > max ||
		 strlen(json_string_value(v)) != json_string_length(v))
		field_err(errors, key, "must be a string of at most %zu bytes", max);
	else
		json_object_set(out, key, v);
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
		if (!vm_name_ok(json_string_value(e)))
			goto bad;
	json_object_set(out, key, v);
	return;
bad:
	field_err(errors, key, "must be a list of at most 64 names");
}

static void v_mode(json_t *out, json_t *errors)
{
	const char *m = json_string_value(json_object_get(out, "migration_mode"));

	if (!m)
		return;
	if (strcmp(m, "migratable") && strcmp(m, "manual-only") &&
	    strcmp(m, "pinned") && strcmp(m, "none"))
		field_err(errors, "migration_mode", "must be migratable, manual-only, pinned or none");
	else if (!strcmp(m, "pinned") &&
		 !json_array_size(json_object_get(out, "pinned_hosts")))
		field_err(errors, "pinned_hosts", "a pinned VM needs at least one host");
}

static const char *const vm_fields[] = {
	"name", "memory", "vcpus", "kernel", "initrd", "cmdline", "cpu_model",
	"migration_mode", "pinned_hosts", "networks", "disks",
};

/* The normalized definition, or NULL with one entry per bad field. */
json_t *ternd_vm_validate(const json_t *spec, json_t *errors)
{
	json_t *out = json_object();
	const char *k;
	json_t *v;

	if (!json_is_object(spec)) {
		field_err(errors, "", "the definition must be a JSON object");
		json_decref(out);
		return NULL;
	}
	json_object_foreach((json_t *)spec, k, v) {
		size_t i;

		for (i = 0; i < ARRAY_SIZE(vm_fields); i++)
			if (!strcmp(k, vm_fields[i]))
				break;
		if (i == ARRAY_SIZE(vm_fields))
			field_err(errors, k, "unknown field");
	}
	v_name(spec, out, errors);
	v_memory(spec, out, errors);
	v_vcpus(spec, out, errors);
	v_file(spec, "kernel", true, out, errors);
	v_file(spec, "initrd", false, out, errors);
	v_string(spec, "cmdline", "", 2048, out, errors);
	v_string(spec, "cpu_model", "host-model", 63, out, errors);
	v_string(spec, "migration_mode", "migratable", 16, out, errors);
	v_names(spec, "pinned_hosts", out, errors);
	v_names(spec, "networks", out, errors);
	v_names(spec, "disks", out, errors);
	v_mode(out, errors);
	if (json_array_size(errors)) {
		json_decref(out);
		return NULL;
	}
	return out;
}

const char *ternd_vm_state_name(enum ternd_vm_state s)
{
	switch (s) {
	case TERND_VM_STOPPED:	return "stopped";
	case TERND_VM_RUNNING:	return "running";
	case TERND_VM_PAUSED:	return "paused";
	case TERND_VM_INCOMING:	return "incoming";
	default:		return "invalid";
	}
}

static enum ternd_vm_state vm_state_parse(const char *s)
{
	for (int i = TERND_VM_STOPPED; i <= TERND_VM_INCOMING; i++)
		if (s && !strcmp(s, ternd_vm_state_name(i)))
			return i;
	return TERND_VM_STOPPED;
}

struct ternd_vm *ternd_vm_find(struct ternd *d, const char *name)
{
	for (struct ternd_vm *vm = d->vms; vm; vm = vm->next)
		if (!strcmp(vm->name, name))
			return vm;
	return NULL;
}

struct ternd_vm *ternd_vm_new(struct ternd *d, const char *name, json_t *def)
{
	struct ternd_vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	str_copy(vm->name, sizeof(vm->name), name);
	vm->def = def;
	vm->state = TERND_VM_STOPPED;
	if (snprintf(vm->dir, sizeof(vm->dir), "%s/vms/%s", d->cfg.state_dir,
		     name) >= (int)sizeof(vm->dir) ||
	    snprintf(vm->sock, sizeof(vm->sock), "%s/vms/%s.sock",
		     d->cfg.run_dir, name) >= (int)sizeof(vm->sock))
		log_warn("vm", "%s: run_dir or state_dir too long", name);
	vm->next = d->vms;
	d->vms = vm;
	return vm;
}

static void vm_rm_dir(const char *dir)
{
	static const char *const files[] = {
		"definition.json", "runtime.json", "console.log", "vmm.log",
		"definition.json.tmp", "runtime.json.tmp",
	};
	char p[PATH_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		unlink(p);
	}
	if (rmdir(dir) < 0 && errno != ENOENT)
		log_warn("vm", "cannot remove %s: %s", dir, strerror(errno));
}

/* Unlinks the VM and deletes its files; the struct lives on until exit. */
void ternd_vm_remove(struct ternd *d, struct ternd_vm *vm)
{
	for (struct ternd_vm **p = &d->vms; *p; p = &(*p)->next)
		if (*p == vm) {
			*p = vm->next;
			break;
		}
	vm->removed = true;
	vm->next = d->graveyard;
	d->graveyard = vm;
	vm_rm_dir(vm->dir);
	unlink(vm->sock);
}

static int vm_write_json(const char *dir, const char *file, json_t *o)
{
	char p[PATH_MAX], tmp[PATH_MAX + 8];

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	if (json_dump_file(o, tmp, JSON_INDENT(2)) < 0 || rename(tmp, p) < 0) {
		log_warn("vm", "cannot write %s", p);
		return -EIO;
	}
	return 0;
}

/* Writes both files (call with d->lock held). */
int ternd_vm_save(struct ternd *d, struct ternd_vm *vm)
{
	json_t *rt;
	int ret;

	if (mkdir(vm->dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	rt = json_pack("{s:s, s:I, s:s, s:s}", "state",
		       ternd_vm_state_name(vm->state), "pid", (json_int_t)vm->pid,
		       "migrating_to", vm->migrating ? vm->peer : "",
		       "migration_uri", vm->migrating ? vm->mig_uri : "");
	ret = vm_write_json(vm->dir, "definition.json", vm->def);
	if (!ret)
		ret = vm_write_json(vm->dir, "runtime.json", rt);
	json_decref(rt);
	return ret;
}

static void vm_load_one(struct ternd *d, const char *name)
{
	char p[PATH_MAX];
	json_t *def, *rt, *errors = json_array(), *norm;
	struct ternd_vm *vm;

	snprintf(p, sizeof(p), "%s/vms/%s/definition.json", d->cfg.state_dir, name);
	def = json_load_file(p, 0, NULL);
	norm = def ? ternd_vm_validate(def, errors) : NULL;
	if (!norm || strcmp(json_string_value(json_object_get(norm, "name")), name)) {
		log_warn("vm", "ignoring %s: not a valid definition", p);
		json_decref(norm);
		goto out;
	}
	vm = ternd_vm_new(d, name, norm);
	snprintf(p, sizeof(p), "%s/runtime.json", vm->dir);
	rt = json_load_file(p, 0, NULL);
	vm->state = vm_state_parse(json_string_value(json_object_get(rt, "state")));
	vm->pid = (pid_t)json_integer_value(json_object_get(rt, "pid"));
	str_copy(vm->peer, sizeof(vm->peer),
		 json_string_value(json_object_get(rt, "migrating_to")) ?: "");
	str_copy(vm->mig_uri, sizeof(vm->mig_uri),
		 json_string_value(json_object_get(rt, "migration_uri")) ?: "");
	vm->migrating = vm->peer[0] != '\0';
	json_decref(rt);
out:
	json_decref(def);
	json_decref(errors);
}

int ternd_vm_load_all(struct ternd *d, struct err *err)
{
	char p[PATH_MAX];
	struct dirent *e;
	DIR *dir;

	snprintf(p, sizeof(p), "%s/vms", d->cfg.state_dir);
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return err_set(err, -errno, "cannot create %s: %s", p, strerror(errno));
	dir = opendir(p);
	if (!dir)
		return err_set(err, -errno, "cannot read %s: %s", p, strerror(errno));
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.' && vm_name_ok(e->d_name))
			vm_load_one(d, e->d_name);
	closedir(dir);
	return 0;
}

/* What `tern vm show` prints (call with d->lock held). */
json_t *ternd_vm_json(struct ternd *d, struct ternd_vm *vm)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:O, s:s, s:b}",
			      "name", vm->name, "host", d->cfg.host,
			      "state", ternd_vm_state_name(vm->state),
			      "pid", (json_int_t)vm->pid, "definition", vm->def,
			      "api_socket", vm->sock, "migrating", vm->migrating);

	if (vm->migrating) {
		json_object_set_new(o, "migrating_to", json_string(vm->peer));
		if (vm->mig_status)
			json_object_set(o, "migration", vm->mig_status);
	}
	if (vm->mig_result[0])
		json_object_set_new(o, "last_migration", json_string(vm->mig_result));
	return o;
}

/* Memory and vCPUs of the VMs that run or are arriving (d->lock held). */
void ternd_vm_usage(struct ternd *d, uint64_t *mem, uint64_t *vcpus)
{
	*mem = *vcpus = 0;
	for (struct ternd_vm *vm = d->vms; vm; vm = vm->next) {
		if (vm->state == TERND_VM_STOPPED)
			continue;
		*mem += (uint64_t)json_integer_value(json_object_get(vm->def, "memory"));
		*vcpus += (uint64_t)json_integer_value(json_object_get(vm->def, "vcpus"));
	}
}
