/*
 * multifd.c - records of the parallel channels: MULTIFD_CHANNELS and
 * MULTIFD_SYNC on the main stream (their loaders), and the channel side:
 * MULTIFD_HELLO, MULTIFD_PAGES and MULTIFD_SYNC writers and validating
 * readers.
 *
 * A channel is hostile input like the main stream: every record header,
 * block id, offset, method and length is checked before page data is read,
 * and the data length must match the page count exactly for raw pages and
 * stay under MIG_MFD_DATA_MAX for compressed ones (the engine then checks
 * that the batch decompresses to exactly n pages).
 */
#define MIG_STREAM_INTERNAL
#include "stream_int.h"

#include <errno.h>

const char *mig_mfd_method_name(uint32_t method)
{
	static const char *const names[] = {
		[MIG_MFD_NONE] = "none", [MIG_MFD_ZSTD] = "zstd", [MIG_MFD_LZ4] = "lz4",
	};
	return method < MIG_MFD_METHOD_END_ ? names[method] : "?";
}

/* ---- writers ---- */

int mig_stream_put_mfd_channels(struct mig_stream *s,
				const struct mig_mfd_channels *c)
{
	if (c->n < 1 || c->n > MIG_MFD_CHANNELS_MAX || c->method >= MIG_MFD_METHOD_END_)
		return mig_stream_set_error(s, -EINVAL, "MULTIFD_CHANNELS: %u channels, method %u",
					    c->n, c->method);
	mig_rec_begin(s, MIG_REC_MULTIFD_CHANNELS, 0, 0, MIG_MFD_CHANNELS_LEN);
	mig_stream_put_u32(s, c->n);
	mig_stream_put_u32(s, c->method);
	mig_stream_put_u32(s, (uint32_t)c->level);
	mig_stream_put_u32(s, 0);
	mig_stream_put_bytes(s, c->id, MIG_MFD_ID_LEN);
	mig_rec_end(s);
	return mig_stream_error(s);
}

int mig_stream_put_mfd_sync(struct mig_stream *s, uint64_t seq)
{
	return mig_rec_put_u64(s, MIG_REC_MULTIFD_SYNC, seq);
}

int mig_stream_put_mfd_hello(struct mig_stream *s, const struct mig_mfd_hello *h)
{
	mig_rec_begin(s, MIG_REC_MULTIFD_HELLO, 0, 0, MIG_MFD_HELLO_LEN);
	mig_stream_put_bytes(s, h->id, MIG_MFD_ID_LEN);
	mig_stream_put_u32(s, h->index);
	mig_stream_put_u32(s, h->n);
	mig_rec_end(s);
	return mig_stream_error(s);
}

int mig_stream_put_mfd_pages(struct mig_stream *s, uint32_t page_size,
			     uint32_t block, const uint64_t *offsets,
			     const void *const *pages, size_t n, uint32_t method,
			     const void *data, size_t data_len)
{
	uint8_t offs[MIG_RAM_BATCH_MAX * 8];

	if (n < 1 || n > MIG_RAM_BATCH_MAX || n * page_size > MIG_RAM_BATCH_BYTES ||
	    method >= MIG_MFD_METHOD_END_)
		return mig_stream_set_error(s, -EINVAL, "MULTIFD_PAGES: %zu pages, method %u",
					    n, method);
	if (method == MIG_MFD_NONE)
		data_len = n * page_size;
	else if (!data_len || data_len > MIG_MFD_DATA_MAX)
		return mig_stream_set_error(s, -EINVAL, "MULTIFD_PAGES: %zu data bytes",
					    data_len);
	for (size_t i = 0; i < n; i++)
		mig_le64_store(offs + 8 * i, offsets[i]);
	mig_rec_begin(s, MIG_REC_MULTIFD_PAGES, 0, 0,
		      MIG_MFD_PAGES_HDR + 8 * n + data_len);
	mig_stream_put_u32(s, block);
	mig_stream_put_u32(s, (uint32_t)n);
	mig_stream_put_u32(s, method);
	mig_stream_put_u32(s, (uint32_t)data_len);
	mig_stream_put_bytes(s, offs, 8 * n);
	if (method != MIG_MFD_NONE) {
		mig_stream_put_bytes(s, data, data_len);
	} else if (!mig_stream_error(s)) {
		mig_stream_put_gather(s, pages, n, page_size);
		s->bytes += n * page_size;
	}
	mig_rec_end(s);
	return mig_stream_error(s);
}

