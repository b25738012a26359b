/*
 * fuzz_api_request.c - libFuzzer target for the API request path:
 * api_parse_request() through api_dispatch(), with a fake backend.
 *
 * Input layout: byte 0 picks the method (low 3 bits; 7 = the method is
 * read from the input up to '\n'), then the path up to '\n', then the
 * body (the rest, in an exact-size heap buffer so over-reads are caught).
 * Byte 0's high bits make the backend fail or return odd strings.
 * Invariants: the reply is always valid JSON, the status is one we
 * document, and a non-200 reply is {"error": "..."}.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

static int fuzz_execute(void *opaque, const struct api_request *req,
			struct api_reply *reply, struct err *err)
{
	uint8_t mode = *(const uint8_t *)opaque;

	if (mode & 0x80)
		return err_set(err, (mode & 0x40) ? -EBUSY : -EIO,
			       "backend says no \xff");
	reply->info.state = (enum api_vm_state)(mode >> 3 & 3);
	reply->info.vcpus = mode;
	reply->info.memory_bytes = UINT64_MAX - mode;
	memset(reply->info.kernel, mode | 1, sizeof(reply->info.kernel));
	return 0;
}

/* Next '\n'-terminated piece of at most max bytes, copied NUL-terminated. */
static char *fuzz_take(const uint8_t **data, size_t *size, size_t max)
{
	const uint8_t *nl = memchr(*data, '\n', *size < max ? *size : max);
	size_t n = nl ? (size_t)(nl - *data) : (*size < max ? *size : max);
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, *data, n);
	s[n] = '\0';
	*data += n + (nl ? 1 : 0);
	*size -= n + (nl ? 1 : 0);
	return s;
}

static void fuzz_check(int status, const char *resp)
{
	json_t *o = json_loads(resp, 0, NULL);

	if (!o || !json_is_object(o))
		abort();
	if (status != 200 && status != 400 && status != 404 && status != 405 &&
	    status != 409 && status != 413 && status != 500)
		abort();
	if (status != 200 && !json_is_string(json_object_get(o, "error")))
		abort();
	json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = {
		"GET", "POST", "PUT", "DELETE", "HEAD", "get", "",
	};
	struct api_backend be = { .execute = fuzz_execute };
	char *method, *path, *body, *resp;
	uint8_t mode;
	int status;

	if (size < 1)
		return 0;
	mode = data[0];
	be.opaque = &mode;
	data++;
	size--;
	if ((mode & 7) == 7)
		method = fuzz_take(&data, &size, 16);
	else
		method = strdup(methods[mode & 7]);
	path = fuzz_take(&data, &size, 512);
	body = malloc(size ? size : 1);
	if (!method || !body)
		abort();
	memcpy(body, data, size);
	status = api_dispatch(&be, method, path, size ? body : NULL, size,
			      &resp);
	if (!resp)
		abort();
	fuzz_check(status, resp);
	free(resp);
	free(body);
	free(path);
	free(method);
	return 0;
}
