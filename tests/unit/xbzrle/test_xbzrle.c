/*
 * test_xbzrle.c - the XBZRLE codec: uleb128, exact encodings of small
 * changes, overflow, 10,000 random round trips (word and AVX2 scanners
 * agree byte for byte), every truncation and extension of valid deltas,
 * hand-made malformed deltas and random garbage, and xbzrle_save_page()
 * driving a simulated multi-pass migration through a small cache.
 *
 * Buffers are heap blocks of exactly the size under test so ASan catches
 * any read or write past them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "page_cache.h"
#include "xbzrle.h"

#define PS 4096
#define MIN_LEN(a, b) ((a) < (b) ? (a) : (b))

static uint64_t rng_state = 1;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static void rnd_fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

/* assert_memory_equal, but memcmp first (cmocka compares byte by byte). */
#define assert_same(a, b, n)						\
	do {								\
		if (memcmp((a), (b), (n)))				\
			assert_memory_equal((a), (b), (n));		\
	} while (0)

static uint8_t *xmalloc(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	assert_non_null(p);
	return p;
}

static uint8_t *xdup(const uint8_t *src, size_t n)
{
	uint8_t *p = xmalloc(n);

	memcpy(p, src, n);
	return p;
}

/* Encode with dst of exactly dst_max bytes; copies the result to out. */
static int enc(const uint8_t *old, const uint8_t *new, size_t ps,
	       size_t dst_max, uint8_t *out)
{
	uint8_t *dst = xmalloc(dst_max);
	int n = xbzrle_encode(old, new, ps, dst, dst_max);

	if (n > 0 && out)
		memcpy(out, dst, (size_t)n);
	free(dst);
	return n;
}

/* Decode from a heap copy of exactly len bytes onto page. */
static int dec(const uint8_t *src, size_t len, uint8_t *page, size_t ps)
{
	uint8_t *s = xdup(src, len);
	int rc = xbzrle_decode(s, len, page, ps);

	free(s);
	return rc;
}

/* --- uleb128 ------------------------------------------------------------- */

static void check_uleb(uint64_t v)
{
	uint8_t buf[10];
	uint64_t got = ~0ULL;
	size_t n = xbzrle_uleb_put(buf, v);

	assert_int_equal(n, xbzrle_uleb_len(v));
	if (n > XBZRLE_ULEB_MAX) {
		assert_int_equal(xbzrle_uleb_get(buf, n, &got), -1);
		return;
	}
	assert_int_equal(xbzrle_uleb_get(buf, n, &got), (int)n);
	assert_true(got == v);
	/* every cut is truncated */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(xbzrle_uleb_get(buf, k, &got), -1);
}

static void test_uleb_round_trip(void **state)
{
	static const uint64_t edges[] = { 0x7f, 0x80, 0x3fff, 0x4000, 0x1fffff,
					  0x200000, 0xfffffff, 0x10000000,
					  (1ULL << 35) - 1, 1ULL << 35,
					  UINT64_MAX };
	uint8_t two[2] = { 0x80, 0x01 };
	uint64_t v;

	for (uint64_t i = 0; i <= 0x20000; i++)
		check_uleb(i);
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		check_uleb(edges[i] - 1);
		check_uleb(edges[i]);
	}
	assert_int_equal(xbzrle_uleb_len(0), 1);
	assert_int_equal(xbzrle_uleb_len(127), 1);
	assert_int_equal(xbzrle_uleb_len(128), 2);
	assert_int_equal(xbzrle_uleb_len(UINT64_MAX), 10);
	assert_int_equal(xbzrle_uleb_get(two, 2, &v), 2);
	assert_true(v == 128);
}

static void test_uleb_rejects(void **state)
{
	static const uint8_t overlong1[] = { 0x80, 0x00 };
	static const uint8_t overlong2[] = { 0x85, 0x80, 0x00 };
	static const uint8_t six[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 };
	static const uint8_t five[] = { 0xff, 0xff, 0xff, 0xff, 0x7f };
	static const uint8_t cont[] = { 0xff };
	uint64_t v = 0;

	assert_int_equal(xbzrle_uleb_get(overlong1, 2, &v), -1);
	assert_int_equal(xbzrle_uleb_get(overlong2, 3, &v), -1);
	assert_int_equal(xbzrle_uleb_get(six, 6, &v), -1);
	assert_int_equal(xbzrle_uleb_get(cont, 1, &v), -1);
	assert_int_equal(xbzrle_uleb_get(cont, 0, &v), -1);
	assert_int_equal(xbzrle_uleb_get(five, 5, &v), 5);
	assert_true(v == (1ULL << 35) - 1);
}

