/*
 * postcopy_src.c - the source's side of post-copy. At the switch the guest
 * is paused here and its memory frozen; the dirty bitmap of the last sync
 * says which pages the destination lacks (POSTCOPY_DISCARD). After the
 * handover the destination runs the guest and this side pushes every
 * missing page exactly once: the pages the destination asks for (PC_REQ)
 * first, the rest in the background, in small batches so a request never
 * waits long behind them. Then EOF; the destination answers PC_DONE with
 * its fault statistics once every page is in place.
 */
#include "postcopy.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "log.h"
#include "mig_int.h"
#include "util.h"

#define PS 4096ULL
#define BG_BATCH 32			/* 128 KiB between request checks */

int pc_source_put_discard(struct ram_sender *rs, struct mig_stream *out,
			  struct err *err)
{
	for (unsigned b = 0; b < rs->nblocks; b++) {
		uint64_t nwords = (rs->npages[b] + 63) / 64;

		for (uint64_t w0 = 0; w0 < nwords; w0 += MIG_PC_DISCARD_WORDS_MAX) {
			uint32_t n = (uint32_t)MIN(nwords - w0, (uint64_t)MIG_PC_DISCARD_WORDS_MAX);
			bool any = false;

			for (uint32_t w = 0; w < n && !any; w++)
				any = rs->bitmap[b][w0 + w] != 0;
			if (any)
				mig_stream_put_pc_discard(out, rs->blocks[b].id, w0 * 64 * PS,
							  rs->bitmap[b] + w0, n);
		}
	}
	return mig_stream_get_err(out, err);
}

void pc_source_init(struct pc_source *ps, struct ram_sender *rs,
		    struct mig_stream *out, int fd, uint64_t bandwidth)
{
	memset(ps, 0, sizeof(*ps));
	ps->rs = rs;
	ps->out = out;
	ps->fd = fd;
	ps->bandwidth = bandwidth;
	ps->timeout_ms = MIG_IO_TIMEOUT_MS;	/* the caller sets the keepalive rule */
	pc_reqq_init(&ps->q);
	for (unsigned b = 0; b < rs->nblocks; b++)
		ps->left += pc_bitmap_count(rs->bitmap[b], rs->npages[b]);
}

static bool take(struct pc_source *ps, unsigned b, uint64_t pfn)
{
	uint64_t *w = &ps->rs->bitmap[b][pfn / 64], m = 1ULL << (pfn % 64);

	if (!(*w & m))
		return false;
	*w &= ~m;
	ps->left--;
	return true;
}

/* Send up to n pages of block b from pfn on that are still missing. */
static int send_pages(struct pc_source *ps, unsigned b, uint64_t pfn, unsigned max,
		      uint64_t *sent)
{
	struct ram_sender *rs = ps->rs;
	uint64_t off[BG_BATCH];
	const void *ptr[BG_BATCH];
	unsigned n = 0;

	*sent = 0;
	for (; pfn < rs->npages[b] && n < max; pfn++) {
		const uint8_t *page = rs->blocks[b].host + pfn * PS;

		if (!take(ps, b, pfn))
			continue;
		if (mig_page_is_zero(page)) {
			mig_stream_put_ram_zero(ps->out, rs->blocks[b].id, pfn * PS, 1);
			rs->pages_zero++;
		} else {
			off[n] = pfn * PS;
			ptr[n++] = page;
		}
		(*sent)++;
	}
	if (n) {
		mig_stream_put_ram_batch(ps->out, rs->blocks[b].id, off, ptr, n);
		rs->pages_normal += n;
	}
	ps->cursor[b] = pfn;
	mig_rate_limit(ps->bandwidth, &ps->rate_start_ns, &ps->rate_bytes, n * PS);
	return mig_stream_flush(ps->out);
}

