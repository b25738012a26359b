/*
 * migrate.c - peer-to-peer live migration between two ternd's.
 *
 * Source (POST /vms/NAME/migrate): pre-migration checks with the
 * destination's facts and allocations (all failures together), the
 * source's before_migration hooks, POST /incoming on the destination
 * (its hooks, a port from migration_ports, a `tern-vmm --incoming`),
 * then POST /vm/migrate to the VM's tern-vmm. A follower thread polls
 * the engine, pings the peer (keepalive: a silent peer cancels the
 * migration before handover) and concludes: completed -> the peer
 * commits (records the VM as its own), we delete ours; anything else ->
 * the peer aborts (kills its VMM, removes its files), the VM stays here.
 * The destination also adopts an arrival by itself once its VMM runs the
 * VM, so a source ternd that died mid-way leaves exactly one copy.
 */
#include "ternd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "precheck.h"
#include "util.h"

#define FOLLOW_MS 200

static const char *const mig_knobs[] = {
	"downtime_ms", "bandwidth_mibs", "auto_converge", "throttle_initial",
	"throttle_increment", "throttle_max", "completion_timeout_per_gib",
	"progress_timeout_s", "timeout_action", "xbzrle", "xbzrle_cache_mib",
};

static void ms_sleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static json_t *split_list(const char *s)
{
	char buf[512], *p, *save = NULL;
	json_t *a = json_array();

	str_copy(buf, sizeof(buf), s);
	for (p = strtok_r(buf, ", ", &save); p; p = strtok_r(NULL, ", ", &save))
		json_array_append_new(a, json_string(p));
	return a;
}

json_t *ternd_host_facts(struct ternd *d, struct err *err)
{
	json_t *f = host_facts_collect(&d->cfg.hostcfg, err);

	if (!f)
		return NULL;
	json_object_set_new(f, "host", json_string(d->cfg.host));
	json_object_set_new(f, "cluster", json_string(d->cfg.cluster));
	json_object_set_new(f, "up", json_true());
	json_object_set_new(f, "maintenance", json_boolean(d->cfg.maintenance));
	json_object_set_new(f, "networks", split_list(d->cfg.networks));
	json_object_set_new(f, "storage", split_list(d->cfg.storage));
	json_object_set_new(f, "default_cpu_model", json_string(d->cfg.default_cpu_model));
	return f;
}

json_t *ternd_host_state(struct ternd *d)
{
	uint64_t mem, vcpus;
	json_int_t n = 0;

	pthread_mutex_lock(&d->lock);
	ternd_vm_usage(d, &mem, &vcpus);
	for (struct ternd_vm *vm = d->vms; vm; vm = vm->next)
		n++;
	pthread_mutex_unlock(&d->lock);
	return json_pack("{s:I, s:I, s:I}", "allocated_memory", (json_int_t)mem,
			 "allocated_vcpus", (json_int_t)vcpus, "vms", n);
}

/* The VM as host_precheck() sees it (d->lock held). */
static json_t *mig_vm_facts(struct ternd_vm *vm, bool manual)
{
	json_t *o = json_object(), *def = vm->def;
	static const char *const keys[] = {
		"name", "memory", "vcpus", "cpu_model", "migration_mode",
		"pinned_hosts", "networks", "disks",
	};

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		json_object_set(o, keys[i], json_object_get(def, keys[i]));
	json_object_set_new(o, "state", json_string(ternd_vm_state_name(vm->state)));
	json_object_set_new(o, "manual", json_boolean(manual));
	return o;
}

/* HOST[:PORT] -> http(s)://HOST:PORT: https when we have TLS. */
static void peer_url(const struct ternd *d, const char *to, char *out, size_t len)
{
	size_t skip;

	if (!strncmp(to, "http://", 7) || !strncmp(to, "https://", 8))
		str_copy(out, len, to);
	else
		snprintf(out, len, "%s://%s", d->cfg.tls ? "https" : "http", to);
	skip = !strncmp(out, "https://", 8) ? 8 : 7;
	if (!strchr(out + skip, ':'))
		snprintf(out + strlen(out), len - strlen(out), ":7070");
}