/* ---- channel readers ---- */

static uint64_t chan_rec_len(uint16_t type)
{
	switch (type) {
	case MIG_REC_MULTIFD_HELLO: return MIG_MFD_HELLO_LEN;
	case MIG_REC_MULTIFD_SYNC: return 8;
	case MIG_REC_MULTIFD_PAGES:
		return MIG_MFD_PAGES_HDR + MIG_RAM_BATCH_MAX * 8ULL + MIG_MFD_DATA_MAX;
	default: return 0;
	}
}

int mig_mfd_get_rec(struct mig_stream *in, struct mig_rec_hdr *rh,
		    struct err *err)
{
	uint64_t max;

	rh->type = mig_stream_get_u16(in);
	rh->flags = mig_stream_get_u16(in);
	rh->section_id = mig_stream_get_u32(in);
	rh->length = mig_stream_get_u64(in);
	if (mig_stream_error(in))
		return mig_stream_get_err(in, err);
	max = chan_rec_len(rh->type);
	if (!max)
		return err_set(err, -EPROTO, "record type 0x%04x (%s) on a channel",
			       rh->type, mig_rec_type_name(rh->type));
	if (rh->flags || rh->section_id)
		return err_set(err, -EPROTO, "%s: flags 0x%x, section %u on a channel",
			       mig_rec_type_name(rh->type), rh->flags, rh->section_id);
	if (rh->type == MIG_REC_MULTIFD_PAGES ? rh->length > max || rh->length < MIG_MFD_PAGES_HDR
					       : rh->length != max)
		return err_set(err, -EPROTO, "%s: length %llu invalid",
			       mig_rec_type_name(rh->type), (unsigned long long)rh->length);
	return 0;
}

int mig_mfd_get_hello(struct mig_stream *in, struct mig_mfd_hello *h,
		      struct err *err)
{
	mig_stream_get_bytes(in, h->id, MIG_MFD_ID_LEN);
	h->index = mig_stream_get_u32(in);
	h->n = mig_stream_get_u32(in);
	if (mig_stream_error(in))
		return mig_stream_get_err(in, err);
	if (h->n < 1 || h->n > MIG_MFD_CHANNELS_MAX || h->index >= h->n)
		return err_set(err, -EPROTO, "MULTIFD_HELLO: channel %u of %u", h->index, h->n);
	return 0;
}

int mig_mfd_get_sync(struct mig_stream *in, uint64_t *seq, struct err *err)
{
	*seq = mig_stream_get_u64(in);
	return mig_stream_error(in) ? mig_stream_get_err(in, err) : 0;
}

static const struct mig_ram_block *find_block(const struct mig_ram_block *blocks,
					      size_t nblocks, uint32_t id)
{
	for (size_t i = 0; i < nblocks; i++)
		if (blocks[i].id == id)
			return &blocks[i];
	return NULL;
}

static int check_data_len(const struct mig_mfd_pages *p, uint64_t rec_len,
			  uint32_t page_size, uint32_t method_ok, struct err *err)
{
	uint64_t want = MIG_MFD_PAGES_HDR + 8ULL * p->n + p->data_len;

	if (p->n < 1 || p->n > MIG_RAM_BATCH_MAX ||
	    (uint64_t)p->n * page_size > MIG_RAM_BATCH_BYTES)
		return err_set(err, -EPROTO, "MULTIFD_PAGES: %u pages in one batch", p->n);
	if (p->method != MIG_MFD_NONE && p->method != method_ok)
		return err_set(err, -EPROTO, "MULTIFD_PAGES: method %u (%s), announced %s",
			       p->method, mig_mfd_method_name(p->method),
			       mig_mfd_method_name(method_ok));
	if (p->method == MIG_MFD_NONE && p->data_len != (uint64_t)p->n * page_size)
		return err_set(err, -EPROTO, "MULTIFD_PAGES: %u raw bytes for %u pages",
			       p->data_len, p->n);
	if (!p->data_len || p->data_len > MIG_MFD_DATA_MAX)
		return err_set(err, -EPROTO, "MULTIFD_PAGES: %u data bytes", p->data_len);
	if (want != rec_len)
		return err_set(err, -EPROTO, "MULTIFD_PAGES: length %llu, expected %llu",
			       (unsigned long long)rec_len, (unsigned long long)want);
	return 0;
}

