/*
 * tls_names.c - what a certificate is for, in words: its SAN names for
 * error messages ("certificate is for host 'b', not 'a'"), name checks for
 * the server's optional client allow-list, and times for "expired" errors.
 */
#define NET_TLS_INTERNAL
#include "tls_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/x509v3.h>

/* Append "s" to buf (", " between entries); quietly truncated. */
static void append(char *buf, size_t len, const char *s)
{
	size_t used = strlen(buf);

	if (used + 1 >= len)
		return;
	snprintf(buf + used, len - used, "%s%s", used ? ", " : "", s);
}

static void ip_text(const ASN1_OCTET_STRING *ip, char *out, size_t len)
{
	const unsigned char *p = ASN1_STRING_get0_data(ip);
	int n = ASN1_STRING_length(ip);

	if (n == 4)
		inet_ntop(AF_INET, p, out, (socklen_t)len);
	else if (n == 16)
		inet_ntop(AF_INET6, p, out, (socklen_t)len);
	else
		snprintf(out, len, "?");
}

static void san_names(GENERAL_NAMES *gens, char *buf, size_t len)
{
	char tmp[INET6_ADDRSTRLEN + 1];

	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type == GEN_DNS) {
			const ASN1_IA5STRING *s = g->d.dNSName;
			char dns[256];
			int n = ASN1_STRING_length(s);

			if (n < 0 || n >= (int)sizeof(dns))
				n = sizeof(dns) - 1;
			memcpy(dns, ASN1_STRING_get0_data(s), (size_t)n);
			dns[n] = '\0';
			append(buf, len, dns);
		} else if (g->type == GEN_IPADD) {
			ip_text(g->d.iPAddress, tmp, sizeof(tmp));
			append(buf, len, tmp);
		}
	}
}

void tls_cert_names(X509 *cert, char *buf, size_t len)
{
	GENERAL_NAMES *gens;

	if (!len)
		return;
	buf[0] = '\0';
	if (!cert)
		return;
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (gens) {
		san_names(gens, buf, len);
		GENERAL_NAMES_free(gens);
	}
	if (!buf[0])
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName,
					  buf, (int)len);
	if (!buf[0])
		snprintf(buf, len, "(no name)");
}

bool tls_cert_has_name(X509 *cert, const char *name)
{
	unsigned char addr[16];

	if (!cert || !name || !*name)
		return false;
	if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1)
		return X509_check_ip_asc(cert, name, 0) == 1;
	return X509_check_host(cert, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
			       NULL) == 1;
}

void tls_asn1_time(const ASN1_TIME *t, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n = 0;

	if (len)
		buf[0] = '\0';
	if (!b || !t || !len)
		goto out;
	if (ASN1_TIME_print(b, t) == 1)
		n = BIO_read(b, buf, (int)len - 1);
	buf[n > 0 ? n : 0] = '\0';
out:
	BIO_free(b);
}
