/*
 * ram.c - sending guest RAM: the first full pass and the dirty passes.
 *
 * First pass: the destination's memory starts zeroed, so pages that are not
 * resident (mincore) or read as zero are skipped, and the pass costs time
 * in proportion to memory the guest has touched, not to its size. Dirty
 * passes send exactly the pages KVM logged since the previous sync; a page
 * that became zero goes as a RAM_ZERO marker. Logging is re-armed
 * (KVM_CLEAR_DIRTY_LOG) chunk by chunk right before a chunk is read, so any
 * write after its copy is caught by the next sync. Pages go out in batches
 * with writev() straight from guest memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "log.h"
#include "mig_int.h"
#include "migratable.h"
#include "multifd.h"
#include "util.h"

#define PAGE		VM_PAGE_SIZE
#define BATCH_PAGES	512			/* 2 MiB per RAM_PAGES record */
#define CHUNK_PAGES	16384			/* 64 MiB re-armed at a time */

bool mig_page_is_zero(const void *page)
{
	const uint64_t *p = page;

	for (size_t i = 0; i < PAGE / 8; i += 8) {
		if (p[i] | p[i + 1] | p[i + 2] | p[i + 3] |
		    p[i + 4] | p[i + 5] | p[i + 6] | p[i + 7])
			return false;
	}
	return true;
}

int ram_sender_init(struct ram_sender *rs, struct vm *vm, struct mig_stream *out,
		    atomic_bool *cancel, uint64_t bandwidth, struct err *err)
{
	memset(rs, 0, sizeof(*rs));
	rs->vm = vm;
	rs->out = out;
	rs->cancel = cancel;
	rs->bandwidth = bandwidth;
	rs->nblocks = vm_ram_blocks(vm, rs->blocks, MIG_MAX_BLOCKS);
	for (unsigned b = 0; b < rs->nblocks; b++) {
		rs->npages[b] = rs->blocks[b].size / PAGE;
		rs->total_pages += rs->npages[b];
		rs->bitmap[b] = calloc((rs->npages[b] + 63) / 64 + 1, 8);
		if (!rs->bitmap[b])
			return err_set(err, -ENOMEM, "out of memory for dirty bitmaps");
	}
	rs->batch_off = calloc(BATCH_PAGES, sizeof(*rs->batch_off));
	rs->batch_ptr = calloc(BATCH_PAGES, sizeof(*rs->batch_ptr));
	if (!rs->batch_off || !rs->batch_ptr)
		return err_set(err, -ENOMEM, "out of memory for page batches");
	return 0;
}

int ram_sender_enable_xbzrle(struct ram_sender *rs, uint64_t cache_bytes,
			     struct err *err)
{
	rs->xcache = page_cache_new(cache_bytes, PAGE, err);
	if (!rs->xcache)
		return err && err->code ? err->code : -ENOMEM;
	rs->xsnap = malloc(PAGE);
	rs->xdelta = malloc(PAGE);
	if (!rs->xsnap || !rs->xdelta)
		return err_set(err, -ENOMEM, "out of memory for XBZRLE buffers");
	return 0;
}

void ram_sender_fini(struct ram_sender *rs)
{
	page_cache_free(rs->xcache);
	free(rs->xsnap);
	free(rs->xdelta);
	for (unsigned b = 0; b < rs->nblocks; b++)
		free(rs->bitmap[b]);
	free(rs->batch_off);
	free(rs->batch_ptr);
	memset(rs, 0, sizeof(*rs));
}

void mig_rate_limit(uint64_t bandwidth, uint64_t *start_ns, uint64_t *sent,
		    uint64_t bytes)
{
	uint64_t now, allowed_ns;

	if (!bandwidth)
		return;
	now = time_now_ns();
	if (!*start_ns || now - *start_ns > 1000000000ULL) {
		*start_ns = now;
		*sent = 0;
	}
	*sent += bytes;
	allowed_ns = *sent * 1000000000ULL / bandwidth;
	if (allowed_ns > now - *start_ns) {
		uint64_t d = allowed_ns - (now - *start_ns);
		struct timespec ts = { d / 1000000000ULL, d % 1000000000ULL };

		nanosleep(&ts, NULL);
	}
}

