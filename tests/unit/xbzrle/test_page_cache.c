/*
 * test_page_cache.c - the sent-page cache: argument checks, the byte
 * budget, lookup/insert/update/invalidate, the generation-based eviction
 * rule, no eviction within one pass, data integrity under churn, stats,
 * and allocation failure.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "err.h"
#include "page_cache.h"

/* assert_memory_equal, but memcmp first (cmocka compares byte by byte). */
#define assert_same(a, b, n)						\
	do {								\
		if (memcmp((a), (b), (n)))				\
			assert_memory_equal((a), (b), (n));		\
	} while (0)

/* Page contents derived from the key and a version, to check integrity. */
static void fill(uint8_t *p, size_t ps, uint32_t block, uint64_t off,
		 uint32_t ver)
{
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ULL ^ block ^
		     ((uint64_t)ver << 40);

	for (size_t i = 0; i < ps; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		p[i] = (uint8_t)(x >> 56);
	}
}

static void test_bad_args(void **state)
{
	static const struct {
		uint64_t size;
		size_t ps;
	} bad[] = {
		{ 64 << 20, 0 }, { 64 << 20, 4 }, { 64 << 20, 4097 },
		{ 64 << 20, 3 << 12 }, { 1ULL << 33, 2ULL << 30 },
		{ 0, 4096 }, { 4096, 4096 }, { 4 * 4096, 4096 },
		{ PAGE_CACHE_MAX_SIZE + 1, 4096 },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err e = { 0 };

		errno = 0;
		assert_null(page_cache_new(bad[i].size, bad[i].ps, &e));
		assert_int_equal(errno, EINVAL);
		assert_int_equal(e.code, -EINVAL);
		print_message("# %s\n", e.msg);
		assert_non_null(strstr(e.msg, "page cache: "));
	}
	assert_null(page_cache_new(0, 4096, NULL));
}

static void check_budget(uint64_t size, size_t ps)
{
	struct page_cache_stats st;
	struct page_cache *c = page_cache_new(size, ps, NULL);
	uint64_t ideal;

	assert_non_null(c);
	page_cache_get_stats(c, &st);
	assert_true(page_cache_mem_bytes(c) <= size);
	assert_int_equal(page_cache_page_size(c), ps);
	assert_int_equal(st.slots % PAGE_CACHE_WAYS, 0);
	assert_true(st.slots >= PAGE_CACHE_WAYS);
	/* no power-of-two rounding: within 3 sets + 2 alignment pages */
	ideal = size / (ps + 24);
	if (st.slots + 3 * PAGE_CACHE_WAYS + 2 * 4096 / ps + 2 < ideal)
		print_message("# size %llu ps %zu: %llu slots, ideal %llu\n",
			      (unsigned long long)size, ps,
			      (unsigned long long)st.slots,
			      (unsigned long long)ideal);
	assert_true(st.slots + 3 * PAGE_CACHE_WAYS + 2 * 4096 / ps + 2 >= ideal);
	page_cache_free(c);
}

static void test_budget(void **state)
{
	static const size_t sizes[] = { 8, 64, 512, 4096, 65536, 2 << 20 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t ps = sizes[i];

		check_budget(PAGE_CACHE_DEFAULT_SIZE, ps);
		check_budget(3 * PAGE_CACHE_DEFAULT_SIZE / 2 + 12345, ps);
		check_budget(PAGE_CACHE_WAYS * (ps + 24) + 3 * 4096 + 256, ps);
	}
	for (uint64_t s = 28000; s < 400000; s += 4321)
		check_budget(s, 4096);
	/* 64 MiB of 4 KiB pages: 16384 would need 64 MiB + tags */
	struct page_cache_stats st;
	struct page_cache *c = page_cache_new(64 << 20, 4096, NULL);

	page_cache_get_stats(c, &st);
	print_message("# 64 MiB / 4 KiB: %llu slots, %llu bytes\n",
		      (unsigned long long)st.slots,
		      (unsigned long long)page_cache_mem_bytes(c));
	assert_true(st.slots >= 16276 && st.slots < 16384);
	page_cache_free(c);
}

