/*
 * test_planner.c - the migration planner: scenarios where each strategy
 * must be chosen, predictions monotone in their inputs, the ETA rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "planner.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* 1 GiB guest, all touched, 300 ms downtime, 150 s timeout, no post-copy. */
static struct planner_input base(uint64_t rate, uint64_t wss, uint64_t bw)
{
	return (struct planner_input){
		.ram_bytes = GiB, .touched_bytes = GiB, .dirty_rate = rate,
		.wss_bytes = wss, .bandwidth = bw, .downtime_ms = 300,
		.timeout_ms = 150000, .xbzrle_cache_bytes = 64 * MiB,
		.throttle_max = 99, .available = PLAN_ALL_BUT_POSTCOPY,
	};
}

static void test_idle_guest_takes_plain_precopy(void **state)
{
	struct planner_input in = base(0, 0, 1 * GiB);
	struct planner_plan p;

	(void)state;
	planner_plan(&in, &p);
	assert_int_equal(p.choice, PLAN_PRECOPY);
	assert_true(p.pred[PLAN_PRECOPY].converges);
	/* one pass of 1 GiB at 1 GiB/s */
	assert_in_range(p.pred[PLAN_PRECOPY].total_ms, 1000, 1100);
	assert_int_equal(p.pred[PLAN_PRECOPY].wire_bytes, GiB);
	assert_int_equal(p.pred[PLAN_PRECOPY].throttle_pct, 0);
}

static void test_slow_dirtier_takes_precopy(void **state)
{
	struct planner_input in = base(20 * MiB, 256 * MiB, 100 * MiB);
	struct planner_plan p;

	(void)state;
	planner_plan(&in, &p);
	assert_int_equal(p.choice, PLAN_PRECOPY);
	assert_true(p.pred[PLAN_PRECOPY].passes > 1);
	assert_true(p.pred[PLAN_PRECOPY].wire_bytes > GiB);
	assert_true(p.pred[PLAN_PRECOPY].downtime_ms <= 305);
}

static void test_sparse_writer_takes_xbzrle(void **state)
{
	struct planner_input in = base(2000 * MiB, 32 * MiB, 100 * MiB);
	struct planner_plan p;

	(void)state;
	in.xbzrle_delta_pct = 2;
	planner_plan(&in, &p);
	assert_false(p.pred[PLAN_PRECOPY].converges);
	assert_int_equal(p.choice, PLAN_XBZRLE);
	assert_true(p.pred[PLAN_XBZRLE].wire_bytes < p.pred[PLAN_AUTO_CONVERGE].wire_bytes);
	assert_non_null(strstr(p.why, "xbzrle"));
}

static void test_fast_dirtier_on_slow_link_takes_autoconverge(void **state)
{
	struct planner_input in = base(2000 * MiB, 512 * MiB, 100 * MiB);
	struct planner_plan p;

	(void)state;
	planner_plan(&in, &p);
	assert_false(p.pred[PLAN_PRECOPY].converges);
	assert_false(p.pred[PLAN_XBZRLE].converges);	/* no delta measured */
	assert_int_equal(p.choice, PLAN_AUTO_CONVERGE);
	assert_true(p.pred[PLAN_AUTO_CONVERGE].throttle_pct >= 95);
	assert_true(p.pred[PLAN_AUTO_CONVERGE].total_ms < 60000);
	assert_non_null(strstr(p.why, "auto-converge"));
	assert_non_null(strstr(p.why, "> link 100 MiB/s"));
}

static void test_postcopy_when_allowed_and_throttling_is_not(void **state)
{
	struct planner_input in = base(2000 * MiB, 512 * MiB, 100 * MiB);
	struct planner_plan p;

	(void)state;
	in.available = PLAN_BIT(PLAN_PRECOPY) | PLAN_BIT(PLAN_XBZRLE) | PLAN_BIT(PLAN_POSTCOPY);
	planner_plan(&in, &p);
	assert_int_equal(p.choice, PLAN_POSTCOPY);
	assert_int_equal(p.pred[PLAN_POSTCOPY].downtime_ms, PLAN_POSTCOPY_SWITCH_MS);
	assert_false(p.pred[PLAN_AUTO_CONVERGE].available);
}

