/*
 * test_chan.c - struct mig_stream: little-endian layout, the sticky error,
 * limits, crc32c, and fd streams through pipes with short reads, a
 * non-blocking reader, direct page reads, big writes and a dead peer.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define MIG_STREAM_INTERNAL	/* white-box: mig_crc32c_sw */
#include "stream_int.h"

static void test_le_layout(void **state)
{
	static const uint8_t want[] = { 0xab, 0x02, 0x01, 0x04, 0x03, 0x02,
					0x01, 8, 7, 6, 5, 4, 3, 2, 1, 'x', 'y' };
	struct mig_stream w, r;
	uint8_t xy[2];

	mig_stream_init_mem_writer(&w, 0);
	mig_stream_put_u8(&w, 0xab);
	mig_stream_put_u16(&w, 0x0102);
	mig_stream_put_u32(&w, 0x01020304);
	mig_stream_put_u64(&w, 0x0102030405060708ULL);
	mig_stream_put_bytes(&w, "xy", 2);
	assert_int_equal(mig_stream_offset(&w), sizeof(want));
	assert_memory_equal(mig_stream_data(&w, NULL), want, sizeof(want));

	mig_stream_init_mem_reader(&r, want, sizeof(want));
	assert_int_equal(mig_stream_get_u8(&r), 0xab);
	assert_int_equal(mig_stream_get_u16(&r), 0x0102);
	assert_int_equal(mig_stream_get_u32(&r), 0x01020304);
	assert_int_equal(mig_stream_get_u64(&r), 0x0102030405060708ULL);
	mig_stream_get_bytes(&r, xy, 2);
	assert_memory_equal(xy, "xy", 2);
	assert_int_equal(mig_stream_remaining(&r), 0);
	assert_int_equal(mig_stream_error(&r), 0);
	assert_string_equal(mig_stream_errmsg(&r), "no error");
	mig_stream_fini(&w);
}

static void test_sticky_error(void **state)
{
	static const uint8_t data[] = { 1, 2, 3 };
	struct mig_stream r;
	struct err e = { 0 };

	mig_stream_init_mem_reader(&r, data, sizeof(data));
	assert_int_equal(mig_stream_get_u16(&r), 0x0201);
	assert_int_equal(mig_stream_get_u64(&r), 0);
	assert_int_equal(mig_stream_error(&r), -ENODATA);
	assert_string_equal(mig_stream_errmsg(&r),
			    "truncated stream: wanted 8 bytes at offset 2, 1 there");
	/* later calls do nothing, even ones that would fit */
	assert_int_equal(mig_stream_get_u8(&r), 0);
	assert_int_equal(mig_stream_offset(&r), 2);
	mig_stream_set_error(&r, -EIO, "second");
	assert_int_equal(mig_stream_get_err(&r, &e), -ENODATA);
	assert_string_equal(e.msg, mig_stream_errmsg(&r));
	assert_int_equal(mig_stream_get_err(&r, NULL), -ENODATA);
}

static void test_kind_and_limits(void **state)
{
	struct mig_stream w, r;
	uint8_t big[100] = { 0 };
	char *p;

	mig_stream_init_mem_reader(&r, big, sizeof(big));
	mig_stream_put_u8(&r, 1);
	assert_int_equal(mig_stream_error(&r), -EINVAL);

	mig_stream_init_mem_writer(&w, 0);
	mig_stream_get_u8(&w);
	assert_int_equal(mig_stream_error(&w), -EINVAL);
	mig_stream_fini(&w);

	mig_stream_init_mem_writer(&w, 10);
	mig_stream_put_bytes(&w, big, 10);
	assert_int_equal(mig_stream_error(&w), 0);
	mig_stream_put_u8(&w, 1);
	assert_int_equal(mig_stream_error(&w), -EMSGSIZE);
	mig_stream_fini(&w);

	/* growth past the first allocation keeps the bytes */
	mig_stream_init_mem_writer(&w, 0);
	for (int i = 0; i < 10000; i++)
		mig_stream_put_u32(&w, (uint32_t)i);
	mig_stream_init_mem_reader(&r, mig_stream_data(&w, NULL), 40000);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(mig_stream_get_u32(&r), i);
	mig_stream_fini(&w);

	mig_stream_init_mem_reader(&r, big, sizeof(big));
	assert_null(mig_stream_get_alloc(&r, 101, 1000, "thing"));
	assert_int_equal(mig_stream_error(&r), -ENODATA);
	mig_stream_init_mem_reader(&r, big, sizeof(big));
	assert_null(mig_stream_get_alloc(&r, 51, 50, "thing"));
	assert_string_equal(mig_stream_errmsg(&r), "thing: length 51 over limit 50");
	mig_stream_init_mem_reader(&r, "abc", 3);
	p = mig_stream_get_alloc(&r, 3, 3, "thing");
	assert_string_equal(p, "abc");
	free(p);

	mig_stream_init_mem_reader(&r, big, sizeof(big));
	mig_stream_skip(&r, 60);
	assert_int_equal(mig_stream_offset(&r), 60);
	mig_stream_skip(&r, 41);
	assert_int_equal(mig_stream_error(&r), -ENODATA);
}

