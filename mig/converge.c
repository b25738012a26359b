/*
 * converge.c - auto-converge, timeouts and progress, as pure decisions.
 *
 * Auto-converge follows QEMU's rule with its defaults: when in two
 * consecutive passes the guest dirtied more than half of what the link
 * carried (so the next pass will not be much smaller), throttle the vCPUs:
 * start at 20 %, add 10 % each time it happens again, at most 99 %.
 * Progress: the share of guest RAM not waiting to be sent, never allowed to
 * go backwards (a pass that finds more dirty data holds the figure).
 *
 * Relaxing downtime (oVirt's policy): with downtime_max_ms above the limit,
 * a pass that did not shrink first raises the limit by one step (of
 * downtime_steps between the two) up to the ceiling; only at the ceiling
 * does the throttle grow.
 *
 * The planner (planner.c) re-plans after every pass with the measured
 * bandwidth, a smoothed dirty rate and the working set seen; when its
 * choice is auto-converge, the throttle it predicts is applied at once
 * instead of being reached step by step. Its ETA is smoothed by
 * planner_eta_smooth() and counts down between passes.
 */
#include "converge.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

#define NS_PER_S 1000000000ULL

void converge_init(struct converge *c, const struct mig_params *p,
		   uint64_t ram_bytes, uint64_t now_ns)
{
	memset(c, 0, sizeof(*c));
	c->p = *p;
	if (!c->p.throttle_initial)
		c->p.throttle_initial = 20;
	if (!c->p.throttle_increment)
		c->p.throttle_increment = 10;
	if (!c->p.throttle_max || c->p.throttle_max > 99)
		c->p.throttle_max = 99;
	if (c->p.auto_converge == MIG_AC_INVALID)
		c->p.auto_converge = MIG_AC_AUTO;
	if (c->p.timeout_action == MIG_TA_INVALID)
		c->p.timeout_action = MIG_TA_ABORT;
	c->ram_bytes = ram_bytes;
	c->start_ns = now_ns;
	c->best_remaining = UINT64_MAX;
	c->best_at_ns = now_ns;
	snprintf(c->why, sizeof(c->why), "pre-copy: first pass");
	c->downtime_initial_ms = c->p.downtime_ms;
	if (c->p.downtime_max_ms > c->p.downtime_ms)
		c->relax_step_ms = (c->p.downtime_max_ms - c->p.downtime_ms +
				    (c->p.downtime_steps ? c->p.downtime_steps : 4) - 1) /
				   (c->p.downtime_steps ? c->p.downtime_steps : 4);
	c->in_use = c->p.xbzrle ? PLAN_XBZRLE :
		    c->p.auto_converge == MIG_AC_OFF ? PLAN_PRECOPY : PLAN_AUTO_CONVERGE;
}

static void plan_input(const struct converge *c, struct planner_input *in, uint64_t bw)
{
	memset(in, 0, sizeof(*in));
	in->ram_bytes = c->ram_bytes;
	in->touched_bytes = c->touched_bytes;
	in->dirty_rate = c->rate_est;
	in->wss_bytes = c->wss_est;
	in->bandwidth = bw;
	in->downtime_ms = c->p.downtime_ms;
	in->timeout_ms = converge_completion_limit_ns(c) / 1000000;
	in->xbzrle_cache_bytes = c->p.xbzrle_cache_bytes;
	in->throttle_max = c->p.throttle_max;
	in->available = c->available;
}

/* Remember the plan's ETA, smoothed against the last one counted down. */
static void plan_eta(struct converge *c, uint64_t now_ns, uint64_t elapsed_ms)
{
	enum planner_strategy s = c->plan.choice ? c->plan.choice : c->plan.fallback;
	uint64_t raw = 0, prev = converge_eta_ms(c, now_ns);

	if (s && c->plan.pred[s].converges && c->plan.pred[s].total_ms > elapsed_ms)
		raw = c->plan.pred[s].total_ms - elapsed_ms;
	c->eta_ms = planner_eta_smooth(prev, c->eta_at_ns ? (now_ns - c->eta_at_ns) / 1000000 : 0,
				       raw);
	c->eta_at_ns = now_ns;
}

uint64_t converge_eta_ms(const struct converge *c, uint64_t now_ns)
{
	uint64_t gone = c->eta_at_ns && now_ns > c->eta_at_ns ? (now_ns - c->eta_at_ns) / 1000000 : 0;

	if (!c->eta_ms)
		return 0;
	return c->eta_ms > gone ? c->eta_ms - gone : 1;
}

static bool plan_throttle(struct converge *c);

void converge_plan_start(struct converge *c, unsigned available, uint64_t dirty_rate,
			 uint64_t wss, uint64_t bandwidth)
{
	struct planner_input in;
	enum planner_strategy s;

	c->planning = true;
	c->available = available;
	c->rate_est = dirty_rate;
	c->wss_est = wss;
	plan_input(c, &in, bandwidth);
	planner_plan(&in, &c->plan);
	s = c->plan.choice ? c->plan.choice : c->plan.fallback;
	if (s)
		c->in_use = s;
	c->first_total_ms = s && c->plan.pred[s].converges ? c->plan.pred[s].total_ms : 0;
	c->first_downtime_ms = s ? c->plan.pred[s].downtime_ms : 0;
	plan_eta(c, c->start_ns, 0);
	str_copy(c->why, sizeof(c->why), c->plan.why);
	/* a throttle the plan needs anyway works best from pass 1 on */
	c->plan_throttle = s == PLAN_AUTO_CONVERGE ? c->plan.pred[s].throttle_pct : 0;
	plan_throttle(c);
}