/* All checks, the peer's facts included; *failures is always set on 0. */
static int mig_precheck(struct ternd *d, json_t *vmf, const char *peer,
			json_t **failures, json_t *warnings, struct err *err)
{
	json_t *src, *dst = NULL, *dst_state = NULL;
	int ret;

	*failures = NULL;
	src = ternd_host_facts(d, err);
	if (!src)
		return -EIO;
	ret = ternd_peer_call(d, peer, "GET", "/host", NULL, &dst, err);
	if (!ret)
		ret = ternd_peer_call(d, peer, "GET", "/host/state", NULL,
				      &dst_state, err);
	if (ret) {
		err_prefix(err, "destination %s", peer);
		goto out;
	}
	*failures = host_precheck(vmf, src, dst, dst_state, warnings);
	if (!*failures)
		ret = err_set(err, -ENOMEM, "out of memory");
out:
	json_decref(src);
	json_decref(dst);
	json_decref(dst_state);
	return ret;
}

static void failures_msg(json_t *failures, char *buf, size_t len)
{
	size_t i, used;
	json_t *f;

	snprintf(buf, len, "pre-migration checks failed:");
	json_array_foreach(failures, i, f) {
		used = strlen(buf);
		snprintf(buf + used, len - used, "%s %s: %s", i ? ";" : "",
			 json_string_value(json_object_get(f, "check")),
			 json_string_value(json_object_get(f, "reason")));
	}
}

static json_t *mig_body(const json_t *args, const char *uri)
{
	json_t *b = json_pack("{s:s}", "uri", uri), *v;

	for (size_t i = 0; i < ARRAY_SIZE(mig_knobs); i++)
		if ((v = json_object_get(args, mig_knobs[i])))
			json_object_set(b, mig_knobs[i], v);
	return b;
}

static void mig_unclaim(struct ternd *d, struct ternd_vm *vm, const char *result)
{
	pthread_mutex_lock(&d->lock);
	vm->migrating = false;
	vm->cancel = false;
	json_decref(vm->mig_status);
	vm->mig_status = NULL;
	str_copy(vm->mig_result, sizeof(vm->mig_result), result);
	ternd_vm_save(d, vm);
	pthread_mutex_unlock(&d->lock);
}

static void *mig_follow(void *opaque);

static int mig_spawn_follower(struct ternd *d, struct ternd_vm *vm)
{
	void **arg = malloc(2 * sizeof(void *));
	pthread_t t;

	if (!arg)
		return -ENOMEM;
	arg[0] = d;
	arg[1] = vm;
	if (pthread_create(&t, NULL, mig_follow, arg)) {
		free(arg);
		return -EAGAIN;
	}
	pthread_detach(t);
	return 0;
}

/* Reserve the VM for a migration to `peer`; its facts in *vmf. */
static int mig_claim(struct ternd *d, const char *name, const char *peer,
		     bool check, json_t **vmf, struct ternd_vm **out,
		     struct err *err)
{
	struct ternd_vm *vm;
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	ret = ternd_vm_lookup(d, name, &vm, err);
	if (!ret && (vm->busy || vm->migrating))
		ret = err_set(err, -EBUSY, "VM %s is busy (%s)", name,
			      vm->migrating ? "already migrating" : "another operation");
	if (!ret) {
		*vmf = mig_vm_facts(vm, true);
		if (!check) {
			vm->migrating = true;
			str_copy(vm->peer, sizeof(vm->peer), peer);
			vm->mig_result[0] = '\0';
		}
	}
	pthread_mutex_unlock(&d->lock);
	*out = vm;
	return ret;
}

