/*
 * ram.c - the host mapping behind guest RAM: anonymous, private, not in
 * core dumps; with --mem-prealloc every page is also populated up front
 * (MADV_POPULATE_WRITE, one thread per online CPU), as QEMU's -mem-prealloc
 * and libvirt's <allocation mode='immediate'/> do.
 *
 * Preallocation trades memory for certainty and speed: a host that cannot
 * back the guest says so at start-up instead of OOM-killing it later, and a
 * migration destination started with it receives pages into memory that is
 * already there. Populating a fresh page (allocate, zero, map) costs more
 * than copying 4 KiB into it: on the machines of docs/benchmarks.md it is
 * most of a destination's CPU time, so moving it ahead of the migration is
 * what lets the stream run at the speed of the network.
 */
#include "ram.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

#define PREALLOC_MAX_THREADS	16
#define PREALLOC_STEP		(64ULL << 20)	/* bytes per madvise call */

struct prealloc_part {
	uint8_t *base;
	uint64_t len;
	int err;		/* errno of the first failure, or 0 */
	pthread_t thread;
};

static void *prealloc_thread(void *arg)
{
	struct prealloc_part *pp = arg;

	for (uint64_t off = 0; off < pp->len; off += PREALLOC_STEP) {
		uint64_t n = pp->len - off < PREALLOC_STEP ? pp->len - off : PREALLOC_STEP;

		if (madvise(pp->base + off, n, MADV_POPULATE_WRITE)) {
			pp->err = errno;
			break;
		}
	}
	return NULL;
}

/* Populate [base, base + size) with up to `threads` threads; 0 or -errno. */
static int ram_populate(uint8_t *base, uint64_t size, unsigned threads)
{
	struct prealloc_part parts[PREALLOC_MAX_THREADS];
	bool started[PREALLOC_MAX_THREADS] = { false };
	uint64_t chunk, off = 0;
	unsigned n = 0;
	int ret = 0;

	if (threads < 1)
		threads = 1;
	if (threads > PREALLOC_MAX_THREADS)
		threads = PREALLOC_MAX_THREADS;
	/* whole 2 MiB per part, so no huge page is split between two threads */
	chunk = (size / threads + (2ULL << 20) - 1) & ~((2ULL << 20) - 1);
	for (; off < size && n < threads; n++) {
		parts[n] = (struct prealloc_part){
			.base = base + off, .len = size - off < chunk ? size - off : chunk,
		};
		off += parts[n].len;
	}
	/* part 0 runs here; a part whose thread did not start, too */
	for (unsigned i = 1; i < n; i++)
		started[i] = !pthread_create(&parts[i].thread, NULL, prealloc_thread, &parts[i]);
	for (unsigned i = 0; i < n; i++)
		if (!started[i])
			prealloc_thread(&parts[i]);
	for (unsigned i = 0; i < n; i++) {
		if (started[i])
			pthread_join(parts[i].thread, NULL);
		if (parts[i].err && !ret)
			ret = -parts[i].err;
	}
	return ret;
}

/* MemAvailable + SwapFree in bytes (UINT64_MAX if unknown). */
static uint64_t ram_host_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	unsigned long long kb, avail = 0, swap = 0;
	char key[64];

	if (!f)
		return UINT64_MAX;
	while (fscanf(f, "%63s %llu kB\n", key, &kb) == 2) {
		if (!strcmp(key, "MemAvailable:"))
			avail = kb;
		else if (!strcmp(key, "SwapFree:"))
			swap = kb;
	}
	fclose(f);
	return avail ? (avail + swap) * 1024ULL : UINT64_MAX;
}

int ram_map(struct guest_ram *r, uint64_t size, bool prealloc, struct err *err)
{
	char a[32], b[32];
	uint64_t avail = ram_host_available();
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t t0 = time_now_ns();
	void *p;
	int ret;

	memset(r, 0, sizeof(*r));
	if (size > avail)
		return err_set(err, -ENOMEM,
			       "cannot give the guest %s of memory: the host has only %s available",
			       fmt_bytes(size, a, sizeof(a)), fmt_bytes(avail, b, sizeof(b)));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return err_set(err, -ENOMEM, "cannot map %s of guest memory: %s",
			       fmt_bytes(size, a, sizeof(a)), strerror(errno));
	madvise(p, size, MADV_DONTDUMP);
	if (prealloc) {
		ret = ram_populate(p, size, ncpu > 0 ? (unsigned)ncpu : 1);
		if (ret) {
			munmap(p, size);
			if (ret == -EINVAL)
				return err_set(err, ret, "--mem-prealloc needs Linux 5.14 or later "
					       "(MADV_POPULATE_WRITE)");
			return err_set(err, ret, "cannot preallocate %s of guest memory: %s",
				       fmt_bytes(size, a, sizeof(a)),
				       ret == -ENOMEM ? "the host is out of memory" : strerror(-ret));
		}
		r->prealloc_ns = time_now_ns() - t0;
	}
	r->host = p;
	r->size = size;
	r->prealloc = prealloc;
	return 0;
}

void ram_unmap(struct guest_ram *r)
{
	if (r->host)
		munmap(r->host, r->size);
	r->host = NULL;
	r->size = 0;
}
