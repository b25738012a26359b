/*
 * pki.c - `tern pki` with OpenSSL's C API (EVP, X509): an EC P-256 CA
 * (self-signed, CA:TRUE, pathlen 0, keyCertSign) and host certificates
 * (CA:FALSE, digitalSignature + keyEncipherment, serverAuth + clientAuth,
 * SAN = DNS:NAME plus the given DNS names and IPs). keyEncipherment and
 * both extended usages keep the files usable by QEMU/GnuTLS too.
 * Validity starts an hour back (clock skew between hosts).
 */
#include "pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define BACKDATE_S	3600L

bool pki_name_valid(const char *name)
{
	size_t len = name ? strlen(name) : 0, label = 0;

	if (!len || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = name[i];

		if (c == '.' || c == '\0') {
			if (!label || name[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || (c == '-' && label);

		if (!ok || ++label > 63)
			return false;
	}
	return true;
}

bool pki_ip_valid(const char *ip)
{
	unsigned char b[16];

	return ip && (inet_pton(AF_INET, ip, b) == 1 || inet_pton(AF_INET6, ip, b) == 1);
}

/* ---- files ---- */

static int path_of(char *buf, size_t len, const char *dir, const char *name,
		   const char *suffix, struct err *err)
{
	int n = snprintf(buf, len, "%s/%s%s", dir, name, suffix);

	if (n < 0 || (size_t)n >= len)
		return err_set(err, -ENAMETOOLONG, "path %s/%s%s is too long", dir, name, suffix);
	return 0;
}

static int refuse_existing(const char *path, bool force, struct err *err)
{
	if (!force && access(path, F_OK) == 0)
		return err_set(err, -EEXIST, "%s exists: refusing to overwrite it (use --force)",
			       path);
	return 0;
}

static int make_dir(const char *dir, struct err *err)
{
	char tmp[PATH_MAX];
	size_t len = strlen(dir);

	if (!len || len >= sizeof(tmp))
		return err_set(err, -EINVAL, "bad PKI directory '%s'", dir);
	memcpy(tmp, dir, len + 1);
	for (char *p = tmp + 1; ; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return err_set(err, -errno, "cannot create %s: %s", tmp, strerror(errno));
		if (!c)
			return 0;
		*p = c;
	}
}

/* Write a PEM file through a fresh fd of the given mode. */
static int write_pem(const char *path, mode_t mode, bool force, EVP_PKEY *key,
		     X509 *cert, struct err *err)
{
	int fd, ok;
	FILE *f;

	if (force)
		unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return err_set(err, -errno, "cannot create %s: %s", path, strerror(errno));
	fchmod(fd, mode);		/* whatever the umask */
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return err_set(err, -ENOMEM, "cannot write %s", path);
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) :
		   PEM_write_X509(f, cert);
	if (fclose(f) || !ok)
		return err_set(err, -EIO, "cannot write %s", path);
	return 0;
}

static EVP_PKEY *read_key(const char *path, struct err *err)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (!f) {
		err_set(err, -errno, "CA key %s: %s (run 'tern pki init' first)", path,
			strerror(errno));
		return NULL;
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!k)
		err_set(err, -EINVAL, "%s is not a PEM private key", path);
	return k;
}

static X509 *read_cert(const char *path, struct err *err)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (!f) {
		err_set(err, -errno, "CA certificate %s: %s (run 'tern pki init' first)", path,
			strerror(errno));
		return NULL;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		err_set(err, -EINVAL, "%s is not a PEM certificate", path);
	return x;
}

/* ---- certificates ---- */

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -ENOMEM;
}

static int random_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -EIO;
	b[0] &= 0x7f;			/* positive */
	b[0] |= 0x01;			/* and 16 bytes long */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	return ok ? 0 : -ENOMEM;
}

/* A certificate for `key`, subject CN=cn, valid `days` (0: expired). */
static X509 *new_cert(EVP_PKEY *key, const char *cn, unsigned days)
{
	X509 *x = X509_new();
	long after = days ? (long)days * 86400L : -60L;

	if (!x || X509_set_version(x, 2) != 1 || random_serial(x) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), after) ||
	    X509_set_pubkey(x, key) != 1 ||
	    !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0)) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int ca_extensions(X509 *x)
{
	if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    add_ext(x, x, NID_subject_key_identifier, "hash") ||
	    add_ext(x, x, NID_authority_key_identifier, "keyid:always"))
		return -EINVAL;
	return 0;
}

/* "DNS:name,DNS:a,IP:10.0.0.1" */
static int san_value(const struct pki_issue_opts *o, char *buf, size_t len)
{
	size_t used = 0;
	int n = snprintf(buf, len, "DNS:%s", o->name);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	used = (size_t)n;
	for (size_t i = 0; i < o->ndns + o->nips; i++) {
		bool dns = i < o->ndns;

		n = snprintf(buf + used, len - used, ",%s:%s", dns ? "DNS" : "IP",
			     dns ? o->dns[i] : o->ips[i - o->ndns]);
		if (n < 0 || (size_t)n >= len - used)
			return -ENAMETOOLONG;
		used += (size_t)n;
	}
	return 0;
}

