/*
 * record.c - writing the stream: the header and one writer per record type.
 *
 * Every writer checks its arguments against the same limits the loader
 * enforces, so tern never produces a stream it would itself refuse; a bad
 * argument becomes the stream's sticky error (-EINVAL / -EMSGSIZE). Byte
 * layouts are in docs/migration-stream.md.
 */
#define MIG_STREAM_INTERNAL
#include "stream_int.h"

#include <errno.h>

#include "util.h"

#define SECTION_HDR_FIXED	14u	/* u16 idlen, u32 instance, version, min */
#define BLOCK_ENTRY_FIXED	22u	/* u32 id, u32 ps, u64 size, u32, u16 */

static const char *const rec_names[MIG_REC_CORE_END] = {
	[MIG_REC_CONFIG] = "CONFIG",
	[MIG_REC_RAM_BLOCKS] = "RAM_BLOCKS",
	[MIG_REC_RAM_PAGE] = "RAM_PAGE",
	[MIG_REC_RAM_ZERO] = "RAM_ZERO",
	[MIG_REC_RAM_PAGES] = "RAM_PAGES",
	[MIG_REC_RAM_ITER_END] = "RAM_ITER_END",
	[MIG_REC_SECTION_START] = "SECTION_START",
	[MIG_REC_SECTION_PART] = "SECTION_PART",
	[MIG_REC_SECTION_END] = "SECTION_END",
	[MIG_REC_SECTION_FULL] = "SECTION_FULL",
	[MIG_REC_DESCRIPTION] = "DESCRIPTION",
	[MIG_REC_PRODUCER] = "PRODUCER",
	[MIG_REC_EOF] = "EOF",
};

const char *mig_rec_type_name(uint16_t type)
{
	if (type < MIG_REC_CORE_END && rec_names[type])
		return rec_names[type];
	if (type == MIG_REC_RAM_XBZRLE)
		return "RAM_XBZRLE";
	if (type >= MIG_REC_XBZRLE_FIRST && type <= MIG_REC_XBZRLE_LAST)
		return "XBZRLE(reserved)";
	if (type == MIG_REC_PC_DISCARD)
		return "POSTCOPY_DISCARD";
	if (type == MIG_REC_PC_LISTEN)
		return "POSTCOPY_LISTEN";
	if (type >= MIG_REC_POSTCOPY_FIRST && type <= MIG_REC_POSTCOPY_LAST)
		return "POSTCOPY(reserved)";
	if (type >= MIG_REC_RP_FIRST && type <= MIG_REC_RP_LAST)
		return "RETURN_PATH(reserved)";
	if (type >= MIG_REC_MULTIFD_CHANNELS && type <= MIG_REC_MULTIFD_PAGES) {
		static const char *const mfd[] = { "MULTIFD_CHANNELS", "MULTIFD_SYNC",
						   "MULTIFD_HELLO", "MULTIFD_PAGES" };
		return mfd[type - MIG_REC_MULTIFD_CHANNELS];
	}
	return "?";
}

