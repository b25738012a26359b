/*
 * planner.c - predict each strategy's total time, downtime and bytes on
 * the wire by simulating its passes (planner.h has the model), and choose
 * the cheapest that meets the downtime limit and the timeout, preferring
 * strategies that do not slow the guest down.
 */
#include "planner.h"

#include <stdio.h>
#include <string.h>

#define PAGE	4096.0

static const char *const names[PLAN_NR + 1] = {
	[PLAN_PRECOPY] = "precopy", [PLAN_XBZRLE] = "xbzrle",
	[PLAN_AUTO_CONVERGE] = "auto-converge", [PLAN_POSTCOPY] = "postcopy",
	[PLAN_AUTO] = "auto",
};

const char *planner_strategy_name(enum planner_strategy s)
{
	return s > PLAN_INVALID && s <= PLAN_AUTO ? names[s] : "invalid";
}

enum planner_strategy planner_strategy_parse(const char *s)
{
	for (int i = PLAN_PRECOPY; i <= PLAN_AUTO; i++)
		if (!strcmp(s, names[i]))
			return (enum planner_strategy)i;
	return PLAN_INVALID;
}

/* A double of seconds or bytes as a saturating u64. */
static uint64_t to_u64(double v)
{
	if (!(v > 0))
		return 0;
	return v >= 1.8e19 ? UINT64_MAX : (uint64_t)v;
}

/* How a pre-copy flavour moves pages after pass 1. */
struct sim {
	double rate;			/* dirty rate, bytes/s (throttle applied) */
	double link;			/* bytes/s for pass 1 */
	double resend_link;		/* page bytes/s for later passes */
	double resend_wire;		/* wire bytes per page byte re-sent */
};

static double wss(const struct planner_input *in)
{
	return (double)(in->wss_bytes && in->wss_bytes < in->ram_bytes ?
			in->wss_bytes : in->ram_bytes);
}

static double deadline_s(const struct planner_input *in)
{
	return in->timeout_ms ? in->timeout_ms / 1000.0 : 1e18;
}

/* Pre-copy passes from now until the rest fits the downtime limit. */
static void simulate(const struct planner_input *in, const struct sim *s,
		     struct planner_prediction *p)
{
	double w = wss(in), down = in->downtime_ms / 1000.0;
	double t = in->elapsed_ms / 1000.0, wire = (double)in->sent_bytes;
	double d = (double)in->remaining_bytes, link = s->resend_link;
	uint32_t pass = in->passes_done;

	if (!pass) {
		d = (double)(in->touched_bytes ? in->touched_bytes : in->ram_bytes);
		link = s->link;
	}
	for (;;) {
		double dt = d / link, next;

		if (pass && d / s->resend_link <= down) {
			p->converges = true;
			break;
		}
		t += dt;
		wire += pass ? d * s->resend_wire : d;
		next = s->rate * dt < w ? s->rate * dt : w;
		pass++;
		link = s->resend_link;
		/* not shrinking, or past the deadline: it will not converge */
		if ((pass > 1 && next >= d) || t > deadline_s(in) || pass >= PLAN_MAX_PASSES) {
			d = next;
			break;
		}
		d = next;
	}
	/* the stop-and-copy (forced, if it did not converge) */
	p->downtime_ms = to_u64(d / s->resend_link * 1000.0) + PLAN_STATE_MS;
	p->total_ms = p->converges ? to_u64((t + d / s->resend_link) * 1000.0) + PLAN_STATE_MS :
				     to_u64(deadline_s(in) * 1000.0);
	p->wire_bytes = to_u64(wire + d * s->resend_wire);
	p->passes = pass;
}

static void sim_plain(const struct planner_input *in, double throttle, struct sim *s)
{
	s->rate = (double)in->dirty_rate * (1.0 - throttle / 100.0);
	s->link = (double)in->bandwidth;
	s->resend_link = s->link;
	s->resend_wire = 1.0;
}

static void predict_precopy(const struct planner_input *in, struct planner_prediction *p)
{
	struct sim s;

	sim_plain(in, 0, &s);
	simulate(in, &s, p);
}

/*
 * Re-sent pages that hit the cache (the share of the working set it
 * holds) go as deltas; the others whole. Encoding caps the page rate.
 */