static void test_lookup_insert(void **state)
{
	struct page_cache *c = page_cache_new(1 << 20, 4096, NULL);
	struct page_cache_stats st;
	uint8_t a[4096], b[4096];
	const uint8_t *p;

	fill(a, 4096, 1, 8192, 0);
	fill(b, 4096, 1, 8192, 1);
	assert_null(page_cache_lookup(c, 1, 8192));
	assert_int_equal(page_cache_insert(c, 1, 8192, a, 1), 0);
	p = page_cache_lookup(c, 1, 8192);
	assert_non_null(p);
	assert_memory_equal(p, a, 4096);
	/* same offset in another block, another offset in the same block */
	assert_null(page_cache_lookup(c, 2, 8192));
	assert_null(page_cache_lookup(c, 1, 4096));
	/* update in place */
	assert_int_equal(page_cache_insert(c, 1, 8192, b, 1), 0);
	assert_ptr_equal(page_cache_lookup(c, 1, 8192), p);
	assert_memory_equal(p, b, 4096);
	/* re-inserting the cached bytes themselves is fine */
	assert_int_equal(page_cache_insert(c, 1, 8192, p, 2), 0);
	assert_memory_equal(page_cache_lookup(c, 1, 8192), b, 4096);
	assert_int_equal(page_cache_insert(c, 1, 100, a, 1), -EINVAL);
	page_cache_get_stats(c, &st);
	assert_int_equal(st.hits, 3);
	assert_int_equal(st.misses, 3);
	assert_int_equal(st.inserts, 1);
	assert_int_equal(st.updates, 2);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.used, 1);
	page_cache_free(c);
	page_cache_free(NULL);
}

static void test_invalidate(void **state)
{
	struct page_cache *c = page_cache_new(1 << 20, 4096, NULL);
	struct page_cache_stats st;
	uint8_t a[4096];

	fill(a, 4096, 3, 0, 0);
	assert_false(page_cache_invalidate(c, 3, 0));
	assert_int_equal(page_cache_insert(c, 3, 0, a, 1), 0);
	assert_true(page_cache_invalidate(c, 3, 0));
	assert_null(page_cache_lookup(c, 3, 0));
	assert_false(page_cache_invalidate(c, 3, 0));
	page_cache_get_stats(c, &st);
	assert_int_equal(st.used, 0);
	page_cache_free(c);
}

/* A cache of exactly one set: the smallest budget that is accepted. */
static struct page_cache *one_set_cache(void)
{
	struct page_cache_stats st;
	struct page_cache *c = NULL;

	for (uint64_t s = 4096; !c; s += 64)
		c = page_cache_new(s, 64, NULL);
	page_cache_get_stats(c, &st);
	assert_int_equal(st.slots, PAGE_CACHE_WAYS);
	return c;
}

