/*
 * postcopy_dst.c - the destination's side of post-copy: guest RAM is
 * registered with userfaultfd (MISSING mode) after the stale pages were
 * dropped (MADV_DONTNEED), so every access to a page not here yet blocks
 * the accessing thread, vCPUs inside KVM_RUN included. A fault thread reads
 * the faults: a page the source still has to send is asked for (PC_REQ on
 * the connection); any other missing page is one that is zero here
 * (never touched), placed at once with UFFDIO_ZEROPAGE. Pages arriving
 * from the source are placed with UFFDIO_COPY, which never overwrites a
 * page already present, and wakes the threads waiting for them.
 */
#include "postcopy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fault.h"
#include "fill.h"
#include "log.h"
#include "mig_int.h"
#include "util.h"

#define PS 4096ULL

static bool bit_test(_Atomic uint64_t *bm, uint64_t pfn)
{
	return atomic_load(&bm[pfn / 64]) & (1ULL << (pfn % 64));
}

/* Set; returns whether it was clear. */
static bool bit_set(_Atomic uint64_t *bm, uint64_t pfn)
{
	return !(atomic_fetch_or(&bm[pfn / 64], 1ULL << (pfn % 64)) & (1ULL << (pfn % 64)));
}

/* Clear; returns whether it was set. */
static bool bit_clear(_Atomic uint64_t *bm, uint64_t pfn)
{
	return atomic_fetch_and(&bm[pfn / 64], ~(1ULL << (pfn % 64))) & (1ULL << (pfn % 64));
}

int pc_dest_init(struct pc_dest *pc, const struct mig_ram_block *blocks,
		 size_t n, struct err *err)
{
	memset(pc, 0, sizeof(*pc));
	pc->uffd = pc->stop_efd = pc->fd = -1;
	pthread_mutex_init(&pc->lock, NULL);
	if (n > PC_MAX_BLOCKS)
		return err_set(err, -EINVAL, "%zu RAM blocks, post-copy handles %d", n, PC_MAX_BLOCKS);
	for (size_t i = 0; i < n; i++) {
		struct pc_dest_block *b = &pc->b[i];
		size_t words = (size_t)((blocks[i].size / PS + 63) / 64);

		b->id = blocks[i].id;
		b->host = blocks[i].host;
		b->size = blocks[i].size;
		b->npages = blocks[i].size / PS;
		b->needed = calloc(words, sizeof(*b->needed));
		b->requested = calloc(words, sizeof(*b->requested));
		pc->nblocks++;
		if (!b->needed || !b->requested || !b->host)
			return err_set(err, -ENOMEM, "out of memory for post-copy bitmaps");
	}
	return 0;
}

void pc_dest_fini(struct pc_dest *pc)
{
	pc_dest_stop(pc);
	if (pc->uffd >= 0)
		close(pc->uffd);
	if (pc->stop_efd >= 0)
		close(pc->stop_efd);
	for (unsigned i = 0; i < pc->nblocks; i++) {
		free((void *)pc->b[i].needed);
		free((void *)pc->b[i].requested);
	}
	pthread_mutex_destroy(&pc->lock);
	memset(pc, 0, sizeof(*pc));
	pc->uffd = pc->stop_efd = pc->fd = -1;
}

static struct pc_dest_block *block_by_id(struct pc_dest *pc, uint32_t id)
{
	for (unsigned i = 0; i < pc->nblocks; i++)
		if (pc->b[i].id == id)
			return &pc->b[i];
	return NULL;
}

static struct pc_dest_block *block_by_addr(struct pc_dest *pc, uint64_t addr)
{
	for (unsigned i = 0; i < pc->nblocks; i++) {
		uint64_t base = (uint64_t)(uintptr_t)pc->b[i].host;

		if (addr >= base && addr - base < pc->b[i].size)
			return &pc->b[i];
	}
	return NULL;
}

/* Drop pages [pfn, pfn + n) from memory, so that they fault. */
static int drop_run(struct pc_dest_block *b, uint64_t pfn, uint64_t n, struct err *err)
{
	if (n && madvise(b->host + pfn * PS, n * PS, MADV_DONTNEED))
		return err_set(err, -errno, "madvise(DONTNEED) of stale pages: %s",
			       strerror(errno));
	return 0;
}

