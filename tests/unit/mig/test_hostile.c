/*
 * test_hostile.c - the hostile-input corpus as regression tests: truncated,
 * oversized, out-of-range and reordered migration streams (post-copy and
 * XBZRLE records included) run through the stream loader against a fake
 * destination, and malformed post-copy control messages (PC_REQ,
 * PC_BITMAP, PC_DONE, the recovery id) through their decoders. Every case
 * must fail with the expected code and a message that names the problem;
 * none may crash, hang or leak (the unit suite also runs under ASan+UBSan).
 * Sweeps cut a valid stream at every length and swap every pair of
 * adjacent records. `test_mig_hostile --seeds DIR` writes the valid
 * post-copy stream and every case as seeds for tests/fuzz/mig.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "mig_test_util.h"
#include "postcopy.h"
#include "util.h"
#include "xbzrle.h"

#define PS 4096u
#define BLOCK_ID 1u
#define BLOCK_PAGES 64u			/* one bitmap word */
#define FEATS (MIG_FEAT_XBZRLE | MIG_FEAT_POSTCOPY)

/* ---- building streams ---- */

struct pl {				/* a little-endian payload */
	uint8_t b[PS + 64];
	size_t n;
};

static void pl_u32(struct pl *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p->b[p->n++] = (uint8_t)(v >> (8 * i));
}

static void pl_u64(struct pl *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p->b[p->n++] = (uint8_t)(v >> (8 * i));
}

static void pl_fill(struct pl *p, uint8_t c, size_t n)
{
	memset(p->b + p->n, c, n);
	p->n += n;
}

static void rec(struct mig_stream *w, uint16_t type, const struct pl *p)
{
	struct mig_rec_hdr rh = { .type = type, .length = p ? p->n : 0 };

	mig_stream_put_record(w, &rh, p ? p->b : NULL);
}

/* A record header that announces `length` bytes and brings none. */
static void rec_lying(struct mig_stream *w, uint16_t type, uint64_t length)
{
	mig_stream_put_u16(w, type);
	mig_stream_put_u16(w, 0);
	mig_stream_put_u32(w, 0);
	mig_stream_put_u64(w, length);
}

static void header(struct mig_stream *w, uint32_t features)
{
	struct mig_header h;

	mig_header_init(&h, PS);
	h.features = features;
	mig_stream_put_header(w, &h);
}

static void prologue(struct mig_stream *w)
{
	struct mig_ram_block b = { .id = BLOCK_ID, .page_size = PS,
				   .size = BLOCK_PAGES * PS, .idstr = "ram0" };

	header(w, FEATS);
	mig_stream_put_config(w, "{}", 2);
	mig_stream_put_ram_blocks(w, &b, 1);
}

static void page_rec(struct mig_stream *w, uint32_t block, uint64_t off)
{
	struct pl p = { .n = 0 };

	pl_u32(&p, block);
	pl_u64(&p, off);
	pl_fill(&p, 0xab, PS);
	rec(w, MIG_REC_RAM_PAGE, &p);
}

static void zero_rec(struct mig_stream *w, uint64_t off, uint64_t npages)
{
	struct pl p = { .n = 0 };

	pl_u32(&p, BLOCK_ID);
	pl_u64(&p, off);
	pl_u64(&p, npages);
	rec(w, MIG_REC_RAM_ZERO, &p);
}

static void xbzrle_rec(struct mig_stream *w, uint64_t off, const uint8_t *d, size_t n)
{
	struct pl p = { .n = 0 };

	pl_u32(&p, BLOCK_ID);
	pl_u64(&p, off);
	memcpy(p.b + p.n, d, n);
	p.n += n;
	rec(w, MIG_REC_RAM_XBZRLE, &p);
}

static void discard_rec(struct mig_stream *w, uint32_t block, uint64_t off,
			uint32_t nwords, uint64_t word)
{
	struct pl p = { .n = 0 };

	pl_u32(&p, block);
	pl_u64(&p, off);
	pl_u32(&p, nwords);
	for (uint32_t i = 0; i < nwords && p.n + 8 <= sizeof(p.b); i++)
		pl_u64(&p, word);
	rec(w, MIG_REC_PC_DISCARD, &p);
}

/* ---- the fake destination ---- */

