/*
 * tls_int.h - private to net/: the pump (tls_pump.c) and the helpers that
 * name certificates (tls_names.c), shared with the unit tests.
 */
#ifndef NET_TLS_INT_H
#define NET_TLS_INT_H

#ifndef NET_TLS_INTERNAL
#error "tls_int.h is private to net/"
#endif

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "err.h"

/* Up to this much is buffered in each direction by the pump. */
#define TLS_PUMP_BUF	(256u << 10)
/* After the plaintext side closed, give unsent data this long to leave. */
#define TLS_LINGER_MS	5000

/*
 * Hand a connected, handshaken SSL (on non-blocking net_fd) to a new pump
 * thread. Returns the plaintext fd, or -errno (ssl and net_fd still the
 * caller's then).
 */
int tls_pump_start(SSL *ssl, int net_fd, struct err *err);

/*
 * The names a certificate is for: its DNS and IP SAN entries, comma
 * separated ("b, 10.0.0.2"), or its subject CN when it has no SAN.
 */
void tls_cert_names(X509 *cert, char *buf, size_t len);
/* Does the certificate name `name` (a DNS or IP SAN entry, or CN)? */
bool tls_cert_has_name(X509 *cert, const char *name);
/* "Nov 22 10:00:00 2026 GMT" */
void tls_asn1_time(const ASN1_TIME *t, char *buf, size_t len);

#endif
