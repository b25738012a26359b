/*
 * ops.c - VM lifecycle: start, stop, pause, resume, undefine, console;
 * the monitor thread that notices VMs whose tern-vmm died; and adoption
 * of running VMs when ternd starts.
 *
 * An operation claims its VM (vm->busy) under d->lock, then talks to
 * tern-vmm without the lock, then records the outcome under the lock.
 */
#include "ternd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define CONSOLE_MAX (256 * 1024)

static void ms_sleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int vm_claim(struct ternd *d, const char *name, struct ternd_vm **out,
		    struct err *err)
{
	struct ternd_vm *vm;
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	ret = ternd_vm_lookup(d, name, &vm, err);
	if (!ret && (vm->busy || vm->migrating))
		ret = err_set(err, -EBUSY, "VM %s is busy (%s)", name,
			      vm->migrating ? "migrating" : "another operation");
	else if (!ret && vm->state == TERND_VM_INCOMING)
		ret = err_set(err, -EBUSY, "VM %s is still arriving by migration", name);
	else if (!ret)
		vm->busy = true;
	pthread_mutex_unlock(&d->lock);
	*out = vm;
	return ret;
}

static void vm_release(struct ternd *d, struct ternd_vm *vm,
		       enum ternd_vm_state state, pid_t pid)
{
	pthread_mutex_lock(&d->lock);
	if (state) {
		vm->state = state;
		vm->pid = pid;
		ternd_vm_save(d, vm);
	}
	vm->busy = false;
	pthread_mutex_unlock(&d->lock);
}

static void run_hook(struct ternd *d, const char *vm, const char *phase)
{
	char msg[512];

	if (ternd_hook_run(d, vm, phase, "local", msg, sizeof(msg)))
		ternd_event(d, vm, "hook", "%s", msg);
}

/* Wait until tern-vmm reports the VM running (GET /vm: 409 while setting up). */
static int vm_wait_running(struct ternd_vm *vm, pid_t pid, struct err *err)
{
	json_t *r;

	for (int i = 0; i < 200; i++) {
		if (!ternd_vmm_call(vm->sock, "GET", "/vm", NULL, &r, NULL)) {
			json_decref(r);
			return 0;
		}
		if (!ternd_proc_alive(pid, vm->sock))
			return err_set(err, -EIO, "tern-vmm exited during boot (see %s/vmm.log)",
				       vm->dir);
		ms_sleep(50);
	}
	return err_set(err, -ETIMEDOUT, "VM did not come up within 10 s");
}

static int op_start(struct ternd *d, struct ternd_vm *vm, struct err *err)
{
	pid_t pid = 0;
	int ret;

	if (vm->state != TERND_VM_STOPPED) {
		vm_release(d, vm, 0, 0);
		return err_set(err, -EALREADY, "VM %s is already %s", vm->name,
			       ternd_vm_state_name(vm->state));
	}
	run_hook(d, vm->name, "start");
	ret = ternd_proc_spawn(d, vm, NULL, &pid, err);
	if (!ret)
		ret = vm_wait_running(vm, pid, err);
	if (ret) {
		ternd_proc_kill(pid, vm->sock, 0);
		vm_release(d, vm, 0, 0);
		ternd_event(d, vm->name, "start_failed", "%s", err_msg(err));
		return ret;
	}
	vm_release(d, vm, TERND_VM_RUNNING, pid);
	ternd_event(d, vm->name, "started", "tern-vmm pid %d", (int)pid);
	return 0;
}

static int op_stop(struct ternd *d, struct ternd_vm *vm, const json_t *args,
		   struct err *err)
{
	json_t *errors = json_array();
	unsigned timeout_ms, t = 0;
	bool force = false, graceful = false;

	ternd_stop_args_parse(args, &force, &t, errors);	/* checked by http.c */
	json_decref(errors);
	timeout_ms = (t ? t : d->cfg.stop_timeout_s) * 1000;

