/*
 * vmm_api.c - the API backend of tern-vmm: VM info, pause, resume,
 * shutdown, and the live migration of this VM (start, status, cancel).
 * At most one outgoing migration exists at a time; when it completes the
 * VM has moved, so the process is asked to exit ("migrated").
 */
#include "vmm_api.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "mig.h"
#include "util.h"

/*
 * After a completed migration the process lingers (the VM paused, never
 * resumed) until a client has read the final status or LINGER_MS passed,
 * so `tern migrate --wait` can show the result.
 */
#define LINGER_MS 3000

/* Dirty-rate measurements count pages in windows this long (dirtyrate.c). */
#define DIRTY_WINDOW_MS 200

static struct {
	struct vm *vm;
	pthread_mutex_t lock;		/* guards everything below */
	struct mig_source *mig;
	char uri[256];
	uint64_t completed_ns;		/* migration completed at */
	uint64_t final_seen_ns;		/* a client read the completed status */
	bool vm_ready;			/* the VM exists (booted or received) */
	struct tls_ctx *tls;		/* this host's TLS identity, or NULL */
	uint64_t dirty_done_ns;		/* first seen done (for the planner's hint) */
	struct mig_dirty_job *dirty;	/* the last dirty-rate measurement */
} ctl = { .lock = PTHREAD_MUTEX_INITIALIZER };

static enum api_vm_state to_api_state(enum vm_state s)
{
	switch (s) {
	case VM_STATE_RUNNING: return API_VM_RUNNING;
	case VM_STATE_PAUSED: return API_VM_PAUSED;
	case VM_STATE_STOPPING: return API_VM_SHUTTING_DOWN;
	default: return API_VM_INVALID;
	}
}

static void fill_info(struct vm *vm, struct api_vm_info *info)
{
	memset(info, 0, sizeof(*info));
	info->state = to_api_state(vm_get_state(vm));
	if (vm->exit_reason != VM_EXIT_NONE)
		info->state = API_VM_SHUTTING_DOWN;
	info->vcpus = vm->nr_vcpus;
	info->memory_bytes = vm->mem.size;
	info->uptime_ms = vm->start_ns ? (time_now_ns() - vm->start_ns) / 1000000 : 0;
	str_copy(info->kernel, sizeof(info->kernel), vm->kernel_path);
	str_copy(info->cmdline, sizeof(info->cmdline), vm->cmdline);
}

static void fill_migration(struct api_migration_info *out)
{
	struct mig_stats st = { 0 };

	memset(out, 0, sizeof(*out));
	if (ctl.mig)
		mig_source_stats(ctl.mig, &st);
	str_copy(out->state, sizeof(out->state), mig_state_name(st.state));
	str_copy(out->uri, sizeof(out->uri), ctl.uri);
	str_copy(out->error, sizeof(out->error), st.error);
	out->pass = st.pass;
	out->ram_bytes = st.ram_bytes;
	out->transferred_bytes = st.transferred;
	out->remaining_bytes = st.remaining;
	out->dirty_rate_bps = st.dirty_rate;
	out->throughput_bps = st.throughput;
	out->expected_downtime_ms = st.expected_downtime_ms;
	out->eta_ms = st.eta_ms;
	out->elapsed_ms = st.elapsed_ms;
	out->downtime_ms = st.downtime_ms;
	out->pages_normal = st.pages_normal;
	out->pages_zero = st.pages_zero;
	out->pages_deferred = st.pages_deferred;
	out->downtime_us = st.downtime_us;
	out->downtime_limit_ms = st.downtime_limit_ms;
	out->bandwidth_limit_bps = st.bandwidth_limit;
	out->throttle_pct = st.throttle_pct;
	out->pages_xbzrle = st.pages_xbzrle;
	out->xbzrle_cache_hits = st.xbzrle_cache_hits;
	out->xbzrle_cache_misses = st.xbzrle_cache_misses;
	out->xbzrle_overflows = st.xbzrle_overflows;
	out->xbzrle_bytes_saved = st.xbzrle_bytes_saved;
	out->progress_pct = st.progress_pct;
	str_copy(out->strategy, sizeof(out->strategy), st.strategy);
	out->postcopy_requests = st.postcopy_requests;
	out->postcopy_bg_pages = st.postcopy_bg_pages;
	out->postcopy_pages_left = st.postcopy_pages_left;
	out->postcopy_faults = st.postcopy_faults;
	out->postcopy_fault_avg_us = st.postcopy_fault_avg_us;
	out->postcopy_fault_max_us = st.postcopy_fault_max_us;
	out->postcopy_recoveries = st.postcopy_recoveries;
	out->postcopy_fault_p50_us = st.postcopy_fault_p50_us;
	str_copy(out->plan, sizeof(out->plan), st.plan);
	out->predicted_total_ms = st.predicted_total_ms;
	out->predicted_downtime_ms = st.predicted_downtime_ms;
	out->predicted_wire_bytes = st.predicted_wire_bytes;
	out->initial_predicted_total_ms = st.initial_predicted_total_ms;
	out->initial_predicted_downtime_ms = st.initial_predicted_downtime_ms;
	out->dirty_rate_smoothed_bps = st.dirty_rate_smoothed;
	out->working_set_bytes = st.wss_estimate;
	out->downtime_limit_initial_ms = st.downtime_limit_initial_ms;
	out->channels = st.channels;
	out->pages_compressed = st.pages_compressed;
}

