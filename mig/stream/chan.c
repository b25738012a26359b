/*
 * chan.c - struct mig_stream: the byte channel under the codec.
 *
 * Four kinds: a growable memory writer, a buffered fd writer, a reader over
 * caller memory and a buffered fd reader. All share one sticky error: the
 * first failure is recorded with a one-line message, later calls do nothing
 * and getters return zeroes. fd I/O copes with short reads and writes, EINTR
 * and EAGAIN (it polls). Large transfers bypass the buffer: a write bigger
 * than the buffer goes out with one writev() of buffer + data, and page
 * reads go with readv() straight into the destination pages.
 */
#define MIG_STREAM_INTERNAL
#include "stream_int.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util.h"

#define MEM_WRITER_FIRST	4096u
#define FD_BUF_MIN		64u
#define PAGES_IOV		64u

static void stream_reset(struct mig_stream *s, enum mig_stream_kind kind)
{
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->fd = -1;
}

/* ---- lifecycle and errors ---- */

void mig_stream_init_mem_writer(struct mig_stream *s, size_t max)
{
	stream_reset(s, MIG_STREAM_MEM_WRITER);
	s->max = max ? max : SIZE_MAX / 2;
}

static int init_fd(struct mig_stream *s, enum mig_stream_kind kind, int fd,
		   size_t bufsize)
{
	stream_reset(s, kind);
	s->fd = fd;
	if (!bufsize)
		bufsize = MIG_STREAM_BUFSIZE;
	bufsize = MAX(bufsize, FD_BUF_MIN);
	s->buf = malloc(bufsize);
	if (!s->buf)
		return mig_stream_set_error(s, -ENOMEM,
					    "no memory for a %zu-byte buffer",
					    bufsize);
	s->cap = bufsize;
	return 0;
}

int mig_stream_init_fd_writer(struct mig_stream *s, int fd, size_t bufsize)
{
	return init_fd(s, MIG_STREAM_FD_WRITER, fd, bufsize);
}

int mig_stream_init_fd_reader(struct mig_stream *s, int fd, size_t bufsize)
{
	return init_fd(s, MIG_STREAM_FD_READER, fd, bufsize);
}

void mig_stream_init_mem_reader(struct mig_stream *s, const void *data,
				size_t len)
{
	stream_reset(s, MIG_STREAM_MEM_READER);
	s->buf = (uint8_t *)data;	/* never written through */
	s->cap = s->len = data ? len : 0;
}

void mig_stream_fini(struct mig_stream *s)
{
	if (s->kind != MIG_STREAM_MEM_READER)
		free(s->buf);
	s->buf = NULL;
	s->cap = s->len = s->pos = 0;
}

int mig_stream_error(const struct mig_stream *s)
{
	return s->err.code;
}

const char *mig_stream_errmsg(const struct mig_stream *s)
{
	return s->err.code ? s->err.msg : "no error";
}

int mig_stream_set_error(struct mig_stream *s, int code, const char *fmt, ...)
{
	va_list ap;

	if (s->err.code)
		return s->err.code;
	s->err.code = code ? code : -EIO;
	va_start(ap, fmt);
	vsnprintf(s->err.msg, sizeof(s->err.msg), fmt, ap);
	va_end(ap);
	return s->err.code;
}

int mig_stream_get_err(const struct mig_stream *s, struct err *err)
{
	if (!s->err.code)
		return 0;
	return err_set(err, s->err.code, "%s", s->err.msg);
}

uint64_t mig_stream_offset(const struct mig_stream *s)
{
	return s->bytes;
}

const uint8_t *mig_stream_data(const struct mig_stream *s, size_t *len)
{
	bool mem = s->kind == MIG_STREAM_MEM_WRITER;

	if (len)
		*len = mem ? s->len : 0;
	return mem ? s->buf : NULL;
}

size_t mig_stream_remaining(const struct mig_stream *s)
{
	if (s->kind == MIG_STREAM_MEM_READER || s->kind == MIG_STREAM_FD_READER)
		return s->len - s->pos;
	return 0;
}

