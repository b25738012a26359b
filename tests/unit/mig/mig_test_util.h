/*
 * mig_test_util.h - shared by the mig/stream unit tests, the golden-stream
 * generator and the fuzz target (no cmocka here).
 *
 * - struct test_dev_state + test_dev_fields: a device wire-state struct and
 *   its field table, current version 2 (a field added in 3 exists too).
 * - struct fake_target: a migration destination with a small RAM of its own,
 *   implementing every struct mig_load_ops callback.
 * - golden_build(): the fixed synthetic stream committed as
 *   tests/golden/stream-v1.0.bin.
 */
#ifndef MIG_TEST_UTIL_H
#define MIG_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "stream.h"

#define TEST_DEV_VERSION 2
#define TEST_DEV_MIN_VERSION 1
#define TEST_DEV_IDSTR "testdev@0x3f8"
#define ITER_DEV_IDSTR "iterdev"

struct test_dev_state {
	uint8_t lcr;
	uint16_t divisor;
	uint32_t flags;
	uint64_t tsc;
	bool irq;
	uint8_t fifo[16];
	uint32_t regs[4];
	uint64_t hist[2];	/* since 2 */
	uint16_t tbl[3];	/* since 2, optional */
	uint32_t added_v3;	/* since 3 */
};

extern const struct mig_field test_dev_fields[];

/* Set the golden values (fields only) / init a target's struct (all bytes). */
void test_dev_golden(struct test_dev_state *d);
void test_dev_init(struct test_dev_state *d);

#define FAKE_MAX_BLOCKS 8
#define FAKE_MEM_MAX (4u << 20)		/* total RAM a fake target accepts */
#define FAKE_ITER_MAX 4096

struct fake_target {
	bool direct;		/* give blocks host pointers (else copy) */
	struct mig_ram_block blocks[FAKE_MAX_BLOCKS];
	uint8_t *mem[FAKE_MAX_BLOCKS];
	size_t nblocks;
	struct test_dev_state dev;
	bool dev_loaded;
	char *config;
	char *desc;
	uint8_t iter_data[4096];	/* SECTION_START/PART bytes of iterdev */
	size_t iter_len;
	bool iter_started, iter_ended;
	uint64_t iters[16];
	size_t niters;
	uint64_t pages, zero_pages;
	bool eof;
	int fail_config;	/* if non-zero, on_config returns it */
};

extern const struct mig_load_ops fake_ops;

void fake_init(struct fake_target *t, bool direct);
void fake_fini(struct fake_target *t);
/* Host memory of block `idstr`, or NULL. */
uint8_t *fake_mem(struct fake_target *t, const char *idstr, uint64_t *size);

/* Deterministic page contents. */
void golden_page(uint8_t *page, unsigned seed);

/* Write the golden stream (format 1.0) into s. Returns the sticky error. */
int golden_build(struct mig_stream *s);

/* The golden stream and variants for the fuzz corpus. */
enum golden_variant {
	GOLDEN_FULL = 1,	/* = golden_build() */
	GOLDEN_NOCRC,		/* same records, no crc anywhere */
	GOLDEN_SMALL,		/* no pages; an unknown optional record */
};
int golden_build_variant(struct mig_stream *s, enum golden_variant v);
/* The DESCRIPTION JSON it carries (malloc()ed, NUL-terminated). */
char *golden_description(void);
/* Check a target loaded the golden stream exactly. 0 or -1 with a reason. */
int golden_verify(struct fake_target *t, const char **why);

#endif