static void test_crc32c(void **state)
{
	uint8_t buf[1024 + 16];

	assert_int_equal(mig_crc32c(0, "123456789", 9), 0xe3069283);
	assert_int_equal(mig_crc32c_sw(0, "123456789", 9), 0xe3069283);
	assert_int_equal(mig_crc32c(0, "", 0), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len < 1024; len += 1 + len / 8) {
			uint32_t a = mig_crc32c(0, buf + off, len);

			assert_int_equal(a, mig_crc32c_sw(0, buf + off, len));
			/* chaining = one pass */
			assert_int_equal(a, mig_crc32c(mig_crc32c(0, buf + off,
								  len / 3),
						       buf + off + len / 3,
						       len - len / 3));
		}
}

/* The writer's running crc covers exactly the bytes put. */
static void test_stream_crc(void **state)
{
	struct mig_stream w;

	mig_stream_init_mem_writer(&w, 0);
	mig_stream_put_u8(&w, 0);
	mig_stream_crc_begin(&w);
	mig_stream_put_bytes(&w, "1234", 4);
	mig_stream_put_bytes(&w, "56789", 5);
	assert_int_equal(mig_stream_crc_end(&w), 0xe3069283);
	mig_stream_fini(&w);
}

/* ---- fd streams ---- */

struct writer_arg {
	int fd;
	const uint8_t *p;
	size_t len;
	size_t chunk;
	int delay_us;
};

static void *writer(void *arg)
{
	struct writer_arg *a = arg;
	size_t off = 0;

	while (off < a->len) {
		size_t n = a->chunk < a->len - off ? a->chunk : a->len - off;
		ssize_t k = write(a->fd, a->p + off, n);

		if (k <= 0)
			break;
		off += (size_t)k;
		if (a->delay_us)
			usleep((useconds_t)a->delay_us);
	}
	close(a->fd);
	return NULL;
}

static uint8_t src[300000];

/* Reader side of a pipe fed by a thread in `chunk`-byte writes. */
static void pipe_reader(struct mig_stream *r, pthread_t *th,
			struct writer_arg *a, size_t len, size_t chunk,
			size_t bufsz, bool nonblock)
{
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	if (nonblock)
		fcntl(fds[0], F_SETFL, O_NONBLOCK);
	*a = (struct writer_arg){ fds[1], src, len, chunk, nonblock ? 2000 : 0 };
	assert_int_equal(pthread_create(th, NULL, writer, a), 0);
	assert_int_equal(mig_stream_init_fd_reader(r, fds[0], bufsz), 0);
}

static void pipe_done(struct mig_stream *r, pthread_t th)
{
	close(r->fd);
	mig_stream_fini(r);
	pthread_join(th, NULL);
}

static void test_fd_short_reads(void **state)
{
	static const size_t chunks[] = { 1, 3, 7, 4096, 100000 };
	static const size_t bufs[] = { 64, 65, 1000, 0 };

	for (size_t c = 0; c < 5; c++)
		for (size_t b = 0; b < 4; b++) {
			struct mig_stream r;
			struct writer_arg a;
			pthread_t th;
			uint8_t got[5000];
			size_t off = 0;

			pipe_reader(&r, &th, &a, 20000, chunks[c], bufs[b],
				    c == 3);
			while (off + 5000 + 15 <= 20000) {
				assert_int_equal(mig_stream_get_u8(&r), src[off]);
				assert_int_equal(mig_stream_get_u16(&r),
						 src[off + 1] | src[off + 2] << 8);
				mig_stream_skip(&r, 4);
				assert_int_equal(mig_stream_get_u64(&r) & 0xff,
						 src[off + 7]);
				mig_stream_get_bytes(&r, got, 5000);
				assert_memory_equal(got, src + off + 15, 5000);
				off += 5015;
			}
			assert_int_equal(mig_stream_error(&r), 0);
			assert_int_equal(mig_stream_offset(&r), off);
			mig_stream_get_bytes(&r, got, 5000);	/* past EOF */
			assert_int_equal(mig_stream_error(&r), -ENODATA);
			assert_non_null(strstr(mig_stream_errmsg(&r),
					       "truncated stream: wanted 5000 bytes at offset 15045"));
			pipe_done(&r, th);
		}
}

