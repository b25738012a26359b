/*
 * mig_test_util.c - the test device, the fake destination and the golden
 * stream shared by tests/unit/mig, the generator and tests/fuzz/mig.
 */
#include "mig_test_util.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const struct mig_field test_dev_fields[] = {
	MIG_U8(struct test_dev_state, lcr, 1),
	MIG_U16(struct test_dev_state, divisor, 2),
	MIG_U32(struct test_dev_state, flags, 3, .flags = MIG_FIELD_REQUIRED),
	MIG_U64(struct test_dev_state, tsc, 4),
	MIG_BOOL(struct test_dev_state, irq, 5),
	MIG_ARRAY_U8(struct test_dev_state, fifo, 6),
	MIG_ARRAY_U32(struct test_dev_state, regs, 7),
	MIG_ARRAY_U64(struct test_dev_state, hist, 8, .since = 2),
	MIG_ARRAY_U16(struct test_dev_state, tbl, 9, .since = 2,
		      .flags = MIG_FIELD_OPTIONAL),
	MIG_U32(struct test_dev_state, added_v3, 10, .since = 3),
	MIG_END
};

void test_dev_golden(struct test_dev_state *d)
{
	d->lcr = 0x03;
	d->divisor = 0x0c01;
	d->flags = 0xdeadbeef;
	d->tsc = 0x0123456789abcdefULL;
	d->irq = true;
	for (int i = 0; i < 16; i++)
		d->fifo[i] = (uint8_t)('a' + i);
	for (int i = 0; i < 4; i++)
		d->regs[i] = 0x11111111u * (uint32_t)(i + 1);
	d->hist[0] = 1;
	d->hist[1] = UINT64_MAX;
	d->tbl[0] = 7;
	d->tbl[1] = 8;
	d->tbl[2] = 0xffff;
	d->added_v3 = 42;	/* not sent at version 2 */
}

void test_dev_init(struct test_dev_state *d)
{
	memset(d, 0x5a, sizeof(*d));
	d->irq = false;
	d->added_v3 = 99;
}

/* ---- fake target ---- */

void fake_init(struct fake_target *t, bool direct)
{
	memset(t, 0, sizeof(*t));
	t->direct = direct;
	test_dev_init(&t->dev);
}

void fake_fini(struct fake_target *t)
{
	for (size_t i = 0; i < FAKE_MAX_BLOCKS; i++)
		free(t->mem[i]);
	free(t->config);
	free(t->desc);
	memset(t, 0, sizeof(*t));
}

uint8_t *fake_mem(struct fake_target *t, const char *idstr, uint64_t *size)
{
	for (size_t i = 0; i < t->nblocks; i++) {
		if (strcmp(t->blocks[i].idstr, idstr))
			continue;
		if (size)
			*size = t->blocks[i].size;
		return t->mem[i];
	}
	return NULL;
}

static size_t fake_index(struct fake_target *t, const struct mig_ram_block *b)
{
	for (size_t i = 0; i < t->nblocks; i++)
		if (t->blocks[i].id == b->id)
			return i;
	return SIZE_MAX;
}

static int fake_config(void *ctx, const char *json, size_t len,
		       struct err *err)
{
	struct fake_target *t = ctx;

	if (t->fail_config)
		return err_set(err, t->fail_config, "config refused by test");
	free(t->config);
	t->config = strdup(json);
	return t->config ? 0 : -ENOMEM;
}

static int fake_blocks(void *ctx, struct mig_ram_block *blocks, size_t n,
		       struct err *err)
{
	struct fake_target *t = ctx;
	uint64_t total = 0;

	if (n > FAKE_MAX_BLOCKS)
		return err_set(err, -E2BIG, "fake target: %zu blocks", n);
	for (size_t i = 0; i < n; i++) {
		total += blocks[i].size;
		if (total > FAKE_MEM_MAX)
			return err_set(err, -E2BIG, "fake target: RAM too big");
	}
	for (size_t i = 0; i < n; i++) {
		t->blocks[i] = blocks[i];
		t->mem[i] = calloc(1, blocks[i].size);
		if (!t->mem[i])
			return -ENOMEM;
		if (t->direct)
			blocks[i].host = t->mem[i];
		t->nblocks = i + 1;
	}
	return 0;
}

