/*
 * page_cache.c - fixed-budget, 4-way set-associative cache of sent pages.
 *
 * One anonymous mapping holds the tag array and then the page slots (the
 * slots start on a 4 KiB boundary). The number of slots is the largest
 * multiple of PAGE_CACHE_WAYS whose mapping, plus this struct, fits the
 * budget; no power-of-two rounding, the set index is a multiply-shift of
 * a 64-bit hash of the key. Replacement policy: see page_cache.h.
 */
#include "page_cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "err.h"
#include "util.h"

#define PC_ALIGN	4096u
#define PC_PAGE_MIN	8u
#define PC_PAGE_MAX	(1u << 30)

struct pc_tag {
	uint64_t offset;
	uint64_t generation;
	uint32_t block;
	uint32_t used;
};

struct page_cache {
	struct pc_tag *tags;
	uint8_t *data;		/* nslots x page_size */
	void *map;
	size_t map_len;
	size_t page_size;
	unsigned int page_shift;
	uint64_t nslots;
	uint64_t nsets;
	struct page_cache_stats st;
};

/* Mapping bytes for n slots: tags, padding to PC_ALIGN, pages, rounded. */
static uint64_t pc_map_len(uint64_t n, size_t page_size)
{
	uint64_t tags = ALIGN_UP(n * sizeof(struct pc_tag), (uint64_t)PC_ALIGN);

	return ALIGN_UP(tags + n * page_size, (uint64_t)PC_ALIGN);
}

/* Largest multiple of PAGE_CACHE_WAYS slots that fits; 0 if none. */
static uint64_t pc_slots_for(uint64_t size_bytes, size_t page_size)
{
	uint64_t room, n;

	if (size_bytes < sizeof(struct page_cache) + 2 * PC_ALIGN)
		return 0;
	room = size_bytes - sizeof(struct page_cache) - 2 * PC_ALIGN;
	n = room / (page_size + sizeof(struct pc_tag));
	n -= n % PAGE_CACHE_WAYS;
	while (n && sizeof(struct page_cache) + pc_map_len(n, page_size) > size_bytes)
		n -= PAGE_CACHE_WAYS;
	return n;
}

static int pc_check_args(uint64_t size_bytes, size_t page_size, struct err *err)
{
	if (page_size < PC_PAGE_MIN || page_size > PC_PAGE_MAX ||
	    (page_size & (page_size - 1)))
		return err_set(err, -EINVAL,
			       "page cache: page size %zu is not a power of two in 8..1G",
			       page_size);
	if (size_bytes > PAGE_CACHE_MAX_SIZE)
		return err_set(err, -EINVAL,
			       "page cache: size %llu above the 1 TiB limit",
			       (unsigned long long)size_bytes);
	if (!pc_slots_for(size_bytes, page_size))
		return err_set(err, -EINVAL,
			       "page cache: size %llu too small for %d pages of %zu bytes",
			       (unsigned long long)size_bytes, PAGE_CACHE_WAYS,
			       page_size);
	return 0;
}

struct page_cache *page_cache_new(uint64_t size_bytes, size_t page_size,
				  struct err *err)
{
	struct page_cache *c;
	int rc = pc_check_args(size_bytes, page_size, err);

	if (rc) {
		errno = -rc;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto nomem;
	c->page_size = page_size;
	c->page_shift = (unsigned int)__builtin_ctzll(page_size);
	c->nslots = pc_slots_for(size_bytes, page_size);
	c->nsets = c->nslots / PAGE_CACHE_WAYS;
	c->map_len = pc_map_len(c->nslots, page_size);
	c->map = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->map == MAP_FAILED)
		goto free_c;
	c->tags = c->map;
	c->data = (uint8_t *)c->map +
		  ALIGN_UP(c->nslots * sizeof(struct pc_tag), (uint64_t)PC_ALIGN);
	c->st.slots = c->nslots;
	return c;

free_c:
	free(c);
nomem:
	err_set(err, -ENOMEM, "page cache: cannot allocate %llu bytes",
		(unsigned long long)size_bytes);
	errno = ENOMEM;
	return NULL;
}