/*
 * After data went out: keep to the bandwidth cap and, every `tick`, let
 * the owner report progress, and stop on cancel or a peer's error.
 */
static int sent(struct ram_sender *rs, uint64_t bytes, bool tick, struct err *err)
{
	mig_rate_limit(rs->bandwidth, &rs->rate_start_ns, &rs->rate_bytes, bytes);
	if (!tick)
		return 0;
	if (atomic_load(rs->cancel))
		return err_set(err, -ECANCELED, "migration cancelled");
	return rs->progress ? rs->progress(rs->progress_opaque, err) : 0;
}

/* The batch to a parallel channel's thread (multifd.h). */
static int batch_flush_mfd(struct ram_sender *rs, uint64_t t0, struct err *err)
{
	uint64_t bytes = rs->batch_n * (uint64_t)PAGE;
	int ret = mfd_send_batch(rs->mfd, rs->blocks[rs->batch_block].id, rs->batch_off,
				 (const void *const *)rs->batch_ptr, rs->batch_n, err);

	rs->send_ns += time_now_ns() - t0;
	rs->send_bytes += bytes;
	rs->pages_normal += rs->batch_n;
	rs->batch_n = 0;
	return ret ? ret : sent(rs, bytes, true, err);
}

static int batch_flush(struct ram_sender *rs, struct err *err)
{
	uint64_t t0, bytes;
	int ret;

	if (!rs->batch_n)
		return 0;
	if (atomic_load(rs->cancel))
		return err_set(err, -ECANCELED, "migration cancelled");
	t0 = time_now_ns();
	if (rs->mfd)
		return batch_flush_mfd(rs, t0, err);
	ret = mig_stream_put_ram_batch(rs->out, rs->blocks[rs->batch_block].id,
				       rs->batch_off, (const void *const *)rs->batch_ptr,
				       rs->batch_n);
	bytes = rs->batch_n * (uint64_t)PAGE;
	rs->send_ns += time_now_ns() - t0;
	rs->send_bytes += bytes;
	rs->pages_normal += rs->batch_n;
	rs->batch_n = 0;
	if (ret)
		return mig_stream_get_err(rs->out, err);
	return sent(rs, bytes, true, err);
}

static int queue_page(struct ram_sender *rs, unsigned b, uint64_t pfn,
		      struct err *err)
{
	/*
	 * A batch never spans two 2 MiB regions of guest RAM: the parallel
	 * channels then never write into one page table at once on the
	 * destination (its lock and its cache lines stay with one thread).
	 */
	if (rs->batch_n && (rs->batch_block != b || pfn % BATCH_PAGES == 0)) {
		int ret = batch_flush(rs, err);

		if (ret)
			return ret;
	}
	rs->batch_block = b;
	rs->batch_off[rs->batch_n] = pfn * PAGE;
	rs->batch_ptr[rs->batch_n] = rs->blocks[b].host + pfn * PAGE;
	if (++rs->batch_n == BATCH_PAGES)
		return batch_flush(rs, err);
	return 0;
}

uint64_t ram_resident_bytes(const struct ram_sender *rs)
{
	unsigned char *v = malloc(CHUNK_PAGES);
	uint64_t n = 0;

	if (!v)
		return 0;
	for (unsigned b = 0; b < rs->nblocks; b++) {
		for (uint64_t first = 0; first < rs->npages[b]; first += CHUNK_PAGES) {
			uint64_t c = MIN((uint64_t)CHUNK_PAGES, rs->npages[b] - first);

			if (mincore((uint8_t *)rs->blocks[b].host + first * PAGE, c * PAGE, v) < 0) {
				n += c;
				continue;
			}
			for (uint64_t i = 0; i < c; i++)
				n += v[i] & 1;
		}
	}
	free(v);
	return n * PAGE;
}

/* Write-protect all of RAM: from now on every write is logged. */
static int protect_all(struct ram_sender *rs, uint64_t *ones, struct err *err)
{
	for (unsigned b = 0; b < rs->nblocks; b++) {
		for (uint64_t first = 0; first < rs->npages[b]; first += CHUNK_PAGES) {
			uint64_t n = MIN((uint64_t)CHUNK_PAGES, rs->npages[b] - first);
			int ret = vm_dirty_log_clear(rs->vm, b, first, n, ones, err);

			if (ret)
				return ret;
		}
	}
	return 0;
}

