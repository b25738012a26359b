/*
 * test_multifd.c - the parallel channels' records (mig/stream/multifd.c)
 * and batch compression (mig/compress.c): round trips, and hostile headers,
 * lengths, offsets, methods and compressed data that must all be refused.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "compress.h"
#include "stream.h"

#define PS 4096u

static const struct mig_ram_block blocks[] = {
	{ .id = 7, .page_size = PS, .size = 64 * PS, .idstr = "ram0" },
};

static void fill(uint8_t *p, size_t n, unsigned seed, bool compressible)
{
	for (size_t i = 0; i < n; i++)
		p[i] = compressible ? (uint8_t)(i / 512 + seed) : (uint8_t)(rand() ^ seed);
}

/* A channel record header + PAGES header, by hand (for hostile variants). */
static void put_pages_hdr(struct mig_stream *w, uint64_t rec_len, uint32_t block,
			  uint32_t n, uint32_t method, uint32_t data_len)
{
	mig_stream_put_u16(w, MIG_REC_MULTIFD_PAGES);
	mig_stream_put_u16(w, 0);
	mig_stream_put_u32(w, 0);
	mig_stream_put_u64(w, rec_len);
	mig_stream_put_u32(w, block);
	mig_stream_put_u32(w, n);
	mig_stream_put_u32(w, method);
	mig_stream_put_u32(w, data_len);
}

/* Read one PAGES record from w's bytes: its return code. */
static int read_pages(struct mig_stream *w, uint32_t method_ok, struct mig_mfd_pages *p)
{
	const struct mig_ram_block *b = NULL;
	struct mig_rec_hdr rh;
	struct mig_stream r;
	struct err e = { 0 };
	const uint8_t *data;
	size_t len;
	int rc;

	data = mig_stream_data(w, &len);
	mig_stream_init_mem_reader(&r, data, len);
	rc = mig_mfd_get_rec(&r, &rh, &e);
	if (!rc)
		rc = mig_mfd_get_pages(&r, rh.length, blocks, 1, PS, method_ok, p, &b, &e);
	if (rc)
		assert_true(e.code == rc && e.msg[0]);
	return rc;
}

static void test_hello_sync_roundtrip(void **state)
{
	struct mig_mfd_hello h = { .index = 2, .n = 4 }, h2;
	struct mig_stream w, r;
	struct mig_rec_hdr rh;
	const uint8_t *data;
	uint64_t seq;
	size_t len;

	(void)state;
	memset(h.id, 0xab, sizeof(h.id));
	mig_stream_init_mem_writer(&w, 0);
	mig_stream_put_mfd_hello(&w, &h);
	mig_stream_put_mfd_sync(&w, 9);
	data = mig_stream_data(&w, &len);
	assert_int_equal(len, 2 * MIG_REC_HDR_SIZE + MIG_MFD_HELLO_LEN + 8);
	mig_stream_init_mem_reader(&r, data, len);
	assert_int_equal(mig_mfd_get_rec(&r, &rh, NULL), 0);
	assert_int_equal(rh.type, MIG_REC_MULTIFD_HELLO);
	assert_int_equal(mig_mfd_get_hello(&r, &h2, NULL), 0);
	assert_memory_equal(h.id, h2.id, sizeof(h.id));
	assert_int_equal(h2.index, 2);
	assert_int_equal(mig_mfd_get_rec(&r, &rh, NULL), 0);
	assert_int_equal(mig_mfd_get_sync(&r, &seq, NULL), 0);
	assert_int_equal(seq, 9);
	mig_stream_fini(&w);
}

static void test_hello_index_out_of_range(void **state)
{
	struct mig_mfd_hello h = { .index = 4, .n = 4 }, h2;
	struct mig_stream w, r;
	struct mig_rec_hdr rh;
	const uint8_t *data;
	size_t len;

	(void)state;
	mig_stream_init_mem_writer(&w, 0);
	mig_stream_put_mfd_hello(&w, &h);
	data = mig_stream_data(&w, &len);
	mig_stream_init_mem_reader(&r, data, len);
	assert_int_equal(mig_mfd_get_rec(&r, &rh, NULL), 0);
	assert_int_equal(mig_mfd_get_hello(&r, &h2, NULL), -EPROTO);
	mig_stream_fini(&w);
}