static int fake_pages(void *ctx, const struct mig_ram_block *b,
		      const uint64_t *offsets, void *const *data, size_t n,
		      struct err *err)
{
	struct fake_target *t = ctx;
	size_t i = fake_index(t, b);

	if (i == SIZE_MAX)
		return err_set(err, -EINVAL, "fake target: unknown block");
	for (size_t k = 0; k < n; k++) {
		uint8_t *dst = t->mem[i] + offsets[k];

		if (t->direct && data[k] != dst)
			return err_set(err, -EFAULT, "direct page misplaced");
		if (!t->direct)
			memcpy(dst, data[k], 4096);
	}
	t->pages += n;
	return 0;
}

static int fake_zero(void *ctx, const struct mig_ram_block *b, uint64_t off,
		     uint64_t npages, struct err *err)
{
	struct fake_target *t = ctx;
	size_t i = fake_index(t, b);

	if (i == SIZE_MAX)
		return err_set(err, -EINVAL, "fake target: unknown block");
	memset(t->mem[i] + off, 0, npages * 4096);
	t->zero_pages += npages;
	return 0;
}

static int fake_iter(void *ctx, uint64_t iter, struct err *err)
{
	struct fake_target *t = ctx;

	if (t->niters < sizeof(t->iters) / sizeof(t->iters[0]))
		t->iters[t->niters] = iter;
	t->niters++;
	return 0;
}

static int fake_section(void *ctx, const struct mig_section_info *info,
			struct mig_stream *in, struct err *err)
{
	struct fake_target *t = ctx;
	int rc;

	if (strcmp(info->idstr, TEST_DEV_IDSTR))
		return err_set(err, -ENOENT, "no device '%s'", info->idstr);
	rc = mig_section_check_version(info, TEST_DEV_VERSION,
				       TEST_DEV_MIN_VERSION, err);
	if (!rc)
		rc = mig_fields_load(test_dev_fields, &t->dev, sizeof(t->dev),
				     info->version, in, err);
	if (!rc)
		t->dev_loaded = true;
	return rc;
}

static int fake_iter_data(struct fake_target *t,
			  const struct mig_section_info *info,
			  struct mig_stream *in, struct err *err)
{
	size_t n = mig_stream_remaining(in);

	if (strcmp(info->idstr, ITER_DEV_IDSTR))
		return err_set(err, -ENOENT, "no iterative device '%s'",
			       info->idstr);
	if (n > sizeof(t->iter_data) - t->iter_len)
		return err_set(err, -E2BIG, "iterdev: too much data");
	mig_stream_get_bytes(in, t->iter_data + t->iter_len, n);
	t->iter_len += n;
	return mig_stream_get_err(in, err);
}

static int fake_sec_start(void *ctx, const struct mig_section_info *info,
			  struct mig_stream *in, struct err *err)
{
	struct fake_target *t = ctx;

	t->iter_started = true;
	return fake_iter_data(t, info, in, err);
}

static int fake_sec_part(void *ctx, const struct mig_section_info *info,
			 struct mig_stream *in, struct err *err)
{
	return fake_iter_data(ctx, info, in, err);
}

static int fake_sec_end(void *ctx, const struct mig_section_info *info,
			struct err *err)
{
	struct fake_target *t = ctx;

	t->iter_ended = true;
	return 0;
}

static int fake_desc(void *ctx, const char *json, size_t len, struct err *err)
{
	struct fake_target *t = ctx;

	free(t->desc);
	t->desc = strdup(json);
	return t->desc ? 0 : -ENOMEM;
}

static int fake_eof(void *ctx, struct err *err)
{
	struct fake_target *t = ctx;

	t->eof = true;
	return 0;
}

/* Parallel channels: accept the announcement and any sync (no sockets). */
static int fake_mfd_channels(void *ctx, const struct mig_mfd_channels *c,
			     struct err *err)
{
	return c->n >= 1 && c->n <= MIG_MFD_CHANNELS_MAX ? 0 :
	       err_set(err, -EPROTO, "channels %u", c->n);
}

