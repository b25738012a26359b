/*
 * mig.h - tern's live-migration engine (public interface).
 *
 * Source: mig_source_start() runs a migration of a running VM to a
 * listening destination on its own thread: pre-copy passes driven by KVM
 * dirty logging, then stop-and-copy when the remaining data fits the
 * downtime limit, then the ownership handshake (docs/migration-protocol.md).
 * Destination: mig_dest_listen() + mig_dest_receive() build the VM from the
 * stream, load it, and start it once the source hands ownership over.
 *
 * The engine reaches the VM only through vmm/migratable.h.
 */
#ifndef MIG_MIG_H
#define MIG_MIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct vm;
struct vm_config;
struct guest_ram;
struct tls_ctx;

#define MIG_DEFAULT_DOWNTIME_MS	300
#define MIG_DEFAULT_CHANNELS	2	/* docs/benchmarks.md, "Defaults chosen" */
#define MIG_KEEPALIVE_INTERVAL_S	5	/* s between keepalive probes */
#define MIG_KEEPALIVE_COUNT		5	/* probes unanswered: peer gone */
#define MIG_KEEPALIVE_INTERVAL_MAX	3600
#define MIG_KEEPALIVE_COUNT_MAX		100

enum mig_auto_converge {
	MIG_AC_INVALID = 0,
	MIG_AC_AUTO,			/* throttle only if passes stop shrinking (default) */
	MIG_AC_ON,			/* same rule, chosen explicitly */
	MIG_AC_OFF,			/* never throttle: plain pre-copy */
};

enum mig_timeout_action {
	MIG_TA_INVALID = 0,
	MIG_TA_ABORT,			/* give up; the VM keeps running here (default) */
	MIG_TA_FORCE,			/* pause the guest and finish, whatever the downtime */
	MIG_TA_POSTCOPY,		/* switch to post-copy (needs postcopy allowed) */
};

/* Batch compression on the parallel channels (values as on the wire). */
enum mig_compress {
	MIG_COMPRESS_NONE = 0,		/* raw pages (0 is "none" here, not invalid) */
	MIG_COMPRESS_ZSTD = 1,
	MIG_COMPRESS_LZ4 = 2,
};

struct mig_params {
	uint32_t downtime_ms;		/* max pause; default 300 (QEMU's) */
	uint64_t bandwidth;		/* bytes/s; 0 = unlimited (default) */
	uint32_t max_passes;		/* give up converging after this many; 0 = 1000 */
	uint32_t handover_timeout_ms;	/* wait for the destination's READY/RUNNING */
	enum mig_auto_converge auto_converge;
	uint32_t throttle_initial;	/* % when throttling starts; default 20 */
	uint32_t throttle_increment;	/* % added each time; default 10 */
	uint32_t throttle_max;		/* % at most; default 99 */
	uint32_t completion_timeout_per_gib; /* s per GiB of RAM (min 1 GiB); default 150; 0 = none */
	uint32_t progress_timeout_s;	/* s without a new low of remaining data; default 150; 0 = none */
	enum mig_timeout_action timeout_action;
	bool xbzrle;			/* re-send dirty pages as deltas (default off) */
	uint64_t xbzrle_cache_bytes;	/* cache of sent pages; default 64 MiB */
	uint32_t channels;		/* extra page channels (multifd); default 2; 0 = main stream */
	uint32_t compress;		/* enum mig_compress, with channels only */
	int32_t compress_level;		/* zstd level; 0 = default (1) */
	uint32_t keepalive_interval_s;	/* default 5; a peer silent for */
	uint32_t keepalive_count;	/* interval x count (25 s) is gone */
	bool postcopy;			/* allow a switch to post-copy (default off) */
	bool auto_postcopy;		/* switch when passes stop converging */
	struct tls_ctx *tls;		/* TLS identity (net/tls.h); NULL = plain TCP */
	char tls_hostname[256];		/* name the destination's certificate must
					 * carry; "" = the host in the URI */
	/* the planner (planner.h) and relaxing downtime (converge.c) */
	char strategy[16];		/* "auto" (default), precopy, xbzrle, auto-converge, postcopy */
	uint32_t downtime_max_ms;	/* relax the limit up to this on stalls; <= downtime_ms: never */
	uint32_t downtime_steps;	/* in this many steps; default 4 */
	uint32_t probe_ms;		/* auto: measure the dirty rate this long first; default 400 */
	uint64_t dirty_rate_hint;	/* bytes/s measured before (0: unknown) */
	uint64_t wss_hint;		/* working set measured before (0: unknown) */
	bool no_defer_hot;		/* pass 1 sends hot pages too (default: it
					 * leaves pages written since the start
					 * for pass 2: each is sent once, later) */
};