void page_cache_free(struct page_cache *c)
{
	if (!c)
		return;
	munmap(c->map, c->map_len);
	free(c);
}

/* splitmix64 finaliser over (block, page number). */
static uint64_t pc_hash(uint32_t block, uint64_t pfn)
{
	uint64_t x = pfn ^ ((uint64_t)block * 0x9e3779b97f4a7c15ULL);

	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* First slot index of the set holding (block, offset). */
static uint64_t pc_set(const struct page_cache *c, uint32_t block,
		       uint64_t offset)
{
	uint64_t h = pc_hash(block, offset >> c->page_shift);

	return (uint64_t)(((unsigned __int128)h * c->nsets) >> 64) *
	       PAGE_CACHE_WAYS;
}

/* Slot index of (block, offset), or -1 if not cached. */
static int64_t pc_find(const struct page_cache *c, uint32_t block,
		       uint64_t offset)
{
	uint64_t s = pc_set(c, block, offset);

	for (uint64_t i = s; i < s + PAGE_CACHE_WAYS; i++) {
		const struct pc_tag *t = &c->tags[i];

		if (t->used && t->block == block && t->offset == offset)
			return (int64_t)i;
	}
	return -1;
}

static uint8_t *pc_slot_data(const struct page_cache *c, uint64_t i)
{
	return c->data + i * c->page_size;
}

const uint8_t *page_cache_lookup(struct page_cache *c, uint32_t block,
				 uint64_t offset)
{
	int64_t i = pc_find(c, block, offset);

	if (i < 0) {
		c->st.misses++;
		return NULL;
	}
	c->st.hits++;
	return pc_slot_data(c, (uint64_t)i);
}

static bool pc_recent(uint64_t tag_gen, uint64_t generation)
{
	return tag_gen >= generation ||
	       generation - tag_gen < PAGE_CACHE_LIFETIME;
}

/* A free slot of the set, else its oldest evictable one, else -1. */
static int64_t pc_victim(struct page_cache *c, uint64_t set, uint64_t generation)
{
	uint64_t oldest = set;

	for (uint64_t i = set; i < set + PAGE_CACHE_WAYS; i++) {
		if (!c->tags[i].used)
			return (int64_t)i;
		if (c->tags[i].generation < c->tags[oldest].generation)
			oldest = i;
	}
	if (pc_recent(c->tags[oldest].generation, generation))
		return -1;
	c->st.evictions++;
	c->st.used--;
	return (int64_t)oldest;
}

int page_cache_insert(struct page_cache *c, uint32_t block, uint64_t offset,
		      const uint8_t *data, uint64_t generation)
{
	int64_t i;

	if (offset & (c->page_size - 1))
		return -EINVAL;
	i = pc_find(c, block, offset);
	if (i >= 0) {
		c->st.updates++;
	} else {
		i = pc_victim(c, pc_set(c, block, offset), generation);
		if (i < 0) {
			c->st.refused++;
			return -ENOSPC;
		}
		c->tags[i] = (struct pc_tag){ .offset = offset, .block = block,
					      .used = 1 };
		c->st.inserts++;
		c->st.used++;
	}
	c->tags[i].generation = generation;
	if (pc_slot_data(c, (uint64_t)i) != data)
		memcpy(pc_slot_data(c, (uint64_t)i), data, c->page_size);
	return 0;
}

bool page_cache_invalidate(struct page_cache *c, uint32_t block,
			   uint64_t offset)
{
	int64_t i = pc_find(c, block, offset);

	if (i < 0)
		return false;
	c->tags[i].used = 0;
	c->st.used--;
	return true;
}

uint64_t page_cache_mem_bytes(const struct page_cache *c)
{
	return sizeof(*c) + c->map_len;
}

size_t page_cache_page_size(const struct page_cache *c)
{
	return c->page_size;
}

void page_cache_get_stats(const struct page_cache *c,
			  struct page_cache_stats *out)
{
	*out = c->st;
}