/* Read the requests that arrived (no waiting); queue them. */
static int read_requests(struct pc_source *ps, int wait_ms, struct err *err)
{
	struct pollfd p = { .fd = ps->fd, .events = POLLIN };

	while (!pc_reqq_full(&ps->q) && poll(&p, 1, wait_ms) > 0) {
		uint8_t body[MIG_CTL_MSG_MAX];
		uint16_t type;
		size_t len;
		uint32_t id;
		uint64_t off;
		int ret = mig_ctl_recv_raw(ps->fd, ps->timeout_ms, &type, body, &len, err);

		if (ret)
			return ret;
		wait_ms = 0;
		if (type == MIG_CTL_ERROR) {
			ps->dest_error = true;
			body[MIN(len, sizeof(body) - 1)] = 0;
			return err_set(err, -EPROTO, "destination: %s", (char *)body);
		}
		if (type == MIG_CTL_PC_DONE) {
			body[MIN(len, sizeof(body) - 1)] = 0;
			if (pc_report_parse((char *)body, &ps->report, err))
				return err->code;
			return 1;
		}
		if (type != MIG_CTL_PC_REQ)
			return err_set(err, -EPROTO, "unexpected %s in post-copy", mig_ctl_name(type));
		if (pc_req_decode(body, len, &id, &off, err))
			return err->code;
		ret = -1;
		for (unsigned b = 0; b < ps->rs->nblocks; b++)
			if (ps->rs->blocks[b].id == id)
				ret = (int)b;
		if (ret < 0 || off % PS || off >= ps->rs->blocks[ret].size)
			return err_set(err, -EPROTO, "PC_REQ for block %u offset 0x%llx: no such page",
				       id, (unsigned long long)off);
		ps->requests++;
		pc_reqq_push(&ps->q, (uint32_t)ret, off / PS);
	}
	return 0;
}

/* Requested pages first, each with the few after it (locality). */
static int serve_requests(struct pc_source *ps, struct err *err)
{
	uint32_t b;
	uint64_t pfn, sent;

	while (pc_reqq_pop(&ps->q, &b, &pfn)) {
		if (!(ps->rs->bitmap[b][pfn / 64] & (1ULL << (pfn % 64))))
			continue;	/* already sent: it is on its way */
		if (send_pages(ps, b, pfn, 1, &sent))
			return mig_stream_get_err(ps->out, err);
		ps->req_pages += sent;
	}
	return 0;
}

static int push_background(struct pc_source *ps, struct err *err)
{
	struct ram_sender *rs = ps->rs;

	for (unsigned b = 0; b < rs->nblocks; b++) {
		uint64_t pfn = pc_bitmap_next(rs->bitmap[b], rs->npages[b], ps->cursor[b]), sent;

		if (pfn >= rs->npages[b])
			continue;
		if (send_pages(ps, b, pfn, BG_BATCH, &sent))
			return mig_stream_get_err(ps->out, err);
		ps->bg_pages += sent;
		return 0;
	}
	return 0;
}

int pc_source_run(struct pc_source *ps, struct err *err)
{
	uint64_t deadline;
	int ret;

	while (ps->left) {
		ret = read_requests(ps, 0, err);
		if (!ret)
			ret = serve_requests(ps, err);
		if (!ret)
			ret = push_background(ps, err);
		if (ret)
			return ret < 0 ? ret : err_set(err, -EPROTO, "PC_DONE with pages left");
		if (ps->progress)
			ps->progress(ps->opaque);
		if (ps->bg_pages + ps->req_pages >= PC_FAULT_PAGES)
			fault_point("src-pc-paging");
	}
	mig_stream_put_eof(ps->out);
	if (mig_stream_flush(ps->out))
		return mig_stream_get_err(ps->out, err);
	deadline = time_now_ns() + (uint64_t)ps->timeout_ms * 1000000ULL;
	do {
		ret = read_requests(ps, 200, err);	/* late requests: dropped */
		pc_reqq_init(&ps->q);
	} while (!ret && time_now_ns() < deadline);
	if (ret == 1) {
		log_info("mig", "post-copy done: %llu requests, %llu background pages; "
			 "destination: %llu faults, latency avg %llu us median %llu us max %llu us",
			 (unsigned long long)ps->requests, (unsigned long long)ps->bg_pages,
			 (unsigned long long)ps->report.faults,
			 (unsigned long long)ps->report.lat_avg_us,
			 (unsigned long long)ps->report.lat_p50_us,
			 (unsigned long long)ps->report.lat_max_us);
		return 0;
	}
	return ret ? ret : err_set(err, -ETIMEDOUT, "destination did not confirm the end of post-copy");
}
