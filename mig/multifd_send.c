/*
 * multifd_send.c - the source's parallel channels (see multifd.h).
 *
 * Each channel has one job slot and one thread. The RAM sender
 * (mfd_send_batch) puts a batch of page pointers into the first idle slot
 * and goes on scanning; the channel's thread sends it: raw pages with
 * writev() straight from guest memory, or copied into a staging buffer
 * (a consistent snapshot), compressed, and sent compressed if that is
 * smaller. One mutex and one condition variable cover all slots. The first
 * channel error sticks and fails every later call.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "compress.h"
#include "log.h"
#include "mig_int.h"
#include "multifd.h"
#include "util.h"

_Static_assert((int)MIG_COMPRESS_NONE == (int)MIG_MFD_NONE &&
	       (int)MIG_COMPRESS_ZSTD == (int)MIG_MFD_ZSTD &&
	       (int)MIG_COMPRESS_LZ4 == (int)MIG_MFD_LZ4, "mig.h and the wire disagree");

#define CHAN_BUFSIZE	(256u << 10)
#define WAIT_MS		100		/* re-check cancel this often */
#define BEAT_NS		250000000ULL	/* main-stream heartbeat period */

enum mfd_job {
	MFD_JOB_NONE = 0,
	MFD_JOB_PAGES,
	MFD_JOB_SYNC,
};

struct mfd_chan {
	struct mfd_send *s;
	unsigned idx;
	int fd;
	pthread_t thread;
	bool started;
	struct mig_stream out;
	struct mig_comp *comp;
	uint8_t *stage, *cbuf;
	size_t cbuf_cap;
	_Atomic uint64_t bytes;
	_Atomic uint64_t pages_compressed;
	/* the job slot, under s->lock */
	enum mfd_job job;
	uint32_t block;
	size_t n;
	uint64_t seq;
	uint64_t offsets[MIG_RAM_BATCH_MAX];
	const void *pages[MIG_RAM_BATCH_MAX];
};

struct mfd_send {
	unsigned n;
	uint32_t method, page_size;
	int level;
	uint8_t id[MIG_MFD_ID_LEN];
	atomic_bool *cancel;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool stop;
	struct err failed;		/* first channel error */
	unsigned next;			/* round-robin start */
	uint64_t seq;
	/* heartbeat on the main stream (see beat()) */
	struct mig_stream *main;
	uint64_t main_seq;		/* last MULTIFD_SYNC written there */
	uint64_t beat_ns;
	struct mfd_chan ch[MIG_MFD_CHANNELS_MAX];
};

static int chan_alloc(struct mfd_send *s, struct mfd_chan *c, struct err *err)
{
	c->s = s;
	c->fd = -1;
	if (s->method == MIG_MFD_NONE)
		return 0;
	c->comp = mig_comp_new(s->method, s->level, err);
	if (!c->comp)
		return -ENOMEM;
	c->cbuf_cap = mig_comp_bound(s->method, MIG_RAM_BATCH_BYTES);
	if (c->cbuf_cap > MIG_MFD_DATA_MAX)
		c->cbuf_cap = MIG_MFD_DATA_MAX;
	c->stage = malloc(MIG_RAM_BATCH_BYTES);
	c->cbuf = malloc(c->cbuf_cap);
	if (!c->stage || !c->cbuf)
		return err_set(err, -ENOMEM, "out of memory for compression buffers");
	return 0;
}

struct mfd_send *mfd_send_new(unsigned n, uint32_t method, int level,
			      uint32_t page_size, atomic_bool *cancel,
			      struct err *err)
{
	struct mfd_send *s;

	if (n < 1 || n > MIG_MFD_CHANNELS_MAX || method >= MIG_MFD_METHOD_END_) {
		err_set(err, -EINVAL, "channels must be 1-%u, compression none, zstd or lz4",
			MIG_MFD_CHANNELS_MAX);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		err_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	s->n = n;
	s->method = method;
	s->level = level;
	s->page_size = page_size;
	s->cancel = cancel;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cv, NULL);
	for (unsigned i = 0; i < MIG_MFD_CHANNELS_MAX; i++)
		s->ch[i].fd = -1;
	for (unsigned i = 0; i < n; i++) {
		s->ch[i].idx = i;
		if (chan_alloc(s, &s->ch[i], err)) {
			mfd_send_free(s);
			return NULL;
		}
	}
	if (getrandom(s->id, sizeof(s->id), 0) != (ssize_t)sizeof(s->id)) {
		err_set(err, -errno, "getrandom: %s", strerror(errno));
		mfd_send_free(s);
		return NULL;
	}
	return s;
}