/* --- exact encodings ------------------------------------------------------ */

struct pages {
	uint8_t *old, *new;
};

static void pages_init(struct pages *p, size_t ps, int fill)
{
	p->old = xmalloc(ps);
	if (fill)
		rnd_fill(p->old, ps);
	else
		memset(p->old, 0, ps);
	p->new = xdup(p->old, ps);
}

static void pages_fini(struct pages *p)
{
	free(p->old);
	free(p->new);
}

/* new encodes to exactly want[], fits with dst_max == len, not len - 1. */
static void expect_encoding(const struct pages *p, size_t ps,
			    const uint8_t *want, size_t len)
{
	uint8_t out[64];
	uint8_t *page = xdup(p->old, ps);

	assert_true(len <= sizeof(out));
	assert_int_equal(enc(p->old, p->new, ps, PS * 2, out), (int)len);
	assert_same(out, want, len);
	assert_int_equal(enc(p->old, p->new, ps, len, NULL), (int)len);
	assert_int_equal(enc(p->old, p->new, ps, len - 1, NULL), -1);
	assert_int_equal(dec(out, len, page, ps), 0);
	assert_same(page, p->new, ps);
	free(page);
}

static void test_zero_page(void **state)
{
	struct pages p;
	uint8_t *page;
	int n;

	rng_state = 5;
	pages_init(&p, PS, 0);
	assert_int_equal(enc(p.old, p.new, PS, PS, NULL), 0);
	/* a page becoming zero and a zero page becoming data */
	for (int dir = 0; dir < 2; dir++) {
		uint8_t *from = dir ? p.new : p.old, *to = dir ? p.old : p.new;
		uint8_t *out = xmalloc(xbzrle_bound(PS));

		rnd_fill(from, PS);
		memset(to, 0, PS);
		n = xbzrle_encode(from, to, PS, out, xbzrle_bound(PS));
		assert_true(n > PS);
		page = xdup(from, PS);
		assert_int_equal(dec(out, (size_t)n, page, PS), 0);
		assert_same(page, to, PS);
		assert_int_equal(enc(from, to, PS, PS, NULL), -1);
		free(page);
		free(out);
		memset(p.old, 0, PS);
		memset(p.new, 0, PS);
	}
	pages_fini(&p);
}

static void test_unchanged_page(void **state)
{
	struct pages p;
	uint8_t dst[1];

	pages_init(&p, PS, 1);
	assert_int_equal(enc(p.old, p.new, PS, PS, NULL), 0);
	assert_int_equal(xbzrle_encode(p.old, p.new, PS, dst, 0), 0);
	assert_int_equal(xbzrle_encode(p.old, p.old, PS, dst, 0), 0);
	pages_fini(&p);
}

static void test_one_byte(void **state)
{
	/* span 1001, zrun 1000, nzrun 1, the new byte */
	static const uint8_t want[] = { 0xe9, 0x07, 0xe8, 0x07, 0x01, 0xab };
	struct pages p;

	pages_init(&p, PS, 1);
	p.old[1000] = 0x12;
	p.new[1000] = 0xab;
	expect_encoding(&p, PS, want, sizeof(want));
	pages_fini(&p);
}

static void test_first_byte(void **state)
{
	static const uint8_t want[] = { 0x01, 0x00, 0x01, 0x5a };
	struct pages p;

	pages_init(&p, PS, 0);
	p.new[0] = 0x5a;
	expect_encoding(&p, PS, want, sizeof(want));
	pages_fini(&p);
}

static void test_last_byte(void **state)
{
	/* span 4096 = 0x80 0x20, zrun 4095 = 0xff 0x1f */
	static const uint8_t want[] = { 0x80, 0x20, 0xff, 0x1f, 0x01, 0x77 };
	struct pages p;

	pages_init(&p, PS, 1);
	p.old[PS - 1] = 0;
	p.new[PS - 1] = 0x77;
	expect_encoding(&p, PS, want, sizeof(want));
	pages_fini(&p);
}

