/*
 * multifd_recv.c - the destination's parallel channels (see multifd.h).
 *
 * mfd_recv_open() accepts connections on the migration's listening socket
 * until it holds one per announced channel: each must open with a
 * MULTIFD_HELLO carrying this migration's id and an index not yet taken,
 * within HELLO_MS; anything else is a stranger, logged, closed and not
 * counted. Then one thread per channel reads its records: PAGES go into
 * guest RAM (with the destination's fill, fill.h, raw pages are placed
 * from the channel's read buffer as they arrive, while they are in cache;
 * without it, readv() straight into guest RAM; compressed batches are
 * decoded into a scratch buffer that must come out exactly n pages long,
 * then placed), SYNC advances the channel's sequence number. The main
 * loader waits on those numbers (mfd_recv_sync).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "compress.h"
#include "fill.h"
#include "log.h"
#include "mig_int.h"
#include "multifd.h"
#include "util.h"

#define CHAN_BUFSIZE	(256u << 10)
#define ACCEPT_MS	10000		/* all channels must arrive by then */
#define HELLO_MS	2000		/* a connection must say HELLO by then */
#define STRANGERS_MAX	64

struct mfd_rchan {
	struct mfd_recv *r;
	unsigned idx;
	int fd;
	pthread_t thread;
	bool started;
	struct mig_stream in;
	struct mig_comp *comp;
	uint8_t *cbuf, *scratch;
	struct mig_mfd_pages pages;
	uint64_t seq;			/* last SYNC applied, under r->lock */
};

struct mfd_recv {
	struct mig_mfd_channels c;
	struct mig_ram_block *blocks;	/* a copy: the loader's goes first */
	size_t nblocks;
	struct mig_fill *fill;		/* or NULL: pages go to blocks[].host */
	uint32_t page_size;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool closing;
	struct err failed;		/* first channel error */
	uint64_t progress_ns;		/* a channel's last record, under lock */
	struct mfd_rchan ch[MIG_MFD_CHANNELS_MAX];
};

/* ---- the channel thread ---- */

/* n pages at buf (one after another) to p->offsets[first..] of block b */
static int place(struct mfd_rchan *ch, const struct mig_ram_block *b, uint32_t first,
		 uint32_t n, const uint8_t *buf, struct err *err)
{
	struct mfd_recv *r = ch->r;
	size_t ps = r->page_size;
	void *src[MIG_RAM_BATCH_MAX];

	if (!r->fill) {
		for (uint32_t i = 0; i < n; i++)
			memcpy((uint8_t *)b->host + ch->pages.offsets[first + i], buf + i * ps, ps);
		return 0;
	}
	for (uint32_t i = 0; i < n; i++)
		src[i] = (uint8_t *)buf + i * ps;
	return mig_fill_pages(r->fill, (unsigned)(b - r->blocks), ch->pages.offsets + first,
			      src, n, err);
}

static int recv_compressed(struct mfd_rchan *ch, const struct mig_ram_block *b,
			   struct err *err)
{
	struct mig_mfd_pages *p = &ch->pages;
	size_t ps = ch->r->page_size;
	int ret;

	mig_stream_get_bytes(&ch->in, ch->cbuf, p->data_len);
	if (mig_stream_error(&ch->in))
		return mig_stream_get_err(&ch->in, err);
	ret = mig_comp_decompress(ch->comp, ch->cbuf, p->data_len, ch->scratch,
				  (size_t)p->n * ps, err);
	return ret ? ret : place(ch, b, 0, p->n, ch->scratch, err);
}

/* Raw pages through the fill: placed from the read buffer, as they come. */
static int recv_fill(struct mfd_rchan *ch, const struct mig_ram_block *b, struct err *err)
{
	struct mig_mfd_pages *p = &ch->pages;
	size_t ps = ch->r->page_size;

	for (uint32_t i = 0; i < p->n;) {
		size_t len;
		const uint8_t *v = mig_stream_get_view(&ch->in, ps, (size_t)(p->n - i) * ps, &len);
		int ret;

		if (!v)
			return mig_stream_get_err(&ch->in, err);
		ret = place(ch, b, i, (uint32_t)(len / ps), v, err);
		if (ret)
			return ret;
		i += (uint32_t)(len / ps);
	}
	return 0;
}

static int recv_pages(struct mfd_rchan *ch, uint64_t len, struct err *err)
{
	struct mfd_recv *r = ch->r;
	struct mig_mfd_pages *p = &ch->pages;
	const struct mig_ram_block *b;
	void *dst[MIG_RAM_BATCH_MAX];
	int ret;

	ret = mig_mfd_get_pages(&ch->in, len, r->blocks, r->nblocks, r->page_size,
				r->c.method, p, &b, err);
	if (ret)
		return ret;
	if (p->method != MIG_MFD_NONE)
		return recv_compressed(ch, b, err);
	if (r->fill)
		return recv_fill(ch, b, err);
	for (uint32_t i = 0; i < p->n; i++)
		dst[i] = (uint8_t *)b->host + p->offsets[i];
	mig_stream_get_pages(&ch->in, dst, p->n, r->page_size);
	return mig_stream_error(&ch->in) ? mig_stream_get_err(&ch->in, err) : 0;
}

