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
};

struct api_request {
	enum api_action action;
};

enum api_vm_state {
	API_VM_INVALID = 0,
	API_VM_RUNNING,
	API_VM_PAUSED,
	API_VM_SHUTTING_DOWN,
};

struct api_vm_info {
	enum api_vm_state state;
	unsigned vcpus;
	uint64_t memory_bytes;
	uint64_t uptime_ms;		/* since the VM started */
	char kernel[256];		/* kernel path */
	char cmdline[512];
};

struct api_reply {
	struct api_vm_info info;	/* filled for GET_INFO */
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

const char *api_vm_state_name(enum api_vm_state s);

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