void mig_params_init(struct mig_params *p);

enum mig_state {
	MIG_STATE_NONE = 0,		/* no migration yet */
	MIG_STATE_SETUP,		/* connecting, sending configuration */
	MIG_STATE_ACTIVE,		/* pre-copy passes, guest running */
	MIG_STATE_STOP_COPY,		/* guest paused, final pages + state */
	MIG_STATE_HANDOVER,		/* waiting for the destination's READY */
	MIG_STATE_COMPLETED,		/* destination runs the VM */
	MIG_STATE_FAILED,		/* source runs the VM again */
	MIG_STATE_CANCELLED,		/* source runs the VM again */
	MIG_STATE_UNCONFIRMED,		/* GO sent, RUNNING not received: VM
					 * kept paused here, never resumed */
	MIG_STATE_POSTCOPY_ACTIVE,	/* destination runs, pulls the rest */
	MIG_STATE_POSTCOPY_PAUSED,	/* connection lost in post-copy: frozen
					 * copy kept here, waiting for recovery */
	MIG_STATE_POSTCOPY_RECOVER,	/* reconnecting to the destination */
	MIG_STATE_POSTCOPY_FAILED,	/* destination lost in post-copy: VM
					 * paused here, never resumed */
};

const char *mig_state_name(enum mig_state s);
bool mig_state_is_final(enum mig_state s);

struct mig_stats {
	enum mig_state state;
	uint32_t pass;			/* current pre-copy pass, from 1 */
	uint64_t ram_bytes;		/* guest RAM size */
	uint64_t transferred;		/* bytes written to the connection */
	uint64_t remaining;		/* dirty bytes still to send, last sync */
	uint64_t dirty_rate;		/* bytes/s the guest dirtied, last pass */
	uint64_t throughput;		/* bytes/s sent, last pass */
	uint64_t expected_downtime_ms;	/* if we stopped now */
	uint64_t eta_ms;		/* estimate of time left; 0 if unknown */
	uint64_t elapsed_ms;
	uint64_t downtime_ms;		/* measured: pause -> destination runs */
	uint64_t pages_normal;		/* full pages sent */
	uint64_t pages_zero;		/* zero pages: skipped or sent as markers */
	uint32_t downtime_limit_ms;
	uint64_t bandwidth_limit;
	uint32_t throttle_pct;		/* auto-converge throttle now */
	uint64_t pages_xbzrle;		/* pages sent as XBZRLE deltas */
	uint64_t xbzrle_cache_hits, xbzrle_cache_misses, xbzrle_overflows;
	uint64_t xbzrle_bytes_saved;
	uint32_t progress_pct;		/* 0..100, never goes back */
	char strategy[128];		/* what the engine does and why */
	char error[256];
	uint32_t channels;		/* parallel page channels in use */
	uint64_t pages_compressed;	/* pages sent in compressed batches */
	/* post-copy */
	uint64_t postcopy_requests;	/* pages the destination asked for */
	uint64_t postcopy_bg_pages;	/* pages pushed in the background */
	uint64_t postcopy_pages_left;	/* still missing on the destination */
	uint64_t postcopy_faults;	/* destination's guest faults (at the end) */
	uint64_t postcopy_fault_avg_us;	/* fault -> page placed, average */
	uint64_t postcopy_fault_max_us;
	uint32_t postcopy_recoveries;	/* times the connection was restored */
	uint64_t postcopy_fault_p50_us;	/* median (destination's histogram) */
	/* the planner's prediction for the strategy in use, at the start and now */
	char plan[16];			/* strategy chosen: precopy, xbzrle, ... */
	uint64_t predicted_total_ms, predicted_downtime_ms, predicted_wire_bytes;
	uint64_t initial_predicted_total_ms, initial_predicted_downtime_ms;
	uint64_t dirty_rate_smoothed;	/* bytes/s, unthrottled estimate */
	uint64_t wss_estimate;		/* working set estimate, bytes */
	uint32_t downtime_limit_initial_ms;	/* before relaxing */
	uint64_t pages_deferred;	/* pass 1: hot pages left for pass 2 */
	uint64_t downtime_us;		/* downtime_ms in microseconds */
};

struct mig_source;

/*
 * Start migrating `vm` (running) to `uri` ("tcp:HOST:PORT"). `done` is
 * called from the migration thread when it reaches a final state.
 */
struct mig_source *mig_source_start(struct vm *vm, const char *uri,
				    const struct mig_params *p,
				    void (*done)(void *opaque, enum mig_state st),
				    void *opaque, struct err *err);
