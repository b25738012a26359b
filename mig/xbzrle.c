/*
 * xbzrle.c - XBZRLE delta encoder/decoder and the source-side page helper.
 *
 * The encoder first scans backwards for the last changed byte (the span;
 * none: the page is unchanged), then alternates two forward scans over
 * (old, new) up to it: the end of a run of equal bytes and the end of a
 * run of differing bytes. All scans compare a word (8 bytes) or, on
 * x86-64 CPUs with AVX2, 32 bytes at a time, with a 128-byte (32-byte for
 * words) stride over equal stretches; page sizes that are not a multiple
 * of the word end with a byte loop, so each page is read about once.
 * Equal stretches of up to XB_ABSORB bytes between two changed ones are
 * sent as literal bytes instead of starting a new pair, since a pair
 * header costs at least two bytes (an encoder choice; the format allows
 * either).
 *
 * The decoder walks the delta twice: first to validate every length
 * against the source and page bounds, then to apply it, so a rejected
 * delta leaves the page untouched.
 */
#include "xbzrle.h"

#include <limits.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define XB_HAVE_AVX2 1
#define XB_AVX2 __attribute__((target("avx2")))
#endif

#include "page_cache.h"
#include "util.h"

/* Equal stretches this short between changes become literal bytes. */
#define XB_ABSORB	2

typedef size_t (*xb_scan_fn)(const uint8_t *a, const uint8_t *b, size_t i,
			     size_t n);

/* --- uleb128 ------------------------------------------------------------- */

static inline size_t xb_uleb_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static inline size_t xb_uleb_put(uint8_t *dst, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		dst[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	dst[n++] = (uint8_t)v;
	return n;
}

size_t xbzrle_uleb_len(uint64_t v)
{
	return xb_uleb_len(v);
}

size_t xbzrle_uleb_put(uint8_t *dst, uint64_t v)
{
	return xb_uleb_put(dst, v);
}

int xbzrle_uleb_get(const uint8_t *src, size_t len, uint64_t *v)
{
	uint64_t r = 0;

	for (size_t i = 0; i < len && i < XBZRLE_ULEB_MAX; i++) {
		uint8_t b = src[i];

		r |= (uint64_t)(b & 0x7f) << (7 * i);
		if (b & 0x80)
			continue;
		if (i && !b)
			return -1;	/* redundant high group: not canonical */
		*v = r;
		return (int)i + 1;
	}
	return -1;
}

/* --- scanners, one word at a time ---------------------------------------- */

static inline uint64_t xb_load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* 0x80 in every byte of x that is zero, 0 elsewhere (exact, no carries). */
static inline uint64_t xb_zero_bytes(uint64_t x)
{
	const uint64_t m = 0x7f7f7f7f7f7f7f7fULL;

	return ~(((x & m) + m) | x | m);
}

/* Index of the lowest-addressed non-zero byte of a loaded word (x != 0). */
static inline size_t xb_first_byte(uint64_t x)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (size_t)__builtin_ctzll(x) >> 3;
#else
	return (size_t)__builtin_clzll(x) >> 3;
#endif
}

/* End of the run of equal bytes of a and b starting at i. */
static inline size_t xb_eq_end(const uint8_t *a, const uint8_t *b, size_t i,
			       size_t n)
{
	for (; i + 32 <= n; i += 32) {
		uint64_t x = (xb_load64(a + i) ^ xb_load64(b + i)) |
			     (xb_load64(a + i + 8) ^ xb_load64(b + i + 8)) |
			     (xb_load64(a + i + 16) ^ xb_load64(b + i + 16)) |
			     (xb_load64(a + i + 24) ^ xb_load64(b + i + 24));
		if (x)
			break;
	}
	for (; i + 8 <= n; i += 8) {
		uint64_t x = xb_load64(a + i) ^ xb_load64(b + i);

		if (x)
			return i + xb_first_byte(x);
	}
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* End of the run of differing bytes of a and b starting at i. */
static inline size_t xb_ne_end(const uint8_t *a, const uint8_t *b, size_t i,
			       size_t n)
{
	for (; i + 8 <= n; i += 8) {
		uint64_t z = xb_zero_bytes(xb_load64(a + i) ^ xb_load64(b + i));

		if (z)
			return i + xb_first_byte(z);
	}
	while (i < n && a[i] != b[i])
		i++;
	return i;
}

/* Index of the highest-addressed non-zero byte of a loaded word (x != 0). */
static inline size_t xb_last_byte(uint64_t x)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (size_t)(63 - __builtin_clzll(x)) >> 3;
#else
	return (size_t)(63 - __builtin_ctzll(x)) >> 3;
#endif
}