/* Parallel channels and their compression. */
static int migrate_params_multifd(const struct api_migrate_params *p, struct mig_params *mp,
				  struct err *err)
{
	if (p->channels == API_CHANNELS_DEFAULT)
		mp->channels = mp->postcopy ? 0 : mp->channels;	/* engine default */
	else if (p->channels && mp->postcopy)
		return err_set(err, -EINVAL, "channels cannot be combined with post-copy yet");
	else
		mp->channels = (uint32_t)p->channels;
	if (!p->compress[0] || !strcmp(p->compress, "none"))
		mp->compress = MIG_COMPRESS_NONE;
	else if (!strcmp(p->compress, "zstd"))
		mp->compress = MIG_COMPRESS_ZSTD;
	else if (!strcmp(p->compress, "lz4"))
		mp->compress = MIG_COMPRESS_LZ4;
	else
		return err_set(err, -EINVAL, "compress must be none, zstd or lz4");
	if (mp->compress != MIG_COMPRESS_NONE && !mp->channels)
		return err_set(err, -EINVAL, "compress needs channels (1-16)");
	if (p->compress_level && mp->compress != MIG_COMPRESS_ZSTD)
		return err_set(err, -EINVAL, "compress_level is for zstd only");
	mp->compress_level = (int32_t)p->compress_level;
	return 0;
}

/* The planner's parameters (strategy, relaxing downtime, probe). */
static int migrate_plan_params(const struct api_migrate_params *p, struct mig_params *mp,
			       struct err *err)
{
	static const char *const ok[] = { "auto", "precopy", "xbzrle", "auto-converge", "postcopy" };
	bool found = !p->strategy[0];

	for (size_t i = 0; i < ARRAY_SIZE(ok) && !found; i++)
		found = !strcmp(p->strategy, ok[i]);
	if (!found)
		return err_set(err, -EINVAL,
			       "strategy must be auto, precopy, xbzrle, auto-converge or postcopy");
	if (p->strategy[0])
		str_copy(mp->strategy, sizeof(mp->strategy), p->strategy);
	if (p->downtime_max_ms && p->downtime_max_ms < mp->downtime_ms)
		return err_set(err, -EINVAL, "downtime_max_ms %llu is below downtime_ms %u",
			       (unsigned long long)p->downtime_max_ms, mp->downtime_ms);
	mp->downtime_max_ms = (uint32_t)p->downtime_max_ms;
	if (p->downtime_steps)
		mp->downtime_steps = (uint32_t)p->downtime_steps;
	if (p->probe_ms)
		mp->probe_ms = (uint32_t)p->probe_ms;
	if (p->no_probe)
		mp->probe_ms = 0;
	mp->no_defer_hot = p->no_defer_hot;
	return 0;
}

