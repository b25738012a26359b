/*
 * compress.c - zstd and lz4 for page batches (see compress.h).
 *
 * One context per channel thread: a ZSTD_CCtx/DCtx pair for zstd (created
 * once, reused for every batch); lz4 needs none. Decompression never
 * writes past dst (both libraries' safe APIs bound it by `want`), and a
 * batch whose decompressed size differs from `want` by a byte is refused.
 */
#include <errno.h>
#include <stdlib.h>

#include <lz4.h>
#include <zstd.h>

#include "compress.h"
#include "stream.h"

struct mig_comp {
	uint32_t method;
	int level;
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
};

struct mig_comp *mig_comp_new(uint32_t method, int level, struct err *err)
{
	struct mig_comp *c;

	if (method != MIG_MFD_ZSTD && method != MIG_MFD_LZ4) {
		err_set(err, -EINVAL, "compression method %u unknown", method);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		err_set(err, -ENOMEM, "out of memory for a compressor");
		return NULL;
	}
	c->method = method;
	c->level = level ? level : MIG_COMP_ZSTD_LEVEL_DEFAULT;
	if (method == MIG_MFD_ZSTD) {
		c->cctx = ZSTD_createCCtx();
		c->dctx = ZSTD_createDCtx();
		if (!c->cctx || !c->dctx) {
			mig_comp_free(c);
			err_set(err, -ENOMEM, "out of memory for zstd contexts");
			return NULL;
		}
	}
	return c;
}

void mig_comp_free(struct mig_comp *c)
{
	if (!c)
		return;
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeDCtx(c->dctx);
	free(c);
}

size_t mig_comp_bound(uint32_t method, size_t len)
{
	if (method == MIG_MFD_ZSTD)
		return ZSTD_compressBound(len);
	return (size_t)LZ4_compressBound((int)len);
}

long mig_comp_compress(struct mig_comp *c, const void *src, size_t len,
		       void *dst, size_t cap)
{
	size_t r;
	int n;

	if (len > (size_t)INT32_MAX || cap > (size_t)INT32_MAX)
		return -EINVAL;
	if (c->method == MIG_MFD_ZSTD) {
		r = ZSTD_compressCCtx(c->cctx, dst, cap, src, len, c->level);
		if (ZSTD_isError(r))
			return -EIO;
		return r < len ? (long)r : 0;
	}
	n = LZ4_compress_default(src, dst, (int)len, (int)cap);
	return n > 0 && (size_t)n < len ? n : 0;
}

int mig_comp_decompress(struct mig_comp *c, const void *src, size_t len,
			void *dst, size_t want, struct err *err)
{
	size_t r;
	int n;

	if (!len || len > (size_t)INT32_MAX || want > (size_t)INT32_MAX)
		return err_set(err, -EPROTO, "%zu compressed bytes for %zu", len, want);
	if (c->method == MIG_MFD_ZSTD) {
		r = ZSTD_decompressDCtx(c->dctx, dst, want, src, len);
		if (ZSTD_isError(r))
			return err_set(err, -EPROTO, "zstd: %s", ZSTD_getErrorName(r));
		if (r != want)
			return err_set(err, -EPROTO, "zstd: %zu bytes, expected %zu", r, want);
		return 0;
	}
	n = LZ4_decompress_safe(src, dst, (int)len, (int)want);
	if (n < 0)
		return err_set(err, -EPROTO, "lz4: malformed block (%zu bytes)", len);
	if ((size_t)n != want)
		return err_set(err, -EPROTO, "lz4: %d bytes, expected %zu", n, want);
	return 0;
}
