/*
 * tls.c - the host identity (struct tls_ctx) and the handshake: TLS 1.3
 * only, both sides present a certificate and verify the peer's chain
 * against the cluster CA, the client checks the server's name, and the
 * server may check the client's against an allow-list. The handshake runs
 * on a non-blocking socket with a deadline, so a silent peer cannot hang
 * it. Then the server sends an 8-byte confirmation ("TERNTLS1") that the
 * client waits for: in TLS 1.3 the client finishes its handshake before
 * the server has checked the client's certificate, and this way a refused
 * client learns it inside tls_wrap_client(), before any data flows.
 * Failures become one line naming the problem (handshake_error()).
 */
#define NET_TLS_INTERNAL
#include "tls.h"
#include "tls_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "log.h"

#define TLS_CONFIRM	"TERNTLS1"
#define TLS_CONFIRM_LEN	8
#define TLS_ALLOW_MAX	64

struct tls_ctx {
	SSL_CTX *ssl;
	char *allow[TLS_ALLOW_MAX];	/* server: accepted client names */
	unsigned nallow;
};

/* One handshake's findings, for the error message. */
struct tls_hs {
	const struct tls_ctx *t;
	bool server;
	const char *host;		/* client: the name we dialled */
	int verr;			/* first X509_V_ERR_* seen, 0 if none */
	bool not_allowed;		/* server: client not in the allow-list */
	char names[256];		/* the failing certificate's names */
	char when[64];			/* its notAfter/notBefore, for expiry */
	bool std;			/* server: no confirmation bytes */
	bool cert_optional;		/* server: a client may send none */
};

/* ---- loading the identity ---- */

static int readable(const char *what, const char *path, struct err *err)
{
	FILE *f;

	if (!path || !*path)
		return err_set(err, -EINVAL, "TLS: %s not given", what);
	f = fopen(path, "r");
	if (!f)
		return err_set(err, -errno, "TLS: cannot read %s %s: %s", what, path,
			       strerror(errno));
	fclose(f);
	return 0;
}

/* Load the key without OpenSSL's own match check (ours names the files). */
static int use_key(SSL_CTX *c, const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	int ret = -EINVAL;

	if (f)
		fclose(f);
	if (k && SSL_CTX_use_PrivateKey(c, k) == 1)
		ret = 0;
	else if (k)
		ret = 1;	/* parsed, but not the certificate's key */
	EVP_PKEY_free(k);
	return ret < 0 ? ret : 0;
}

static int load_files(SSL_CTX *c, const char *cert, const char *key,
		      const char *ca, struct err *err)
{
	if (readable("certificate", cert, err) || readable("key", key, err) ||
	    readable("CA certificate", ca, err))
		return err->code;
	if (SSL_CTX_use_certificate_chain_file(c, cert) != 1)
		return err_set(err, -EINVAL, "TLS: %s is not a PEM certificate", cert);
	if (use_key(c, key))
		return err_set(err, -EINVAL, "TLS: %s is not a PEM private key", key);
	if (SSL_CTX_check_private_key(c) != 1)
		return err_set(err, -EINVAL, "TLS: key %s does not match certificate %s", key, cert);
	if (SSL_CTX_load_verify_locations(c, ca, NULL) != 1)
		return err_set(err, -EINVAL, "TLS: %s holds no PEM CA certificate", ca);
	return 0;
}

/* Our own certificate out of its validity window: say so early. */
static void warn_own_validity(SSL_CTX *c, const char *cert)
{
	X509 *x = SSL_CTX_get0_certificate(c);
	char when[64];

	if (!x)
		return;
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
		tls_asn1_time(X509_get0_notAfter(x), when, sizeof(when));
		log_warn("tls", "our certificate %s expired on %s: peers will refuse it", cert, when);
	} else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
		log_warn("tls", "our certificate %s is not valid yet", cert);
	}
}

static int verify_cb(int ok, X509_STORE_CTX *xs);

