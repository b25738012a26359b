/*
 * vm.c - VM definitions: the in-memory list (validation is in spec.c), and the per-VM files under STATE_DIR/vms/NAME/:
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

int ternd_vm_lookup(struct ternd *d, const char *name, struct ternd_vm **vm,
		    struct err *err)
{
	*vm = ternd_vm_find(d, name);
	if (!*vm)
		return err_set(err, -ENOENT, "no VM named '%s' on %s", name, d->cfg.host);
	return 0;
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
	norm = def ? ternd_vm_validate(def, d->cfg.default_cpu_model, errors) : NULL;
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
		if (e->d_name[0] != '.' && ternd_vm_name_ok(e->d_name))
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
