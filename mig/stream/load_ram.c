/*
 * load_ram.c - loaders of the RAM records: RAM_BLOCKS, RAM_PAGE, RAM_PAGES,
 * RAM_ZERO and RAM_ITER_END.
 *
 * Every address is a (block id, offset) pair checked against the block table
 * before a byte of page data is read: the block exists, the offset is
 * page-aligned and offset + length stays inside the block. Page data goes
 * straight to block->host + offset when the engine mapped the block (with
 * readv() on fd streams), else to a scratch buffer handed to on_ram_pages.
 */
#define MIG_STREAM_INTERNAL
#include "stream_int.h"

#include <errno.h>
#include <stdlib.h>

#include "util.h"

static int expect_len(struct mig_loader *l, uint64_t want, struct err *err)
{
	if (l->rec.length == want)
		return 0;
	return err_set(err, -EPROTO, "length %llu, expected %llu",
		       (unsigned long long)l->rec.length,
		       (unsigned long long)want);
}

/* ---- the block table ---- */

static int check_block(struct mig_loader *l, const struct mig_ram_block *b,
		       uint32_t flags, struct err *err)
{
	uint64_t ps = b->page_size;

	if (!b->id)
		return err_set(err, -EPROTO, "block '%s': id 0", b->idstr);
	if (flags)
		return err_set(err, -EPROTO, "block '%s': flags 0x%x (none defined)",
			       b->idstr, flags);
	if (ps < l->hdr.page_size || ps > MIG_BLOCK_PAGE_MAX || (ps & (ps - 1)))
		return err_set(err, -EPROTO, "block '%s': page size %llu invalid",
			       b->idstr, (unsigned long long)ps);
	if (!b->size || b->size > MIG_BLOCK_SIZE_MAX || b->size % ps)
		return err_set(err, -EPROTO,
			       "block '%s': size %llu not a non-zero multiple of %llu",
			       b->idstr, (unsigned long long)b->size,
			       (unsigned long long)ps);
	for (const struct mig_ram_block *o = l->blocks; o < b; o++)
		if (o->id == b->id || !strcmp(o->idstr, b->idstr))
			return err_set(err, -EPROTO,
				       "block '%s' (id %u) repeats block '%s' (id %u)",
				       b->idstr, b->id, o->idstr, o->id);
	return 0;
}

static int parse_block(struct mig_loader *l, struct mig_stream *r,
		       struct mig_ram_block *b, size_t i, struct err *err)
{
	uint32_t flags;
	uint16_t il;

	b->id = mig_stream_get_u32(r);
	b->page_size = mig_stream_get_u32(r);
	b->size = mig_stream_get_u64(r);
	flags = mig_stream_get_u32(r);
	il = mig_stream_get_u16(r);
	if (il > MIG_IDSTR_MAX)
		return err_set(err, -EPROTO, "block %zu: idstr length %u", i, il);
	mig_stream_get_bytes(r, b->idstr, il);
	b->idstr[il] = '\0';
	if (mig_stream_error(r))
		return err_set(err, -EPROTO, "block %zu: entry cut short", i);
	if (!mig_idstr_valid(b->idstr, il))
		return err_set(err, -EPROTO, "block %zu: idstr empty or not printable",
			       i);
	return check_block(l, b, flags, err);
}

static int parse_blocks(struct mig_loader *l, struct mig_stream *r,
			struct err *err)
{
	uint32_t n = mig_stream_get_u32(r);
	int rc = 0;

	if (n < 1 || n > MIG_RAM_BLOCKS_MAX)
		return err_set(err, -EPROTO, "%u blocks (1-%u allowed)", n,
			       MIG_RAM_BLOCKS_MAX);
	l->blocks = calloc(n, sizeof(*l->blocks));
	if (!l->blocks)
		return err_set(err, -ENOMEM, "no memory for %u blocks", n);
	for (l->nblocks = 0; !rc && l->nblocks < n; l->nblocks++)
		rc = parse_block(l, r, &l->blocks[l->nblocks], l->nblocks, err);
	if (!rc && mig_stream_remaining(r))
		rc = err_set(err, -EPROTO, "%zu bytes after the last block",
			     mig_stream_remaining(r));
	return rc;
}

int mig_load_ram_blocks(struct mig_loader *l, struct err *err)
{
	struct mig_stream r;
	uint8_t *p;
	int rc;

	if (l->have_blocks)
		return err_set(err, -EPROTO, "second block table");
	p = mig_load_payload(l, err);
	if (!p)
		return err->code;
	mig_stream_init_mem_reader(&r, p, (size_t)l->rec.length);
	rc = parse_blocks(l, &r, err);
	if (!rc)
		rc = mig_load_finish(l, err);
	if (rc) {
		free(l->blocks);
		l->blocks = NULL;
		l->nblocks = 0;
		return rc;
	}
	l->have_blocks = true;
	if (!l->ops->on_ram_blocks)
		return 0;
	return mig_load_cb_err(l->ops->on_ram_blocks(l->ctx, l->blocks,
						     l->nblocks, err),
			       "on_ram_blocks", err);
}