static void test_channel_rejects_main_records(void **state)
{
	struct mig_stream w, r;
	struct mig_rec_hdr rh;
	const uint8_t *data;
	size_t len;

	(void)state;
	mig_stream_init_mem_writer(&w, 0);
	mig_stream_put_u16(&w, MIG_REC_RAM_PAGES);
	mig_stream_put_u16(&w, 0);
	mig_stream_put_u32(&w, 0);
	mig_stream_put_u64(&w, 8);
	data = mig_stream_data(&w, &len);
	mig_stream_init_mem_reader(&r, data, len);
	assert_int_equal(mig_mfd_get_rec(&r, &rh, NULL), -EPROTO);
	mig_stream_fini(&w);
	/* a SYNC with a wrong length, and one with flags */
	mig_stream_init_mem_writer(&w, 0);
	mig_stream_put_u16(&w, MIG_REC_MULTIFD_SYNC);
	mig_stream_put_u16(&w, 0);
	mig_stream_put_u32(&w, 0);
	mig_stream_put_u64(&w, 9);
	data = mig_stream_data(&w, &len);
	mig_stream_init_mem_reader(&r, data, len);
	assert_int_equal(mig_mfd_get_rec(&r, &rh, NULL), -EPROTO);
	mig_stream_fini(&w);
	mig_stream_init_mem_writer(&w, 0);
	mig_stream_put_u16(&w, MIG_REC_MULTIFD_SYNC);
	mig_stream_put_u16(&w, MIG_RECF_CRC);
	mig_stream_put_u32(&w, 0);
	mig_stream_put_u64(&w, 8);
	data = mig_stream_data(&w, &len);
	mig_stream_init_mem_reader(&r, data, len);
	assert_int_equal(mig_mfd_get_rec(&r, &rh, NULL), -EPROTO);
	mig_stream_fini(&w);
}

static void test_raw_pages_roundtrip(void **state)
{
	uint8_t *pg = malloc(3 * PS);
	const void *ptrs[3] = { pg, pg + PS, pg + 2 * PS };
	uint64_t offs[3] = { 0, 5 * PS, 63 * PS };
	struct mig_mfd_pages p;
	struct mig_stream w;

	(void)state;
	fill(pg, 3 * PS, 1, false);
	mig_stream_init_mem_writer(&w, 0);
	assert_int_equal(mig_stream_put_mfd_pages(&w, PS, 7, offs, ptrs, 3, MIG_MFD_NONE,
						  NULL, 0), 0);
	assert_int_equal(read_pages(&w, MIG_MFD_LZ4, &p), 0);
	assert_int_equal(p.n, 3);
	assert_int_equal(p.data_len, 3 * PS);
	assert_int_equal(p.offsets[2], 63 * PS);
	mig_stream_fini(&w);
	free(pg);
}

static void test_hostile_pages_headers(void **state)
{
	static const struct {
		uint32_t block, n, method, data_len;
		int64_t len_delta;	/* record length off by this */
		uint64_t off;
	} cases[] = {
		{ 9, 1, MIG_MFD_NONE, PS, 0, 0 },		/* unknown block */
		{ 7, 0, MIG_MFD_NONE, 0, 0, 0 },		/* no pages */
		{ 7, MIG_RAM_BATCH_MAX + 1, MIG_MFD_NONE, PS, 0, 0 }, /* too many */
		{ 7, 1, MIG_MFD_NONE, PS - 1, 0, 0 },		/* raw length short */
		{ 7, 1, MIG_MFD_NONE, PS, 1, 0 },		/* record length off */
		{ 7, 1, MIG_MFD_ZSTD, 100, 0, 0 },		/* method not announced */
		{ 7, 1, 77, 100, 0, 0 },			/* unknown method */
		{ 7, 1, MIG_MFD_LZ4, 0, 0, 0 },			/* empty data */
		{ 7, 1, MIG_MFD_LZ4, MIG_MFD_DATA_MAX + 1, 0, 0 }, /* data over max */
		{ 7, 1, MIG_MFD_NONE, PS, 0, 64 * PS },		/* offset past the end */
		{ 7, 1, MIG_MFD_NONE, PS, 0, 100 },		/* offset unaligned */
		{ 7, 1, MIG_MFD_NONE, PS, 0, UINT64_MAX - PS + 1 }, /* wraps */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t len = MIG_MFD_PAGES_HDR + 8ULL * cases[i].n + cases[i].data_len +
			       (uint64_t)cases[i].len_delta;
		struct mig_mfd_pages p;
		struct mig_stream w;

		mig_stream_init_mem_writer(&w, 0);
		put_pages_hdr(&w, len, cases[i].block, cases[i].n, cases[i].method,
			      cases[i].data_len);
		for (uint32_t k = 0; k < cases[i].n && k < 4; k++)
			mig_stream_put_u64(&w, cases[i].off);
		assert_int_not_equal(read_pages(&w, MIG_MFD_LZ4, &p), 0);
		mig_stream_fini(&w);
	}
}

