/*
 * fuzz_mig_stream.c - the whole stream loader against a fake destination.
 *
 * Each input is loaded twice from a memory reader: once with the fake
 * target's blocks mapped (pages placed directly) and once through the
 * on_ram_pages copy path. The fake target (tests/unit/mig/mig_test_util.c)
 * accepts up to 8 blocks / 4 MiB of RAM, the test device's field table and
 * the iterative "iterdev" section. Invariants checked beyond ASan/UBSan:
 * success means the EOF record was seen, and failure comes with a message
 * and the same code in struct err. The first two loads accept the MULTIFD
 * feature (MULTIFD_CHANNELS / MULTIFD_SYNC decoded; the fake target opens no
 * sockets). A third load accepts the POSTCOPY feature, so POSTCOPY_DISCARD /
 * POSTCOPY_LISTEN are decoded too.
 */
#include <stdint.h>
#include <stdlib.h>

#include "mig_test_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* mig_load() with the MULTIFD feature accepted (its records decoded). */
static int load(struct mig_stream *r, struct fake_target *t, struct err *e)
{
	struct mig_loader l;
	int rc;

	mig_loader_init(&l, r, &fake_ops, t);
	l.features_ok = MIG_FEAT_MULTIFD;
	rc = mig_loader_header(&l, e);
	while (!rc)
		rc = mig_loader_step(&l, e);
	mig_loader_fini(&l);
	return rc < 0 ? rc : 0;
}

static int fz_discard(void *ctx, const struct mig_ram_block *blk, uint64_t offset,
		      const uint64_t *words, uint32_t nwords, struct err *err)
{
	uint64_t x = 0;

	(void)ctx; (void)err;
	for (uint32_t i = 0; i < nwords; i++)	/* every word must be readable */
		x += words[i];
	return offset < blk->size || x == 1 ? 0 : -1;
}

static int fz_listen(void *ctx, struct err *err)
{
	(void)ctx; (void)err;
	return 0;
}

/* Post-copy records: the loader with the POSTCOPY feature accepted. */
static void load_postcopy(const uint8_t *data, size_t size)
{
	struct mig_load_ops ops = fake_ops;
	struct fake_target t;
	struct mig_loader l;
	struct mig_stream r;
	struct err e = { 0 };
	int rc;

	ops.on_pc_discard = fz_discard;
	ops.on_pc_listen = fz_listen;
	fake_init(&t, 0);
	mig_stream_init_mem_reader(&r, data, size);
	mig_loader_init(&l, &r, &ops, &t);
	l.features_ok = MIG_FEAT_POSTCOPY;
	rc = mig_loader_header(&l, &e);
	while (!rc)
		rc = mig_loader_step(&l, &e);
	mig_loader_fini(&l);
	if (rc < 0 && (e.code != rc || !e.msg[0]))
		abort();
	fake_fini(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int direct = 0; direct < 2; direct++) {
		struct fake_target t;
		struct mig_stream r;
		struct err e = { 0 };
		int rc;

		fake_init(&t, direct);
		mig_stream_init_mem_reader(&r, data, size);
		rc = load(&r, &t, &e);
		if (rc > 0 || (rc == 0 && !t.eof))
			abort();
		if (rc < 0 && (e.code != rc || !e.msg[0]))
			abort();
		fake_fini(&t);
	}
	load_postcopy(data, size);
	return 0;
}