static void test_short_gaps_absorbed(void **state)
{
	/* bytes 10 and 12 changed: one literal run 10..12 with byte 11 as is */
	static const uint8_t one[] = { 13, 10, 3, 0xa1, 0x00, 0xa2 };
	/* bytes 10 and 14 changed: gap of 3 starts a new pair */
	static const uint8_t two[] = { 15, 10, 1, 0xa1, 3, 1, 0xa2 };
	struct pages p;

	pages_init(&p, PS, 0);
	p.new[10] = 0xa1;
	p.new[12] = 0xa2;
	expect_encoding(&p, PS, one, sizeof(one));
	p.new[12] = 0;
	p.new[14] = 0xa2;
	expect_encoding(&p, PS, two, sizeof(two));
	pages_fini(&p);
}

static void test_alternating_bytes(void **state)
{
	struct pages p;
	uint8_t *out = xmalloc(xbzrle_bound(PS)), *page;
	int n;

	pages_init(&p, PS, 1);
	for (size_t i = 0; i < PS; i += 2)
		p.new[i] = (uint8_t)~p.old[i];
	/* span 4095 (2) + zrun 0 (1) + nzrun 4095 (2) + 4095 literal bytes */
	assert_int_equal(enc(p.old, p.new, PS, PS, NULL), -1);
	assert_int_equal(enc(p.old, p.new, PS, 100, NULL), -1);
	assert_int_equal(enc(p.old, p.new, PS, 4099, NULL), -1);
	n = xbzrle_encode(p.old, p.new, PS, out, xbzrle_bound(PS));
	assert_int_equal(n, 4100);
	/* every byte changed: span 4096 (2) + zrun 0 (1) + nzrun (2) + 4096 */
	for (size_t i = 1; i < PS; i += 2)
		p.new[i] = (uint8_t)~p.old[i];
	assert_int_equal(enc(p.old, p.new, PS, xbzrle_bound(PS), NULL), 4101);
	assert_int_equal(enc(p.old, p.new, PS, 4100, NULL), -1);
	for (size_t i = 1; i < PS; i += 2)
		p.new[i] = p.old[i];
	page = xdup(p.old, PS);
	assert_int_equal(dec(out, (size_t)n, page, PS), 0);
	assert_same(page, p.new, PS);
	free(page);
	free(out);
	pages_fini(&p);
}

static void test_worst_pattern(void **state)
{
	struct pages p;
	uint8_t *out = xmalloc(xbzrle_bound(PS)), *page;
	int n;

	/* one changed byte, three equal: the costliest pattern that pairs */
	pages_init(&p, PS, 1);
	for (size_t i = 0; i < PS; i += 4)
		p.new[i] = (uint8_t)~p.old[i];
	n = xbzrle_encode(p.old, p.new, PS, out, xbzrle_bound(PS));
	assert_int_equal(n, 2 + 3 * (PS / 4));
	page = xdup(p.old, PS);
	assert_int_equal(dec(out, (size_t)n, page, PS), 0);
	assert_same(page, p.new, PS);
	free(page);
	free(out);
	pages_fini(&p);
}

static void test_overflow(void **state)
{
	struct pages p;
	uint8_t dst[8];

	pages_init(&p, PS, 1);
	p.new[2000] ^= 1;	/* needs 2 + 2 + 1 + 1 = 6 bytes */
	for (size_t max = 0; max < 6; max++)
		assert_int_equal(enc(p.old, p.new, PS, max, NULL), -1);
	assert_int_equal(enc(p.old, p.new, PS, 6, NULL), 6);
	/* bad page sizes */
	assert_int_equal(xbzrle_encode(p.old, p.new, 0, dst, sizeof(dst)), -1);
	assert_int_equal(xbzrle_encode(p.old, p.new, XBZRLE_PAGE_MAX + 1ULL,
				       dst, sizeof(dst)), -1);
	pages_fini(&p);
}

/* --- random round trips --------------------------------------------------- */

