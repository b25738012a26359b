/*
 * source.c - the sending side of a live migration, on its own thread.
 *
 *   SETUP      connect, send header, producer, configuration, RAM blocks
 *   ACTIVE     pass 1 (all non-zero RAM), then dirty passes while the
 *              predicted downtime is over the limit or still shrinking
 *   STOP_COPY  pause the vCPUs, send the last dirty pages, the device
 *              state and EOF
 *   HANDOVER   wait for READY; send GO (ownership passes); wait RUNNING
 *
 * Until GO is sent the source owns the VM: any failure or a cancel resumes
 * it here. After GO it never runs the guest again (docs/migration-protocol.md).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "converge.h"
#include "mig_int.h"
#include "migratable.h"
#include "multifd.h"
#include "postcopy.h"
#include "util.h"

#define DEFAULT_HANDOVER_MS	30000
#define DEFAULT_MAX_PASSES	1000
#define ASSUMED_BANDWIDTH	(1ULL << 30)	/* until one is measured */

struct mig_source {
	struct vm *vm;
	char uri[256];
	struct mig_params p;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;		/* guards st, committed, fd */
	struct mig_stats st;
	atomic_bool cancel;
	bool committed;			/* GO sent: never resume here */
	bool paused_by_us;
	bool forcing;			/* timeout_action force: stop after this pass */
	unsigned throttle_applied;	/* % currently set on the VM */
	struct converge conv;
	int fd;
	uint64_t start_ns, stop_ns;
	uint64_t tp_ns, tp_bytes;	/* pass 1's live throughput window */
	struct mig_stream out;
	struct ram_sender rs;
	void (*done)(void *opaque, enum mig_state st);
	void *opaque;
	struct mfd_send *mfd;		/* parallel channels (p.channels > 0) */
	struct mig_keepalive ka;	/* from p: a silent peer is gone after */
	uint32_t fault_pass;		/* last pass a fault point was checked in */
	/* post-copy */
	atomic_bool pc_request;		/* switch at the end of this pass */
	bool pc_phase;			/* destination runs, we push pages */
	struct pc_source pc;
	/* post-copy recovery */
	uint64_t pcid;			/* the destination's id (READY) */
	pthread_cond_t recover_cond;	/* with lock: wakes a paused thread */
	int recover_fd;			/* a recovered connection, for the thread */
	bool abandon, abandon_resume;	/* operator gave the destination up */
};

void mig_params_init(struct mig_params *p)
{
	memset(p, 0, sizeof(*p));
	p->downtime_ms = MIG_DEFAULT_DOWNTIME_MS;
	p->max_passes = DEFAULT_MAX_PASSES;
	p->handover_timeout_ms = DEFAULT_HANDOVER_MS;
	p->auto_converge = MIG_AC_AUTO;
	p->throttle_initial = 20;		/* QEMU's defaults */
	p->throttle_increment = 10;
	p->throttle_max = 99;
	p->completion_timeout_per_gib = 150;	/* upstream KubeVirt's */
	p->progress_timeout_s = 150;
	p->timeout_action = MIG_TA_ABORT;
	p->xbzrle_cache_bytes = 64ULL << 20;	/* QEMU's xbzrle-cache-size */
	p->channels = MIG_DEFAULT_CHANNELS;
	p->keepalive_interval_s = MIG_KEEPALIVE_INTERVAL_S;
	p->keepalive_count = MIG_KEEPALIVE_COUNT;
	str_copy(p->strategy, sizeof(p->strategy), "auto");
	p->downtime_steps = 4;
	p->probe_ms = 400;
}

const char *mig_state_name(enum mig_state s)
{
	static const char *const names[] = {
		[MIG_STATE_NONE] = "none", [MIG_STATE_SETUP] = "setup",
		[MIG_STATE_ACTIVE] = "active", [MIG_STATE_STOP_COPY] = "stop-copy",
		[MIG_STATE_HANDOVER] = "handover", [MIG_STATE_COMPLETED] = "completed",
		[MIG_STATE_FAILED] = "failed", [MIG_STATE_CANCELLED] = "cancelled",
		[MIG_STATE_UNCONFIRMED] = "unconfirmed",
		[MIG_STATE_POSTCOPY_ACTIVE] = "postcopy-active",
		[MIG_STATE_POSTCOPY_PAUSED] = "postcopy-paused",
		[MIG_STATE_POSTCOPY_RECOVER] = "postcopy-recover",
		[MIG_STATE_POSTCOPY_FAILED] = "postcopy-failed",
	};
	return s < ARRAY_SIZE(names) && names[s] ? names[s] : "invalid";
}

bool mig_state_is_final(enum mig_state s)
{
	return s == MIG_STATE_COMPLETED || s == MIG_STATE_FAILED ||
	       s == MIG_STATE_CANCELLED || s == MIG_STATE_UNCONFIRMED ||
	       s == MIG_STATE_POSTCOPY_FAILED;
}

static void set_state(struct mig_source *m, enum mig_state s)
{
	pthread_mutex_lock(&m->lock);
	m->st.state = s;
	pthread_mutex_unlock(&m->lock);
	log_info("mig", "source: %s", mig_state_name(s));
}

/*
 * Mid-pass (under m->lock): what is left of this pass; in pass 1, before any
 * pass was measured, also the rate of the last 250 ms and a progress that
 * follows the scan (later passes show the last pass's measurement).
 */
#define LIVE_WINDOW_NS	(250 * 1000000ULL)
#define LIVE_MIN_BYTES	(4ULL << 20)

