/*
 * fuzz_mfd_channel.c - a parallel channel's byte stream as the destination
 * reads it: record headers, HELLO, SYNC and PAGES (raw or compressed)
 * placed into a fake 64-page RAM block. The first input byte picks the
 * announced method (none, zstd, lz4). Compressed batches go through the
 * real decoder, which must refuse any size other than n pages.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "stream.h"

#define PS 4096u
#define NPAGES 64u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t ram[NPAGES * PS];
static uint8_t scratch[MIG_RAM_BATCH_BYTES];
static uint8_t cbuf[MIG_MFD_DATA_MAX];

static int pages(struct mig_stream *r, uint64_t len, struct mig_comp *c, uint32_t method)
{
	struct mig_ram_block blk = { .id = 1, .page_size = PS, .size = sizeof(ram),
				     .idstr = "ram0", .host = ram };
	static struct mig_mfd_pages p;
	const struct mig_ram_block *b;
	void *dst[MIG_RAM_BATCH_MAX];
	int rc = mig_mfd_get_pages(r, len, &blk, 1, PS, method, &p, &b, NULL);

	if (rc)
		return rc;
	if (p.method == MIG_MFD_NONE) {
		for (uint32_t i = 0; i < p.n; i++)
			dst[i] = (uint8_t *)b->host + p.offsets[i];
		mig_stream_get_pages(r, dst, p.n, PS);
		return mig_stream_error(r);
	}
	mig_stream_get_bytes(r, cbuf, p.data_len);
	if (mig_stream_error(r))
		return mig_stream_error(r);
	rc = mig_comp_decompress(c, cbuf, p.data_len, scratch, (size_t)p.n * PS, NULL);
	for (uint32_t i = 0; !rc && i < p.n; i++)
		memcpy(ram + p.offsets[i], scratch + (size_t)i * PS, PS);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_comp *c = NULL;
	struct mig_stream r;
	struct mig_rec_hdr rh;
	uint32_t method;
	int rc = 0;

	if (!size)
		return 0;
	method = data[0] % MIG_MFD_METHOD_END_;
	if (method != MIG_MFD_NONE)
		c = mig_comp_new(method, 0, NULL);
	mig_stream_init_mem_reader(&r, data + 1, size - 1);
	while (!rc && mig_stream_remaining(&r)) {
		struct mig_mfd_hello h;
		uint64_t seq;

		rc = mig_mfd_get_rec(&r, &rh, NULL);
		if (rc)
			break;
		if (rh.type == MIG_REC_MULTIFD_HELLO)
			rc = mig_mfd_get_hello(&r, &h, NULL);
		else if (rh.type == MIG_REC_MULTIFD_SYNC)
			rc = mig_mfd_get_sync(&r, &seq, NULL);
		else
			rc = pages(&r, rh.length, c, method);
	}
	mig_comp_free(c);
	return 0;
}