static int mig_start(struct ternd *d, struct ternd_vm *vm, const json_t *args,
		     json_t **reply, struct err *err)
{
	json_t *in = NULL, *body;
	char msg[512], *b;
	const char *uri;
	int ret;

	if (ternd_hook_run(d, vm->name, "before_migration", "source", msg, sizeof(msg)))
		return err_set(err, -EPERM, "vetoed on the source: %s", msg);
	body = json_pack("{s:O, s:s}", "definition", vm->def, "source", d->cfg.host);
	ret = ternd_peer_call(d, vm->peer, "POST", "/incoming", body, &in, err);
	json_decref(body);
	uri = json_string_value(json_object_get(in, "uri"));
	if (!ret && !uri)
		ret = err_set(err, -EIO, "destination gave no migration URI");
	if (ret)
		goto out;
	body = mig_body(args, uri);
	b = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	ret = ternd_vmm_call(vm->sock, "POST", "/vm/migrate", b, NULL, err);
	free(b);
	if (ret) {
		snprintf(msg, sizeof(msg), "/incoming/%s/abort", vm->name);
		ternd_peer_call(d, vm->peer, "POST", msg, NULL, NULL, NULL);
		goto out;
	}
	pthread_mutex_lock(&d->lock);
	str_copy(vm->mig_uri, sizeof(vm->mig_uri), uri);
	ternd_vm_save(d, vm);
	pthread_mutex_unlock(&d->lock);
	ternd_event(d, vm->name, "migration_started", "to %s via %s", vm->peer, uri);
	*reply = json_pack("{s:s, s:s, s:s}", "state", "migrating", "to", vm->peer,
			   "uri", uri);
	ret = mig_spawn_follower(d, vm);
out:
	json_decref(in);
	return ret;
}

int ternd_migrate(struct ternd *d, const char *name, const json_t *args,
		  json_t **reply, struct err *err)
{
	const char *to = json_string_value(json_object_get(args, "to"));
	bool check = json_is_true(json_object_get(args, "check"));
	json_t *vmf = NULL, *failures = NULL, *warnings = json_array();
	struct ternd_vm *vm;
	char peer[160], msg[1024];
	int ret;

	if (!to || !*to || strlen(to) > 120)
		return err_set(err, -EINVAL, "field 'to': the destination ternd (HOST:PORT or http://HOST:PORT) is required");
	peer_url(d, to, peer, sizeof(peer));
	ret = mig_claim(d, name, peer, check, &vmf, &vm, err);
	if (ret)
		goto out;
	ret = mig_precheck(d, vmf, peer, &failures, warnings, err);
	if (!ret && check) {
		*reply = json_pack("{s:b, s:O, s:O}", "ok", !json_array_size(failures),
				   "failures", failures, "warnings", warnings);
		goto out;
	}
	if (!ret && json_array_size(failures)) {
		failures_msg(failures, msg, sizeof(msg));
		ret = err_set(err, -EPERM, "%s", msg);
		*reply = json_pack("{s:O, s:O}", "failures", failures, "warnings", warnings);
	}
	if (!ret)
		ret = mig_start(d, vm, args, reply, err);
	if (ret) {
		ternd_event(d, name, "migration_refused", "to %s: %s", peer, err_msg(err));
		mig_unclaim(d, vm, err_msg(err));
	}
out:
	json_decref(vmf);
	json_decref(failures);
	json_decref(warnings);
	return ret;
}

int ternd_migrate_cancel(struct ternd *d, const char *name, struct err *err)
{
	struct ternd_vm *vm;
	char sock[108];
	int ret;

	pthread_mutex_lock(&d->lock);
	ret = ternd_vm_lookup(d, name, &vm, err);
	if (!ret && vm->migrating) {
		vm->cancel = true;
		str_copy(sock, sizeof(sock), vm->sock);
	}
	pthread_mutex_unlock(&d->lock);
	if (ret)
		return ret;
	if (!vm->migrating)
		return err_set(err, -EALREADY, "VM %s is not migrating", name);
	ternd_event(d, name, "migration_cancel", "cancel requested");
	return ternd_vmm_call(sock, "POST", "/vm/migration/cancel", NULL, NULL, err);
}

/* "total 1.234 s, downtime 12 ms, 34.5 MiB sent" from the engine's last status. */
static void mig_summary(const json_t *st, char *buf, size_t len)
{
	char sent[32];

	if (!st) {
		snprintf(buf, len, "no engine summary");
		return;
	}
	fmt_bytes((uint64_t)json_integer_value(json_object_get(st, "transferred_bytes")),
		  sent, sizeof(sent));
	snprintf(buf, len, "total %.3f s, downtime %" JSON_INTEGER_FORMAT " ms, %s sent",
		 (double)json_integer_value(json_object_get(st, "elapsed_ms")) / 1000.0,
		 json_integer_value(json_object_get(st, "downtime_ms")), sent);
}