/* Mutate new: density/65536 of bytes or words, or a few runs. */
static void mutate(uint8_t *new, size_t ps)
{
	unsigned int kind = (unsigned int)(rnd() % 4);
	uint64_t density = rnd() % 65537;

	if (kind == 0) {
		for (size_t i = 0; i < ps; i++)
			if (rnd() % 65536 < density)
				new[i] = (uint8_t)rnd();
	} else if (kind == 1) {
		for (size_t i = 0; i + 8 <= ps; i += 8)
			if (rnd() % 65536 < density)
				rnd_fill(new + i, 8);
	} else {
		unsigned int runs = (unsigned int)(rnd() % 8);

		for (unsigned int r = 0; r < runs; r++) {
			size_t at = rnd() % ps, len = rnd() % (ps - at) + 1;

			if (kind == 2)
				len = MIN_LEN(len, 40);
			rnd_fill(new + at, len);
		}
	}
}

static size_t pick_page_size(void)
{
	static const size_t sizes[] = { 1, 2, 7, 8, 9, 31, 32, 33, 127, 128,
					129, 1000, 4095, 4097, 8192, 65536 };

	if (rnd() % 4)
		return PS;
	return sizes[rnd() % (sizeof(sizes) / sizeof(sizes[0]))];
}

static void round_trip_one(void)
{
	size_t ps = pick_page_size(), bound = xbzrle_bound(ps);
	uint8_t *old = xmalloc(ps), *new, *a = xmalloc(bound),
		*b = xmalloc(bound), *page;
	int n, m;

	rnd_fill(old, ps);
	new = xdup(old, ps);
	mutate(new, ps);
	xbzrle_use_simd(false);
	n = xbzrle_encode(old, new, ps, a, bound);
	xbzrle_use_simd(true);
	m = xbzrle_encode(old, new, ps, b, bound);
	assert_true(n >= 0);
	assert_int_equal(n, m);
	assert_same(a, b, (size_t)n);
	page = xdup(old, ps);
	if (n == 0)
		assert_same(old, new, ps);
	else
		assert_int_equal(dec(a, (size_t)n, page, ps), 0);
	assert_same(page, new, ps);
	if (n > 0) {
		assert_int_equal(enc(old, new, ps, (size_t)n, NULL), n);
		assert_int_equal(enc(old, new, ps, (size_t)n - 1, NULL), -1);
	}
	free(page);
	free(old);
	free(new);
	free(a);
	free(b);
}

static void test_random_round_trips(void **state)
{
	rng_state = 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < 10000; i++)
		round_trip_one();
	xbzrle_use_simd(true);
}

/* --- hostile deltas ------------------------------------------------------- */

/* Decoding onto page (holding copy) must fail and leave it untouched. */
static void expect_reject_on(const uint8_t *src, size_t len, uint8_t *page,
			     const uint8_t *copy, size_t ps)
{
	assert_int_equal(dec(src, len, page, ps), -1);
	assert_same(page, copy, ps);
}

static void expect_reject(const uint8_t *src, size_t len, size_t ps)
{
	uint8_t *page = xmalloc(ps), *copy;

	rnd_fill(page, ps);
	copy = xdup(page, ps);
	expect_reject_on(src, len, page, copy, ps);
	free(page);
	free(copy);
}

static void test_truncations_and_extensions(void **state)
{
	rng_state = 42;
	for (int t = 0; t < 200; t++) {
		size_t ps = pick_page_size(), bound = xbzrle_bound(ps);
		uint8_t *old = xmalloc(ps), *new, *page, *d = xmalloc(bound + 1);
		int n;

		rnd_fill(old, ps);
		new = xdup(old, ps);
		mutate(new, ps);
		page = xdup(old, ps);
		n = xbzrle_encode(old, new, ps, d, bound);
		for (size_t cut = 0; n > 0 && cut < (size_t)n; cut++)
			expect_reject_on(d, cut, page, old, ps);
		for (int extra = 0; n > 0 && extra < 256; extra += 37) {
			d[n] = (uint8_t)extra;
			expect_reject(d, (size_t)n + 1, ps);
		}
		free(old);
		free(new);
		free(page);
		free(d);
	}
}

