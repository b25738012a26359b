/*
 * api.h - tern-vmm's control API: a closed set of actions, parsed from
 * HTTP/1.1 + JSON requests on a unix socket, executed by a backend.
 *
 * The API module owns HTTP and JSON; the VMM only sees typed requests and
 * fills typed replies (Firecracker's VmmAction split). Every request is
 * parsed completely (method, path, body, unknown fields) before the backend
 * is called, so a bad request changes nothing.
 */
#ifndef API_API_H
#define API_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum api_action {
	API_ACTION_INVALID = 0,
	API_ACTION_GET_INFO,		/* GET  /vm */
	API_ACTION_PAUSE,		/* POST /vm/pause */
	API_ACTION_RESUME,		/* POST /vm/resume */
	API_ACTION_SHUTDOWN,		/* POST /vm/shutdown */
	API_ACTION_MIGRATE,		/* POST /vm/migrate */
	API_ACTION_MIGRATE_STATUS,	/* GET  /vm/migration */
	API_ACTION_MIGRATE_CANCEL,	/* POST /vm/migration/cancel */
	API_ACTION_MIGRATE_POSTCOPY,	/* POST /vm/migration/postcopy */
	API_ACTION_MIGRATE_RECOVER,	/* POST /vm/migration/recover */
	API_ACTION_MIGRATE_ABANDON,	/* POST /vm/migration/abandon */
	API_ACTION_DIRTY_RATE,		/* POST /vm/dirty-rate */
	API_ACTION_DIRTY_RATE_STATUS,	/* GET  /vm/dirty-rate */
};

/* `channels` absent from the request: the engine's default applies. */
#define API_CHANNELS_DEFAULT UINT64_MAX

/* POST /vm/migrate {"uri": ..., "downtime_ms": ..., "bandwidth_mibs": ...} */
struct api_migrate_params {
	char uri[256];			/* tcp:HOST:PORT (required) */
	uint64_t downtime_ms;		/* 0: default (300) */
	uint64_t bandwidth_mibs;	/* MiB/s; 0: unlimited */
	char auto_converge[8];		/* "auto" (default), "on", "off" */
	uint64_t throttle_initial;	/* %; 0: default (20) */
	uint64_t throttle_increment;	/* %; 0: default (10) */
	uint64_t throttle_max;		/* %; 0: default (99) */
	uint64_t completion_timeout_per_gib; /* s; 0: default (150) */
	uint64_t progress_timeout_s;	/* s; 0: default (150) */
	char timeout_action[10];	/* "abort" (default), "force", "postcopy" */
	bool xbzrle;			/* re-send dirty pages as XBZRLE deltas */
	uint64_t xbzrle_cache_mib;	/* 0: default (64) */
	uint64_t channels;		/* parallel page channels; 0: none;
					 * API_CHANNELS_DEFAULT when absent */
	char compress[8];		/* "none" (default), "zstd", "lz4" */
	uint64_t compress_level;	/* zstd level 1..19; 0: default (1) */
	uint64_t keepalive_interval_s;	/* 0: default (5) */
	uint64_t keepalive_count;	/* 0: default (5) */
	bool postcopy;			/* allow a switch to post-copy */
	bool auto_postcopy;		/* switch when passes stop converging */
	char strategy[16];		/* "auto" (default), precopy, xbzrle, auto-converge, postcopy */
	uint64_t downtime_max_ms;	/* relax the limit up to this on stalls; 0: never */
	uint64_t downtime_steps;	/* 0: default (4) */
	uint64_t probe_ms;		/* auto: dirty-rate probe first; 0: default (400) */
	bool no_probe;			/* auto: skip the probe */
	char tls[8];			/* "on", "off"; "": on if the VMM has --tls-* */
	char tls_hostname[256];		/* name the destination's certificate must
					 * carry; "": the host in the URI */
	bool resume_source;		/* abandon: run the VM here again */
	bool no_defer_hot;		/* pass 1 sends hot pages too */
};

/* POST /vm/dirty-rate {"seconds": N} */
struct api_dirty_rate_params {
	uint64_t seconds;		/* 0: default (1) */
};

/*
 * A parsed request. Routes whose body carries parameters add their fields
 * here; the route table in request.c maps JSON names to these members.
 */
struct api_request {
	enum api_action action;
	struct api_migrate_params migrate;	/* API_ACTION_MIGRATE */
	struct api_dirty_rate_params dirty_rate;	/* API_ACTION_DIRTY_RATE */
};

/* Request bodies larger than this are refused with 413 before parsing. */
#define API_BODY_MAX (64 * 1024)

enum api_vm_state {
	API_VM_INVALID = 0,
	API_VM_RUNNING,
	API_VM_PAUSED,
	API_VM_SHUTTING_DOWN,
	API_VM_POSTCOPY_PAUSED,		/* incoming post-copy lost its source */
};

struct api_vm_info {
	enum api_vm_state state;
	unsigned vcpus;
	uint64_t memory_bytes;
	uint64_t uptime_ms;		/* since the VM started */
	char kernel[256];		/* kernel path */
	char cmdline[512];
};

