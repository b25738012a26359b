/*
 * test_tls.c - net/: `tern pki` helpers (name and IP checks, CA and host
 * certificates, file modes, refusals) and TLS 1.3 mutual authentication
 * over a socketpair: a good handshake carries data both ways and passes
 * EOF on; every refusal (other CA, wrong host, expired, no client cert,
 * client not allowed, plain peer, silent peer) gives its one-line message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>

#define NET_TLS_INTERNAL
#include "pki.h"
#include "tls.h"
#include "tls_int.h"

static char dir[64], dir2[64];

static void path(char *buf, size_t len, const char *d, const char *file)
{
	snprintf(buf, len, "%s/%s", d, file);
}

static void issue(const char *d, const char *name, const char *ip, unsigned days)
{
	struct pki_issue_opts o = { .name = name, .days = days, .force = true };
	struct err err = { 0 };

	if (ip)
		o.ips[o.nips++] = ip;
	assert_int_equal(pki_issue(d, &o, &err), 0);
}

static int setup(void **state)
{
	struct err err = { 0 };

	strcpy(dir, "/tmp/tern-test-pki-XXXXXX");
	strcpy(dir2, "/tmp/tern-test-pki2-XXXXXX");
	if (!mkdtemp(dir) || !mkdtemp(dir2))
		return -1;
	if (pki_init(dir, "test CA", 10, false, &err) ||
	    pki_init(dir2, "other CA", 10, false, &err))
		return -1;
	issue(dir, "a", "127.0.0.1", 10);
	issue(dir, "b", NULL, 10);
	issue(dir, "old", NULL, 0);
	issue(dir2, "b", NULL, 10);
	return 0;
}

static int teardown(void **state)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir, dir2);
	return system(cmd) ? -1 : 0;
}

static struct tls_ctx *ctx_for(const char *d, const char *name)
{
	char c[128], k[128], ca[128], f[64];
	struct err err = { 0 };
	struct tls_ctx *t;

	snprintf(f, sizeof(f), "%s.pem", name);
	path(c, sizeof(c), d, f);
	snprintf(f, sizeof(f), "%s-key.pem", name);
	path(k, sizeof(k), d, f);
	path(ca, sizeof(ca), dir, "ca.pem");	/* always trust the cluster CA */
	t = tls_ctx_new(c, k, ca, &err);
	assert_non_null(t);
	return t;
}

/* ---- pki ---- */