static void test_malformed(void **state)
{
	static const struct {
		const char *what;
		uint8_t len;
		uint8_t b[12];
	} bad[] = {
		{ "empty", 0, { 0 } },
		{ "span 0", 3, { 0x00, 0x00, 0x01 } },
		{ "span only", 1, { 0x04 } },
		{ "span past the page", 4, { 17, 0x00, 0x01, 'x' } },
		{ "pairs end before the span", 4, { 2, 0x00, 0x01, 'a' } },
		{ "zero zrun in a later pair", 9,
		  { 4, 0x00, 0x01, 'a', 0x00, 0x03, 'b', 'c', 'd' } },
		{ "zero nzrun", 4, { 4, 0x01, 0x00, 'a' } },
		{ "zrun reaching the span", 4, { 4, 0x04, 0x01, 'x' } },
		{ "nzrun past the span", 6, { 2, 0x00, 0x03, 'a', 'b', 'c' } },
		{ "literal past the delta", 5, { 4, 0x00, 0x04, 'a', 'b' } },
		{ "non-canonical span", 5, { 0x81, 0x00, 0x00, 0x01, 'a' } },
		{ "non-canonical zrun", 5, { 3, 0x82, 0x00, 0x01, 'a' } },
		{ "six-byte uleb", 9,
		  { 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00, 0x01, 'a' } },
		{ "huge span", 6, { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00 } },
		{ "trailing byte", 5, { 1, 0x00, 0x01, 'a', 0x00 } },
		{ "truncated nzrun", 3, { 0x10, 0x01, 0x80 } },
	};
	static const uint8_t good[] = { 4, 0x00, 0x01, 'a', 0x01, 0x02,
					'c', 'd' };
	uint8_t page[16] = { 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("# %s\n", bad[i].what);
		expect_reject(bad[i].b, bad[i].len, 16);
	}
	assert_int_equal(dec(good, sizeof(good), page, 16), 0);
	assert_same(page, "a\0cd\0\0\0\0", 8);
	assert_int_equal(xbzrle_decode(NULL, 0, page, 16), -1);
	assert_int_equal(xbzrle_decode(good, sizeof(good), page, 0), -1);
	assert_int_equal(xbzrle_decode(good, sizeof(good), NULL, 16), -1);
}

/* Small ulebs most of the time, so garbage sometimes parses. */
static uint8_t garbage_byte(void)
{
	switch (rnd() % 4) {
	case 0:
		return (uint8_t)(rnd() % 8);
	case 1:
		return (uint8_t)(rnd() % 32);
	default:
		return (uint8_t)rnd();
	}
}

static void test_random_garbage(void **state)
{
	int accepted = 0;

	rng_state = 7;
	for (int t = 0; t < 100000; t++) {
		size_t ps = (rnd() % 2) ? 64 : PS, len = rnd() % 48;
		uint8_t src[48], *page = xmalloc(ps), *copy;
		int rc;

		for (size_t i = 0; i < len; i++)
			src[i] = garbage_byte();
		rnd_fill(page, ps);
		copy = xdup(page, ps);
		rc = dec(src, len, page, ps);
		assert_true(rc == 0 || rc == -1);
		if (rc)
			assert_same(page, copy, ps);
		accepted += rc == 0;
		free(page);
		free(copy);
	}
	print_message("# %d of 100000 garbage deltas were well-formed\n",
		      accepted);
	assert_true(accepted > 0);
}