	if (vm->state == TERND_VM_STOPPED) {
		vm_release(d, vm, 0, 0);
		return err_set(err, -EALREADY, "VM %s is already stopped", vm->name);
	}
	/* force alone: SIGKILL at once; with a timeout: graceful first */
	if ((!force || t) &&
	    !ternd_vmm_call(vm->sock, "POST", "/vm/shutdown", NULL, NULL, NULL))
		for (unsigned w = 0; w < timeout_ms; w += 50) {
			if (!ternd_proc_alive(vm->pid, vm->sock)) {
				graceful = true;
				break;
			}
			ms_sleep(50);
		}
	if (!graceful && ternd_proc_kill(vm->pid, vm->sock, 0)) {
		vm_release(d, vm, 0, 0);
		return err_set(err, -EIO, "tern-vmm pid %d does not die", (int)vm->pid);
	}
	unlink(vm->sock);
	vm_release(d, vm, TERND_VM_STOPPED, 0);
	ternd_event(d, vm->name, "stopped", "%s", graceful ? "shut down" : "killed (SIGKILL)");
	run_hook(d, vm->name, "stop");
	return 0;
}

static int op_pause(struct ternd *d, struct ternd_vm *vm, bool pause,
		    struct err *err)
{
	enum ternd_vm_state want = pause ? TERND_VM_PAUSED : TERND_VM_RUNNING;
	int ret;

	if (vm->state == TERND_VM_STOPPED) {
		vm_release(d, vm, 0, 0);
		return err_set(err, -EBUSY, "VM %s is stopped", vm->name);
	}
	ret = ternd_vmm_call(vm->sock, "POST", pause ? "/vm/pause" : "/vm/resume",
			     NULL, NULL, err);
	vm_release(d, vm, ret ? 0 : want, vm->pid);
	if (!ret)
		ternd_event(d, vm->name, pause ? "paused" : "resumed", "by request");
	return ret;
}

static int op_undefine(struct ternd *d, struct ternd_vm *vm, struct err *err)
{
	if (vm->state != TERND_VM_STOPPED) {
		vm_release(d, vm, 0, 0);
		return err_set(err, -EBUSY, "VM %s is %s: stop it first", vm->name,
			       ternd_vm_state_name(vm->state));
	}
	pthread_mutex_lock(&d->lock);
	ternd_vm_remove(d, vm);
	pthread_mutex_unlock(&d->lock);
	ternd_event(d, vm->name, "undefined", "definition removed");
	return 0;
}

static json_t *op_console(struct ternd_vm *vm)
{
	char p[PATH_MAX], *buf = malloc(CONSOLE_MAX + 1);
	ssize_t n = 0;
	off_t size;
	json_t *o;
	int fd;

	snprintf(p, sizeof(p), "%s/console.log", vm->dir);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && buf) {
		size = lseek(fd, 0, SEEK_END);
		lseek(fd, size > CONSOLE_MAX ? size - CONSOLE_MAX : 0, SEEK_SET);
		n = read(fd, buf, CONSOLE_MAX);
	}
	if (fd >= 0)
		close(fd);
	if (!buf)
		return NULL;
	for (ssize_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] >= 0x80 || (!buf[i]))
			buf[i] = '?';
	o = json_pack("{s:s#}", "log", buf, (int)(n > 0 ? n : 0));
	free(buf);
	return o;
}