void mig_source_stats(struct mig_source *m, struct mig_stats *st);
/* Cancel; -EBUSY once ownership has passed (too late to cancel). */
int mig_source_cancel(struct mig_source *m, struct err *err);
/* Switch to post-copy now (the migration must allow it). */
int mig_source_postcopy(struct mig_source *m, struct err *err);
/*
 * Post-copy paused: reconnect to the destination's recovery address
 * ("tcp:HOST:PORT") and go on. -EINVAL in any other state.
 */
int mig_source_recover(struct mig_source *m, const char *uri, struct err *err);
/*
 * Post-copy paused and the destination is known dead: give it up
 * (postcopy-failed). With resume_source the VM runs here again; only the
 * operator can know that the destination's copy will never run.
 */
int mig_source_abandon(struct mig_source *m, bool resume_source, struct err *err);
/* Join the thread and free (after a final state). */
void mig_source_free(struct mig_source *m);

/* Destination. */
int mig_dest_listen(const char *uri, struct err *err);
/*
 * Accept one connection on listen_fd and receive a VM into *vm: creates it
 * with vm_create() from the stream's configuration (serial_fd for its
 * console; `ram`, if not NULL, is RAM mapped ahead (tern-vmm --memory
 * with --incoming) that the VM adopts if the sizes match), loads RAM and
 * state, and on the source's GO starts it.
 * Returns 0 with the VM running, or an error with nothing left running.
 */
int mig_dest_receive(int listen_fd, struct vm *vm, int serial_fd, struct guest_ram *ram,
		     struct mig_stats *stats, struct err *err);

/* Keepalive (keepalive.c): validate; the destination's setting. */
int mig_keepalive_check(uint32_t interval_s, uint32_t count, struct err *err);
int mig_dest_set_keepalive(uint32_t interval_s, uint32_t count, struct err *err);
/*
 * Dirty-rate measurement of a running VM without migrating (dirtyrate.c):
 * dirty logging on for total_ms, cut into windows of window_ms; off again
 * at the end (unless keep_logging: the source's probe, whose pass 1 needs
 * it on anyway). With quiet_rate, a first short window (10 ms) that saw a
 * rate under it ends the measurement at once (a quiet guest); it is not
 * one of the windows averaged otherwise. Not while a migration runs (the
 * caller checks).
 */
struct mig_dirty_opts {
	uint64_t total_ms, window_ms;
	uint64_t quiet_rate;		/* bytes/s; 0: measure all of total_ms */
	bool keep_logging;
};

struct mig_dirty_rate {
	uint64_t rate;			/* bytes/s, mean over the windows */
	uint64_t peak_rate;		/* bytes/s, busiest window */
	uint64_t wss_bytes;		/* distinct pages dirtied over all windows */
	uint64_t duration_ms;
	uint64_t window_ms;
	uint32_t windows;
};

enum mig_dirty_state {
	MIG_DIRTY_NONE = 0,
	MIG_DIRTY_MEASURING,
	MIG_DIRTY_DONE,
	MIG_DIRTY_FAILED,
};

int mig_dirty_rate_measure(struct vm *vm, const struct mig_dirty_opts *o, atomic_bool *cancel,
			   struct mig_dirty_rate *out, struct err *err);

struct mig_dirty_job;

struct mig_dirty_job *mig_dirty_job_start(struct vm *vm, uint64_t total_ms,
					  uint64_t window_ms, struct err *err);
enum mig_dirty_state mig_dirty_job_get(struct mig_dirty_job *j, struct mig_dirty_rate *r,
				       char *error, size_t errlen);
/* Cancel if still measuring, join, free. */
void mig_dirty_job_free(struct mig_dirty_job *j);

/* Transport (channel.c). */
int mig_uri_parse(const char *uri, char *host, size_t hostlen, char *port,
		  size_t portlen, struct err *err);
int mig_tcp_connect(const char *uri, struct err *err);

/*
 * TLS (secure.c): one call per migration connection, after connect() or
 * accept(); returns the fd to use from then on, or -errno (fd closed).
 * See secure.c for how extra channels use them.
 */
int mig_secure_connect(int fd, const struct mig_params *p, const char *uri,
		       struct err *err);
int mig_secure_accept(int fd, struct err *err);
/* The destination's TLS identity (tern-vmm --tls-*); NULL = plain TCP. */
void mig_dest_set_tls(struct tls_ctx *tls);
bool mig_dest_has_tls(void);

/*
 * The destination's state for the API thread (dest_status.c): state
 * (none until a post-copy starts; postcopy-active, postcopy-paused with
 * the reason in error, postcopy-failed) and recoveries.
 */
void mig_dest_status(struct mig_stats *out);
/* A readable fd (the VMM's signalfd) ends a wait for post-copy recovery:
 * the VM is lost, mig_dest_receive() fails ("VM lost: post-copy was paused"). */
void mig_dest_set_stop_fd(int fd);

#endif
