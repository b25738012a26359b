/*
 * prefault.c - experimental: populate the destination's guest RAM ahead of
 * the incoming pages from a background thread (MADV_POPULATE_WRITE in 2 MiB
 * steps), so the kernel's zeroing of fresh pages (clear_page: most of the
 * receiver's CPU in a perf profile of a 1 GiB non-zero migration) runs
 * beside the receive loop instead of inside it. Off unless the destination
 * runs with TERN_DEST_PREFAULT=1 (see docs/benchmarks.md for why it is not
 * the default). It populates every page, also those the source will skip
 * as zero, and stops when the stream ends.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "multifd.h"
#include "util.h"

#define STEP (2u << 20)

struct mig_prefault {
	struct { uint8_t *host; uint64_t size; } blocks[16];
	size_t nblocks;
	atomic_bool stop;
	pthread_t thread;
	uint64_t done;
};

static void *prefault_thread(void *arg)
{
	struct mig_prefault *p = arg;
	uint64_t t0 = time_now_ns();

	pthread_setname_np(pthread_self(), "mig-prefault");
	for (size_t b = 0; b < p->nblocks; b++) {
		uint8_t *host = p->blocks[b].host;

		for (uint64_t off = 0; off < p->blocks[b].size && !atomic_load(&p->stop);
		     off += STEP) {
			size_t n = (size_t)MIN((uint64_t)STEP, p->blocks[b].size - off);

			if (madvise(host + off, n, MADV_POPULATE_WRITE))
				return NULL;
			p->done += n;
		}
	}
	log_info("mig", "dest: prefaulted %llu MiB in %.1f ms",
		 (unsigned long long)(p->done >> 20), (time_now_ns() - t0) / 1e6);
	return NULL;
}

struct mig_prefault *mig_prefault_start(const struct mig_ram_block *blocks, size_t n)
{
	const char *env = getenv("TERN_DEST_PREFAULT");
	struct mig_prefault *p;

	if (!env || strcmp(env, "1"))
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	for (size_t i = 0; i < n && i < ARRAY_SIZE(p->blocks); i++) {
		p->blocks[i].host = blocks[i].host;
		p->blocks[i].size = blocks[i].size;
		p->nblocks++;
	}
	if (pthread_create(&p->thread, NULL, prefault_thread, p)) {
		free(p);
		return NULL;
	}
	return p;
}

void mig_prefault_stop(struct mig_prefault *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
	free(p);
}