static void predict_xbzrle(const struct planner_input *in, struct planner_prediction *p)
{
	double pct = in->xbzrle_delta_pct && in->xbzrle_delta_pct < 100 ?
		     in->xbzrle_delta_pct : 100;
	double hit = (double)in->xbzrle_cache_bytes / wss(in);
	struct sim s;

	if (hit > 1)
		hit = 1;
	sim_plain(in, 0, &s);
	/* the delta's own header costs a little: at least 1 % */
	s.resend_wire = hit * (pct < 1 ? 0.01 : pct / 100.0) + (1 - hit);
	s.resend_link = s.link / s.resend_wire;
	if (s.resend_link > PLAN_XBZRLE_ENCODE_BPS)
		s.resend_link = PLAN_XBZRLE_ENCODE_BPS;
	simulate(in, &s, p);
}

static bool meets(const struct planner_input *in, const struct planner_prediction *p)
{
	return p->converges && p->downtime_ms <= in->downtime_ms + PLAN_STATE_MS &&
	       (!in->timeout_ms || p->total_ms <= in->timeout_ms);
}

static void sim_throttled(const struct planner_input *in, uint32_t t,
			  struct planner_prediction *q)
{
	struct sim s;

	memset(q, 0, sizeof(*q));
	sim_plain(in, t, &s);
	simulate(in, &s, q);
	q->throttle_pct = t;
}

/*
 * Which throttle. Pages the guest dirties while the link is busy are sent
 * again, so a light throttle held for long can cost the guest more work
 * (throttle x time) than a firm one held briefly, and take longer too.
 * The choice: of the throttles that meet the limits, the smallest that
 * finishes within PLAN_THROTTLE_SLACK_PCT (or PLAN_THROTTLE_SLACK_MS, if
 * more) of the fastest of them; if none meets them, the most allowed.
 */
static void predict_autoconverge(const struct planner_input *in, struct planner_prediction *p)
{
	uint32_t max = in->throttle_max && in->throttle_max <= 99 ? in->throttle_max : 99;
	uint64_t fastest = UINT64_MAX, slack;
	struct planner_prediction q;

	for (uint32_t t = 0; t <= max; t++) {
		sim_throttled(in, t, &q);
		if (meets(in, &q) && q.total_ms < fastest)
			fastest = q.total_ms;
	}
	slack = fastest + fastest / 100 * PLAN_THROTTLE_SLACK_PCT;
	if (slack < fastest + PLAN_THROTTLE_SLACK_MS)
		slack = fastest + PLAN_THROTTLE_SLACK_MS;
	for (uint32_t t = 0; t <= max; t++) {
		sim_throttled(in, t, p);
		if (meets(in, p) && p->total_ms <= slack)
			return;
	}
	sim_throttled(in, max, p);
}

/* One pre-copy pass (if not done yet), switch over, then the working set once. */
static void predict_postcopy(const struct planner_input *in, struct planner_prediction *p)
{
	double b = (double)in->bandwidth, t = in->elapsed_ms / 1000.0;
	double wire = (double)in->sent_bytes, first = 0;

	if (!in->passes_done)
		first = (double)(in->touched_bytes ? in->touched_bytes : in->ram_bytes);
	t += first / b + wss(in) / b;
	wire += first + (in->dirty_rate || in->passes_done ? wss(in) : 0);
	p->converges = true;
	p->downtime_ms = PLAN_POSTCOPY_SWITCH_MS;
	p->total_ms = to_u64(t * 1000.0) + PLAN_POSTCOPY_SWITCH_MS;
	p->wire_bytes = to_u64(wire);
	p->passes = in->passes_done ? in->passes_done : 1;
}

static void predict(const struct planner_input *in, enum planner_strategy s,
		    struct planner_prediction *p)
{
	memset(p, 0, sizeof(*p));
	switch (s) {
	case PLAN_PRECOPY:		predict_precopy(in, p); break;
	case PLAN_XBZRLE:		predict_xbzrle(in, p); break;
	case PLAN_AUTO_CONVERGE:	predict_autoconverge(in, p); break;
	case PLAN_POSTCOPY:		predict_postcopy(in, p); break;
	default:			return;
	}
	p->available = in->available & PLAN_BIT(s);
	p->meets_downtime = p->converges && p->downtime_ms <= in->downtime_ms + PLAN_STATE_MS;
	p->meets_timeout = p->converges && (!in->timeout_ms || p->total_ms <= in->timeout_ms);
}

