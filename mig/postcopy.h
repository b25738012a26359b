/*
 * postcopy.h - post-copy live migration (docs/migration-protocol.md,
 * "Post-copy"). Pure helpers (postcopy.c: page requests, the request
 * queue, bitmaps, the destination's final report), the source's push
 * (postcopy_src.c) and the destination's userfaultfd side (postcopy_dst.c).
 */
#ifndef MIG_POSTCOPY_H
#define MIG_POSTCOPY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* ---- pure helpers (postcopy.c) ---- */

/* PC_REQ payload: {u32 block id, u64 offset}, little-endian. */
#define PC_REQ_SIZE 12

void pc_req_encode(uint8_t out[PC_REQ_SIZE], uint32_t block, uint64_t offset);
/* -EPROTO unless exactly PC_REQ_SIZE bytes. */
int pc_req_decode(const uint8_t *in, size_t len, uint32_t *block,
		  uint64_t *offset, struct err *err);

/* First set bit at or after `from` (wrapping around); nbits if none. */
uint64_t pc_bitmap_next(const uint64_t *words, uint64_t nbits, uint64_t from);
uint64_t pc_bitmap_count(const uint64_t *words, uint64_t nbits);

/* A FIFO of page requests (block index, page number); never drops. */
#define PC_REQQ_CAP 256

struct pc_reqq {
	struct { uint32_t block; uint64_t pfn; } e[PC_REQQ_CAP];
	unsigned head, n;
};

void pc_reqq_init(struct pc_reqq *q);
bool pc_reqq_full(const struct pc_reqq *q);
/* false if full (the caller serves some first). */
bool pc_reqq_push(struct pc_reqq *q, uint32_t block, uint64_t pfn);
bool pc_reqq_pop(struct pc_reqq *q, uint32_t *block, uint64_t *pfn);

/* The destination's final report (PC_DONE payload, text). */
struct pc_report {
	uint64_t faults;		/* guest faults on missing pages */
	uint64_t requests;		/* PC_REQs sent */
	uint64_t placed;		/* pages placed with UFFDIO_COPY/ZEROPAGE */
	uint64_t lat_avg_us, lat_max_us; /* request -> page placed */
	uint64_t lat_p50_us;		/* median (optional on the wire) */
};

int pc_report_format(char *buf, size_t len, const struct pc_report *r);
int pc_report_parse(const char *s, struct pc_report *r, struct err *err);

/*
 * Recovery (postcopy_recover.c). The destination picks a random id at the
 * switch and sends it with READY ("pcid=<16 hex digits>"); a source that
 * reconnects proves it is the same migration with it (PC_RESUME).
 */
#define PC_ID_TEXT_LEN 22		/* "pcid=" + 16 hex + NUL */

void pc_id_format(char buf[PC_ID_TEXT_LEN], uint64_t id);
/* -EINVAL unless s is exactly what pc_id_format() writes (id non-zero). */
int pc_id_parse(const char *s, uint64_t *id);

/*
 * PC_BITMAP payload: a slice of the destination's still-needed bitmap,
 * {u32 block id, u32 0, u64 first word, u64 words[n]}, 1 <= n <= max.
 */
#define PC_BITMAP_HDR 16
#define PC_BITMAP_WORDS_MAX 126		/* (MIG_CTL_MSG_MAX - 16) / 8 */

size_t pc_bitmap_encode(uint8_t *out, uint32_t block, uint64_t first_word,
			const uint64_t *words, uint32_t n);
/* Checks the framing only; the caller checks the range against the block. */
int pc_bitmap_decode(const uint8_t *in, size_t len, uint32_t *block,
		     uint64_t *first_word, uint64_t words[PC_BITMAP_WORDS_MAX],
		     uint32_t *n, struct err *err);

/* ---- destination (postcopy_dst.c) ---- */

#define PC_MAX_BLOCKS 4
#define PC_INFLIGHT 64
#define PC_LAT_SAMPLES 4096

struct pc_dest_block {
	uint32_t id;
	uint8_t *host;
	uint64_t size, npages;
	_Atomic uint64_t *needed;	/* page not valid here yet */
	_Atomic uint64_t *requested;	/* PC_REQ sent for it */
};

struct pc_dest {
	struct pc_dest_block b[PC_MAX_BLOCKS];
	unsigned nblocks;
	int uffd;
	int stop_efd;			/* wakes the fault thread to leave */
	int fd;				/* connection: requests go out here */
	pthread_mutex_t lock;		/* writes to fd, inflight[], counters */
	pthread_t thread;
	bool thread_started;
	struct { uint64_t addr, t_ns; } inflight[PC_INFLIGHT];
	_Atomic uint64_t left;		/* pages still needed */
	uint64_t faults, requests, placed, lat_sum_ns, lat_max_ns, lat_n;
	bool conn_lost;			/* a request could not be sent */
	uint32_t lat_us[PC_LAT_SAMPLES];	/* first latencies, for the median */
	unsigned lat_nsamp;
};

