/*
 * planner.h - the migration planner: given what is known about the guest
 * (RAM, dirty rate, working set) and the link (bandwidth), predict for each
 * strategy (plain pre-copy, XBZRLE, auto-converge, post-copy) the total
 * time, the downtime and the bytes on the wire, say which meet the downtime
 * limit and the timeout, and choose one. Pure: numbers in, numbers out, no
 * I/O, no KVM; unit-tested alone (tests/unit/mig/test_planner.c).
 *
 * The model (docs/operations.md, "How the planner predicts"): a pass that
 * sends D bytes over a link of B bytes/s takes D/B; meanwhile the guest
 * dirties min(W, r * D/B) bytes, where r is its dirty rate and W its
 * working set. Passes repeat until the rest fits the downtime limit. XBZRLE
 * shrinks re-sent pages that hit its cache to the measured delta size;
 * auto-converge scales r by (1 - throttle); post-copy sends everything
 * once, after a switch-over whose pause is only the device state.
 */
#ifndef MIG_PLANNER_H
#define MIG_PLANNER_H

#include <stdbool.h>
#include <stdint.h>

enum planner_strategy {
	PLAN_INVALID = 0,
	PLAN_PRECOPY,			/* plain pre-copy passes */
	PLAN_XBZRLE,			/* pre-copy, re-sent pages as deltas */
	PLAN_AUTO_CONVERGE,		/* pre-copy, vCPUs throttled */
	PLAN_POSTCOPY,			/* switch over, pull the rest */
	PLAN_NR,
	PLAN_AUTO = PLAN_NR,		/* a parameter only: let the planner choose */
};

#define PLAN_BIT(s)		(1u << (s))
#define PLAN_ALL_BUT_POSTCOPY	(PLAN_BIT(PLAN_PRECOPY) | PLAN_BIT(PLAN_XBZRLE) | \
				 PLAN_BIT(PLAN_AUTO_CONVERGE))

/* Pause the device state and the handshake add to a stop-and-copy. */
#define PLAN_STATE_MS		5
/*
 * Pause of a post-copy switch-over (last dirty pages dropped, device state,
 * handshake): measured 5-13 ms since the stale pages are dropped before it.
 */
#define PLAN_POSTCOPY_SWITCH_MS	15
/* Auto-converge takes the smallest throttle within 10 % (or 500 ms) of the fastest. */
#define PLAN_THROTTLE_SLACK_PCT	10
#define PLAN_THROTTLE_SLACK_MS	500
/* Host-side XBZRLE encoding throughput assumed (bytes/s of pages). */
#define PLAN_XBZRLE_ENCODE_BPS	(1ULL << 30)
#define PLAN_MAX_PASSES		1000

struct planner_input {
	uint64_t ram_bytes;		/* guest RAM */
	uint64_t touched_bytes;		/* non-zero RAM pass 1 sends; 0: ram_bytes */
	uint32_t passes_done;		/* 0: before pass 1 */
	uint64_t remaining_bytes;	/* dirty now (passes_done > 0) */
	uint64_t elapsed_ms;		/* already spent */
	uint64_t sent_bytes;		/* already on the wire */
	uint64_t dirty_rate;		/* bytes/s, unthrottled; 0: unknown (idle) */
	uint64_t wss_bytes;		/* working set; 0: ram_bytes */
	uint64_t bandwidth;		/* bytes/s the link carries (> 0) */
	uint32_t downtime_ms;		/* limit */
	uint64_t timeout_ms;		/* completion deadline from the start; 0: none */
	uint32_t xbzrle_delta_pct;	/* delta size, % of a page; 0: unknown (100) */
	uint64_t xbzrle_cache_bytes;	/* sent-page cache */
	uint32_t throttle_max;		/* % auto-converge may use (<= 99) */
	unsigned available;		/* PLAN_BIT()s of strategies allowed */
};

struct planner_prediction {
	bool available;
	bool converges;			/* reaches stop-and-copy at all */
	bool meets_downtime, meets_timeout;
	uint64_t total_ms;		/* from the start of the migration */
	uint64_t downtime_ms;
	uint64_t wire_bytes;		/* from the start of the migration */
	uint32_t passes;		/* pre-copy passes in all */
	uint32_t throttle_pct;		/* guest slowdown it needs (auto-converge) */
};

struct planner_plan {
	struct planner_prediction pred[PLAN_NR];
	enum planner_strategy choice;	/* PLAN_INVALID if nothing meets the limits */
	enum planner_strategy fallback;	/* the least bad one when nothing does */
	char why[160];			/* "auto-converge: dirty rate ... > link ..." */
};

void planner_plan(const struct planner_input *in, struct planner_plan *out);

const char *planner_strategy_name(enum planner_strategy s);
/* "auto", "precopy", "xbzrle", "auto-converge", "postcopy"; PLAN_INVALID if none. */
enum planner_strategy planner_strategy_parse(const char *s);

/*
 * The ETA shown to users. Between two estimates dt_ms apart, the previous
 * one counted down by dt_ms is "on schedule". A worse estimate may raise
 * the ETA by at most dt_ms over the previous one (it never runs backwards
 * faster than a clock runs forwards); a better one is taken half-way
 * (never below the new estimate). prev 0 or raw 0 (unknown) take raw.
 */
uint64_t planner_eta_smooth(uint64_t prev_ms, uint64_t dt_ms, uint64_t raw_ms);

/* Exponentially smoothed rate (weight 1/2 on the new sample); prev 0 takes it. */
uint64_t planner_rate_smooth(uint64_t prev, uint64_t sample);

#endif