/*
 * Mark the pages needed, and drop at once those not needed before (in
 * runs): the source sends most of its discards while the guest still runs
 * there (pages dirtied by the last pass), so this work is not part of the
 * downtime; only the last few pages' is.
 */
int pc_dest_discard(struct pc_dest *pc, uint32_t block, uint64_t offset,
		    const uint64_t *words, uint32_t nwords, struct err *err)
{
	struct pc_dest_block *b = block_by_id(pc, block);
	uint64_t run = 0, nrun = 0;
	int ret = 0;

	if (!b)
		return err_set(err, -EPROTO, "POSTCOPY_DISCARD for unknown block %u", block);
	if (mig_pc_discard_check(b->size, PS, offset, words, nwords, err))
		return err->code;
	for (uint32_t w = 0; w < nwords && !ret; w++) {
		uint64_t first = offset / PS + 64ULL * w;

		for (uint64_t bits = words[w]; bits && !ret; bits &= bits - 1) {
			uint64_t pfn = first + (uint64_t)__builtin_ctzll(bits);

			if (!bit_set(b->needed, pfn))
				continue;	/* dropped by an earlier discard */
			atomic_fetch_add(&pc->left, 1);
			if (nrun && run + nrun == pfn) {
				nrun++;
				continue;
			}
			ret = drop_run(b, run, nrun, err);
			run = pfn;
			nrun = 1;
		}
	}
	return ret ? ret : drop_run(b, run, nrun, err);
}

int pc_dest_listen(struct pc_dest *pc, struct err *err)
{
	uint64_t t0 = time_now_ns();

	pc->uffd = mig_uffd_open(0, err);
	if (pc->uffd < 0)
		return pc->uffd;
	for (unsigned i = 0; i < pc->nblocks; i++) {
		int ret = mig_uffd_register(pc->uffd, pc->b[i].host, pc->b[i].size, err);

		if (ret)
			return ret;
	}
	pc->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pc->stop_efd < 0)
		return err_set(err, -errno, "eventfd: %s", strerror(errno));
	log_info("mig", "dest: post-copy: %llu pages to fetch, userfaultfd armed in %.1f ms",
		 (unsigned long long)atomic_load(&pc->left), (double)(time_now_ns() - t0) / 1e6);
	return 0;
}

static void wake(struct pc_dest *pc, uint64_t addr)
{
	struct uffdio_range r = { addr & ~(PS - 1), PS };

	ioctl(pc->uffd, UFFDIO_WAKE, &r);
}

/* A missing page that the source will not send: it is zero here. */
static void zero_local(struct pc_dest *pc, uint64_t addr)
{
	struct uffdio_zeropage z = { .range = { addr & ~(PS - 1), PS } };

	if (ioctl(pc->uffd, UFFDIO_ZEROPAGE, &z) && errno == EEXIST)
		wake(pc, addr);
}

static void send_request(struct pc_dest *pc, struct pc_dest_block *b, uint64_t pfn)
{
	uint8_t req[PC_REQ_SIZE];
	int ret;

	pc_req_encode(req, b->id, pfn * PS);
	pthread_mutex_lock(&pc->lock);
	for (unsigned i = 0; i < PC_INFLIGHT; i++) {
		if (!pc->inflight[i].addr) {
			pc->inflight[i].addr = (uint64_t)(uintptr_t)(b->host + pfn * PS);
			pc->inflight[i].t_ns = time_now_ns();
			break;
		}
	}
	pc->requests++;
	ret = pc->fd >= 0 ? mig_ctl_send_raw(pc->fd, MIG_CTL_PC_REQ, req, sizeof(req)) : -ENOTCONN;
	if (ret)
		pc->conn_lost = true;	/* asked again after a recovery */
	pthread_mutex_unlock(&pc->lock);
}

static void on_fault(struct pc_dest *pc, uint64_t addr)
{
	struct pc_dest_block *b = block_by_addr(pc, addr);
	uint64_t pfn;

	pthread_mutex_lock(&pc->lock);
	pc->faults++;
	pthread_mutex_unlock(&pc->lock);
	if (!b)
		return;
	pfn = (addr - (uint64_t)(uintptr_t)b->host) / PS;
	if (!bit_test(b->needed, pfn))
		zero_local(pc, addr);
	else if (bit_set(b->requested, pfn))
		send_request(pc, b, pfn);
}