/* One past the last differing byte of a[0..n) and b[0..n); 0 if equal. */
static inline size_t xb_span(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i = n;

	for (; i % 8; i--) {
		if (a[i - 1] != b[i - 1])
			return i;
	}
	for (; i >= 32; i -= 32) {
		const uint8_t *p = a + i - 32, *q = b + i - 32;
		uint64_t x = (xb_load64(p) ^ xb_load64(q)) |
			     (xb_load64(p + 8) ^ xb_load64(q + 8)) |
			     (xb_load64(p + 16) ^ xb_load64(q + 16)) |
			     (xb_load64(p + 24) ^ xb_load64(q + 24));
		if (x)
			break;
	}
	for (; i >= 8; i -= 8) {
		uint64_t x = xb_load64(a + i - 8) ^ xb_load64(b + i - 8);

		if (x)
			return i - 8 + xb_last_byte(x) + 1;
	}
	return 0;
}

/* --- scanners, AVX2 ------------------------------------------------------ */

#ifdef XB_HAVE_AVX2
XB_AVX2 static inline __m256i xb_xor32(const uint8_t *a, const uint8_t *b)
{
	return _mm256_xor_si256(_mm256_loadu_si256((const void *)a),
				_mm256_loadu_si256((const void *)b));
}

/* Bit k set when a[k] == b[k], k in 0..31. */
XB_AVX2 static inline uint32_t xb_eq_mask32(const uint8_t *a, const uint8_t *b)
{
	__m256i eq = _mm256_cmpeq_epi8(_mm256_loadu_si256((const void *)a),
				       _mm256_loadu_si256((const void *)b));

	return (uint32_t)_mm256_movemask_epi8(eq);
}

XB_AVX2 static inline size_t xb_eq_end_avx2(const uint8_t *a, const uint8_t *b,
					    size_t i, size_t n)
{
	/* short gaps between changes are common: probe 64 bytes first */
	for (int k = 0; k < 2 && i + 32 <= n; k++, i += 32) {
		uint32_t ne = ~xb_eq_mask32(a + i, b + i);

		if (ne)
			return i + (size_t)__builtin_ctz(ne);
	}
	for (; i + 128 <= n; i += 128) {
		__m256i x = _mm256_or_si256(
			_mm256_or_si256(xb_xor32(a + i, b + i),
					xb_xor32(a + i + 32, b + i + 32)),
			_mm256_or_si256(xb_xor32(a + i + 64, b + i + 64),
					xb_xor32(a + i + 96, b + i + 96)));
		if (!_mm256_testz_si256(x, x))
			break;
	}
	for (; i + 32 <= n; i += 32) {
		uint32_t ne = ~xb_eq_mask32(a + i, b + i);

		if (ne)
			return i + (size_t)__builtin_ctz(ne);
	}
	return xb_eq_end(a, b, i, n);
}

XB_AVX2 static inline size_t xb_span_avx2(const uint8_t *a, const uint8_t *b,
					  size_t n)
{
	size_t i = n;

	for (; i % 32; i--) {
		if (a[i - 1] != b[i - 1])
			return i;
	}
	for (; i >= 128; i -= 128) {
		const uint8_t *p = a + i - 128, *q = b + i - 128;
		__m256i x = _mm256_or_si256(
			_mm256_or_si256(xb_xor32(p, q), xb_xor32(p + 32, q + 32)),
			_mm256_or_si256(xb_xor32(p + 64, q + 64),
					xb_xor32(p + 96, q + 96)));
		if (!_mm256_testz_si256(x, x))
			break;
	}
	for (; i >= 32; i -= 32) {
		uint32_t ne = ~xb_eq_mask32(a + i - 32, b + i - 32);

		if (ne)
			return i - 32 + (size_t)(31 - __builtin_clz(ne)) + 1;
	}
	return 0;
}

