/*
 * client.h - a blocking HTTP/1.1 client for tern's unix-socket APIs
 * (libcurl). Used by the `tern` CLI and the host daemon.
 */
#ifndef API_CLIENT_H
#define API_CLIENT_H

#include "err.h"

/* Replies larger than this are refused (the client never grows past it). */
#define API_CLIENT_REPLY_MAX (1024 * 1024)
/* Whole-request timeout in seconds. */
#define API_CLIENT_TIMEOUT_S 60

/*
 * Send `method` `path` (e.g. "POST", "/vm/pause") with an optional JSON
 * `body` (NULL = none) to the server on the unix socket `sock_path`.
 *
 * Returns 0 once any HTTP reply arrived, with its status in *http_status
 * and its body in *resp_body (malloc'd, NUL-terminated, possibly empty;
 * caller frees; pass NULL to discard). Returns a negative errno with `err`
 * set when no reply arrived: -ENOENT/-ECONNREFUSED... when nobody listens
 * ("cannot connect to vm.sock: ... is tern-vmm running with --api
 * vm.sock?"), -ETIMEDOUT, -EMSGSIZE for an oversized reply, -EIO otherwise.
 */
int api_client_call(const char *sock_path, const char *method,
		    const char *path, const char *body, long *http_status,
		    char **resp_body, struct err *err);

/*
 * The same for a server given as a unix socket path or as a URL
 * "http://HOST:PORT" (TCP), with an optional bearer `token` (NULL = none)
 * sent as "Authorization: Bearer TOKEN". Used for the host daemon's API.
 */
int api_client_request(const char *target, const char *token,
		       const char *method, const char *path, const char *body,
		       long *http_status, char **resp_body, struct err *err);

/*
 * TLS for a target "https://HOST:PORT": the CA that signed the server's
 * certificate (required: the server's chain and its name, HOST, are
 * always verified) and, optionally, our own certificate and key to
 * present (a ternd maps a cluster certificate's name to a role). Paths to
 * PEM files. Failures are one line starting "TLS: ", e.g. "TLS: server
 * certificate not signed by the cluster CA (...)".
 */
struct api_client_tls {
	const char *ca;
	const char *cert;	/* NULL: no client certificate */
	const char *key;
};

/* api_client_request() with TLS settings for https:// (NULL = none). */
int api_client_request_tls(const char *target, const char *token,
			   const struct api_client_tls *tls,
			   const char *method, const char *path,
			   const char *body, long *http_status,
			   char **resp_body, struct err *err);

#endif