/* Guest slowdown: a throttle, or post-copy's remote page faults. */
static bool slows_guest(enum planner_strategy s, const struct planner_prediction *p)
{
	return s == PLAN_POSTCOPY || p->throttle_pct > 0;
}

/*
 * Lower is better: first whether it slows the guest, then the total time
 * (within 10 %: plain pre-copy before XBZRLE, which costs host CPU), then
 * the bytes on the wire.
 */
static bool better(enum planner_strategy a, const struct planner_prediction *pa,
		   enum planner_strategy b, const struct planner_prediction *pb)
{
	if (slows_guest(a, pa) != slows_guest(b, pb))
		return !slows_guest(a, pa);
	if (pa->total_ms * 10 < pb->total_ms * 9)
		return true;
	if (pb->total_ms * 10 < pa->total_ms * 9)
		return false;
	return a < b;
}

static void explain(const struct planner_input *in, struct planner_plan *out)
{
	enum planner_strategy s = out->choice ? out->choice : out->fallback;
	const struct planner_prediction *p = &out->pred[s];
	char cond[80];

	if (!s) {
		snprintf(out->why, sizeof(out->why), "no strategy available");
		return;
	}
	if (in->dirty_rate > in->bandwidth)
		snprintf(cond, sizeof(cond), "dirty rate %llu MiB/s > link %llu MiB/s",
			 (unsigned long long)(in->dirty_rate >> 20),
			 (unsigned long long)(in->bandwidth >> 20));
	else
		snprintf(cond, sizeof(cond), "dirty rate %llu MiB/s <= link %llu MiB/s",
			 (unsigned long long)(in->dirty_rate >> 20),
			 (unsigned long long)(in->bandwidth >> 20));
	snprintf(out->why, sizeof(out->why), "%s%s: %s; predicted %.1f s, downtime %llu ms%s",
		 names[s], p->throttle_pct ? " (throttle)" : "", cond, p->total_ms / 1000.0,
		 (unsigned long long)p->downtime_ms, out->choice ? "" : " (misses the limits)");
}

void planner_plan(const struct planner_input *in, struct planner_plan *out)
{
	struct planner_input fixed = *in;

	memset(out, 0, sizeof(*out));
	if (!fixed.bandwidth)
		fixed.bandwidth = 1;
	if (!fixed.ram_bytes)
		fixed.ram_bytes = 1;
	for (int s = PLAN_PRECOPY; s < PLAN_NR; s++) {
		struct planner_prediction *p = &out->pred[s];

		predict(&fixed, (enum planner_strategy)s, p);
		if (!p->available)
			continue;
		if (p->meets_downtime && p->meets_timeout &&
		    (!out->choice || better((enum planner_strategy)s, p, out->choice,
					    &out->pred[out->choice])))
			out->choice = (enum planner_strategy)s;
		/* least bad: converges, else shortest forced downtime */
		if (!out->fallback ||
		    (p->converges && !out->pred[out->fallback].converges) ||
		    (p->converges == out->pred[out->fallback].converges &&
		     p->downtime_ms < out->pred[out->fallback].downtime_ms))
			out->fallback = (enum planner_strategy)s;
	}
	explain(&fixed, out);
}

uint64_t planner_eta_smooth(uint64_t prev_ms, uint64_t dt_ms, uint64_t raw_ms)
{
	uint64_t sched = prev_ms > dt_ms ? prev_ms - dt_ms : 0;

	if (!prev_ms || !raw_ms)
		return raw_ms;
	if (raw_ms >= sched)
		return raw_ms < prev_ms + dt_ms ? raw_ms : prev_ms + dt_ms;
	return (sched + raw_ms) / 2;
}

uint64_t planner_rate_smooth(uint64_t prev, uint64_t sample)
{
	if (!prev)
		return sample;
	return prev / 2 + sample / 2;
}