/* The peer runs the VM now: ours goes (the source tern-vmm exits by itself). */
static void mig_handed_over(struct ternd *d, struct ternd_vm *vm, const char *how)
{
	char msg[512], sum[128];

	for (int i = 0; i < 100 && ternd_proc_alive(vm->pid, vm->sock); i++)
		ms_sleep(100);
	ternd_proc_kill(vm->pid, vm->sock, 0);
	ternd_hook_run(d, vm->name, "after_migration", "source", msg, sizeof(msg));
	pthread_mutex_lock(&d->lock);
	mig_summary(vm->mig_status, sum, sizeof(sum));
	pthread_mutex_unlock(&d->lock);
	ternd_event(d, vm->name, "migrated", "to %s (%s): %s", vm->peer, how, sum);
	pthread_mutex_lock(&d->lock);
	vm->migrating = false;
	ternd_vm_remove(d, vm);
	pthread_mutex_unlock(&d->lock);
}

static bool peer_commit(struct ternd *d, struct ternd_vm *vm, struct err *err)
{
	char path[TERND_NAME_MAX + 32];

	snprintf(path, sizeof(path), "/incoming/%s/commit", vm->name);
	for (int i = 0; i < 10; i++) {
		err_clear(err);
		if (!ternd_peer_call(d, vm->peer, "POST", path, NULL, NULL, err))
			return true;
		if (err->code != -EBUSY && err->code != -EIO)
			return false;
		ms_sleep(300);
	}
	return false;
}

/*
 * The migration ended with engine state `state` (NULL: the source tern-vmm
 * is gone). Decide where the VM lives and make both sides agree.
 */
static void mig_conclude(struct ternd *d, struct ternd_vm *vm, const char *state,
			 const char *why)
{
	char path[TERND_NAME_MAX + 32], res[256];
	struct err err = { 0 };
	bool moved = false;

	if (state && !strcmp(state, "completed")) {
		if (!peer_commit(d, vm, &err))
			log_warn("migrate", "%s: peer did not confirm: %s (it adopts by itself)",
				 vm->name, err_msg(&err));
		moved = true;
	} else if (!state || !strcmp(state, "unconfirmed")) {
		moved = peer_commit(d, vm, &err);
	}
	if (moved) {
		mig_handed_over(d, vm, state ? state : "found on the destination");
		return;
	}
	snprintf(path, sizeof(path), "/incoming/%s/abort", vm->name);
	ternd_peer_call(d, vm->peer, "POST", path, NULL, NULL, NULL);
	snprintf(res, sizeof(res), "%s: %s", state ? state : "lost",
		 why && *why ? why : "no reason given");
	if (!state) {
		pthread_mutex_lock(&d->lock);
		vm->state = TERND_VM_STOPPED;
		vm->pid = 0;
		pthread_mutex_unlock(&d->lock);
	}
	mig_unclaim(d, vm, res);
	ternd_event(d, vm->name, "migration_failed", "to %s: %s", vm->peer, res);
}

static bool mig_final(const char *s)
{
	return !strcmp(s, "completed") || !strcmp(s, "failed") ||
	       !strcmp(s, "cancelled") || !strcmp(s, "unconfirmed") ||
	       !strcmp(s, "none");
}

static void *mig_follow(void *opaque)
{
	struct ternd *d = ((void **)opaque)[0];
	struct ternd_vm *vm = ((void **)opaque)[1];
	uint64_t now, last_ok = time_now_ns(), next_ping = 0;
	uint64_t timeout = (uint64_t)d->cfg.keepalive_timeout_s * 1000000000ULL;
	char state[32] = "", why[256] = "";
	bool cancelled = false;
	json_t *r;

	free(opaque);
	while (!d->stopping) {
		ms_sleep(FOLLOW_MS);
		if (ternd_vmm_call(vm->sock, "GET", "/vm/migration", NULL, &r, NULL)) {
			if (!ternd_proc_alive(vm->pid, vm->sock)) {
				mig_conclude(d, vm, NULL, "the source tern-vmm exited");
				return NULL;
			}
			continue;
		}
		str_copy(state, sizeof(state), json_string_value(json_object_get(r, "state")) ?: "");
		if (!why[0])
			str_copy(why, sizeof(why), json_string_value(json_object_get(r, "error")) ?: "");
		pthread_mutex_lock(&d->lock);
		json_decref(vm->mig_status);
		vm->mig_status = r;
		pthread_mutex_unlock(&d->lock);
		if (mig_final(state))
			break;
		now = time_now_ns();
		if (now >= next_ping) {
			if (!ternd_peer_call(d, vm->peer, "GET", "/ping", NULL, NULL, NULL))
				last_ok = now;
			next_ping = now + (uint64_t)d->cfg.keepalive_interval_s * 1000000000ULL;
		}
		if (!cancelled && now - last_ok > timeout) {
			snprintf(why, sizeof(why), "destination %s silent for more than %u s",
				 vm->peer, d->cfg.keepalive_timeout_s);
			ternd_event(d, vm->name, "migration_keepalive", "%s: cancelling", why);
			ternd_vmm_call(vm->sock, "POST", "/vm/migration/cancel", NULL, NULL, NULL);
			cancelled = true;
		}
	}
	if (!d->stopping)
		mig_conclude(d, vm, state, why);
	return NULL;
}

