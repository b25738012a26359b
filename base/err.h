/*
 * err.h - error reporting across module boundaries.
 *
 * Functions return 0 or a negative errno. Where the caller needs to know
 * *why*, they also take an optional `struct err *` as the last parameter and
 * fill it with one human-readable line (QEMU's Error **errp, simplified).
 * NULL is always allowed.
 */
#ifndef BASE_ERR_H
#define BASE_ERR_H

#include <stddef.h>

struct err {
	int code;		/* negative errno, 0 = no error */
	char msg[256];
};

/* Record an error (only the first one sticks). Returns `code`. */
int err_set(struct err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix an existing message: "ctx: old message". */
void err_prefix(struct err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline void err_clear(struct err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

static inline const char *err_msg(const struct err *err)
{
	return err && err->msg[0] ? err->msg : "unknown error";
}

#endif
