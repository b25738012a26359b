/*
 * client.c - blocking HTTP client over a unix socket (libcurl easy API).
 *
 * One request per call and one connection per request: the callers (the
 * CLI, the host daemon polling its VMMs) are not latency-bound, and this
 * keeps every call independent of the last one. The reply is capped at
 * API_CLIENT_REPLY_MAX and always NUL-terminated for the JSON parser.
 */
#include "client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

struct api_client_buf {
	char *data;
	size_t len;
	bool too_big;
};

static pthread_once_t api_client_once = PTHREAD_ONCE_INIT;
static CURLcode api_client_init_ret;

static void api_client_global_init(void)
{
	api_client_init_ret = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t api_client_write(char *ptr, size_t size, size_t nmemb,
			       void *opaque)
{
	struct api_client_buf *b = opaque;
	size_t n = size * nmemb;	/* curl guarantees size == 1 */
	char *p;

	if (n > API_CLIENT_REPLY_MAX - b->len) {
		b->too_big = true;
		return 0;		/* aborts the transfer */
	}
	p = realloc(b->data, b->len + n + 1);
	if (!p)
		return 0;
	memcpy(p + b->len, ptr, n);
	b->len += n;
	p[b->len] = '\0';
	b->data = p;
	return n;
}

/* Method and path end up in the request line: keep them to plain tokens. */
static bool api_client_is_url(const char *target)
{
	return target && (!strncmp(target, "http://", 7) ||
			  !strncmp(target, "https://", 8));
}

static bool api_client_is_https(const char *target)
{
	return target && !strncmp(target, "https://", 8);
}

static int api_client_check(const char *sock_path, const char *method,
			    const char *path, struct err *err)
{
	if (api_client_is_url(sock_path)) {
		if (strlen(sock_path) > 256 ||
		    strpbrk(sock_path + (api_client_is_https(sock_path) ? 8 : 7),
			    "/?# \"\r\n@"))
			return err_set(err, -EINVAL,
				       "bad server URL (want http(s)://HOST:PORT): %.64s",
				       sock_path);
	} else if (!sock_path || !*sock_path ||
	    strlen(sock_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return err_set(err, -ENAMETOOLONG,
			       "API socket path is empty or too long");
	if (!method || !*method || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
				   != strlen(method))
		return err_set(err, -EINVAL, "bad HTTP method");
	if (!path || path[0] != '/')
		return err_set(err, -EINVAL, "API path must start with '/'");
	for (const char *p = path; *p; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return err_set(err, -EINVAL, "bad character in API path");
	return 0;
}

static bool has(const char *s, const char *what)
{
	return strstr(s, what) != NULL;
}

/* One line naming the TLS problem, from libcurl's (OpenSSL's) message. */
static int api_client_tls_error(CURLcode rc, const char *url,
				const char *errbuf, struct err *err)
{
	const char *m = errbuf[0] ? errbuf : curl_easy_strerror(rc);

	if (has(m, "subject name") || has(m, "does not match") || has(m, "IP address mismatch"))
		return err_set(err, -EKEYREJECTED,
			       "TLS: server certificate is not for the host in %s: %s", url, m);
	if (has(m, "self-signed") || has(m, "self signed") || has(m, "local issuer") ||
	    has(m, "unable to get issuer") || has(m, "certificate signature failure"))
		return err_set(err, -EKEYREJECTED,
			       "TLS: server certificate not signed by the cluster CA (%s)", m);
	if (has(m, "expired") && rc == CURLE_PEER_FAILED_VERIFICATION)
		return err_set(err, -EKEYEXPIRED, "TLS: server certificate expired (%s)", m);
	if (has(m, "unknown ca") || has(m, "bad certificate") || has(m, "certificate required") ||
	    has(m, "certificate unknown") || has(m, "certificate expired") ||
	    has(m, "access denied"))
		return err_set(err, -EKEYREJECTED,
			       "TLS: the server refused our certificate (%s)", m);
	if (has(m, "wrong version number") || has(m, "packet length too long") ||
	    has(m, "record layer failure"))
		return err_set(err, -EPROTO, "TLS: %s does not speak TLS (plain HTTP?): %s",
			       url, m);
	if (has(m, "getpeername") || has(m, "reset by peer") || has(m, "unexpected eof"))
		return err_set(err, -ECONNRESET,
			       "TLS: %s closed the connection after the handshake: did it refuse our certificate? (%s)",
			       url, m);
	if (rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM)
		return err_set(err, -EINVAL, "TLS: cannot use our CA or certificate files: %s", m);
	return err_set(err, -EPROTO, "TLS: request to %s failed: %s", url, m);
}

static int api_client_error(CURL *curl, CURLcode rc, const char *sock_path,
			    const struct api_client_buf *b, const char *errbuf,
			    struct err *err)
{
	long os_errno = 0;

	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
		if (!os_errno)
			os_errno = ECONNREFUSED;
		if (api_client_is_url(sock_path))
			return err_set(err, -(int)os_errno,
				       "cannot connect to %s: %s", sock_path,
				       strerror((int)os_errno));
		return err_set(err, -(int)os_errno,
			       "cannot connect to %s: %s \xe2\x80\x94 is tern-vmm running with --api %s?",
			       sock_path, strerror((int)os_errno), sock_path);
	case CURLE_OPERATION_TIMEDOUT:
		return err_set(err, -ETIMEDOUT, "no reply from %s within %d s",
			       sock_path, API_CLIENT_TIMEOUT_S);
	case CURLE_WRITE_ERROR:
		if (b->too_big)
			return err_set(err, -EMSGSIZE,
				       "reply from %s is larger than %d bytes",
				       sock_path, API_CLIENT_REPLY_MAX);
		return err_set(err, -ENOMEM, "out of memory reading the reply");
	case CURLE_GOT_NOTHING:
		return err_set(err, -ECONNRESET,
			       "%s closed the connection without replying%s",
			       sock_path, api_client_is_https(sock_path) ?
			       " (TLS: did it refuse our certificate? see its log)" :
			       " (does it serve HTTPS only?)");
	default:
		if (api_client_is_https(sock_path))
			return api_client_tls_error(rc, sock_path, errbuf, err);
		return err_set(err, -EIO, "request to %s failed: %s", sock_path,
			       errbuf[0] ? errbuf : curl_easy_strerror(rc));
	}
}

static int api_client_setup(CURL *curl, const char *sock_path,
			    const char *method, const char *url,
			    const char *body, struct curl_slist *hdrs,
			    struct api_client_buf *b, char *errbuf)
{
	CURLcode rc = CURLE_OK;

#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(curl, opt, val); } while (0)
	if (!api_client_is_url(sock_path))
		SET(CURLOPT_UNIX_SOCKET_PATH, sock_path);
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROXY, "");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT, (long)API_CLIENT_TIMEOUT_S);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_WRITEFUNCTION, api_client_write);
	SET(CURLOPT_WRITEDATA, b);
	SET(CURLOPT_HTTPHEADER, hdrs);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	/* Anything but a bare GET sends a body (maybe empty) like a POST. */
	bool has_body = body || strcmp(method, "GET");

	if (has_body) {
		SET(CURLOPT_POSTFIELDS, body ? body : "");
		SET(CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(body ? strlen(body) : 0));
	}
	if (strcmp(method, has_body ? "POST" : "GET"))
		SET(CURLOPT_CUSTOMREQUEST, method);
#undef SET
	return rc == CURLE_OK ? 0 : -EINVAL;
}