/* A dirty-rate measurement finished in the last minute is the planner's hint. */
static void migrate_hints(struct mig_params *mp)
{
	struct mig_dirty_rate r;
	char e[8];

	if (!ctl.dirty || mig_dirty_job_get(ctl.dirty, &r, e, sizeof(e)) != MIG_DIRTY_DONE)
		return;
	if (!ctl.dirty_done_ns)
		ctl.dirty_done_ns = time_now_ns();
	if (time_now_ns() - ctl.dirty_done_ns < 60000000000ULL) {
		mp->dirty_rate_hint = r.rate;
		mp->wss_hint = r.wss_bytes;
	}
}


/* "tls": on (needs --tls-*), off, or "" (on when --tls-* was given). */
static int migrate_tls_params(const struct api_migrate_params *p, struct mig_params *mp,
			      struct err *err)
{
	if (p->tls[0] && strcmp(p->tls, "on") && strcmp(p->tls, "off"))
		return err_set(err, -EINVAL, "tls must be on or off");
	if (!strcmp(p->tls, "on") && !ctl.tls)
		return err_set(err, -EINVAL, "tls on: this tern-vmm was started without "
			       "--tls-cert/--tls-key/--tls-ca");
	mp->tls = strcmp(p->tls, "off") ? ctl.tls : NULL;
	str_copy(mp->tls_hostname, sizeof(mp->tls_hostname), p->tls_hostname);
	return 0;
}

void vmm_api_set_tls(struct tls_ctx *tls)
{
	ctl.tls = tls;
}

/* API parameters (0/empty: default) onto engine parameters. */
static int migrate_params(const struct api_migrate_params *p, struct mig_params *mp,
			  struct err *err)
{
	int ret;

	mig_params_init(mp);
	if (p->downtime_ms)
		mp->downtime_ms = (uint32_t)p->downtime_ms;
	mp->bandwidth = p->bandwidth_mibs << 20;
	if (!p->auto_converge[0] || !strcmp(p->auto_converge, "auto"))
		mp->auto_converge = MIG_AC_AUTO;
	else if (!strcmp(p->auto_converge, "on"))
		mp->auto_converge = MIG_AC_ON;
	else if (!strcmp(p->auto_converge, "off"))
		mp->auto_converge = MIG_AC_OFF;
	else
		return err_set(err, -EINVAL, "auto_converge must be auto, on or off");
	if (!p->timeout_action[0] || !strcmp(p->timeout_action, "abort"))
		mp->timeout_action = MIG_TA_ABORT;
	else if (!strcmp(p->timeout_action, "force"))
		mp->timeout_action = MIG_TA_FORCE;
	else if (!strcmp(p->timeout_action, "postcopy"))
		mp->timeout_action = MIG_TA_POSTCOPY;
	else
		return err_set(err, -EINVAL, "timeout_action must be abort, force or postcopy");
	mp->postcopy = p->postcopy || p->auto_postcopy ||
		       mp->timeout_action == MIG_TA_POSTCOPY;
	mp->auto_postcopy = p->auto_postcopy;
	if (p->throttle_initial)
		mp->throttle_initial = (uint32_t)p->throttle_initial;
	if (p->throttle_increment)
		mp->throttle_increment = (uint32_t)p->throttle_increment;
	if (p->throttle_max)
		mp->throttle_max = (uint32_t)p->throttle_max;
	if (mp->throttle_initial > mp->throttle_max)
		return err_set(err, -EINVAL, "throttle_initial %u is above throttle_max %u",
			       mp->throttle_initial, mp->throttle_max);
	if (p->completion_timeout_per_gib)
		mp->completion_timeout_per_gib = (uint32_t)p->completion_timeout_per_gib;
	if (p->progress_timeout_s)
		mp->progress_timeout_s = (uint32_t)p->progress_timeout_s;
	mp->xbzrle = p->xbzrle;
	if (p->xbzrle_cache_mib)
		mp->xbzrle_cache_bytes = p->xbzrle_cache_mib << 20;
	if (p->keepalive_interval_s)
		mp->keepalive_interval_s = (uint32_t)p->keepalive_interval_s;
	if (p->keepalive_count)
		mp->keepalive_count = (uint32_t)p->keepalive_count;
	ret = mig_keepalive_check(mp->keepalive_interval_s, mp->keepalive_count, err);
	if (ret)
		return ret;
	ret = migrate_tls_params(p, mp, err);
	if (ret)
		return ret;
	ret = migrate_plan_params(p, mp, err);
	if (ret)
		return ret;
	return migrate_params_multifd(p, mp, err);
}

