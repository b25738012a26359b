/*
 * mem.c - turn the e820 map in the zero page into tern-guest's tested page
 * pool.
 *
 * The pool is every e820 type-1 (RAM) page at or above 1 MiB and below the
 * mapped limit (TG_MAX_PD GiB), minus the guest image [TG_LOAD_ADDR,
 * image_end) and minus the generation array (one u32 per pool page), which
 * is carved from the first range large enough. Pool pages are numbered
 * 0..npages-1 in address order across the ranges (so RAM above the 4 GiB
 * hole is included).
 */
#include "tg.h"

#define TG_POOL_MIN	0x100000UL
#define TG_POOL_LIMIT	((u64)TG_MAX_PD << 30)

struct tg_range {
	u64 start;
	u64 end;
};

struct tg_ranges {
	struct tg_range r[TG_MAX_REGIONS];
	u32 n;
};

/* Add [start, end) minus [hole_start, hole_end), page aligned inward. */
static void tg_ranges_add(struct tg_ranges *rs, u64 start, u64 end,
			  u64 hole_start, u64 hole_end)
{
	start = TG_ALIGN_UP(start, TG_PAGE_SIZE);
	end = TG_ALIGN_DOWN(end, TG_PAGE_SIZE);
	if (start >= end)
		return;
	if (start < hole_end && hole_start < end) {
		tg_ranges_add(rs, start, hole_start, 0, 0);
		tg_ranges_add(rs, hole_end, end, 0, 0);
		return;
	}
	if (rs->n < TG_MAX_REGIONS)
		rs->r[rs->n++] = (struct tg_range){ start, end };
}

/* Sort by start and trim overlaps (a hostile or sloppy map). */
static void tg_ranges_sort(struct tg_ranges *rs)
{
	u32 i, j, k;

	for (i = 1; i < rs->n; i++) {
		struct tg_range t = rs->r[i];

		for (j = i; j > 0 && rs->r[j - 1].start > t.start; j--)
			rs->r[j] = rs->r[j - 1];
		rs->r[j] = t;
	}
	for (i = 1, k = rs->n ? 1 : 0; i < rs->n; i++) {
		struct tg_range t = rs->r[i];

		if (t.start < rs->r[k - 1].end)
			t.start = rs->r[k - 1].end;
		if (t.start < t.end)
			rs->r[k++] = t;
	}
	rs->n = k;
}

static u64 tg_ranges_pages(const struct tg_ranges *rs)
{
	u64 n = 0;
	u32 i;

	for (i = 0; i < rs->n; i++)
		n += (rs->r[i].end - rs->r[i].start) / TG_PAGE_SIZE;
	return n;
}

static void tg_pool_collect(struct tg_pool *pool, struct tg_ranges *rs,
			    const u8 *bp, u64 image_end)
{
	const struct tg_e820 *e = (const struct tg_e820 *)(bp + BP_E820_TABLE);
	u32 i, n = bp[BP_E820_ENTRIES];

	if (n > BP_E820_MAX)
		n = BP_E820_MAX;
	for (i = 0; i < n; i++) {
		u64 start = e[i].addr, end = e[i].addr + e[i].size;

		if (e[i].type != E820_RAM || end <= start)
			continue;
		pool->ram_bytes += end - start;
		if (start < TG_POOL_MIN)
			start = TG_POOL_MIN;
		if (end > TG_POOL_LIMIT)
			end = TG_POOL_LIMIT;
		tg_ranges_add(rs, start, end, TG_LOAD_ADDR, image_end);
	}
	tg_ranges_sort(rs);
}

/* Take the generation array from the start of the first range that fits. */
static int tg_pool_carve_gen(struct tg_pool *pool, struct tg_ranges *rs)
{
	u32 i;

	pool->gen_bytes = TG_ALIGN_UP(tg_ranges_pages(rs) * 4, TG_PAGE_SIZE);
	for (i = 0; i < rs->n; i++) {
		if (rs->r[i].end - rs->r[i].start < pool->gen_bytes)
			continue;
		pool->gen = (u32 *)rs->r[i].start;
		rs->r[i].start += pool->gen_bytes;
		return 0;
	}
	return -1;
}

int tg_pool_init(struct tg_pool *pool, const u8 *bp, u64 image_end)
{
	struct tg_ranges rs = { .n = 0 };
	u64 idx = 0;
	u32 i;

	memset(pool, 0, sizeof(*pool));
	tg_pool_collect(pool, &rs, bp, image_end);
	if (tg_pool_carve_gen(pool, &rs) < 0)
		return -1;
	pool->reserved_end = (u64)pool->gen + pool->gen_bytes;
	if (pool->reserved_end < image_end)
		pool->reserved_end = image_end;
	for (i = 0; i < rs.n; i++) {
		struct tg_region *g = &pool->reg[pool->nreg];
		u64 n = (rs.r[i].end - rs.r[i].start) / TG_PAGE_SIZE;

		if (!n)
			continue;
		g->start_pfn = rs.r[i].start / TG_PAGE_SIZE;
		g->npages = n;
		g->first_index = idx;
		idx += n;
		pool->nreg++;
	}
	pool->npages = idx;
	return idx ? 0 : -1;
}

u64 tg_pool_pfn(const struct tg_pool *pool, u64 index)
{
	u32 i;

	for (i = 0; i < pool->nreg; i++) {
		const struct tg_region *g = &pool->reg[i];

		if (index - g->first_index < g->npages)
			return g->start_pfn + (index - g->first_index);
	}
	return 0;
}
