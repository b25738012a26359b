/*
 * util.h - small parsing and time helpers shared by every module.
 */
#ifndef BASE_UTIL_H
#define BASE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

/*
 * Parse a size such as "512M", "4G", "65536", "1.5G" is NOT accepted.
 * Suffixes K, M, G, T (binary, optional trailing "iB" or "B"); a bare
 * number is bytes. Returns 0 or -EINVAL / -ERANGE.
 */
int parse_size(const char *s, uint64_t *out);

/* Strict unsigned decimal parse into [min, max]. Returns 0 or -EINVAL/-ERANGE. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Copy a string, truncating to fit; always NUL-terminates. Returns dst. */
char *str_copy(char *dst, size_t size, const char *src);

/* Monotonic clock in nanoseconds. */
uint64_t time_now_ns(void);

/* Human-readable byte count, e.g. "1.5 GiB". Returns buf. */
const char *fmt_bytes(uint64_t bytes, char *buf, size_t len);

#endif
