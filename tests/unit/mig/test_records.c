/*
 * test_records.c - every record type written and loaded back, and the
 * loader's refusals: corrupted lengths, types, flags, section ids, block
 * ids and addresses, crc mismatches, unknown optional/mandatory records,
 * the version window, callback failures, and loading through a pipe.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mig_test_util.h"

#define PS 4096

static uint8_t page_a[PS], page_b[PS], two_pages[2 * PS];

/* ---- helpers ---- */

/* A memory stream with the 1.0 header. */
static void begin(struct mig_stream *w)
{
	struct mig_header h;

	mig_stream_init_mem_writer(w, 0);
	mig_header_init(&h, PS);
	mig_stream_put_header(w, &h);
}

/* ... plus one 64 KiB block "ram0" with id 1. */
static void begin_ram(struct mig_stream *w)
{
	static const struct mig_ram_block b = {
		.id = 1, .page_size = PS, .size = 64 * 1024, .idstr = "ram0",
	};

	begin(w);
	assert_int_equal(mig_stream_put_ram_blocks(w, &b, 1), 0);
}

static int load_buf(const uint8_t *p, size_t len, struct fake_target *t,
		    bool direct, struct err *e)
{
	struct mig_stream r;

	fake_init(t, direct);
	mig_stream_init_mem_reader(&r, p, len);
	return mig_load(&r, &fake_ops, t, e);
}

/* Load w's bytes in both placement modes; both must give `code`. */
static void expect(struct mig_stream *w, int code, const char *msg)
{
	const uint8_t *p;
	size_t len;

	assert_int_equal(mig_stream_error(w), 0);
	p = mig_stream_data(w, &len);
	for (int direct = 0; direct < 2; direct++) {
		struct fake_target t;
		struct err e = { 0 };
		int rc = load_buf(p, len, &t, direct, &e);

		if (rc != code || (msg && !strstr(e.msg, msg)))
			fail_msg("direct=%d: rc %d (want %d) '%s' (want '%s')",
				 direct, rc, code, e.msg, msg ? msg : "");
		fake_fini(&t);
	}
	mig_stream_fini(w);
}

