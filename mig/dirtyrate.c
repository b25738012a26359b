/*
 * dirtyrate.c - measure how fast a running guest dirties its memory,
 * without migrating (QEMU's calc-dirty-rate, dirty-bitmap mode).
 *
 * Dirty logging is switched on for the measurement only (the source's
 * probe leaves it on for pass 1: one switch fewer). The time is cut
 * into windows: each starts with every page re-protected, and ends by
 * counting the pages written since. The dirty rate is the mean over the
 * windows of (distinct pages dirtied in the window) / (window length): the
 * rate a pre-copy pass of about that length sees. The working set is the
 * union over all windows. Logging is switched off again at the end.
 *
 * mig_dirty_rate_measure() blocks (the source uses it as a short probe,
 * which ends after a first 10 ms window if the guest is quiet);
 * the mig_dirty_job_*() calls run it on a thread for the API.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mig_int.h"
#include "migratable.h"
#include "util.h"

struct dirty_maps {
	struct mig_ram_block blocks[MIG_MAX_BLOCKS];
	unsigned n;
	uint64_t npages[MIG_MAX_BLOCKS];
	uint64_t *bits[MIG_MAX_BLOCKS], *all[MIG_MAX_BLOCKS];
};

static void maps_free(struct dirty_maps *d)
{
	for (unsigned b = 0; b < d->n; b++) {
		free(d->bits[b]);
		free(d->all[b]);
	}
}

static int maps_init(struct dirty_maps *d, struct vm *vm, struct err *err)
{
	memset(d, 0, sizeof(*d));
	d->n = vm_ram_blocks(vm, d->blocks, MIG_MAX_BLOCKS);
	for (unsigned b = 0; b < d->n; b++) {
		uint64_t words = (d->blocks[b].size / VM_PAGE_SIZE + 63) / 64;

		d->npages[b] = d->blocks[b].size / VM_PAGE_SIZE;
		d->bits[b] = calloc(words ? words : 1, 8);
		d->all[b] = calloc(words ? words : 1, 8);
		if (!d->bits[b] || !d->all[b]) {
			maps_free(d);
			return err_set(err, -ENOMEM, "out of memory for dirty bitmaps");
		}
	}
	return 0;
}

/* Read every block's bitmap; with `clear`, re-protect what was dirty. */
static int64_t maps_sync(struct dirty_maps *d, struct vm *vm, bool clear, struct err *err)
{
	int64_t count = 0;

	for (unsigned b = 0; b < d->n; b++) {
		uint64_t words = (d->npages[b] + 63) / 64;
		int ret = vm_dirty_log_get(vm, b, d->bits[b], err);

		if (!ret && clear)
			ret = vm_dirty_log_clear(vm, b, 0, d->npages[b], d->bits[b], err);
		if (ret)
			return ret;
		if (d->npages[b] % 64)
			d->bits[b][words - 1] &= (1ULL << (d->npages[b] % 64)) - 1;
		for (uint64_t w = 0; w < words && !clear; w++) {
			count += __builtin_popcountll(d->bits[b][w]);
			d->all[b][w] |= d->bits[b][w];
		}
	}
	return count;
}

