/*
 * pki.h - a cluster's small PKI, for `tern pki`: one CA, and host
 * certificates signed by it that serve as both TLS server and client
 * certificates (tls.h). Keys are EC P-256; key files are mode 0600.
 *
 * Files in the PKI directory (default PKI_DEFAULT_DIR):
 *   ca.pem, ca-key.pem          the cluster CA
 *   NAME.pem, NAME-key.pem      host NAME's certificate and key
 * Existing files are never overwritten unless `force` is set.
 */
#ifndef NET_PKI_H
#define NET_PKI_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define PKI_DEFAULT_DIR		"/etc/tern/pki"
#define PKI_DEFAULT_CA_CN	"tern cluster CA"
#define PKI_DEFAULT_CA_DAYS	3650
#define PKI_DEFAULT_DAYS	365
#define PKI_MAX_DAYS		36500
#define PKI_MAX_SAN		32

struct pki_issue_opts {
	const char *name;		/* host name: CN and first DNS SAN */
	const char *ips[PKI_MAX_SAN];	/* IP SAN entries */
	size_t nips;
	const char *dns[PKI_MAX_SAN];	/* more DNS SAN entries */
	size_t ndns;
	unsigned days;			/* validity; 0 = already expired (tests) */
	bool force;			/* overwrite existing files */
};

/* Make the CA in `dir` (created if missing). */
int pki_init(const char *dir, const char *cn, unsigned days, bool force,
	     struct err *err);
/* Make NAME.pem and NAME-key.pem in `dir`, signed by its CA. */
int pki_issue(const char *dir, const struct pki_issue_opts *o, struct err *err);

/* A host name usable as DNS SAN and file name: RFC 1123 labels. */
bool pki_name_valid(const char *name);
/* An IPv4 or IPv6 address in text form. */
bool pki_ip_valid(const char *ip);

#endif