/*
 * After a pass: update the estimates and plan again. A pass's dirty rate
 * (dirty set / pass time) is only a lower bound when the dirty set filled
 * the working set, so it then never lowers the estimate.
 */
static void replan(struct converge *c, const struct converge_pass *m)
{
	uint64_t sample = m->dirty_rate, elapsed = (m->now_ns - c->start_ns) / 1000000;
	struct planner_input in;
	enum planner_strategy s;

	if (m->pass == 1)
		c->touched_bytes = m->sent_bytes;
	if (c->throttle)
		sample = sample / (100 - c->throttle) * 100;
	if (m->dirty_bytes * 10 >= c->wss_est * 9 && sample < c->rate_est)
		sample = c->rate_est;
	c->rate_est = planner_rate_smooth(c->rate_est, sample);
	if (m->dirty_bytes > c->wss_est)
		c->wss_est = m->dirty_bytes;
	plan_input(c, &in, m->bandwidth);
	in.passes_done = m->pass;
	in.remaining_bytes = m->dirty_bytes;
	in.elapsed_ms = elapsed;
	in.sent_bytes = m->total_sent_bytes;
	in.xbzrle_delta_pct = m->xbzrle_delta_pct;
	planner_plan(&in, &c->plan);
	s = c->plan.choice ? c->plan.choice : c->plan.fallback;
	c->plan_throttle = s == PLAN_AUTO_CONVERGE ? c->plan.pred[s].throttle_pct : 0;
	/* XBZRLE, once on, stays on; so does a throttle */
	if (c->throttle && s != PLAN_XBZRLE)
		s = PLAN_AUTO_CONVERGE;
	if (s && (c->in_use != PLAN_XBZRLE || s != PLAN_PRECOPY))
		c->in_use = s;
	plan_eta(c, m->now_ns, elapsed);
}

/* A stalled pass: raise the downtime limit one step; false at the ceiling. */
static bool relax_downtime(struct converge *c)
{
	if (!c->relax_step_ms || c->p.downtime_ms >= c->p.downtime_max_ms)
		return false;
	c->p.downtime_ms += c->relax_step_ms;
	if (c->p.downtime_ms > c->p.downtime_max_ms)
		c->p.downtime_ms = c->p.downtime_max_ms;
	return true;
}

/* The planner's throttle, applied at once (it never lowers one in force). */
static bool plan_throttle(struct converge *c)
{
	uint32_t t = c->plan_throttle < c->p.throttle_max ? c->plan_throttle : c->p.throttle_max;

	if (!c->planning || c->p.auto_converge == MIG_AC_OFF || t <= c->throttle)
		return false;
	c->throttle = t;
	str_copy(c->why, sizeof(c->why), c->plan.why);
	return true;
}

uint64_t converge_completion_limit_ns(const struct converge *c)
{
	uint64_t gib = (c->ram_bytes + (1ULL << 30) - 1) >> 30;

	if (!c->p.completion_timeout_per_gib)
		return 0;
	return (gib ? gib : 1) * c->p.completion_timeout_per_gib * NS_PER_S;
}

bool converge_timed_out(struct converge *c, uint64_t now_ns)
{
	uint64_t limit = converge_completion_limit_ns(c);

	if (limit && now_ns - c->start_ns > limit) {
		snprintf(c->why, sizeof(c->why), "completion timeout: %llu s for %llu MiB",
			 (unsigned long long)(limit / NS_PER_S),
			 (unsigned long long)(c->ram_bytes >> 20));
		return true;
	}
	if (c->p.progress_timeout_s &&
	    now_ns - c->best_at_ns > c->p.progress_timeout_s * NS_PER_S) {
		snprintf(c->why, sizeof(c->why),
			 "progress timeout: no progress for %u s", c->p.progress_timeout_s);
		return true;
	}
	return false;
}

static void update_progress(struct converge *c, const struct converge_pass *m)
{
	uint64_t left = m->dirty_bytes < c->ram_bytes ? m->dirty_bytes : c->ram_bytes;
	uint32_t pct = c->ram_bytes ? (uint32_t)(100 - left * 100 / c->ram_bytes) : 100;

	if (pct > 99)
		pct = 99;		/* 100 only when completed */
	if (pct > c->progress_pct)
		c->progress_pct = pct;
	if (m->dirty_bytes < c->best_remaining) {
		c->best_remaining = m->dirty_bytes;
		c->best_at_ns = m->now_ns;
	}
}

/* Did this pass leave the next one barely smaller? (QEMU's test) */
static bool pass_was_bad(const struct converge_pass *m)
{
	return m->dirty_bytes * 2 > m->sent_bytes;
}