/* ---- fd helpers ---- */

static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int rc;

	do
		rc = poll(&pfd, 1, timeout_ms ? timeout_ms : -1);
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return -ETIMEDOUT;
	return rc < 0 ? -errno : 0;
}

/*
 * Retry EINTR, wait out EAGAIN (at most timeout_ms when set). Returns >= 0
 * bytes or -errno. A blocking socket with SO_RCVTIMEO/SO_SNDTIMEO returns
 * EAGAIN once its own limit passed: then the poll decides.
 */
static ssize_t io_retry(int fd, const struct iovec *iov, int cnt, bool wr,
			int timeout_ms)
{
	for (;;) {
		ssize_t n = wr ? writev(fd, iov, cnt) : readv(fd, iov, cnt);
		int rc;

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		rc = wait_fd(fd, wr ? POLLOUT : POLLIN, timeout_ms);
		if (rc < 0)
			return rc;
	}
}

void mig_stream_set_timeout(struct mig_stream *s, int timeout_ms)
{
	s->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

/* Drop n transferred bytes from the front of an iovec array. */
static int iov_advance(struct iovec **iov, int cnt, size_t n)
{
	while (cnt > 0 && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		cnt--;
	}
	if (cnt > 0) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
	return cnt;
}

/* Write all of iov[0..cnt) (modified). Sticky error on failure. */
static int writev_all(struct mig_stream *s, struct iovec *iov, int cnt)
{
	cnt = iov_advance(&iov, cnt, 0);
	while (cnt > 0) {
		ssize_t n = io_retry(s->fd, iov, MIN(cnt, IOV_MAX), true, s->timeout_ms);

		if (n <= 0)
			return mig_stream_set_error(s, n ? (int)n : -EIO,
				"write failed near offset %llu: %s",
				(unsigned long long)s->bytes,
				n ? strerror((int)-n) : "wrote nothing");
		cnt = iov_advance(&iov, cnt, (size_t)n);
	}
	return 0;
}

static int truncated_at(struct mig_stream *s, uint64_t off, uint64_t want,
			uint64_t have)
{
	return mig_stream_set_error(s, -ENODATA,
		"truncated stream: wanted %llu bytes at offset %llu, %llu there",
		(unsigned long long)want, (unsigned long long)off,
		(unsigned long long)have);
}

/* A read starting at the current offset came up short. */
static int truncated(struct mig_stream *s, uint64_t want, uint64_t have)
{
	return truncated_at(s, s->bytes, want, have);
}

static int read_failed(struct mig_stream *s, ssize_t rc)
{
	return mig_stream_set_error(s, (int)rc, "read failed at offset %llu: %s",
				    (unsigned long long)s->bytes,
				    strerror((int)-rc));
}

/*
 * Read all of iov[0..cnt) (modified), `want` bytes in all, of which `have`
 * were already copied from the buffer (for the truncation message).
 */
static int readv_all(struct mig_stream *s, struct iovec *iov, int cnt,
		     size_t want, size_t have)
{
	size_t got = have;

	cnt = iov_advance(&iov, cnt, 0);
	while (cnt > 0) {
		ssize_t n = io_retry(s->fd, iov, MIN(cnt, IOV_MAX), false, s->timeout_ms);

		if (n < 0)
			return read_failed(s, n);
		if (n == 0)
			return truncated(s, want, got);
		got += (size_t)n;
		cnt = iov_advance(&iov, cnt, (size_t)n);
	}
	return 0;
}

/* fd reader: one read() appended to the buffer. 0 at EOF. */
static ssize_t fill_some(struct mig_stream *s)
{
	struct iovec iov;
	ssize_t n;

	if (s->pos == s->len)
		s->pos = s->len = 0;
	iov.iov_base = s->buf + s->len;
	iov.iov_len = s->cap - s->len;
	n = io_retry(s->fd, &iov, 1, false, s->timeout_ms);
	if (n < 0)
		return read_failed(s, n);
	s->len += (size_t)n;
	return n;
}

/* ---- writers ---- */

static bool writer_ok(struct mig_stream *s)
{
	if (s->err.code)
		return false;
	if (s->kind == MIG_STREAM_MEM_WRITER || s->kind == MIG_STREAM_FD_WRITER)
		return true;
	mig_stream_set_error(s, -EINVAL, "write to a stream that is not a writer");
	return false;
}

static int mem_reserve(struct mig_stream *s, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (n > s->max - s->len)
		return mig_stream_set_error(s, -EMSGSIZE,
			"memory stream would exceed its %zu-byte limit", s->max);
	if (s->len + n <= s->cap)
		return 0;
	cap = s->cap ? s->cap : MEM_WRITER_FIRST;
	while (cap < s->len + n)
		cap = cap > s->max / 2 ? s->max : cap * 2;
	p = realloc(s->buf, cap);
	if (!p)
		return mig_stream_set_error(s, -ENOMEM,
			"no memory to grow a stream to %zu bytes", cap);
	s->buf = p;
	s->cap = cap;
	return 0;
}

static void fd_put(struct mig_stream *s, const uint8_t *p, size_t n)
{
	struct iovec iov[2];
	size_t k;

	if (n <= s->cap - s->len) {
		memcpy(s->buf + s->len, p, n);
		s->len += n;
		return;
	}
	if (n < s->cap) {
		k = s->cap - s->len;
		memcpy(s->buf + s->len, p, k);
		s->len = s->cap;
		if (mig_stream_flush(s))
			return;
		memcpy(s->buf, p + k, n - k);
		s->len = n - k;
		return;
	}
	iov[0] = (struct iovec){ .iov_base = s->buf, .iov_len = s->len };
	iov[1] = (struct iovec){ .iov_base = (void *)p, .iov_len = n };
	s->len = 0;
	writev_all(s, iov, 2);
}

void mig_stream_put_bytes(struct mig_stream *s, const void *p, size_t n)
{
	if (!n || !writer_ok(s))
		return;
	if (s->crc_on)
		s->crc = mig_crc32c(s->crc, p, n);
	if (s->kind == MIG_STREAM_FD_WRITER) {
		fd_put(s, p, n);
	} else {
		if (mem_reserve(s, n))
			return;
		memcpy(s->buf + s->len, p, n);
		s->len += n;
	}
	s->bytes += n;
}

void mig_stream_put_u8(struct mig_stream *s, uint8_t v)
{
	mig_stream_put_bytes(s, &v, 1);
}

void mig_stream_put_u16(struct mig_stream *s, uint16_t v)
{
	uint8_t b[2];

	mig_le16_store(b, v);
	mig_stream_put_bytes(s, b, sizeof(b));
}

void mig_stream_put_u32(struct mig_stream *s, uint32_t v)
{
	uint8_t b[4];

	mig_le32_store(b, v);
	mig_stream_put_bytes(s, b, sizeof(b));
}

void mig_stream_put_u64(struct mig_stream *s, uint64_t v)
{
	uint8_t b[8];

	mig_le64_store(b, v);
	mig_stream_put_bytes(s, b, sizeof(b));
}

int mig_stream_flush(struct mig_stream *s)
{
	struct iovec iov;

	if (s->err.code || s->kind != MIG_STREAM_FD_WRITER || !s->len)
		return s->err.code;
	iov = (struct iovec){ .iov_base = s->buf, .iov_len = s->len };
	s->len = 0;
	return writev_all(s, &iov, 1);
}

void mig_stream_put_gather(struct mig_stream *s, const void *const *pages,
			   size_t n, size_t size)
{
	struct iovec iov[PAGES_IOV + 1];

	if (!writer_ok(s))
		return;
	if (s->kind == MIG_STREAM_MEM_WRITER) {
		if (mem_reserve(s, n * size))
			return;
		for (size_t i = 0; i < n; i++, s->len += size)
			memcpy(s->buf + s->len, pages[i], size);
		return;
	}
	for (size_t i = 0; i < n && !s->err.code;) {
		int cnt = 0;

		if (s->len)
			iov[cnt++] = (struct iovec){ s->buf, s->len };
		s->len = 0;
		for (; i < n && cnt <= (int)PAGES_IOV; i++)
			iov[cnt++] = (struct iovec){ (void *)pages[i], size };
		writev_all(s, iov, cnt);
	}
}

/* ---- readers ---- */

static bool reader_ok(struct mig_stream *s)
{
	if (s->err.code)
		return false;
	if (s->kind == MIG_STREAM_MEM_READER || s->kind == MIG_STREAM_FD_READER)
		return true;
	mig_stream_set_error(s, -EINVAL, "read from a stream that is not a reader");
	return false;
}

/* fd reader: n bytes into dst from the buffer, refilling or reading direct. */
static int fd_get(struct mig_stream *s, uint8_t *dst, size_t n)
{
	size_t got = MIN(s->len - s->pos, n);
	struct iovec iov;

	memcpy(dst, s->buf + s->pos, got);
	s->pos += got;
	if (got == n)
		return 0;
	if (n - got >= s->cap / 2) {
		iov = (struct iovec){ .iov_base = dst + got, .iov_len = n - got };
		return readv_all(s, &iov, 1, n, got);
	}
	while (s->len - s->pos < n - got) {
		ssize_t r = fill_some(s);

		if (r < 0)
			return (int)r;
		if (r == 0)
			return truncated(s, n, got + s->len - s->pos);
	}
	memcpy(dst + got, s->buf + s->pos, n - got);
	s->pos += n - got;
	return 0;
}

void mig_stream_get_bytes(struct mig_stream *s, void *dst, size_t n)
{
	int rc = 0;

	if (!n)
		return;
	if (!reader_ok(s)) {
		memset(dst, 0, n);
		return;
	}
	if (s->kind == MIG_STREAM_MEM_READER) {
		if (n > s->len - s->pos)
			rc = truncated(s, n, s->len - s->pos);
		else
			memcpy(dst, s->buf + s->pos, n);
		if (!rc)
			s->pos += n;
	} else {
		rc = fd_get(s, dst, n);
	}
	if (rc) {
		memset(dst, 0, n);
		return;
	}
	if (s->crc_on)
		s->crc = mig_crc32c(s->crc, dst, n);
	s->bytes += n;
}

uint8_t mig_stream_get_u8(struct mig_stream *s)
{
	uint8_t v;

	mig_stream_get_bytes(s, &v, 1);
	return v;
}

uint16_t mig_stream_get_u16(struct mig_stream *s)
{
	uint8_t b[2];

	mig_stream_get_bytes(s, b, sizeof(b));
	return mig_le16_load(b);
}

uint32_t mig_stream_get_u32(struct mig_stream *s)
{
	uint8_t b[4];

	mig_stream_get_bytes(s, b, sizeof(b));
	return mig_le32_load(b);
}

uint64_t mig_stream_get_u64(struct mig_stream *s)
{
	uint8_t b[8];

	mig_stream_get_bytes(s, b, sizeof(b));
	return mig_le64_load(b);
}

/* Consume k buffered bytes (crc + counter). */
static void consume(struct mig_stream *s, size_t k)
{
	if (s->crc_on)
		s->crc = mig_crc32c(s->crc, s->buf + s->pos, k);
	s->pos += k;
	s->bytes += k;
}

void mig_stream_skip(struct mig_stream *s, uint64_t n)
{
	uint64_t start = s->bytes, want = n;

	if (!n || !reader_ok(s))
		return;
	if (s->kind == MIG_STREAM_MEM_READER && n > s->len - s->pos) {
		truncated(s, n, s->len - s->pos);
		return;
	}
	while (n) {
		size_t k;

		if (s->pos == s->len) {
			ssize_t r = fill_some(s);

			if (r < 0)
				return;
			if (r == 0) {
				truncated_at(s, start, want, want - n);
				return;
			}
		}
		k = (size_t)MIN(n, (uint64_t)(s->len - s->pos));
		consume(s, k);
		n -= k;
	}
}

/*
 * fd reader, buffer short of a whole page: copy what it holds into dst[0],
 * then readv() the rest of up to PAGES_IOV pages straight into place.
 */
static size_t pages_direct(struct mig_stream *s, void *const *dst, size_t n,
			   size_t size)
{
	struct iovec iov[PAGES_IOV];
	size_t cnt = MIN(n, (size_t)PAGES_IOV), head = s->len - s->pos;

	memcpy(dst[0], s->buf + s->pos, head);
	s->pos = s->len = 0;
	iov[0] = (struct iovec){ (uint8_t *)dst[0] + head, size - head };
	for (size_t k = 1; k < cnt; k++)
		iov[k] = (struct iovec){ dst[k], size };
	if (readv_all(s, iov, (int)cnt, cnt * size, head))
		return n;
	for (size_t k = 0; s->crc_on && k < cnt; k++)
		s->crc = mig_crc32c(s->crc, dst[k], size);
	s->bytes += cnt * size;
	return cnt;
}

void mig_stream_get_pages(struct mig_stream *s, void *const *dst, size_t n,
			  size_t size)
{
	size_t i = 0;

	if (!reader_ok(s))
		return;
	while (i < n && !s->err.code) {
		if (s->kind == MIG_STREAM_MEM_READER ||
		    s->len - s->pos >= size) {
			mig_stream_get_bytes(s, dst[i++], size);
			continue;
		}
		i += pages_direct(s, dst + i, n - i, size);
	}
}

const uint8_t *mig_stream_get_view(struct mig_stream *s, size_t unit, size_t max,
				   size_t *len)
{
	const uint8_t *p;
	size_t k;

	*len = 0;
	if (!reader_ok(s))
		return NULL;
	if (!unit || unit > max || (s->kind == MIG_STREAM_FD_READER && unit > s->cap)) {
		mig_stream_set_error(s, -EINVAL, "view of %zu-byte units up to %zu bytes", unit, max);
		return NULL;
	}
	while (s->len - s->pos < unit) {
		ssize_t r;

		if (s->kind == MIG_STREAM_MEM_READER) {
			truncated(s, unit, s->len - s->pos);
			return NULL;
		}
		if (s->pos && s->cap - s->pos < unit) {	/* make room for a whole unit */
			memmove(s->buf, s->buf + s->pos, s->len - s->pos);
			s->len -= s->pos;
			s->pos = 0;
		}
		r = fill_some(s);
		if (r < 0)
			return NULL;
		if (r == 0) {
			truncated(s, unit, s->len - s->pos);
			return NULL;
		}
	}
	k = MIN(max, s->len - s->pos) / unit * unit;
	p = s->buf + s->pos;
	consume(s, k);
	*len = k;
	return p;
}

char *mig_stream_get_alloc(struct mig_stream *s, uint64_t n, uint64_t max,
			   const char *what)
{
	char *p;

	if (!reader_ok(s))
		return NULL;
	if (n > max) {
		mig_stream_set_error(s, -EMSGSIZE, "%s: length %llu over limit %llu",
				     what, (unsigned long long)n,
				     (unsigned long long)max);
		return NULL;
	}
	if (s->kind == MIG_STREAM_MEM_READER && n > s->len - s->pos) {
		truncated(s, n, s->len - s->pos);
		return NULL;
	}
	p = malloc((size_t)n + 1);
	if (!p) {
		mig_stream_set_error(s, -ENOMEM, "%s: no memory for %llu bytes",
				     what, (unsigned long long)n);
		return NULL;
	}
	mig_stream_get_bytes(s, p, (size_t)n);
	if (s->err.code) {
		free(p);
		return NULL;
	}
	p[n] = '\0';
	return p;
}