static void test_name_valid(void **state)
{
	static const char *const good[] = { "a", "host-1", "h.example.com", "A1", "x.y-z.q" };
	static const char *const bad[] = { "", "-a", "a-", "a..b", ".a", "a.", "a/b", "a b",
					   "a_b", "ca/../x" };

	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		assert_true(pki_name_valid(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_false(pki_name_valid(bad[i]));
	assert_false(pki_name_valid(NULL));
	char longlabel[70];

	memset(longlabel, 'a', 64);
	longlabel[64] = '\0';
	assert_false(pki_name_valid(longlabel));
	longlabel[63] = '\0';
	assert_true(pki_name_valid(longlabel));
}

static void test_ip_valid(void **state)
{
	assert_true(pki_ip_valid("10.0.0.1"));
	assert_true(pki_ip_valid("::1"));
	assert_true(pki_ip_valid("fe80::1:2"));
	assert_false(pki_ip_valid("10.0.0"));
	assert_false(pki_ip_valid("10.0.0.256"));
	assert_false(pki_ip_valid("host"));
	assert_false(pki_ip_valid(""));
	assert_false(pki_ip_valid(NULL));
}

static void test_files_and_modes(void **state)
{
	char p[128];
	struct stat st;

	path(p, sizeof(p), dir, "ca-key.pem");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	path(p, sizeof(p), dir, "a-key.pem");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	path(p, sizeof(p), dir, "a.pem");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
}

static X509 *load(const char *d, const char *file)
{
	char p[128];
	FILE *f;
	X509 *x;

	path(p, sizeof(p), d, file);
	f = fopen(p, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static void test_cert_names(void **state)
{
	struct pki_issue_opts o = { .name = "multi", .days = 1, .force = true };
	struct err err = { 0 };
	char names[256];
	X509 *x;

	o.dns[o.ndns++] = "m.example";
	o.ips[o.nips++] = "10.1.2.3";
	o.ips[o.nips++] = "::1";
	assert_int_equal(pki_issue(dir, &o, &err), 0);
	x = load(dir, "multi.pem");
	tls_cert_names(x, names, sizeof(names));
	assert_string_equal(names, "multi, m.example, 10.1.2.3, ::1");
	assert_true(tls_cert_has_name(x, "multi"));
	assert_true(tls_cert_has_name(x, "m.example"));
	assert_true(tls_cert_has_name(x, "10.1.2.3"));
	assert_true(tls_cert_has_name(x, "::1"));
	assert_false(tls_cert_has_name(x, "other"));
	assert_false(tls_cert_has_name(x, "10.1.2.4"));
	assert_false(tls_cert_has_name(x, ""));
	X509_free(x);
	x = load(dir, "ca.pem");	/* no SAN: falls back to the CN */
	tls_cert_names(x, names, sizeof(names));
	assert_string_equal(names, "test CA");
	X509_free(x);
}

static void test_pki_refusals(void **state)
{
	struct pki_issue_opts o = { .name = "a", .days = 1 };
	struct err err = { 0 };
	char nodir[96];

	assert_int_equal(pki_init(dir, "x", 1, false, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "refusing to overwrite"));
	err_clear(&err);
	assert_int_equal(pki_issue(dir, &o, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "a.pem exists"));
	err_clear(&err);
	o.name = "bad name";
	assert_int_equal(pki_issue(dir, &o, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a valid host name"));
	err_clear(&err);
	o.name = "ok";
	o.ips[o.nips++] = "300.1.1.1";
	assert_int_equal(pki_issue(dir, &o, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--ip: '300.1.1.1'"));
	err_clear(&err);
	o.nips = 0;
	snprintf(nodir, sizeof(nodir), "%s/none", dir);
	assert_int_equal(pki_issue(nodir, &o, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "tern pki init"));
	err_clear(&err);
	o.name = "ca";
	assert_int_equal(pki_issue(dir, &o, &err), -EINVAL);
	err_clear(&err);
	assert_int_equal(pki_init(nodir, "x", 0, false, &err), -EINVAL);
}

static void test_ctx_errors(void **state)
{
	char c[128], k[128], ca[128];
	struct err err = { 0 };

	path(c, sizeof(c), dir, "a.pem");
	path(k, sizeof(k), dir, "b-key.pem");
	path(ca, sizeof(ca), dir, "ca.pem");
	assert_null(tls_ctx_new(c, k, ca, &err));
	assert_non_null(strstr(err.msg, "does not match"));
	err_clear(&err);
	assert_null(tls_ctx_new(c, c, ca, &err));
	assert_non_null(strstr(err.msg, "is not a PEM private key"));
	err_clear(&err);
	assert_null(tls_ctx_new(c, k, "/nonexistent/ca.pem", &err));
	assert_non_null(strstr(err.msg, "cannot read CA certificate"));
}

/* ---- handshakes over a socketpair ---- */

struct side {
	struct tls_ctx *t;
	int fd;
	const char *host;	/* client: name dialled; NULL: server */
	int timeout_ms;
	int ret;
	struct err err;
};

static void *run_side(void *arg)
{
	struct side *s = arg;

	s->ret = s->host ? tls_wrap_client(s->t, s->fd, s->host, s->timeout_ms, &s->err) :
			   tls_wrap_server(s->t, s->fd, s->timeout_ms, &s->err);
	if (s->ret < 0)
		close(s->fd);
	return NULL;
}

static void handshake(struct side *cl, struct side *sv)
{
	int sp[2];
	pthread_t th;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	cl->fd = sp[0];
	sv->fd = sp[1];
	assert_int_equal(pthread_create(&th, NULL, run_side, sv), 0);
	run_side(cl);
	pthread_join(th, NULL);
}

static void wait_pumps_gone(void)
{
	for (int i = 0; i < 500 && tls_pumps_live(); i++)
		usleep(10000);
	assert_int_equal(tls_pumps_live(), 0);
}

static void copy_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

static void *writer(void *arg)
{
	struct side *s = arg;
	uint8_t *buf = malloc(1 << 20);

	for (size_t i = 0; i < 1 << 20; i++)
		buf[i] = (uint8_t)(i * 7);
	copy_all(s->ret, buf, 1 << 20);
	shutdown(s->ret, SHUT_WR);
	free(buf);
	return NULL;
}

static void test_good_handshake(void **state)
{
	struct side cl = { .t = ctx_for(dir, "a"), .host = "b" }, sv = { .t = ctx_for(dir, "b") };
	size_t got = 0;
	uint8_t buf[65536];
	pthread_t th;
	bool same = true;

	handshake(&cl, &sv);
	assert_true(cl.ret >= 0);
	assert_true(sv.ret >= 0);
	/* 1 MiB client -> server while the server says hello the other way */
	assert_int_equal(pthread_create(&th, NULL, writer, &cl), 0);
	assert_int_equal(write(sv.ret, "hello", 5), 5);
	for (;;) {
		ssize_t n = read(sv.ret, buf, sizeof(buf));

		assert_true(n >= 0);
		if (!n)
			break;
		for (ssize_t i = 0; i < n; i++)
			same &= buf[i] == (uint8_t)((got + (size_t)i) * 7);
		got += (size_t)n;
	}
	pthread_join(th, NULL);
	assert_int_equal(got, 1 << 20);
	assert_true(same);
	assert_int_equal(read(cl.ret, buf, 5), 5);
	assert_memory_equal(buf, "hello", 5);
	close(sv.ret);			/* the client then reads EOF */
	assert_int_equal(read(cl.ret, buf, 1), 0);
	close(cl.ret);
	wait_pumps_gone();
	tls_ctx_free(cl.t);
	tls_ctx_free(sv.t);
}

/* A refused handshake: both sides fail, each with its message. */
static void refused(const char *cdir, const char *cname, const char *host,
		    const char *sdir, const char *sname, const char *allow,
		    const char *client_msg, const char *server_msg)
{
	struct side cl = { .t = ctx_for(cdir, cname), .host = host },
		    sv = { .t = ctx_for(sdir, sname) };
	struct err err = { 0 };

	if (allow)
		assert_int_equal(tls_ctx_allow_peer(sv.t, allow, &err), 0);
	handshake(&cl, &sv);
	assert_true(cl.ret < 0);
	assert_true(sv.ret < 0);
	if (!strstr(cl.err.msg, client_msg) || !strstr(sv.err.msg, server_msg))
		fail_msg("client: %s | server: %s", cl.err.msg, sv.err.msg);
	assert_int_equal(tls_pumps_live(), 0);
	tls_ctx_free(cl.t);
	tls_ctx_free(sv.t);
}

static void test_other_ca(void **state)
{
	refused(dir, "a", "b", dir2, "b", NULL,
		"TLS: peer certificate not signed by the cluster CA ('b')",
		"TLS: peer refused our certificate: not signed by its CA");
	/* and the other way round: the client's certificate is the stranger */
	refused(dir2, "b", "a", dir, "a", NULL, "TLS: peer refused our certificate",
		"TLS: peer certificate not signed by the cluster CA ('b')");
}

static void test_wrong_host(void **state)
{
	refused(dir, "a", "c", dir, "b", NULL, "TLS: certificate is for host 'b', not 'c'",
		"TLS: peer refused our certificate");
	refused(dir, "b", "127.0.0.2", dir, "a", NULL,
		"TLS: certificate is for host 'a, 127.0.0.1', not '127.0.0.2'",
		"TLS: peer refused our certificate");
}

static void test_expired(void **state)
{
	refused(dir, "a", "old", dir, "old", NULL, "TLS: certificate expired: 'old' was valid until",
		"TLS: peer refused our certificate: expired");
	refused(dir, "old", "b", dir, "b", NULL, "TLS: peer refused our certificate: expired",
		"TLS: certificate expired: 'old'");
}

static void test_not_allowed(void **state)
{
	refused(dir, "a", "b", dir, "b", "somebody",
		"TLS: peer refused our certificate", "TLS: client 'a, 127.0.0.1' is not allowed here");
}

static void *raw_client(void *arg)
{
	struct side *s = arg;
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(c);
	char b[8];

	SSL_set_fd(ssl, s->fd);
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	s->ret = SSL_connect(ssl);
	if (s->ret == 1)
		s->ret = SSL_read(ssl, b, sizeof(b));	/* gets the alert */
	SSL_free(ssl);
	SSL_CTX_free(c);
	close(s->fd);
	return NULL;
}

static void test_no_client_cert(void **state)
{
	struct side cl = { 0 }, sv = { .t = ctx_for(dir, "b") };
	int sp[2];
	pthread_t th;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	cl.fd = sp[0];
	sv.fd = sp[1];
	assert_int_equal(pthread_create(&th, NULL, raw_client, &cl), 0);
	run_side(&sv);
	pthread_join(th, NULL);
	assert_true(sv.ret < 0);
	assert_string_equal(sv.err.msg, "TLS: peer sent no certificate");
	assert_true(cl.ret <= 0);
	tls_ctx_free(sv.t);
}

static void test_plain_peers(void **state)
{
	struct side cl = { .t = ctx_for(dir, "a"), .host = "b" }, sv = { .t = ctx_for(dir, "b") };
	static const char stream[] = "TERNMIG\n\1\0\0\0plain stream header.....";
	char reply[64] = { 0 };
	int sp[2];

	/* a plain source talks to a TLS server */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_int_equal(write(sp[0], stream, sizeof(stream)), (ssize_t)sizeof(stream));
	sv.fd = sp[1];
	run_side(&sv);
	assert_true(sv.ret < 0);
	assert_non_null(strstr(sv.err.msg, "TLS: peer does not speak TLS"));
	close(sp[0]);
	/* a TLS client talks to a plain server, which peeks and answers */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	cl.fd = sp[0];
	/* what a plain tern destination answers: a control ERROR record */
	assert_int_equal(write(sp[1], "\x04\x03\0\0\0\0\0\0\x10\0\0\0\0\0\0\0not TLS, sorry..", 32), 32);
	run_side(&cl);
	assert_true(cl.ret < 0);
	assert_non_null(strstr(cl.err.msg, "TLS: peer does not speak TLS"));
	assert_true(tls_peek_client_hello(sp[1], 1000));
	assert_true(read(sp[1], reply, sizeof(reply)) > 0);	/* peek consumed nothing */
	assert_int_equal(reply[0], 22);
	close(sp[1]);
	tls_ctx_free(cl.t);
	tls_ctx_free(sv.t);
}

static void test_silent_peer(void **state)
{
	struct side cl = { .t = ctx_for(dir, "a"), .host = "b", .timeout_ms = 200 },
		    sv = { .t = ctx_for(dir, "b"), .timeout_ms = 200 };
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	cl.fd = sp[0];
	run_side(&cl);
	assert_true(cl.ret < 0);
	assert_int_equal(cl.err.code, -ETIMEDOUT);
	assert_non_null(strstr(cl.err.msg, "TLS: handshake timed out after 200 ms"));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	sv.fd = sp[0];
	run_side(&sv);		/* a client that connects and says nothing */
	assert_int_equal(sv.err.code, -ETIMEDOUT);
	assert_false(tls_peek_client_hello(sp[1], 0));
	close(sp[1]);
	tls_ctx_free(cl.t);
	tls_ctx_free(sv.t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_ip_valid),
		cmocka_unit_test(test_files_and_modes),
		cmocka_unit_test(test_cert_names),
		cmocka_unit_test(test_pki_refusals),
		cmocka_unit_test(test_ctx_errors),
		cmocka_unit_test(test_good_handshake),
		cmocka_unit_test(test_other_ca),
		cmocka_unit_test(test_wrong_host),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_not_allowed),
		cmocka_unit_test(test_no_client_cert),
		cmocka_unit_test(test_plain_peers),
		cmocka_unit_test(test_silent_peer),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("net-tls", tests, setup, teardown);
}