static int h_discard(void *ctx, const struct mig_ram_block *blk, uint64_t offset,
		     const uint64_t *words, uint32_t nwords, struct err *err)
{
	(void)ctx;
	return mig_pc_discard_check(blk->size, PS, offset, words, nwords, err);
}

static int h_listen(void *ctx, struct err *err)
{
	(void)ctx; (void)err;
	return 0;
}

/* As the destination engine does: decode into the page, refuse bad deltas. */
static int h_xbzrle(void *ctx, const struct mig_ram_block *blk, uint64_t offset,
		    const uint8_t *delta, size_t len, struct err *err)
{
	uint8_t *mem = fake_mem(ctx, blk->idstr, NULL);

	if (!mem)
		return err_set(err, -EPROTO, "RAM_XBZRLE: no block %u", blk->id);
	if (xbzrle_decode(delta, len, mem + offset, PS))
		return err_set(err, -EPROTO, "RAM_XBZRLE at 0x%llx: malformed delta",
			       (unsigned long long)offset);
	return 0;
}

/* Load a whole stream; 0, or the error with its message in *e. */
static int load(const uint8_t *data, size_t len, struct err *e)
{
	struct mig_load_ops ops = fake_ops;
	struct fake_target t;
	struct mig_loader l;
	struct mig_stream r;
	int rc;

	ops.on_pc_discard = h_discard;
	ops.on_pc_listen = h_listen;
	ops.on_ram_xbzrle = h_xbzrle;
	fake_init(&t, false);
	mig_stream_init_mem_reader(&r, data, len);
	mig_loader_init(&l, &r, &ops, &t);
	l.features_ok = FEATS;
	rc = mig_loader_header(&l, e);
	while (!rc)
		rc = mig_loader_step(&l, e);
	mig_loader_fini(&l);
	fake_fini(&t);
	return rc < 0 ? rc : 0;
}

/* ---- the table ---- */

struct hostile_case {
	const char *name;
	void (*build)(struct mig_stream *w);
	int code;			/* expected error */
	const char *want;		/* the message names the problem */
};

static void c_empty(struct mig_stream *w) { (void)w; }

static void c_header_cut(struct mig_stream *w)
{
	header(w, FEATS);
	w->len = 10;
}

static void c_rec_hdr_cut(struct mig_stream *w)
{
	prologue(w);
	mig_stream_put_u16(w, MIG_REC_RAM_PAGE);
	mig_stream_put_u16(w, 0);
}

static void c_page_cut(struct mig_stream *w)
{
	prologue(w);
	page_rec(w, BLOCK_ID, 0);
	w->len -= 100;
}

static void c_no_eof(struct mig_stream *w)
{
	prologue(w);
	page_rec(w, BLOCK_ID, 0);
}

static void c_bad_magic(struct mig_stream *w)
{
	header(w, FEATS);
	w->buf[0] = 'X';
}

static void c_major(struct mig_stream *w)
{
	struct mig_header h;

	mig_header_init(&h, PS);
	h.major = 2;
	mig_stream_put_header(w, &h);
}

static void c_page_size(struct mig_stream *w)
{
	uint32_t crc;

	header(w, FEATS);
	w->buf[16] = 0x01;	/* page_size 4096 -> 4097, with a valid crc */
	crc = mig_crc32c(0, w->buf, 28);
	for (int i = 0; i < 4; i++)
		w->buf[28 + i] = (uint8_t)(crc >> (8 * i));
}

static void c_unknown_feature(struct mig_stream *w)
{
	header(w, 1u << 20);
}

static void c_config_huge(struct mig_stream *w)
{
	header(w, FEATS);
	rec_lying(w, MIG_REC_CONFIG, MIG_CONFIG_MAX + 1ULL);
}

static void c_section_huge(struct mig_stream *w)
{
	prologue(w);
	rec_lying(w, MIG_REC_SECTION_FULL, 1ULL << 40);
}

static void c_skip_huge(struct mig_stream *w)
{
	prologue(w);
	mig_stream_put_u16(w, 0x7777);
	mig_stream_put_u16(w, MIG_RECF_OPTIONAL);
	mig_stream_put_u32(w, 0);
	mig_stream_put_u64(w, MIG_SKIP_MAX + 1ULL);
}

