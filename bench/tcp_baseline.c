/*
 * tcp_baseline.c - the bar for migration throughput: one TCP stream on
 * loopback, as fast as it goes.
 *
 * A sender thread writes SIZE bytes (non-zero, from one reused buffer) to a
 * receiver thread over 127.0.0.1. The receiver reads either into a freshly
 * mmap'd region of SIZE bytes, so every page is touched for the first time
 * as on a migration destination ("fresh"), or into one reused buffer
 * ("reuse"). Each case runs with and without a third thread spinning on a
 * core, which is what a running vCPU does to the host during a live
 * migration. A third receive mode ("thp") is "fresh" with
 * madvise(MADV_HUGEPAGE), to show what transparent huge pages would save a
 * destination; a fourth ("uffd") receives into one reused CHUNK buffer and
 * places each chunk into the fresh region with UFFDIO_COPY, as a tern
 * destination does (mig/fill.h). Prints GiB/s per run and the median per
 * case.
 *
 * -C SIZE ("cold"): first touch and hold SIZE bytes, printing how fast
 * each GiB of it was touched, and keep every run's fresh region until the
 * end. A fresh region then cannot reuse pages the previous run just freed:
 * its memory comes from what the host had longest unused, which is what a
 * migration destination gets after its source filled its guest. On a host
 * that is itself a VM and hands free memory back to its hypervisor (free
 * page reporting), that memory must be faulted in again from the hypervisor
 * (docs/benchmarks.md).
 *
 *   cc -O2 -pthread -o tcp_baseline tcp_baseline.c     (or: make -C bench)
 *   ./tcp_baseline [-s SIZE] [-c CHUNK] [-r REPEAT]
 *                  [-m reuse,fresh,thp,uffd] [-p spin|nospin|both] [-C SIZE]
 * SIZE and CHUNK take K/M/G suffixes (binary); defaults 2G, 256K, 3.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPEAT 32

enum bl_mode {
	BL_INVALID,
	BL_REUSE,	/* one reused, resident buffer */
	BL_FRESH,	/* a fresh mapping of the whole size */
	BL_THP,		/* the same with MADV_HUGEPAGE */
	BL_UFFD,	/* a reused buffer, then UFFDIO_COPY into a fresh mapping */
	BL_NR_MODES,
};

static const char *const bl_mode_names[BL_NR_MODES] = {
	[BL_REUSE] = "reuse", [BL_FRESH] = "fresh", [BL_THP] = "thp", [BL_UFFD] = "uffd",
};

struct bl_opts {
	uint64_t size;
	size_t chunk;
	unsigned int repeat;
	bool mode[BL_NR_MODES];	/* receive modes to run */
	bool spin[2];		/* [0] no spinner, [1] spinner */
	uint64_t cold;		/* -C: bytes to touch and hold first, 0 = off */
};

/* -C: fresh regions are kept until exit instead of unmapped after each run */
#define MAX_KEPT (MAX_REPEAT * BL_NR_MODES * 2)
static struct { void *p; size_t len; } bl_kept[MAX_KEPT];
static unsigned int bl_nr_kept;
static bool bl_keep;

struct bl_run {
	int lfd;		/* listening socket */
	uint16_t port;
	uint64_t size;
	size_t chunk;
	enum bl_mode mode;
	int ret;		/* receiver's result: 0 or -errno */
	atomic_bool stop_spin;
};

static uint64_t bl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int bl_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	default: break;
	}
	if (*end || v == 0 || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int bl_listen(struct bl_run *r)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->lfd < 0)
		return -errno;
	if (bind(r->lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(r->lfd, 1) ||
	    getsockname(r->lfd, (struct sockaddr *)&a, &len)) {
		int e = -errno;

		close(r->lfd);
		return e;
	}
	r->port = ntohs(a.sin_port);
	return 0;
}

/* Read exactly n bytes into buf; 0 or -errno. */
static int bl_read_full(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = read(fd, buf + got, n - got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EPIPE;
		got += (size_t)k;
	}
	return 0;
}

/*
 * Read r->size bytes chunk by chunk into one buffer and place each chunk at
 * dst (advancing) with UFFDIO_COPY. The chunk must be a multiple of 4 KiB.
 */