/* ---- addresses ---- */

static struct mig_ram_block *get_block(struct mig_loader *l, uint32_t id,
				       struct err *err)
{
	if (!l->have_blocks) {
		err_set(err, -EPROTO, "RAM data before the RAM_BLOCKS table");
		return NULL;
	}
	for (size_t i = 0; i < l->nblocks; i++)
		if (l->blocks[i].id == id)
			return &l->blocks[i];
	err_set(err, -EPROTO, "block id %u is not in the block table", id);
	return NULL;
}

static int check_range(struct mig_loader *l, const struct mig_ram_block *b,
		       uint64_t offset, uint64_t npages, struct err *err)
{
	uint64_t ps = l->hdr.page_size;
	char sz[32];

	if (offset % ps)
		return err_set(err, -EPROTO,
			       "offset 0x%llx in block '%s' not aligned to %llu",
			       (unsigned long long)offset, b->idstr,
			       (unsigned long long)ps);
	if (offset < b->size && npages && npages <= (b->size - offset) / ps)
		return 0;
	fmt_bytes(b->size, sz, sizeof(sz));
	if (npages == 1)
		return err_set(err, -EPROTO, "offset 0x%llx beyond block '%s' size %s",
			       (unsigned long long)offset, b->idstr, sz);
	return err_set(err, -EPROTO,
		       "offset 0x%llx + %llu pages beyond block '%s' size %s",
		       (unsigned long long)offset, (unsigned long long)npages,
		       b->idstr, sz);
}

static int need_pages_sink(struct mig_loader *l, const struct mig_ram_block *b,
			   struct err *err)
{
	if (b->host || l->ops->on_ram_pages)
		return 0;
	return err_set(err, -ENOTSUP,
		       "block '%s': no host mapping and no on_ram_pages", b->idstr);
}

static uint8_t *scratch_pages(struct mig_loader *l, size_t bytes,
			      struct err *err)
{
	uint8_t *p;

	if (bytes <= l->scratch_cap)
		return l->scratch;
	p = realloc(l->scratch, bytes);
	if (!p) {
		err_set(err, -ENOMEM, "no memory for %zu bytes of pages", bytes);
		return NULL;
	}
	l->scratch = p;
	l->scratch_cap = bytes;
	return p;
}

static int pages_done(struct mig_loader *l, const struct mig_ram_block *b,
		      size_t n, struct err *err)
{
	int rc = mig_load_finish(l, err);

	if (rc)
		return rc;
	l->pages += n;
	if (!l->ops->on_ram_pages)
		return 0;
	return mig_load_cb_err(l->ops->on_ram_pages(l->ctx, b, l->offsets,
						    l->ptrs, n, err),
			       "on_ram_pages", err);
}

static int batch_arrays(struct mig_loader *l, struct err *err)
{
	if (l->offsets)
		return 0;
	l->offsets = calloc(MIG_RAM_BATCH_MAX, sizeof(*l->offsets));
	l->ptrs = calloc(MIG_RAM_BATCH_MAX, sizeof(*l->ptrs));
	if (l->offsets && l->ptrs)
		return 0;
	free(l->offsets);
	l->offsets = NULL;
	return err_set(err, -ENOMEM, "no memory for batch arrays");
}

/* ---- page records ---- */

int mig_load_ram_page(struct mig_loader *l, struct err *err)
{
	size_t ps = l->hdr.page_size;
	struct mig_ram_block *b;
	uint32_t id;
	int rc;

	rc = expect_len(l, 12 + (uint64_t)ps, err);
	if (!rc)
		rc = batch_arrays(l, err);
	if (rc)
		return rc;
	id = mig_stream_get_u32(l->in);
	l->offsets[0] = mig_stream_get_u64(l->in);
	if (mig_stream_error(l->in))
		return mig_load_stream_err(l, err);
	b = get_block(l, id, err);
	if (!b || check_range(l, b, l->offsets[0], 1, err) ||
	    need_pages_sink(l, b, err))
		return err->code;
	l->ptrs[0] = b->host ? (uint8_t *)b->host + l->offsets[0] :
			       scratch_pages(l, ps, err);
	if (!l->ptrs[0])
		return err->code;
	mig_stream_get_bytes(l->in, l->ptrs[0], ps);
	return pages_done(l, b, 1, err);
}

static int read_offsets(struct mig_loader *l, const struct mig_ram_block *b,
			uint32_t n, struct err *err)
{
	uint8_t *raw = (uint8_t *)l->offsets;

	mig_stream_get_bytes(l->in, raw, (size_t)n * 8);
	if (mig_stream_error(l->in))
		return mig_load_stream_err(l, err);
	for (uint32_t i = 0; i < n; i++) {
		l->offsets[i] = mig_le64_load(raw + 8 * (size_t)i);
		if (check_range(l, b, l->offsets[i], 1, err)) {
			err_prefix(err, "page %u of %u", i, n);
			return err->code;
		}
	}
	return 0;
}

