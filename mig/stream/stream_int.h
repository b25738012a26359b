/*
 * stream_int.h - helpers shared by the files of mig/stream (private).
 *
 * Little-endian load/store on memory, the running-crc switch of a channel,
 * and the loader's per-record helpers. Nothing here is API.
 */
#ifndef MIG_STREAM_INTERNAL
#error "stream_int.h is private to mig/stream"
#endif
#ifndef MIG_STREAM_INT_H
#define MIG_STREAM_INT_H

#include <stdint.h>
#include <string.h>

#include "stream.h"

static inline void mig_le16_store(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void mig_le32_store(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void mig_le64_store(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t mig_le16_load(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t mig_le32_load(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t mig_le64_load(const uint8_t *p)
{
	return (uint64_t)mig_le32_load(p) | (uint64_t)mig_le32_load(p + 4) << 32;
}

/* Start accumulating crc32c over every byte put or got. */
static inline void mig_stream_crc_begin(struct mig_stream *s)
{
	s->crc_on = true;
	s->crc = 0;
}

/* Stop accumulating; returns the crc of the bytes since crc_begin. */
static inline uint32_t mig_stream_crc_end(struct mig_stream *s)
{
	s->crc_on = false;
	return s->crc;
}

/* The portable table-driven crc32c (mig_crc32c picks SSE4.2 if present). */
uint32_t mig_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/*
 * Write n pages of `size` bytes after what is buffered: memcpy for a memory
 * writer, writev() straight from the pages for an fd writer. Neither crc nor
 * the byte counter is updated: the caller accounts for them.
 */
void mig_stream_put_gather(struct mig_stream *s, const void *const *pages,
			   size_t n, size_t size);

/* Write the 16-byte record header (starting crc if flagged). */
void mig_rec_begin(struct mig_stream *s, uint16_t type, uint16_t flags,
		   uint32_t section_id, uint64_t length);
/* Append the crc if the current record has one. */
void mig_rec_end(struct mig_stream *s);
/* A whole record (no flags, no section) whose payload is one u64. */
int mig_rec_put_u64(struct mig_stream *s, uint16_t type, uint64_t v);

/* True if idstr (NUL-terminated) is 1..MIG_IDSTR_MAX printable ASCII. */
bool mig_idstr_valid(const char *idstr, size_t len);

/* Page-size rule shared by the writer and the loader. */
static inline bool mig_page_size_valid(uint64_t ps)
{
	return ps >= MIG_PAGE_SIZE_MIN && ps <= MIG_PAGE_SIZE_MAX &&
	       (ps & (ps - 1)) == 0;
}

/* ---- loader internals (load*.c) ---- */

struct mig_load_section {
	struct mig_section_info info;
	bool open;		/* SECTION_START seen, END not yet */
};

/* Per-record-type entry of the dispatch table. */
struct mig_rec_loader {
	const char *name;
	uint64_t max_len;	/* checked before anything is read */
	bool sectioned;		/* section_id may be non-zero */
	int (*load)(struct mig_loader *l, struct err *err);
};

/* Table lookup; NULL for types without a loader. */
const struct mig_rec_loader *mig_rec_loader_find(uint16_t type);

/* Read exactly the record payload into l->scratch (capped by the caller). */
uint8_t *mig_load_payload(struct mig_loader *l, struct err *err);
/* Check the payload was consumed exactly, then verify the crc if any. */
int mig_load_finish(struct mig_loader *l, struct err *err);
/* Turn the stream's sticky error into err. */
int mig_load_stream_err(struct mig_loader *l, struct err *err);
/* Report a failed callback; keeps its message if it set one. */
int mig_load_cb_err(int rc, const char *cb, struct err *err);

int mig_load_config(struct mig_loader *l, struct err *err);
int mig_load_ram_blocks(struct mig_loader *l, struct err *err);
int mig_load_ram_page(struct mig_loader *l, struct err *err);
int mig_load_ram_pages(struct mig_loader *l, struct err *err);
int mig_load_ram_zero(struct mig_loader *l, struct err *err);
int mig_load_ram_xbzrle(struct mig_loader *l, struct err *err);
int mig_load_iter_end(struct mig_loader *l, struct err *err);
int mig_load_section_full(struct mig_loader *l, struct err *err);
int mig_load_section_start(struct mig_loader *l, struct err *err);
int mig_load_section_part(struct mig_loader *l, struct err *err);
int mig_load_section_end(struct mig_loader *l, struct err *err);
int mig_load_description(struct mig_loader *l, struct err *err);
int mig_load_producer(struct mig_loader *l, struct err *err);
int mig_load_eof(struct mig_loader *l, struct err *err);
int mig_load_mfd_channels(struct mig_loader *l, struct err *err);
int mig_load_mfd_sync(struct mig_loader *l, struct err *err);
int mig_load_pc_discard(struct mig_loader *l, struct err *err);
int mig_load_pc_listen(struct mig_loader *l, struct err *err);

#endif
