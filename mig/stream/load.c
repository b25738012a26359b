/*
 * load.c - the stream loader: header checks, the per-type dispatch table,
 * and the loaders of the small records (config, producer, description, EOF).
 *
 * mig_loader_step() reads one record header, checks its flags, section id
 * and length against the table entry for its type (before reading or
 * allocating anything), then calls that type's function. Every loader
 * validates the whole record, reads it, verifies the crc, and only then
 * calls the engine. Any error is prefixed with the record type and stream
 * offset ("RAM_PAGE at stream offset 123456: ...") and sticks.
 */
#define MIG_STREAM_INTERNAL
#include "stream_int.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"
#include "util.h"

#define BLOCKS_MAX_LEN (4 + MIG_RAM_BLOCKS_MAX * (22 + MIG_IDSTR_MAX))
#define PAGES_MAX_LEN (8 + MIG_RAM_BATCH_MAX * 8ULL + MIG_RAM_BATCH_BYTES)

static const struct mig_rec_loader rec_loaders[MIG_REC_CORE_END] = {
	[MIG_REC_CONFIG] = { "CONFIG", MIG_CONFIG_MAX, false, mig_load_config },
	[MIG_REC_RAM_BLOCKS] = { "RAM_BLOCKS", BLOCKS_MAX_LEN, false,
				 mig_load_ram_blocks },
	[MIG_REC_RAM_PAGE] = { "RAM_PAGE", 12 + MIG_PAGE_SIZE_MAX, false,
			       mig_load_ram_page },
	[MIG_REC_RAM_ZERO] = { "RAM_ZERO", 20, false, mig_load_ram_zero },
	[MIG_REC_RAM_PAGES] = { "RAM_PAGES", PAGES_MAX_LEN, false,
				mig_load_ram_pages },
	[MIG_REC_RAM_ITER_END] = { "RAM_ITER_END", 8, false,
				   mig_load_iter_end },
	[MIG_REC_SECTION_START] = { "SECTION_START", MIG_SECTION_MAX, true,
				    mig_load_section_start },
	[MIG_REC_SECTION_PART] = { "SECTION_PART", MIG_SECTION_MAX, true,
				   mig_load_section_part },
	[MIG_REC_SECTION_END] = { "SECTION_END", 4, true,
				  mig_load_section_end },
	[MIG_REC_SECTION_FULL] = { "SECTION_FULL", MIG_SECTION_MAX, true,
				   mig_load_section_full },
	[MIG_REC_DESCRIPTION] = { "DESCRIPTION", MIG_DESCRIPTION_MAX, false,
				  mig_load_description },
	[MIG_REC_PRODUCER] = { "PRODUCER", MIG_PRODUCER_MAX, false,
			       mig_load_producer },
	[MIG_REC_EOF] = { "EOF", 0, false, mig_load_eof },
};

/* Outside the core range: decoded only when the header's feature says so. */
static const struct mig_rec_loader xbzrle_loader = {
	"RAM_XBZRLE", 12 + MIG_PAGE_SIZE_MAX, false, mig_load_ram_xbzrle,
};

static const struct mig_rec_loader mfd_loaders[] = {
	{ "MULTIFD_CHANNELS", MIG_MFD_CHANNELS_LEN, false, mig_load_mfd_channels },
	{ "MULTIFD_SYNC", 8, false, mig_load_mfd_sync },
};

static const struct mig_rec_loader pc_loaders[] = {
	{ "POSTCOPY_DISCARD", 16 + 8ULL * MIG_PC_DISCARD_WORDS_MAX, false, mig_load_pc_discard },
	{ "POSTCOPY_LISTEN", 0, false, mig_load_pc_listen },
};

const struct mig_rec_loader *mig_rec_loader_find(uint16_t type)
{
	if (type == MIG_REC_RAM_XBZRLE)
		return &xbzrle_loader;
	if (type >= MIG_REC_MULTIFD_CHANNELS && type <= MIG_REC_MULTIFD_SYNC)
		return &mfd_loaders[type - MIG_REC_MULTIFD_CHANNELS];
	if (type >= MIG_REC_PC_DISCARD && type <= MIG_REC_PC_LISTEN)
		return &pc_loaders[type - MIG_REC_PC_DISCARD];
	if (type >= MIG_REC_CORE_END || !rec_loaders[type].load)
		return NULL;
	return &rec_loaders[type];
}