struct tls_ctx *tls_ctx_new(const char *cert_path, const char *key_path,
			    const char *ca_path, struct err *err)
{
	struct tls_ctx *t = calloc(1, sizeof(*t));

	if (!t) {
		err_set(err, -ENOMEM, "TLS: out of memory");
		return NULL;
	}
	t->ssl = SSL_CTX_new(TLS_method());
	if (!t->ssl) {
		err_set(err, -ENOMEM, "TLS: cannot create an OpenSSL context");
		goto fail;
	}
	SSL_CTX_set_min_proto_version(t->ssl, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(t->ssl, TLS1_3_VERSION);
	SSL_CTX_set_options(t->ssl, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_num_tickets(t->ssl, 0);	/* no post-handshake messages */
	SSL_CTX_set_session_cache_mode(t->ssl, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify_depth(t->ssl, 4);
	if (load_files(t->ssl, cert_path, key_path, ca_path, err))
		goto fail;
	warn_own_validity(t->ssl, cert_path);
	return t;
fail:
	tls_ctx_free(t);
	return NULL;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < t->nallow; i++)
		free(t->allow[i]);
	SSL_CTX_free(t->ssl);
	free(t);
}

int tls_ctx_allow_peer(struct tls_ctx *t, const char *name, struct err *err)
{
	if (!name || !*name || strlen(name) > 253)
		return err_set(err, -EINVAL, "TLS: bad client name '%s'", name ? name : "");
	if (t->nallow >= TLS_ALLOW_MAX)
		return err_set(err, -E2BIG, "TLS: more than %d allowed clients", TLS_ALLOW_MAX);
	t->allow[t->nallow] = strdup(name);
	if (!t->allow[t->nallow])
		return err_set(err, -ENOMEM, "TLS: out of memory");
	t->nallow++;
	return 0;
}

/* ---- verification ---- */

static bool allowed(const struct tls_ctx *t, X509 *cert)
{
	if (!t->nallow)
		return true;
	for (unsigned i = 0; i < t->nallow; i++)
		if (tls_cert_has_name(cert, t->allow[i]))
			return true;
	return false;
}

static void note_failure(struct tls_hs *h, X509_STORE_CTX *xs, int verr)
{
	X509 *cur = X509_STORE_CTX_get_current_cert(xs);

	h->verr = verr;
	tls_cert_names(cur ? cur : X509_STORE_CTX_get0_cert(xs), h->names, sizeof(h->names));
	if (cur && verr == X509_V_ERR_CERT_HAS_EXPIRED)
		tls_asn1_time(X509_get0_notAfter(cur), h->when, sizeof(h->when));
	else if (cur && verr == X509_V_ERR_CERT_NOT_YET_VALID)
		tls_asn1_time(X509_get0_notBefore(cur), h->when, sizeof(h->when));
}

/* OpenSSL's chain check, plus the allow-list; remembers the first failure. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_hs *h = ssl ? SSL_get_app_data(ssl) : NULL;

	if (!h)
		return ok;
	if (!ok && !h->verr)
		note_failure(h, xs, X509_STORE_CTX_get_error(xs));
	if (ok && h->server && X509_STORE_CTX_get_error_depth(xs) == 0 &&
	    !allowed(h->t, X509_STORE_CTX_get_current_cert(xs))) {
		h->not_allowed = true;
		tls_cert_names(X509_STORE_CTX_get_current_cert(xs), h->names, sizeof(h->names));
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return ok;
}

static int verify_error(const struct tls_hs *h, struct err *err)
{
	switch (h->verr) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return err_set(err, -EKEYEXPIRED, "TLS: certificate expired: '%s' was valid until %s",
			       h->names, h->when);
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return err_set(err, -EKEYEXPIRED, "TLS: certificate not valid yet: '%s' starts %s",
			       h->names, h->when);
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return err_set(err, -EKEYREJECTED, "TLS: certificate is for host '%s', not '%s'",
			       h->names, h->host);
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return err_set(err, -EKEYREJECTED,
			       "TLS: peer certificate not signed by the cluster CA ('%s')", h->names);
	default:
		return err_set(err, -EKEYREJECTED, "TLS: peer certificate '%s' rejected: %s",
			       h->names, X509_verify_cert_error_string(h->verr));
	}
}

/* The peer refused us, or never spoke TLS: from OpenSSL's reason code. */
static int reason_error(int reason, struct err *err)
{
	switch (reason) {
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return err_set(err, -EKEYREJECTED, "TLS: peer sent no certificate");
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return err_set(err, -EKEYREJECTED, "TLS: peer wants a certificate and we sent none");
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		return err_set(err, -EKEYREJECTED,
			       "TLS: peer refused our certificate: not signed by its CA (alert 'unknown ca')");
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
		return err_set(err, -EKEYREJECTED,
			       "TLS: peer refused our certificate: expired (alert 'certificate expired')");
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
		return err_set(err, -EKEYREJECTED,
			       "TLS: peer refused our certificate (wrong name, or not allowed there)");
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_RECORD_LENGTH_MISMATCH:
	case SSL_R_UNEXPECTED_MESSAGE:
	case SSL_R_UNEXPECTED_RECORD:
		return err_set(err, -EPROTO,
			       "TLS: peer does not speak TLS (started without --tls-cert/--tls-key/--tls-ca?)");
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		return err_set(err, -EPROTO, "TLS: peer does not speak TLS 1.3");
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return err_set(err, -ECONNRESET, "TLS: peer closed the connection during the handshake");
	default:
		return err_set(err, -EPROTO, "TLS: handshake failed: %s",
			       ERR_reason_error_string(ERR_PACK(ERR_LIB_SSL, 0, reason)) ?:
			       "unknown error");
	}
}

static int handshake_error(SSL *ssl, int rc, const struct tls_hs *h, struct err *err)
{
	int e = SSL_get_error(ssl, rc);
	unsigned long code = ERR_peek_last_error();

	if (h->not_allowed)
		return err_set(err, -EACCES, "TLS: client '%s' is not allowed here", h->names);
	if (h->verr)
		return verify_error(h, err);
	if (e == SSL_ERROR_SSL && code)
		return reason_error(ERR_GET_REASON(code), err);
	if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !errno))
		return err_set(err, -ECONNRESET, "TLS: peer closed the connection during the handshake");
	if (e == SSL_ERROR_SYSCALL)
		return err_set(err, -errno, "TLS: handshake: %s", strerror(errno));
	return err_set(err, -EPROTO, "TLS: handshake failed (OpenSSL error %d)", e);
}