static void update_pass_progress(struct mig_source *m)
{
	const struct ram_sender *rs = &m->rs;
	uint64_t now = time_now_ns(), left;

	left = rs->pass_todo > rs->pass_done ? rs->pass_todo - rs->pass_done : 0;
	m->st.remaining = left * VM_PAGE_SIZE;
	if (m->st.pass != 1)
		return;
	if (rs->total_pages && m->st.ram_bytes) {
		/* scaled so that pass 1 ends below where the first sync's figure
		 * (100 - dirty / RAM, converge.c) will start: what the guest has
		 * dirtied meanwhile (its working set, or its rate times the time
		 * so far, whichever is more) is not progress yet */
		uint64_t secs_x10 = (now - m->start_ns) / 100000000ULL;
		uint64_t dirtied = MAX(m->conv.wss_est, m->conv.rate_est / 10 * secs_x10);
		uint64_t cap = 99 - MIN(dirtied, m->st.ram_bytes) * 99 / m->st.ram_bytes;
		uint32_t pct = (uint32_t)(rs->pass_done * cap / rs->total_pages);

		if (pct > m->st.progress_pct)
			m->st.progress_pct = pct;
	}
	if (!m->tp_ns) {
		m->tp_ns = now;
		m->tp_bytes = m->st.transferred;
	} else if (now - m->tp_ns >= LIVE_WINDOW_NS) {
		uint64_t bytes = m->st.transferred - m->tp_bytes;

		if (bytes >= LIVE_MIN_BYTES)	/* else too little to mean a rate */
			m->st.throughput = bytes * 1000000000ULL / (now - m->tp_ns);
		m->tp_ns = now;
		m->tp_bytes = m->st.transferred;
	}
}

/* Refresh the counters that come from the RAM sender and the stream. */
static void update_counters(struct mig_source *m)
{
	pthread_mutex_lock(&m->lock);
	m->st.transferred = mig_stream_offset(&m->out) + mfd_send_bytes(m->mfd);
	if (m->mfd)
		m->st.pages_compressed = mfd_send_pages_compressed(m->mfd);
	m->st.pages_normal = m->rs.pages_normal;
	m->st.pages_zero = m->rs.pages_zero;
	m->st.pages_deferred = m->rs.pages_deferred;
	m->st.pages_xbzrle = m->rs.pages_xbzrle;
	m->st.xbzrle_cache_hits = m->rs.xstats.cache_hits;
	m->st.xbzrle_cache_misses = m->rs.xstats.cache_misses;
	m->st.xbzrle_overflows = m->rs.xstats.overflows;
	m->st.xbzrle_bytes_saved = m->rs.xstats.bytes_saved;
	m->st.elapsed_ms = (time_now_ns() - m->start_ns) / 1000000;
	if (m->st.state == MIG_STATE_ACTIVE && m->st.pass)
		update_pass_progress(m);
	pthread_mutex_unlock(&m->lock);
}

static int peer_error(struct mig_source *m, struct err *err);

/* After every batch: publish counters; stop early if the peer gave up. */
static int on_progress(void *opaque, struct err *err)
{
	struct mig_source *m = opaque;

	if (m->st.pass != m->fault_pass) {	/* once per pass, mid-pass */
		m->fault_pass = m->st.pass;
		fault_point(m->st.pass == 1 ? "src-pass1" : "src-passN");
	}
	update_counters(m);
	/* a pass on a slow link can outlast a timeout: check it here too */
	if (m->st.state == MIG_STATE_ACTIVE && !m->forcing && !atomic_load(&m->pc_request) &&
	    converge_timed_out(&m->conv, time_now_ns())) {
		if (m->conv.p.timeout_action == MIG_TA_POSTCOPY && m->p.postcopy) {
			atomic_store(&m->pc_request, true);	/* after this pass */
			return peer_error(m, err);
		}
		if (m->conv.p.timeout_action != MIG_TA_FORCE)
			return err_set(err, -ETIMEDOUT, "%s", m->conv.why);
		m->forcing = true;	/* finish this pass, then stop and copy */
		log_warn("mig", "%s: forcing completion after this pass", m->conv.why);
		pthread_mutex_lock(&m->lock);
		snprintf(m->st.strategy, sizeof(m->st.strategy), "%.100s: forced completion",
			 m->conv.why);
		pthread_mutex_unlock(&m->lock);
	}
	return peer_error(m, err);
}

/* Delta size of pages re-sent through XBZRLE, % of a page (0: none yet). */
static uint32_t source_xbzrle_delta_pct(const struct xbzrle_stats *x)
{
	uint64_t pages = x->pages_encoded + x->pages_unchanged + x->overflows;

	if (!pages)
		return 0;
	return (uint32_t)((x->bytes_encoded + x->overflows * VM_PAGE_SIZE) * 100 /
			  (pages * VM_PAGE_SIZE)) + 1;
}

/* The planner's numbers into the status (under m->lock). */
static void publish_plan(struct mig_source *m)
{
	const struct converge *c = &m->conv;
	const struct planner_prediction *p = &c->plan.pred[c->in_use];

	if (!c->planning || !c->in_use)
		return;
	str_copy(m->st.plan, sizeof(m->st.plan), planner_strategy_name(c->in_use));
	m->st.predicted_total_ms = p->converges ? p->total_ms : 0;
	m->st.predicted_downtime_ms = p->downtime_ms;
	m->st.predicted_wire_bytes = p->wire_bytes;
	m->st.initial_predicted_total_ms = c->first_total_ms;
	m->st.initial_predicted_downtime_ms = c->first_downtime_ms;
	m->st.dirty_rate_smoothed = c->rate_est;
	m->st.wss_estimate = c->wss_est;
	m->st.downtime_limit_ms = c->p.downtime_ms;
	m->st.eta_ms = converge_eta_ms(c, time_now_ns());
}

/*
 * The post-copy hook: the migration allows post-copy (p.postcopy, which
 * also puts the feature in the header). The planner may choose it only when
 * it may also switch by itself (auto_postcopy, or strategy postcopy);
 * with postcopy alone the switch stays the user's (POST /vm/migration/postcopy).
 */
static bool source_postcopy_available(struct mig_source *m)
{
	return m->p.postcopy;
}

/* The planner chose post-copy: 1 = switch now (as want_postcopy()). */
static int source_postcopy_switch(struct mig_source *m, struct err *err)
{
	if (!source_postcopy_available(m))
		return err_set(err, -ENOTSUP, "post-copy is not allowed for this migration");
	pthread_mutex_lock(&m->lock);
	snprintf(m->st.strategy, sizeof(m->st.strategy), "post-copy: %.110s", m->conv.plan.why);
	pthread_mutex_unlock(&m->lock);
	log_info("mig", "switching to post-copy (planner): %s", m->conv.plan.why);
	return 1;
}