/* Called on the migration thread when it reaches a final state. */
static void migration_done(void *opaque, enum mig_state st)
{
	if (st != MIG_STATE_COMPLETED)
		return;
	pthread_mutex_lock(&ctl.lock);
	ctl.completed_ns = time_now_ns();
	pthread_mutex_unlock(&ctl.lock);
	vmm_api_tick();
}

void vmm_api_tick(void)
{
	bool leave;

	pthread_mutex_lock(&ctl.lock);
	/*
	 * Leave once the final status was read (and its reply had time to go
	 * out: the API server is stopped on the way out), or after LINGER_MS.
	 */
	leave = ctl.completed_ns &&
		((ctl.final_seen_ns && time_now_ns() - ctl.final_seen_ns > 200000000ULL) ||
		 time_now_ns() - ctl.completed_ns > LINGER_MS * 1000000ULL);
	pthread_mutex_unlock(&ctl.lock);
	if (leave)
		vm_request_exit(ctl.vm, VM_EXIT_MIGRATED, 0, "migrated to %s", ctl.uri);
}

static bool dirty_rate_busy(void)
{
	struct mig_dirty_rate r;
	char e[8];

	return ctl.dirty && mig_dirty_job_get(ctl.dirty, &r, e, sizeof(e)) == MIG_DIRTY_MEASURING;
}

static void fill_dirty_rate(struct api_dirty_rate_info *out)
{
	static const char *const names[] = {
		[MIG_DIRTY_NONE] = "none", [MIG_DIRTY_MEASURING] = "measuring",
		[MIG_DIRTY_DONE] = "done", [MIG_DIRTY_FAILED] = "failed",
	};
	enum mig_dirty_state st = MIG_DIRTY_NONE;
	struct mig_dirty_rate r = { 0 };

	memset(out, 0, sizeof(*out));
	if (ctl.dirty)
		st = mig_dirty_job_get(ctl.dirty, &r, out->error, sizeof(out->error));
	if (st == MIG_DIRTY_DONE && !ctl.dirty_done_ns)
		ctl.dirty_done_ns = time_now_ns();
	str_copy(out->state, sizeof(out->state), names[st]);
	out->dirty_rate_bps = r.rate;
	out->peak_dirty_rate_bps = r.peak_rate;
	out->working_set_bytes = r.wss_bytes;
	out->duration_ms = r.duration_ms;
	out->window_ms = r.window_ms;
	out->windows = r.windows;
}

/* POST /vm/dirty-rate: measure for N s on a running VM, not while migrating. */
static int start_dirty_rate(struct vm *vm, const struct api_dirty_rate_params *p,
			    struct err *err)
{
	uint64_t ms = (p->seconds ? p->seconds : 1) * 1000;
	struct mig_stats st;

	if (dirty_rate_busy())
		return err_set(err, -EBUSY, "a dirty-rate measurement is already running");
	if (ctl.mig) {
		mig_source_stats(ctl.mig, &st);
		if (!mig_state_is_final(st.state))
			return err_set(err, -EBUSY, "a migration is %s (its status shows the dirty rate)",
				       mig_state_name(st.state));
	}
	if (vm_get_state(vm) != VM_STATE_RUNNING)
		return err_set(err, -EBUSY, "VM is %s", vm_state_name(vm_get_state(vm)));
	mig_dirty_job_free(ctl.dirty);
	ctl.dirty_done_ns = 0;
	ctl.dirty = mig_dirty_job_start(vm, ms, DIRTY_WINDOW_MS, err);
	return ctl.dirty ? 0 : (err && err->code ? err->code : -EIO);
}

