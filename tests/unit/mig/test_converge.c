/* test_converge.c - the auto-converge / timeout / progress policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "converge.h"

#define MiB (1ULL << 20)
#define S 1000000000ULL

static void params(struct mig_params *p)
{
	memset(p, 0, sizeof(*p));
	p->downtime_ms = 300;
	p->auto_converge = MIG_AC_AUTO;
	p->completion_timeout_per_gib = 150;
	p->progress_timeout_s = 150;
}

/* A pass where the guest dirtied `dirty` of what `sent` carried. */
static struct converge_pass pass(uint32_t n, uint64_t t, uint64_t dirty,
				 uint64_t prev, uint64_t sent, uint64_t bw)
{
	return (struct converge_pass){
		.pass = n, .now_ns = t, .dirty_bytes = dirty, .prev_dirty_bytes = prev,
		.sent_bytes = sent, .bandwidth = bw, .dirty_rate = dirty,
		.expected_downtime_ms = dirty * 1000 / bw,
	};
}

static void test_stops_when_it_fits_and_stops_shrinking(void **state)
{
	struct mig_params p;
	struct converge c;
	struct converge_pass m;

	params(&p);
	converge_init(&c, &p, 1024 * MiB, 0);
	/* 10 MiB left on a 1 GiB/s link: 10 ms, but still shrinking fast */
	m = pass(1, 1 * S, 10 * MiB, 1024 * MiB, 1000 * MiB, 1024 * MiB);
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_CONTINUE);
	/* 9 MiB: no longer shrinking by a quarter: stop */
	m = pass(2, 2 * S, 9 * MiB, 10 * MiB, 10 * MiB, 1024 * MiB);
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_STOP_COPY);
	/* nothing left at all: stop */
	converge_init(&c, &p, 1024 * MiB, 0);
	m = pass(1, 1 * S, 0, 1024 * MiB, 1000 * MiB, 1024 * MiB);
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_STOP_COPY);
}

static void test_throttle_after_two_bad_passes(void **state)
{
	struct mig_params p;
	struct converge c;
	struct converge_pass m;

	params(&p);
	converge_init(&c, &p, 1024 * MiB, 0);
	/* link 100 MiB/s, guest dirties 256 MiB per pass: never fits */
	m = pass(1, 1 * S, 256 * MiB, 1024 * MiB, 1024 * MiB, 100 * MiB);
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_CONTINUE);
	assert_int_equal(c.throttle, 0);	/* pass 1 never counts */
	m = pass(2, 2 * S, 256 * MiB, 256 * MiB, 256 * MiB, 100 * MiB);
	converge_after_pass(&c, &m);
	assert_int_equal(c.throttle, 0);	/* one bad pass */
	m = pass(3, 3 * S, 256 * MiB, 256 * MiB, 256 * MiB, 100 * MiB);
	converge_after_pass(&c, &m);
	assert_int_equal(c.throttle, 20);	/* two: start at 20 % */
	assert_non_null(strstr(c.why, "auto-converge"));
	/* auto: each further bad pass closes half the gap (at least the
	 * increment, 10): 60, 80, 90, then 99 (capped) */
	static const unsigned want[] = { 60, 80, 90, 99, 99 };
	for (uint32_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		m = pass(4 + i, (4 + i) * S, 256 * MiB, 256 * MiB, 256 * MiB, 100 * MiB);
		converge_after_pass(&c, &m);
		assert_int_equal(c.throttle, want[i]);
	}
}

static void test_throttle_on_is_qemus_rule(void **state)
{
	struct mig_params p;
	struct converge c;
	struct converge_pass m;

	params(&p);
	p.auto_converge = MIG_AC_ON;
	p.throttle_initial = 20;
	p.throttle_increment = 10;
	p.throttle_max = 99;
	converge_init(&c, &p, 1024 * MiB, 0);
	for (uint32_t i = 1; i <= 5; i++) {
		m = pass(i, i * S, 256 * MiB, 256 * MiB, 256 * MiB, 100 * MiB);
		converge_after_pass(&c, &m);
	}
	/* passes 2,3 -> 20; 4,5 -> 30: +10 every two bad passes */
	assert_int_equal(c.throttle, 30);
	for (uint32_t i = 6; i < 40; i++) {
		m = pass(i, i * S, 256 * MiB, 256 * MiB, 256 * MiB, 100 * MiB);
		converge_after_pass(&c, &m);
	}
	assert_int_equal(c.throttle, 99);
}