/*
 * How much to add to a throttle already in force. `on` is QEMU's rule: the
 * configured increment. `auto` (the default) closes half of the remaining
 * gap each time instead (20, 60, 80, 90, 99 with the default increment):
 * a guest that still
 * outruns the link after the first step is far ahead of it, and every pass
 * spent at a throttle too small to matter slows the guest for nothing.
 */
static unsigned throttle_step(const struct converge *c)
{
	unsigned half = (100 - c->throttle) / 2;

	if (c->p.auto_converge == MIG_AC_AUTO && half > c->p.throttle_increment)
		return half;
	return c->p.throttle_increment;
}

static void maybe_throttle(struct converge *c, const struct converge_pass *m)
{
	unsigned needed;

	if (c->p.auto_converge == MIG_AC_OFF || m->pass < 2)
		return;
	c->bad_passes = pass_was_bad(m) ? c->bad_passes + 1 : 0;
	/* two bad passes to start (QEMU's rule); once throttled, auto reacts to one */
	needed = c->throttle && c->p.auto_converge == MIG_AC_AUTO ? 1 : 2;
	if (c->bad_passes < needed || c->throttle >= c->p.throttle_max)
		return;
	c->bad_passes = 0;
	c->throttle = c->throttle ? c->throttle + throttle_step(c) : c->p.throttle_initial;
	if (c->throttle > c->p.throttle_max)
		c->throttle = c->p.throttle_max;
	snprintf(c->why, sizeof(c->why),
		 "auto-converge: guest dirties %llu MiB/s, link carries %llu MiB/s: vCPUs throttled %u%%",
		 (unsigned long long)(m->dirty_rate >> 20),
		 (unsigned long long)(m->bandwidth >> 20), c->throttle);
}

/*
 * auto_postcopy: two passes in a row that leave the next barely smaller
 * (the test auto-converge uses) mean pre-copy is not converging: switch to
 * post-copy instead of throttling the guest.
 */
static bool want_postcopy(struct converge *c, const struct converge_pass *m)
{
	if (!c->p.postcopy || !c->p.auto_postcopy || m->pass < 2)
		return false;
	c->pc_bad_passes = pass_was_bad(m) ? c->pc_bad_passes + 1 : 0;
	if (c->pc_bad_passes < 2)
		return false;
	snprintf(c->why, sizeof(c->why),
		 "post-copy: guest dirties %llu MiB/s, link carries %llu MiB/s: not converging",
		 (unsigned long long)(m->dirty_rate >> 20),
		 (unsigned long long)(m->bandwidth >> 20));
	return true;
}

enum converge_verdict converge_after_pass(struct converge *c,
					  const struct converge_pass *m)
{
	bool fits = m->expected_downtime_ms <= c->p.downtime_ms;
	bool relaxed = false;

	update_progress(c, m);
	if (!fits && m->pass >= 2 && pass_was_bad(m) && (relaxed = relax_downtime(c)))
		fits = m->expected_downtime_ms <= c->p.downtime_ms;
	if (c->planning)
		replan(c, m);		/* with the limit now in force */
	/*
	 * Stop when the rest fits and another pass would not shrink it by a
	 * quarter: a dirty set converges to what the guest writes during one
	 * pass, and more passes past that only cost time. This holds for a
	 * throttled guest too: it dirties little, so each
	 * extra pass is short and shrinks the rest many times over, and the
	 * pause at the end is the stall the guest feels most.
	 */
	if (fits && (m->dirty_bytes == 0 || m->dirty_bytes * 4 >= m->prev_dirty_bytes * 3 ||
		     m->expected_downtime_ms < 2)) {
		snprintf(c->why, sizeof(c->why), "stop-and-copy: %llu KiB left, about %llu ms",
			 (unsigned long long)(m->dirty_bytes >> 10),
			 (unsigned long long)m->expected_downtime_ms);
		return CONVERGE_STOP_COPY;
	}
	if (converge_timed_out(c, m->now_ns))
		return CONVERGE_TIMEOUT;
	if (!fits && want_postcopy(c, m))
		return CONVERGE_POSTCOPY;
	if (relaxed) {
		snprintf(c->why, sizeof(c->why), "relaxing downtime: limit now %u ms (at most %u ms)",
			 c->p.downtime_ms, c->p.downtime_max_ms);
		return CONVERGE_CONTINUE;
	}
	if (!fits && (c->p.downtime_ms >= c->p.downtime_max_ms || !c->relax_step_ms) &&
	    plan_throttle(c))
		return CONVERGE_CONTINUE;
	if (!fits)
		maybe_throttle(c, m);
	if (c->planning && (fits || !c->throttle))
		str_copy(c->why, sizeof(c->why), c->plan.why);
	else if (fits || !c->throttle)
		snprintf(c->why, sizeof(c->why), "pre-copy pass %u: %llu MiB dirty, about %llu ms if stopped now",
			 m->pass + 1, (unsigned long long)(m->dirty_bytes >> 20),
			 (unsigned long long)m->expected_downtime_ms);
	return CONVERGE_CONTINUE;
}