int mfd_send_announce(struct mfd_send *s, struct mig_stream *out)
{
	struct mig_mfd_channels c = { .n = s->n, .method = s->method, .level = s->level };

	memcpy(c.id, s->id, sizeof(c.id));
	s->main = out;
	s->beat_ns = time_now_ns();
	return mig_stream_put_mfd_channels(out, &c);
}

/* ---- the channel thread ---- */

static void send_pages(struct mfd_chan *c)
{
	size_t ps = c->s->page_size, len = c->n * ps;
	long clen = 0;

	if (c->comp) {
		for (size_t i = 0; i < c->n; i++)
			memcpy(c->stage + i * ps, c->pages[i], ps);
		clen = mig_comp_compress(c->comp, c->stage, len, c->cbuf, c->cbuf_cap);
		if (clen < 0) {
			mig_stream_set_error(&c->out, (int)clen, "compression failed");
			return;
		}
	}
	if (clen > 0) {
		atomic_fetch_add(&c->pages_compressed, c->n);
		mig_stream_put_mfd_pages(&c->out, (uint32_t)ps, c->block, c->offsets, NULL,
					 c->n, c->s->method, c->cbuf, (size_t)clen);
		return;
	}
	if (c->comp)
		for (size_t i = 0; i < c->n; i++)
			c->pages[i] = c->stage + i * ps;
	mig_stream_put_mfd_pages(&c->out, (uint32_t)ps, c->block, c->offsets, c->pages,
				 c->n, MIG_MFD_NONE, NULL, 0);
}

static int do_job(struct mfd_chan *c)
{
	if (c->job == MFD_JOB_PAGES)
		send_pages(c);
	else
		mig_stream_put_mfd_sync(&c->out, c->seq);
	mig_stream_flush(&c->out);
	atomic_store(&c->bytes, mig_stream_offset(&c->out));
	return mig_stream_error(&c->out);
}

static void *chan_thread(void *arg)
{
	struct mfd_chan *c = arg;
	struct mfd_send *s = c->s;
	int ret;

	pthread_setname_np(pthread_self(), "mig-mfd-send");
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!c->job && !s->stop)
			pthread_cond_wait(&s->cv, &s->lock);
		if (s->stop)
			break;
		pthread_mutex_unlock(&s->lock);
		ret = do_job(c);
		pthread_mutex_lock(&s->lock);
		c->job = MFD_JOB_NONE;
		if (ret && !s->failed.code)
			err_set(&s->failed, ret, "channel %u: %s", c->idx,
				mig_stream_errmsg(&c->out));
		pthread_cond_broadcast(&s->cv);
		if (ret)
			break;
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- setup ---- */

static int chan_connect(struct mfd_send *s, struct mfd_chan *c, const char *uri,
			const struct mig_params *p, const struct mig_keepalive *ka,
			struct err *err)
{
	struct mig_mfd_hello h = { .index = c->idx, .n = s->n };
	int ret, fd = mig_tcp_connect(uri, err);

	if (fd >= 0) {
		mig_keepalive_tune(fd, ka);	/* on the TCP socket, before TLS */
		fd = mig_secure_connect(fd, p, uri, err);
	}
	if (fd < 0)
		return fd;
	mig_keepalive_tune(fd, ka);
	c->fd = fd;
	ret = mig_stream_init_fd_writer(&c->out, c->fd, CHAN_BUFSIZE);
	if (ret)
		return err_set(err, ret, "out of memory");
	mig_stream_set_timeout(&c->out, mig_keepalive_stream_timeout_ms(ka));
	memcpy(h.id, s->id, sizeof(h.id));
	mig_stream_put_mfd_hello(&c->out, &h);
	if (mig_stream_flush(&c->out))
		return mig_stream_get_err(&c->out, err);
	ret = pthread_create(&c->thread, NULL, chan_thread, c);
	if (ret)
		return err_set(err, -ret, "cannot start a channel thread: %s", strerror(ret));
	c->started = true;
	return 0;
}

int mfd_send_connect(struct mfd_send *s, const char *uri, const struct mig_params *p,
		     const struct mig_keepalive *ka, struct err *err)
{
	for (unsigned i = 0; i < s->n; i++) {
		int ret = chan_connect(s, &s->ch[i], uri, p, ka, err);

		if (ret) {
			err_prefix(err, "channel %u", i);
			return ret;
		}
	}
	log_info("mig", "source: %u channels, compression %s", s->n,
		 mig_mfd_method_name(s->method));
	return 0;
}

/* ---- the producer side ---- */