static void c_unknown_mandatory(struct mig_stream *w)
{
	prologue(w);
	rec(w, 0x7777, NULL);
}

static void c_blocks_many(struct mig_stream *w)
{
	struct pl p = { .n = 0 };

	header(w, FEATS);
	mig_stream_put_config(w, "{}", 2);
	pl_u32(&p, MIG_RAM_BLOCKS_MAX + 1);
	rec(w, MIG_REC_RAM_BLOCKS, &p);
}

static void c_batch_many(struct mig_stream *w)
{
	struct pl p = { .n = 0 };

	prologue(w);
	pl_u32(&p, BLOCK_ID);
	pl_u32(&p, MIG_RAM_BATCH_MAX + 1);
	rec(w, MIG_REC_RAM_PAGES, &p);
}

static void c_page_past_end(struct mig_stream *w)
{
	prologue(w);
	page_rec(w, BLOCK_ID, BLOCK_PAGES * PS);
}

static void c_page_unaligned(struct mig_stream *w)
{
	prologue(w);
	page_rec(w, BLOCK_ID, 100);
}

static void c_page_unknown_block(struct mig_stream *w)
{
	prologue(w);
	page_rec(w, 9, 0);
}

static void c_zero_overflow(struct mig_stream *w)
{
	prologue(w);
	zero_rec(w, PS, UINT64_MAX / PS + 2);	/* offset + n x page wraps */
}

static void c_zero_none(struct mig_stream *w)
{
	prologue(w);
	zero_rec(w, 0, 0);
}

static void c_page_before_blocks(struct mig_stream *w)
{
	header(w, FEATS);
	mig_stream_put_config(w, "{}", 2);
	page_rec(w, BLOCK_ID, 0);
}

static void c_blocks_twice(struct mig_stream *w)
{
	struct mig_ram_block b = { .id = BLOCK_ID, .page_size = PS,
				   .size = BLOCK_PAGES * PS, .idstr = "ram0" };

	prologue(w);
	mig_stream_put_ram_blocks(w, &b, 1);
}

static void c_part_before_start(struct mig_stream *w)
{
	struct mig_rec_hdr rh = { .type = MIG_REC_SECTION_PART, .section_id = 5,
				  .length = 1 };

	prologue(w);
	mig_stream_put_record(w, &rh, "x");
}

static void c_end_without_start(struct mig_stream *w)
{
	prologue(w);
	mig_stream_put_section_end(w, 5);
}

static void c_xbzrle_no_feature(struct mig_stream *w)
{
	static const uint8_t d[] = { 0x01, 0x00, 0x01, 0x5a };
	struct mig_ram_block b = { .id = BLOCK_ID, .page_size = PS,
				   .size = BLOCK_PAGES * PS, .idstr = "ram0" };

	header(w, 0);
	mig_stream_put_config(w, "{}", 2);
	mig_stream_put_ram_blocks(w, &b, 1);
	xbzrle_rec(w, 0, d, sizeof(d));
}

static void c_xbzrle_span_past_page(struct mig_stream *w)
{
	/* span 4097: the pairs would cover more than the page */
	static const uint8_t d[] = { 0x81, 0x20, 0x00, 0x01, 0x55 };

	prologue(w);
	xbzrle_rec(w, 0, d, sizeof(d));
}

static void c_xbzrle_truncated_literal(struct mig_stream *w)
{
	static const uint8_t d[] = { 0x10, 0x00, 0x10, 0x55, 0x55 };	/* 16 wanted, 2 there */

	prologue(w);
	xbzrle_rec(w, 0, d, sizeof(d));
}

static void c_xbzrle_oversized(struct mig_stream *w)
{
	static uint8_t d[PS + 1];

	prologue(w);
	xbzrle_rec(w, 0, d, sizeof(d));
}

static void c_xbzrle_tiny(struct mig_stream *w)
{
	static const uint8_t d[] = { 0x00 };

	prologue(w);
	xbzrle_rec(w, 0, d, sizeof(d));
}

static void c_xbzrle_past_end(struct mig_stream *w)
{
	static const uint8_t d[] = { 0x01, 0x00, 0x01, 0x5a };

	prologue(w);
	xbzrle_rec(w, BLOCK_PAGES * PS, d, sizeof(d));
}