/* At start, for a VM that was migrating when ternd stopped. */
void ternd_migrate_recover(struct ternd *d, struct ternd_vm *vm)
{
	json_t *r = NULL;
	const char *st;

	if (!ternd_proc_alive(vm->pid, vm->sock)) {
		mig_conclude(d, vm, NULL, "tern-vmm gone while ternd was down");
		return;
	}
	if (ternd_vmm_call(vm->sock, "GET", "/vm/migration", NULL, &r, NULL)) {
		mig_spawn_follower(d, vm);
		return;
	}
	st = json_string_value(json_object_get(r, "state"));
	ternd_event(d, vm->name, "adopted", "migration to %s was %s at start",
		    vm->peer, st ? st : "?");
	if (st && mig_final(st))
		mig_conclude(d, vm, st, json_string_value(json_object_get(r, "error")));
	else
		mig_spawn_follower(d, vm);
	json_decref(r);
}

/* A free port of migration_ports on migration_address (d->lock held). */
static int mig_port(struct ternd *d, char *uri, size_t len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char want[128];
	bool used;

	if (inet_pton(AF_INET, d->cfg.migration_address, &sa.sin_addr) != 1)
		return -EINVAL;
	for (unsigned p = d->cfg.port_min; p <= d->cfg.port_max; p++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

		snprintf(want, sizeof(want), "tcp:%s:%u", d->cfg.migration_address, p);
		used = false;
		for (struct ternd_vm *vm = d->vms; vm; vm = vm->next)
			used |= vm->state == TERND_VM_INCOMING && !strcmp(vm->mig_uri, want);
		sa.sin_port = htons((uint16_t)p);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!used && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			str_copy(uri, len, want);
			return 0;
		}
		close(fd);
	}
	return -EADDRINUSE;
}

static int in_wait_listening(struct ternd_vm *vm)
{
	char p[PATH_MAX], buf[4096];
	FILE *f;
	size_t n;

	snprintf(p, sizeof(p), "%s/vmm.log", vm->dir);
	for (int i = 0; i < 100; i++) {
		f = fopen(p, "r");
		n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = '\0';
		if (strstr(buf, "waiting for an incoming"))
			return 0;
		if (!ternd_proc_alive(vm->pid, vm->sock))
			return -EIO;
		ms_sleep(50);
	}
	return -ETIMEDOUT;
}

static int in_prepare(struct ternd *d, struct ternd_vm *vm, struct err *err)
{
	char msg[512];
	pid_t pid = 0;
	int ret;

	if (ternd_hook_run(d, vm->name, "before_migration", "destination", msg, sizeof(msg)))
		return err_set(err, -EPERM, "vetoed on the destination: %s", msg);
	pthread_mutex_lock(&d->lock);
	ret = mig_port(d, vm->mig_uri, sizeof(vm->mig_uri));
	pthread_mutex_unlock(&d->lock);
	if (ret)
		return err_set(err, ret, "no free port in %u-%u on %s",
			       d->cfg.port_min, d->cfg.port_max, d->cfg.migration_address);
	ret = ternd_proc_spawn(d, vm, vm->mig_uri, &pid, err);
	if (ret)
		return ret;
	vm->pid = pid;
	ret = in_wait_listening(vm);
	if (ret) {
		ternd_proc_kill(pid, vm->sock, 0);
		return err_set(err, ret, "the receiving tern-vmm did not listen on %s",
			       vm->mig_uri);
	}
	return 0;
}

