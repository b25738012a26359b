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
};

void converge_init(struct converge *c, const struct mig_params *p,
		   uint64_t ram_bytes, uint64_t now_ns);
/* Decide after a pass; may change c->throttle (apply it to the VM). */
enum converge_verdict converge_after_pass(struct converge *c,
					  const struct converge_pass *m);
/* Timeouts only (checked between batches during long passes). */
bool converge_timed_out(struct converge *c, uint64_t now_ns);
/* Deadline of the completion timeout in ns since start (0: none). */
uint64_t converge_completion_limit_ns(const struct converge *c);

#endif