static void test_bit_flips(void **state)
{
	struct pages p;
	uint8_t *d = xmalloc(xbzrle_bound(PS)), *page = xmalloc(PS);
	int n;

	rng_state = 99;
	pages_init(&p, PS, 1);
	for (size_t i = 0; i < PS; i += 97)
		p.new[i] ^= 0x5a;
	n = xbzrle_encode(p.old, p.new, PS, d, xbzrle_bound(PS));
	assert_true(n > 0);
	for (size_t bit = 0; bit < (size_t)n * 8; bit++) {
		d[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		memcpy(page, p.old, PS);
		assert_true(dec(d, (size_t)n, page, PS) <= 0);
		d[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	free(d);
	free(page);
	pages_fini(&p);
}

/* --- xbzrle_save_page ----------------------------------------------------- */

static void test_save_page_verdicts(void **state)
{
	struct page_cache *c = page_cache_new(64 * PS, PS, NULL);
	struct xbzrle_stats st = { 0 };
	struct pages p;
	uint8_t dst[PS];
	size_t len = 99;

	assert_non_null(c);
	pages_init(&p, PS, 1);
	assert_int_equal(xbzrle_save_page(c, 1, 0, p.old, 1, dst, PS - 64,
					  &len, &st), XBZRLE_SEND_PAGE);
	assert_int_equal(len, 0);
	assert_same(page_cache_lookup(c, 1, 0), p.old, PS);
	assert_int_equal(xbzrle_save_page(c, 1, 0, p.old, 2, dst, PS - 64,
					  &len, &st), XBZRLE_SEND_NOTHING);
	p.new[5] ^= 0xff;
	assert_int_equal(xbzrle_save_page(c, 1, 0, p.new, 2, dst, PS - 64,
					  &len, &st), XBZRLE_SEND_DELTA);
	assert_int_equal(len, 4);
	assert_same(page_cache_lookup(c, 1, 0), p.new, PS);
	rnd_fill(p.old, PS);	/* now a random rewrite: overflow */
	assert_int_equal(xbzrle_save_page(c, 1, 0, p.old, 3, dst, PS - 64,
					  &len, NULL), XBZRLE_SEND_PAGE);
	assert_same(page_cache_lookup(c, 1, 0), p.old, PS);
	assert_int_equal(st.cache_misses, 1);
	assert_int_equal(st.cache_hits, 2);
	assert_int_equal(st.pages_unchanged, 1);
	assert_int_equal(st.pages_encoded, 1);
	assert_int_equal(st.bytes_encoded, 4);
	assert_int_equal(st.bytes_saved, PS + PS - 4);
	assert_int_equal(st.overflows, 0);	/* that call had stats NULL */
	pages_fini(&p);
	page_cache_free(c);
}

/*
 * A simulated migration: 256 source pages mutated between passes, a cache
 * of 32 pages, every verdict applied to a destination; after each pass
 * the destination equals the source.
 */
static void test_save_page_migration(void **state)
{
	enum { NPAGES = 256 };
	struct page_cache *c = page_cache_new(40 * PS, PS, NULL);
	struct xbzrle_stats st = { 0 };
	uint8_t *src = xmalloc(NPAGES * PS), *dest = xmalloc(NPAGES * PS);
	uint8_t snap[PS], dst[PS];

	assert_non_null(c);
	rng_state = 1234;
	rnd_fill(src, NPAGES * PS);
	memset(dest, 0, NPAGES * PS);
	for (uint64_t pass = 1; pass <= 12; pass++) {
		for (size_t pg = 0; pg < NPAGES; pg++) {
			size_t len;
			uint8_t *d = dest + pg * PS;

			if (pass > 1 && rnd() % 4)
				continue;	/* not dirty */
			if (pass > 1 && pg % 8 == 0)
				mutate(src + pg * PS, PS);
			memcpy(snap, src + pg * PS, PS);
			switch (xbzrle_save_page(c, 0, pg * PS, snap, pass, dst,
						 PS - 128, &len, &st)) {
			case XBZRLE_SEND_DELTA:
				assert_int_equal(dec(dst, len, d, PS), 0);
				break;
			case XBZRLE_SEND_PAGE:
				memcpy(d, snap, PS);
				break;
			case XBZRLE_SEND_NOTHING:
				break;
			default:
				fail();
			}
		}
		/* pages not re-sent were unchanged since their last send */
		assert_same(dest, src, NPAGES * PS);
	}
	assert_true(st.cache_hits > 0 && st.cache_misses > 0);
	assert_true(st.pages_encoded > 0 && st.pages_unchanged > 0);
	free(src);
	free(dest);
	page_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uleb_round_trip),
		cmocka_unit_test(test_uleb_rejects),
		cmocka_unit_test(test_zero_page),
		cmocka_unit_test(test_unchanged_page),
		cmocka_unit_test(test_one_byte),
		cmocka_unit_test(test_first_byte),
		cmocka_unit_test(test_last_byte),
		cmocka_unit_test(test_short_gaps_absorbed),
		cmocka_unit_test(test_alternating_bytes),
		cmocka_unit_test(test_worst_pattern),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_random_round_trips),
		cmocka_unit_test(test_truncations_and_extensions),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_random_garbage),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_save_page_verdicts),
		cmocka_unit_test(test_save_page_migration),
	};

	return cmocka_run_group_tests_name("xbzrle", tests, NULL, NULL);
}