static void test_no_slowdown_preferred_over_faster_throttle(void **state)
{
	/* pre-copy converges, if slowly: it wins over a faster throttled run */
	struct planner_input in = base(80 * MiB, 512 * MiB, 100 * MiB);
	struct planner_plan p;

	(void)state;
	planner_plan(&in, &p);
	assert_true(p.pred[PLAN_PRECOPY].converges);
	assert_true(p.pred[PLAN_AUTO_CONVERGE].total_ms <= p.pred[PLAN_PRECOPY].total_ms);
	assert_int_equal(p.choice, PLAN_PRECOPY);
}

static void test_nothing_meets_a_tiny_timeout(void **state)
{
	struct planner_input in = base(2000 * MiB, 512 * MiB, 100 * MiB);
	struct planner_plan p;

	(void)state;
	in.timeout_ms = 2000;		/* pass 1 alone takes 10 s */
	planner_plan(&in, &p);
	assert_int_equal(p.choice, PLAN_INVALID);
	assert_int_not_equal(p.fallback, PLAN_INVALID);
	assert_non_null(strstr(p.why, "misses the limits"));
}

static void test_replan_counts_what_is_done(void **state)
{
	struct planner_input in = base(20 * MiB, 256 * MiB, 100 * MiB);
	struct planner_plan p;

	(void)state;
	in.passes_done = 3;
	in.elapsed_ms = 12000;
	in.sent_bytes = GiB + 100 * MiB;
	in.remaining_bytes = 10 * MiB;	/* 100 ms at 100 MiB/s: fits */
	planner_plan(&in, &p);
	assert_int_equal(p.choice, PLAN_PRECOPY);
	assert_in_range(p.pred[PLAN_PRECOPY].total_ms, 12100, 12200);
	assert_int_equal(p.pred[PLAN_PRECOPY].wire_bytes, GiB + 110 * MiB);
	assert_int_equal(p.pred[PLAN_PRECOPY].passes, 3);
}

static void test_monotone_in_dirty_rate(void **state)
{
	uint64_t prev_total = 0, prev_wire = 0;
	uint32_t prev_thr = 0;

	(void)state;
	for (uint64_t r = 0; r <= 4000; r += 25) {
		struct planner_input in = base(r * MiB, 512 * MiB, 100 * MiB);
		struct planner_plan p;

		in.timeout_ms = 0;
		planner_plan(&in, &p);
		if (p.pred[PLAN_PRECOPY].converges) {
			assert_true(p.pred[PLAN_PRECOPY].total_ms >= prev_total);
			assert_true(p.pred[PLAN_PRECOPY].wire_bytes >= prev_wire);
			prev_total = p.pred[PLAN_PRECOPY].total_ms;
			prev_wire = p.pred[PLAN_PRECOPY].wire_bytes;
		}
		assert_true(p.pred[PLAN_AUTO_CONVERGE].throttle_pct >= prev_thr);
		prev_thr = p.pred[PLAN_AUTO_CONVERGE].throttle_pct;
	}
	assert_true(prev_thr > 90);
}

static void test_monotone_in_bandwidth(void **state)
{
	uint64_t prev_total = UINT64_MAX;
	uint32_t prev_thr = 99;

	(void)state;
	for (uint64_t bw = 50; bw <= 4000; bw += 50) {
		struct planner_input in = base(1000 * MiB, 256 * MiB, bw * MiB);
		struct planner_plan p;

		in.timeout_ms = 0;
		planner_plan(&in, &p);
		/* the pass count is a whole number: allow a wiggle of 2 points */
		assert_true(p.pred[PLAN_AUTO_CONVERGE].throttle_pct <= prev_thr + 2);
		prev_thr = p.pred[PLAN_AUTO_CONVERGE].throttle_pct;
		assert_true(p.pred[PLAN_POSTCOPY].total_ms <= prev_total);
		prev_total = p.pred[PLAN_POSTCOPY].total_ms;
	}
}