/* ---- lifecycle ---- */

int mig_loader_init(struct mig_loader *l, struct mig_stream *in,
		    const struct mig_load_ops *ops, void *ctx)
{
	static const struct mig_load_ops no_ops;

	memset(l, 0, sizeof(*l));
	l->in = in;
	l->ops = ops ? ops : &no_ops;
	l->ctx = ctx;
	l->minor_max = MIG_STREAM_MINOR;
	l->arch = MIG_ARCH_X86_64;
	return 0;
}

void mig_loader_fini(struct mig_loader *l)
{
	free(l->blocks);
	free(l->sections);
	free(l->scratch);
	free(l->offsets);
	free(l->ptrs);
	l->blocks = NULL;
	l->sections = NULL;
	l->scratch = NULL;
	l->offsets = NULL;
	l->ptrs = NULL;
	l->nblocks = l->nsections = l->sections_cap = l->scratch_cap = 0;
}

/* ---- shared helpers ---- */

int mig_load_stream_err(struct mig_loader *l, struct err *err)
{
	return mig_stream_get_err(l->in, err);
}

int mig_load_cb_err(int rc, const char *cb, struct err *err)
{
	if (rc >= 0) {
		err_clear(err);
		return 0;
	}
	return err_set(err, rc, "%s failed: %s", cb, strerror(-rc));
}

uint8_t *mig_load_payload(struct mig_loader *l, struct err *err)
{
	uint64_t len = l->rec.length;
	struct mig_stream *in = l->in;

	if (in->kind == MIG_STREAM_MEM_READER && len > mig_stream_remaining(in)) {
		mig_stream_skip(in, len);	/* reports the truncation */
		mig_load_stream_err(l, err);
		return NULL;
	}
	if (len + 1 > l->scratch_cap) {
		uint8_t *p = realloc(l->scratch, (size_t)len + 1);

		if (!p) {
			err_set(err, -ENOMEM, "no memory for %llu bytes",
				(unsigned long long)len);
			return NULL;
		}
		l->scratch = p;
		l->scratch_cap = (size_t)len + 1;
	}
	mig_stream_get_bytes(in, l->scratch, (size_t)len);
	if (mig_load_stream_err(l, err))
		return NULL;
	l->scratch[len] = '\0';
	return l->scratch;
}

int mig_load_finish(struct mig_loader *l, struct err *err)
{
	struct mig_stream *in = l->in;
	uint64_t used = mig_stream_offset(in) - l->rec_offset - MIG_REC_HDR_SIZE;
	uint32_t calc, stored;

	if (mig_stream_error(in))
		return mig_load_stream_err(l, err);
	if (used != l->rec.length)
		return err_set(err, -EPROTO, "payload used %llu of %llu bytes",
			       (unsigned long long)used,
			       (unsigned long long)l->rec.length);
	if (!(l->rec.flags & MIG_RECF_CRC))
		return 0;
	calc = mig_stream_crc_end(in);
	stored = mig_stream_get_u32(in);
	if (mig_stream_error(in))
		return mig_load_stream_err(l, err);
	if (calc != stored)
		return err_set(err, -EBADMSG,
			       "crc32c mismatch: record says 0x%08x, data 0x%08x",
			       stored, calc);
	return 0;
}

/* ---- header ---- */

static int check_header(struct mig_loader *l, const uint8_t *b,
			struct err *err)
{
	struct mig_header *h = &l->hdr;
	uint32_t crc = mig_le32_load(b + 28);