/* Strategies the planner may choose for this migration's parameters. */
static unsigned source_plan_available(struct mig_source *m)
{
	enum planner_strategy s = planner_strategy_parse(m->p.strategy[0] ? m->p.strategy : "auto");
	unsigned a;

	if (s != PLAN_AUTO)
		return PLAN_BIT(s);
	a = PLAN_BIT(PLAN_PRECOPY);
	if (m->p.xbzrle)		/* its gain is measured, never guessed */
		a |= PLAN_BIT(PLAN_XBZRLE);
	if (m->p.auto_converge != MIG_AC_OFF)
		a |= PLAN_BIT(PLAN_AUTO_CONVERGE);
	if (source_postcopy_available(m) && m->p.auto_postcopy)
		a |= PLAN_BIT(PLAN_POSTCOPY);
	return a;
}

/* Apply the policy's throttle to the vCPUs (auto-converge). */
static int apply_throttle(struct mig_source *m, struct err *err)
{
	int ret;

	if (m->conv.throttle == m->throttle_applied)
		return 0;
	ret = vm_set_throttle(m->vm, m->conv.throttle, err);
	if (ret)
		return ret;
	m->throttle_applied = m->conv.throttle;
	pthread_mutex_lock(&m->lock);
	m->st.throttle_pct = m->conv.throttle;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/*
 * Plan before pass 1. Without a hint, a short dirty-rate probe (p.probe_ms
 * in 25 ms windows) gives the planner the rate and working set first; a
 * guest that dirtied under 10 MiB/s in a first 10 ms window is quiet, and
 * the probe ends there (an idle guest's migration pays ~10 ms for it). The
 * probe leaves dirty logging on for pass 1.
 */
#define PROBE_WINDOW_MS		25
#define PROBE_QUIET_RATE	(10ULL << 20)

/* At most p.probe_ms, and at most 1/8 of what pass 1 should take (>= 50 ms). */
static uint64_t probe_ms(const struct mig_source *m)
{
	uint64_t bw = m->p.bandwidth ? m->p.bandwidth : ASSUMED_BANDWIDTH;
	uint64_t ms = m->vm->mem.size * 1000 / bw / 8;

	if (ms < 50)
		ms = 50;
	return ms < m->p.probe_ms ? ms : m->p.probe_ms;
}
static int source_plan_start(struct mig_source *m, struct err *err)
{
	struct mig_dirty_rate r = { .rate = m->p.dirty_rate_hint, .wss_bytes = m->p.wss_hint };
	unsigned avail = source_plan_available(m);
	int ret;

	if (!r.rate && m->p.probe_ms) {
		struct mig_dirty_opts o = { .total_ms = probe_ms(m), .window_ms = PROBE_WINDOW_MS,
					    .quiet_rate = PROBE_QUIET_RATE, .keep_logging = true };

		ret = mig_dirty_rate_measure(m->vm, &o, &m->cancel, &r, err);
		if (ret)
			return ret;
		log_info("mig", "probe: dirty rate %llu MiB/s, working set %llu MiB",
			 (unsigned long long)(r.rate >> 20), (unsigned long long)(r.wss_bytes >> 20));
	}
	pthread_mutex_lock(&m->lock);
	/* pass 1 skips what the host never backed: plan with what it holds */
	m->conv.touched_bytes = ram_resident_bytes(&m->rs);
	converge_plan_start(&m->conv, avail, r.rate, r.wss_bytes,
			    m->p.bandwidth ? m->p.bandwidth : ASSUMED_BANDWIDTH);
	str_copy(m->st.strategy, sizeof(m->st.strategy), m->conv.why);
	publish_plan(m);
	pthread_mutex_unlock(&m->lock);
	return apply_throttle(m, err);
}

/*
 * After a sync: measure, predict, and let the policy (converge.c) decide
 * whether to stop, go on (perhaps throttled), or act on a timeout.
 */
static enum converge_verdict plan_after_sync(struct mig_source *m, uint32_t pass,
					     uint64_t dirty_pages, uint64_t prev_pages,
					     uint64_t pass_ns, uint64_t pass_send_bytes,
					     uint64_t pass_send_ns)
{
	struct converge_pass cp = { .pass = pass, .now_ns = time_now_ns() };
	enum converge_verdict v;
	uint64_t bw;

	pthread_mutex_lock(&m->lock);
	if (pass_send_bytes >= (4ULL << 20) && pass_send_ns)
		m->st.throughput = pass_send_bytes * 1000000000ULL / pass_send_ns;
	bw = m->st.throughput ? m->st.throughput : ASSUMED_BANDWIDTH;
	if (m->p.bandwidth && m->p.bandwidth < bw)
		bw = m->p.bandwidth;
	cp.dirty_bytes = dirty_pages * VM_PAGE_SIZE;
	cp.prev_dirty_bytes = prev_pages * VM_PAGE_SIZE;
	cp.sent_bytes = pass_send_bytes;
	cp.bandwidth = bw;
	cp.dirty_rate = pass_ns ? cp.dirty_bytes * 1000000000ULL / pass_ns : 0;
	cp.expected_downtime_ms = cp.dirty_bytes * 1000 / bw;
	cp.total_sent_bytes = mig_stream_offset(&m->out);
	cp.xbzrle_delta_pct = source_xbzrle_delta_pct(&m->rs.xstats);
	v = converge_after_pass(&m->conv, &cp);
	m->st.dirty_rate = cp.dirty_rate;
	m->st.remaining = cp.dirty_bytes;
	m->st.expected_downtime_ms = cp.expected_downtime_ms;
	m->st.throughput = bw;		/* what the link carries, cap included */
	/* the time to drain the rest at the net rate; unknown when not shrinking */
	m->st.eta_ms = bw > cp.dirty_rate + cp.dirty_rate / 8 ?
		       cp.dirty_bytes * 1000 / (bw - cp.dirty_rate) : 0;
	m->st.progress_pct = MAX(m->st.progress_pct, m->conv.progress_pct);
	m->st.throttle_pct = m->conv.throttle;
	if (!m->forcing)
		str_copy(m->st.strategy, sizeof(m->st.strategy), m->conv.why);
	publish_plan(m);
	pthread_mutex_unlock(&m->lock);
	return v;
}


/*
 * A destination that fails says why (ERROR) before closing: read it.
 * Waits up to timeout_ms for it; 0 if the peer said nothing.
 */
static int peer_error_wait(struct mig_source *m, int timeout_ms, struct err *err)
{
	struct pollfd p = { .fd = m->fd, .events = POLLIN };
	char msg[MIG_CTL_MSG_MAX];
	uint16_t type;

	if (poll(&p, 1, timeout_ms) <= 0)
		return 0;
	struct err lost = { 0 };
	int ret = mig_ctl_recv(m->fd, 200, &type, msg, sizeof(msg), &lost);

	if (ret == 0 && type == MIG_CTL_ERROR)
		return err_set(err, -EPROTO, "destination: %s", msg);
	if (ret && ret != -ECONNRESET)	/* e.g. keepalive: ETIMEDOUT */
		return err_set(err, ret, "destination unreachable, %s", lost.msg);
	return err_set(err, -ECONNRESET, "destination closed the connection");
}

static int peer_error(struct mig_source *m, struct err *err)
{
	return peer_error_wait(m, 0, err);
}

static int send_setup(struct mig_source *m, struct err *err)
{
	struct mig_header h;
	char *cfg = vm_config_to_json(m->vm);
	int ret;

	if (!cfg)
		return err_set(err, -ENOMEM, "cannot encode the VM configuration");
	mig_header_init(&h, VM_PAGE_SIZE);
	if (m->p.xbzrle)
		h.features |= MIG_FEAT_XBZRLE;
	if (m->mfd)
		h.features |= MIG_FEAT_MULTIFD;
	if (m->p.postcopy)
		h.features |= MIG_FEAT_POSTCOPY;
	mig_stream_put_header(&m->out, &h);
	mig_stream_put_producer(&m->out, "tern-vmm " TERN_VERSION);
	mig_stream_put_config(&m->out, cfg, strlen(cfg));
	mig_stream_put_ram_blocks(&m->out, m->rs.blocks, m->rs.nblocks);
	if (m->mfd)
		mfd_send_announce(m->mfd, &m->out);
	free(cfg);
	ret = mig_stream_flush(&m->out);
	return ret ? mig_stream_get_err(&m->out, err) : 0;
}

/*
 * End a pass and wait until the destination has processed all of it
 * (ACK). Nothing is then in flight: the next sync sees every page the
 * guest dirtied meanwhile, the throughput measured is end to end, and a
 * stop-and-copy starts with an empty pipe, so its downtime is only the
 * last dirty pages and the device state.
 */
static int end_pass(struct mig_source *m, uint32_t pass, struct err *err)
{
	char msg[MIG_CTL_MSG_MAX], want[24];
	uint16_t type;
	int ret;

	if (m->mfd && mfd_send_sync(m->mfd, &m->out, err))
		return err->code;
	mig_stream_put_iter_end(&m->out, pass);
	if (mig_stream_flush(&m->out))
		return mig_stream_get_err(&m->out, err);
	update_counters(m);
	ret = mig_ctl_recv(m->fd, mig_keepalive_timeout_ms(&m->ka), &type, msg, sizeof(msg), err);
	if (ret)
		return ret;
	if (type == MIG_CTL_ERROR)
		return err_set(err, -EPROTO, "destination: %s", msg);
	snprintf(want, sizeof(want), "%u", pass);
	if (type != MIG_CTL_ACK || strcmp(msg, want))
		return err_set(err, -EPROTO, "expected ACK %s, got %s %s", want,
			       mig_ctl_name(type), msg);
	return 0;
}

/* A timeout passed: abort (the VM stays here) or force the end now. */
static int timeout_action(struct mig_source *m, struct err *err)
{
	if (m->conv.p.timeout_action == MIG_TA_FORCE) {
		log_warn("mig", "%s: forcing completion (the guest pauses until done)", m->conv.why);
		pthread_mutex_lock(&m->lock);
		snprintf(m->st.strategy, sizeof(m->st.strategy), "%.100s: forced completion", m->conv.why);
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	return err_set(err, -ETIMEDOUT, "%s", m->conv.why);
}

/* Switch to post-copy now? (asked for, by policy, or as the timeout action) */
static bool want_postcopy(struct mig_source *m, enum converge_verdict v)
{
	const char *why = NULL;

	if (!m->p.postcopy)
		return false;
	if (atomic_load(&m->pc_request))
		why = m->st.state == MIG_STATE_ACTIVE && converge_timed_out(&m->conv, time_now_ns()) ?
		      m->conv.why : "switch requested";
	else if (v == CONVERGE_POSTCOPY)
		why = m->conv.why;
	else if (v == CONVERGE_TIMEOUT && m->conv.p.timeout_action == MIG_TA_POSTCOPY)
		why = m->conv.why;
	if (!why)
		return false;
	pthread_mutex_lock(&m->lock);
	snprintf(m->st.strategy, sizeof(m->st.strategy), "post-copy: %.110s", why);
	pthread_mutex_unlock(&m->lock);
	log_info("mig", "switching to post-copy: %s", why);
	return true;
}

static int precopy(struct mig_source *m, struct err *err)
{
	uint64_t prev_pages = m->rs.total_pages;
	uint32_t pass = 1;
	int ret;

	for (;;) {
		uint64_t t0 = time_now_ns(), b0 = m->rs.send_bytes, n0 = m->rs.send_ns, t1;
		enum converge_verdict v;
		int64_t dirty;

		pthread_mutex_lock(&m->lock);
		m->st.pass = pass;
		pthread_mutex_unlock(&m->lock);
		ret = pass == 1 ? ram_send_first_pass(&m->rs, err) :
				  ram_send_dirty(&m->rs, true, err);
		t1 = time_now_ns();
		if (!ret)
			ret = end_pass(m, pass, err);
		if (ret)
			return ret;
		/* the wait for the ACK is link time too (draining the pipe) */
		m->rs.send_ns += time_now_ns() - t1;
		dirty = ram_sync(&m->rs, err);
		if (dirty < 0)
			return (int)dirty;
		v = plan_after_sync(m, pass, dirty, prev_pages, time_now_ns() - t0,
				    m->rs.send_bytes - b0, m->rs.send_ns - n0);
		log_debug("mig", "t+%.1f ms: pass %u done: %llu MiB in %.1f ms, %lld pages dirty",
			  (double)(time_now_ns() - m->start_ns) / 1e6, pass,
			  (unsigned long long)((m->rs.send_bytes - b0) >> 20),
			  (double)(time_now_ns() - t0) / 1e6, (long long)dirty);
		if (v == CONVERGE_STOP_COPY || m->forcing)
			return 0;
		if (want_postcopy(m, v))
			return 1;
		if (v == CONVERGE_TIMEOUT)
			return timeout_action(m, err);
		if (m->conv.in_use == PLAN_POSTCOPY)
			return source_postcopy_switch(m, err);
		ret = apply_throttle(m, err);
		if (ret)
			return ret;
		if (++pass > m->p.max_passes)
			return err_set(err, -ETIMEDOUT,
				       "did not converge in %u passes (dirty rate %llu MiB/s)",
				       m->p.max_passes,
				       (unsigned long long)(m->st.dirty_rate >> 20));
		prev_pages = dirty;
	}
}

/* Enter stop-and-copy: note when, and pause the VM unless it is paused already. */
static int stop_copy_pause(struct mig_source *m, struct err *err)
{
	struct err perr = { 0 };
	int ret;

	set_state(m, MIG_STATE_STOP_COPY);
	m->stop_ns = time_now_ns();
	ret = vm_pause(m->vm, &perr);
	if (ret && ret != -EALREADY)
		return err_set(err, ret, "cannot pause the VM: %s", perr.msg);
	m->paused_by_us = ret == 0;
	return 0;
}

static int stop_and_copy(struct mig_source *m, struct err *err)
{
	uint64_t t_paused, t_ram, t_state;
	int64_t dirty;
	int ret;

	ret = stop_copy_pause(m, err);
	if (ret)
		return ret;
	fault_point("src-stop-copy");
	t_paused = time_now_ns();
	dirty = ram_sync(&m->rs, err);
	if (dirty < 0)
		return (int)dirty;
	ret = ram_send_dirty(&m->rs, false, err);
	if (!ret && m->mfd)
		ret = mfd_send_sync(m->mfd, &m->out, err);
	t_ram = time_now_ns();
	fault_point("src-device-state");
	if (!ret)
		ret = vm_state_save(m->vm, &m->out, err);
	if (ret)
		return ret;
	mig_stream_put_eof(&m->out);
	if (mig_stream_flush(&m->out))
		return mig_stream_get_err(&m->out, err);
	t_state = time_now_ns();
	update_counters(m);
	log_info("mig", "stop-copy: pause %.1f ms, %lld dirty pages %.1f ms, device state %.1f ms",
		 (t_paused - m->stop_ns) / 1e6, (long long)dirty, (t_ram - t_paused) / 1e6,
		 (t_state - t_ram) / 1e6);
	return 0;
}

/* The destination hung up or failed (FIN, RST, ERROR) while we waited. */
static bool peer_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) > 0;
}

