/*
 * xbzrle.h - XOR-based zero-run-length delta encoding of guest pages.
 *
 * A page that is sent again in a later pass is encoded against the copy
 * sent before (kept by page_cache.h on the source; the destination's own
 * memory holds the same bytes): unchanged stretches become a length,
 * changed stretches are sent literally. The wire format is normative in
 * docs/migration-stream.md ("XBZRLE delta"):
 *
 *	delta   = span pair pair*
 *	span    = uleb128   1..page_size: the pairs cover page[0..span)
 *	pair    = zrun nzrun byte{nzrun}
 *	zrun    = uleb128   bytes left as they are (0 only in the first pair)
 *	nzrun   = uleb128   >= 1: the next nzrun bytes are replaced by the
 *	                    literal bytes that follow (the NEW bytes, not XOR)
 *
 * Bytes from `span` on are unchanged. The pairs end exactly at `span` and
 * the delta exactly after them, so cutting a delta short or appending to
 * it is always detected. Pure code: depends on libc and base only.
 */
#ifndef MIG_XBZRLE_H
#define MIG_XBZRLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct page_cache;

/* Largest page the codec accepts (run lengths and results fit an int). */
#define XBZRLE_PAGE_MAX		(1u << 30)
/* Longest uleb128 the format allows: 5 bytes = 35 bits > XBZRLE_PAGE_MAX. */
#define XBZRLE_ULEB_MAX		5

/* --- uleb128 (little-endian base 128, canonical) ------------------------ */

/* Bytes uleb128 needs for v (1..10). */
size_t xbzrle_uleb_len(uint64_t v);
/* Write v at dst (room for xbzrle_uleb_len(v) bytes). Returns bytes written. */
size_t xbzrle_uleb_put(uint8_t *dst, uint64_t v);
/*
 * Read a canonical uleb128 of at most XBZRLE_ULEB_MAX bytes from src[0..len).
 * Returns bytes consumed, or -1 if truncated, too long or not canonical
 * (a redundant trailing 0x00 group such as 0x80 0x00).
 */
int xbzrle_uleb_get(const uint8_t *src, size_t len, uint64_t *v);

/* --- the codec ---------------------------------------------------------- */

/*
 * Encode `new` against `old` (both page_size bytes, any alignment) into
 * dst[0..dst_max). Returns the encoded length (> 0), 0 if the pages are
 * equal (nothing to send), or -1 if the delta would not fit in dst_max or
 * page_size is 0 / above XBZRLE_PAGE_MAX: the caller then sends the whole
 * page. On -1, dst holds garbage. `new` must not change during the call
 * (encode a private snapshot of a live guest page).
 *
 * Callers normally pass dst_max < page_size, so a delta is only used when
 * it is smaller than the page. With dst_max >= xbzrle_bound(page_size)
 * the encoder never overflows.
 */
int xbzrle_encode(const uint8_t *old, const uint8_t *new, size_t page_size,
		  uint8_t *dst, size_t dst_max);

/* Worst-case encoded size of one page (all pages fit in this). */
size_t xbzrle_bound(size_t page_size);

/*
 * Choose the encoder's scanners: enable = true selects AVX2 when the CPU
 * has it (the default), false the portable 8-byte-word scanners. Returns
 * whether AVX2 is now in use. For tests and benchmarks; the output is the
 * same either way.
 */
bool xbzrle_use_simd(bool enable);

/*
 * Apply the delta src[0..src_len) to page[0..page_size) in place. Returns 0,
 * or -1 on any malformed input: empty delta, truncated or non-canonical
 * uleb128, span 0 or past the page, a zero zrun after the first pair, a
 * zero nzrun, a run past the span, literal bytes past src_len, pairs that
 * end before the span, bytes after the last pair. The whole delta is
 * validated before the first byte of `page` is written, so on -1 the page
 * is untouched. Never reads or writes out of bounds.
 */
int xbzrle_decode(const uint8_t *src, size_t src_len, uint8_t *page,
		  size_t page_size);

/* --- engine glue (source side) ------------------------------------------ */

/* Counters for the migration engine, summed over a whole migration. */
struct xbzrle_stats {
	uint64_t cache_hits;		/* page found in the cache */
	uint64_t cache_misses;		/* not cached: sent whole */
	uint64_t overflows;		/* delta did not fit: sent whole */
	uint64_t pages_encoded;		/* sent as a delta */
	uint64_t pages_unchanged;	/* equal to the cached copy: nothing sent */
	uint64_t bytes_encoded;		/* delta bytes produced */
	uint64_t bytes_saved;		/* page bytes not sent thanks to XBZRLE */
};

enum xbzrle_verdict {
	XBZRLE_VERDICT_INVALID = 0,
	XBZRLE_SEND_DELTA,	/* send dst[0..*dst_len) as an XBZRLE record */
	XBZRLE_SEND_PAGE,	/* send `cur` whole (miss or overflow) */
	XBZRLE_SEND_NOTHING,	/* destination already has these bytes */
};

/*
 * Decide how to send one page and keep the cache equal to what the
 * destination will hold. `cur` must be a stable snapshot of the page (the
 * caller copies the guest page first and sends exactly these bytes if told
 * SEND_PAGE). On a hit the delta against the cached copy is written to
 * dst; the cache is then updated to `cur` whatever the outcome; on a miss
 * `cur` is inserted (the insert may be refused if its set holds only
 * recent pages; the page is sent whole either way). `generation` is the
 * dirty-log pass number (see page_cache_insert). stats may be NULL.
 *
 * Every page the engine sends by another path (zero page, raw page with
 * XBZRLE off) must be passed to page_cache_insert() or
 * page_cache_invalidate(), else a later delta would be computed against
 * bytes the destination does not have.
 */
enum xbzrle_verdict xbzrle_save_page(struct page_cache *c, uint32_t block,
				     uint64_t offset, const uint8_t *cur,
				     uint64_t generation, uint8_t *dst,
				     size_t dst_max, size_t *dst_len,
				     struct xbzrle_stats *stats);

#endif