static int host_extensions(X509 *x, X509 *ca, const struct pki_issue_opts *o)
{
	char san[PKI_MAX_SAN * 2 * 270];

	if (san_value(o, san, sizeof(san)))
		return -ENAMETOOLONG;
	if (add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(x, ca, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
	    add_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    add_ext(x, ca, NID_subject_key_identifier, "hash") ||
	    add_ext(x, ca, NID_authority_key_identifier, "keyid:always") ||
	    add_ext(x, ca, NID_subject_alt_name, san))
		return -EINVAL;
	return 0;
}

int pki_init(const char *dir, const char *cn, unsigned days, bool force,
	     struct err *err)
{
	char cert_path[PATH_MAX], key_path[PATH_MAX];
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	int ret;

	if (!cn || !*cn || strlen(cn) > 64)
		return err_set(err, -EINVAL, "CA name must be 1-64 characters");
	if (!days || days > PKI_MAX_DAYS)
		return err_set(err, -EINVAL, "--days must be 1-%d for a CA", PKI_MAX_DAYS);
	if ((ret = path_of(cert_path, sizeof(cert_path), dir, "ca", ".pem", err)) ||
	    (ret = path_of(key_path, sizeof(key_path), dir, "ca", "-key.pem", err)) ||
	    (ret = refuse_existing(cert_path, force, err)) ||
	    (ret = refuse_existing(key_path, force, err)) || (ret = make_dir(dir, err)))
		return ret;
	key = EVP_EC_gen("P-256");
	x = key ? new_cert(key, cn, days) : NULL;
	if (!x || X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    ca_extensions(x) || !X509_sign(x, key, EVP_sha256())) {
		ret = err_set(err, -EIO, "cannot make the CA certificate");
		goto out;
	}
	ret = write_pem(key_path, 0600, force, key, NULL, err);
	if (!ret)
		ret = write_pem(cert_path, 0644, force, NULL, x, err);
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return ret;
}

static int check_issue_opts(const struct pki_issue_opts *o, struct err *err)
{
	if (!pki_name_valid(o->name))
		return err_set(err, -EINVAL, "'%s' is not a valid host name (letters, digits, "
			       "'-' and '.', labels of 1-63)", o->name ? o->name : "");
	for (size_t i = 0; i < o->ndns && i < PKI_MAX_SAN; i++)
		if (!pki_name_valid(o->dns[i]))
			return err_set(err, -EINVAL, "--dns: '%s' is not a valid host name",
				       o->dns[i]);
	for (size_t i = 0; i < o->nips && i < PKI_MAX_SAN; i++)
		if (!pki_ip_valid(o->ips[i]))
			return err_set(err, -EINVAL, "--ip: '%s' is not an IPv4 or IPv6 address",
				       o->ips[i]);
	if (o->ndns > PKI_MAX_SAN || o->nips > PKI_MAX_SAN)
		return err_set(err, -E2BIG, "at most %d --dns and %d --ip", PKI_MAX_SAN,
			       PKI_MAX_SAN);
	if (o->days > PKI_MAX_DAYS)
		return err_set(err, -EINVAL, "--days must be 0-%d", PKI_MAX_DAYS);
	return 0;
}

/* The CA's key and certificate from `dir`, checked to belong together. */
static int load_ca(const char *dir, EVP_PKEY **key, X509 **cert, struct err *err)
{
	char path[PATH_MAX];
	int ret = path_of(path, sizeof(path), dir, "ca", "-key.pem", err);

	if (ret)
		return ret;
	*key = read_key(path, err);
	if (!*key)
		return -ENOENT;
	ret = path_of(path, sizeof(path), dir, "ca", ".pem", err);
	*cert = ret ? NULL : read_cert(path, err);
	if (!*cert)
		ret = ret ? ret : -ENOENT;
	else if (X509_check_private_key(*cert, *key) != 1)
		ret = err_set(err, -EINVAL, "%s/ca-key.pem does not match %s/ca.pem", dir, dir);
	if (ret) {
		X509_free(*cert);
		EVP_PKEY_free(*key);
		*cert = NULL;
		*key = NULL;
	}
	return ret;
}

static int sign_host(const char *dir, const struct pki_issue_opts *o, EVP_PKEY *key,
		     X509 **out, struct err *err)
{
	EVP_PKEY *ca_key;
	X509 *ca, *x;
	int ret = load_ca(dir, &ca_key, &ca, err);

	if (ret)
		return ret;
	x = new_cert(key, o->name, o->days);
	if (!x || X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1 ||
	    host_extensions(x, ca, o) || !X509_sign(x, ca_key, EVP_sha256())) {
		ret = err_set(err, -EIO, "cannot make the certificate for '%s'", o->name);
		X509_free(x);
		x = NULL;
	}
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	*out = x;
	return ret;
}

int pki_issue(const char *dir, const struct pki_issue_opts *o, struct err *err)
{
	char cert_path[PATH_MAX], key_path[PATH_MAX];
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	int ret;

	if ((ret = check_issue_opts(o, err)))
		return ret;
	if (!strcmp(o->name, "ca"))
		return err_set(err, -EINVAL, "'ca' is the CA's own name: pick another host name");
	if ((ret = path_of(cert_path, sizeof(cert_path), dir, o->name, ".pem", err)) ||
	    (ret = path_of(key_path, sizeof(key_path), dir, o->name, "-key.pem", err)) ||
	    (ret = refuse_existing(cert_path, o->force, err)) ||
	    (ret = refuse_existing(key_path, o->force, err)))
		return ret;
	key = EVP_EC_gen("P-256");
	if (!key)
		return err_set(err, -EIO, "cannot make an EC P-256 key");
	ret = sign_host(dir, o, key, &x, err);
	if (!ret)
		ret = write_pem(key_path, 0600, o->force, key, NULL, err);
	if (!ret)
		ret = write_pem(cert_path, 0644, o->force, NULL, x, err);
	X509_free(x);
	EVP_PKEY_free(key);
	return ret;
}