static int handover(struct mig_source *m, struct err *err)
{
	char msg[MIG_CTL_MSG_MAX];
	uint16_t type;
	int ret;

	set_state(m, MIG_STATE_HANDOVER);
	fault_point("src-before-ready");
	ret = mig_ctl_recv(m->fd, m->p.handover_timeout_ms, &type, msg, sizeof(msg), err);
	if (ret)
		return ret;
	if (type == MIG_CTL_ERROR)
		return err_set(err, -EPROTO, "destination: %s", msg);
	if (type != MIG_CTL_READY)
		return err_set(err, -EPROTO, "expected READY, got %s", mig_ctl_name(type));
	if (pc_id_parse(msg, &m->pcid))
		m->pcid = 0;		/* post-copy without recovery */
	uint64_t t_ready = time_now_ns();

	fault_point("src-after-ready");
	/* a stall here (stopped, starved) may have outlasted the peer's wait */
	if (peer_gone(m->fd))
		return peer_error_wait(m, 0, err);	/* ERROR's reason, or "closed" */
	pthread_mutex_lock(&m->lock);
	if (atomic_load(&m->cancel)) {
		pthread_mutex_unlock(&m->lock);
		return err_set(err, -ECANCELED, "migration cancelled");
	}
	m->committed = true;		/* the point of no return */
	pthread_mutex_unlock(&m->lock);
	vm_mark_handed_over(m->vm);	/* before GO leaves: never resume here */
	ret = mig_ctl_send(m->fd, MIG_CTL_GO, NULL);
	if (!ret)
		fault_point("src-after-go");
	if (!ret)
		ret = mig_ctl_recv(m->fd, mig_keepalive_timeout_ms(&m->ka), &type, msg,
				   sizeof(msg), err);
	else
		err_set(err, ret, "sending GO: %s", strerror(-ret));
	if (!ret && type != MIG_CTL_RUNNING)
		ret = err_set(err, -EPROTO, "expected RUNNING, got %s", mig_ctl_name(type));
	if (ret)
		return ret;
	fault_point("src-after-running");
	pthread_mutex_lock(&m->lock);
	m->st.downtime_us = (time_now_ns() - m->stop_ns) / 1000;
	m->st.downtime_ms = m->st.downtime_us / 1000;	/* whole ms, as QEMU's */
	pthread_mutex_unlock(&m->lock);
	log_info("mig", "handover: READY after %.1f ms, RUNNING after %.1f ms (from pause)",
		 (t_ready - m->stop_ns) / 1e6, (time_now_ns() - m->stop_ns) / 1e6);
	return 0;
}