static void test_off_never_throttles(void **state)
{
	struct mig_params p;
	struct converge c;
	struct converge_pass m;

	params(&p);
	p.auto_converge = MIG_AC_OFF;
	converge_init(&c, &p, 1024 * MiB, 0);
	for (uint32_t i = 1; i < 20; i++) {
		m = pass(i, i * S, 256 * MiB, 256 * MiB, 256 * MiB, 100 * MiB);
		assert_int_equal(converge_after_pass(&c, &m), CONVERGE_CONTINUE);
	}
	assert_int_equal(c.throttle, 0);
}

static void test_good_pass_resets_count(void **state)
{
	struct mig_params p;
	struct converge c;
	struct converge_pass m;

	params(&p);
	converge_init(&c, &p, 1024 * MiB, 0);
	m = pass(2, 2 * S, 256 * MiB, 512 * MiB, 300 * MiB, 100 * MiB);	/* bad */
	converge_after_pass(&c, &m);
	m = pass(3, 3 * S, 100 * MiB, 256 * MiB, 300 * MiB, 100 * MiB);	/* good */
	converge_after_pass(&c, &m);
	m = pass(4, 4 * S, 200 * MiB, 100 * MiB, 300 * MiB, 100 * MiB);	/* bad */
	converge_after_pass(&c, &m);
	assert_int_equal(c.throttle, 0);
}

static void test_throttled_guest_takes_short_passes_until_they_stop_shrinking(void **state)
{
	struct mig_params p;
	struct converge c;
	struct converge_pass m;

	params(&p);
	converge_init(&c, &p, 1024 * MiB, 0);
	c.throttle = 50;
	/* fits (20 ms) but still shrinking fast: one more short pass */
	m = pass(5, 5 * S, 2 * MiB, 40 * MiB, 40 * MiB, 100 * MiB);
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_CONTINUE);
	/* fits and no longer shrinking by a quarter: stop */
	m = pass(6, 6 * S, 2 * MiB, 2 * MiB, 2 * MiB, 100 * MiB);
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_STOP_COPY);
}

static void test_completion_timeout_scales_with_memory(void **state)
{
	struct mig_params p;
	struct converge c;

	params(&p);
	converge_init(&c, &p, 4096 * MiB, 0);		/* 4 GiB x 150 s */
	assert_true(converge_completion_limit_ns(&c) == 600 * S);
	assert_false(converge_timed_out(&c, 100 * S));
	c.best_at_ns = 590 * S;			/* progress was being made */
	assert_false(converge_timed_out(&c, 599 * S));
	assert_true(converge_timed_out(&c, 601 * S));
	assert_non_null(strstr(c.why, "completion timeout"));
	converge_init(&c, &p, 100 * MiB, 0);		/* below 1 GiB counts as 1 */
	assert_true(converge_completion_limit_ns(&c) == 150 * S);
	p.completion_timeout_per_gib = 0;
	converge_init(&c, &p, 100 * MiB, 0);
	assert_true(converge_completion_limit_ns(&c) == 0);
}

static void test_progress_timeout(void **state)
{
	struct mig_params p;
	struct converge c;
	struct converge_pass m;

	params(&p);
	p.completion_timeout_per_gib = 0;
	p.progress_timeout_s = 10;
	p.auto_converge = MIG_AC_OFF;
	converge_init(&c, &p, 1024 * MiB, 0);
	m = pass(1, 1 * S, 256 * MiB, 1024 * MiB, 1024 * MiB, 100 * MiB);
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_CONTINUE);
	/* never lower than 256 MiB again: no progress after 1 s */
	m = pass(2, 8 * S, 300 * MiB, 256 * MiB, 256 * MiB, 100 * MiB);
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_CONTINUE);
	m = pass(3, 12 * S, 280 * MiB, 300 * MiB, 256 * MiB, 100 * MiB);
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_TIMEOUT);
	assert_non_null(strstr(c.why, "progress timeout"));
}