static void c_discard_no_feature(struct mig_stream *w)
{
	struct mig_ram_block b = { .id = BLOCK_ID, .page_size = PS,
				   .size = BLOCK_PAGES * PS, .idstr = "ram0" };

	header(w, 0);
	mig_stream_put_config(w, "{}", 2);
	mig_stream_put_ram_blocks(w, &b, 1);
	discard_rec(w, BLOCK_ID, 0, 1, 1);
}

static void c_discard_past_end(struct mig_stream *w)
{
	prologue(w);
	discard_rec(w, BLOCK_ID, 64 * PS, 1, 1);
}

static void c_discard_unaligned(struct mig_stream *w)
{
	prologue(w);
	discard_rec(w, BLOCK_ID, PS, 1, 1);
}

static void c_discard_too_many_words(struct mig_stream *w)
{
	struct pl p = { .n = 0 };

	prologue(w);
	pl_u32(&p, BLOCK_ID);
	pl_u64(&p, 0);
	pl_u32(&p, MIG_PC_DISCARD_WORDS_MAX + 1);
	rec(w, MIG_REC_PC_DISCARD, &p);
}

static void c_discard_length_mismatch(struct mig_stream *w)
{
	struct pl p = { .n = 0 };

	prologue(w);
	pl_u32(&p, BLOCK_ID);
	pl_u64(&p, 0);
	pl_u32(&p, 2);
	pl_u64(&p, 1);		/* one word, two announced */
	rec(w, MIG_REC_PC_DISCARD, &p);
}

static void c_discard_unknown_block(struct mig_stream *w)
{
	prologue(w);
	discard_rec(w, 7, 0, 1, 1);
}

static void c_discard_before_blocks(struct mig_stream *w)
{
	header(w, FEATS);
	mig_stream_put_config(w, "{}", 2);
	discard_rec(w, BLOCK_ID, 0, 1, 1);
}

static void c_discard_after_listen(struct mig_stream *w)
{
	prologue(w);
	mig_stream_put_pc_listen(w);
	discard_rec(w, BLOCK_ID, 0, 1, 1);
}

static void c_listen_twice(struct mig_stream *w)
{
	prologue(w);
	mig_stream_put_pc_listen(w);
	mig_stream_put_pc_listen(w);
}

static void c_listen_before_blocks(struct mig_stream *w)
{
	header(w, FEATS);
	mig_stream_put_config(w, "{}", 2);
	mig_stream_put_pc_listen(w);
}

static void c_listen_with_payload(struct mig_stream *w)
{
	struct pl p = { .n = 0 };

	prologue(w);
	pl_u32(&p, 1);
	rec(w, MIG_REC_PC_LISTEN, &p);
}

static void c_iter_after_listen(struct mig_stream *w)
{
	prologue(w);
	mig_stream_put_pc_listen(w);
	mig_stream_put_iter_end(w, 1);
}

static void c_xbzrle_after_listen(struct mig_stream *w)
{
	static const uint8_t d[] = { 0x01, 0x00, 0x01, 0x5a };

	prologue(w);
	mig_stream_put_pc_listen(w);
	xbzrle_rec(w, 0, d, sizeof(d));
}