/* Publish the post-copy counters (between batches). */
static void pc_progress(void *opaque)
{
	struct mig_source *m = opaque;

	update_counters(m);
	pthread_mutex_lock(&m->lock);
	m->st.postcopy_requests = m->pc.requests;
	m->st.postcopy_bg_pages = m->pc.bg_pages;
	m->st.postcopy_pages_left = m->pc.left;
	m->st.remaining = m->pc.left * VM_PAGE_SIZE;
	/* the guest runs there now: nothing is dirtied here, no pause ahead */
	m->st.dirty_rate = 0;
	m->st.expected_downtime_ms = 0;
	m->st.eta_ms = m->st.throughput ? m->st.remaining * 1000 / m->st.throughput : 0;
	if (m->st.ram_bytes)
		m->st.progress_pct = (uint32_t)MAX((uint64_t)m->st.progress_pct,
			99 - MIN(99, m->st.remaining * 100 / m->st.ram_bytes));
	m->st.postcopy_faults = m->pc.report.faults;
	m->st.postcopy_fault_avg_us = m->pc.report.lat_avg_us;
	m->st.postcopy_fault_max_us = m->pc.report.lat_max_us;
	m->st.postcopy_fault_p50_us = m->pc.report.lat_p50_us;
	pthread_mutex_unlock(&m->lock);
}