static int fake_mfd_sync(void *ctx, uint64_t seq, struct err *err)
{
	return 0;
}

const struct mig_load_ops fake_ops = {
	.on_config = fake_config,
	.on_ram_blocks = fake_blocks,
	.on_ram_pages = fake_pages,
	.on_ram_zero = fake_zero,
	.on_iter_end = fake_iter,
	.on_section = fake_section,
	.on_section_start = fake_sec_start,
	.on_section_part = fake_sec_part,
	.on_section_end = fake_sec_end,
	.on_description = fake_desc,
	.on_eof = fake_eof,
	.on_multifd_channels = fake_mfd_channels,
	.on_multifd_sync = fake_mfd_sync,
};

/* ---- the golden stream ---- */

#define GOLDEN_CONFIG							\
	"{\"memory\":\"96 KiB\",\"vcpus\":1,\"cmdline\":\"console=ttyS0\","\
	"\"devices\":[\"uart16550@0x3f8\"]}"
#define GOLDEN_PRODUCER "tern golden 1.0"

static const struct mig_ram_block golden_blocks[] = {
	{ .id = 1, .page_size = 4096, .size = 64 * 1024, .idstr = "ram0" },
	{ .id = 2, .page_size = 4096, .size = 32 * 1024, .idstr = "vram" },
};

static const struct mig_section_info golden_dev = {
	.section_id = 1, .instance_id = 0, .version = TEST_DEV_VERSION,
	.min_version = TEST_DEV_MIN_VERSION, .idstr = TEST_DEV_IDSTR,
};

static const struct mig_section_info golden_iter = {
	.section_id = 2, .instance_id = 3, .version = 1, .min_version = 1,
	.idstr = ITER_DEV_IDSTR,
};

void golden_page(uint8_t *page, unsigned seed)
{
	for (unsigned i = 0; i < 4096; i++)
		page[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 8));
}

static struct mig_desc *golden_desc(struct mig_desc *d)
{
	mig_desc_init(d, GOLDEN_PRODUCER);
	mig_desc_add_section(d, &golden_dev, test_dev_fields);
	mig_desc_add_section(d, &golden_iter, NULL);
	return d;
}

char *golden_description(void)
{
	struct mig_desc d;
	const uint8_t *p;
	size_t len;
	char *s;

	golden_desc(&d);
	mig_json_raw(&d.out, "]}");
	p = mig_stream_data(&d.out, &len);
	s = malloc(len + 1);
	if (s) {
		memcpy(s, p, len);
		s[len] = '\0';
	}
	mig_desc_fini(&d);
	return s;
}

/* CRC on/off as the golden stream has it; never in the NOCRC variant. */
static void golden_crc(struct mig_stream *s, enum golden_variant v, bool on)
{
	mig_stream_set_crc(s, on && v != GOLDEN_NOCRC);
}

static void golden_ram(struct mig_stream *s, enum golden_variant v,
		       uint8_t (*pg)[4096])
{
	static const uint64_t offs[3] = { 0x1000, 0x3000, 0x2000 };
	const void *ptrs[3] = { pg[2], pg[3], pg[4] };

	mig_stream_put_ram_page(s, 1, 0, pg[1]);
	mig_stream_put_ram_batch(s, 1, offs, ptrs, 3);
	mig_stream_put_ram_zero(s, 1, 0x8000, 4);
	mig_stream_put_ram_page(s, 2, 0x7000, pg[5]);
	golden_crc(s, v, true);
	mig_stream_put_iter_end(s, 1);
	golden_crc(s, v, false);
	mig_stream_put_ram_page(s, 1, 0x1000, pg[6]);	/* dirtied again */
	golden_crc(s, v, true);
	mig_stream_put_iter_end(s, 2);
	golden_crc(s, v, false);
}