	if (memcmp(b, MIG_STREAM_MAGIC, MIG_STREAM_MAGIC_LEN))
		return err_set(err, -EPROTO, "bad magic: not a tern migration stream");
	h->major = mig_le16_load(b + 8);
	h->minor = mig_le16_load(b + 10);
	h->features = mig_le32_load(b + 12);
	h->page_size = mig_le32_load(b + 16);
	h->arch = mig_le16_load(b + 20);
	if (h->major != MIG_STREAM_MAJOR)
		return err_set(err, -EPROTONOSUPPORT,
			       "format %u.%u, this reader loads major %u only",
			       h->major, h->minor, MIG_STREAM_MAJOR);
	if (crc != mig_crc32c(0, b, 28))
		return err_set(err, -EBADMSG, "header crc32c mismatch");
	if (h->minor > l->minor_max)
		return err_set(err, -EPROTONOSUPPORT,
			       "format %u.%u is newer than this reader (%u.%u)",
			       h->major, h->minor, MIG_STREAM_MAJOR, l->minor_max);
	if (h->features & ~l->features_ok)
		return err_set(err, -EPROTONOSUPPORT,
			       "unsupported feature bits 0x%x", h->features);
	if (!mig_page_size_valid(h->page_size))
		return err_set(err, -EPROTO, "page size %u invalid", h->page_size);
	if (h->arch != l->arch)
		return err_set(err, -EPROTONOSUPPORT, "arch %u, expected %u",
			       h->arch, l->arch);
	if (mig_le16_load(b + 22) || mig_le32_load(b + 24))
		return err_set(err, -EPROTO, "reserved header bytes not zero");
	return 0;
}

int mig_loader_header(struct mig_loader *l, struct err *err)
{
	uint8_t b[MIG_HEADER_SIZE];
	struct err e = { 0 };
	int rc;

	mig_stream_get_bytes(l->in, b, sizeof(b));
	rc = mig_load_stream_err(l, &e);
	if (!rc)
		rc = check_header(l, b, &e);
	if (!rc && l->ops->on_header)
		rc = mig_load_cb_err(l->ops->on_header(l->ctx, &l->hdr, &e),
				     "on_header", &e);
	if (rc) {
		err_prefix(&e, "stream header");
		l->failed = e;
		return err_set(err, rc, "%s", e.msg);
	}
	l->have_header = true;
	return 0;
}

/* ---- records ---- */

static int load_unknown(struct mig_loader *l, struct err *err)
{
	if (!l->rec.type)
		return err_set(err, -EPROTO, "record type 0 is invalid");
	if (!(l->rec.flags & MIG_RECF_OPTIONAL))
		return err_set(err, -EPROTO, "unknown mandatory record type 0x%04x",
			       l->rec.type);
	if (l->rec.length > MIG_SKIP_MAX)
		return err_set(err, -EMSGSIZE, "%llu bytes, over the %u-byte skip limit",
			       (unsigned long long)l->rec.length, MIG_SKIP_MAX);
	log_debug("mig", "skipping optional record type 0x%04x, %llu bytes",
		  l->rec.type, (unsigned long long)l->rec.length);
	mig_stream_skip(l->in, l->rec.length);
	return mig_load_finish(l, err);
}

static int read_rec_hdr(struct mig_loader *l, struct err *err)
{
	struct mig_stream *in = l->in;

	l->rec_offset = mig_stream_offset(in);
	mig_stream_crc_begin(in);
	l->rec.type = mig_stream_get_u16(in);
	l->rec.flags = mig_stream_get_u16(in);
	l->rec.section_id = mig_stream_get_u32(in);
	l->rec.length = mig_stream_get_u64(in);
	if (!(l->rec.flags & MIG_RECF_CRC))
		mig_stream_crc_end(in);
	return mig_load_stream_err(l, err);
}

static int load_record(struct mig_loader *l, struct err *err)
{
	const struct mig_rec_loader *rl = mig_rec_loader_find(l->rec.type);

	l->records++;
	if (l->rec.flags & ~MIG_RECF_KNOWN)
		return err_set(err, -EPROTO, "unknown flag bits 0x%04x",
			       l->rec.flags & ~MIG_RECF_KNOWN);
	if (!rl)
		return load_unknown(l, err);
	if (l->rec.length > rl->max_len)
		return err_set(err, -EMSGSIZE, "length %llu over the %llu-byte limit",
			       (unsigned long long)l->rec.length,
			       (unsigned long long)rl->max_len);
	if (!rl->sectioned && l->rec.section_id)
		return err_set(err, -EPROTO, "section id %u on a non-section record",
			       l->rec.section_id);
	if (l->pc_listen && (rl->sectioned || l->rec.type == MIG_REC_RAM_ITER_END ||
			     l->rec.type == MIG_REC_RAM_XBZRLE))
		return err_set(err, -EPROTO, "not allowed after POSTCOPY_LISTEN");
	return rl->load(l, err);
}