/* ---- non-blocking I/O with a deadline ---- */

enum tls_op {
	TLS_OP_INVALID = 0,
	TLS_OP_HANDSHAKE,
	TLS_OP_READ,
	TLS_OP_WRITE,
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Run one operation to completion before `deadline` (ms, CLOCK_MONOTONIC).
 * Returns > 0 (bytes or 1) or the OpenSSL return code <= 0; *timed_out.
 */
static int run_op(SSL *ssl, int fd, enum tls_op op, void *buf, int len,
		  uint64_t deadline, bool *timed_out)
{
	for (;;) {
		struct pollfd p = { .fd = fd };
		uint64_t now;
		int rc, e;

		errno = 0;
		rc = op == TLS_OP_HANDSHAKE ? SSL_do_handshake(ssl) :
		     op == TLS_OP_READ ? SSL_read(ssl, buf, len) : SSL_write(ssl, buf, len);
		if (rc > 0)
			return rc;
		e = SSL_get_error(ssl, rc);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return rc;
		p.events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		now = now_ms();
		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) == 0) {
			*timed_out = true;
			return -1;
		}
	}
}

/* Handshake, then the confirmation (server sends it, client waits for it). */
static int handshake(SSL *ssl, int fd, const struct tls_hs *h, int timeout_ms,
		     struct err *err)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	char buf[TLS_CONFIRM_LEN];
	bool timed_out = false;
	int rc, got = 0;

	rc = run_op(ssl, fd, TLS_OP_HANDSHAKE, NULL, 0, deadline, &timed_out);
	if (rc > 0 && h->server && !h->std)
		rc = run_op(ssl, fd, TLS_OP_WRITE, (void *)TLS_CONFIRM, TLS_CONFIRM_LEN,
			    deadline, &timed_out);
	while (rc > 0 && !h->server && got < TLS_CONFIRM_LEN) {
		rc = run_op(ssl, fd, TLS_OP_READ, buf + got, TLS_CONFIRM_LEN - got,
			    deadline, &timed_out);
		got += rc > 0 ? rc : 0;
	}
	if (timed_out)
		return err_set(err, -ETIMEDOUT, "TLS: handshake timed out after %d ms "
			       "(peer silent, or not a TLS endpoint)", timeout_ms);
	if (rc <= 0)
		return handshake_error(ssl, rc, h, err);
	if (!h->server && memcmp(buf, TLS_CONFIRM, TLS_CONFIRM_LEN))
		return err_set(err, -EPROTO, "TLS: peer is not a tern endpoint (bad confirmation)");
	return 0;
}