int ternd_op(struct ternd *d, const char *name, const char *op,
	     const json_t *args, json_t **reply, struct err *err)
{
	struct ternd_vm *vm;
	int ret = vm_claim(d, name, &vm, err);

	if (ret)
		return ret;
	if (!strcmp(op, "console")) {
		*reply = op_console(vm);
		vm_release(d, vm, 0, 0);
		return *reply ? 0 : err_set(err, -ENOMEM, "out of memory");
	}
	if (!strcmp(op, "start"))
		ret = op_start(d, vm, err);
	else if (!strcmp(op, "stop"))
		ret = op_stop(d, vm, args, err);
	else if (!strcmp(op, "pause") || !strcmp(op, "resume"))
		ret = op_pause(d, vm, !strcmp(op, "pause"), err);
	else if (!strcmp(op, "undefine"))
		return op_undefine(d, vm, err);
	else {
		vm_release(d, vm, 0, 0);
		return err_set(err, -ENOENT, "unknown operation %s", op);
	}
	if (!ret) {
		pthread_mutex_lock(&d->lock);
		*reply = ternd_vm_json(d, vm);
		pthread_mutex_unlock(&d->lock);
	}
	return ret;
}

/* A VM whose tern-vmm is gone is stopped; an arrival that died is dropped. */
static void monitor_check(struct ternd *d)
{
	struct ternd_vm *vm, *next;

	pthread_mutex_lock(&d->lock);
	for (vm = d->vms; vm; vm = next) {
		next = vm->next;
		if (vm->busy || vm->migrating || vm->state == TERND_VM_STOPPED ||
		    ternd_proc_alive(vm->pid, vm->sock))
			continue;
		if (vm->state == TERND_VM_INCOMING) {
			ternd_event(d, vm->name, "migration_in_failed",
				    "the receiving tern-vmm exited; removed");
			ternd_vm_remove(d, vm);
			continue;
		}
		vm->state = TERND_VM_STOPPED;
		vm->pid = 0;
		ternd_vm_save(d, vm);
		ternd_event(d, vm->name, "stopped", "tern-vmm exited");
	}
	pthread_mutex_unlock(&d->lock);
}

/* An arrival whose VMM runs the VM is ours, even if the source never said so. */
static void monitor_incoming(struct ternd *d)
{
	char names[16][TERND_NAME_MAX];
	int n = 0;

	pthread_mutex_lock(&d->lock);
	for (struct ternd_vm *vm = d->vms; vm && n < 16; vm = vm->next)
		if (vm->state == TERND_VM_INCOMING && !vm->busy)
			str_copy(names[n++], TERND_NAME_MAX, vm->name);
	pthread_mutex_unlock(&d->lock);
	for (int i = 0; i < n; i++)
		ternd_incoming_end(d, names[i], true, NULL);
}

void *ternd_monitor(void *opaque)
{
	struct ternd *d = opaque;

	while (!d->stopping) {
		monitor_check(d);
		monitor_incoming(d);
		for (int i = 0; i < 10 && !d->stopping; i++)
			ms_sleep(100);
	}
	return NULL;
}

/* At start: VMs whose tern-vmm still runs are picked up again. */
void ternd_adopt_all(struct ternd *d)
{
	struct ternd_vm *vm;
	json_t *r;

	for (vm = d->vms; vm; vm = vm->next) {
		bool alive = ternd_proc_alive(vm->pid, vm->sock);

		if (vm->migrating) {
			ternd_migrate_recover(d, vm);
			continue;
		}
		if (vm->state == TERND_VM_STOPPED || vm->state == TERND_VM_INCOMING)
			continue;	/* arrivals: the monitor decides */
		if (alive && !ternd_vmm_call(vm->sock, "GET", "/vm", NULL, &r, NULL)) {
			const char *st = json_string_value(json_object_get(r, "state"));

			vm->state = st && !strcmp(st, "paused") ?
				    TERND_VM_PAUSED : TERND_VM_RUNNING;
			json_decref(r);
			ternd_event(d, vm->name, "adopted", "tern-vmm pid %d still runs",
				    (int)vm->pid);
		} else {
			ternd_event(d, vm->name, "stopped",
				    "tern-vmm pid %d is gone (found at start)", (int)vm->pid);
			vm->state = TERND_VM_STOPPED;
			vm->pid = 0;
		}
		ternd_vm_save(d, vm);
	}
}