static int recv_sync(struct mfd_rchan *ch, struct err *err)
{
	uint64_t seq;
	int ret = mig_mfd_get_sync(&ch->in, &seq, err);

	if (ret)
		return ret;
	pthread_mutex_lock(&ch->r->lock);
	if (seq <= ch->seq)
		ret = err_set(err, -EPROTO, "MULTIFD_SYNC %llu after %llu",
			      (unsigned long long)seq, (unsigned long long)ch->seq);
	else
		ch->seq = seq;
	pthread_cond_broadcast(&ch->r->cv);
	pthread_mutex_unlock(&ch->r->lock);
	return ret;
}

static void progressed(struct mfd_recv *r)
{
	pthread_mutex_lock(&r->lock);
	r->progress_ns = time_now_ns();
	pthread_mutex_unlock(&r->lock);
}

static int recv_one(struct mfd_rchan *ch, struct err *err)
{
	struct mig_rec_hdr rh;
	int ret = mig_mfd_get_rec(&ch->in, &rh, err);

	if (ret)
		return ret;
	progressed(ch->r);
	if (rh.type == MIG_REC_MULTIFD_PAGES)
		return recv_pages(ch, rh.length, err);
	if (rh.type == MIG_REC_MULTIFD_SYNC)
		return recv_sync(ch, err);
	return err_set(err, -EPROTO, "second MULTIFD_HELLO");
}

static void *rchan_thread(void *arg)
{
	struct mfd_rchan *ch = arg;
	struct mfd_recv *r = ch->r;
	struct err e = { 0 };
	int ret;

	pthread_setname_np(pthread_self(), "mig-mfd-recv");
	do {
		ret = recv_one(ch, &e);
	} while (!ret);
	pthread_mutex_lock(&r->lock);
	if (!r->closing && !r->failed.code) {
		err_set(&r->failed, ret, "channel %u: %s", ch->idx, e.msg);
		log_err("mig", "dest: %s", r->failed.msg);
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* ---- accepting the channels ---- */

/* Read and check the HELLO of a new connection; 0 = one of ours. */
static int hello(struct mfd_recv *r, struct mig_stream *in, struct mig_mfd_hello *h,
		 struct err *err)
{
	struct mig_rec_hdr rh;
	int ret = mig_mfd_get_rec(in, &rh, err);

	if (!ret && rh.type != MIG_REC_MULTIFD_HELLO)
		ret = err_set(err, -EPROTO, "%s before MULTIFD_HELLO", mig_rec_type_name(rh.type));
	if (!ret)
		ret = mig_mfd_get_hello(in, h, err);
	if (ret)
		return ret;
	if (memcmp(h->id, r->c.id, MIG_MFD_ID_LEN))
		return err_set(err, -EPERM, "not this migration's id");
	if (h->n != r->c.n || r->ch[h->index].fd >= 0)
		return err_set(err, -EPROTO, "channel %u of %u: not expected", h->index, h->n);
	return 0;
}

/*
 * TLS (when this destination has it) and keepalive exactly as on the main
 * connection, then HELLO. On error the fd is closed.
 */
static int take_conn(struct mfd_recv *r, int fd, struct err *err)
{
	struct mig_mfd_hello h;
	struct mig_stream in;
	struct mfd_rchan *ch;
	int ret;

	mig_sock_tune(fd);
	fd = mig_secure_accept(fd, err);
	if (fd < 0)
		return fd;
	mig_keepalive_tune(fd, mig_keepalive_dest());
	ret = mig_stream_init_fd_reader(&in, fd, CHAN_BUFSIZE);
	if (ret) {
		close(fd);
		return err_set(err, ret, "out of memory");
	}
	mig_stream_set_timeout(&in, HELLO_MS);
	ret = hello(r, &in, &h, err);
	if (ret) {
		mig_stream_fini(&in);
		close(fd);
		return ret;
	}
	ch = &r->ch[h.index];
	ch->fd = fd;
	ch->in = in;
	/*
	 * A channel may rightly be idle for a whole pass (XBZRLE and zero runs
	 * go on the main stream): no read timeout. A dead peer is caught by TCP
	 * keepalive, a live but stuck one by mfd_recv_sync()'s limit.
	 */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ 0 }, sizeof(struct timeval));
	mig_stream_set_timeout(&ch->in, 0);
	return 0;
}