static int dirty_rate_action(struct vm *vm, const struct api_request *req,
			     struct api_reply *reply, struct err *err)
{
	int ret = 0;

	pthread_mutex_lock(&ctl.lock);
	if (req->action == API_ACTION_DIRTY_RATE)
		ret = start_dirty_rate(vm, &req->dirty_rate, err);
	if (!ret)
		fill_dirty_rate(&reply->dirty_rate);
	pthread_mutex_unlock(&ctl.lock);
	return ret;
}

static int start_migration(struct vm *vm, const struct api_migrate_params *p,
			   struct err *err)
{
	struct mig_params mp;
	struct mig_stats st;

	if (ctl.mig) {
		mig_source_stats(ctl.mig, &st);
		if (!mig_state_is_final(st.state))
			return err_set(err, -EBUSY, "a migration to %s is already %s",
				       ctl.uri, mig_state_name(st.state));
		if (st.state == MIG_STATE_COMPLETED || st.state == MIG_STATE_UNCONFIRMED ||
		    st.state == MIG_STATE_POSTCOPY_FAILED)
			return err_set(err, -EBUSY, "the VM has been handed over (%s)",
				       mig_state_name(st.state));
		mig_source_free(ctl.mig);
		ctl.mig = NULL;
	}
	if (vm_get_state(vm) != VM_STATE_RUNNING && vm_get_state(vm) != VM_STATE_PAUSED)
		return err_set(err, -EBUSY, "VM is %s", vm_state_name(vm_get_state(vm)));
	if (dirty_rate_busy())
		return err_set(err, -EBUSY, "a dirty-rate measurement is running");
	if (migrate_params(p, &mp, err))
		return -EINVAL;
	migrate_hints(&mp);
	ctl.mig = mig_source_start(vm, p->uri, &mp, migration_done, vm, err);
	if (!ctl.mig)
		return err && err->code ? err->code : -EIO;
	str_copy(ctl.uri, sizeof(ctl.uri), p->uri);
	log_info("vmm", "migration to %s started", p->uri);
	return 0;
}

static int migration_action(struct vm *vm, const struct api_request *req,
			    struct api_reply *reply, struct err *err)
{
	int ret = 0;

	pthread_mutex_lock(&ctl.lock);
	if (req->action == API_ACTION_MIGRATE)
		ret = start_migration(vm, &req->migrate, err);
	else if (req->action == API_ACTION_MIGRATE_CANCEL)
		ret = ctl.mig ? mig_source_cancel(ctl.mig, err) :
		      err_set(err, -ENOENT, "no migration to cancel");
	else if (req->action == API_ACTION_MIGRATE_POSTCOPY)
		ret = ctl.mig ? mig_source_postcopy(ctl.mig, err) :
		      err_set(err, -ENOENT, "no migration to switch to post-copy");
	else if (req->action == API_ACTION_MIGRATE_RECOVER)
		ret = ctl.mig ? mig_source_recover(ctl.mig, req->migrate.uri, err) :
		      err_set(err, -ENOENT, "no migration to recover");
	else if (req->action == API_ACTION_MIGRATE_ABANDON)
		ret = ctl.mig ? mig_source_abandon(ctl.mig, req->migrate.resume_source, err) :
		      err_set(err, -ENOENT, "no migration to abandon");
	if (!ret)
		fill_migration(&reply->migration);
	if (!ret && ctl.completed_ns && !ctl.final_seen_ns)
		ctl.final_seen_ns = time_now_ns();
	pthread_mutex_unlock(&ctl.lock);
	return ret;
}