int mig_load_ram_pages(struct mig_loader *l, struct err *err)
{
	size_t ps = l->hdr.page_size;
	struct mig_ram_block *b;
	uint32_t id, n;
	uint8_t *data;
	int rc;

	if (l->rec.length < 8)
		return err_set(err, -EPROTO, "length %llu < 8",
			       (unsigned long long)l->rec.length);
	id = mig_stream_get_u32(l->in);
	n = mig_stream_get_u32(l->in);
	if (mig_stream_error(l->in))
		return mig_load_stream_err(l, err);
	if (n < 1 || n > MIG_RAM_BATCH_MAX || n * ps > MIG_RAM_BATCH_BYTES)
		return err_set(err, -EPROTO, "%u pages in one batch", n);
	rc = expect_len(l, 8 + (uint64_t)n * (8 + ps), err);
	if (!rc)
		rc = batch_arrays(l, err);
	if (rc)
		return rc;
	b = get_block(l, id, err);
	if (!b || read_offsets(l, b, n, err) || need_pages_sink(l, b, err))
		return err->code;
	data = b->host ? NULL : scratch_pages(l, n * ps, err);
	if (!b->host && !data)
		return err->code;
	for (uint32_t i = 0; i < n; i++)
		l->ptrs[i] = b->host ? (uint8_t *)b->host + l->offsets[i] :
				       data + (size_t)i * ps;
	mig_stream_get_pages(l->in, l->ptrs, n, ps);
	return pages_done(l, b, n, err);
}

int mig_load_ram_zero(struct mig_loader *l, struct err *err)
{
	size_t ps = l->hdr.page_size;
	struct mig_ram_block *b;
	uint64_t off, npages;
	uint32_t id;
	int rc = expect_len(l, 20, err);

	if (rc)
		return rc;
	id = mig_stream_get_u32(l->in);
	off = mig_stream_get_u64(l->in);
	npages = mig_stream_get_u64(l->in);
	rc = mig_load_finish(l, err);
	if (rc)
		return rc;
	if (!npages)
		return err_set(err, -EPROTO, "zero run of 0 pages");
	b = get_block(l, id, err);
	if (!b || check_range(l, b, off, npages, err))
		return err->code;
	l->zero_pages += npages;
	if (l->ops->on_ram_zero)
		return mig_load_cb_err(l->ops->on_ram_zero(l->ctx, b, off,
							   npages, err),
				       "on_ram_zero", err);
	if (!b->host)
		return err_set(err, -ENOTSUP,
			       "block '%s': no host mapping and no on_ram_zero",
			       b->idstr);
	memset((uint8_t *)b->host + off, 0, (size_t)(npages * ps));
	return 0;
}

int mig_load_iter_end(struct mig_loader *l, struct err *err)
{
	uint64_t iter;
	int rc = expect_len(l, 8, err);

	if (rc)
		return rc;
	iter = mig_stream_get_u64(l->in);
	rc = mig_load_finish(l, err);
	if (rc || !l->ops->on_iter_end)
		return rc;
	return mig_load_cb_err(l->ops->on_iter_end(l->ctx, iter, err),
			       "on_iter_end", err);
}

/*
 * RAM_XBZRLE: {u32 block, u64 offset, delta}. Valid only in a stream whose
 * header has MIG_FEAT_XBZRLE; the delta itself is checked by the engine's
 * decoder (mig/xbzrle.c), which rejects any malformed one untouched.
 */
int mig_load_ram_xbzrle(struct mig_loader *l, struct err *err)
{
	uint64_t len = l->rec.length, ps = l->hdr.page_size, off;
	struct mig_ram_block *b;
	uint8_t *delta;
	uint32_t id;
	int rc;

	if (!(l->hdr.features & MIG_FEAT_XBZRLE))
		return err_set(err, -EPROTO, "XBZRLE page in a stream without the XBZRLE feature");
	if (len < 12 + 4 || len > 12 + ps)
		return err_set(err, -EPROTO, "length %llu outside 16..%llu",
			       (unsigned long long)len, (unsigned long long)(12 + ps));
	id = mig_stream_get_u32(l->in);
	off = mig_stream_get_u64(l->in);
	if (mig_stream_error(l->in))
		return mig_load_stream_err(l, err);
	b = get_block(l, id, err);
	if (!b || check_range(l, b, off, 1, err))
		return err->code;
	delta = scratch_pages(l, len - 12, err);
	if (!delta)
		return err->code;
	mig_stream_get_bytes(l->in, delta, len - 12);
	rc = mig_load_finish(l, err);
	if (rc)
		return rc;
	if (!l->ops->on_ram_xbzrle)
		return err_set(err, -ENOTSUP, "no XBZRLE decoder (on_ram_xbzrle)");
	l->pages++;
	return mig_load_cb_err(l->ops->on_ram_xbzrle(l->ctx, b, off, delta, len - 12, err),
			       "on_ram_xbzrle", err);
}