static uint8_t *wbuf(struct mig_stream *w)
{
	return (uint8_t *)mig_stream_data(w, NULL);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Write a raw record. */
static void raw(struct mig_stream *w, uint16_t type, uint16_t flags,
		uint32_t sid, const void *payload, size_t len)
{
	struct mig_rec_hdr rh = { type, flags, sid, len };

	mig_stream_put_record(w, &rh, payload);
}

/* ---- round trips ---- */

static int hdr_seen;

static int on_hdr(void *ctx, const struct mig_header *h, struct err *err)
{
	hdr_seen = h->major * 1000 + h->minor * 100 + (int)(h->page_size >> 12);
	return 0;
}

static void test_header_roundtrip(void **state)
{
	struct mig_load_ops ops = { .on_header = on_hdr };
	struct mig_stream w, r;
	struct mig_header h;

	mig_stream_init_mem_writer(&w, 0);
	mig_header_init(&h, 16384);
	mig_stream_put_header(&w, &h);
	mig_stream_put_eof(&w);
	assert_int_equal(mig_stream_offset(&w), MIG_HEADER_SIZE + MIG_REC_HDR_SIZE);
	mig_stream_init_mem_reader(&r, wbuf(&w), mig_stream_offset(&w));
	assert_int_equal(mig_load(&r, &ops, NULL, NULL), 0);
	assert_int_equal(hdr_seen, 1004);
	mig_stream_fini(&w);

	mig_stream_init_mem_writer(&w, 0);
	h.page_size = 4097;
	assert_int_equal(mig_stream_put_header(&w, &h), -EINVAL);
	mig_stream_fini(&w);
}

static void test_config_roundtrip(void **state)
{
	for (int crc = 0; crc < 2; crc++) {
		struct fake_target t;
		struct mig_stream w;

		begin(&w);
		mig_stream_set_crc(&w, crc);
		mig_stream_put_config(&w, "{\"vcpus\":2}", 11);
		mig_stream_put_eof(&w);
		assert_int_equal(load_buf(wbuf(&w), mig_stream_offset(&w), &t,
					  true, NULL), 0);
		assert_string_equal(t.config, "{\"vcpus\":2}");
		assert_true(t.eof);
		fake_fini(&t);
		mig_stream_fini(&w);
	}
}

static void test_producer_and_step(void **state)
{
	struct mig_loader l;
	struct mig_stream w, r;

	begin(&w);
	mig_stream_put_producer(&w, "tern 9.9");
	mig_stream_put_iter_end(&w, 7);
	mig_stream_put_eof(&w);
	mig_stream_init_mem_reader(&r, wbuf(&w), mig_stream_offset(&w));
	mig_loader_init(&l, &r, NULL, NULL);
	assert_int_equal(mig_loader_step(&l, NULL), -EINVAL);	/* no header */
	assert_int_equal(mig_loader_header(&l, NULL), 0);
	assert_int_equal(mig_loader_step(&l, NULL), 0);
	assert_string_equal(l.producer, "tern 9.9");
	assert_int_equal(mig_loader_step(&l, NULL), 0);
	assert_int_equal(mig_loader_step(&l, NULL), 1);
	assert_int_equal(mig_loader_step(&l, NULL), 1);	/* stays at EOF */
	assert_int_equal(l.records, 3);
	mig_loader_fini(&l);
	mig_stream_fini(&w);
}

static int blocks_seen;
static struct mig_ram_block blocks_copy[MIG_RAM_BLOCKS_MAX];

static int on_blocks(void *ctx, struct mig_ram_block *b, size_t n,
		     struct err *err)
{
	blocks_seen = (int)n;
	memcpy(blocks_copy, b, n * sizeof(*b));
	return 0;
}

static void test_blocks_roundtrip_max(void **state)
{
	static struct mig_ram_block b[MIG_RAM_BLOCKS_MAX];
	struct mig_load_ops ops = { .on_ram_blocks = on_blocks };
	struct mig_stream w, r;

	for (unsigned i = 0; i < MIG_RAM_BLOCKS_MAX; i++) {
		b[i].id = i + 1;
		b[i].page_size = i & 1 ? PS : 2u << 20;
		b[i].size = (uint64_t)(i + 1) << 30;
		memset(b[i].idstr, 'a' + i % 26, MIG_IDSTR_MAX);
		snprintf(b[i].idstr, 8, "%06u", i);
		b[i].idstr[6] = '-';
	}
	begin(&w);
	assert_int_equal(mig_stream_put_ram_blocks(&w, b, MIG_RAM_BLOCKS_MAX), 0);
	mig_stream_put_eof(&w);
	mig_stream_init_mem_reader(&r, wbuf(&w), mig_stream_offset(&w));
	assert_int_equal(mig_load(&r, &ops, NULL, NULL), 0);
	assert_int_equal(blocks_seen, MIG_RAM_BLOCKS_MAX);
	for (unsigned i = 0; i < MIG_RAM_BLOCKS_MAX; i++) {
		assert_int_equal(blocks_copy[i].id, b[i].id);
		assert_int_equal(blocks_copy[i].size, b[i].size);
		assert_int_equal(blocks_copy[i].page_size, b[i].page_size);
		assert_string_equal(blocks_copy[i].idstr, b[i].idstr);
	}
	mig_stream_fini(&w);
	/* the writer refuses what the reader would */
	begin(&w);
	assert_int_equal(mig_stream_put_ram_blocks(&w, b, MIG_RAM_BLOCKS_MAX + 1),
			 -EINVAL);
	mig_stream_fini(&w);
}

static void test_pages_roundtrip(void **state)
{
	for (int direct = 0; direct < 2; direct++) {
		static const uint64_t offs[2] = { 0xf000, 0x2000 };
		const void *pp[2] = { page_b, page_a };
		struct fake_target t;
		struct mig_stream w;
		uint8_t *m;

		begin_ram(&w);
		mig_stream_put_ram_page(&w, 1, 0x1000, page_a);
		mig_stream_put_ram_batch(&w, 1, offs, pp, 2);
		mig_stream_put_ram_zero(&w, 1, 0x2000, 1);	/* undoes one */
		mig_stream_put_eof(&w);
		assert_int_equal(load_buf(wbuf(&w), mig_stream_offset(&w), &t,
					  direct, NULL), 0);
		m = fake_mem(&t, "ram0", NULL);
		assert_memory_equal(m + 0x1000, page_a, PS);
		assert_memory_equal(m + 0xf000, page_b, PS);
		for (size_t i = 0; i < PS; i++)
			assert_int_equal(m[0x2000 + i], 0);
		fake_fini(&t);
		mig_stream_fini(&w);
	}
}

/* The biggest batch, and a zero run over a whole block, no on_ram_zero. */
static void test_batch_max_and_zero_memset(void **state)
{
	static const struct mig_ram_block b = {
		.id = 9, .page_size = PS, .size = MIG_RAM_BATCH_BYTES,
		.idstr = "big",
	};
	static uint64_t offs[MIG_RAM_BATCH_MAX];
	static const void *pp[MIG_RAM_BATCH_MAX];
	struct mig_load_ops ops = fake_ops;
	struct fake_target t;
	struct mig_stream w, r;
	struct mig_loader l;
	uint8_t *m;

	for (unsigned i = 0; i < MIG_RAM_BATCH_MAX; i++) {
		offs[i] = (uint64_t)(MIG_RAM_BATCH_MAX - 1 - i) * PS;
		pp[i] = i & 1 ? page_a : page_b;
	}
	begin(&w);
	mig_stream_put_ram_blocks(&w, &b, 1);
	mig_stream_set_crc(&w, true);
	assert_int_equal(mig_stream_put_ram_batch(&w, 9, offs, pp,
						  MIG_RAM_BATCH_MAX), 0);
	mig_stream_put_eof(&w);
	fake_init(&t, true);
	mig_stream_init_mem_reader(&r, wbuf(&w), mig_stream_offset(&w));
	assert_int_equal(mig_load(&r, &fake_ops, &t, NULL), 0);
	m = fake_mem(&t, "big", NULL);
	assert_memory_equal(m, page_a, PS);	/* i = 1023 is odd */
	assert_memory_equal(m + MIG_RAM_BATCH_BYTES - PS, page_b, PS);
	mig_stream_fini(&w);

	/* zero the whole block through the loader's own memset */
	begin(&w);
	mig_stream_put_ram_blocks(&w, &b, 1);
	mig_stream_put_ram_zero(&w, 9, 0, MIG_RAM_BATCH_MAX);
	mig_stream_put_eof(&w);
	ops.on_ram_zero = NULL;
	fake_fini(&t);
	fake_init(&t, true);
	mig_stream_init_mem_reader(&r, wbuf(&w), mig_stream_offset(&w));
	assert_int_equal(mig_loader_init(&l, &r, &ops, &t), 0);
	assert_int_equal(mig_loader_header(&l, NULL), 0);
	assert_int_equal(mig_loader_step(&l, NULL), 0);	/* blocks */
	m = fake_mem(&t, "big", NULL);
	memset(m, 0xff, MIG_RAM_BATCH_BYTES);
	assert_int_equal(mig_loader_step(&l, NULL), 0);	/* zero run */
	assert_int_equal(mig_loader_step(&l, NULL), 1);	/* eof */
	assert_int_equal(t.zero_pages, 0);	/* callback not used */
	assert_int_equal(l.zero_pages, MIG_RAM_BATCH_MAX);
	for (size_t i = 0; i < MIG_RAM_BATCH_BYTES; i += 511)
		assert_int_equal(m[i], 0);
	mig_loader_fini(&l);
	fake_fini(&t);
	mig_stream_fini(&w);
	/* writer limits */
	begin(&w);
	assert_int_equal(mig_stream_put_ram_batch(&w, 9, offs, pp,
						  MIG_RAM_BATCH_MAX + 1), -EINVAL);
	mig_stream_fini(&w);
}

static void test_sections_roundtrip(void **state)
{
	struct mig_section_info a = { .section_id = 5, .version = 1,
				      .min_version = 1, .idstr = ITER_DEV_IDSTR };
	struct fake_target t;
	struct mig_stream w;

	begin(&w);
	mig_stream_put_section_start(&w, &a, "ab", 2);
	mig_stream_put_section_part(&w, 5, "", 0);
	mig_stream_put_section_part(&w, 5, "cde", 3);
	mig_stream_put_section_end(&w, 5);
	mig_stream_put_eof(&w);
	assert_int_equal(load_buf(wbuf(&w), mig_stream_offset(&w), &t, true,
				  NULL), 0);
	assert_true(t.iter_started && t.iter_ended);
	assert_int_equal(t.iter_len, 5);
	assert_memory_equal(t.iter_data, "abcde", 5);
	fake_fini(&t);
	mig_stream_fini(&w);
}

/* ---- refusals: framing ---- */

static void test_header_refusals(void **state)
{
	struct mig_stream w;

	begin(&w);
	wbuf(&w)[0] = 'X';
	expect(&w, -EPROTO, "bad magic");

	begin(&w);
	wbuf(&w)[13] ^= 1;	/* features, crc now wrong */
	expect(&w, -EBADMSG, "header crc32c");

	begin(&w);
	wbuf(&w)[24] = 1;	/* reserved */
	put_le(wbuf(&w) + 28, mig_crc32c(0, wbuf(&w), 28), 4);
	expect(&w, -EPROTO, "reserved header");

	begin(&w);
	put_le(wbuf(&w) + 20, 2, 2);	/* arch */
	put_le(wbuf(&w) + 28, mig_crc32c(0, wbuf(&w), 28), 4);
	expect(&w, -EPROTONOSUPPORT, "arch 2");

	begin(&w);
	put_le(wbuf(&w) + 16, 4096 + 512, 4);	/* page size */
	put_le(wbuf(&w) + 28, mig_crc32c(0, wbuf(&w), 28), 4);
	expect(&w, -EPROTO, "page size");

	begin(&w);
	put_le(wbuf(&w) + 12, MIG_FEAT_XBZRLE, 4);
	put_le(wbuf(&w) + 28, mig_crc32c(0, wbuf(&w), 28), 4);
	expect(&w, -EPROTONOSUPPORT, "feature bits 0x1");
}

/* A header with this version; loaded by a reader that knows `minor_max`. */
static int load_version(uint16_t major, uint16_t minor, uint16_t minor_max,
			struct err *e)
{
	struct mig_loader l;
	struct mig_stream w, r;
	int rc;

	begin(&w);
	put_le(wbuf(&w) + 8, major, 2);
	put_le(wbuf(&w) + 10, minor, 2);
	put_le(wbuf(&w) + 28, mig_crc32c(0, wbuf(&w), 28), 4);
	mig_stream_put_eof(&w);
	mig_stream_init_mem_reader(&r, wbuf(&w), mig_stream_offset(&w));
	mig_loader_init(&l, &r, NULL, NULL);
	l.minor_max = minor_max;
	rc = mig_loader_header(&l, e);
	while (!rc)
		rc = mig_loader_step(&l, e);
	mig_loader_fini(&l);
	mig_stream_fini(&w);
	return rc < 0 ? rc : 0;
}

static void test_version_window(void **state)
{
	struct err e = { 0 };

	assert_int_equal(load_version(1, 0, MIG_STREAM_MINOR, NULL), 0);
	assert_int_equal(load_version(2, 0, MIG_STREAM_MINOR, &e),
			 -EPROTONOSUPPORT);
	assert_non_null(strstr(e.msg, "format 2.0, this reader loads major 1"));
	assert_int_equal(load_version(0, 0, MIG_STREAM_MINOR, NULL),
			 -EPROTONOSUPPORT);
	err_clear(&e);
	assert_int_equal(load_version(1, MIG_STREAM_MINOR + 1, MIG_STREAM_MINOR,
				      &e), -EPROTONOSUPPORT);
	assert_non_null(strstr(e.msg, "newer than this reader"));
	/* a reader of 1.2: lower and equal minors load, higher does not */
	assert_int_equal(load_version(1, 0, 2, NULL), 0);
	assert_int_equal(load_version(1, 1, 2, NULL), 0);
	assert_int_equal(load_version(1, 2, 2, NULL), 0);
	assert_int_equal(load_version(1, 3, 2, NULL), -EPROTONOSUPPORT);
}

static void test_record_header_refusals(void **state)
{
	struct mig_stream w;
	uint8_t big[64] = { 0 };

	begin(&w);
	raw(&w, 0, 0, 0, NULL, 0);
	expect(&w, -EPROTO, "record type 0 is invalid");

	begin(&w);
	raw(&w, MIG_REC_EOF, 0x10, 0, NULL, 0);
	expect(&w, -EPROTO, "EOF at stream offset 32: unknown flag bits 0x0010");

	begin(&w);
	raw(&w, MIG_REC_RAM_ITER_END, 0, 3, big, 8);
	expect(&w, -EPROTO, "section id 3 on a non-section record");

	begin(&w);	/* CONFIG claiming 1 MiB + 1: refused before reading */
	raw(&w, MIG_REC_CONFIG, 0, 0, big, 16);
	put_le(wbuf(&w) + 32 + 8, MIG_CONFIG_MAX + 1ULL, 8);
	expect(&w, -EMSGSIZE, "CONFIG at stream offset 32: length 1048577 over");

	begin(&w);	/* a length of 2^64-1 */
	raw(&w, MIG_REC_DESCRIPTION, MIG_RECF_OPTIONAL, 0, big, 16);
	put_le(wbuf(&w) + 32 + 8, UINT64_MAX, 8);
	expect(&w, -EMSGSIZE, "over the");

	begin(&w);	/* EOF with a payload */
	raw(&w, MIG_REC_EOF, 0, 0, big, 1);
	expect(&w, -EMSGSIZE, "EOF at stream offset 32");

	begin(&w);	/* no EOF at all */
	mig_stream_put_iter_end(&w, 1);
	expect(&w, -ENODATA, "record header at stream offset 56: truncated");
}

static void test_unknown_records(void **state)
{
	struct mig_stream w;
	uint8_t junk[100];

	memset(junk, 0xee, sizeof(junk));
	begin(&w);	/* optional: skipped, with and without crc */
	raw(&w, 0x7000, MIG_RECF_OPTIONAL, 0, junk, sizeof(junk));
	mig_stream_set_crc(&w, true);
	raw(&w, 0x7001, MIG_RECF_OPTIONAL, 9, junk, 3);
	raw(&w, 0x0150, MIG_RECF_OPTIONAL, 0, NULL, 0);
	mig_stream_put_eof(&w);
	expect(&w, 0, NULL);

	begin(&w);
	raw(&w, 0x7000, 0, 0, junk, sizeof(junk));
	mig_stream_put_eof(&w);
	expect(&w, -EPROTO, "unknown mandatory record type 0x7000");

	begin(&w);	/* reserved ranges are not decoded by 1.0 readers */
	raw(&w, MIG_REC_XBZRLE_FIRST, 0, 0, junk, 10);
	expect(&w, -EPROTO, "RAM_XBZRLE at stream offset 32");

	begin(&w);	/* optional but corrupted: crc still checked */
	mig_stream_set_crc(&w, true);
	raw(&w, 0x7001, MIG_RECF_OPTIONAL, 0, junk, 3);
	mig_stream_put_eof(&w);
	wbuf(&w)[32 + 16 + 1] ^= 0xff;
	expect(&w, -EBADMSG, "crc32c mismatch");

	begin(&w);	/* optional but over the skip limit */
	raw(&w, 0x7002, MIG_RECF_OPTIONAL, 0, junk, 1);
	put_le(wbuf(&w) + 32 + 8, MIG_SKIP_MAX + 1ULL, 8);
	expect(&w, -EMSGSIZE, "skip limit");
}

static void test_crc_detects_corruption(void **state)
{
	struct mig_stream w;
	size_t at;

	begin(&w);
	mig_stream_set_crc(&w, true);
	mig_stream_put_config(&w, "{\"a\":1}", 7);
	at = mig_stream_offset(&w);
	mig_stream_put_ram_blocks(&w, &(struct mig_ram_block){
		.id = 1, .page_size = PS, .size = PS, .idstr = "r" }, 1);
	mig_stream_put_ram_page(&w, 1, 0, page_a);
	mig_stream_put_eof(&w);
	wbuf(&w)[32 + 16 + 2] ^= 0x20;	/* "a" becomes "A" */
	expect(&w, -EBADMSG, "CONFIG at stream offset 32: crc32c mismatch");

	begin(&w);
	mig_stream_set_crc(&w, true);
	mig_stream_put_ram_blocks(&w, &(struct mig_ram_block){
		.id = 1, .page_size = PS, .size = PS, .idstr = "r" }, 1);
	at = mig_stream_offset(&w);
	mig_stream_put_ram_page(&w, 1, 0, page_a);
	mig_stream_put_eof(&w);
	wbuf(&w)[at + 16 + 12 + 100] ^= 1;	/* page data */
	expect(&w, -EBADMSG, "RAM_PAGE");

	begin(&w);	/* the crc itself damaged */
	mig_stream_set_crc(&w, true);
	mig_stream_put_iter_end(&w, 1);
	at = mig_stream_offset(&w);
	mig_stream_put_eof(&w);
	wbuf(&w)[at - 1] ^= 0x80;
	expect(&w, -EBADMSG, "RAM_ITER_END");
}

static void test_text_refusals(void **state)
{
	struct mig_stream w;

	begin(&w);
	mig_stream_put_config(&w, "{}", 2);
	mig_stream_put_config(&w, "{}", 2);
	expect(&w, -EPROTO, "second CONFIG record");

	begin(&w);
	mig_stream_put_config(&w, "{\0}", 3);
	expect(&w, -EPROTO, "NUL byte inside the text");

	begin(&w);
	raw(&w, MIG_REC_PRODUCER, MIG_RECF_OPTIONAL, 0, "a\tb", 3);
	expect(&w, -EPROTO, "producer not printable");

	begin(&w);
	raw(&w, MIG_REC_PRODUCER, MIG_RECF_OPTIONAL, 0, page_a,
	    MIG_PRODUCER_MAX + 1);
	expect(&w, -EMSGSIZE, "PRODUCER");
}

/* ---- refusals: RAM ---- */

/* A RAM_BLOCKS record from hand-made entries. */
static void blocks_raw(struct mig_stream *w, uint32_t n, const void *entries,
		       size_t len)
{
	uint8_t p[1024];

	put_le(p, n, 4);
	memcpy(p + 4, entries, len);
	raw(w, MIG_REC_RAM_BLOCKS, 0, 0, p, 4 + len);
}

static size_t entry(uint8_t *p, uint32_t id, uint32_t ps, uint64_t size,
		    uint32_t flags, const char *idstr, uint16_t il)
{
	put_le(p, id, 4);
	put_le(p + 4, ps, 4);
	put_le(p + 8, size, 8);
	put_le(p + 16, flags, 4);
	put_le(p + 20, il, 2);
	memcpy(p + 22, idstr, strlen(idstr));
	return 22 + strlen(idstr);
}

static void expect_blocks(const uint8_t *e, size_t len, uint32_t n, int code,
			  const char *msg)
{
	struct mig_stream w;

	begin(&w);
	blocks_raw(&w, n, e, len);
	mig_stream_put_eof(&w);
	expect(&w, code, msg);
}

static void test_block_table_refusals(void **state)
{
	uint8_t e[512] = { 0 };
	size_t n;

	n = entry(e, 1, PS, PS, 0, "a", 1);
	expect_blocks(e, n, 1, 0, NULL);
	expect_blocks(e, n, 0, -EPROTO, "0 blocks");
	expect_blocks(e, n, 257, -EPROTO, "257 blocks");
	expect_blocks(e, n, 2, -EPROTO, "block 1: entry cut short");
	expect_blocks(e, n + 1, 1, -EPROTO, "1 bytes after the last block");
	n = entry(e, 0, PS, PS, 0, "a", 1);
	expect_blocks(e, n, 1, -EPROTO, "block 'a': id 0");
	n = entry(e, 1, PS, PS, 4, "a", 1);
	expect_blocks(e, n, 1, -EPROTO, "flags 0x4");
	n = entry(e, 1, 2048, PS, 0, "a", 1);
	expect_blocks(e, n, 1, -EPROTO, "page size 2048 invalid");
	n = entry(e, 1, 3 * PS, 3 * PS, 0, "a", 1);
	expect_blocks(e, n, 1, -EPROTO, "page size 12288 invalid");
	n = entry(e, 1, PS, PS + 1, 0, "a", 1);
	expect_blocks(e, n, 1, -EPROTO, "size 4097 not a non-zero multiple");
	n = entry(e, 1, PS, 0, 0, "a", 1);
	expect_blocks(e, n, 1, -EPROTO, "size 0");
	n = entry(e, 1, PS, MIG_BLOCK_SIZE_MAX + PS, 0, "a", 1);
	expect_blocks(e, n, 1, -EPROTO, "not a non-zero multiple");
	n = entry(e, 1, PS, PS, 0, "", 0);
	expect_blocks(e, n, 1, -EPROTO, "idstr empty");
	n = entry(e, 1, PS, PS, 0, "a\nb", 3);
	expect_blocks(e, n, 1, -EPROTO, "not printable");
	n = entry(e, 1, PS, PS, 0, "a", 300);
	expect_blocks(e, n, 1, -EPROTO, "idstr length 300");
	n = entry(e, 1, PS, PS, 0, "a", 1);
	n += entry(e + n, 2, PS, PS, 0, "a", 1);
	expect_blocks(e, n, 2, -EPROTO, "block 'a' (id 2) repeats block 'a' (id 1)");
	n = entry(e, 1, PS, PS, 0, "a", 1);
	n += entry(e + n, 1, PS, PS, 0, "b", 1);
	expect_blocks(e, n, 2, -EPROTO, "repeats");

	{
		struct mig_stream w;

		begin_ram(&w);
		mig_stream_put_ram_blocks(&w, &(struct mig_ram_block){
			.id = 2, .page_size = PS, .size = PS, .idstr = "b" }, 1);
		expect(&w, -EPROTO, "second block table");
	}
}

static void test_ram_address_refusals(void **state)
{
	static const uint64_t offs[3] = { 0, 0x1000, 0x10000 };
	const void *pp[3] = { page_a, page_a, page_a };
	struct mig_stream w;

	begin(&w);
	mig_stream_put_ram_page(&w, 1, 0, page_a);
	expect(&w, -EPROTO, "RAM_PAGE at stream offset 32: RAM data before the RAM_BLOCKS");

	begin_ram(&w);
	mig_stream_put_ram_page(&w, 2, 0, page_a);
	expect(&w, -EPROTO, "block id 2 is not in the block table");

	begin_ram(&w);
	mig_stream_put_ram_page(&w, 1, 0x801, page_a);
	expect(&w, -EPROTO, "offset 0x801 in block 'ram0' not aligned to 4096");

	begin_ram(&w);
	mig_stream_put_ram_page(&w, 1, 0x10000, page_a);
	expect(&w, -EPROTO,
	       "RAM_PAGE at stream offset 78: offset 0x10000 beyond block 'ram0' size 64.0 KiB");

	begin_ram(&w);
	mig_stream_put_ram_page(&w, 1, UINT64_MAX - 4095, page_a);
	expect(&w, -EPROTO, "beyond block 'ram0'");

	begin_ram(&w);
	mig_stream_put_ram_batch(&w, 1, offs, pp, 3);
	expect(&w, -EPROTO, "page 2 of 3: offset 0x10000 beyond block");

	begin_ram(&w);
	mig_stream_put_ram_zero(&w, 1, 0xf000, 2);
	expect(&w, -EPROTO, "offset 0xf000 + 2 pages beyond block 'ram0'");

	begin_ram(&w);	/* npages * page size overflowing 64 bits */
	mig_stream_put_ram_zero(&w, 1, 0x1000, UINT64_MAX / 2);
	expect(&w, -EPROTO, "pages beyond block");

	begin_ram(&w);
	raw(&w, MIG_REC_RAM_ZERO, 0, 0,
	    "\x01\0\0\0" "\0\0\0\0\0\0\0\0" "\0\0\0\0\0\0\0\0", 20);
	expect(&w, -EPROTO, "zero run of 0 pages");
}

static void test_ram_length_refusals(void **state)
{
	uint8_t p[64] = { 1 };
	struct mig_stream w;

	begin_ram(&w);	/* RAM_PAGE one byte short */
	raw(&w, MIG_REC_RAM_PAGE, 0, 0, two_pages, 12 + PS - 1);
	expect(&w, -EPROTO, "length 4107, expected 4108");

	begin_ram(&w);
	raw(&w, MIG_REC_RAM_ZERO, 0, 0, p, 19);
	expect(&w, -EPROTO, "length 19, expected 20");

	begin_ram(&w);
	raw(&w, MIG_REC_RAM_ITER_END, 0, 0, p, 4);
	expect(&w, -EPROTO, "length 4, expected 8");

	begin_ram(&w);	/* batch count 0 */
	raw(&w, MIG_REC_RAM_PAGES, 0, 0, p, 8);
	expect(&w, -EPROTO, "0 pages in one batch");

	begin_ram(&w);	/* batch count over the limit */
	put_le(p + 4, MIG_RAM_BATCH_MAX + 1, 4);
	raw(&w, MIG_REC_RAM_PAGES, 0, 0, p, 8);
	expect(&w, -EPROTO, "1025 pages in one batch");

	begin_ram(&w);	/* count 2 but room for 1 */
	put_le(p + 4, 2, 4);
	raw(&w, MIG_REC_RAM_PAGES, 0, 0, p, 8);
	put_le(wbuf(&w) + mig_stream_offset(&w) - 8 - 8, 8 + 8 + PS, 8);
	expect(&w, -EPROTO, "expected 8216");

	begin_ram(&w);
	raw(&w, MIG_REC_RAM_PAGES, 0, 0, p, 7);
	expect(&w, -EPROTO, "length 7 < 8");
}

static int no_pages_target_blocks(void *ctx, struct mig_ram_block *b, size_t n,
				  struct err *err)
{
	return 0;	/* no host pointers */
}

static void test_ram_without_sink(void **state)
{
	struct mig_load_ops ops = { .on_ram_blocks = no_pages_target_blocks };
	struct mig_stream w, r;
	struct err e = { 0 };

	begin_ram(&w);
	mig_stream_put_ram_page(&w, 1, 0, page_a);
	mig_stream_init_mem_reader(&r, wbuf(&w), mig_stream_offset(&w));
	assert_int_equal(mig_load(&r, &ops, NULL, &e), -ENOTSUP);
	assert_non_null(strstr(e.msg, "no host mapping and no on_ram_pages"));
	mig_stream_fini(&w);

	err_clear(&e);
	begin_ram(&w);
	mig_stream_put_ram_zero(&w, 1, 0, 1);
	mig_stream_init_mem_reader(&r, wbuf(&w), mig_stream_offset(&w));
	assert_int_equal(mig_load(&r, &ops, NULL, &e), -ENOTSUP);
	assert_non_null(strstr(e.msg, "no on_ram_zero"));
	mig_stream_fini(&w);
}

/* ---- refusals: sections ---- */

static void full_dev(struct mig_stream *w, uint32_t sid, uint32_t version)
{
	struct mig_section_info si = { .section_id = sid, .version = version,
				       .min_version = 1,
				       .idstr = TEST_DEV_IDSTR };
	struct test_dev_state d;
	struct mig_stream st;

	memset(&d, 0, sizeof(d));
	test_dev_golden(&d);
	mig_stream_init_mem_writer(&st, 0);
	mig_fields_save(test_dev_fields, &d, sizeof(d), version, &st);
	mig_stream_put_section_full(w, &si, mig_stream_data(&st, NULL),
				    mig_stream_offset(&st));
	mig_stream_fini(&st);
}

static void test_section_refusals(void **state)
{
	struct mig_section_info it = { .section_id = 4, .version = 1,
				       .min_version = 1, .idstr = ITER_DEV_IDSTR };
	uint8_t p[64] = { 0 };
	struct mig_stream w;

	begin(&w);
	full_dev(&w, 1, 2);
	mig_stream_put_eof(&w);
	expect(&w, 0, NULL);

	begin(&w);
	full_dev(&w, 1, 2);
	full_dev(&w, 1, 2);
	expect(&w, -EPROTO, "section id 1 already used by 'testdev@0x3f8'");

	begin(&w);
	full_dev(&w, 1, 2);
	wbuf(&w)[mig_stream_offset(&w) - 4] = 9;	/* footer */
	expect(&w, -EPROTO, "footer says section 9, header 1");

	begin(&w);
	full_dev(&w, 1, 2);
	put_le(wbuf(&w) + 32 + 4, 0, 4);	/* header section id 0 */
	expect(&w, -EPROTO, "section id 0");

	begin(&w);	/* version 3 is newer than the device (2) */
	full_dev(&w, 1, 3);
	put_le(wbuf(&w) + 32 + 16 + 2 + strlen(TEST_DEV_IDSTR) + 8, 3, 4);
	expect(&w, -EPROTONOSUPPORT,
	       "SECTION_FULL at stream offset 32: section 'testdev@0x3f8' "
	       "instance 0 version 3: section 'testdev@0x3f8': needs a reader");

	begin(&w);	/* the device has no version 0 */
	raw(&w, MIG_REC_SECTION_FULL, 0, 1, p, 0);
	expect(&w, -EPROTO, "no room for the footer");

	begin(&w);	/* idstr length past the payload */
	put_le(p, 200, 2);
	put_le(p + 2, 1, 4);
	raw(&w, MIG_REC_SECTION_FULL, 0, 1, p, 6);
	expect(&w, -EPROTO, "section header cut short");

	begin(&w);
	mig_stream_put_section_part(&w, 4, "x", 1);
	expect(&w, -EPROTO, "section id 4 is not an open section");

	begin(&w);	/* END of a FULL section */
	full_dev(&w, 1, 2);
	mig_stream_put_section_end(&w, 1);
	expect(&w, -EPROTO, "section id 1 is not an open section");

	begin(&w);	/* ended twice */
	mig_stream_put_section_start(&w, &it, "x", 1);
	mig_stream_put_section_end(&w, 4);
	mig_stream_put_section_end(&w, 4);
	expect(&w, -EPROTO, "not an open section");

	begin(&w);	/* never ended */
	mig_stream_put_section_start(&w, &it, "x", 1);
	mig_stream_put_eof(&w);
	expect(&w, -EPROTO, "section 'iterdev' (id 4) never ended");

	begin(&w);	/* a device the target does not have */
	strcpy(it.idstr, "nosuch");
	mig_stream_put_section_full(&w, &it, "", 0);
	expect(&w, -ENOENT, "no device 'nosuch'");

	begin(&w);	/* min_version > version on the wire */
	full_dev(&w, 1, 2);
	put_le(wbuf(&w) + 32 + 16 + 2 + strlen(TEST_DEV_IDSTR) + 8, 5, 4);
	expect(&w, -EPROTO, "min_version 5 > version 2");

	begin(&w);	/* bad field data inside: device untouched, error named */
	full_dev(&w, 1, 2);
	wbuf(&w)[32 + 16 + 2 + strlen(TEST_DEV_IDSTR) + 12 + 2] = MIG_FT_U64;
	expect(&w, -EPROTO, "section 'testdev@0x3f8' instance 0 version 2: "
	       "field 'lcr' (id 1): type u64, expected u8");
}

static void test_callback_errors(void **state)
{
	struct fake_target t;
	struct mig_stream w, r;
	struct mig_loader l;
	struct err e = { 0 };

	begin(&w);
	mig_stream_put_config(&w, "{}", 2);
	mig_stream_put_eof(&w);
	fake_init(&t, true);
	t.fail_config = -EPERM;
	mig_stream_init_mem_reader(&r, wbuf(&w), mig_stream_offset(&w));
	mig_loader_init(&l, &r, &fake_ops, &t);
	assert_int_equal(mig_loader_header(&l, NULL), 0);
	assert_int_equal(mig_loader_step(&l, &e), -EPERM);
	assert_string_equal(e.msg, "CONFIG at stream offset 32: config refused by test");
	err_clear(&e);	/* sticky: the loader does not go on */
	assert_int_equal(mig_loader_step(&l, &e), -EPERM);
	assert_string_equal(e.msg, "CONFIG at stream offset 32: config refused by test");
	mig_loader_fini(&l);
	fake_fini(&t);
	mig_stream_fini(&w);
}

/* ---- through a pipe ---- */

struct feeder {
	int fd;
	const uint8_t *p;
	size_t len;
	size_t chunk;	/* 0: varying 1..13 */
};

static void *feed(void *arg)
{
	struct feeder *f = arg;
	size_t off = 0, k = 0;

	while (off < f->len) {
		size_t n = f->chunk ? f->chunk : 1 + (k++ * 7) % 13;
		ssize_t w;

		n = n < f->len - off ? n : f->len - off;
		w = write(f->fd, f->p + off, n);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(f->fd);
	return NULL;
}

static int load_pipe(const uint8_t *p, size_t len, size_t chunk, size_t bufsz,
		     bool direct, struct fake_target *t, struct err *e)
{
	struct feeder f = { .p = p, .len = len, .chunk = chunk };
	struct mig_stream r;
	pthread_t th;
	int fds[2], rc;

	assert_int_equal(pipe(fds), 0);
	f.fd = fds[1];
	assert_int_equal(pthread_create(&th, NULL, feed, &f), 0);
	fake_init(t, direct);
	assert_int_equal(mig_stream_init_fd_reader(&r, fds[0], bufsz), 0);
	rc = mig_load(&r, &fake_ops, t, e);
	mig_stream_fini(&r);
	close(fds[0]);	/* a still-writing feeder gets EPIPE */
	pthread_join(th, NULL);
	return rc;
}

static void test_load_from_pipe(void **state)
{
	static const size_t chunks[] = { 0, 1, 4096, 65536 };
	static const size_t bufs[] = { 64, 100, 5000, 0 };
	struct mig_stream w;
	const uint8_t *p;
	size_t len;

	mig_stream_init_mem_writer(&w, 0);
	assert_int_equal(golden_build(&w), 0);
	p = mig_stream_data(&w, &len);
	for (size_t c = 0; c < 4; c++)
		for (size_t b = 0; b < 4; b++) {
			struct fake_target t;
			struct err e = { 0 };
			const char *why;

			if (chunks[c] == 1 && bufs[b] == 0)
				continue;	/* slow and adds nothing */
			if (load_pipe(p, len, chunks[c], bufs[b], b & 1, &t, &e))
				fail_msg("chunk %zu buf %zu: %s", chunks[c],
					 bufs[b], e.msg);
			if (golden_verify(&t, &why))
				fail_msg("chunk %zu buf %zu: %s", chunks[c],
					 bufs[b], why);
			fake_fini(&t);
		}
	mig_stream_fini(&w);
}

static void test_truncated_pipe(void **state)
{
	struct mig_stream w;
	const uint8_t *p;
	size_t len;

	mig_stream_init_mem_writer(&w, 0);
	assert_int_equal(golden_build(&w), 0);
	p = mig_stream_data(&w, &len);
	for (size_t cut = 0; cut < len; cut += 1 + cut / 3) {
		struct fake_target t;
		struct err e = { 0 };
		int rc = load_pipe(p, cut, 0, cut & 1 ? 64 : 8192, cut & 2,
				   &t, &e);

		if (rc != -ENODATA || !strstr(e.msg, "truncated stream"))
			fail_msg("cut %zu: %d '%s'", cut, rc, e.msg);
		fake_fini(&t);
	}
	mig_stream_fini(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_roundtrip),
		cmocka_unit_test(test_config_roundtrip),
		cmocka_unit_test(test_producer_and_step),
		cmocka_unit_test(test_blocks_roundtrip_max),
		cmocka_unit_test(test_pages_roundtrip),
		cmocka_unit_test(test_batch_max_and_zero_memset),
		cmocka_unit_test(test_sections_roundtrip),
		cmocka_unit_test(test_header_refusals),
		cmocka_unit_test(test_version_window),
		cmocka_unit_test(test_record_header_refusals),
		cmocka_unit_test(test_unknown_records),
		cmocka_unit_test(test_crc_detects_corruption),
		cmocka_unit_test(test_text_refusals),
		cmocka_unit_test(test_block_table_refusals),
		cmocka_unit_test(test_ram_address_refusals),
		cmocka_unit_test(test_ram_length_refusals),
		cmocka_unit_test(test_ram_without_sink),
		cmocka_unit_test(test_section_refusals),
		cmocka_unit_test(test_callback_errors),
		cmocka_unit_test(test_load_from_pipe),
		cmocka_unit_test(test_truncated_pipe),
	};

	signal(SIGPIPE, SIG_IGN);
	golden_page(page_a, 11);
	golden_page(page_b, 12);
	return cmocka_run_group_tests_name("mig-stream-records", tests, NULL,
					   NULL);
}
