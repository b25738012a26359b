/*
 * page_cache.h - fixed-budget cache of previously sent guest pages.
 *
 * The XBZRLE source keeps the last bytes it sent for a page, keyed by
 * (block id, page offset), so the next send can be a delta against them
 * (QEMU's xbzrle-cache-size). The cache is 4-way set-associative; pages
 * and their tags live in one anonymous mapping whose size never exceeds
 * the byte budget. Each entry carries the generation (dirty-log pass) of
 * its last insert: a new page never evicts an entry inserted in the same
 * or the previous generation (PAGE_CACHE_LIFETIME), so the pages of the
 * current pass do not push each other out and a hot page survives one
 * pass of cold pages; among older entries the oldest goes first.
 *
 * Not thread-safe: one migration thread owns a cache. Pure code (libc and
 * base only).
 */
#ifndef MIG_PAGE_CACHE_H
#define MIG_PAGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;
struct page_cache;

#define PAGE_CACHE_DEFAULT_SIZE	(64ULL << 20)	/* 64 MiB */
#define PAGE_CACHE_MAX_SIZE	(1ULL << 40)	/* 1 TiB */
#define PAGE_CACHE_WAYS		4
/* An entry is protected from eviction while generation - its < this. */
#define PAGE_CACHE_LIFETIME	2

struct page_cache_stats {
	uint64_t hits;		/* lookups that found the page */
	uint64_t misses;	/* lookups that did not */
	uint64_t inserts;	/* pages stored in a free or evicted slot */
	uint64_t updates;	/* inserts of a page already cached (overwritten) */
	uint64_t evictions;	/* cached pages dropped to make room */
	uint64_t refused;	/* inserts dropped: their set held only recent pages */
	uint64_t slots;		/* capacity in pages */
	uint64_t used;		/* slots holding a page now */
};

/*
 * Create a cache using at most size_bytes of memory (tags included).
 * page_size: power of two, 8 B..1 GiB; size_bytes: room for at least
 * PAGE_CACHE_WAYS pages, at most PAGE_CACHE_MAX_SIZE. Returns NULL with
 * errno EINVAL (bad sizes) or ENOMEM (allocation failed), and err set.
 */
struct page_cache *page_cache_new(uint64_t size_bytes, size_t page_size,
				  struct err *err);
void page_cache_free(struct page_cache *c);

/*
 * The cached bytes of the page at (block, offset), or NULL. The pointer
 * stays valid until the next insert, invalidate or free. Counts a hit or
 * a miss.
 */
const uint8_t *page_cache_lookup(struct page_cache *c, uint32_t block,
				 uint64_t offset);

/*
 * Copy page_size bytes of data in as the page (block, offset), inserted
 * during `generation`. An already cached page is overwritten. Returns 0,
 * -ENOSPC if every slot of its set holds a different page inserted within
 * PAGE_CACHE_LIFETIME generations (nothing changed), or -EINVAL if offset
 * is not a multiple of page_size.
 */
int page_cache_insert(struct page_cache *c, uint32_t block, uint64_t offset,
		      const uint8_t *data, uint64_t generation);

/* Forget the page (block, offset) if cached. Returns true if it was. */
bool page_cache_invalidate(struct page_cache *c, uint32_t block,
			   uint64_t offset);

/* Bytes in use (tags + pages); always <= the size_bytes given to _new. */
uint64_t page_cache_mem_bytes(const struct page_cache *c);
size_t page_cache_page_size(const struct page_cache *c);
void page_cache_get_stats(const struct page_cache *c,
			  struct page_cache_stats *out);

#endif