static void roundtrip_method(uint32_t method)
{
	size_t n = 256, len = n * PS;
	uint8_t *src = malloc(len), *dst = malloc(len);
	size_t cap = mig_comp_bound(method, len);
	uint8_t *c = malloc(cap);
	struct mig_comp *cc = mig_comp_new(method, 0, NULL);
	long clen;

	fill(src, len, 3, true);
	clen = mig_comp_compress(cc, src, len, c, cap);
	assert_true(clen > 0 && (size_t)clen < len);
	assert_int_equal(mig_comp_decompress(cc, c, (size_t)clen, dst, len, NULL), 0);
	assert_memory_equal(src, dst, len);
	/* exactly the promised size: one page more or less is refused */
	assert_int_equal(mig_comp_decompress(cc, c, (size_t)clen, dst, len - PS, NULL), -EPROTO);
	assert_int_equal(mig_comp_decompress(cc, c, (size_t)clen, dst, len + 0, NULL), 0);
	memset(dst, 0, len);
	{
		uint8_t *big = malloc(len + PS);

		assert_int_equal(mig_comp_decompress(cc, c, (size_t)clen, big, len + PS, NULL),
				 -EPROTO);
		free(big);
	}
	/* truncated and garbled data */
	assert_int_equal(mig_comp_decompress(cc, c, (size_t)clen / 2, dst, len, NULL), -EPROTO);
	for (long i = 0; i < clen; i += 7)
		c[i] ^= 0x5a;
	assert_int_equal(mig_comp_decompress(cc, c, (size_t)clen, dst, len, NULL), -EPROTO);
	assert_int_equal(mig_comp_decompress(cc, c, 0, dst, len, NULL), -EPROTO);
	mig_comp_free(cc);
	free(src);
	free(dst);
	free(c);
}

static void test_zstd_roundtrip_and_hostile(void **state)
{
	(void)state;
	roundtrip_method(MIG_MFD_ZSTD);
}

static void test_lz4_roundtrip_and_hostile(void **state)
{
	(void)state;
	roundtrip_method(MIG_MFD_LZ4);
}

static void test_incompressible_says_send_raw(void **state)
{
	size_t len = 64 * PS, cap = mig_comp_bound(MIG_MFD_LZ4, len);
	uint8_t *src = malloc(len), *c = malloc(cap);

	(void)state;
	fill(src, len, 5, false);
	for (uint32_t m = MIG_MFD_ZSTD; m <= MIG_MFD_LZ4; m++) {
		struct mig_comp *cc = mig_comp_new(m, 0, NULL);
		size_t mcap = mig_comp_bound(m, len);
		uint8_t *mc = malloc(mcap);

		assert_int_equal(mig_comp_compress(cc, src, len, mc, mcap), 0);
		mig_comp_free(cc);
		free(mc);
	}
	assert_null(mig_comp_new(MIG_MFD_NONE, 0, NULL));
	free(src);
	free(c);
}

static void test_compressed_pages_record(void **state)
{
	size_t n = 4, len = n * PS, cap = mig_comp_bound(MIG_MFD_ZSTD, len);
	uint8_t *src = malloc(len), *c = malloc(cap), *out = malloc(len);
	uint64_t offs[4] = { 0, PS, 2 * PS, 3 * PS };
	struct mig_comp *cc = mig_comp_new(MIG_MFD_ZSTD, 3, NULL);
	struct mig_mfd_pages p;
	struct mig_stream w;
	long clen;

	(void)state;
	fill(src, len, 9, true);
	clen = mig_comp_compress(cc, src, len, c, cap);
	assert_true(clen > 0);
	mig_stream_init_mem_writer(&w, 0);
	assert_int_equal(mig_stream_put_mfd_pages(&w, PS, 7, offs, NULL, n, MIG_MFD_ZSTD,
						  c, (size_t)clen), 0);
	assert_int_equal(read_pages(&w, MIG_MFD_ZSTD, &p), 0);
	assert_int_equal(p.data_len, (uint32_t)clen);
	/* a reader that announced lz4 refuses a zstd batch */
	assert_int_equal(read_pages(&w, MIG_MFD_LZ4, &p), -EPROTO);
	mig_stream_fini(&w);
	mig_comp_free(cc);
	free(src);
	free(c);
	free(out);
}

static void test_writer_refuses_bad_batches(void **state)
{
	uint64_t off = 0;
	const void *pg = blocks;
	struct mig_stream w;

	(void)state;
	mig_stream_init_mem_writer(&w, 0);
	assert_int_equal(mig_stream_put_mfd_pages(&w, PS, 7, &off, &pg, 0, MIG_MFD_NONE, NULL, 0),
			 -EINVAL);
	mig_stream_fini(&w);
	mig_stream_init_mem_writer(&w, 0);
	assert_int_equal(mig_stream_put_mfd_pages(&w, PS, 7, &off, &pg, 1, MIG_MFD_LZ4, pg, 0),
			 -EINVAL);
	mig_stream_fini(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_sync_roundtrip),
		cmocka_unit_test(test_hello_index_out_of_range),
		cmocka_unit_test(test_channel_rejects_main_records),
		cmocka_unit_test(test_raw_pages_roundtrip),
		cmocka_unit_test(test_hostile_pages_headers),
		cmocka_unit_test(test_zstd_roundtrip_and_hostile),
		cmocka_unit_test(test_lz4_roundtrip_and_hostile),
		cmocka_unit_test(test_incompressible_says_send_raw),
		cmocka_unit_test(test_compressed_pages_record),
		cmocka_unit_test(test_writer_refuses_bad_batches),
	};

	return cmocka_run_group_tests_name("mig-multifd", tests, NULL, NULL);
}