/*
 * Arm one chunk before its pages are read. Without deferral: re-protect
 * it. With deferral (all of RAM was protected when the pass began): read
 * the log, so that pages written since then can be left for pass 2.
 */
static int arm_chunk(struct ram_sender *rs, unsigned b, uint64_t first, uint64_t n,
		     uint64_t *ones, struct err *err)
{
	if (rs->defer_hot)
		return vm_dirty_log_get(rs->vm, b, rs->bitmap[b], err);
	return vm_dirty_log_clear(rs->vm, b, first, n, ones, err);
}

static bool page_is_hot(const struct ram_sender *rs, unsigned b, uint64_t pfn)
{
	return rs->defer_hot && (rs->bitmap[b][pfn / 64] >> (pfn % 64) & 1);
}

/*
 * Pass 1. A page the guest has written again since the pass began is hot:
 * sending it now would only send it twice, so it keeps its dirty bit and
 * goes in pass 2, when auto-converge (if any) already slows the guest.
 */
int ram_send_first_pass(struct ram_sender *rs, struct err *err)
{
	unsigned char *resident = malloc(CHUNK_PAGES);
	uint64_t ones[CHUNK_PAGES / 64];
	int ret = 0;

	if (!resident)
		return err_set(err, -ENOMEM, "out of memory");
	memset(ones, 0xff, sizeof(ones));
	rs->pass_todo = rs->total_pages;
	rs->pass_done = 0;
	if (rs->defer_hot)
		ret = protect_all(rs, ones, err);
	for (unsigned b = 0; b < rs->nblocks && !ret; b++) {
		uint8_t *host = rs->blocks[b].host;

		for (uint64_t first = 0; first < rs->npages[b] && !ret; first += CHUNK_PAGES) {
			uint64_t n = MIN((uint64_t)CHUNK_PAGES, rs->npages[b] - first);

			ret = arm_chunk(rs, b, first, n, ones, err);
			if (ret)
				break;
			if (mincore(host + first * PAGE, n * PAGE, resident) < 0)
				memset(resident, 1, n);
			for (uint64_t i = 0; i < n && !ret; i++) {
				uint64_t pfn = first + i;

				if (page_is_hot(rs, b, pfn)) {
					rs->pages_deferred++;
					continue;
				}
				if (!(resident[i] & 1) || mig_page_is_zero(host + pfn * PAGE)) {
					rs->pages_zero++;
					continue;
				}
				ret = queue_page(rs, b, pfn, err);
			}
			rs->pass_done += n;
		}
	}
	if (!ret)
		ret = batch_flush(rs, err);
	free(resident);
	return ret;
}

int64_t ram_sync(struct ram_sender *rs, struct err *err)
{
	int64_t dirty = 0;

	for (unsigned b = 0; b < rs->nblocks; b++) {
		uint64_t words = (rs->npages[b] + 63) / 64;
		int ret = vm_dirty_log_get(rs->vm, b, rs->bitmap[b], err);

		if (ret)
			return ret;
		/* bits past the end of the block are not pages */
		if (rs->npages[b] % 64)
			rs->bitmap[b][words - 1] &= (1ULL << (rs->npages[b] % 64)) - 1;
		for (uint64_t w = 0; w < words; w++)
			dirty += __builtin_popcountll(rs->bitmap[b][w]);
	}
	rs->pass_todo = (uint64_t)dirty;	/* what the next ram_send_dirty() visits */
	rs->pass_done = 0;
	return dirty;
}

static int send_zero_run(struct ram_sender *rs, unsigned b, uint64_t pfn,
			 uint64_t n, struct err *err)
{
	int ret = batch_flush(rs, err);

	if (ret)
		return ret;
	rs->pages_zero += n;
	for (uint64_t i = 0; rs->xcache && i < n; i++)
		page_cache_invalidate(rs->xcache, rs->blocks[b].id, (pfn + i) * PAGE);
	if (mig_stream_put_ram_zero(rs->out, rs->blocks[b].id, pfn * PAGE, n))
		return mig_stream_get_err(rs->out, err);
	return 0;
}

