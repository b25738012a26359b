/*
 * fill.h - the destination's first write of each guest page, by
 * UFFDIO_COPY instead of a page fault (fill.c).
 *
 * A page written for the first time through an ordinary store (or readv())
 * costs a page fault that allocates a page, zeroes it and maps it; the
 * zeroing is wasted, because the data overwrites it at once. UFFDIO_COPY
 * allocates the page, copies the data into it and maps it in one ioctl,
 * without the zeroing or the fault, for a whole run of pages at a time. On
 * the machines of docs/benchmarks.md one TCP stream into fresh memory runs
 * at about 1.55 GiB/s when received with readv() and 2.35 GiB/s when
 * received into a small buffer and placed with UFFDIO_COPY (bench/tcp_baseline
 * -m fresh,uffd).
 *
 * While the fill is on, guest RAM is registered with a userfaultfd in
 * MISSING mode with UFFD_FEATURE_SIGBUS: nothing serves its faults, so
 * every write and read of guest RAM must come through these functions
 * until mig_fill_stop() (a stray kernel access fails with EFAULT, a stray
 * user access raises SIGBUS: neither can hang). A page the fill has not
 * placed is not there and reads as zero once the fill stops.
 *
 * The functions may be called from several threads at once (the parallel
 * channels); a page written by two at once ends with one of the two
 * copies, as a plain memcpy() would.
 */
#ifndef MIG_FILL_H
#define MIG_FILL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "stream.h"

struct mig_fill;

/*
 * Register the blocks (host mappings in blocks[i].host, pages of page_size
 * bytes). NULL when the fill cannot or need not run (no userfaultfd, or
 * every page already populated, as after --mem-prealloc): the caller then
 * writes guest RAM directly. The reason is logged.
 */
struct mig_fill *mig_fill_start(const struct mig_ram_block *blocks, size_t n,
				uint32_t page_size);

/*
 * Write n pages of block bi: data[i] goes to offset offsets[i], which the
 * caller checked (aligned, inside the block). Pages adjacent both in guest
 * RAM and in memory go in together.
 */
int mig_fill_pages(struct mig_fill *f, unsigned bi, const uint64_t *offsets,
		   void *const *data, size_t n, struct err *err);

/* npages pages of block bi from offset off must read as zero. */
void mig_fill_zero(struct mig_fill *f, unsigned bi, uint64_t off, uint64_t npages);

/* The page at off in block bi, present (zero if it was not), to update in place. */
uint8_t *mig_fill_page(struct mig_fill *f, unsigned bi, uint64_t off, struct err *err);

/* Pages placed by UFFDIO_COPY and by memcpy() so far. */
void mig_fill_counts(const struct mig_fill *f, uint64_t *copied, uint64_t *written);

/*
 * Unregister, log the counts and the time spent in UFFDIO_COPY per page,
 * and free; guest RAM is ordinary memory again. NULL is a no-op.
 */
void mig_fill_stop(struct mig_fill *f);

/* A userfaultfd with the given features (UFFDIO_API done), or -errno. */
int mig_uffd_open(uint64_t features, struct err *err);
/* Register [host, host + size) with uffd in MISSING mode; 0 or -errno. */
int mig_uffd_register(int uffd, void *host, uint64_t size, struct err *err);

#endif