/*
 * The connection broke in post-copy: keep the frozen copy, wait until
 * mig_source_recover() hands us a new connection (it already read the
 * destination's bitmap of missing pages into rs) or the operator gives
 * the destination up. Then restart the stream on it.
 */
static int pc_pause(struct mig_source *m, struct err *err)
{
	struct mig_header h;
	int fd;

	log_warn("mig", "post-copy paused: %s; the VM stays paused here until "
		 "`tern migrate-recover` (or migrate-abandon)", err->msg);
	pthread_mutex_lock(&m->lock);
	close(m->fd);
	m->fd = -1;
	m->st.state = MIG_STATE_POSTCOPY_PAUSED;
	str_copy(m->st.error, sizeof(m->st.error), err->msg);
	while (m->recover_fd < 0 && !m->abandon)
		pthread_cond_wait(&m->recover_cond, &m->lock);
	fd = m->recover_fd;
	m->recover_fd = -1;
	if (!m->abandon)
		m->fd = fd;	/* mig_source_recover() made the state postcopy-active */
	pthread_mutex_unlock(&m->lock);
	err_clear(err);
	if (m->abandon)
		return err_set(err, -ECANCELED, "post-copy abandoned by the operator");
	log_info("mig", "source: postcopy-active (recovered)");
	mig_stream_fini(&m->out);
	if (mig_stream_init_fd_writer(&m->out, fd, MIG_STREAM_BUFSIZE))
		return err_set(err, -ENOMEM, "out of memory");
	mig_stream_set_timeout(&m->out, mig_keepalive_stream_timeout_ms(&m->ka));
	mig_header_init(&h, VM_PAGE_SIZE);
	h.features |= MIG_FEAT_POSTCOPY;
	mig_stream_put_header(&m->out, &h);
	mig_stream_put_ram_blocks(&m->out, m->rs.blocks, m->rs.nblocks);
	pc_source_resume(&m->pc, fd);
	return mig_stream_flush(&m->out) ? mig_stream_get_err(&m->out, err) : 0;
}

/*
 * Post-copy: pause, send what the destination lacks (bitmap) and the
 * device state, hand over as usual, then push the missing pages.
 */
static int postcopy(struct mig_source *m, struct err *err)
{
	int64_t dirty;
	int ret;

	/*
	 * The pages the last pass left dirty are stale on the destination:
	 * it drops them now, while the guest still runs here, and acknowledges
	 * (an extra RAM_ITER_END) once done. After the pause the second discard
	 * (a superset) costs it only the last few pages.
	 */
	ret = pc_source_put_discard(&m->rs, &m->out, err);
	if (!ret)
		ret = end_pass(m, m->st.pass + 1, err);
	if (!ret)
		ret = stop_copy_pause(m, err);
	if (ret)
		return ret;
	dirty = ram_sync(&m->rs, err);
	if (dirty < 0)
		return (int)dirty;
	ret = pc_source_put_discard(&m->rs, &m->out, err);
	fault_point("src-pc-discard");
	if (!ret)
		ret = vm_state_save(m->vm, &m->out, err);
	if (ret)
		return ret;
	fault_point("src-pc-device-state");
	mig_stream_put_pc_listen(&m->out);
	if (mig_stream_flush(&m->out))
		return mig_stream_get_err(&m->out, err);
	fault_point("src-pc-listen");
	log_info("mig", "post-copy: %lld pages to fetch after the switch", (long long)dirty);
	ret = handover(m, err);
	/* GO sent but RUNNING lost: the destination may run; recoverable */
	if (ret && !(m->committed && m->pcid))
		return ret;
	m->pc_phase = true;
	set_state(m, MIG_STATE_POSTCOPY_ACTIVE);
	pc_source_init(&m->pc, &m->rs, &m->out, m->fd, m->p.bandwidth);
	m->pc.progress = pc_progress;
	m->pc.opaque = m;
	m->pc.timeout_ms = mig_keepalive_timeout_ms(&m->ka);
	if (!ret)
		ret = pc_source_run(&m->pc, err);
	while (ret && m->pcid && !m->pc.dest_error && !m->abandon) {
		ret = pc_pause(m, err);
		if (!ret)
			ret = pc_source_run(&m->pc, err);
	}
	pc_progress(m);
	return ret;
}

/* TERN_LOG=debug: where the time of a migration went, phase by phase. */
static void phase(const struct mig_source *m, const char *what)
{
	log_debug("mig", "t+%.1f ms: %s", (double)(time_now_ns() - m->start_ns) / 1e6, what);
}