int mig_loader_step(struct mig_loader *l, struct err *err)
{
	struct err e = { 0 };
	int rc;

	if (l->failed.code)
		return err_set(err, l->failed.code, "%s", l->failed.msg);
	if (!l->have_header)
		return err_set(err, -EINVAL, "stream header not loaded");
	if (l->eof)
		return 1;
	rc = read_rec_hdr(l, &e);
	if (rc) {
		err_prefix(&e, "record header at stream offset %llu",
			   (unsigned long long)l->rec_offset);
	} else {
		rc = load_record(l, &e);
		if (rc < 0)
			err_prefix(&e, "%s at stream offset %llu",
				   mig_rec_type_name(l->rec.type),
				   (unsigned long long)l->rec_offset);
	}
	if (rc < 0) {
		l->in->crc_on = false;
		l->failed = e;
		return err_set(err, rc, "%s", e.msg);
	}
	return rc;
}

int mig_load(struct mig_stream *in, const struct mig_load_ops *ops, void *ctx,
	     struct err *err)
{
	struct mig_loader l;
	int rc;

	mig_loader_init(&l, in, ops, ctx);
	rc = mig_loader_header(&l, err);
	while (!rc)
		rc = mig_loader_step(&l, err);
	mig_loader_fini(&l);
	return rc < 0 ? rc : 0;
}

/* ---- text records ---- */

/* The payload as a NUL-terminated string without inner NULs. */
static char *load_text(struct mig_loader *l, struct err *err)
{
	char *p = (char *)mig_load_payload(l, err);

	if (p && memchr(p, '\0', (size_t)l->rec.length)) {
		err_set(err, -EPROTO, "NUL byte inside the text");
		return NULL;
	}
	return p;
}

int mig_load_config(struct mig_loader *l, struct err *err)
{
	char *json;
	int rc;

	if (l->have_config)
		return err_set(err, -EPROTO, "second CONFIG record");
	json = load_text(l, err);
	if (!json)
		return err->code ? err->code : -EPROTO;
	rc = mig_load_finish(l, err);
	if (rc)
		return rc;
	l->have_config = true;
	if (!l->ops->on_config)
		return 0;
	return mig_load_cb_err(l->ops->on_config(l->ctx, json,
						 (size_t)l->rec.length, err),
			       "on_config", err);
}

int mig_load_description(struct mig_loader *l, struct err *err)
{
	char *json = load_text(l, err);
	int rc;

	if (!json)
		return err->code ? err->code : -EPROTO;
	rc = mig_load_finish(l, err);
	if (rc || !l->ops->on_description)
		return rc;
	return mig_load_cb_err(l->ops->on_description(l->ctx, json,
						      (size_t)l->rec.length,
						      err),
			       "on_description", err);
}

int mig_load_producer(struct mig_loader *l, struct err *err)
{
	char *s = load_text(l, err);

	if (!s)
		return err->code ? err->code : -EPROTO;
	for (const char *p = s; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return err_set(err, -EPROTO, "producer not printable ASCII");
	memcpy(l->producer, s, (size_t)l->rec.length + 1);
	return mig_load_finish(l, err);
}

int mig_load_eof(struct mig_loader *l, struct err *err)
{
	int rc = mig_load_finish(l, err);

	if (rc)
		return rc;
	for (size_t i = 0; i < l->nsections; i++)
		if (l->sections[i].open)
			return err_set(err, -EPROTO,
				       "section '%s' (id %u) never ended",
				       l->sections[i].info.idstr,
				       l->sections[i].info.section_id);
	if (l->ops->on_eof) {
		rc = mig_load_cb_err(l->ops->on_eof(l->ctx, err), "on_eof", err);
		if (rc)
			return rc;
	}
	l->eof = true;
	return 1;
}