/*
 * A destination receiving in post-copy (the VM runs, or waits paused for
 * the source to come back) answers GET /vm and GET /vm/migration from the
 * incoming migration's status; -EBUSY when there is none to show.
 */
static int incoming_status(struct vm *vm, const struct api_request *req,
			   struct api_reply *reply)
{
	struct mig_stats st;

	mig_dest_status(&st);
	if (st.state == MIG_STATE_NONE)
		return -EBUSY;
	if (req->action == API_ACTION_GET_INFO) {
		fill_info(vm, &reply->info);
		if (st.state == MIG_STATE_POSTCOPY_PAUSED)
			reply->info.state = API_VM_POSTCOPY_PAUSED;
		return 0;
	}
	if (req->action != API_ACTION_MIGRATE_STATUS)
		return -EBUSY;
	memset(&reply->migration, 0, sizeof(reply->migration));
	str_copy(reply->migration.state, sizeof(reply->migration.state),
		 mig_state_name(st.state));
	str_copy(reply->migration.error, sizeof(reply->migration.error), st.error);
	str_copy(reply->migration.strategy, sizeof(reply->migration.strategy),
		 "incoming post-copy");
	reply->migration.postcopy_recoveries = st.postcopy_recoveries;
	return 0;
}

static int vmm_api_execute(void *opaque, const struct api_request *req,
			   struct api_reply *reply, struct err *err)
{
	struct vm *vm = opaque;
	bool ready;
	int ret = 0;

	pthread_mutex_lock(&ctl.lock);
	ready = ctl.vm_ready;
	pthread_mutex_unlock(&ctl.lock);
	if (!ready && !incoming_status(vm, req, reply))
		return 0;
	if (!ready)
		return err_set(err, -EBUSY, "no VM yet: it is booting or waiting for an incoming migration");

	switch (req->action) {
	case API_ACTION_GET_INFO:
		break;
	case API_ACTION_PAUSE:
		ret = vm_pause(vm, err);
		break;
	case API_ACTION_RESUME:
		ret = vm_resume(vm, err);
		break;
	case API_ACTION_SHUTDOWN:
		vm_request_exit(vm, VM_EXIT_API_SHUTDOWN, 0, "shut down through the API");
		break;
	case API_ACTION_MIGRATE:
	case API_ACTION_MIGRATE_STATUS:
	case API_ACTION_MIGRATE_CANCEL:
	case API_ACTION_MIGRATE_POSTCOPY:
	case API_ACTION_MIGRATE_RECOVER:
	case API_ACTION_MIGRATE_ABANDON:
		return migration_action(vm, req, reply, err);
	case API_ACTION_DIRTY_RATE:
	case API_ACTION_DIRTY_RATE_STATUS:
		return dirty_rate_action(vm, req, reply, err);
	default:
		return err_set(err, -EINVAL, "unsupported action");
	}
	if (!ret)
		fill_info(vm, &reply->info);
	return ret;
}

int vmm_api_start(struct api_server **srv, const char *path, struct vm *vm,
		  struct err *err)
{
	struct api_backend backend = { .opaque = vm, .execute = vmm_api_execute };

	ctl.vm = vm;
	*srv = api_server_start(path, &backend, err);
	return *srv ? 0 : (err && err->code ? err->code : -EIO);
}

void vmm_api_set_ready(void)
{
	pthread_mutex_lock(&ctl.lock);
	ctl.vm_ready = true;
	pthread_mutex_unlock(&ctl.lock);
}

void vmm_api_quiesce(void)
{
	pthread_mutex_lock(&ctl.lock);
	if (ctl.mig) {
		mig_source_cancel(ctl.mig, NULL);	/* refused after GO: then wait */
		mig_source_abandon(ctl.mig, false, NULL); /* post-copy paused: give up */
		mig_source_free(ctl.mig);
		ctl.mig = NULL;
	}
	mig_dirty_job_free(ctl.dirty);	/* stops a measurement, logging off */
	ctl.dirty = NULL;
	pthread_mutex_unlock(&ctl.lock);
}