static void test_generations(void **state)
{
	struct page_cache *c = one_set_cache();
	struct page_cache_stats st;
	uint8_t p[64];

	/* pass 1 fills the set; a 5th page of the same pass is refused */
	for (uint64_t i = 0; i < 4; i++) {
		fill(p, 64, 0, i * 64, 1);
		assert_int_equal(page_cache_insert(c, 0, i * 64, p, 1), 0);
	}
	assert_int_equal(page_cache_insert(c, 0, 4 * 64, p, 1), -ENOSPC);
	/* pass 2: pages of the previous pass are still protected */
	assert_int_equal(page_cache_insert(c, 0, 4 * 64, p, 2), -ENOSPC);
	/* but a cached page can be refreshed */
	fill(p, 64, 0, 64, 2);
	assert_int_equal(page_cache_insert(c, 0, 64, p, 2), 0);
	/* pass 3: the gen-1 pages (0, 128, 192) are evictable, 64 is not */
	fill(p, 64, 0, 4 * 64, 3);
	assert_int_equal(page_cache_insert(c, 0, 4 * 64, p, 3), 0);
	assert_int_equal(page_cache_insert(c, 0, 5 * 64, p, 3), 0);
	assert_int_equal(page_cache_insert(c, 0, 6 * 64, p, 3), 0);
	assert_int_equal(page_cache_insert(c, 0, 7 * 64, p, 3), -ENOSPC);
	assert_non_null(page_cache_lookup(c, 0, 64));
	assert_null(page_cache_lookup(c, 0, 0));
	assert_null(page_cache_lookup(c, 0, 128));
	assert_null(page_cache_lookup(c, 0, 192));
	fill(p, 64, 0, 64, 2);
	assert_memory_equal(page_cache_lookup(c, 0, 64), p, 64);
	/* pass 4: the gen-2 page (64) is now the oldest and goes first */
	assert_int_equal(page_cache_insert(c, 0, 7 * 64, p, 4), 0);
	assert_null(page_cache_lookup(c, 0, 64));
	/* a generation going backwards counts as recent: no eviction */
	assert_int_equal(page_cache_insert(c, 0, 8 * 64, p, 1), -ENOSPC);
	page_cache_get_stats(c, &st);
	assert_int_equal(st.evictions, 4);
	assert_int_equal(st.refused, 4);
	assert_int_equal(st.used, 4);
	page_cache_free(c);
}

/*
 * One pass over twice as many pages as slots: nothing is evicted, the
 * cache fills well, and every cached page holds its own bytes. Then a
 * churn of later passes keeps data correct.
 */
static void test_fill_and_churn(void **state)
{
	enum { PS = 512 };
	struct page_cache *c = page_cache_new(2 << 20, PS, NULL);
	struct page_cache_stats st;
	uint8_t p[PS];
	uint64_t n, stored = 0;
	uint32_t *ver;

	page_cache_get_stats(c, &st);
	n = 2 * st.slots;
	ver = calloc(n, sizeof(*ver));
	assert_non_null(ver);
	for (uint64_t i = 0; i < n; i++) {
		fill(p, PS, 7, i * PS, 0);
		stored += page_cache_insert(c, 7, i * PS, p, 1) == 0;
	}
	page_cache_get_stats(c, &st);
	print_message("# one pass: %llu of %llu slots used\n",
		      (unsigned long long)st.used, (unsigned long long)st.slots);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.used, stored);
	assert_true(st.used * 100 >= st.slots * 90);
	for (uint64_t gen = 2; gen < 8; gen++) {
		for (uint64_t k = 0; k < n / 2; k++) {
			uint64_t i = (k * 7919 + gen * 104729) % n;

			fill(p, PS, 7, i * PS, (uint32_t)gen);
			if (page_cache_insert(c, 7, i * PS, p, gen) == 0)
				ver[i] = (uint32_t)gen;
		}
	}
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *q = page_cache_lookup(c, 7, i * PS);

		if (!q)
			continue;
		fill(p, PS, 7, i * PS, ver[i]);
		assert_same(q, p, PS);
	}
	page_cache_get_stats(c, &st);
	assert_true(st.evictions > 0);
	assert_true(st.used <= st.slots);
	free(ver);
	page_cache_free(c);
}

static int overcommit_mode(void)
{
	FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
	int mode = -1;

	if (f) {
		if (fscanf(f, "%d", &mode) != 1)
			mode = -1;
		fclose(f);
	}
	return mode;
}

static void test_alloc_failure(void **state)
{
	struct err e = { 0 };

	/* 512 GiB: more than RAM + swap here, refused unless overcommit=1 */
	if (overcommit_mode() == 1)
		skip();
	errno = 0;
	assert_null(page_cache_new(512ULL << 30, 4096, &e));
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(e.code, -ENOMEM);
	print_message("# %s\n", e.msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_lookup_insert),
		cmocka_unit_test(test_invalidate),
		cmocka_unit_test(test_generations),
		cmocka_unit_test(test_fill_and_churn),
		cmocka_unit_test(test_alloc_failure),
	};

	return cmocka_run_group_tests_name("page_cache", tests, NULL, NULL);
}
