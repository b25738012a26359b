/*
 * converge.h - the pure policy that makes a migration converge: when to
 * throttle the vCPUs (auto-converge), when a timeout has passed, and a
 * progress figure that never goes backwards. Inputs are per-pass
 * measurements; outputs are decisions. No I/O, no KVM: unit-tested alone.
 */
#ifndef MIG_CONVERGE_H
#define MIG_CONVERGE_H

#include <stdbool.h>
#include <stdint.h>

#include "mig.h"
#include "planner.h"

enum converge_verdict {
	CONVERGE_CONTINUE = 1,		/* another pass */
	CONVERGE_STOP_COPY,		/* the rest fits: stop and copy */
	CONVERGE_TIMEOUT,		/* a timeout passed: apply timeout_action */
	CONVERGE_POSTCOPY,		/* not converging: switch to post-copy (auto_postcopy) */
};

struct converge {
	struct mig_params p;
	uint64_t ram_bytes;
	uint64_t start_ns;
	unsigned throttle;		/* % in force */
	unsigned bad_passes;		/* consecutive passes that did not shrink */
	uint64_t best_remaining;	/* lowest dirty bytes seen at a sync */
	uint64_t best_at_ns;		/* when it was seen */
	uint32_t progress_pct;
	char why[128];			/* the last decision, for status */
	unsigned pc_bad_passes;		/* consecutive bad passes, for auto_postcopy */
	/* the planner (strategy auto or auto-converge) */
	bool planning;
	unsigned available;		/* PLAN_BIT()s the planner may choose */
	struct planner_plan plan;	/* the latest */
	enum planner_strategy in_use;	/* what the source is doing */
	uint32_t plan_throttle;		/* % the plan asks for */
	uint64_t rate_est, wss_est;	/* smoothed dirty rate (unthrottled), working set */
	uint64_t touched_bytes;		/* what pass 1 sent */
	uint64_t eta_ms, eta_at_ns;	/* smoothed ETA and when it was set */
	uint64_t first_total_ms, first_downtime_ms;	/* the first plan's prediction */
	/* relaxing downtime (oVirt): on stalls, raise the limit to the ceiling */
	uint32_t downtime_initial_ms, relax_step_ms;
};

/* One pass's measurements, taken at the sync that ended it. */
struct converge_pass {
	uint32_t pass;			/* 1-based */
	uint64_t now_ns;
	uint64_t dirty_bytes;		/* found at this sync: left to send */
	uint64_t prev_dirty_bytes;	/* what this pass started with */
	uint64_t sent_bytes;		/* sent during this pass */
	uint64_t bandwidth;		/* bytes/s, end to end */
	uint64_t dirty_rate;		/* bytes/s the guest dirtied */
	uint64_t expected_downtime_ms;
	uint64_t total_sent_bytes;	/* on the wire since the start */
	uint32_t xbzrle_delta_pct;	/* measured delta size, % of a page; 0: none */
};

void converge_init(struct converge *c, const struct mig_params *p,
		   uint64_t ram_bytes, uint64_t now_ns);
/* Decide after a pass; may change c->throttle (apply it to the VM). */
enum converge_verdict converge_after_pass(struct converge *c,
					  const struct converge_pass *m);
/*
 * Plan before pass 1 with what is known (a dirty-rate probe or hint, the
 * bandwidth cap or a guess); `available` is a set of PLAN_BIT()s. Sets
 * c->in_use (the strategy the source starts with).
 */
void converge_plan_start(struct converge *c, unsigned available, uint64_t dirty_rate,
			 uint64_t wss, uint64_t bandwidth);
/* The ETA now: the smoothed estimate counted down since it was made (0: unknown). */
uint64_t converge_eta_ms(const struct converge *c, uint64_t now_ns);

/* Timeouts only (checked between batches during long passes). */
bool converge_timed_out(struct converge *c, uint64_t now_ns);
/* Deadline of the completion timeout in ns since start (0: none). */
uint64_t converge_completion_limit_ns(const struct converge *c);

#endif