static int source_run(struct mig_source *m, struct err *err)
{
	int ret, fd = mig_tcp_connect(m->uri, err);

	if (fd >= 0) {
		/* TCP options go on the TCP socket, before TLS wraps it */
		mig_keepalive_tune(fd, &m->ka);
		fd = mig_secure_connect(fd, &m->p, m->uri, err);
	}
	if (fd < 0)
		return fd;
	mig_keepalive_tune(fd, &m->ka);	/* TLS: the timeouts on its socketpair */
	phase(m, "connected");
	pthread_mutex_lock(&m->lock);
	m->fd = fd;
	pthread_mutex_unlock(&m->lock);
	fault_point("src-setup");
	if (atomic_load(&m->cancel))
		return err_set(err, -ECANCELED, "migration cancelled");
	ret = mig_stream_init_fd_writer(&m->out, fd, MIG_STREAM_BUFSIZE);
	if (ret)
		return err_set(err, ret, "out of memory");
	mig_stream_set_timeout(&m->out, mig_keepalive_stream_timeout_ms(&m->ka));
	ret = ram_sender_init(&m->rs, m->vm, &m->out, &m->cancel, m->p.bandwidth, err);
	m->rs.progress = on_progress;
	m->rs.progress_opaque = m;
	m->rs.defer_hot = !m->p.no_defer_hot;
	if (!ret && m->p.xbzrle)
		ret = ram_sender_enable_xbzrle(&m->rs, m->p.xbzrle_cache_bytes, err);
	if (!ret && m->p.channels) {
		m->mfd = mfd_send_new(m->p.channels, m->p.compress, m->p.compress_level,
				      VM_PAGE_SIZE, &m->cancel, err);
		ret = m->mfd ? 0 : err->code;
		m->rs.mfd = m->mfd;
	}
	if (!ret)
		ret = send_setup(m, err);
	if (!ret && m->mfd)
		ret = mfd_send_connect(m->mfd, m->uri, &m->p, &m->ka, err);
	if (ret)
		return ret;
	phase(m, "set up (configuration sent, channels connected)");
	pthread_mutex_lock(&m->lock);
	converge_init(&m->conv, &m->p, m->vm->mem.size, m->start_ns);
	pthread_mutex_unlock(&m->lock);
	ret = source_plan_start(m, err);
	if (!ret)	/* on already after a probe: then KVM has nothing to change */
		ret = vm_dirty_log_start(m->vm, err);
	if (ret)
		return ret;
	phase(m, "planned, dirty logging on");
	set_state(m, MIG_STATE_ACTIVE);
	ret = precopy(m, err);
	if (ret == 1)
		return postcopy(m, err);
	if (!ret)
		ret = stop_and_copy(m, err);
	if (!ret)
		ret = handover(m, err);
	if (!ret)
		phase(m, "handed over");
	return ret;
}

/* Decide the final state; before GO the VM runs here again. */
static enum mig_state source_finish(struct mig_source *m, int ret, struct err *err)
{
	enum mig_state st;

	if (!ret) {
		st = MIG_STATE_COMPLETED;
		vm_set_throttle(m->vm, 0, NULL);
		pthread_mutex_lock(&m->lock);
		m->st.progress_pct = 100;
		m->st.throttle_pct = 0;
		pthread_mutex_unlock(&m->lock);
	} else if (m->pc_phase && m->abandon_resume) {
		st = MIG_STATE_POSTCOPY_FAILED;
		vm_dirty_log_stop(m->vm);
		vm_take_back(m->vm);
		vm_resume(m->vm, NULL);
		log_warn("mig", "post-copy abandoned: the operator resumed the VM here "
			 "(the destination's copy must be dead)");
	} else if (m->pc_phase) {
		st = MIG_STATE_POSTCOPY_FAILED;
		log_err("mig", "post-copy failed (%s): the destination cannot run without us and "
			"we never resume; the VM stays paused here with all its memory", err->msg);
	} else if (m->committed) {
		st = MIG_STATE_UNCONFIRMED;
		log_err("mig", "handover unconfirmed (%s): the VM stays paused here and is never "
			"resumed; check whether the destination runs it", err->msg);
	} else {
		vm_dirty_log_stop(m->vm);
		vm_set_throttle(m->vm, 0, NULL);
		if (m->paused_by_us)
			vm_resume(m->vm, NULL);
		st = atomic_load(&m->cancel) ? MIG_STATE_CANCELLED : MIG_STATE_FAILED;
		log_warn("mig", "migration %s: %s; the VM keeps running here",
			 mig_state_name(st), err->msg);
	}
	pthread_mutex_lock(&m->lock);
	m->st.state = st;
	if (ret)
		str_copy(m->st.error, sizeof(m->st.error), err->msg);
	m->st.elapsed_ms = (time_now_ns() - m->start_ns) / 1000000;
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	pthread_mutex_unlock(&m->lock);
	return st;
}

static void *source_thread(void *arg)
{
	struct mig_source *m = arg;
	struct err err = { 0 };
	enum mig_state st;
	int ret;

	pthread_setname_np(pthread_self(), "mig-source");
	ret = source_run(m, &err);
	if (ret && !err.code)
		err_set(&err, ret, "%s", strerror(-ret));
	if (ret && !m->committed && !atomic_load(&m->cancel) && m->fd >= 0 &&
	    !strstr(err.msg, "destination")) {
		struct err perr = { 0 };

		/* a destination that refused the stream says why: prefer that */
		if (peer_error_wait(m, 1000, &perr) == -EPROTO) {
			err_clear(&err);
			err_set(&err, perr.code, "%s", perr.msg);
		}
	}
	if (ret && atomic_load(&m->cancel) && !m->committed) {
		err_clear(&err);
		err_set(&err, -ECANCELED, "migration cancelled");
	}
	update_counters(m);
	mfd_send_free(m->mfd);		/* stops the channels before any resume */
	m->mfd = NULL;
	st = source_finish(m, ret, &err);
	mig_stream_fini(&m->out);
	ram_sender_fini(&m->rs);
	if (m->done)
		m->done(m->opaque, st);
	return NULL;
}

/* An explicit strategy sets the mechanisms it names. */
static void source_apply_strategy(struct mig_params *p)
{
	switch (planner_strategy_parse(p->strategy[0] ? p->strategy : "auto")) {
	case PLAN_PRECOPY:
		p->auto_converge = MIG_AC_OFF;
		p->xbzrle = false;
		break;
	case PLAN_XBZRLE:
		p->xbzrle = true;
		break;
	case PLAN_AUTO_CONVERGE:
		if (p->auto_converge == MIG_AC_OFF)
			p->auto_converge = MIG_AC_ON;
		break;
	case PLAN_POSTCOPY:
		p->postcopy = true;
		p->auto_converge = MIG_AC_OFF;
		break;
	default:
		break;
	}
}