bool mig_idstr_valid(const char *idstr, size_t len)
{
	if (len < 1 || len > MIG_IDSTR_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (idstr[i] < 0x20 || idstr[i] > 0x7e)
			return false;
	return idstr[len] == '\0';
}

void mig_header_init(struct mig_header *h, uint32_t page_size)
{
	*h = (struct mig_header){
		.major = MIG_STREAM_MAJOR,
		.minor = MIG_STREAM_MINOR,
		.page_size = page_size,
		.arch = MIG_ARCH_X86_64,
	};
}

void mig_stream_set_crc(struct mig_stream *s, bool on)
{
	s->rec_flags = on ? MIG_RECF_CRC : 0;
}

int mig_stream_put_header(struct mig_stream *s, const struct mig_header *h)
{
	uint8_t b[MIG_HEADER_SIZE] = { 0 };

	if (!mig_page_size_valid(h->page_size))
		return mig_stream_set_error(s, -EINVAL,
			"header: page size %u is not a power of 2 in 4-64 KiB",
			h->page_size);
	memcpy(b, MIG_STREAM_MAGIC, MIG_STREAM_MAGIC_LEN);
	mig_le16_store(b + 8, h->major);
	mig_le16_store(b + 10, h->minor);
	mig_le32_store(b + 12, h->features);
	mig_le32_store(b + 16, h->page_size);
	mig_le16_store(b + 20, h->arch);
	mig_le32_store(b + 28, mig_crc32c(0, b, 28));
	s->page_size = h->page_size;
	mig_stream_put_bytes(s, b, sizeof(b));
	return mig_stream_error(s);
}

void mig_rec_begin(struct mig_stream *s, uint16_t type, uint16_t flags,
		   uint32_t section_id, uint64_t length)
{
	uint8_t b[MIG_REC_HDR_SIZE];

	flags |= s->rec_flags;
	s->cur_flags = flags;
	if (flags & MIG_RECF_CRC)
		mig_stream_crc_begin(s);
	mig_le16_store(b, type);
	mig_le16_store(b + 2, flags);
	mig_le32_store(b + 4, section_id);
	mig_le64_store(b + 8, length);
	mig_stream_put_bytes(s, b, sizeof(b));
}

void mig_rec_end(struct mig_stream *s)
{
	if (!(s->cur_flags & MIG_RECF_CRC))
		return;
	s->cur_flags = 0;
	mig_stream_put_u32(s, mig_stream_crc_end(s));
}

int mig_rec_put_u64(struct mig_stream *s, uint16_t type, uint64_t v)
{
	mig_rec_begin(s, type, 0, 0, 8);
	mig_stream_put_u64(s, v);
	mig_rec_end(s);
	return mig_stream_error(s);
}

int mig_stream_put_record(struct mig_stream *s, const struct mig_rec_hdr *rh,
			  const void *payload)
{
	if (rh->length > SIZE_MAX)
		return mig_stream_set_error(s, -EMSGSIZE, "record too long");
	mig_rec_begin(s, rh->type, rh->flags, rh->section_id, rh->length);
	mig_stream_put_bytes(s, payload, (size_t)rh->length);
	mig_rec_end(s);
	return mig_stream_error(s);
}

/* A text record: producer, config, description. */
static int put_text(struct mig_stream *s, uint16_t type, uint16_t flags,
		    const char *text, size_t len, size_t max)
{
	if (len > max)
		return mig_stream_set_error(s, -EMSGSIZE,
			"%s: %zu bytes over the %zu-byte limit",
			mig_rec_type_name(type), len, max);
	mig_rec_begin(s, type, flags, 0, len);
	mig_stream_put_bytes(s, text, len);
	mig_rec_end(s);
	return mig_stream_error(s);
}

int mig_stream_put_producer(struct mig_stream *s, const char *producer)
{
	return put_text(s, MIG_REC_PRODUCER, MIG_RECF_OPTIONAL, producer,
			strlen(producer), MIG_PRODUCER_MAX);
}

int mig_stream_put_config(struct mig_stream *s, const char *json, size_t len)
{
	return put_text(s, MIG_REC_CONFIG, 0, json, len, MIG_CONFIG_MAX);
}

int mig_stream_put_description(struct mig_stream *s, const char *json,
			       size_t len)
{
	return put_text(s, MIG_REC_DESCRIPTION, MIG_RECF_OPTIONAL, json, len,
			MIG_DESCRIPTION_MAX);
}

int mig_stream_put_eof(struct mig_stream *s)
{
	return put_text(s, MIG_REC_EOF, 0, "", 0, 0);
}

/* ---- RAM ---- */

static int block_table_len(struct mig_stream *s,
			   const struct mig_ram_block *blocks, size_t n,
			   uint64_t *len)
{
	*len = 4;
	if (n < 1 || n > MIG_RAM_BLOCKS_MAX)
		return mig_stream_set_error(s, -EINVAL,
					    "RAM_BLOCKS: %zu blocks", n);
	for (size_t i = 0; i < n; i++) {
		size_t il = strnlen(blocks[i].idstr, sizeof(blocks[i].idstr));

		if (!blocks[i].id || !mig_idstr_valid(blocks[i].idstr, il))
			return mig_stream_set_error(s, -EINVAL,
				"RAM_BLOCKS: block %zu has a bad id or idstr", i);
		*len += BLOCK_ENTRY_FIXED + il;
	}
	return 0;
}

int mig_stream_put_ram_blocks(struct mig_stream *s,
			      const struct mig_ram_block *blocks, size_t n)
{
	uint64_t len;

	if (block_table_len(s, blocks, n, &len))
		return mig_stream_error(s);
	mig_rec_begin(s, MIG_REC_RAM_BLOCKS, 0, 0, len);
	mig_stream_put_u32(s, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		size_t il = strlen(blocks[i].idstr);

		mig_stream_put_u32(s, blocks[i].id);
		mig_stream_put_u32(s, blocks[i].page_size);
		mig_stream_put_u64(s, blocks[i].size);
		mig_stream_put_u32(s, 0);	/* flags, none in 1.0 */
		mig_stream_put_u16(s, (uint16_t)il);
		mig_stream_put_bytes(s, blocks[i].idstr, il);
	}
	mig_rec_end(s);
	return mig_stream_error(s);
}

static int need_page_size(struct mig_stream *s, uint16_t type)
{
	if (s->page_size)
		return 0;
	return mig_stream_set_error(s, -EINVAL, "%s before the stream header",
				    mig_rec_type_name(type));
}

int mig_stream_put_ram_page(struct mig_stream *s, uint32_t block,
			    uint64_t offset, const void *page)
{
	if (need_page_size(s, MIG_REC_RAM_PAGE))
		return mig_stream_error(s);
	mig_rec_begin(s, MIG_REC_RAM_PAGE, 0, 0, 12 + (uint64_t)s->page_size);
	mig_stream_put_u32(s, block);
	mig_stream_put_u64(s, offset);
	mig_stream_put_bytes(s, page, s->page_size);
	mig_rec_end(s);
	return mig_stream_error(s);
}

int mig_stream_put_ram_zero(struct mig_stream *s, uint32_t block,
			    uint64_t offset, uint64_t npages)
{
	if (!npages)
		return mig_stream_set_error(s, -EINVAL, "RAM_ZERO: 0 pages");
	mig_rec_begin(s, MIG_REC_RAM_ZERO, 0, 0, 20);
	mig_stream_put_u32(s, block);
	mig_stream_put_u64(s, offset);
	mig_stream_put_u64(s, npages);
	mig_rec_end(s);
	return mig_stream_error(s);
}

int mig_stream_put_ram_xbzrle(struct mig_stream *s, uint32_t block,
			      uint64_t offset, const void *delta, size_t len)
{
	if (need_page_size(s, MIG_REC_RAM_XBZRLE))
		return mig_stream_error(s);
	if (len < 4 || len > s->page_size)
		return mig_stream_set_error(s, -EINVAL, "RAM_XBZRLE: delta of %zu bytes", len);
	mig_rec_begin(s, MIG_REC_RAM_XBZRLE, 0, 0, 12 + len);
	mig_stream_put_u32(s, block);
	mig_stream_put_u64(s, offset);
	mig_stream_put_bytes(s, delta, len);
	mig_rec_end(s);
	return mig_stream_error(s);
}

int mig_stream_put_ram_batch(struct mig_stream *s, uint32_t block,
			     const uint64_t *offsets, const void *const *pages,
			     size_t n)
{
	uint8_t offs[MIG_RAM_BATCH_MAX * 8];
	size_t ps = s->page_size;

	if (need_page_size(s, MIG_REC_RAM_PAGES))
		return mig_stream_error(s);
	if (n < 1 || n > MIG_RAM_BATCH_MAX || n * ps > MIG_RAM_BATCH_BYTES)
		return mig_stream_set_error(s, -EINVAL,
					    "RAM_PAGES: %zu pages in a batch", n);
	for (size_t i = 0; i < n; i++)
		mig_le64_store(offs + 8 * i, offsets[i]);
	mig_rec_begin(s, MIG_REC_RAM_PAGES, 0, 0, 8 + n * (8 + ps));
	mig_stream_put_u32(s, block);
	mig_stream_put_u32(s, (uint32_t)n);
	mig_stream_put_bytes(s, offs, 8 * n);
	if (mig_stream_error(s))
		return mig_stream_error(s);
	for (size_t i = 0; s->crc_on && i < n; i++)
		s->crc = mig_crc32c(s->crc, pages[i], ps);
	mig_stream_put_gather(s, pages, n, ps);
	s->bytes += n * ps;
	mig_rec_end(s);
	return mig_stream_error(s);
}

int mig_stream_put_iter_end(struct mig_stream *s, uint64_t iteration)
{
	return mig_rec_put_u64(s, MIG_REC_RAM_ITER_END, iteration);
}

/* ---- device sections ---- */

static int put_section_first(struct mig_stream *s, uint16_t type,
			     const struct mig_section_info *sec,
			     const void *data, size_t len)
{
	size_t il = strnlen(sec->idstr, sizeof(sec->idstr));
	uint64_t total = SECTION_HDR_FIXED + il + (uint64_t)len + 4;

	if (!sec->section_id || !mig_idstr_valid(sec->idstr, il) ||
	    sec->min_version > sec->version)
		return mig_stream_set_error(s, -EINVAL,
			"%s: bad section id, idstr or version",
			mig_rec_type_name(type));
	if (total > MIG_SECTION_MAX)
		return mig_stream_set_error(s, -EMSGSIZE,
			"%s '%s': %zu bytes of state over the limit",
			mig_rec_type_name(type), sec->idstr, len);
	mig_rec_begin(s, type, 0, sec->section_id, total);
	mig_stream_put_u16(s, (uint16_t)il);
	mig_stream_put_bytes(s, sec->idstr, il);
	mig_stream_put_u32(s, sec->instance_id);
	mig_stream_put_u32(s, sec->version);
	mig_stream_put_u32(s, sec->min_version);
	mig_stream_put_bytes(s, data, len);
	mig_stream_put_u32(s, sec->section_id);
	mig_rec_end(s);
	return mig_stream_error(s);
}

int mig_stream_put_section_full(struct mig_stream *s,
				const struct mig_section_info *sec,
				const void *data, size_t len)
{
	return put_section_first(s, MIG_REC_SECTION_FULL, sec, data, len);
}

int mig_stream_put_section_start(struct mig_stream *s,
				 const struct mig_section_info *sec,
				 const void *data, size_t len)
{
	return put_section_first(s, MIG_REC_SECTION_START, sec, data, len);
}

int mig_stream_put_section_part(struct mig_stream *s, uint32_t section_id,
				const void *data, size_t len)
{
	if (!section_id || len > MIG_SECTION_MAX - 4)
		return mig_stream_set_error(s, -EINVAL,
					    "SECTION_PART: bad id or length");
	mig_rec_begin(s, MIG_REC_SECTION_PART, 0, section_id, len + 4);
	mig_stream_put_bytes(s, data, len);
	mig_stream_put_u32(s, section_id);
	mig_rec_end(s);
	return mig_stream_error(s);
}

int mig_stream_put_section_end(struct mig_stream *s, uint32_t section_id)
{
	if (!section_id)
		return mig_stream_set_error(s, -EINVAL, "SECTION_END: id 0");
	mig_rec_begin(s, MIG_REC_SECTION_END, 0, section_id, 4);
	mig_stream_put_u32(s, section_id);
	mig_rec_end(s);
	return mig_stream_error(s);
}