static void test_fd_pages_direct(void **state)
{
	static uint8_t pages[40][4096];
	void *dst[40];

	for (int i = 0; i < 40; i++)
		dst[i] = pages[39 - i];
	for (size_t bufsz = 64; bufsz <= 65536; bufsz *= 32) {
		struct mig_stream r;
		struct writer_arg a;
		pthread_t th;

		pipe_reader(&r, &th, &a, 3 + 40 * 4096, 1000, bufsz, false);
		mig_stream_crc_begin(&r);
		mig_stream_skip(&r, 3);
		mig_stream_get_pages(&r, dst, 40, 4096);
		assert_int_equal(mig_stream_error(&r), 0);
		assert_int_equal(mig_stream_crc_end(&r),
				 mig_crc32c(0, src, 3 + 40 * 4096));
		for (int i = 0; i < 40; i++)
			assert_memory_equal(dst[i], src + 3 + i * 4096, 4096);
		assert_int_equal(mig_stream_offset(&r), 3 + 40 * 4096);
		pipe_done(&r, th);
	}
	/* EOF in the middle of the pages */
	{
		struct mig_stream r;
		struct writer_arg a;
		pthread_t th;

		pipe_reader(&r, &th, &a, 10 * 4096 + 5, 777, 64, false);
		mig_stream_get_pages(&r, dst, 40, 4096);
		assert_int_equal(mig_stream_error(&r), -ENODATA);
		assert_non_null(strstr(mig_stream_errmsg(&r), "truncated stream"));
		pipe_done(&r, th);
	}
}

/* Views of whole pages straight from the buffer = the bytes, in order. */
static void test_fd_view(void **state)
{
	static const size_t chunks[] = { 1, 777, 4096, 100000 };
	static const size_t bufs[] = { 4096, 8197, 65536 };

	(void)state;
	for (size_t c = 0; c < 4; c++)
		for (size_t b = 0; b < 3; b++) {
			struct mig_stream r;
			struct writer_arg a;
			pthread_t th;
			size_t off = 3, len, views = 0;
			const uint8_t *v;

			pipe_reader(&r, &th, &a, 3 + 40 * 4096 + 100, chunks[c], bufs[b], false);
			mig_stream_crc_begin(&r);
			mig_stream_skip(&r, 3);
			while (off < 3 + 40 * 4096) {
				v = mig_stream_get_view(&r, 4096, 3 + 40 * 4096 - off, &len);
				assert_non_null(v);
				assert_true(len >= 4096 && len % 4096 == 0 && len <= bufs[b]);
				assert_memory_equal(v, src + off, len);
				off += len;
				views++;
			}
			assert_int_equal(off, 3 + 40 * 4096);
			assert_int_equal(mig_stream_crc_end(&r), mig_crc32c(0, src, off));
			assert_int_equal(mig_stream_offset(&r), off);
			/* 100 bytes left: not a whole unit */
			assert_null(mig_stream_get_view(&r, 4096, 8192, &len));
			assert_int_equal(len, 0);
			assert_int_equal(mig_stream_error(&r), -ENODATA);
			assert_non_null(strstr(mig_stream_errmsg(&r), "truncated stream"));
			pipe_done(&r, th);
		}
	/* a unit bigger than the buffer is refused, not looped on */
	{
		struct mig_stream r;
		struct writer_arg a;
		pthread_t th;
		size_t len;

		pipe_reader(&r, &th, &a, 3 * 4096, 4096, 4096, false);
		assert_null(mig_stream_get_view(&r, 8192, 8192, &len));
		assert_int_equal(mig_stream_error(&r), -EINVAL);
		pipe_done(&r, th);
	}
	/* memory readers too */
	{
		struct mig_stream r;
		size_t len;

		mig_stream_init_mem_reader(&r, src, 10000);
		assert_ptr_equal(mig_stream_get_view(&r, 4096, 1 << 20, &len), src);
		assert_int_equal(len, 8192);
		assert_null(mig_stream_get_view(&r, 4096, 4096, &len));
		assert_int_equal(mig_stream_error(&r), -ENODATA);
	}
}

struct drain_arg {
	int fd;
	uint8_t *buf;
	size_t cap, len;
};

static void *drain(void *arg)
{
	struct drain_arg *d = arg;
	ssize_t n;

	while ((n = read(d->fd, d->buf + d->len, d->cap - d->len)) > 0)
		d->len += (size_t)n;
	close(d->fd);
	return NULL;
}