/*
 * One dirty page through XBZRLE: snapshot it (the guest keeps writing),
 * then send the delta to what the destination holds, the snapshot whole, or
 * nothing; the cache always ends equal to what the destination has.
 */
static int xbzrle_page(struct ram_sender *rs, unsigned b, uint64_t pfn,
		       struct err *err)
{
	uint32_t id = rs->blocks[b].id;
	size_t len = 0;
	uint64_t t0;
	int ret = 0;

	memcpy(rs->xsnap, rs->blocks[b].host + pfn * PAGE, PAGE);
	switch (xbzrle_save_page(rs->xcache, id, pfn * PAGE, rs->xsnap, rs->generation,
				 rs->xdelta, PAGE - 64, &len, &rs->xstats)) {
	case XBZRLE_SEND_DELTA:
		t0 = time_now_ns();
		ret = mig_stream_put_ram_xbzrle(rs->out, id, pfn * PAGE, rs->xdelta, len);
		rs->send_ns += time_now_ns() - t0;
		rs->send_bytes += len;
		rs->pages_xbzrle++;
		break;
	case XBZRLE_SEND_PAGE:
		t0 = time_now_ns();
		ret = mig_stream_put_ram_page(rs->out, id, pfn * PAGE, rs->xsnap);
		rs->send_ns += time_now_ns() - t0;
		rs->send_bytes += PAGE;
		rs->pages_normal++;
		len = 0;
		break;
	case XBZRLE_SEND_NOTHING:
		break;
	default:
		return err_set(err, -EINVAL, "XBZRLE: no verdict for page 0x%llx",
			       (unsigned long long)(pfn * PAGE));
	}
	if (ret)
		return mig_stream_get_err(rs->out, err);
	/* progress, cancel, the peer's errors: as often as a batch would */
	return sent(rs, len ? len : PAGE, ++rs->xpages % BATCH_PAGES == 0, err);
}

static int send_chunk(struct ram_sender *rs, unsigned b, uint64_t first,
		      uint64_t n, struct err *err)
{
	uint64_t *bm = rs->bitmap[b], zero_start = 0, zero_n = 0;
	uint8_t *host = rs->blocks[b].host;
	int ret = 0;

	for (uint64_t w = first / 64; w < (first + n + 63) / 64 && !ret; w++) {
		for (uint64_t bits = bm[w]; bits && !ret; bits &= bits - 1) {
			uint64_t pfn = w * 64 + __builtin_ctzll(bits);

			if (mig_page_is_zero(host + pfn * PAGE)) {
				if (zero_n && zero_start + zero_n == pfn) {
					zero_n++;
					continue;
				}
				if (zero_n)
					ret = send_zero_run(rs, b, zero_start, zero_n, err);
				zero_start = pfn;
				zero_n = 1;
				continue;
			}
			ret = rs->xcache ? xbzrle_page(rs, b, pfn, err) :
					   queue_page(rs, b, pfn, err);
		}
	}
	if (!ret && zero_n)
		ret = send_zero_run(rs, b, zero_start, zero_n, err);
	return ret;
}

int ram_send_dirty(struct ram_sender *rs, bool protect, struct err *err)
{
	int ret = 0;

	rs->generation++;
	for (unsigned b = 0; b < rs->nblocks && !ret; b++) {
		for (uint64_t first = 0; first < rs->npages[b] && !ret; first += CHUNK_PAGES) {
			uint64_t n = MIN((uint64_t)CHUNK_PAGES, rs->npages[b] - first);
			uint64_t *words = rs->bitmap[b] + first / 64;
			bool any = false;

			for (uint64_t w = 0; w < (n + 63) / 64 && !any; w++)
				any = words[w] != 0;
			if (!any)
				continue;
			for (uint64_t w = 0; w < (n + 63) / 64; w++)
				rs->pass_done += __builtin_popcountll(words[w]);
			if (protect)
				ret = vm_dirty_log_clear(rs->vm, b, first, n, words, err);
			if (!ret)
				ret = send_chunk(rs, b, first, n, err);
		}
	}
	if (!ret)
		ret = batch_flush(rs, err);
	return ret;
}
