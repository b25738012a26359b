/*
 * fuzz_pc_msg.c - post-copy's control messages from a hostile peer: the
 * first byte picks the decoder, the rest is its input. PC_BITMAP (the
 * destination's still-needed bitmap, read by the source on recovery) is
 * decoded and then checked against a 1000-page block the way the source
 * applies it (words inside the block, no bit past its end); PC_REQ,
 * the PC_DONE report and the recovery id too. Invariants beyond ASan and
 * UBSan: a failure comes with a message and the same code in struct err;
 * a decoded PC_BITMAP has 1..PC_BITMAP_WORDS_MAX words that match the
 * input bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postcopy.h"

#define BLOCK_PAGES 1000ULL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(int rc, const struct err *e)
{
	if (rc < 0 && (e->code != rc || !e->msg[0]))
		abort();
}

static void fuzz_bitmap(const uint8_t *in, size_t len)
{
	uint64_t words[PC_BITMAP_WORDS_MAX], w0, nwords = (BLOCK_PAGES + 63) / 64;
	struct err e = { 0 };
	uint32_t id, n;
	int rc = pc_bitmap_decode(in, len, &id, &w0, words, &n, &e);

	check_err(rc, &e);
	if (rc)
		return;
	if (n < 1 || n > PC_BITMAP_WORDS_MAX || len != PC_BITMAP_HDR + 8ULL * n)
		abort();
	if (memcmp(words, in + PC_BITMAP_HDR, 8ULL * n))	/* little-endian host */
		abort();
	if (w0 > nwords || n > nwords - w0)
		return;		/* the source refuses: past the block */
	if (w0 + n == nwords && (words[n - 1] >> (BLOCK_PAGES % 64)))
		return;		/* the source refuses: bits past the end */
}

static void fuzz_text(const uint8_t *in, size_t len, int which)
{
	char s[512];
	struct pc_report r;
	struct err e = { 0 };
	uint64_t id;

	len = len < sizeof(s) - 1 ? len : sizeof(s) - 1;
	memcpy(s, in, len);
	s[len] = '\0';
	if (which)
		check_err(pc_report_parse(s, &r, &e), &e);
	else if (!pc_id_parse(s, &id) && !id)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = { 0 };
	uint32_t block;
	uint64_t off;

	if (!size)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fuzz_bitmap(data + 1, size - 1);
		break;
	case 1:
		check_err(pc_req_decode(data + 1, size - 1, &block, &off, &e), &e);
		break;
	default:
		fuzz_text(data + 1, size - 1, data[0] % 4 == 2);
		break;
	}
	return 0;
}