static int bl_drain_uffd(int fd, struct bl_run *r, uint8_t *dst)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_SIGBUS };
	struct uffdio_register reg = {
		.range = { (uint64_t)(uintptr_t)dst, r->size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	uint8_t *buf = NULL;
	uint64_t got = 0;
	int ret = 0;

	if (uffd < 0)
		return -errno;
	if (ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		ret = -errno;
		goto out;
	}
	buf = malloc(r->chunk);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	memset(buf, 0, r->chunk);
	while (!ret && got < r->size) {
		size_t n = r->size - got < r->chunk ? (size_t)(r->size - got) : r->chunk;
		struct uffdio_copy c = { .dst = (uint64_t)(uintptr_t)(dst + got),
					 .src = (uint64_t)(uintptr_t)buf, .len = n,
					 .mode = UFFDIO_COPY_MODE_DONTWAKE };

		ret = bl_read_full(fd, buf, n);
		if (!ret && ioctl(uffd, UFFDIO_COPY, &c))
			ret = -errno;
		got += n;
	}
out:
	free(buf);
	close(uffd);
	return ret;
}

/* Read r->size bytes from fd into dst (advancing) or into one buffer. */
static int bl_drain(int fd, struct bl_run *r, uint8_t *dst)
{
	uint64_t got = 0;

	while (got < r->size) {
		uint64_t left = r->size - got;
		size_t n = left < r->chunk ? (size_t)left : r->chunk;
		ssize_t k = read(fd, r->mode == BL_REUSE ? dst : dst + got, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EPIPE;
		got += (uint64_t)k;
	}
	return 0;
}

static void *bl_receiver(void *arg)
{
	struct bl_run *r = arg;
	size_t maplen = r->mode == BL_REUSE ? r->chunk : r->size;
	uint8_t *dst;
	int fd;

	dst = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (dst == MAP_FAILED) {
		r->ret = -errno;
		return NULL;
	}
	if (r->mode == BL_REUSE)
		memset(dst, 0, maplen);		/* reused: already resident */
	if (r->mode == BL_THP)
		madvise(dst, maplen, MADV_HUGEPAGE);
	fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		r->ret = -errno;
	} else {
		r->ret = r->mode == BL_UFFD ? bl_drain_uffd(fd, r, dst) : bl_drain(fd, r, dst);
		close(fd);
	}
	if (bl_keep && r->mode != BL_REUSE && bl_nr_kept < MAX_KEPT)
		bl_kept[bl_nr_kept++] = (typeof(bl_kept[0])){ dst, maplen };
	else
		munmap(dst, maplen);
	return NULL;
}

static void *bl_spinner(void *arg)
{
	struct bl_run *r = arg;
	volatile uint64_t n = 0;

	while (!atomic_load_explicit(&r->stop_spin, memory_order_relaxed))
		n++;
	return NULL;
}

static int bl_send(const struct bl_run *r, const uint8_t *buf)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(r->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint64_t sent = 0;
	int fd, ret = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		ret = -errno;
		goto out;
	}
	while (sent < r->size) {
		uint64_t left = r->size - sent;
		size_t n = left < r->chunk ? (size_t)left : r->chunk;
		ssize_t k = write(fd, buf, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			ret = k < 0 ? -errno : -EPIPE;
			goto out;
		}
		sent += (uint64_t)k;
	}
out:
	close(fd);
	return ret;
}

/* One transfer; returns GiB/s, or a negative value on error. */
static double bl_run_once(const struct bl_opts *o, const uint8_t *buf,
			  enum bl_mode mode, bool spin)
{
	struct bl_run r = { .size = o->size, .chunk = o->chunk, .mode = mode };
	pthread_t rx, sp;
	uint64_t t0, t1;
	int ret;

	atomic_init(&r.stop_spin, false);
	ret = bl_listen(&r);
	if (ret)
		return ret;
	if (spin && pthread_create(&sp, NULL, bl_spinner, &r)) {
		close(r.lfd);
		return -EAGAIN;
	}
	t0 = bl_now_ns();
	if (pthread_create(&rx, NULL, bl_receiver, &r)) {
		ret = -EAGAIN;
		goto out_spin;
	}
	ret = bl_send(&r, buf);
	pthread_join(rx, NULL);
	t1 = bl_now_ns();
	if (!ret)
		ret = r.ret;
out_spin:
	if (spin) {
		atomic_store(&r.stop_spin, true);
		pthread_join(sp, NULL);
	}
	close(r.lfd);
	if (ret)
		return ret;
	return (double)o->size / (double)(1u << 30) / ((double)(t1 - t0) / 1e9);
}

static int bl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int bl_case(const struct bl_opts *o, const uint8_t *buf,
		   enum bl_mode mode, bool spin)
{
	double v[MAX_REPEAT];

	printf("%-6s %-8s", bl_mode_names[mode], spin ? "spin" : "no-spin");
	for (unsigned int i = 0; i < o->repeat; i++) {
		v[i] = bl_run_once(o, buf, mode, spin);
		if (v[i] < 0) {
			printf("\ntcp_baseline: transfer failed: %s\n", strerror((int)-v[i]));
			return 1;
		}
		printf(" %6.2f", v[i]);
		fflush(stdout);
	}
	qsort(v, o->repeat, sizeof(v[0]), bl_cmp);
	printf("   median %.2f GiB/s\n", v[o->repeat / 2]);
	return 0;
}

static int bl_pick(const char *v, bool pair[2], const char *a, const char *b)
{
	pair[0] = !strcmp(v, a) || !strcmp(v, "both");
	pair[1] = !strcmp(v, b) || !strcmp(v, "both");
	return pair[0] || pair[1] ? 0 : -EINVAL;
}

