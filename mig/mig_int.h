/*
 * mig_int.h - private to mig/: the handshake (control) messages, the RAM
 * sender, and shared helpers. See docs/migration-protocol.md.
 */
#ifndef MIG_INT_H
#define MIG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "mig.h"
#include "page_cache.h"
#include "stream.h"
#include "xbzrle.h"

/*
 * Control records, framed like stream records (16-byte header, payload),
 * exchanged after the main stream's EOF and on errors.
 */
enum mig_ctl_type {
	MIG_CTL_READY = MIG_REC_RP_FIRST + 1,	/* dst: everything loaded and valid */
	MIG_CTL_GO = MIG_REC_RP_FIRST + 2,	/* src: ownership passes to dst */
	MIG_CTL_RUNNING = MIG_REC_RP_FIRST + 3,	/* dst: vCPUs are running */
	MIG_CTL_ERROR = MIG_REC_RP_FIRST + 4,	/* either: one-line reason */
	MIG_CTL_ACK = MIG_REC_RP_FIRST + 5,	/* dst: processed up to ITER_END n */
	MIG_CTL_PC_REQ = MIG_REC_RP_FIRST + 6,	/* dst: send this page now (post-copy) */
	MIG_CTL_PC_DONE = MIG_REC_RP_FIRST + 7,	/* dst: every page placed; its stats */
	MIG_CTL_PC_RESUME = MIG_REC_RP_FIRST + 8, /* src: recovery of a post-copy */
	MIG_CTL_PC_BITMAP = MIG_REC_RP_FIRST + 9, /* dst: pages it still lacks (recovery) */
	MIG_CTL_LAST = MIG_CTL_PC_BITMAP,
};

#define MIG_CTL_MSG_MAX 1024

/*
 * The socket timeouts mig_sock_tune() sets, until mig_keepalive_tune()
 * replaces them with the migration's keepalive rule (interval x count).
 */
#define MIG_IO_TIMEOUT_MS 30000

int mig_ctl_send(int fd, uint16_t type, const char *msg);
/* Binary payload of at most MIG_CTL_MSG_MAX bytes. */
int mig_ctl_send_raw(int fd, uint16_t type, const void *msg, size_t len);
/* Wait up to timeout_ms for one control record. -ETIMEDOUT, -ECONNRESET.. */
int mig_ctl_recv(int fd, int timeout_ms, uint16_t *type, char *msg,
		 size_t msglen, struct err *err);
/* Same, payload as it came (binary). */
int mig_ctl_recv_raw(int fd, int timeout_ms, uint16_t *type,
		     uint8_t body[MIG_CTL_MSG_MAX], size_t *body_len, struct err *err);
const char *mig_ctl_name(uint16_t type);

void mig_sock_tune(int fd);

/* ---- keepalive (keepalive.c): how long a silent peer is waited for ---- */

struct mig_keepalive {
	uint32_t interval_s;
	uint32_t count;
};

void mig_keepalive_default(struct mig_keepalive *ka);
const struct mig_keepalive *mig_keepalive_dest(void);
/* interval x count, in ms: the longest stall a migration survives */
int mig_keepalive_timeout_ms(const struct mig_keepalive *ka);
/* for mig_stream_set_timeout() on a socket set up by mig_keepalive_tune() */
int mig_keepalive_stream_timeout_ms(const struct mig_keepalive *ka);
/* TCP keepalive, TCP_USER_TIMEOUT and socket timeouts on a connected fd */
void mig_keepalive_tune(int fd, const struct mig_keepalive *ka);

/* ---- RAM sending (ram.c) ---- */

#define MIG_MAX_BLOCKS 4

struct vm;
struct mfd_send;

struct ram_sender {
	struct vm *vm;
	struct mig_stream *out;
	struct mig_ram_block blocks[MIG_MAX_BLOCKS];
	unsigned nblocks;
	uint64_t *bitmap[MIG_MAX_BLOCKS];
	uint64_t npages[MIG_MAX_BLOCKS];
	uint64_t total_pages;
	atomic_bool *cancel;
	uint64_t bandwidth;		/* bytes/s, 0 = unlimited */
	uint64_t rate_start_ns, rate_bytes;
	/* counters, updated as pages go out */
	uint64_t pages_normal, pages_zero, pages_xbzrle;
	uint64_t send_ns;		/* time spent writing page batches */
	uint64_t send_bytes;
	/* XBZRLE (pass >= 2 only): cache of sent pages, scratch, counters */
	struct page_cache *xcache;
	uint8_t *xsnap, *xdelta;
	uint64_t generation;		/* current pass */
	uint64_t xpages;		/* pages through XBZRLE (progress ticks) */
	/* this pass: pages to visit (all, or the last sync's dirty count), visited */
	uint64_t pass_todo, pass_done;
	struct xbzrle_stats xstats;
	/* called after every batch sent: progress, and a chance to abort */
	int (*progress)(void *opaque, struct err *err);
	void *progress_opaque;
	/* pass 1 leaves pages the guest wrote since it began for pass 2 */
	bool defer_hot;
	uint64_t pages_deferred;
	/* batch being built */
	unsigned batch_block;
	size_t batch_n;
	uint64_t *batch_off;
	const void **batch_ptr;
	struct mfd_send *mfd;		/* parallel channels, or NULL */
};

int ram_sender_init(struct ram_sender *rs, struct vm *vm, struct mig_stream *out,
		    atomic_bool *cancel, uint64_t bandwidth, struct err *err);
/* Re-send dirty pages as XBZRLE deltas against a cache of `cache_bytes`. */
int ram_sender_enable_xbzrle(struct ram_sender *rs, uint64_t cache_bytes,
			     struct err *err);
void ram_sender_fini(struct ram_sender *rs);
/* Bytes of guest RAM the host holds (never-touched pages are zero). */
uint64_t ram_resident_bytes(const struct ram_sender *rs);
/* Pass 1: every page not known to be zero (the destination starts zeroed). */
int ram_send_first_pass(struct ram_sender *rs, struct err *err);
/* Read the dirty bitmaps; returns the number of dirty pages (>= 0). */
int64_t ram_sync(struct ram_sender *rs, struct err *err);
/* Send the pages marked by the last ram_sync(); `protect` re-arms logging. */
int ram_send_dirty(struct ram_sender *rs, bool protect, struct err *err);

bool mig_page_is_zero(const void *page);
/*
 * Sleep as needed to keep the bytes sent (counted in *sent since
 * *start_ns, a window restarted each second) under `bandwidth` bytes/s;
 * 0 = unlimited. Shared by the RAM sender and the post-copy pusher.
 */
void mig_rate_limit(uint64_t bandwidth, uint64_t *start_ns, uint64_t *sent,
		    uint64_t bytes);

/* ---- the destination's status for the API thread (dest_status.c) ---- */
void mig_dest_status_set(enum mig_state st, const char *reason);
int mig_dest_stop_fd(void);
int mig_dest_wait_recovery(int listen_fd, const char *why, struct err *err);

#endif