/*
 * GET_INFO fills all of `info`. PAUSE/RESUME/SHUTDOWN set info.state to the
 * state the VM is in afterwards (left 0, the API reports the state the
 * action implies: paused, running, shutting_down).
 */
struct api_migration_info {
	char state[24];			/* none, setup, active, stop-copy, ... */
	char uri[256];
	uint32_t pass;
	uint64_t ram_bytes;
	uint64_t transferred_bytes;	/* on the wire */
	uint64_t remaining_bytes;	/* dirty, at the last sync */
	uint64_t dirty_rate_bps;
	uint64_t throughput_bps;
	uint64_t expected_downtime_ms;
	uint64_t eta_ms;
	uint64_t elapsed_ms;
	uint64_t downtime_ms;		/* measured, when completed */
	uint64_t pages_normal;
	uint64_t pages_zero;
	uint64_t downtime_limit_ms;
	uint64_t bandwidth_limit_bps;	/* 0: unlimited */
	uint32_t throttle_pct;		/* auto-converge throttle in force */
	uint32_t progress_pct;		/* 0..100, never goes back */
	uint64_t pages_xbzrle;		/* pages sent as deltas */
	uint64_t xbzrle_cache_hits, xbzrle_cache_misses, xbzrle_overflows;
	uint64_t xbzrle_bytes_saved;
	char strategy[128];		/* what the engine does and why */
	char error[256];
	uint32_t channels;		/* parallel page channels */
	uint64_t pages_compressed;	/* pages sent in compressed batches */
	uint64_t postcopy_requests, postcopy_bg_pages, postcopy_pages_left;
	uint64_t postcopy_faults, postcopy_fault_avg_us, postcopy_fault_max_us;
	char plan[16];			/* the planner's strategy in use ("" if none) */
	uint64_t predicted_total_ms, predicted_downtime_ms, predicted_wire_bytes;
	uint64_t initial_predicted_total_ms, initial_predicted_downtime_ms;
	uint64_t dirty_rate_smoothed_bps;
	uint64_t working_set_bytes;	/* estimate */
	uint64_t downtime_limit_initial_ms;	/* before relaxing */
	uint64_t postcopy_recoveries;	/* times a broken post-copy was recovered */
	uint64_t postcopy_fault_p50_us;	/* median fault latency (destination's) */
	uint64_t pages_deferred;	/* hot pages pass 1 left for pass 2 */
	uint64_t downtime_us;		/* downtime_ms, in microseconds */
};

/* GET/POST /vm/dirty-rate */
struct api_dirty_rate_info {
	char state[16];			/* none, measuring, done, failed */
	uint64_t dirty_rate_bps;	/* mean over the windows */
	uint64_t peak_dirty_rate_bps;
	uint64_t working_set_bytes;	/* distinct pages dirtied in all */
	uint64_t duration_ms, window_ms;
	uint32_t windows;
	char error[256];
};

struct api_reply {
	struct api_vm_info info;	/* filled for GET_INFO */
	struct api_migration_info migration;	/* MIGRATE* actions */
	struct api_dirty_rate_info dirty_rate;	/* DIRTY_RATE* actions */
};

/*
 * Executes one action. Returns 0, or a negative errno with `err` set:
 * -EINVAL -> 400, -ENOENT -> 404, -EBUSY/-EALREADY/-EEXIST -> 409,
 * anything else -> 500. Called from the API server thread.
 */
struct api_backend {
	void *opaque;
	int (*execute)(void *opaque, const struct api_request *req,
		       struct api_reply *reply, struct err *err);
};

/*
 * Parse one HTTP request (already split by the HTTP layer) into `req`.
 * Returns an HTTP status: 200 when `req` is valid, else a 4xx with `err`
 * naming the problem (404 unknown path, 405 wrong method, 400 bad JSON or
 * unknown field). Pure; fuzzed.
 */
int api_parse_request(const char *method, const char *path,
		      const char *body, size_t body_len,
		      struct api_request *req, struct err *err);

const char *api_vm_state_name(enum api_vm_state s);	/* "running", ... */
const char *api_action_name(enum api_action a);		/* "pause", ... */

/* Methods a known path accepts ("GET", "POST"), or NULL for unknown paths. */
const char *api_allowed_methods(const char *path);

/* HTTP status for a backend's negative errno (see struct api_backend). */
int api_status_from_errno(int code);

/*
 * The whole request cycle without HTTP transport: parse, execute on
 * `backend`, and render the JSON reply (`{...}` on success, `{"error":
 * "..."}` otherwise) into *resp_json (malloc'd, caller frees; NULL only
 * when out of memory). Returns the HTTP status. Used by the server and by
 * the fuzzer; pure apart from what the backend does.
 */
int api_dispatch(const struct api_backend *backend, const char *method,
		 const char *path, const char *body, size_t body_len,
		 char **resp_json);

struct api_server;

/*
 * Serve the API on a unix socket at `path` (created with mode 0600).
 * Fails if another server answers on that path; a stale socket file is
 * replaced. Runs its own thread; calls backend->execute from it.
 */
struct api_server *api_server_start(const char *path,
				    const struct api_backend *backend,
				    struct err *err);
void api_server_stop(struct api_server *srv);	/* also unlinks the socket */

#endif
