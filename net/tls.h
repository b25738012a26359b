/*
 * tls.h - TLS 1.3 with mutual authentication for tern's host-to-host
 * connections (live migration today, ternd's traffic later).
 *
 * A host has one identity: a certificate and key signed by the cluster CA
 * (`tern pki`), and the CA certificate it checks peers against. Both ends
 * present their certificate and verify the other's chain; the client also
 * checks the server's name (DNS or IP SAN) against the host it dialled.
 *
 * One call secures a connected TCP socket: tls_wrap_client() or
 * tls_wrap_server() runs the handshake (with a deadline), and on success
 * returns a NEW fd, one end of a socketpair, that carries the plaintext.
 * A pump thread owns the TCP socket and the SSL object and moves bytes
 * between them, encrypting and decrypting. Code above keeps using plain
 * read/readv/write/writev/poll/shutdown/close on the returned fd, from any
 * thread, exactly as on a TCP socket (this is what kernel TLS would give,
 * and kTLS is not available on every host). Closing the returned fd ends
 * the pump and closes the TCP connection.
 *
 * Error messages are one line starting "TLS: " and name the problem, e.g.
 * "TLS: peer certificate not signed by the cluster CA".
 */
#ifndef NET_TLS_H
#define NET_TLS_H

#include <stdbool.h>

#include "err.h"

#define TLS_HANDSHAKE_TIMEOUT_MS 10000

struct tls_ctx;

/* Load this host's identity (PEM files). Checks that key matches cert. */
struct tls_ctx *tls_ctx_new(const char *cert_path, const char *key_path,
			    const char *ca_path, struct err *err);
void tls_ctx_free(struct tls_ctx *t);

/*
 * Server side, optional: accept only clients whose certificate names
 * `name` (a DNS or IP SAN entry, or the subject CN). Call once per name;
 * with none, any certificate signed by the CA is accepted.
 */
int tls_ctx_allow_peer(struct tls_ctx *t, const char *name, struct err *err);

/*
 * Secure a connected socket. `host` is the name or address the client
 * dialled (checked against the server's SAN). On success returns the
 * plaintext fd and owns `fd` (closed when the returned fd is closed); on
 * failure returns a negative errno and leaves `fd` to the caller.
 * timeout_ms <= 0 means TLS_HANDSHAKE_TIMEOUT_MS.
 */
int tls_wrap_client(struct tls_ctx *t, int fd, const char *host,
		    int timeout_ms, struct err *err);
int tls_wrap_server(struct tls_ctx *t, int fd, int timeout_ms,
		    struct err *err);

/*
 * Server side of a standard protocol over TLS (ternd's HTTPS API): as
 * tls_wrap_server() but without tern's confirmation bytes, so any TLS
 * client (libcurl) can talk; the client's certificate is still verified
 * against the CA during the handshake, but it may send none unless
 * `require_cert`. `names` (len bytes) gets the verified client
 * certificate's names as tls_cert_names() writes them ("b, 10.0.0.2"),
 * or "" when the client sent none.
 */
int tls_wrap_server_std(struct tls_ctx *t, int fd, int timeout_ms,
			bool require_cert, char *names, size_t len,
			struct err *err);

/*
 * Peek (without consuming) at what a just-accepted peer sends first: true
 * if it starts like a TLS ClientHello. For a plain endpoint that wants to
 * refuse a TLS peer with a clear message.
 */
bool tls_peek_client_hello(int fd, int timeout_ms);

/* Pump threads still running (tests wait for 0 after closing). */
unsigned tls_pumps_live(void);

#endif
