/*
 * test_postcopy.c - the pure parts of post-copy: PC_REQ encoding, bitmap
 * scans, the request queue, the PC_DONE report, the recovery id and
 * PC_BITMAP slices, and the POSTCOPY_DISCARD /
 * POSTCOPY_LISTEN records through the writer and the validating loader.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "postcopy.h"
#include "stream.h"

static void test_req_roundtrip(void **state)
{
	uint8_t b[PC_REQ_SIZE];
	uint32_t id;
	uint64_t off;

	(void)state;
	pc_req_encode(b, 7, 0x123456789000ULL);
	assert_int_equal(pc_req_decode(b, sizeof(b), &id, &off, NULL), 0);
	assert_int_equal(id, 7);
	assert_true(off == 0x123456789000ULL);
	assert_int_equal(pc_req_decode(b, sizeof(b) - 1, &id, &off, NULL), -EPROTO);
}

static void test_bitmap_next_wraps(void **state)
{
	uint64_t w[3] = { 0, 1ULL << 5, 0 };

	(void)state;
	assert_true(pc_bitmap_next(w, 150, 0) == 69);
	assert_true(pc_bitmap_next(w, 150, 70) == 69);	/* wraps */
	assert_true(pc_bitmap_next(w, 150, 200) == 69);
	w[2] = 1ULL << 40;			/* bit 168 is past nbits */
	assert_true(pc_bitmap_next(w, 150, 70) == 69);
	assert_true(pc_bitmap_count(w, 150) == 1);
	w[1] = 0;
	assert_true(pc_bitmap_next(w, 150, 0) == 150);
}

static void test_reqq_fifo_never_drops(void **state)
{
	struct pc_reqq q;
	uint32_t b;
	uint64_t pfn;

	(void)state;
	pc_reqq_init(&q);
	for (unsigned i = 0; i < PC_REQQ_CAP; i++)
		assert_true(pc_reqq_push(&q, i % 3, i));
	assert_true(pc_reqq_full(&q));
	assert_false(pc_reqq_push(&q, 0, 999));
	for (unsigned i = 0; i < PC_REQQ_CAP; i++) {
		assert_true(pc_reqq_pop(&q, &b, &pfn));
		assert_int_equal(b, i % 3);
		assert_true(pfn == i);
	}
	assert_false(pc_reqq_pop(&q, &b, &pfn));
	for (unsigned i = 0; i < PC_REQQ_CAP + 10; i++) {	/* head wraps around */
		assert_true(pc_reqq_push(&q, 1, 1000 + i));
		assert_true(pc_reqq_pop(&q, &b, &pfn));
		assert_true(pfn == 1000 + i);
	}
	assert_false(pc_reqq_pop(&q, &b, &pfn));
}