static const struct hostile_case cases[] = {
	/* truncated */
	{ "empty stream", c_empty, -ENODATA, "truncated" },
	{ "header cut at 10 bytes", c_header_cut, -ENODATA, "truncated" },
	{ "record header cut", c_rec_hdr_cut, -ENODATA, "truncated" },
	{ "RAM_PAGE cut inside the page", c_page_cut, -ENODATA, "truncated" },
	{ "no EOF record", c_no_eof, -ENODATA, "truncated" },
	/* out of range: header */
	{ "bad magic", c_bad_magic, -EPROTO, "magic" },
	{ "major 2", c_major, -EPROTONOSUPPORT, "major" },
	{ "page size 4097", c_page_size, -EPROTO, "page" },
	{ "unknown feature bit", c_unknown_feature, -EPROTONOSUPPORT, "feature" },
	/* oversized */
	{ "CONFIG over 1 MiB", c_config_huge, -EMSGSIZE, "CONFIG" },
	{ "SECTION_FULL of 1 TiB", c_section_huge, -EMSGSIZE, "SECTION_FULL" },
	{ "optional record over the skip limit", c_skip_huge, -EMSGSIZE, "" },
	{ "unknown mandatory record", c_unknown_mandatory, -EPROTO, "0x7777" },
	{ "RAM_BLOCKS with 257 blocks", c_blocks_many, -EPROTO, "RAM_BLOCKS" },
	{ "RAM_PAGES with 1025 pages", c_batch_many, -EPROTO, "RAM_PAGES" },
	/* out of range: RAM */
	{ "RAM_PAGE past the block", c_page_past_end, -EPROTO, "offset" },
	{ "RAM_PAGE not page aligned", c_page_unaligned, -EPROTO, "offset" },
	{ "RAM_PAGE unknown block", c_page_unknown_block, -EPROTO, "block" },
	{ "RAM_ZERO run wrapping around", c_zero_overflow, -EPROTO, "RAM_ZERO" },
	{ "RAM_ZERO of no pages", c_zero_none, -EPROTO, "RAM_ZERO" },
	/* reordered */
	{ "RAM_PAGE before RAM_BLOCKS", c_page_before_blocks, -EPROTO, "RAM_BLOCKS" },
	{ "RAM_BLOCKS twice", c_blocks_twice, -EPROTO, "RAM_BLOCKS" },
	{ "SECTION_PART before SECTION_START", c_part_before_start, -EPROTO, "section" },
	{ "SECTION_END without a start", c_end_without_start, -EPROTO, "section" },
	/* XBZRLE */
	{ "RAM_XBZRLE without the feature", c_xbzrle_no_feature, -EPROTO, "XBZRLE" },
	{ "XBZRLE span past the page", c_xbzrle_span_past_page, -EPROTO, "malformed delta" },
	{ "XBZRLE literal cut short", c_xbzrle_truncated_literal, -EPROTO, "malformed delta" },
	{ "XBZRLE delta longer than a page", c_xbzrle_oversized, -EPROTO, "RAM_XBZRLE at stream offset 96: length 4109" },
	{ "XBZRLE delta of 1 byte", c_xbzrle_tiny, -EPROTO, "RAM_XBZRLE at stream offset 96: length 13" },
	{ "XBZRLE page past the block", c_xbzrle_past_end, -EPROTO, "offset" },
	/* post-copy switch records */
	{ "POSTCOPY_DISCARD without the feature", c_discard_no_feature, -EPROTO, "POSTCOPY" },
	{ "POSTCOPY_DISCARD past the block", c_discard_past_end, -EPROTO, "block" },
	{ "POSTCOPY_DISCARD offset not 64-page aligned", c_discard_unaligned, -EPROTO, "offset" },
	{ "POSTCOPY_DISCARD 4097 words", c_discard_too_many_words, -EPROTO, "POSTCOPY_DISCARD" },
	{ "POSTCOPY_DISCARD length mismatch", c_discard_length_mismatch, -EPROTO, "POSTCOPY_DISCARD" },
	{ "POSTCOPY_DISCARD unknown block", c_discard_unknown_block, -EPROTO, "block" },
	{ "POSTCOPY_DISCARD before RAM_BLOCKS", c_discard_before_blocks, -EPROTO, "unknown RAM block" },
	{ "POSTCOPY_DISCARD after LISTEN", c_discard_after_listen, -EPROTO, "POSTCOPY_LISTEN" },
	{ "POSTCOPY_LISTEN twice", c_listen_twice, -EPROTO, "POSTCOPY_LISTEN" },
	{ "POSTCOPY_LISTEN before RAM_BLOCKS", c_listen_before_blocks, -EPROTO, "RAM_BLOCKS" },
	{ "POSTCOPY_LISTEN with a payload", c_listen_with_payload, -EMSGSIZE, "POSTCOPY_LISTEN" },
	{ "RAM_ITER_END after LISTEN", c_iter_after_listen, -EPROTO, "POSTCOPY_LISTEN" },
	{ "RAM_XBZRLE after LISTEN", c_xbzrle_after_listen, -EPROTO, "POSTCOPY_LISTEN" },
};