struct mig_source *mig_source_start(struct vm *vm, const char *uri,
				    const struct mig_params *p,
				    void (*done)(void *opaque, enum mig_state st),
				    void *opaque, struct err *err)
{
	struct mig_source *m;
	char host[256], port[16];
	int ret;

	if (mig_uri_parse(uri, host, sizeof(host), port, sizeof(port), err))
		return NULL;
	m = calloc(1, sizeof(*m));
	if (!m) {
		err_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	m->vm = vm;
	m->p = *p;
	if (!m->p.max_passes)
		m->p.max_passes = DEFAULT_MAX_PASSES;
	if (!m->p.handover_timeout_ms)
		m->p.handover_timeout_ms = DEFAULT_HANDOVER_MS;
	mig_keepalive_default(&m->ka);
	if (p->keepalive_interval_s)
		m->ka.interval_s = p->keepalive_interval_s;
	if (p->keepalive_count)
		m->ka.count = p->keepalive_count;
	m->fd = -1;
	m->recover_fd = -1;
	pthread_cond_init(&m->recover_cond, NULL);
	m->done = done;
	m->opaque = opaque;
	str_copy(m->uri, sizeof(m->uri), uri);
	pthread_mutex_init(&m->lock, NULL);
	m->start_ns = time_now_ns();
	m->st.state = MIG_STATE_SETUP;
	m->st.ram_bytes = vm->mem.size;
	m->st.downtime_limit_ms = m->p.downtime_ms;
	m->st.bandwidth_limit = m->p.bandwidth;
	m->st.downtime_limit_initial_ms = m->p.downtime_ms;
	source_apply_strategy(&m->p);
	if (m->p.postcopy)
		m->p.channels = 0;	/* post-copy keeps pages on the main stream */
	m->st.channels = m->p.channels;
	ret = pthread_create(&m->thread, NULL, source_thread, m);
	if (ret) {
		err_set(err, -ret, "cannot start the migration thread: %s", strerror(ret));
		pthread_mutex_destroy(&m->lock);
		free(m);
		return NULL;
	}
	m->thread_started = true;
	return m;
}

void mig_source_stats(struct mig_source *m, struct mig_stats *st)
{
	pthread_mutex_lock(&m->lock);
	*st = m->st;
	if (!mig_state_is_final(st->state))
		st->elapsed_ms = (time_now_ns() - m->start_ns) / 1000000;
	if (st->state == MIG_STATE_ACTIVE && m->conv.planning)
		st->eta_ms = converge_eta_ms(&m->conv, time_now_ns());
	pthread_mutex_unlock(&m->lock);
}

int mig_source_cancel(struct mig_source *m, struct err *err)
{
	int ret = 0;

	pthread_mutex_lock(&m->lock);
	if (mig_state_is_final(m->st.state))
		ret = err_set(err, -EALREADY, "migration already %s", mig_state_name(m->st.state));
	else if (m->committed)
		ret = err_set(err, -EBUSY, "too late to cancel: ownership already passed to the destination");
	else {
		atomic_store(&m->cancel, true);
		if (m->fd >= 0)
			shutdown(m->fd, SHUT_RDWR);	/* unblock any read/write */
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int mig_source_postcopy(struct mig_source *m, struct err *err)
{
	int ret = 0;

	pthread_mutex_lock(&m->lock);
	if (!m->p.postcopy)
		ret = err_set(err, -EINVAL, "post-copy not allowed for this migration (start it with postcopy)");
	else if (m->st.state != MIG_STATE_SETUP && m->st.state != MIG_STATE_ACTIVE)
		ret = err_set(err, -EALREADY, "migration is %s", mig_state_name(m->st.state));
	else
		atomic_store(&m->pc_request, true);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

void mig_source_free(struct mig_source *m)
{
	if (!m)
		return;
	if (m->thread_started)
		pthread_join(m->thread, NULL);
	pthread_cond_destroy(&m->recover_cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int mig_source_recover(struct mig_source *m, const char *uri, struct err *err)
{
	int fd, ret = 0;

	pthread_mutex_lock(&m->lock);
	if (m->st.state != MIG_STATE_POSTCOPY_PAUSED)
		ret = err_set(err, -EINVAL, "migration is %s, not postcopy-paused",
			      mig_state_name(m->st.state));
	else
		m->st.state = MIG_STATE_POSTCOPY_RECOVER;	/* the thread waits */
	pthread_mutex_unlock(&m->lock);
	if (ret)
		return ret;
	log_info("mig", "source: postcopy-recover to %s", uri && *uri ? uri : m->uri);
	fd = mig_tcp_connect(uri && *uri ? uri : m->uri, err);
	if (fd >= 0) {
		mig_keepalive_tune(fd, &m->ka);
		fd = mig_secure_connect(fd, &m->p, uri && *uri ? uri : m->uri, err);
	}
	if (fd >= 0)
		mig_keepalive_tune(fd, &m->ka);
	ret = fd < 0 ? fd : pc_source_recover_handshake(fd, m->pcid, &m->rs, err);
	if (ret && err)
		err_prefix(err, "recovery failed (the VM stays paused here)");
	pthread_mutex_lock(&m->lock);
	if (ret) {
		if (fd >= 0)
			close(fd);
		m->st.state = MIG_STATE_POSTCOPY_PAUSED;
		if (err)
			str_copy(m->st.error, sizeof(m->st.error), err->msg);
	} else {
		/*
		 * The destination took the new connection and sent its bitmap:
		 * post-copy is active again from here, so a status read right
		 * after this call returns says so (the thread picks fd up next).
		 */
		m->recover_fd = fd;
		m->st.error[0] = '\0';
		m->st.postcopy_recoveries++;
		m->st.state = MIG_STATE_POSTCOPY_ACTIVE;
		pthread_cond_broadcast(&m->recover_cond);
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int mig_source_abandon(struct mig_source *m, bool resume_source, struct err *err)
{
	int ret = 0;

	pthread_mutex_lock(&m->lock);
	if (m->st.state != MIG_STATE_POSTCOPY_PAUSED)
		ret = err_set(err, -EINVAL, "migration is %s, not postcopy-paused",
			      mig_state_name(m->st.state));
	else {
		m->abandon = true;
		m->abandon_resume = resume_source;
		pthread_cond_broadcast(&m->recover_cond);
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}
