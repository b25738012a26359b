/*
 * api_internal.h - private to api/ (and its unit tests): the route table
 * and the typed field parser that turns a JSON request body into members
 * of struct api_request.
 *
 * Adding an action with parameters: add members to struct api_request, a
 * `static const struct api_field foo_fields[]` table in request.c naming
 * each JSON field, its type, range and destination, and one route entry.
 */
#ifndef API_INTERNAL
#error "api_internal.h is private to api/"
#endif
#ifndef API_API_INTERNAL_H
#define API_API_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"

enum api_field_type {
	API_FIELD_INVALID = 0,
	API_FIELD_BOOL,		/* bool */
	API_FIELD_UINT,		/* uint64_t, checked against [min, max] */
	API_FIELD_STRING,	/* char[size], NUL-terminated, non-empty */
};

struct api_field {
	const char *name;	/* NULL ends a table */
	enum api_field_type type;
	size_t offset;		/* destination inside the parsed struct */
	size_t size;		/* API_FIELD_STRING: buffer size */
	uint64_t min, max;	/* API_FIELD_UINT: inclusive range */
	bool required;
};

#define API_FIELD_END { .name = NULL }

enum api_body {
	API_BODY_INVALID = 0,
	API_BODY_NONE,		/* must be empty */
	API_BODY_OPTIONAL,	/* empty or a JSON object */
	API_BODY_REQUIRED,	/* a JSON object */
};

struct api_route {
	const char *method;
	const char *path;
	enum api_action action;
	enum api_body body;
	const struct api_field *fields;	/* NULL: no fields accepted */
};

/*
 * Fill `dst` from the JSON object `obj` following `fields`. Unknown or
 * duplicate-typed fields, wrong types, out-of-range values and missing
 * required fields fail with -EINVAL and one line in `err`.
 */
int api_parse_fields(const json_t *obj, const struct api_field *fields,
		     void *dst, struct err *err);

/* Replace bytes that are not printable ASCII with '?' (in place). */
void api_sanitize(char *s);

#endif