/* "reuse,fresh,thp,uffd" (any subset, comma-separated) */
static int bl_pick_modes(const char *v, bool mode[BL_NR_MODES])
{
	char tmp[64], *save = NULL;
	int n = 0;

	if (strlen(v) >= sizeof(tmp))
		return -EINVAL;
	strcpy(tmp, v);
	memset(mode, 0, BL_NR_MODES * sizeof(mode[0]));
	for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int m = BL_REUSE;

		while (m < BL_NR_MODES && strcmp(t, bl_mode_names[m]))
			m++;
		if (m == BL_NR_MODES)
			return -EINVAL;
		mode[m] = true;
		n++;
	}
	return n ? 0 : -EINVAL;
}

static int bl_usage(void)
{
	fprintf(stderr, "usage: tcp_baseline [-s SIZE] [-c CHUNK] [-r REPEAT(1-%d)] "
		"[-m reuse,fresh,thp,uffd] [-p spin|nospin|both] [-C SIZE]\n", MAX_REPEAT);
	return 2;
}

/*
 * -C: touch `size` bytes of fresh memory one page at a time and hold them,
 * printing GiB/s for each whole GiB. Returns the mapping or NULL.
 */
static void *bl_hold_cold(uint64_t size)
{
	const uint64_t gib = 1ull << 30;
	uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, size, MADV_NOHUGEPAGE);
	printf("cold: first touch of %.2f GiB held, GiB/s per GiB:",
	       (double)size / (double)gib);
	for (uint64_t off = 0; off < size; off += gib) {
		uint64_t end = size - off < gib ? size : off + gib, t0 = bl_now_ns();

		for (uint64_t a = off; a < end; a += 4096)
			p[a] = 1;
		printf(" %.2f", (double)(end - off) / (double)gib /
				((double)(bl_now_ns() - t0) / 1e9));
		fflush(stdout);
	}
	printf("\n");
	return p;
}

static int bl_parse(int argc, char **argv, struct bl_opts *o)
{
	uint64_t v;
	int c;

	while ((c = getopt(argc, argv, "s:c:r:m:p:C:h")) != -1) {
		switch (c) {
		case 's':
			if (bl_parse_size(optarg, &o->size))
				return -EINVAL;
			break;
		case 'c':
			if (bl_parse_size(optarg, &v) || v > (1u << 30) || v % 4096)
				return -EINVAL;
			o->chunk = (size_t)v;
			break;
		case 'r':
			if (bl_parse_size(optarg, &v) || v > MAX_REPEAT)
				return -EINVAL;
			o->repeat = (unsigned int)v;
			break;
		case 'm':
			if (bl_pick_modes(optarg, o->mode))
				return -EINVAL;
			break;
		case 'p':
			if (bl_pick(optarg, o->spin, "nospin", "spin"))
				return -EINVAL;
			break;
		case 'C':
			if (bl_parse_size(optarg, &o->cold) || !o->cold)
				return -EINVAL;
			break;
		default:
			return -EINVAL;
		}
	}
	return optind == argc ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	struct bl_opts o = { .size = 2ull << 30, .chunk = 256 << 10, .repeat = 3,
			     .mode = { [BL_REUSE] = true, [BL_FRESH] = true, [BL_THP] = true,
				  [BL_UFFD] = true },
			     .spin = { true, true } };
	void *cold = NULL;
	uint8_t *buf;
	int ret = 0;

	if (bl_parse(argc, argv, &o))
		return bl_usage();
	if (o.cold) {
		uint64_t avail = (uint64_t)sysconf(_SC_AVPHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
		uint64_t kept = 0;

		for (int m = BL_FRESH; m < BL_NR_MODES; m++)
			kept += (uint64_t)o.mode[m] * (o.spin[0] + o.spin[1]) * o.repeat * o.size;
		if (o.cold + kept > avail) {
			fprintf(stderr, "tcp_baseline: -C %llu plus the kept runs need more than the "
				"%llu bytes of free memory\n", (unsigned long long)o.cold,
				(unsigned long long)avail);
			return 1;
		}
		cold = bl_hold_cold(o.cold);
		if (!cold) {
			fprintf(stderr, "tcp_baseline: cannot map %llu bytes for -C: %s\n",
				(unsigned long long)o.cold, strerror(errno));
			return 1;
		}
		bl_keep = true;
	}
	buf = malloc(o.chunk);
	if (!buf)
		return 1;
	for (size_t i = 0; i < o.chunk; i++)
		buf[i] = (uint8_t)(i * 131 + 7) | 1;
	printf("one TCP stream on 127.0.0.1: %.2f GiB per run, %zu KiB writes/reads, "
	       "GiB/s per run\n", (double)o.size / (1u << 30), o.chunk >> 10);
	for (int s = 0; s < 2 && !ret; s++)
		for (int m = BL_REUSE; m < BL_NR_MODES && !ret; m++)
			if (o.spin[s] && o.mode[m])
				ret = bl_case(&o, buf, (enum bl_mode)m, s);
	free(buf);
	for (unsigned int i = 0; i < bl_nr_kept; i++)
		munmap(bl_kept[i].p, bl_kept[i].len);
	if (cold)
		munmap(cold, o.cold);
	return ret;
}