static int check_offsets(struct mig_mfd_pages *p, const uint8_t *raw,
			 const struct mig_ram_block *b, uint32_t page_size,
			 struct err *err)
{
	for (uint32_t i = 0; i < p->n; i++) {
		uint64_t off = mig_le64_load(raw + 8 * (size_t)i);

		if (off % page_size || off >= b->size || b->size - off < page_size)
			return err_set(err, -EPROTO,
				       "MULTIFD_PAGES: page %u offset 0x%llx outside block '%s'",
				       i, (unsigned long long)off, b->idstr);
		p->offsets[i] = off;
	}
	return 0;
}

int mig_mfd_get_pages(struct mig_stream *in, uint64_t rec_len,
		      const struct mig_ram_block *blocks, size_t nblocks,
		      uint32_t page_size, uint32_t method_ok,
		      struct mig_mfd_pages *p, const struct mig_ram_block **blk,
		      struct err *err)
{
	uint8_t raw[MIG_RAM_BATCH_MAX * 8];
	int rc;

	p->block = mig_stream_get_u32(in);
	p->n = mig_stream_get_u32(in);
	p->method = mig_stream_get_u32(in);
	p->data_len = mig_stream_get_u32(in);
	if (mig_stream_error(in))
		return mig_stream_get_err(in, err);
	rc = check_data_len(p, rec_len, page_size, method_ok, err);
	if (rc)
		return rc;
	*blk = find_block(blocks, nblocks, p->block);
	if (!*blk)
		return err_set(err, -EPROTO, "MULTIFD_PAGES: block id %u not in the table",
			       p->block);
	mig_stream_get_bytes(in, raw, 8 * (size_t)p->n);
	if (mig_stream_error(in))
		return mig_stream_get_err(in, err);
	return check_offsets(p, raw, *blk, page_size, err);
}

/* ---- main-stream loaders ---- */

static int need_feature(struct mig_loader *l, struct err *err)
{
	if (l->hdr.features & MIG_FEAT_MULTIFD)
		return 0;
	return err_set(err, -EPROTO, "multifd record in a stream without the MULTIFD feature");
}

int mig_load_mfd_channels(struct mig_loader *l, struct err *err)
{
	struct mig_mfd_channels c;
	int rc = need_feature(l, err);

	if (rc)
		return rc;
	if (!l->have_blocks)
		return err_set(err, -EPROTO, "MULTIFD_CHANNELS before RAM_BLOCKS");
	if (l->rec.length != MIG_MFD_CHANNELS_LEN)
		return err_set(err, -EPROTO, "length %llu", (unsigned long long)l->rec.length);
	c.n = mig_stream_get_u32(l->in);
	c.method = mig_stream_get_u32(l->in);
	c.level = (int32_t)mig_stream_get_u32(l->in);
	if (mig_stream_get_u32(l->in))
		mig_stream_set_error(l->in, -EPROTO, "reserved field not zero");
	mig_stream_get_bytes(l->in, c.id, MIG_MFD_ID_LEN);
	rc = mig_load_finish(l, err);
	if (rc)
		return rc;
	if (c.n < 1 || c.n > MIG_MFD_CHANNELS_MAX || c.method >= MIG_MFD_METHOD_END_)
		return err_set(err, -EPROTO, "%u channels (1-%u), method %u", c.n,
			       MIG_MFD_CHANNELS_MAX, c.method);
	if (!l->ops->on_multifd_channels)
		return err_set(err, -ENOTSUP, "this reader takes no parallel channels");
	return mig_load_cb_err(l->ops->on_multifd_channels(l->ctx, &c, err),
			       "on_multifd_channels", err);
}

int mig_load_mfd_sync(struct mig_loader *l, struct err *err)
{
	uint64_t seq;
	int rc = need_feature(l, err);

	if (rc)
		return rc;
	if (l->rec.length != 8)
		return err_set(err, -EPROTO, "length %llu", (unsigned long long)l->rec.length);
	seq = mig_stream_get_u64(l->in);
	rc = mig_load_finish(l, err);
	if (rc)
		return rc;
	if (!l->ops->on_multifd_sync)
		return err_set(err, -ENOTSUP, "MULTIFD_SYNC without channels");
	return mig_load_cb_err(l->ops->on_multifd_sync(l->ctx, seq, err),
			       "on_multifd_sync", err);
}