static void set_host(SSL *ssl, const char *host)
{
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	unsigned char addr[16];

	if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
		X509_VERIFY_PARAM_set1_ip_asc(vp, host);
	} else {
		X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		X509_VERIFY_PARAM_set1_host(vp, host, 0);
		SSL_set_tlsext_host_name(ssl, host);
	}
}

/* The verified client's certificate names, "" when it sent none. */
static void peer_names(SSL *ssl, char *names, size_t len)
{
	X509 *x = SSL_get0_peer_certificate(ssl);

	names[0] = '\0';
	if (x && SSL_get_verify_result(ssl) == X509_V_OK)
		tls_cert_names(x, names, len);
}

static int wrap(struct tls_ctx *t, int fd, const char *host, int timeout_ms,
		struct tls_hs *hs, char *names, size_t len, struct err *err)
{
	struct tls_hs h = { .t = t, .server = !host, .host = host };
	int fl = fcntl(fd, F_GETFL), ret;
	SSL *ssl;

	ERR_clear_error();
	ssl = SSL_new(t->ssl);
	if (!ssl || fl < 0 || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return err_set(err, -ENOMEM, "TLS: cannot set up the connection");
	}
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (hs) {
		h.std = hs->std;
		h.cert_optional = hs->cert_optional;
	}
	SSL_set_app_data(ssl, &h);
	SSL_set_verify(ssl, SSL_VERIFY_PEER | (h.cert_optional ? 0 :
		       SSL_VERIFY_FAIL_IF_NO_PEER_CERT), verify_cb);
	if (host)
		set_host(ssl, host);
	if (host)
		SSL_set_connect_state(ssl);
	else
		SSL_set_accept_state(ssl);
	ret = handshake(ssl, fd, &h, timeout_ms > 0 ? timeout_ms : TLS_HANDSHAKE_TIMEOUT_MS, err);
	SSL_set_app_data(ssl, NULL);
	if (!ret && names)
		peer_names(ssl, names, len);
	if (!ret)
		ret = tls_pump_start(ssl, fd, err);
	if (ret < 0) {
		log_warn("tls", "%s", err && err->code ? err->msg : strerror(-ret));
		SSL_free(ssl);
		fcntl(fd, F_SETFL, fl);
	}
	ERR_clear_error();
	return ret;
}

int tls_wrap_client(struct tls_ctx *t, int fd, const char *host,
		    int timeout_ms, struct err *err)
{
	if (!host || !*host)
		return err_set(err, -EINVAL, "TLS: no host name to check the server against");
	return wrap(t, fd, host, timeout_ms, NULL, NULL, 0, err);
}

int tls_wrap_server(struct tls_ctx *t, int fd, int timeout_ms, struct err *err)
{
	return wrap(t, fd, NULL, timeout_ms, NULL, NULL, 0, err);
}

int tls_wrap_server_std(struct tls_ctx *t, int fd, int timeout_ms,
			bool require_cert, char *names, size_t len,
			struct err *err)
{
	struct tls_hs h = { .std = true, .cert_optional = !require_cert };

	if (names && len)
		names[0] = '\0';
	return wrap(t, fd, NULL, timeout_ms, &h, names, len, err);
}

bool tls_peek_client_hello(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	unsigned char b[3];

	if (poll(&p, 1, timeout_ms) <= 0)
		return false;
	/* handshake record (22), legacy version 3.x */
	return recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT) == (ssize_t)sizeof(b) &&
	       b[0] == 22 && b[1] == 3 && b[2] <= 4;
}
