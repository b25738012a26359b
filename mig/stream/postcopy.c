/*
 * postcopy.c - the post-copy records of the stream (docs/migration-stream.md
 * section 12): POSTCOPY_DISCARD, a slice of the bitmap of pages the
 * destination must not trust (stale or never sent; they are fetched on
 * demand), and POSTCOPY_LISTEN, "device state sent: take over with
 * userfaultfd". Both are valid only in a stream whose header sets
 * MIG_FEAT_POSTCOPY. Writer and validating loader live together here.
 */
#define MIG_STREAM_INTERNAL
#include "stream_int.h"

#include <errno.h>
#include <stdlib.h>

/* Find a block of the table by id; NULL (and err) if there is none. */
static struct mig_ram_block *pc_block(struct mig_loader *l, uint32_t id,
				      struct err *err)
{
	for (size_t i = 0; i < l->nblocks; i++)
		if (l->blocks[i].id == id)
			return &l->blocks[i];
	err_set(err, -EPROTO, "unknown RAM block id %u", id);
	return NULL;
}

/* Room for n words in the loader's scratch buffer. */
static uint64_t *pc_scratch(struct mig_loader *l, uint32_t n, struct err *err)
{
	size_t bytes = 8 * (size_t)n;
	uint8_t *p;

	if (bytes > l->scratch_cap) {
		p = realloc(l->scratch, bytes);
		if (!p) {
			err_set(err, -ENOMEM, "no memory for %zu bytes", bytes);
			return NULL;
		}
		l->scratch = p;
		l->scratch_cap = bytes;
	}
	return (uint64_t *)(void *)l->scratch;
}

int mig_stream_put_pc_discard(struct mig_stream *s, uint32_t block,
			      uint64_t offset, const uint64_t *words,
			      uint32_t nwords)
{
	if (!nwords || nwords > MIG_PC_DISCARD_WORDS_MAX)
		return mig_stream_set_error(s, -EINVAL, "POSTCOPY_DISCARD: %u words", nwords);
	mig_rec_begin(s, MIG_REC_PC_DISCARD, 0, 0, 16 + 8ULL * nwords);
	mig_stream_put_u32(s, block);
	mig_stream_put_u64(s, offset);
	mig_stream_put_u32(s, nwords);
	for (uint32_t i = 0; i < nwords; i++)
		mig_stream_put_u64(s, words[i]);
	mig_rec_end(s);
	return mig_stream_error(s);
}

int mig_stream_put_pc_listen(struct mig_stream *s)
{
	mig_rec_begin(s, MIG_REC_PC_LISTEN, 0, 0, 0);
	mig_rec_end(s);
	return mig_stream_error(s);
}

static int need_postcopy(struct mig_loader *l, struct err *err)
{
	if (!(l->hdr.features & MIG_FEAT_POSTCOPY))
		return err_set(err, -EPROTO, "post-copy record in a stream without the POSTCOPY feature");
	if (l->pc_listen)
		return err_set(err, -EPROTO, "post-copy record after POSTCOPY_LISTEN");
	return 0;
}

/*
 * Check a discard slice: aligned to 64 pages, inside the block, and no
 * bit set for a page past the block's end.
 */
int mig_pc_discard_check(uint64_t block_size, uint32_t page_size, uint64_t offset,
			 const uint64_t *words, uint32_t nwords, struct err *err)
{
	uint64_t npages = block_size / page_size, first, span;

	if (offset % (64ULL * page_size))
		return err_set(err, -EPROTO, "offset 0x%llx not aligned to 64 pages",
			       (unsigned long long)offset);
	first = offset / page_size;
	if (first >= npages)
		return err_set(err, -EPROTO, "offset 0x%llx beyond the block",
			       (unsigned long long)offset);
	span = npages - first;		/* pages the slice may cover */
	for (uint32_t w = 0; w < nwords; w++) {
		uint64_t base = 64ULL * w;

		if (!words[w])
			continue;
		if (base >= span || (span - base < 64 && words[w] >> (span - base)))
			return err_set(err, -EPROTO, "page bits past the end of the block");
	}
	return 0;
}

int mig_load_pc_discard(struct mig_loader *l, struct err *err)
{
	uint64_t off, *words;
	struct mig_ram_block *b;
	uint32_t id, n;
	int rc = need_postcopy(l, err);

	if (rc)
		return rc;
	if (l->rec.length < 24 || (l->rec.length - 16) % 8)
		return err_set(err, -EPROTO, "length %llu is not 16 + 8 x words",
			       (unsigned long long)l->rec.length);
	id = mig_stream_get_u32(l->in);
	off = mig_stream_get_u64(l->in);
	n = mig_stream_get_u32(l->in);
	if (mig_stream_error(l->in))
		return mig_load_stream_err(l, err);
	if (!n || n > MIG_PC_DISCARD_WORDS_MAX || 16 + 8ULL * n != l->rec.length)
		return err_set(err, -EPROTO, "%u words do not match the length %llu", n,
			       (unsigned long long)l->rec.length);
	b = pc_block(l, id, err);
	if (!b)
		return err->code;
	words = pc_scratch(l, n, err);
	if (!words)
		return err->code;
	for (uint32_t i = 0; i < n; i++)
		words[i] = mig_stream_get_u64(l->in);
	rc = mig_load_finish(l, err);
	if (!rc)
		rc = mig_pc_discard_check(b->size, l->hdr.page_size, off, words, n, err);
	if (rc || !l->ops->on_pc_discard)
		return rc;
	return mig_load_cb_err(l->ops->on_pc_discard(l->ctx, b, off, words, n, err),
			       "on_pc_discard", err);
}

int mig_load_pc_listen(struct mig_loader *l, struct err *err)
{
	int rc = need_postcopy(l, err);

	if (!rc && !l->have_blocks)
		rc = err_set(err, -EPROTO, "POSTCOPY_LISTEN before RAM_BLOCKS");
	if (!rc)
		rc = mig_load_finish(l, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < l->nsections; i++)
		if (l->sections[i].open)
			return err_set(err, -EPROTO, "section '%s' still open at POSTCOPY_LISTEN",
				       l->sections[i].info.idstr);
	l->pc_listen = true;
	if (!l->ops->on_pc_listen)
		return err_set(err, -ENOTSUP, "this destination does not do post-copy");
	return mig_load_cb_err(l->ops->on_pc_listen(l->ctx, err), "on_pc_listen", err);
}
