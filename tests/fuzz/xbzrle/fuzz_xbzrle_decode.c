/*
 * fuzz_xbzrle_decode.c - the XBZRLE decoder on hostile deltas, and the
 * encoder/decoder round trip.
 *
 * Byte 0 picks the mode (bit 0) and a page size (bits 1..3: 1, 7, 8, 64,
 * 100, 512, 4096 or 4097 bytes).
 *  - Decode (bit 0 clear): the rest is a delta applied to a page holding a
 *    fixed pattern. Checked beyond ASan/UBSan: a rejected delta leaves the
 *    page untouched; an accepted one re-encodes (pattern -> result) to a
 *    delta that decodes to the same result.
 *  - Round trip (bit 0 set): byte 1 picks dst_max, the rest is a list of
 *    edits {u16 offset, u8 length, u8 value} applied to a patterned old
 *    page to make the new one. encode(old, new) must decode back to new,
 *    must fit whenever dst_max >= xbzrle_bound(), must return 0 only for
 *    equal pages, and the AVX2 and word scanners must agree byte for byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xbzrle.h"

#define MIN_EDIT(a, b) ((size_t)(a) < (b) ? (size_t)(a) : (b))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t page_sizes[8] = { 1, 7, 8, 64, 100, 512, 4096, 4097 };

static void pattern(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + (i >> 8));
}

/* Encode old -> new with both scanners; they must agree. */
static int encode_both(const uint8_t *old, const uint8_t *new, size_t ps,
		       uint8_t *dst, size_t max)
{
	uint8_t *other = malloc(max ? max : 1);
	int n, m;

	if (!other)
		abort();
	xbzrle_use_simd(false);
	m = xbzrle_encode(old, new, ps, other, max);
	xbzrle_use_simd(true);
	n = xbzrle_encode(old, new, ps, dst, max);
	if (n != m || (n > 0 && memcmp(dst, other, (size_t)n)))
		abort();
	free(other);
	return n;
}

/* new must equal old patched with the delta enc[0..n). */
static void check_delta(const uint8_t *old, const uint8_t *new, size_t ps,
			const uint8_t *enc, int n)
{
	uint8_t *page = malloc(ps);

	if (!page)
		abort();
	memcpy(page, old, ps);
	if (n < 0 || (n == 0 && memcmp(old, new, ps)))
		abort();
	if (n > 0 && xbzrle_decode(enc, (size_t)n, page, ps))
		abort();
	if (memcmp(page, new, ps))
		abort();
	free(page);
}

static void fuzz_decode(const uint8_t *src, size_t len, size_t ps)
{
	size_t bound = xbzrle_bound(ps);
	uint8_t *orig = malloc(ps), *page = malloc(ps), *enc = malloc(bound);

	if (!orig || !page || !enc)
		abort();
	pattern(orig, ps);
	memcpy(page, orig, ps);
	if (xbzrle_decode(src, len, page, ps)) {
		if (memcmp(page, orig, ps))
			abort();
	} else {
		check_delta(orig, page, ps, enc,
			    encode_both(orig, page, ps, enc, bound));
	}
	free(orig);
	free(page);
	free(enc);
}

static void fuzz_round_trip(const uint8_t *in, size_t len, size_t ps)
{
	size_t bound = xbzrle_bound(ps), max;
	uint8_t *old = malloc(ps), *new = malloc(ps), *enc;
	int n;

	if (!old || !new || !len)
		goto out;
	max = in[0] < 0xf0 ? (size_t)in[0] * ps / 0xe0 : bound;
	pattern(old, ps);
	memcpy(new, old, ps);
	for (size_t i = 1; i + 4 <= len; i += 4) {
		size_t off = (size_t)(in[i] | in[i + 1] << 8) % ps;
		size_t n_edit = MIN_EDIT(in[i + 2], ps - off);

		memset(new + off, in[i + 3], n_edit);
	}
	enc = malloc(max ? max : 1);
	if (!enc)
		abort();
	n = encode_both(old, new, ps, enc, max);
	if (n < 0 && max >= bound)
		abort();
	if (n >= 0)
		check_delta(old, new, ps, enc, n);
	free(enc);
out:
	free(old);
	free(new);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t ps;

	if (!size)
		return 0;
	ps = page_sizes[(data[0] >> 1) & 7];
	if (data[0] & 1)
		fuzz_round_trip(data + 1, size - 1, ps);
	else
		fuzz_decode(data + 1, size - 1, ps);
	return 0;
}