/*
 * No "Expect: 100-continue" round trip; JSON bodies are labelled; a token
 * goes as "Authorization: Bearer TOKEN".
 */
static struct curl_slist *api_client_headers(bool json_body, const char *token)
{
	struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:"), *h;
	char auth[320];

	if (hdrs && token && *token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(hdrs, auth);
		if (!h)
			curl_slist_free_all(hdrs);
		hdrs = h;
	}
	if (!hdrs || !json_body)
		return hdrs;
	h = curl_slist_append(hdrs, "Content-Type: application/json");
	if (!h)
		curl_slist_free_all(hdrs);
	return h;
}

int api_client_call(const char *sock_path, const char *method,
		    const char *path, const char *body, long *http_status,
		    char **resp_body, struct err *err)
{
	return api_client_request(sock_path, NULL, method, path, body,
				  http_status, resp_body, err);
}

/* https:// only: verify the server (chain + name), maybe present ours. */
static int api_client_setup_tls(CURL *curl, const char *target,
				const struct api_client_tls *tls,
				struct err *err)
{
	CURLcode rc = CURLE_OK;

	if (!api_client_is_https(target))
		return 0;
	if (!tls || !tls->ca || !*tls->ca)
		return err_set(err, -EINVAL,
			       "TLS: %s needs the cluster CA (--tls-ca FILE or $TERN_TLS_CA)",
			       target);
	if (!tls->cert != !tls->key)
		return err_set(err, -EINVAL,
			       "TLS: a client certificate needs both --tls-cert and --tls-key");
#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(curl, opt, val); } while (0)
	SET(CURLOPT_CAINFO, tls->ca);
	SET(CURLOPT_CAPATH, NULL);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
	if (tls->cert) {
		SET(CURLOPT_SSLCERT, tls->cert);
		SET(CURLOPT_SSLCERTTYPE, "PEM");
		SET(CURLOPT_SSLKEY, tls->key);
		SET(CURLOPT_SSLKEYTYPE, "PEM");
	}
#undef SET
	return rc == CURLE_OK ? 0 :
	       err_set(err, -EINVAL, "TLS: libcurl refused the TLS settings: %s",
		       curl_easy_strerror(rc));
}