struct mig_ram_block;

int pc_dest_init(struct pc_dest *pc, const struct mig_ram_block *blocks,
		 size_t n, struct err *err);
void pc_dest_fini(struct pc_dest *pc);
/* POSTCOPY_DISCARD: mark pages as needed. */
int pc_dest_discard(struct pc_dest *pc, uint32_t block, uint64_t offset,
		    const uint64_t *words, uint32_t nwords, struct err *err);
/* Drop the needed pages (so they fault) and register userfaultfd. */
int pc_dest_listen(struct pc_dest *pc, struct err *err);
/* Start the fault thread; requests go to fd. */
int pc_dest_start(struct pc_dest *pc, int fd, struct err *err);
/* Place pages that arrived (never over a page already there). */
int pc_dest_place(struct pc_dest *pc, uint32_t block, const uint64_t *offsets,
		  void *const *data, size_t n, struct err *err);
int pc_dest_zero(struct pc_dest *pc, uint32_t block, uint64_t offset,
		 uint64_t npages, struct err *err);
/* Stop the fault thread (requests stop; faults stay queued). */
void pc_dest_stop(struct pc_dest *pc);
/* All pages here: unregister userfaultfd. */
int pc_dest_finish(struct pc_dest *pc, struct err *err);
void pc_dest_report(struct pc_dest *pc, struct pc_report *r);
/* Append the still-needed bitmap as POSTCOPY_DISCARD records. */
struct mig_stream;
int pc_dest_put_needed(struct pc_dest *pc, struct mig_stream *out);
/*
 * Call fn for each slice (up to `max` words, copied into `words`) of a
 * block's still-needed bitmap that has a bit set; stops at fn's error.
 */
typedef int (*pc_needed_fn)(void *opaque, uint32_t block, uint64_t first_word,
			    const uint64_t *words, uint32_t n);
int pc_dest_each_needed(struct pc_dest *pc, uint64_t *words, uint32_t max,
			pc_needed_fn fn, void *opaque);

/* Connection lost: stop asking (faults are noted and asked again later). */
void pc_dest_pause(struct pc_dest *pc);
/* After pc_dest_start() on the new connection: ask again; returns how many. */
int pc_dest_rerequest(struct pc_dest *pc);
/*
 * Recovery handshake on a new connection (postcopy_recover.c): check the
 * source's PC_RESUME id, send the still-needed bitmap (PC_BITMAP...) and
 * PC_RESUME. -EPERM (ERROR sent) if the id is not this migration's.
 */
int pc_dest_recover_handshake(struct pc_dest *pc, int fd, uint64_t id,
			      struct err *err);

/* ---- source (postcopy_src.c) ---- */

struct ram_sender;

struct pc_source {
	struct ram_sender *rs;
	struct mig_stream *out;
	int fd;
	struct pc_reqq q;
	uint64_t cursor[PC_MAX_BLOCKS];	/* background push position */
	uint64_t left;			/* pages not sent yet */
	uint64_t requests, bg_pages, req_pages;
	uint64_t rate_start_ns, rate_bytes, bandwidth;
	struct pc_report report;	/* from the destination's PC_DONE */
	bool dest_error;		/* the destination said ERROR */
	/* publish counters (called between batches) */
	void (*progress)(void *opaque);
	void *opaque;
	int timeout_ms;			/* a silent peer is gone after this
					 * (keepalive interval x count) */
};

/* Send the missing-page bitmap (rs->bitmap after the last sync). */
int pc_source_put_discard(struct ram_sender *rs, struct mig_stream *out,
			  struct err *err);
void pc_source_init(struct pc_source *ps, struct ram_sender *rs,
		    struct mig_stream *out, int fd, uint64_t bandwidth);
/* Push every missing page, requested ones first; then EOF and PC_DONE. */
int pc_source_run(struct pc_source *ps, struct err *err);
/*
 * Recovery handshake (source side) on a new connection: send PC_RESUME
 * with id, read the destination's still-needed bitmap into rs->bitmap
 * (only once it came whole). The caller must own rs (the migration
 * thread waits).
 */
int pc_source_recover_handshake(int fd, uint64_t id, struct ram_sender *rs,
				struct err *err);
/* Pages pushed (requested + background) after which the "-pc-paging"
 * fault points fire: well inside post-copy, long before its end. */
#define PC_FAULT_PAGES 64

/* Go on after a recovery on fd (the stream was restarted on it). */
void pc_source_resume(struct pc_source *ps, int fd);

#endif