static void *fault_thread(void *arg)
{
	struct pc_dest *pc = arg;

	pthread_setname_np(pthread_self(), "mig-pc-fault");
	for (;;) {
		struct pollfd p[2] = { { .fd = pc->uffd, .events = POLLIN },
				       { .fd = pc->stop_efd, .events = POLLIN } };
		struct uffd_msg msg;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		if (read(pc->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event == UFFD_EVENT_PAGEFAULT)
			on_fault(pc, msg.arg.pagefault.address);
	}
	return NULL;
}

int pc_dest_start(struct pc_dest *pc, int fd, struct err *err)
{
	int ret;

	pthread_mutex_lock(&pc->lock);
	pc->fd = fd;
	pc->conn_lost = false;
	pthread_mutex_unlock(&pc->lock);
	if (pc->thread_started)
		return 0;
	ret = pthread_create(&pc->thread, NULL, fault_thread, pc);
	if (ret)
		return err_set(err, -ret, "cannot start the fault thread: %s", strerror(ret));
	pc->thread_started = true;
	return 0;
}

void pc_dest_stop(struct pc_dest *pc)
{
	uint64_t one = 1;

	if (!pc->thread_started)
		return;
	if (write(pc->stop_efd, &one, sizeof(one)) < 0)
		log_warn("mig", "dest: cannot stop the fault thread: %s", strerror(errno));
	pthread_join(pc->thread, NULL);
	pc->thread_started = false;
}

/* The page at addr is here: account for a request waiting for it. */
static void placed(struct pc_dest *pc, uint64_t addr)
{
	uint64_t now, d;

	pthread_mutex_lock(&pc->lock);
	/* read under the lock: a request noted just now is not in the future */
	now = time_now_ns();
	pc->placed++;
	for (unsigned i = 0; i < PC_INFLIGHT; i++) {
		if (pc->inflight[i].addr != addr)
			continue;
		d = now > pc->inflight[i].t_ns ? now - pc->inflight[i].t_ns : 0;

		pc->lat_sum_ns += d;
		pc->lat_n++;
		if (pc->lat_nsamp < PC_LAT_SAMPLES)
			pc->lat_us[pc->lat_nsamp++] = (uint32_t)MIN(d / 1000, (uint64_t)UINT32_MAX);
		if (d > pc->lat_max_ns)
			pc->lat_max_ns = d;
		pc->inflight[i].addr = 0;
	}
	pthread_mutex_unlock(&pc->lock);
}

static int place_one(struct pc_dest *pc, struct pc_dest_block *b, uint64_t off,
		     const void *data, struct err *err)
{
	uint64_t dst = (uint64_t)(uintptr_t)(b->host + off);
	int ret;

	if (data) {
		struct uffdio_copy c = { .dst = dst, .src = (uint64_t)(uintptr_t)data, .len = PS };

		ret = ioctl(pc->uffd, UFFDIO_COPY, &c);
	} else {
		struct uffdio_zeropage z = { .range = { dst, PS } };

		ret = ioctl(pc->uffd, UFFDIO_ZEROPAGE, &z);
	}
	if (ret && errno == EEXIST) {
		/* never over a page already here: it is the newer copy */
		log_warn("mig", "dest: page 0x%llx of block %u arrived twice; kept the first",
			 (unsigned long long)off, b->id);
		return 0;
	}
	if (ret)
		return err_set(err, -errno, "placing page 0x%llx: %s",
			       (unsigned long long)off, strerror(errno));
	if (bit_clear(b->needed, off / PS))
		atomic_fetch_sub(&pc->left, 1);
	placed(pc, dst);
	return 0;
}

int pc_dest_place(struct pc_dest *pc, uint32_t block, const uint64_t *offsets,
		  void *const *data, size_t n, struct err *err)
{
	struct pc_dest_block *b = block_by_id(pc, block);

	if (!b)
		return err_set(err, -EPROTO, "page for unknown block %u", block);
	for (size_t i = 0; i < n; i++) {
		int ret = place_one(pc, b, offsets[i], data[i], err);

		if (ret)
			return ret;
	}
	if (pc->placed >= PC_FAULT_PAGES)	/* only this thread places */
		fault_point("dst-pc-paging");
	return 0;
}

int pc_dest_zero(struct pc_dest *pc, uint32_t block, uint64_t offset,
		 uint64_t npages, struct err *err)
{
	struct pc_dest_block *b = block_by_id(pc, block);

	if (!b)
		return err_set(err, -EPROTO, "zero run for unknown block %u", block);
	for (uint64_t i = 0; i < npages; i++) {
		int ret = place_one(pc, b, offset + i * PS, NULL, err);

		if (ret)
			return ret;
	}
	return 0;
}

int pc_dest_finish(struct pc_dest *pc, struct err *err)
{
	uint64_t left = atomic_load(&pc->left);

	if (left)
		return err_set(err, -EPROTO, "post-copy ended with %llu pages missing",
			       (unsigned long long)left);
	pc_dest_stop(pc);
	for (unsigned i = 0; i < pc->nblocks; i++) {
		struct uffdio_range r = { (uint64_t)(uintptr_t)pc->b[i].host, pc->b[i].size };

		/* wakes any fault left; the pages not here are zero pages */
		if (ioctl(pc->uffd, UFFDIO_UNREGISTER, &r))
			return err_set(err, -errno, "UFFDIO_UNREGISTER: %s", strerror(errno));
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void pc_dest_report(struct pc_dest *pc, struct pc_report *r)
{
	pthread_mutex_lock(&pc->lock);
	r->faults = pc->faults;
	r->requests = pc->requests;
	r->placed = pc->placed;
	r->lat_avg_us = pc->lat_n ? pc->lat_sum_ns / pc->lat_n / 1000 : 0;
	r->lat_max_us = pc->lat_max_ns / 1000;
	qsort(pc->lat_us, pc->lat_nsamp, sizeof(pc->lat_us[0]), cmp_u32);
	r->lat_p50_us = pc->lat_nsamp ? pc->lat_us[pc->lat_nsamp / 2] : 0;
	pthread_mutex_unlock(&pc->lock);
}

int pc_dest_each_needed(struct pc_dest *pc, uint64_t *words, uint32_t max,
			pc_needed_fn fn, void *opaque)
{
	for (unsigned i = 0; i < pc->nblocks; i++) {
		struct pc_dest_block *b = &pc->b[i];
		uint64_t nwords = (b->npages + 63) / 64;

		for (uint64_t w0 = 0; w0 < nwords; w0 += max) {
			uint32_t n = (uint32_t)MIN(nwords - w0, (uint64_t)max);
			bool any = false;
			int ret;

			for (uint32_t w = 0; w < n; w++) {
				words[w] = atomic_load(&b->needed[w0 + w]);
				any |= words[w] != 0;
			}
			ret = any ? fn(opaque, b->id, w0, words, n) : 0;
			if (ret)
				return ret;
		}
	}
	return 0;
}

static int put_discard(void *out, uint32_t block, uint64_t first_word,
		       const uint64_t *words, uint32_t n)
{
	mig_stream_put_pc_discard(out, block, first_word * 64 * PS, words, n);
	return 0;	/* the stream's error is sticky: checked at the end */
}

int pc_dest_put_needed(struct pc_dest *pc, struct mig_stream *out)
{
	uint64_t words[MIG_PC_DISCARD_WORDS_MAX];

	pc_dest_each_needed(pc, words, MIG_PC_DISCARD_WORDS_MAX, put_discard, out);
	return mig_stream_error(out);
}

void pc_dest_pause(struct pc_dest *pc)
{
	pthread_mutex_lock(&pc->lock);
	pc->fd = -1;		/* faults are noted, asked for after recovery */
	pthread_mutex_unlock(&pc->lock);
}

int pc_dest_rerequest(struct pc_dest *pc)
{
	int n = 0;

	for (unsigned i = 0; i < pc->nblocks; i++) {
		struct pc_dest_block *b = &pc->b[i];

		for (uint64_t pfn = 0; pfn < b->npages; pfn++) {
			if (bit_test(b->requested, pfn) && bit_test(b->needed, pfn)) {
				send_request(pc, b, pfn);
				n++;
			}
		}
	}
	return n;
}