static uint64_t maps_union(const struct dirty_maps *d)
{
	uint64_t n = 0;

	for (unsigned b = 0; b < d->n; b++)
		for (uint64_t w = 0; w < (d->npages[b] + 63) / 64; w++)
			n += __builtin_popcountll(d->all[b][w]);
	return n;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* One window: re-protect all, wait, count. Returns its rate in bytes/s. */
static int window(struct dirty_maps *d, struct vm *vm, uint64_t ms, uint64_t *rate,
		  struct err *err)
{
	uint64_t t0, dt;
	int64_t n = maps_sync(d, vm, true, err);

	if (n < 0)
		return (int)n;
	t0 = time_now_ns();
	sleep_ms(ms);
	n = maps_sync(d, vm, false, err);
	if (n < 0)
		return (int)n;
	dt = time_now_ns() - t0;
	*rate = dt ? (uint64_t)n * VM_PAGE_SIZE * 1000000000ULL / dt : 0;
	return 0;
}

/* The probe's first window: short, only to tell a quiet guest. */
#define QUIET_WINDOW_MS	10

int mig_dirty_rate_measure(struct vm *vm, const struct mig_dirty_opts *o, atomic_bool *cancel,
			   struct mig_dirty_rate *out, struct err *err)
{
	uint64_t t0 = time_now_ns(), sum = 0, rate = 0, total_ms = o->total_ms;
	uint64_t window_ms = o->window_ms;
	struct dirty_maps d;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!window_ms || window_ms > total_ms)
		window_ms = total_ms ? total_ms : 1;
	ret = maps_init(&d, vm, err);
	if (ret)
		return ret;
	ret = vm_dirty_log_start(vm, err);
	if (!ret && o->quiet_rate) {
		uint64_t qms = MIN((uint64_t)QUIET_WINDOW_MS, window_ms);

		ret = window(&d, vm, qms, &rate, err);
		if (!ret && rate < o->quiet_rate) {
			out->windows = 1;	/* a quiet guest: this window says enough */
			sum = rate;
			window_ms = qms;
			total_ms = 0;
		}
	}
	while (!ret && out->windows < total_ms / window_ms &&
	       !(cancel && atomic_load(cancel))) {
		ret = window(&d, vm, window_ms, &rate, err);
		if (ret)
			break;
		sum += rate;
		out->windows++;
		if (rate > out->peak_rate)
			out->peak_rate = rate;
	}
	if (ret || !o->keep_logging)
		vm_dirty_log_stop(vm);
	out->rate = out->windows ? sum / out->windows : 0;
	out->peak_rate = MAX(out->peak_rate, out->rate);
	out->wss_bytes = maps_union(&d) * VM_PAGE_SIZE;
	out->duration_ms = (time_now_ns() - t0) / 1000000;
	out->window_ms = window_ms;
	maps_free(&d);
	if (!ret && cancel && atomic_load(cancel))
		ret = err_set(err, -ECANCELED, "dirty-rate measurement cancelled");
	return ret;
}

/* ---- on a thread, for the API ---- */

struct mig_dirty_job {
	struct vm *vm;
	uint64_t total_ms, window_ms;
	pthread_t thread;
	pthread_mutex_t lock;		/* guards state, res, error */
	enum mig_dirty_state state;
	struct mig_dirty_rate res;
	char error[256];
	atomic_bool cancel;
};

static void *job_thread(void *arg)
{
	struct mig_dirty_job *j = arg;
	struct mig_dirty_opts o = { .total_ms = j->total_ms, .window_ms = j->window_ms };
	struct mig_dirty_rate r;
	struct err err = { 0 };
	int ret;

	pthread_setname_np(pthread_self(), "mig-dirtyrate");
	ret = mig_dirty_rate_measure(j->vm, &o, &j->cancel, &r, &err);
	pthread_mutex_lock(&j->lock);
	j->res = r;
	j->state = ret ? MIG_DIRTY_FAILED : MIG_DIRTY_DONE;
	if (ret)
		str_copy(j->error, sizeof(j->error), err.msg);
	pthread_mutex_unlock(&j->lock);
	log_info("mig", "dirty rate: %llu MiB/s (peak %llu), working set %llu MiB over %llu ms",
		 (unsigned long long)(r.rate >> 20), (unsigned long long)(r.peak_rate >> 20),
		 (unsigned long long)(r.wss_bytes >> 20), (unsigned long long)r.duration_ms);
	return NULL;
}

struct mig_dirty_job *mig_dirty_job_start(struct vm *vm, uint64_t total_ms,
					  uint64_t window_ms, struct err *err)
{
	struct mig_dirty_job *j = calloc(1, sizeof(*j));
	int ret;

	if (!j) {
		err_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	j->vm = vm;
	j->total_ms = total_ms;
	j->window_ms = window_ms;
	j->state = MIG_DIRTY_MEASURING;
	pthread_mutex_init(&j->lock, NULL);
	ret = pthread_create(&j->thread, NULL, job_thread, j);
	if (ret) {
		err_set(err, -ret, "cannot start the measurement thread: %s", strerror(ret));
		pthread_mutex_destroy(&j->lock);
		free(j);
		return NULL;
	}
	return j;
}

enum mig_dirty_state mig_dirty_job_get(struct mig_dirty_job *j, struct mig_dirty_rate *r,
				       char *error, size_t errlen)
{
	enum mig_dirty_state st;

	pthread_mutex_lock(&j->lock);
	st = j->state;
	*r = j->res;
	str_copy(error, errlen, j->error);
	pthread_mutex_unlock(&j->lock);
	return st;
}

void mig_dirty_job_free(struct mig_dirty_job *j)
{
	if (!j)
		return;
	atomic_store(&j->cancel, true);
	pthread_join(j->thread, NULL);
	pthread_mutex_destroy(&j->lock);
	free(j);
}