static void test_monotone_in_downtime_limit(void **state)
{
	uint64_t prev_total = UINT64_MAX;

	(void)state;
	for (uint32_t d = 50; d <= 2000; d += 50) {
		struct planner_input in = base(60 * MiB, 256 * MiB, 100 * MiB);
		struct planner_plan p;

		in.downtime_ms = d;
		planner_plan(&in, &p);
		assert_true(p.pred[PLAN_PRECOPY].converges);
		assert_true(p.pred[PLAN_PRECOPY].total_ms <= prev_total);
		prev_total = p.pred[PLAN_PRECOPY].total_ms;
	}
}

static void test_eta_never_runs_back_faster_than_the_clock(void **state)
{
	(void)state;
	assert_int_equal(planner_eta_smooth(0, 100, 5000), 5000);
	assert_int_equal(planner_eta_smooth(5000, 100, 0), 0);
	/* on schedule */
	assert_int_equal(planner_eta_smooth(5000, 1000, 4000), 4000);
	/* worse: at most dt above the previous figure */
	assert_int_equal(planner_eta_smooth(5000, 1000, 20000), 6000);
	assert_int_equal(planner_eta_smooth(5000, 1000, 5500), 5500);
	/* better: half-way between the schedule and the estimate */
	assert_int_equal(planner_eta_smooth(5000, 1000, 2000), 3000);
	assert_int_equal(planner_eta_smooth(500, 1000, 100), 100);
	assert_int_equal(planner_rate_smooth(0, 80), 80);
	assert_int_equal(planner_rate_smooth(100, 200), 150);
}

static void test_names_round_trip(void **state)
{
	(void)state;
	for (int s = PLAN_PRECOPY; s <= PLAN_AUTO; s++)
		assert_int_equal(planner_strategy_parse(planner_strategy_name(s)), s);
	assert_int_equal(planner_strategy_parse("fast"), PLAN_INVALID);
	assert_string_equal(planner_strategy_name(PLAN_INVALID), "invalid");
}

static void test_degenerate_inputs(void **state)
{
	struct planner_input in = { 0 };
	struct planner_plan p;

	(void)state;
	planner_plan(&in, &p);		/* no RAM, no link, nothing available */
	assert_int_equal(p.choice, PLAN_INVALID);
	assert_int_equal(p.fallback, PLAN_INVALID);
	in = base(UINT64_MAX, UINT64_MAX, 1);
	in.timeout_ms = 0;
	planner_plan(&in, &p);
	assert_false(p.pred[PLAN_PRECOPY].converges);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_guest_takes_plain_precopy),
		cmocka_unit_test(test_slow_dirtier_takes_precopy),
		cmocka_unit_test(test_sparse_writer_takes_xbzrle),
		cmocka_unit_test(test_fast_dirtier_on_slow_link_takes_autoconverge),
		cmocka_unit_test(test_postcopy_when_allowed_and_throttling_is_not),
		cmocka_unit_test(test_no_slowdown_preferred_over_faster_throttle),
		cmocka_unit_test(test_nothing_meets_a_tiny_timeout),
		cmocka_unit_test(test_replan_counts_what_is_done),
		cmocka_unit_test(test_monotone_in_dirty_rate),
		cmocka_unit_test(test_monotone_in_bandwidth),
		cmocka_unit_test(test_monotone_in_downtime_limit),
		cmocka_unit_test(test_eta_never_runs_back_faster_than_the_clock),
		cmocka_unit_test(test_names_round_trip),
		cmocka_unit_test(test_degenerate_inputs),
	};
	return cmocka_run_group_tests_name("mig-planner", tests, NULL, NULL);
}
