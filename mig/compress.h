/*
 * compress.h - per-batch page compression for the parallel channels
 * (zstd, lz4). Pure: libc, base and the two libraries, no KVM; the
 * destination's side checks that every batch decompresses to exactly the
 * size its header promises (hostile input).
 */
#ifndef MIG_COMPRESS_H
#define MIG_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct mig_comp;

#define MIG_COMP_ZSTD_LEVEL_DEFAULT	1
#define MIG_COMP_ZSTD_LEVEL_MAX		19

/* method: enum mig_mfd_method (not NONE); level: zstd only. */
struct mig_comp *mig_comp_new(uint32_t method, int level, struct err *err);
void mig_comp_free(struct mig_comp *c);
/* Space compress() may need for len input bytes. */
size_t mig_comp_bound(uint32_t method, size_t len);
/*
 * Compress len bytes of src into dst (cap bytes). Returns the compressed
 * size, or 0 if it would not be smaller than len (send raw), or a
 * negative errno.
 */
long mig_comp_compress(struct mig_comp *c, const void *src, size_t len,
		       void *dst, size_t cap);
/* Decompress exactly `want` bytes into dst, else -EPROTO with a message. */
int mig_comp_decompress(struct mig_comp *c, const void *src, size_t len,
			void *dst, size_t want, struct err *err);

#endif