int ternd_incoming(struct ternd *d, const json_t *args, json_t **reply,
		   struct err *err)
{
	json_t *errors = json_array(), *def;
	struct ternd_vm *vm = NULL;
	int ret = 0;

	def = ternd_vm_validate(json_object_get(args, "definition"),
				d->cfg.default_cpu_model, errors);
	pthread_mutex_lock(&d->lock);
	if (d->cfg.maintenance)
		ret = err_set(err, -EBUSY, "host %s is in maintenance", d->cfg.host);
	else if (!def)
		ret = err_set(err, -EINVAL, "bad definition: %s",
			      json_string_value(json_object_get(json_array_get(errors, 0), "error")));
	else if (ternd_vm_find(d, json_string_value(json_object_get(def, "name"))))
		ret = err_set(err, -EEXIST, "a VM named %s is already defined on %s",
			      json_string_value(json_object_get(def, "name")), d->cfg.host);
	if (!ret) {
		vm = ternd_vm_new(d, json_string_value(json_object_get(def, "name")), def);
		vm->state = TERND_VM_INCOMING;
		vm->busy = true;
		def = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	json_decref(def);
	json_decref(errors);
	if (ret)
		return ret;
	ret = in_prepare(d, vm, err);
	pthread_mutex_lock(&d->lock);
	if (ret) {
		ternd_vm_remove(d, vm);
	} else {
		vm->busy = false;
		ternd_vm_save(d, vm);
		*reply = json_pack("{s:s}", "uri", vm->mig_uri);
	}
	pthread_mutex_unlock(&d->lock);
	if (ret)
		ternd_event(d, vm->name, "migration_in_refused", "%s", err_msg(err));
	else
		ternd_event(d, vm->name, "migration_incoming", "from %s on %s",
			    json_string_value(json_object_get(args, "source")) ?: "?",
			    vm->mig_uri);
	return ret;
}

static int in_claim(struct ternd *d, const char *name, bool commit,
		    struct ternd_vm **out, struct err *err)
{
	struct ternd_vm *vm;
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	ret = ternd_vm_lookup(d, name, &vm, err);
	if (!ret && vm->state != TERND_VM_INCOMING)
		ret = commit ? 1 : err_set(err, -EEXIST, "VM %s already runs here", name);
	else if (!ret && vm->busy)
		ret = err_set(err, -EBUSY, "VM %s is busy", name);
	else if (!ret)
		vm->busy = true;
	pthread_mutex_unlock(&d->lock);
	*out = vm;
	return ret;
}

/* commit: the arrival is ours once its VMM runs it. abort: kill and forget. */
int ternd_incoming_end(struct ternd *d, const char *name, bool commit,
		       struct err *err)
{
	struct ternd_vm *vm;
	char msg[512];
	json_t *r = NULL;
	int ret = in_claim(d, name, commit, &vm, err);

	if (ret)
		return ret > 0 ? 0 : ret;
	if (!commit) {
		ternd_proc_kill(vm->pid, vm->sock, 0);
		pthread_mutex_lock(&d->lock);
		ternd_vm_remove(d, vm);
		pthread_mutex_unlock(&d->lock);
		ternd_event(d, name, "migration_in_aborted", "receiving tern-vmm killed, state removed");
		return 0;
	}
	ret = ternd_vmm_call(vm->sock, "GET", "/vm", NULL, &r, err);
	pthread_mutex_lock(&d->lock);
	if (!ret) {
		const char *st = json_string_value(json_object_get(r, "state"));

		vm->state = st && !strcmp(st, "paused") ? TERND_VM_PAUSED : TERND_VM_RUNNING;
		vm->mig_uri[0] = '\0';
		ternd_vm_save(d, vm);
	}
	vm->busy = false;
	pthread_mutex_unlock(&d->lock);
	json_decref(r);
	if (ret)
		return err_set(err, -EBUSY, "VM %s has not arrived yet", name);
	ternd_event(d, name, "migrated_in", "now running here (tern-vmm pid %d)", (int)vm->pid);
	ternd_hook_run(d, name, "after_migration", "destination", msg, sizeof(msg));
	return 0;
}