static void test_progress_never_goes_back(void **state)
{
	struct mig_params p;
	struct converge c;
	struct converge_pass m;
	uint32_t last = 0;
	static const uint64_t dirty[] = { 512, 256, 400, 128, 700, 64, 1024 };

	params(&p);
	p.auto_converge = MIG_AC_OFF;
	converge_init(&c, &p, 1024 * MiB, 0);
	for (uint32_t i = 0; i < sizeof(dirty) / sizeof(dirty[0]); i++) {
		m = pass(i + 1, (i + 1) * S, dirty[i] * MiB, 1024 * MiB, 1024 * MiB, 10 * MiB);
		converge_after_pass(&c, &m);
		assert_true(c.progress_pct >= last);
		assert_true(c.progress_pct <= 99);
		last = c.progress_pct;
	}
	assert_int_equal(last, 94);	/* 100 - floor(64 * 100 / 1024) */
}

static void test_relaxing_downtime_before_throttling(void **state)
{
	struct mig_params p;
	struct converge c;
	struct converge_pass m;

	(void)state;
	params(&p);
	p.downtime_max_ms = 2000;
	p.downtime_steps = 2;
	converge_init(&c, &p, 1024 * MiB, 0);
	/* 32 MiB that never shrinks over 20 MiB/s: 1600 ms to stop now */
	m = pass(1, 1 * S, 32 * MiB, 256 * MiB, 256 * MiB, 20 * MiB);
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_CONTINUE);
	assert_int_equal(c.p.downtime_ms, 300);		/* pass 1 never counts */
	m = pass(2, 3 * S, 32 * MiB, 32 * MiB, 32 * MiB, 20 * MiB);
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_CONTINUE);
	assert_int_equal(c.p.downtime_ms, 1150);	/* one step of (2000-300)/2 */
	assert_int_equal(c.throttle, 0);
	assert_non_null(strstr(c.why, "relaxing downtime"));
	m = pass(3, 5 * S, 32 * MiB, 32 * MiB, 32 * MiB, 20 * MiB);
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_STOP_COPY);
	assert_int_equal(c.p.downtime_ms, 2000);	/* the ceiling: now it fits */
	assert_int_equal(c.throttle, 0);
}

static void test_planned_throttle_applies_at_once(void **state)
{
	struct mig_params p;
	struct converge c;
	struct converge_pass m;

	(void)state;
	params(&p);
	converge_init(&c, &p, 1024 * MiB, 0);
	/* probe: 2000 MiB/s over a 512 MiB working set, 100 MiB/s link */
	converge_plan_start(&c, PLAN_ALL_BUT_POSTCOPY, 2000 * MiB, 512 * MiB, 100 * MiB);
	assert_int_equal(c.in_use, PLAN_AUTO_CONVERGE);
	assert_true(c.first_total_ms > 0);
	assert_true(converge_eta_ms(&c, 0) > 0);
	m = pass(1, 10 * S, 512 * MiB, 1024 * MiB, 1024 * MiB, 100 * MiB);
	m.dirty_rate = 51 * MiB;	/* the pass's rate: a lower bound */
	m.total_sent_bytes = 1024 * MiB;
	assert_int_equal(converge_after_pass(&c, &m), CONVERGE_CONTINUE);
	assert_true(c.throttle >= 90);	/* not 20, 60, 80 ... one pass each */
	assert_non_null(strstr(c.why, "auto-converge"));
	/* ETA counts down between passes, and never below 1 ms while known */
	assert_true(converge_eta_ms(&c, 11 * S) < converge_eta_ms(&c, 10 * S));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stops_when_it_fits_and_stops_shrinking),
		cmocka_unit_test(test_throttle_after_two_bad_passes),
		cmocka_unit_test(test_throttle_on_is_qemus_rule),
		cmocka_unit_test(test_off_never_throttles),
		cmocka_unit_test(test_good_pass_resets_count),
		cmocka_unit_test(test_throttled_guest_takes_short_passes_until_they_stop_shrinking),
		cmocka_unit_test(test_completion_timeout_scales_with_memory),
		cmocka_unit_test(test_progress_timeout),
		cmocka_unit_test(test_progress_never_goes_back),
		cmocka_unit_test(test_relaxing_downtime_before_throttling),
		cmocka_unit_test(test_planned_throttle_applies_at_once),
	};
	return cmocka_run_group_tests_name("mig-converge", tests, NULL, NULL);
}
