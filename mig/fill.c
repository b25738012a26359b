/*
 * fill.c - the destination's first write of each guest page by
 * UFFDIO_COPY (see fill.h for why).
 *
 * Each block keeps a bitmap of the pages that are present: those mincore()
 * found resident at the start, and those placed since. A run of pages not
 * yet present goes in with one UFFDIO_COPY; a present page is overwritten
 * with memcpy(). UFFDIO_COPY never overwrites: a page that turns out to be
 * there after all (two channels raced for it) fails the ioctl with EEXIST
 * at that page and is written with memcpy() instead.
 */
#include "fill.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define FILL_MAX_BLOCKS	16
#define MINCORE_STEP	(64ULL << 20)	/* bytes per mincore() call */

struct fill_block {
	uint8_t *host;
	uint64_t size;
	_Atomic uint64_t *present;	/* one bit per page */
};

struct mig_fill {
	int uffd;
	uint32_t ps;
	size_t n;
	struct fill_block b[FILL_MAX_BLOCKS];
	_Atomic uint64_t copied, written;
	_Atomic uint64_t copy_ns;	/* time in UFFDIO_COPY, all threads */
	uint8_t *zero;			/* one page of zeros */
};

int mig_uffd_open(uint64_t features, struct err *err)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	/*
	 * Without privilege (vm.unprivileged_userfaultfd=0), a userfaultfd
	 * that only sees user-mode faults is still allowed; with SIGBUS that
	 * is all the fill needs (kernel accesses fail with EFAULT either way).
	 */
	if (fd < 0 && errno == EPERM && (features & UFFD_FEATURE_SIGBUS))
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (fd < 0)
		return err_set(err, -errno, "userfaultfd: %s (needs root or "
			       "vm.unprivileged_userfaultfd=1)", strerror(errno));
	if (ioctl(fd, UFFDIO_API, &api)) {
		int e = errno;

		close(fd);
		return err_set(err, -e, "UFFDIO_API: %s", strerror(e));
	}
	return fd;
}

