/*
 * converge.c - auto-converge, timeouts and progress, as pure decisions.
 *
 * Auto-converge follows QEMU's rule with its defaults: when in two
 * consecutive passes the guest dirtied more than half of what the link
 * carried (so the next pass will not be much smaller), throttle the vCPUs:
 * start at 20 %, add 10 % each time it happens again, at most 99 %.
 * Progress: the share of guest RAM not waiting to be sent, never allowed to
 * go backwards (a pass that finds more dirty data holds the figure).
 */
#include "converge.h"

#include <stdio.h>
#include <string.h>

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

	update_progress(c, m);
	/*
	 * Stop when the rest fits and another pass would not shrink it by a
	 * quarter: a dirty set converges to what the guest writes during one
	 * pass, and more passes past that only cost time.
	 */
	/* ...but a throttled guest suffers every extra pass: stop as soon as it fits */
	if (fits && (m->dirty_bytes == 0 || m->dirty_bytes * 4 >= m->prev_dirty_bytes * 3 ||
		     m->expected_downtime_ms < 2 || c->throttle)) {
		snprintf(c->why, sizeof(c->why), "stop-and-copy: %llu KiB left, about %llu ms",
			 (unsigned long long)(m->dirty_bytes >> 10),
			 (unsigned long long)m->expected_downtime_ms);
		return CONVERGE_STOP_COPY;
	}
	if (converge_timed_out(c, m->now_ns))
		return CONVERGE_TIMEOUT;
	if (!fits && want_postcopy(c, m))
		return CONVERGE_POSTCOPY;
	if (!fits)
		maybe_throttle(c, m);
	if (fits || !c->throttle)
		snprintf(c->why, sizeof(c->why), "pre-copy pass %u: %llu MiB dirty, about %llu ms if stopped now",
			 m->pass + 1, (unsigned long long)(m->dirty_bytes >> 20),
			 (unsigned long long)m->expected_downtime_ms);
	return CONVERGE_CONTINUE;
}