static bool check_case(const struct hostile_case *c)
{
	bool ok;

	struct mig_stream w;
	struct err e = { 0 };
	int rc;

	mig_stream_init_mem_writer(&w, 0);
	c->build(&w);
	assert_int_equal(mig_stream_error(&w), 0);
	rc = load(w.buf, w.len, &e);
	ok = rc == c->code && e.code == rc && e.msg[0] && strstr(e.msg, c->want);
	if (!ok)
		print_error("case '%s': got %d '%s', want %d with '%s'\n", c->name, rc,
			    e.msg, c->code, c->want);
	mig_stream_fini(&w);
	return ok;
}

static void test_stream_cases(void **state)
{
	size_t bad = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		bad += !check_case(&cases[i]);
	assert_int_equal(bad, 0);
}

/* ---- sweeps over a valid stream with every record kind ---- */

static void valid_stream(struct mig_stream *w)
{
	static const uint8_t d[] = { 0x02, 0x00, 0x02, 0x11, 0x22 };
	uint64_t off[2] = { 2 * PS, 3 * PS };
	static uint8_t pg[PS];
	const void *ptr[2] = { pg, pg };

	prologue(w);
	page_rec(w, BLOCK_ID, 0);
	zero_rec(w, PS, 1);
	mig_stream_put_ram_batch(w, BLOCK_ID, off, ptr, 2);
	mig_stream_put_iter_end(w, 1);
	xbzrle_rec(w, 0, d, sizeof(d));
	discard_rec(w, BLOCK_ID, 0, 1, 0xf0);
	mig_stream_put_pc_listen(w);
	page_rec(w, BLOCK_ID, 4 * PS);
	zero_rec(w, 5 * PS, 3);
	mig_stream_put_eof(w);
}

static void test_valid_stream_loads(void **state)
{
	struct mig_stream w;
	struct err e = { 0 };

	(void)state;
	mig_stream_init_mem_writer(&w, 0);
	valid_stream(&w);
	assert_int_equal(load(w.buf, w.len, &e), 0);
	mig_stream_fini(&w);
}

static void test_truncated_everywhere(void **state)
{
	struct mig_stream w;

	(void)state;
	mig_stream_init_mem_writer(&w, 0);
	valid_stream(&w);
	for (size_t n = 0; n < w.len; n += n < 256 ? 1 : 61) {
		struct err e = { 0 };
		int rc = load(w.buf, n, &e);

		if (rc != -ENODATA || !strstr(e.msg, "truncated")) {
			print_error("cut at %zu of %zu: %d '%s'\n", n, w.len, rc, e.msg);
			fail();
		}
	}
	mig_stream_fini(&w);
}

/* Record boundaries of a stream (after the header), up to max. */
static size_t records(const uint8_t *b, size_t len, size_t *at, size_t max)
{
	size_t n = 0, pos = MIG_HEADER_SIZE;

	while (pos + MIG_REC_HDR_SIZE <= len && n < max) {
		uint64_t l = 0;

		for (int i = 7; i >= 0; i--)
			l = l << 8 | b[pos + 8 + i];
		at[n++] = pos;
		pos += MIG_REC_HDR_SIZE + l + ((b[pos + 2] & MIG_RECF_CRC) ? MIG_CRC_SIZE : 0);
	}
	at[n] = pos;
	return n;
}

/* Swap records i and i+1: either it still loads or it fails clearly. */
static void test_reordered_everywhere(void **state)
{
	struct mig_stream w;
	size_t at[64], n;
	int failed = 0;

	(void)state;
	mig_stream_init_mem_writer(&w, 0);
	valid_stream(&w);
	n = records(w.buf, w.len, at, 63);
	assert_true(n > 10);
	for (size_t i = 0; i + 1 < n; i++) {
		uint8_t *b = malloc(w.len);
		size_t la = at[i + 1] - at[i], lb = at[i + 2] - at[i + 1];
		struct err e = { 0 };
		int rc;

		assert_non_null(b);
		memcpy(b, w.buf, w.len);
		memcpy(b + at[i], w.buf + at[i + 1], lb);
		memcpy(b + at[i] + lb, w.buf + at[i], la);
		rc = load(b, w.len, &e);
		if (rc < 0 && (e.code != rc || !e.msg[0])) {
			print_error("swap %zu/%zu: %d without a message\n", i, i + 1, rc);
			fail();
		}
		failed += rc < 0;
		free(b);
	}
	assert_true(failed > 0);	/* order matters somewhere */
	mig_stream_fini(&w);
}