int mig_uffd_register(int uffd, void *host, uint64_t size, struct err *err)
{
	struct uffdio_register reg = {
		.range = { (uint64_t)(uintptr_t)host, size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return err_set(err, -errno, "UFFDIO_REGISTER of guest RAM: %s", strerror(errno));
	return 0;
}

static bool is_present(const struct fill_block *b, uint64_t pg)
{
	return atomic_load_explicit(&b->present[pg / 64], memory_order_relaxed) &
	       (1ULL << (pg % 64));
}

static void mark_present(struct fill_block *b, uint64_t pg, uint64_t n)
{
	for (; n; pg++, n--)
		atomic_fetch_or_explicit(&b->present[pg / 64], 1ULL << (pg % 64),
					 memory_order_relaxed);
}

/* Mark what is resident now; returns how many pages are not. */
static uint64_t scan_resident(struct fill_block *b, uint32_t ps, unsigned char *vec)
{
	uint64_t missing = 0;

	for (uint64_t off = 0; off < b->size; off += MINCORE_STEP) {
		uint64_t len = MIN(MINCORE_STEP, b->size - off), np = len / ps;

		if (mincore(b->host + off, len, vec)) {
			mark_present(b, off / ps, np);	/* unknown: treat as there */
			continue;
		}
		for (uint64_t i = 0; i < np; i++) {
			if (vec[i] & 1)
				mark_present(b, off / ps + i, 1);
			else
				missing++;
		}
	}
	return missing;
}

static void fill_free(struct mig_fill *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->b[i].present);
	if (f->uffd >= 0)
		close(f->uffd);
	free(f->zero);
	free(f);
}

static int fill_register(struct mig_fill *f, struct err *err)
{
	f->uffd = mig_uffd_open(UFFD_FEATURE_SIGBUS, err);
	if (f->uffd < 0)
		return f->uffd;
	for (size_t i = 0; i < f->n; i++) {
		int ret = mig_uffd_register(f->uffd, f->b[i].host, f->b[i].size, err);

		if (ret)
			return ret;
	}
	return 0;
}

struct mig_fill *mig_fill_start(const struct mig_ram_block *blocks, size_t n,
				uint32_t page_size)
{
	uint64_t missing = 0, t0 = time_now_ns();
	struct mig_fill *f = calloc(1, sizeof(*f));
	unsigned char *vec = NULL;
	struct err e = { 0 };

	if (!f)
		return NULL;
	f->uffd = -1;
	f->ps = page_size;
	if (n > FILL_MAX_BLOCKS || page_size != (uint32_t)sysconf(_SC_PAGESIZE)) {
		log_info("mig", "dest: writing guest RAM directly (%zu blocks, %u-byte pages)",
			 n, page_size);
		goto off;
	}
	vec = malloc(MINCORE_STEP / page_size);
	f->zero = calloc(1, page_size);
	if (!vec || !f->zero)
		goto off;
	for (; f->n < n; f->n++) {
		struct fill_block *b = &f->b[f->n];
		uint64_t np = blocks[f->n].size / page_size;

		b->host = blocks[f->n].host;
		b->size = blocks[f->n].size;
		b->present = calloc((np + 63) / 64, sizeof(*b->present));
		if (!b->host || blocks[f->n].page_size != page_size || !b->present) {
			f->n++;
			goto off;
		}
		missing += scan_resident(b, page_size, vec);
	}
	free(vec);
	vec = NULL;
	if (!missing) {
		log_info("mig", "dest: guest RAM already populated: writing it directly");
		goto off;
	}
	if (fill_register(f, &e)) {
		log_info("mig", "dest: writing guest RAM directly: %s", e.msg);
		goto off;
	}
	log_info("mig", "dest: %llu of guest RAM's pages absent: first writes by UFFDIO_COPY "
		 "(set up in %.1f ms)", (unsigned long long)missing,
		 (double)(time_now_ns() - t0) / 1e6);
	return f;
off:
	free(vec);
	fill_free(f);
	return NULL;
}

/*
 * Place n absent pages at host with UFFDIO_COPY; a page found present is
 * written with memcpy(). 0 or -errno.
 */
static int copy_run(struct mig_fill *f, struct fill_block *b, uint64_t pg,
		    const uint8_t *src, uint64_t n, struct err *err)
{
	uint32_t ps = f->ps;

	while (n) {
		struct uffdio_copy c = {
			.dst = (uint64_t)(uintptr_t)(b->host + pg * ps),
			.src = (uint64_t)(uintptr_t)src,
			.len = n * ps,
			.mode = UFFDIO_COPY_MODE_DONTWAKE,
		};
		uint64_t done, t0 = time_now_ns();
		int r = ioctl(f->uffd, UFFDIO_COPY, &c), e = errno;

		atomic_fetch_add_explicit(&f->copy_ns, time_now_ns() - t0, memory_order_relaxed);
		if (!r) {
			done = n;
		} else if (c.copy > 0) {
			done = (uint64_t)c.copy / ps;	/* partial: go on from there */
		} else if (c.copy == -EEXIST) {
			memcpy(b->host + pg * ps, src, ps);
			mark_present(b, pg, 1);
			atomic_fetch_add_explicit(&f->written, 1, memory_order_relaxed);
			pg++, src += ps, n--;
			continue;
		} else if (c.copy == -EAGAIN || e == EINTR) {
			continue;	/* the address space was changing: again */
		} else {
			e = c.copy < 0 ? (int)-c.copy : e;
			return err_set(err, -e, "cannot place guest page 0x%llx: %s",
				       (unsigned long long)(pg * ps), strerror(e));
		}
		mark_present(b, pg, done);
		atomic_fetch_add_explicit(&f->copied, done, memory_order_relaxed);
		pg += done, src += done * ps, n -= done;
	}
	return 0;
}

int mig_fill_pages(struct mig_fill *f, unsigned bi, const uint64_t *offsets,
		   void *const *data, size_t n, struct err *err)
{
	struct fill_block *b = &f->b[bi];
	uint32_t ps = f->ps;
	size_t i = 0;

	while (i < n) {
		uint64_t pg = offsets[i] / ps;
		size_t j = i + 1;
		int ret;

		if (is_present(b, pg)) {
			memcpy(b->host + offsets[i], data[i], ps);
			atomic_fetch_add_explicit(&f->written, 1, memory_order_relaxed);
			i++;
			continue;
		}
		while (j < n && offsets[j] == offsets[i] + (j - i) * ps &&
		       (uint8_t *)data[j] == (uint8_t *)data[i] + (j - i) * ps &&
		       !is_present(b, pg + (j - i)))
			j++;
		ret = copy_run(f, b, pg, data[i], j - i, err);
		if (ret)
			return ret;
		i = j;
	}
	return 0;
}

void mig_fill_zero(struct mig_fill *f, unsigned bi, uint64_t off, uint64_t npages)
{
	struct fill_block *b = &f->b[bi];
	uint64_t pg = off / f->ps;

	for (uint64_t i = 0; i < npages; i++)	/* an absent page is zero already */
		if (is_present(b, pg + i))
			memset(b->host + (pg + i) * f->ps, 0, f->ps);
}

uint8_t *mig_fill_page(struct mig_fill *f, unsigned bi, uint64_t off, struct err *err)
{
	struct fill_block *b = &f->b[bi];
	uint64_t pg = off / f->ps;

	if (!is_present(b, pg) && copy_run(f, b, pg, f->zero, 1, err))
		return NULL;
	return b->host + off;
}

void mig_fill_counts(const struct mig_fill *f, uint64_t *copied, uint64_t *written)
{
	*copied = atomic_load(&f->copied);
	*written = atomic_load(&f->written);
}

void mig_fill_stop(struct mig_fill *f)
{
	uint64_t copied, written;

	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		struct uffdio_range r = { (uint64_t)(uintptr_t)f->b[i].host, f->b[i].size };

		if (ioctl(f->uffd, UFFDIO_UNREGISTER, &r))
			log_warn("mig", "dest: UFFDIO_UNREGISTER: %s", strerror(errno));
	}
	mig_fill_counts(f, &copied, &written);
	/*
	 * The time per page tells warm memory from memory the host must first
	 * get back from below (docs/benchmarks.md, session 6): 1.4 us a page
	 * against 7-8 us on the machine measured there.
	 */
	log_info("mig", "dest: %llu pages placed by UFFDIO_COPY, %llu overwritten; "
		 "UFFDIO_COPY took %.1f ms, %.2f us a page",
		 (unsigned long long)copied, (unsigned long long)written,
		 atomic_load(&f->copy_ns) / 1e6,
		 copied ? atomic_load(&f->copy_ns) / 1e3 / (double)copied : 0.0);
	fill_free(f);
}