XB_AVX2 static inline size_t xb_ne_end_avx2(const uint8_t *a, const uint8_t *b,
					    size_t i, size_t n)
{
	for (; i + 32 <= n; i += 32) {
		uint32_t eq = xb_eq_mask32(a + i, b + i);

		if (eq)
			return i + (size_t)__builtin_ctz(eq);
	}
	return xb_ne_end(a, b, i, n);
}
#endif

/* --- encoder ------------------------------------------------------------- */

/*
 * End of the literal run starting at `start` (a differing byte); *next is
 * the end of the equal run after it (n if the page ends equal). Returns 0
 * early when even the literal bytes plus two header bytes exceed `room`.
 */
static inline __attribute__((always_inline)) size_t
xb_literal_end(const uint8_t *old, const uint8_t *new, size_t start, size_t n,
	       size_t room, size_t *next, xb_scan_fn eq_end, xb_scan_fn ne_end)
{
	size_t j = start, d_end, e_end;

	for (;;) {
		d_end = ne_end(old, new, j, n);
		if (d_end - start + 2 > room)
			return 0;
		e_end = d_end < n ? eq_end(old, new, d_end, n) : n;
		if (e_end == n || e_end - d_end > XB_ABSORB)
			break;
		j = e_end;
	}
	*next = e_end;
	return d_end;
}

/*
 * Pairs covering new[0..span), appended at dst[d..max). Returns the total
 * length, or -1 when it would not fit.
 */
static inline __attribute__((always_inline)) int
xb_encode_pairs(const uint8_t *old, const uint8_t *new, size_t span,
		uint8_t *dst, size_t d, size_t max, xb_scan_fn eq_end,
		xb_scan_fn ne_end)
{
	size_t i = 0, start = eq_end(old, new, 0, span);

	for (;;) {
		size_t next, end, zlen, nzlen;

		end = xb_literal_end(old, new, start, span, max - d, &next,
				     eq_end, ne_end);
		if (!end)
			return -1;
		zlen = start - i;
		nzlen = end - start;
		if (xb_uleb_len(zlen) + xb_uleb_len(nzlen) + nzlen >
		    max - d)
			return -1;
		d += xb_uleb_put(dst + d, zlen);
		d += xb_uleb_put(dst + d, nzlen);
		memcpy(dst + d, new + start, nzlen);
		d += nzlen;
		if (next == span)
			return (int)d;
		i = end;
		start = next;
	}
}

/* The span header, then the pairs up to it. */
static inline __attribute__((always_inline)) int
xb_encode_span(const uint8_t *old, const uint8_t *new, size_t span,
	       uint8_t *dst, size_t max, xb_scan_fn eq_end, xb_scan_fn ne_end)
{
	size_t d;

	if (!span)
		return 0;
	if (xb_uleb_len(span) + 3 > max)
		return -1;
	d = xb_uleb_put(dst, span);
	return xb_encode_pairs(old, new, span, dst, d, max, eq_end, ne_end);
}

static int xb_encode_generic(const uint8_t *old, const uint8_t *new, size_t n,
			     uint8_t *dst, size_t max)
{
	return xb_encode_span(old, new, xb_span(old, new, n), dst, max,
			      xb_eq_end, xb_ne_end);
}

#ifdef XB_HAVE_AVX2
XB_AVX2 static int xb_encode_avx2(const uint8_t *old, const uint8_t *new,
				  size_t n, uint8_t *dst, size_t max)
{
	return xb_encode_span(old, new, xb_span_avx2(old, new, n), dst, max,
			      xb_eq_end_avx2, xb_ne_end_avx2);
}
#endif

/* -1 = not decided yet, 0 = word scanners, 1 = AVX2. */
static int xb_simd = -1;

static int xb_simd_detect(void)
{
#ifdef XB_HAVE_AVX2
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
	return 0;
#endif
}

bool xbzrle_use_simd(bool enable)
{
	int v = enable ? xb_simd_detect() : 0;

	__atomic_store_n(&xb_simd, v, __ATOMIC_RELAXED);
	return v;
}