static int accept_all(struct mfd_recv *r, int listen_fd, struct err *err)
{
	uint64_t deadline = time_now_ns() + ACCEPT_MS * 1000000ULL;
	unsigned got = 0, strangers = 0;

	while (got < r->c.n) {
		struct pollfd p = { .fd = listen_fd, .events = POLLIN };
		int64_t left = (int64_t)(deadline - time_now_ns()) / 1000000;
		struct err e = { 0 };
		int fd;

		if (left <= 0 || strangers > STRANGERS_MAX)
			return err_set(err, -ETIMEDOUT, "%u of %u channels connected (%u refused)",
				       got, r->c.n, strangers);
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (take_conn(r, fd, &e)) {	/* closes fd */
			log_warn("mig", "dest: refused a channel connection: %s", e.msg);
			strangers++;
			continue;
		}
		got++;
	}
	return 0;
}

static int rchan_start(struct mfd_recv *r, struct mfd_rchan *ch, struct err *err)
{
	int ret;

	ch->r = r;
	if (r->c.method != MIG_MFD_NONE) {
		ch->comp = mig_comp_new(r->c.method, r->c.level, err);
		ch->cbuf = malloc(MIG_MFD_DATA_MAX);
		ch->scratch = malloc(MIG_RAM_BATCH_BYTES);
		if (!ch->comp || !ch->cbuf || !ch->scratch)
			return err_set(err, -ENOMEM, "out of memory for a channel");
	}
	ret = pthread_create(&ch->thread, NULL, rchan_thread, ch);
	if (ret)
		return err_set(err, -ret, "cannot start a channel thread: %s", strerror(ret));
	ch->started = true;
	return 0;
}

struct mfd_recv *mfd_recv_open(int listen_fd, const struct mig_mfd_channels *c,
			       const struct mig_ram_block *blocks, size_t nblocks,
			       uint32_t page_size, struct mig_fill *fill, struct err *err)
{
	struct mfd_recv *r = calloc(1, sizeof(*r));
	int ret;

	if (!r) {
		err_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < nblocks && !fill; i++)
		if (!blocks[i].host) {
			err_set(err, -ENOTSUP, "block '%s' is not mapped for the channels",
				blocks[i].idstr);
			free(r);
			return NULL;
		}
	r->c = *c;
	r->blocks = calloc(nblocks, sizeof(*blocks));
	if (!r->blocks) {
		free(r);
		err_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	memcpy(r->blocks, blocks, nblocks * sizeof(*blocks));
	r->nblocks = nblocks;
	r->page_size = page_size;
	r->fill = fill;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cv, NULL);
	for (unsigned i = 0; i < MIG_MFD_CHANNELS_MAX; i++) {
		r->ch[i].fd = -1;
		r->ch[i].idx = i;
	}
	ret = accept_all(r, listen_fd, err);
	for (unsigned i = 0; !ret && i < c->n; i++)
		ret = rchan_start(r, &r->ch[i], err);
	if (ret) {
		mfd_recv_free(r);
		return NULL;
	}
	log_info("mig", "dest: %u channels, compression %s", c->n,
		 mig_mfd_method_name(c->method));
	return r;
}

/* ---- sync and teardown ---- */

/*
 * Waits as long as the channels make progress; fails when none has read a
 * record for the keepalive time (the rule for a silent peer).
 */
int mfd_recv_sync(struct mfd_recv *r, uint64_t seq, struct err *err)
{
	uint64_t limit = (uint64_t)mig_keepalive_timeout_ms(mig_keepalive_dest()) * 1000000ULL;
	uint64_t start = time_now_ns();
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		uint64_t last = MAX(start, r->progress_ns);
		unsigned behind = 0;
		struct timespec ts;

		if (r->failed.code) {
			ret = err_set(err, r->failed.code, "%s", r->failed.msg);
			break;
		}
		for (unsigned i = 0; i < r->c.n; i++)
			behind += r->ch[i].seq < seq;
		if (!behind)
			break;
		if (time_now_ns() - last > limit) {
			ret = err_set(err, -ETIMEDOUT, "%u channels silent before sync %llu",
				      behind, (unsigned long long)seq);
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&r->cv, &r->lock, &ts);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int mfd_recv_error(struct mfd_recv *r, struct err *err)
{
	int ret = 0;

	if (!r)
		return 0;
	pthread_mutex_lock(&r->lock);
	if (r->failed.code)
		ret = err_set(err, r->failed.code, "%s", r->failed.msg);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void mfd_recv_free(struct mfd_recv *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->closing = true;
	pthread_mutex_unlock(&r->lock);
	for (unsigned i = 0; i < MIG_MFD_CHANNELS_MAX; i++) {
		struct mfd_rchan *ch = &r->ch[i];

		if (ch->fd >= 0)
			shutdown(ch->fd, SHUT_RDWR);
		if (ch->started)
			pthread_join(ch->thread, NULL);
		if (ch->fd >= 0) {
			mig_stream_fini(&ch->in);
			close(ch->fd);
		}
		mig_comp_free(ch->comp);
		free(ch->cbuf);
		free(ch->scratch);
	}
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->lock);
	free(r->blocks);
	free(r);
}