int api_client_request(const char *sock_path, const char *token,
		       const char *method, const char *path, const char *body,
		       long *http_status, char **resp_body, struct err *err)
{
	return api_client_request_tls(sock_path, token, NULL, method, path,
				      body, http_status, resp_body, err);
}

int api_client_request_tls(const char *sock_path, const char *token,
			   const struct api_client_tls *tls,
			   const char *method, const char *path,
			   const char *body, long *http_status,
			   char **resp_body, struct err *err)
{
	struct api_client_buf b = { 0 };
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	char url[1024];
	CURL *curl;
	CURLcode rc;
	int ret;

	*http_status = 0;
	if (resp_body)
		*resp_body = NULL;
	ret = api_client_check(sock_path, method, path, err);
	if (ret)
		return ret;
	if (token && (strlen(token) > 256 || strpbrk(token, " \r\n")))
		return err_set(err, -EINVAL, "bad API token");
	if (snprintf(url, sizeof(url), "%s%s",
		     api_client_is_url(sock_path) ? sock_path : "http://localhost",
		     path) >=
	    (int)sizeof(url))
		return err_set(err, -ENAMETOOLONG, "API path too long");
	pthread_once(&api_client_once, api_client_global_init);
	if (api_client_init_ret != CURLE_OK)
		return err_set(err, -EIO, "libcurl initialisation failed");
	curl = curl_easy_init();
	if (!curl)
		return err_set(err, -ENOMEM, "libcurl: out of memory");
	hdrs = api_client_headers(body != NULL, token);
	if (!hdrs) {
		ret = err_set(err, -ENOMEM, "libcurl: out of memory");
		goto out;
	}
	ret = api_client_setup(curl, sock_path, method, url, body, hdrs, &b,
			       errbuf);
	if (ret) {
		err_set(err, ret, "libcurl: cannot set up the request");
		goto out;
	}
	ret = api_client_setup_tls(curl, sock_path, tls, err);
	if (ret)
		goto out;
	rc = curl_easy_perform(curl);
	if (rc != CURLE_OK) {
		ret = api_client_error(curl, rc, sock_path, &b, errbuf, err);
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, http_status);
	if (resp_body) {
		*resp_body = b.data ? b.data : strdup("");
		b.data = NULL;
		if (!*resp_body)
			ret = err_set(err, -ENOMEM, "out of memory");
	}
out:
	free(b.data);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(curl);
	return ret;
}