static void test_report_roundtrip(void **state)
{
	struct pc_report r = { 10, 9, 8, 700, 12345 }, back;
	char buf[256];

	(void)state;
	assert_int_equal(pc_report_format(buf, sizeof(buf), &r), 0);
	assert_int_equal(pc_report_parse(buf, &back, NULL), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	assert_int_equal(pc_report_parse("faults=1 requests=2", &back, NULL), -EPROTO);
	assert_int_equal(pc_report_parse("faults=1 requests=2 placed=3 lat_avg_us=4 lat_max_us=5x",
					 &back, NULL), -EPROTO);
}

/* ---- records through the loader ---- */

struct seen {
	uint64_t offset, words[4];
	uint32_t block, nwords;
	int discards, listens;
};

static int on_discard(void *ctx, const struct mig_ram_block *blk, uint64_t offset,
		      const uint64_t *words, uint32_t nwords, struct err *err)
{
	struct seen *s = ctx;

	(void)err;
	s->block = blk->id;
	s->offset = offset;
	s->nwords = nwords;
	memcpy(s->words, words, 8 * (nwords < 4 ? nwords : 4));
	s->discards++;
	return 0;
}

static int on_listen(void *ctx, struct err *err)
{
	(void)err;
	((struct seen *)ctx)->listens++;
	return 0;
}

static const struct mig_load_ops pc_ops = {
	.on_pc_discard = on_discard,
	.on_pc_listen = on_listen,
};

/* header, one 1 MiB block (256 pages), then what `body` writes. */
static void build(struct mig_stream *w, uint32_t features,
		  void (*body)(struct mig_stream *w))
{
	struct mig_ram_block blk = { .id = 1, .page_size = 4096, .size = 1 << 20 };
	struct mig_header h;

	strcpy(blk.idstr, "ram0");
	mig_stream_init_mem_writer(w, 0);
	mig_header_init(&h, 4096);
	h.features = features;
	mig_stream_put_header(w, &h);
	mig_stream_put_ram_blocks(w, &blk, 1);
	body(w);
	mig_stream_put_eof(w);
}

static int load(struct mig_stream *w, struct seen *s, struct err *e)
{
	struct mig_loader l;
	struct mig_stream r;
	const uint8_t *data;
	size_t len;
	int rc;

	data = mig_stream_data(w, &len);
	mig_stream_init_mem_reader(&r, data, len);
	mig_loader_init(&l, &r, &pc_ops, s);
	l.features_ok = MIG_FEAT_POSTCOPY;
	rc = mig_loader_header(&l, e);
	while (!rc)
		rc = mig_loader_step(&l, e);
	mig_loader_fini(&l);
	return rc < 0 ? rc : 0;
}

static void good_body(struct mig_stream *w)
{
	uint64_t words[4] = { 0x5, 0, 1ULL << 63, 0xffff };

	mig_stream_put_pc_discard(w, 1, 0, words, 4);
	mig_stream_put_pc_listen(w);
}

static void test_discard_listen_roundtrip(void **state)
{
	struct mig_stream w;
	struct seen s = { 0 };
	struct err e = { 0 };

	(void)state;
	build(&w, MIG_FEAT_POSTCOPY, good_body);
	assert_int_equal(load(&w, &s, &e), 0);
	assert_int_equal(s.discards, 1);
	assert_int_equal(s.listens, 1);
	assert_int_equal(s.nwords, 4);
	assert_true(s.words[2] == 1ULL << 63 && s.words[3] == 0xffff);
	/* the same stream without the feature bit: refused */
	mig_stream_fini(&w);
	build(&w, 0, good_body);
	memset(&s, 0, sizeof(s));
	assert_int_equal(load(&w, &s, &e), -EPROTO);
	assert_int_equal(s.discards, 0);
	mig_stream_fini(&w);
}

static void past_end_body(struct mig_stream *w)
{
	uint64_t words[5] = { 0, 0, 0, 0, 1 };	/* page 256 of a 256-page block */

	mig_stream_put_pc_discard(w, 1, 0, words, 5);
}

static void misaligned_body(struct mig_stream *w)
{
	uint64_t one = 1;

	mig_stream_put_pc_discard(w, 1, 4096, &one, 1);
}

static void unknown_block_body(struct mig_stream *w)
{
	uint64_t one = 1;

	mig_stream_put_pc_discard(w, 9, 0, &one, 1);
}

static void twice_listen_body(struct mig_stream *w)
{
	mig_stream_put_pc_listen(w);
	mig_stream_put_pc_listen(w);
}

static void test_discard_rejects(void **state)
{
	void (*bodies[])(struct mig_stream *) = { past_end_body, misaligned_body,
						   unknown_block_body, twice_listen_body };

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct mig_stream w;
		struct seen s = { 0 };
		struct err e = { 0 };

		build(&w, MIG_FEAT_POSTCOPY, bodies[i]);
		assert_int_equal(load(&w, &s, &e), -EPROTO);
		assert_true(e.msg[0] != '\0');
		assert_int_equal(s.discards, 0);
		mig_stream_fini(&w);
	}
}

static void test_discard_every_cut_fails(void **state)
{
	struct mig_stream w;
	const uint8_t *data;
	size_t len;

	(void)state;
	build(&w, MIG_FEAT_POSTCOPY, good_body);
	data = mig_stream_data(&w, &len);
	for (size_t cut = 0; cut < len; cut++) {
		struct mig_stream r;
		struct seen s = { 0 };
		struct err e = { 0 };
		struct mig_loader l;
		int rc;

		mig_stream_init_mem_reader(&r, data, cut);
		mig_loader_init(&l, &r, &pc_ops, &s);
		l.features_ok = MIG_FEAT_POSTCOPY;
		rc = mig_loader_header(&l, &e);
		while (!rc)
			rc = mig_loader_step(&l, &e);
		mig_loader_fini(&l);
		assert_true(rc < 0);
	}
	mig_stream_fini(&w);
}

