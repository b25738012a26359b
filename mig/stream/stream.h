/*
 * stream.h - the tern migration stream codec (public to mig/, tools/, tests/).
 *
 * Pure code: libc and base/ only, no KVM. Four layers, each usable alone:
 *   1. struct mig_stream: a byte channel over a memory buffer or an fd
 *      (buffered both ways) with little-endian put/get, a byte counter and a
 *      sticky first error: after a failure every later call is a no-op and
 *      getters return 0, so encoders and decoders stay straight-line and
 *      check mig_stream_error() once per record.
 *   2. Framing: the 32-byte stream header and typed, length-framed records
 *      {u16 type, u16 flags, u32 section_id, u64 length} + payload
 *      (+ crc32c when MIG_RECF_CRC is set).
 *   3. Field tables: device state declared as versioned tables of
 *      struct mig_field, encoded as TLVs, decoded into a scratch copy that is
 *      committed only on success, and described as JSON.
 *   4. The loader: reads a whole stream, validates every record (lengths
 *      capped before allocation, RAM addresses checked against the block
 *      table) and hands it to the engine through struct mig_load_ops.
 *
 * docs/migration-stream.md is the normative byte-level specification.
 *
 * Error codes used throughout (negative errno):
 *   -ENODATA         stream ended inside a header or record (truncated)
 *   -EPROTO          malformed content (bad magic, bad field, bad address)
 *   -EMSGSIZE        a length is over its limit
 *   -EBADMSG         crc32c mismatch
 *   -EPROTONOSUPPORT version/arch/feature outside what this reader accepts
 *   -ENOMEM, or the errno of a failed read(2)/write(2)
 */
#ifndef MIG_STREAM_H
#define MIG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* ---- Constants of format 1.0 ------------------------------------------ */

#define MIG_STREAM_MAGIC	"TERNMIG\n"	/* 8 bytes, no NUL on the wire */
#define MIG_STREAM_MAGIC_LEN	8
#define MIG_STREAM_MAJOR	1
#define MIG_STREAM_MINOR	0
#define MIG_HEADER_SIZE		32
#define MIG_REC_HDR_SIZE	16
#define MIG_CRC_SIZE		4

/* Limits; every length is checked against these before anything is read. */
#define MIG_IDSTR_MAX		255u		/* device / RAM block names */
#define MIG_PAGE_SIZE_MIN	4096u
#define MIG_PAGE_SIZE_MAX	65536u
#define MIG_BLOCK_PAGE_MAX	(1u << 30)	/* block backing page size */
#define MIG_BLOCK_SIZE_MAX	(1ULL << 46)	/* 64 TiB per RAM block */
#define MIG_RAM_BLOCKS_MAX	256u
#define MIG_RAM_BATCH_MAX	1024u		/* pages per RAM_PAGES */
#define MIG_RAM_BATCH_BYTES	(4u << 20)	/* page bytes per RAM_PAGES */
#define MIG_CONFIG_MAX		(1u << 20)
#define MIG_SECTION_MAX		(16u << 20)
#define MIG_DESCRIPTION_MAX	(16u << 20)
#define MIG_PRODUCER_MAX	256u
#define MIG_SKIP_MAX		(64u << 20)	/* unknown optional record */
#define MIG_SECTIONS_MAX	4096u
#define MIG_PC_DISCARD_WORDS_MAX 4096u	/* bitmap words per POSTCOPY_DISCARD */

enum mig_arch {
	MIG_ARCH_INVALID = 0,
	MIG_ARCH_X86_64 = 1,
};

/* Header feature bits: capabilities in use. Unknown bits are rejected. */
enum mig_feature {
	MIG_FEAT_XBZRLE = 1u << 0,	/* reserved: RAM_XBZRLE records */
	MIG_FEAT_POSTCOPY = 1u << 1,	/* reserved: post-copy records */
	MIG_FEAT_RETURN_PATH = 1u << 2,	/* reserved: return path open */
	MIG_FEAT_MULTIFD = 1u << 3,	/* pages also on extra channels */
};