/* The fd writer (small puts, big puts, a zero-copy batch) = memory writer. */
static void test_fd_writer(void **state)
{
	static const void *pp[300];
	static uint64_t offs[300];
	static struct drain_arg d;
	struct mig_stream w, m;
	struct mig_header h;
	pthread_t th;
	int fds[2];

	for (int i = 0; i < 300; i++) {
		pp[i] = src + (size_t)i * 977;
		offs[i] = (uint64_t)i * 4096;
	}
	assert_int_equal(pipe(fds), 0);
	d = (struct drain_arg){ fds[0], malloc(4u << 20), 4u << 20, 0 };
	assert_int_equal(pthread_create(&th, NULL, drain, &d), 0);
	assert_int_equal(mig_stream_init_fd_writer(&w, fds[1], 1000), 0);
	mig_stream_init_mem_writer(&m, 0);
	mig_header_init(&h, 4096);
	for (int k = 0; k < 2; k++) {
		struct mig_stream *s = k ? &m : &w;

		mig_stream_put_header(s, &h);
		mig_stream_set_crc(s, true);
		for (int i = 0; i < 50; i++)
			mig_stream_put_u32(s, (uint32_t)i);
		mig_stream_put_bytes(s, src, 999);	/* fills + flushes */
		mig_stream_put_bytes(s, src, 5000);	/* bypasses */
		mig_stream_put_ram_batch(s, 1, offs, pp, 300);
		mig_stream_put_ram_page(s, 1, 0, src);
		mig_stream_put_eof(s);
	}
	assert_int_equal(mig_stream_flush(&w), 0);
	assert_int_equal(mig_stream_offset(&w), mig_stream_offset(&m));
	close(fds[1]);
	pthread_join(th, NULL);
	assert_int_equal(d.len, mig_stream_offset(&m));
	assert_memory_equal(d.buf, mig_stream_data(&m, NULL), d.len);
	free(d.buf);
	mig_stream_fini(&w);
	mig_stream_fini(&m);
}

static void test_fd_writer_dead_peer(void **state)
{
	struct mig_stream w;
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	assert_int_equal(mig_stream_init_fd_writer(&w, fds[1], 100), 0);
	mig_stream_put_bytes(&w, src, 50);
	assert_int_equal(mig_stream_error(&w), 0);	/* buffered */
	assert_int_equal(mig_stream_flush(&w), -EPIPE);
	assert_non_null(strstr(mig_stream_errmsg(&w), "write failed"));
	mig_stream_put_bytes(&w, src, 5000);	/* no-op now */
	assert_int_equal(mig_stream_flush(&w), -EPIPE);
	close(fds[1]);
	mig_stream_fini(&w);

	/* reading a closed fd: the errno is kept */
	assert_int_equal(mig_stream_init_fd_reader(&w, -1, 0), 0);
	mig_stream_get_u8(&w);
	assert_int_equal(mig_stream_error(&w), -EBADF);
	assert_non_null(strstr(mig_stream_errmsg(&w), "read failed at offset 0"));
	mig_stream_fini(&w);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	alarms++;
}

/* A blocked read interrupted by signals (no SA_RESTART) goes on reading. */
static void test_fd_eintr(void **state)
{
	struct sigaction sa = { .sa_handler = on_alarm };	/* no SA_RESTART */
	struct itimerval it = { { 0, 2000 }, { 0, 2000 } }, off = { 0 };
	struct writer_arg a;
	struct mig_stream r;
	sigset_t set, old;
	uint8_t got[3000];
	pthread_t th;
	int fds[2];

	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	assert_int_equal(pipe(fds), 0);
	/* the writer thread inherits SIGALRM blocked: only we get it */
	pthread_sigmask(SIG_BLOCK, &set, &old);
	a = (struct writer_arg){ fds[1], src, sizeof(got), 1000, 30000 };
	assert_int_equal(pthread_create(&th, NULL, writer, &a), 0);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	assert_int_equal(mig_stream_init_fd_reader(&r, fds[0], 64), 0);
	alarms = 0;
	setitimer(ITIMER_REAL, &it, NULL);
	mig_stream_get_bytes(&r, got, sizeof(got));
	setitimer(ITIMER_REAL, &off, NULL);
	assert_int_equal(mig_stream_error(&r), 0);
	assert_memory_equal(got, src, sizeof(got));
	assert_true(alarms > 0);
	pipe_done(&r, th);
	signal(SIGALRM, SIG_DFL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_le_layout),
		cmocka_unit_test(test_sticky_error),
		cmocka_unit_test(test_kind_and_limits),
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_stream_crc),
		cmocka_unit_test(test_fd_short_reads),
		cmocka_unit_test(test_fd_pages_direct),
		cmocka_unit_test(test_fd_view),
		cmocka_unit_test(test_fd_writer),
		cmocka_unit_test(test_fd_writer_dead_peer),
		cmocka_unit_test(test_fd_eintr),
	};

	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 2654435761u >> 13);
	return cmocka_run_group_tests_name("mig-stream-chan", tests, NULL, NULL);
}