/* ---- post-copy control messages ---- */

static void expect_err(int rc, const struct err *e, const char *want)
{
	assert_true(rc < 0);
	assert_int_equal(e->code, rc);
	if (!strstr(e->msg, want)) {
		print_error("message '%s' lacks '%s'\n", e->msg, want);
		fail();
	}
}

static void test_pc_req_hostile(void **state)
{
	uint8_t b[PC_REQ_SIZE + 1] = { 0 };
	uint32_t blk;
	uint64_t off;
	size_t lens[] = { 0, 1, PC_REQ_SIZE - 1, PC_REQ_SIZE + 1 };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		struct err e = { 0 };

		expect_err(pc_req_decode(b, lens[i], &blk, &off, &e), &e, "PC_REQ");
	}
}

static void test_pc_bitmap_hostile(void **state)
{
	uint8_t b[PC_BITMAP_HDR + 8 * (PC_BITMAP_WORDS_MAX + 1)] = { 0 };
	uint64_t words[PC_BITMAP_WORDS_MAX], first;
	uint32_t blk, n;
	size_t good = PC_BITMAP_HDR + 8;
	struct { size_t len; size_t poke; const char *want; } t[] = {
		{ 0, 0, "PC_BITMAP" },
		{ PC_BITMAP_HDR - 1, 0, "PC_BITMAP" },
		{ PC_BITMAP_HDR, 0, "PC_BITMAP" },		/* no words */
		{ PC_BITMAP_HDR + 7, 0, "PC_BITMAP" },		/* half a word */
		{ sizeof(b), 0, "PC_BITMAP" },			/* one word too many */
		{ good, 5, "reserved" },			/* reserved field set */
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct err e = { 0 };

		memset(b, 0, sizeof(b));
		if (t[i].poke)
			b[t[i].poke] = 1;
		expect_err(pc_bitmap_decode(b, t[i].len, &blk, &first, words, &n, &e), &e,
			   t[i].want);
	}
}

static void test_pc_done_and_id_hostile(void **state)
{
	const char *bad[] = { "", "faults=", "faults=1 requests=x", "faults=99999999999999999999999",
			      "faults=1 junk" };
	const char *ids[] = { "", "pcid=", "pcid=0000000000000000", "pcid=zz00000000000000",
			      "pcid=00000000000000011", "PCID=0000000000000001" };
	struct pc_report r;
	uint64_t id;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct err e = { 0 };

		expect_err(pc_report_parse(bad[i], &r, &e), &e, "PC_DONE");
	}
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++)
		assert_int_equal(pc_id_parse(ids[i], &id), -EINVAL);
}

/* --seeds DIR: write the valid stream and every case as fuzz seeds. */
static int write_seed(const char *dir, const char *name, void (*build)(struct mig_stream *))
{
	struct mig_stream w;
	char path[512];
	FILE *f;
	int ret = -1;

	mig_stream_init_mem_writer(&w, 0);
	build(&w);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f) {
		ret = fwrite(w.buf, 1, w.len, f) == w.len ? 0 : -1;
		fclose(f);
	}
	mig_stream_fini(&w);
	return ret;
}

static int write_seeds(const char *dir)
{
	int ret = write_seed(dir, "pc-valid", valid_stream);

	for (size_t i = 0; i < ARRAY_SIZE(cases) && !ret; i++) {
		char name[32];

		snprintf(name, sizeof(name), "hostile-%02zu", i);
		ret = write_seed(dir, name, cases[i].build);
	}
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_cases),
		cmocka_unit_test(test_valid_stream_loads),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_reordered_everywhere),
		cmocka_unit_test(test_pc_req_hostile),
		cmocka_unit_test(test_pc_bitmap_hostile),
		cmocka_unit_test(test_pc_done_and_id_hostile),
	};

	if (argc == 3 && !strcmp(argv[1], "--seeds"))
		return write_seeds(argv[2]);
	return cmocka_run_group_tests_name("mig-hostile", tests, NULL, NULL);
}