int xbzrle_encode(const uint8_t *old, const uint8_t *new, size_t page_size,
		  uint8_t *dst, size_t dst_max)
{
	size_t max = MIN(dst_max, (size_t)INT_MAX);
	int simd = __atomic_load_n(&xb_simd, __ATOMIC_RELAXED);

	if (!page_size || page_size > XBZRLE_PAGE_MAX)
		return -1;
	if (simd < 0) {
		simd = xb_simd_detect();
		__atomic_store_n(&xb_simd, simd, __ATOMIC_RELAXED);
	}
#ifdef XB_HAVE_AVX2
	if (simd)
		return xb_encode_avx2(old, new, page_size, dst, max);
#endif
	return xb_encode_generic(old, new, page_size, dst, max);
}

size_t xbzrle_bound(size_t page_size)
{
	/*
	 * span: <= 5 bytes; first pair: <= 3 header bytes beyond the bytes
	 * it covers (if its literal is < 16 KiB); later pairs cover >= 3
	 * equal bytes with a zrun uleb at least 2 bytes shorter, so only
	 * literals of >= 16 KiB add (<= 3 bytes each).
	 */
	return page_size + 16 + (page_size >> 12);
}

/* --- decoder ------------------------------------------------------------- */

/* Validate the pairs after the span header; with page != NULL apply them. */
static int xb_walk(const uint8_t *src, size_t len, size_t s, uint8_t *page,
		   size_t span)
{
	size_t first = s, p = 0;

	while (p < span) {
		uint64_t z, nz;
		int k = xbzrle_uleb_get(src + s, len - s, &z);

		if (k < 0 || (z == 0 && s != first) || z >= span - p)
			return -1;
		s += (size_t)k;
		p += z;
		k = xbzrle_uleb_get(src + s, len - s, &nz);
		if (k < 0 || nz == 0 || nz > span - p || nz > len - s - (size_t)k)
			return -1;
		s += (size_t)k;
		if (page)
			memcpy(page + p, src + s, nz);
		s += nz;
		p += nz;
	}
	return s == len ? 0 : -1;	/* trailing bytes */
}

int xbzrle_decode(const uint8_t *src, size_t src_len, uint8_t *page,
		  size_t page_size)
{
	uint64_t span;
	int k;

	if (!src || !page || !page_size || page_size > XBZRLE_PAGE_MAX)
		return -1;
	k = xbzrle_uleb_get(src, src_len, &span);
	if (k < 0 || span == 0 || span > page_size)
		return -1;
	if (xb_walk(src, src_len, (size_t)k, NULL, span))
		return -1;
	return xb_walk(src, src_len, (size_t)k, page, span);
}

/* --- engine glue --------------------------------------------------------- */

static void xb_account_delta(struct xbzrle_stats *st, size_t page_size,
			     size_t len)
{
	st->pages_encoded++;
	st->bytes_encoded += len;
	if (len < page_size)
		st->bytes_saved += page_size - len;
}

enum xbzrle_verdict xbzrle_save_page(struct page_cache *c, uint32_t block,
				     uint64_t offset, const uint8_t *cur,
				     uint64_t generation, uint8_t *dst,
				     size_t dst_max, size_t *dst_len,
				     struct xbzrle_stats *stats)
{
	struct xbzrle_stats scratch = { 0 };
	size_t ps = page_cache_page_size(c);
	const uint8_t *old = page_cache_lookup(c, block, offset);
	int n;

	if (!stats)
		stats = &scratch;
	*dst_len = 0;
	if (!old) {
		stats->cache_misses++;
		page_cache_insert(c, block, offset, cur, generation);
		return XBZRLE_SEND_PAGE;
	}
	stats->cache_hits++;
	n = xbzrle_encode(old, cur, ps, dst, dst_max);
	/* the destination will hold `cur` whatever is sent */
	page_cache_insert(c, block, offset, cur, generation);
	if (n < 0) {
		stats->overflows++;
		return XBZRLE_SEND_PAGE;
	}
	if (n == 0) {
		stats->pages_unchanged++;
		stats->bytes_saved += ps;
		return XBZRLE_SEND_NOTHING;
	}
	xb_account_delta(stats, ps, (size_t)n);
	*dst_len = (size_t)n;
	return XBZRLE_SEND_DELTA;
}