/* PC_DONE from a reader without the median field still parses. */
static void test_report_p50_optional(void **state)
{
	struct pc_report back;

	(void)state;
	assert_int_equal(pc_report_parse("faults=1 requests=2 placed=3 lat_avg_us=4 lat_max_us=5",
					 &back, NULL), 0);
	assert_int_equal(back.lat_p50_us, 0);
	assert_int_equal(pc_report_parse("faults=1 requests=2 placed=3 lat_avg_us=4 lat_max_us=5"
					 " lat_p50_us=6", &back, NULL), 0);
	assert_int_equal(back.lat_p50_us, 6);
	assert_int_equal(pc_report_parse("faults=1 requests=2 placed=3 lat_avg_us=4 lat_max_us=5"
					 " lat_p50_us=6 more", &back, NULL), -EPROTO);
}

static void test_id_roundtrip(void **state)
{
	char buf[PC_ID_TEXT_LEN];
	uint64_t id = 0;

	(void)state;
	pc_id_format(buf, 0x0123456789abcdefULL);
	assert_string_equal(buf, "pcid=0123456789abcdef");
	assert_int_equal(pc_id_parse(buf, &id), 0);
	assert_true(id == 0x0123456789abcdefULL);
	assert_int_equal(pc_id_parse("pcid=0000000000000000", &id), -EINVAL);
	assert_int_equal(pc_id_parse("pcid=0123456789ABCDEF", &id), -EINVAL);
	assert_int_equal(pc_id_parse("pcid=0123456789abcde", &id), -EINVAL);
	assert_int_equal(pc_id_parse("pcid=0123456789abcdef0", &id), -EINVAL);
	assert_int_equal(pc_id_parse("", &id), -EINVAL);
}

static void test_bitmap_slice_roundtrip(void **state)
{
	uint64_t words[PC_BITMAP_WORDS_MAX], back[PC_BITMAP_WORDS_MAX], w0;
	uint8_t buf[PC_BITMAP_HDR + 8 * PC_BITMAP_WORDS_MAX + 8];
	uint32_t block, n;
	size_t len;

	(void)state;
	for (unsigned i = 0; i < PC_BITMAP_WORDS_MAX; i++)
		words[i] = 0x0101010101010101ULL * i;
	len = pc_bitmap_encode(buf, 7, 126, words, PC_BITMAP_WORDS_MAX);
	assert_true(len <= 1024);	/* one control record */
	assert_int_equal(pc_bitmap_decode(buf, len, &block, &w0, back, &n, NULL), 0);
	assert_int_equal(block, 7);
	assert_true(w0 == 126);
	assert_int_equal(n, PC_BITMAP_WORDS_MAX);
	assert_memory_equal(words, back, sizeof(words));
	/* framing: empty, ragged, too long, reserved field set */
	assert_int_equal(pc_bitmap_decode(buf, PC_BITMAP_HDR, &block, &w0, back, &n, NULL), -EPROTO);
	assert_int_equal(pc_bitmap_decode(buf, len - 1, &block, &w0, back, &n, NULL), -EPROTO);
	pc_bitmap_encode(buf, 7, 0, words, 1);
	buf[5] = 1;
	assert_int_equal(pc_bitmap_decode(buf, PC_BITMAP_HDR + 8, &block, &w0, back, &n, NULL),
			 -EPROTO);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(pc_bitmap_decode(buf, sizeof(buf), &block, &w0, back, &n, NULL), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_req_roundtrip),
		cmocka_unit_test(test_bitmap_next_wraps),
		cmocka_unit_test(test_reqq_fifo_never_drops),
		cmocka_unit_test(test_report_roundtrip),
		cmocka_unit_test(test_discard_listen_roundtrip),
		cmocka_unit_test(test_discard_rejects),
		cmocka_unit_test(test_discard_every_cut_fails),
		cmocka_unit_test(test_report_p50_optional),
		cmocka_unit_test(test_id_roundtrip),
		cmocka_unit_test(test_bitmap_slice_roundtrip),
	};
	return cmocka_run_group_tests_name("mig-postcopy", tests, NULL, NULL);
}