/*
 * Under s->lock, on the migration thread: while a pass runs on the channels
 * the main stream would be silent, and the destination's main-stream
 * timeout (the keepalive rule) would take that for a dead peer. So every
 * BEAT_NS repeat the last MULTIFD_SYNC there: every channel has reached
 * it already, which makes it a no-op for the destination.
 */
static void beat(struct mfd_send *s)
{
	uint64_t now = time_now_ns();

	if (!s->main || now - s->beat_ns < BEAT_NS)
		return;
	s->beat_ns = now;
	pthread_mutex_unlock(&s->lock);
	mig_stream_put_mfd_sync(s->main, s->main_seq);
	mig_stream_flush(s->main);	/* an error sticks: seen at the pass end */
	pthread_mutex_lock(&s->lock);
}

/* Under s->lock: a sticky channel error or a cancel ends the wait. */
static int check_failed(struct mfd_send *s, struct err *err)
{
	if (s->failed.code)
		return err_set(err, s->failed.code, "%s", s->failed.msg);
	if (atomic_load(s->cancel))
		return err_set(err, -ECANCELED, "migration cancelled");
	return 0;
}

static void wait_a_little(struct mfd_send *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += WAIT_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&s->cv, &s->lock, &ts);
}

/* Under s->lock: an idle channel (round robin), waiting for one. */
static struct mfd_chan *idle_chan(struct mfd_send *s, struct err *err)
{
	for (;;) {
		beat(s);
		if (check_failed(s, err))
			return NULL;
		for (unsigned k = 0; k < s->n; k++) {
			struct mfd_chan *c = &s->ch[(s->next + k) % s->n];

			if (!c->job) {
				s->next = (c->idx + 1) % s->n;
				return c;
			}
		}
		wait_a_little(s);
	}
}

int mfd_send_batch(struct mfd_send *s, uint32_t block, const uint64_t *offsets,
		   const void *const *pages, size_t n, struct err *err)
{
	struct mfd_chan *c;

	if (n < 1 || n > MIG_RAM_BATCH_MAX)
		return err_set(err, -EINVAL, "%zu pages in a batch", n);
	pthread_mutex_lock(&s->lock);
	c = idle_chan(s, err);
	if (c) {
		c->block = block;
		c->n = n;
		memcpy(c->offsets, offsets, n * sizeof(*offsets));
		memcpy(c->pages, pages, n * sizeof(*pages));
		c->job = MFD_JOB_PAGES;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->lock);
	return c ? 0 : err->code;
}

/* Under s->lock: wait until channel c (or all, c NULL) is idle. */
static int wait_idle(struct mfd_send *s, struct mfd_chan *c, struct err *err)
{
	for (;;) {
		bool busy = false;

		beat(s);
		if (check_failed(s, err))
			return err->code;
		for (unsigned i = 0; i < s->n; i++)
			busy |= (!c || c == &s->ch[i]) && s->ch[i].job;
		if (!busy)
			return 0;
		wait_a_little(s);
	}
}

int mfd_send_sync(struct mfd_send *s, struct mig_stream *out, struct err *err)
{
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	s->seq++;
	for (unsigned i = 0; i < s->n && !ret; i++) {
		ret = wait_idle(s, &s->ch[i], err);
		if (!ret) {
			s->ch[i].seq = s->seq;
			s->ch[i].job = MFD_JOB_SYNC;
			pthread_cond_broadcast(&s->cv);
		}
	}
	if (!ret)
		ret = wait_idle(s, NULL, err);
	pthread_mutex_unlock(&s->lock);
	if (ret)
		return ret;
	if (mig_stream_put_mfd_sync(out, s->seq))
		return mig_stream_get_err(out, err);
	s->main_seq = s->seq;		/* only this thread writes either */
	return 0;
}

uint64_t mfd_send_bytes(struct mfd_send *s)
{
	uint64_t b = 0;

	for (unsigned i = 0; s && i < s->n; i++)
		b += atomic_load(&s->ch[i].bytes);
	return b;
}

uint64_t mfd_send_pages_compressed(struct mfd_send *s)
{
	uint64_t n = 0;

	for (unsigned i = 0; s && i < s->n; i++)
		n += atomic_load(&s->ch[i].pages_compressed);
	return n;
}

void mfd_send_free(struct mfd_send *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->n; i++) {
		struct mfd_chan *c = &s->ch[i];

		if (c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);
		if (c->started)
			pthread_join(c->thread, NULL);
		mig_stream_fini(&c->out);
		if (c->fd >= 0)
			close(c->fd);
		mig_comp_free(c->comp);
		free(c->stage);
		free(c->cbuf);
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