enum mig_rec_type {
	MIG_REC_INVALID = 0,
	MIG_REC_CONFIG = 1,		/* VM configuration, JSON text */
	MIG_REC_RAM_BLOCKS = 2,		/* RAM block table */
	MIG_REC_RAM_PAGE = 3,		/* one page */
	MIG_REC_RAM_ZERO = 4,		/* a run of zero pages */
	MIG_REC_RAM_PAGES = 5,		/* a batch of pages of one block */
	MIG_REC_RAM_ITER_END = 6,	/* end of one dirty-log pass (sync) */
	MIG_REC_SECTION_START = 7,	/* iterative device state: first part */
	MIG_REC_SECTION_PART = 8,	/* ... more */
	MIG_REC_SECTION_END = 9,	/* ... footer */
	MIG_REC_SECTION_FULL = 10,	/* whole device state in one record */
	MIG_REC_DESCRIPTION = 11,	/* JSON description of the sections */
	MIG_REC_PRODUCER = 12,		/* producer string */
	MIG_REC_EOF = 13,
	MIG_REC_CORE_END,		/* first unassigned core type */

	/* Reserved ranges, not decoded by format 1.0 readers. */
	MIG_REC_XBZRLE_FIRST = 0x0100,	/* RAM_XBZRLE and friends */
	MIG_REC_RAM_XBZRLE = 0x0100,	/* a page as a delta (needs MIG_FEAT_XBZRLE) */
	MIG_REC_XBZRLE_LAST = 0x01ff,
	MIG_REC_POSTCOPY_FIRST = 0x0200,/* post-copy (needs MIG_FEAT_POSTCOPY) */
	MIG_REC_PC_DISCARD = 0x0200,	/* bitmap slice: pages to fetch on demand */
	MIG_REC_PC_LISTEN = 0x0201,	/* state sent: take over with userfaultfd */
	MIG_REC_POSTCOPY_LAST = 0x02ff,
	MIG_REC_RP_FIRST = 0x0300,	/* return-path messages (own stream) */
	MIG_REC_RP_LAST = 0x03ff,
	/* Parallel channels (needs MIG_FEAT_MULTIFD); see stream/multifd.c. */
	MIG_REC_MULTIFD_FIRST = 0x0400,
	MIG_REC_MULTIFD_CHANNELS = 0x0400,	/* main: channels announced */
	MIG_REC_MULTIFD_SYNC = 0x0401,		/* main + channels: end of a pass */
	MIG_REC_MULTIFD_HELLO = 0x0402,		/* channel: first record */
	MIG_REC_MULTIFD_PAGES = 0x0403,		/* channel: a (compressed) batch */
	MIG_REC_MULTIFD_LAST = 0x04ff,
};

/* Record flags. Bits not listed must be zero. */
#define MIG_RECF_OPTIONAL	0x0001u	/* a reader that does not know it skips */
#define MIG_RECF_CRC		0x0002u	/* u32 crc32c follows the payload */
#define MIG_RECF_KNOWN		(MIG_RECF_OPTIONAL | MIG_RECF_CRC)

/* Name of a record type ("RAM_PAGE"); "?" for unknown types. */
const char *mig_rec_type_name(uint16_t type);

/* crc32c (Castagnoli), chained like zlib's crc32: start with crc = 0. */
uint32_t mig_crc32c(uint32_t crc, const void *buf, size_t len);

/* ---- The byte channel ------------------------------------------------- */

enum mig_stream_kind {
	MIG_STREAM_INVALID = 0,
	MIG_STREAM_MEM_WRITER,
	MIG_STREAM_FD_WRITER,
	MIG_STREAM_MEM_READER,
	MIG_STREAM_FD_READER,
};

/*
 * Embed it and use the _init/_fini pairs below. Fields are public for
 * inspection only; use the functions to change them.
 */
struct mig_stream {
	enum mig_stream_kind kind;
	int fd;
	uint8_t *buf;
	size_t cap;		/* allocated (or given) size of buf */
	size_t len;		/* writer: bytes held; reader: valid bytes */
	size_t pos;		/* reader: next unread byte in buf */
	size_t max;		/* mem writer: growth limit */
	uint64_t bytes;		/* bytes put/consumed: the stream offset */
	uint32_t crc;		/* running crc32c while crc_on */
	bool crc_on;
	uint16_t rec_flags;	/* writer: flags added to every record */
	uint16_t cur_flags;	/* writer: flags of the record being written */
	uint32_t page_size;	/* writer: from mig_stream_put_header() */
	int timeout_ms;		/* fd I/O: give up after this long without
				 * progress (-ETIMEDOUT); 0 = wait forever */
	struct err err;		/* sticky first error */
};