static void golden_sections(struct mig_stream *s)
{
	struct test_dev_state dev;
	struct mig_stream st;
	const uint8_t *p;
	size_t len;

	memset(&dev, 0, sizeof(dev));
	test_dev_golden(&dev);
	mig_stream_init_mem_writer(&st, 0);
	mig_fields_save(test_dev_fields, &dev, sizeof(dev), TEST_DEV_VERSION,
			&st);
	p = mig_stream_data(&st, &len);
	mig_stream_put_section_full(s, &golden_dev, p, len);
	mig_stream_fini(&st);
	mig_stream_put_section_start(s, &golden_iter, "part-0;", 7);
	mig_stream_put_section_part(s, 2, "part-1;", 7);
	mig_stream_put_section_end(s, 2);
}

int golden_build(struct mig_stream *s)
{
	return golden_build_variant(s, GOLDEN_FULL);
}

/* Small streams for the fuzz corpus: no pages, an unknown optional record. */
static void variant_small(struct mig_stream *s)
{
	static const uint8_t junk[5] = { 1, 2, 3, 4, 5 };
	struct mig_rec_hdr rh = { 0x7000, MIG_RECF_OPTIONAL, 0, sizeof(junk) };

	mig_stream_put_config(s, "{}", 2);
	mig_stream_put_ram_blocks(s, golden_blocks, 2);
	mig_stream_put_record(s, &rh, junk);
	mig_stream_put_ram_zero(s, 2, 0x1000, 2);
	mig_stream_put_iter_end(s, 1);
	golden_sections(s);
	mig_stream_put_eof(s);
}

int golden_build_variant(struct mig_stream *s, enum golden_variant v)
{
	static uint8_t pg[7][4096];
	struct mig_header h;
	struct mig_desc d;

	for (unsigned i = 1; i < 7; i++)
		golden_page(pg[i], i);
	mig_header_init(&h, 4096);
	mig_stream_put_header(s, &h);
	if (v == GOLDEN_SMALL) {
		variant_small(s);
		return mig_stream_flush(s);
	}
	golden_crc(s, v, true);
	mig_stream_put_producer(s, GOLDEN_PRODUCER);
	mig_stream_put_config(s, GOLDEN_CONFIG, strlen(GOLDEN_CONFIG));
	mig_stream_put_ram_blocks(s, golden_blocks, 2);
	golden_crc(s, v, false);
	golden_ram(s, v, pg);
	golden_crc(s, v, true);
	golden_sections(s);
	mig_desc_put(golden_desc(&d), s);
	mig_desc_fini(&d);
	mig_stream_put_eof(s);
	return mig_stream_flush(s);
}

static int check_page(struct fake_target *t, const char *blk, uint64_t off,
		      int seed)
{
	uint8_t want[4096];
	uint8_t *m = fake_mem(t, blk, NULL);

	if (seed < 0)
		memset(want, 0, sizeof(want));
	else
		golden_page(want, (unsigned)seed);
	return m && !memcmp(m + off, want, sizeof(want)) ? 0 : -1;
}

int golden_verify(struct fake_target *t, const char **why)
{
	static const int ram0[16] = { 1, 6, 4, 3, -1, -1, -1, -1,
				      -1, -1, -1, -1, -1, -1, -1, -1 };
	struct test_dev_state want;

	*why = "RAM contents";
	for (int i = 0; i < 16; i++)
		if (check_page(t, "ram0", (uint64_t)i * 4096, ram0[i]))
			return -1;
	for (int i = 0; i < 8; i++)
		if (check_page(t, "vram", (uint64_t)i * 4096, i == 7 ? 5 : -1))
			return -1;
	*why = "device state";
	test_dev_init(&want);	/* same padding bytes as the target's */
	test_dev_golden(&want);
	want.added_v3 = 99;	/* since 3: absent, keeps the init value */
	if (!t->dev_loaded || memcmp(&want, &t->dev, sizeof(want)))
		return -1;
	*why = "config/description/iterations";
	if (!t->config || strcmp(t->config, GOLDEN_CONFIG) || !t->desc ||
	    t->niters != 2 || t->iters[0] != 1 || t->iters[1] != 2)
		return -1;
	*why = "iterative section";
	if (!t->iter_started || !t->iter_ended || t->iter_len != 14 ||
	    memcmp(t->iter_data, "part-0;part-1;", 14))
		return -1;
	*why = "eof";
	return t->eof ? 0 : -1;
}