/* Default fd buffer size (both directions). */
#define MIG_STREAM_BUFSIZE	(1u << 20)

/* Growable memory writer; `max` bytes at most (0: no limit but SIZE_MAX/2). */
void mig_stream_init_mem_writer(struct mig_stream *s, size_t max);
/* Buffered writer to a blocking or non-blocking fd (not closed by fini). */
int mig_stream_init_fd_writer(struct mig_stream *s, int fd, size_t bufsize);
/* Reader over caller-owned memory (not copied: keep it alive). */
void mig_stream_init_mem_reader(struct mig_stream *s, const void *data,
				size_t len);
/* Buffered reader from an fd (not closed by fini). */
int mig_stream_init_fd_reader(struct mig_stream *s, int fd, size_t bufsize);
/*
 * fd streams: fail with -ETIMEDOUT when the peer neither sends nor takes
 * data for timeout_ms (0: wait forever). Non-blocking fds are polled with
 * the limit; for blocking sockets also set SO_RCVTIMEO/SO_SNDTIMEO.
 */
void mig_stream_set_timeout(struct mig_stream *s, int timeout_ms);
/* Frees buffers; does not flush and does not close the fd. */
void mig_stream_fini(struct mig_stream *s);

/* The sticky error: 0 or the first negative errno. */
int mig_stream_error(const struct mig_stream *s);
const char *mig_stream_errmsg(const struct mig_stream *s);
/* Record an error (first one sticks). Returns the sticky code. */
int mig_stream_set_error(struct mig_stream *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Copy the sticky error into err (may be NULL). Returns it. */
int mig_stream_get_err(const struct mig_stream *s, struct err *err);

/* Bytes put (writers) or consumed (readers) since init. */
uint64_t mig_stream_offset(const struct mig_stream *s);
/* Memory writer: the bytes written so far. */
const uint8_t *mig_stream_data(const struct mig_stream *s, size_t *len);
/* Memory reader: bytes left. fd reader: bytes left in its buffer. */
size_t mig_stream_remaining(const struct mig_stream *s);

/* Writers. */
void mig_stream_put_u8(struct mig_stream *s, uint8_t v);
void mig_stream_put_u16(struct mig_stream *s, uint16_t v);
void mig_stream_put_u32(struct mig_stream *s, uint32_t v);
void mig_stream_put_u64(struct mig_stream *s, uint64_t v);
void mig_stream_put_bytes(struct mig_stream *s, const void *p, size_t n);
/* fd writer: write out everything buffered. Returns the sticky error. */
int mig_stream_flush(struct mig_stream *s);

/* Readers. On error they return 0 / zero-fill and keep the first error. */
uint8_t mig_stream_get_u8(struct mig_stream *s);
uint16_t mig_stream_get_u16(struct mig_stream *s);
uint32_t mig_stream_get_u32(struct mig_stream *s);
uint64_t mig_stream_get_u64(struct mig_stream *s);
void mig_stream_get_bytes(struct mig_stream *s, void *dst, size_t n);
void mig_stream_skip(struct mig_stream *s, uint64_t n);
/*
 * Between one unit and `max` bytes (a whole number of units, unit <= the
 * reader's buffer size) straight from the reader's buffer, without a copy:
 * valid until the next call on s. NULL on error (truncation included).
 */
const uint8_t *mig_stream_get_view(struct mig_stream *s, size_t unit, size_t max,
				   size_t *len);
/* n pages of `size` bytes each into dst[i]; fd readers readv() directly. */
void mig_stream_get_pages(struct mig_stream *s, void *const *dst, size_t n,
			  size_t size);
/*
 * n bytes into a new malloc()ed buffer with a NUL after them, after checking
 * n <= max (else -EMSGSIZE naming `what`). NULL on any error.
 */
char *mig_stream_get_alloc(struct mig_stream *s, uint64_t n, uint64_t max,
			   const char *what);

/* ---- Framing: header and records --------------------------------------- */

struct mig_header {
	uint16_t major;
	uint16_t minor;
	uint32_t features;	/* enum mig_feature bits */
	uint32_t page_size;	/* RAM record page size: power of 2, 4-64 KiB */
	uint16_t arch;		/* enum mig_arch */
};

struct mig_rec_hdr {
	uint16_t type;
	uint16_t flags;
	uint32_t section_id;	/* 0 unless a SECTION_* record */
	uint64_t length;	/* payload bytes, crc not included */
};

/* A RAM block as listed in RAM_BLOCKS. */
struct mig_ram_block {
	uint32_t id;		/* non-zero, unique in the table */
	uint32_t page_size;	/* backing page size, >= stream page size */
	uint64_t size;		/* bytes, a multiple of page_size */
	char idstr[MIG_IDSTR_MAX + 1];	/* stable name, e.g. "ram0" */
	void *host;		/* loader: set by on_ram_blocks for direct
				 * placement of pages; ignored by writers */
};

/* Identity of a device-state section. */
struct mig_section_info {
	uint32_t section_id;	/* non-zero, unique per stream */
	uint32_t instance_id;
	uint32_t version;	/* version the data was written as */
	uint32_t min_version;	/* oldest reader version that can load it */
	char idstr[MIG_IDSTR_MAX + 1];	/* e.g. "uart16550@0x3f8" */
};

/* Fill h with format 1.0 defaults for x86-64 and the given page size. */
void mig_header_init(struct mig_header *h, uint32_t page_size);

/* Add MIG_RECF_CRC to every record written from now on (or stop). */
void mig_stream_set_crc(struct mig_stream *s, bool on);

/*
 * Record writers. Each writes one whole record and returns the sticky error
 * (so callers may check once at the end). Arguments over the format limits
 * set -EMSGSIZE / -EINVAL on the stream rather than writing a record the
 * reader would refuse.
 */
int mig_stream_put_header(struct mig_stream *s, const struct mig_header *h);
int mig_stream_put_record(struct mig_stream *s, const struct mig_rec_hdr *rh,
			  const void *payload);
int mig_stream_put_producer(struct mig_stream *s, const char *producer);
int mig_stream_put_config(struct mig_stream *s, const char *json, size_t len);
int mig_stream_put_ram_blocks(struct mig_stream *s,
			      const struct mig_ram_block *blocks, size_t n);
int mig_stream_put_ram_page(struct mig_stream *s, uint32_t block,
			    uint64_t offset, const void *page);
int mig_stream_put_ram_zero(struct mig_stream *s, uint32_t block,
			    uint64_t offset, uint64_t npages);
/*
 * One RAM_PAGES record: n (1..MIG_RAM_BATCH_MAX) pages of one block. An fd
 * writer sends the page bytes with writev() straight from pages[i] (no copy);
 * the pages must not change until the call returns.
 */
int mig_stream_put_ram_batch(struct mig_stream *s, uint32_t block,
			     const uint64_t *offsets, const void *const *pages,
			     size_t n);
/* RAM_XBZRLE: a delta (mig/xbzrle.h) to the page's last sent bytes. */
int mig_stream_put_ram_xbzrle(struct mig_stream *s, uint32_t block,
			      uint64_t offset, const void *delta, size_t len);
int mig_stream_put_iter_end(struct mig_stream *s, uint64_t iteration);
int mig_stream_put_section_full(struct mig_stream *s,
				const struct mig_section_info *sec,
				const void *data, size_t len);
int mig_stream_put_section_start(struct mig_stream *s,
				 const struct mig_section_info *sec,
				 const void *data, size_t len);
int mig_stream_put_section_part(struct mig_stream *s, uint32_t section_id,
				const void *data, size_t len);
int mig_stream_put_section_end(struct mig_stream *s, uint32_t section_id);
int mig_stream_put_description(struct mig_stream *s, const char *json,
			       size_t len);
int mig_stream_put_eof(struct mig_stream *s);
/* POSTCOPY_DISCARD: offset a multiple of 64 pages, 1..4096 words. */
int mig_stream_put_pc_discard(struct mig_stream *s, uint32_t block,
			      uint64_t offset, const uint64_t *words,
			      uint32_t nwords);
int mig_stream_put_pc_listen(struct mig_stream *s);
/* The rules a POSTCOPY_DISCARD slice must follow (shared with the engine). */
int mig_pc_discard_check(uint64_t block_size, uint32_t page_size, uint64_t offset,
			 const uint64_t *words, uint32_t nwords, struct err *err);

/* ---- Field tables (device state) -------------------------------------- */

enum mig_field_type {
	MIG_FT_INVALID = 0,
	MIG_FT_U8 = 1,
	MIG_FT_U16 = 2,
	MIG_FT_U32 = 3,
	MIG_FT_U64 = 4,
	MIG_FT_BYTES = 5,	/* opaque byte array */
	MIG_FT_ARRAY_U16 = 6,
	MIG_FT_ARRAY_U32 = 7,
	MIG_FT_ARRAY_U64 = 8,
	MIG_FT_BOOL = 9,	/* one byte, 0 or 1 on the wire */
	MIG_FT_END_,
};

/* Field flags. */
#define MIG_FIELD_OPTIONAL	0x01u	/* readers without it may skip it */
#define MIG_FIELD_REQUIRED	0x02u	/* must be present if since <= version */
#define MIG_FIELD_WIRE_OPTIONAL	0x80u	/* optional bit in the TLV type byte */

struct mig_field {
	const char *name;	/* NULL ends the table (MIG_END) */
	size_t offset;		/* in the wire-state struct */
	size_t size;		/* bytes in the struct and on the wire */
	uint16_t id;		/* stable wire id, non-zero, unique */
	uint16_t since;		/* section version that added it (0: always) */
	uint8_t type;		/* enum mig_field_type */
	uint8_t flags;		/* MIG_FIELD_* */
};

/* Compile-time check usable inside an initializer: evaluates to 0. */
#define MIG_BUILD_CHECK(cond) (0 * sizeof(char[(cond) ? 1 : -1]))
#define MIG_FSIZE_(T, f) sizeof(((T *)0)->f)
#define MIG_ESIZE_(T, f) sizeof(((T *)0)->f[0])

#define MIG_FIELD_(T, f, fid, ftype, check, ...)			\
	{ .name = #f, .offset = offsetof(T, f),				\
	  .size = MIG_FSIZE_(T, f) + (check), .id = (fid),		\
	  .type = (ftype), __VA_ARGS__ }

/*
 * MIG_U32(struct uart_state, divisor, 3, .since = 2, .flags = ...): the
 * field's name, struct, stable id, then optional designated initializers.
 */
#define MIG_U8(T, f, id, ...)						\
	MIG_FIELD_(T, f, id, MIG_FT_U8,					\
		   MIG_BUILD_CHECK(MIG_FSIZE_(T, f) == 1), __VA_ARGS__)
#define MIG_U16(T, f, id, ...)						\
	MIG_FIELD_(T, f, id, MIG_FT_U16,				\
		   MIG_BUILD_CHECK(MIG_FSIZE_(T, f) == 2), __VA_ARGS__)
#define MIG_U32(T, f, id, ...)						\
	MIG_FIELD_(T, f, id, MIG_FT_U32,				\
		   MIG_BUILD_CHECK(MIG_FSIZE_(T, f) == 4), __VA_ARGS__)
#define MIG_U64(T, f, id, ...)						\
	MIG_FIELD_(T, f, id, MIG_FT_U64,				\
		   MIG_BUILD_CHECK(MIG_FSIZE_(T, f) == 8), __VA_ARGS__)
#define MIG_BOOL(T, f, id, ...)						\
	MIG_FIELD_(T, f, id, MIG_FT_BOOL,				\
		   MIG_BUILD_CHECK(MIG_FSIZE_(T, f) == 1), __VA_ARGS__)
#define MIG_BYTES(T, f, id, ...)					\
	MIG_FIELD_(T, f, id, MIG_FT_BYTES, 0, __VA_ARGS__)
#define MIG_ARRAY_U8(T, f, id, ...)					\
	MIG_FIELD_(T, f, id, MIG_FT_BYTES,				\
		   MIG_BUILD_CHECK(MIG_ESIZE_(T, f) == 1), __VA_ARGS__)
#define MIG_ARRAY_U16(T, f, id, ...)					\
	MIG_FIELD_(T, f, id, MIG_FT_ARRAY_U16,				\
		   MIG_BUILD_CHECK(MIG_ESIZE_(T, f) == 2), __VA_ARGS__)
#define MIG_ARRAY_U32(T, f, id, ...)					\
	MIG_FIELD_(T, f, id, MIG_FT_ARRAY_U32,				\
		   MIG_BUILD_CHECK(MIG_ESIZE_(T, f) == 4), __VA_ARGS__)
#define MIG_ARRAY_U64(T, f, id, ...)					\
	MIG_FIELD_(T, f, id, MIG_FT_ARRAY_U64,				\
		   MIG_BUILD_CHECK(MIG_ESIZE_(T, f) == 8), __VA_ARGS__)
#define MIG_END { .name = NULL }

/* "u8", "u32[]", ...; "?" if unknown. */
const char *mig_field_type_name(uint8_t type);

/* Validate a table against its struct size (ids, types, sizes, bounds). */
int mig_fields_check(const struct mig_field *fields, size_t obj_size,
		     struct err *err);
/* Encode every field with since <= version as TLVs. Returns sticky error. */
int mig_fields_save(const struct mig_field *fields, const void *obj,
		    size_t obj_size, uint32_t version, struct mig_stream *out);
/*
 * Decode all remaining bytes of the memory reader `in` into obj (which the
 * caller initialised: missing fields keep their value). Works on a scratch
 * copy; obj is changed only if the whole payload is valid.
 */
int mig_fields_load(const struct mig_field *fields, void *obj,
		    size_t obj_size, uint32_t version, struct mig_stream *in,
		    struct err *err);
/* Append a JSON array describing the table to a memory writer. */
int mig_fields_describe(const struct mig_field *fields, struct mig_stream *out);

/*
 * Version rule for a section the reader implements as `my_version` and can
 * still load back to `my_min_version`: accept if the data's min_version <=
 * my_version and the data's version >= my_min_version.
 */
int mig_section_check_version(const struct mig_section_info *info,
			      uint32_t my_version, uint32_t my_min_version,
			      struct err *err);

/* ---- DESCRIPTION builder ---------------------------------------------- */

struct mig_desc {
	struct mig_stream out;	/* memory writer holding the JSON text */
	unsigned nsections;
};

void mig_desc_init(struct mig_desc *d, const char *producer);
/* fields may be NULL for a section without a field table. */
int mig_desc_add_section(struct mig_desc *d, const struct mig_section_info *sec,
			 const struct mig_field *fields);
/* Close the JSON and write it as a DESCRIPTION record to s. */
int mig_desc_put(struct mig_desc *d, struct mig_stream *s);
void mig_desc_fini(struct mig_desc *d);

/* JSON helpers over a memory writer (used by the description). */
void mig_json_str(struct mig_stream *out, const char *str);
void mig_json_raw(struct mig_stream *out, const char *text);
void mig_json_u64(struct mig_stream *out, uint64_t v);

/* ---- The loader -------------------------------------------------------- */

struct mig_mfd_channels;	/* see "Parallel channels" below */

/*
 * Callbacks the engine plugs in. ctx is passed through. A callback returns 0
 * or a negative errno (ideally with err set); the loader then stops and
 * prefixes the message with the record type and stream offset. NULL
 * callbacks: on_header, on_config, on_iter_end, on_description, on_eof are
 * optional (content ignored). RAM data needs block->host or on_ram_pages;
 * zero runs need on_ram_zero or block->host (then memset). Sections need
 * their handler.
 */
struct mig_load_ops {
	int (*on_header)(void *ctx, const struct mig_header *h,
			 struct err *err);
	int (*on_config)(void *ctx, const char *json, size_t len,
			 struct err *err);
	/* May set blocks[i].host to place pages directly in memory. */
	int (*on_ram_blocks)(void *ctx, struct mig_ram_block *blocks,
			     size_t n, struct err *err);
	/*
	 * Pages arrived: data[i] is page_size bytes for offsets[i]. If the
	 * block has a host pointer, data[i] already points into it.
	 */
	int (*on_ram_pages)(void *ctx, const struct mig_ram_block *blk,
			    const uint64_t *offsets, void *const *data,
			    size_t n, struct err *err);
	int (*on_ram_zero)(void *ctx, const struct mig_ram_block *blk,
			   uint64_t offset, uint64_t npages, struct err *err);
	/* RAM_XBZRLE (only with MIG_FEAT_XBZRLE): apply `delta` to the page. */
	int (*on_ram_xbzrle)(void *ctx, const struct mig_ram_block *blk,
			     uint64_t offset, const uint8_t *delta, size_t len,
			     struct err *err);
	int (*on_iter_end)(void *ctx, uint64_t iteration, struct err *err);
	/* SECTION_FULL. `in` is a memory reader over the state bytes. */
	int (*on_section)(void *ctx, const struct mig_section_info *info,
			  struct mig_stream *in, struct err *err);
	int (*on_section_start)(void *ctx, const struct mig_section_info *info,
				struct mig_stream *in, struct err *err);
	int (*on_section_part)(void *ctx, const struct mig_section_info *info,
			       struct mig_stream *in, struct err *err);
	int (*on_section_end)(void *ctx, const struct mig_section_info *info,
			      struct err *err);
	int (*on_description)(void *ctx, const char *json, size_t len,
			      struct err *err);
	int (*on_eof)(void *ctx, struct err *err);
	/* MULTIFD_CHANNELS (once, after RAM_BLOCKS; needs MIG_FEAT_MULTIFD). */
	int (*on_multifd_channels)(void *ctx, const struct mig_mfd_channels *c,
				   struct err *err);
	/* MULTIFD_SYNC on the main stream: wait for every channel's `seq`. */
	int (*on_multifd_sync)(void *ctx, uint64_t seq, struct err *err);
	/*
	 * POSTCOPY_DISCARD (only with MIG_FEAT_POSTCOPY): pages of `blk` from
	 * `offset` whose bit is set in words[0..nwords) are not valid here.
	 */
	int (*on_pc_discard)(void *ctx, const struct mig_ram_block *blk,
			     uint64_t offset, const uint64_t *words,
			     uint32_t nwords, struct err *err);
	/* POSTCOPY_LISTEN: the state is complete; run with pages on demand. */
	int (*on_pc_listen)(void *ctx, struct err *err);
};

struct mig_load_section;	/* private */

struct mig_loader {
	struct mig_stream *in;
	const struct mig_load_ops *ops;
	void *ctx;
	/* Policy, set by init; may be changed before mig_loader_header(). */
	uint16_t minor_max;	/* highest minor accepted (ours) */
	uint16_t arch;		/* expected arch */
	uint32_t features_ok;	/* header feature bits accepted */
	/* State. */
	struct mig_header hdr;
	bool have_header, have_config, have_blocks, eof;
	struct err failed;	/* first error, sticky */
	struct mig_ram_block *blocks;
	size_t nblocks;
	struct mig_load_section *sections;
	size_t nsections, sections_cap;
	char producer[MIG_PRODUCER_MAX + 1];
	/* The record being loaded. */
	struct mig_rec_hdr rec;
	uint64_t rec_offset;	/* stream offset of its header */
	/* Scratch reused across records. */
	uint8_t *scratch;
	size_t scratch_cap;
	uint64_t *offsets;
	void **ptrs;
	/* Counters. */
	uint64_t records, pages, zero_pages;
	bool pc_listen;		/* POSTCOPY_LISTEN seen */
};

int mig_loader_init(struct mig_loader *l, struct mig_stream *in,
		    const struct mig_load_ops *ops, void *ctx);
void mig_loader_fini(struct mig_loader *l);
/* Read and validate the stream header. */
int mig_loader_header(struct mig_loader *l, struct err *err);
/* Load one record: 0 = more to come, 1 = EOF record loaded, < 0 = error. */
int mig_loader_step(struct mig_loader *l, struct err *err);
/* Header + records until EOF. 0 or negative errno. */
int mig_load(struct mig_stream *in, const struct mig_load_ops *ops, void *ctx,
	     struct err *err);

/* ---- Parallel channels (multifd.c) ------------------------------------ */

/*
 * A migration with MIG_FEAT_MULTIFD announces N extra TCP connections with
 * MULTIFD_CHANNELS on the main stream. Each channel starts with
 * MULTIFD_HELLO carrying the same random id, then carries MULTIFD_PAGES
 * batches and MULTIFD_SYNC marks. Channel records use the 16-byte record
 * header with flags 0 and section id 0, and no crc.
 */
#define MIG_MFD_ID_LEN		16
#define MIG_MFD_CHANNELS_MAX	16u
#define MIG_MFD_CHANNELS_LEN	(16 + MIG_MFD_ID_LEN)
#define MIG_MFD_HELLO_LEN	(8 + MIG_MFD_ID_LEN)
#define MIG_MFD_PAGES_HDR	16
/* compressed data of one batch is at most this (a bound above any codec's) */
#define MIG_MFD_DATA_MAX	(MIG_RAM_BATCH_BYTES + (64u << 10))

enum mig_mfd_method {
	MIG_MFD_NONE = 0,	/* raw pages (the only value 0 may mean here) */
	MIG_MFD_ZSTD = 1,
	MIG_MFD_LZ4 = 2,
	MIG_MFD_METHOD_END_,
};

const char *mig_mfd_method_name(uint32_t method);

struct mig_mfd_channels {
	uint32_t n;		/* 1..MIG_MFD_CHANNELS_MAX */
	uint32_t method;	/* enum mig_mfd_method batches may use */
	int32_t level;		/* compression level (informative) */
	uint8_t id[MIG_MFD_ID_LEN];	/* per-migration random id */
};

struct mig_mfd_hello {
	uint8_t id[MIG_MFD_ID_LEN];
	uint32_t index;		/* 0..n-1 */
	uint32_t n;
};

/* A MULTIFD_PAGES header, validated (data follows: data_len bytes). */
struct mig_mfd_pages {
	uint32_t block;		/* block id, in the table */
	uint32_t n;		/* pages, 1..MIG_RAM_BATCH_MAX */
	uint32_t method;	/* MIG_MFD_NONE or the announced method */
	uint32_t data_len;	/* NONE: n * page_size; else 1..MIG_MFD_DATA_MAX */
	uint64_t offsets[MIG_RAM_BATCH_MAX];
};

int mig_stream_put_mfd_channels(struct mig_stream *s,
				const struct mig_mfd_channels *c);
int mig_stream_put_mfd_sync(struct mig_stream *s, uint64_t seq);
int mig_stream_put_mfd_hello(struct mig_stream *s, const struct mig_mfd_hello *h);
/*
 * One MULTIFD_PAGES: with method NONE the n pages go out with writev()
 * straight from pages[] (data ignored); otherwise data_len bytes of data.
 */
int mig_stream_put_mfd_pages(struct mig_stream *s, uint32_t page_size,
			     uint32_t block, const uint64_t *offsets,
			     const void *const *pages, size_t n, uint32_t method,
			     const void *data, size_t data_len);

/*
 * Channel reader: one record header; only MULTIFD_HELLO, _SYNC and _PAGES
 * are valid on a channel and their lengths are checked here (-EPROTO).
 */
int mig_mfd_get_rec(struct mig_stream *in, struct mig_rec_hdr *rh,
		    struct err *err);
int mig_mfd_get_hello(struct mig_stream *in, struct mig_mfd_hello *h,
		      struct err *err);
int mig_mfd_get_sync(struct mig_stream *in, uint64_t *seq, struct err *err);
/*
 * The PAGES header and offsets of a record of length rec_len: block in
 * blocks[], every offset page-aligned and inside the block, method NONE or
 * method_ok, data_len consistent with rec_len and its method. Leaves the
 * data unread; *blk is the block.
 */
int mig_mfd_get_pages(struct mig_stream *in, uint64_t rec_len,
		      const struct mig_ram_block *blocks, size_t nblocks,
		      uint32_t page_size, uint32_t method_ok,
		      struct mig_mfd_pages *p, const struct mig_ram_block **blk,
		      struct err *err);

#endif
