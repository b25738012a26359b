/*
 * test_fill.c - the destination's first writes by UFFDIO_COPY (mig/fill.c)
 * on real anonymous memory and a real userfaultfd: pages land with the
 * right bytes, pages never written stay absent (and read as zero once the
 * fill stops), zero runs clear only what is there, memory populated before
 * the fill started is found and overwritten rather than skipped.
 *
 * Guest RAM is read only where the test placed a page, or after
 * mig_fill_stop(): an absent page raises SIGBUS while the fill is on.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "fill.h"

#define PS	4096u
#define NPAGES	64u

struct fx {
	uint8_t *mem;
	struct mig_ram_block blk;
	uint8_t data[8][PS];
	void *ptr[8];
};

static bool resident(const uint8_t *p)
{
	unsigned char v = 0;

	assert_int_equal(mincore((void *)p, PS, &v), 0);
	return v & 1;
}

static int setup(void **state)
{
	static struct fx f;

	memset(&f, 0, sizeof(f));
	f.mem = mmap(NULL, NPAGES * PS, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(f.mem != MAP_FAILED);
	f.blk = (struct mig_ram_block){ .id = 1, .page_size = PS, .size = NPAGES * PS,
					.idstr = "ram0", .host = f.mem };
	for (unsigned i = 0; i < 8; i++) {
		memset(f.data[i], 0xa0 + i, PS);
		f.ptr[i] = f.data[i];
	}
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	munmap(f->mem, NPAGES * PS);
	return 0;
}

/* Start the fill, or skip (loudly) where this kernel or user has no userfaultfd. */
static struct mig_fill *start(struct fx *f)
{
	struct mig_fill *fill = mig_fill_start(&f->blk, 1, PS);
	struct err e = { 0 };
	int fd;

	if (fill)
		return fill;
	fd = mig_uffd_open(0, &e);
	if (fd < 0) {
		fprintf(stderr, "# SKIP: %s\n", e.msg);
		skip();
	}
	close(fd);
	fail_msg("mig_fill_start() refused although userfaultfd works");
	return NULL;
}

static void test_runs_land_and_the_rest_stays_absent(void **state)
{
	struct fx *f = *state;
	uint64_t offs[4] = { 4 * PS, 5 * PS, 6 * PS, 20 * PS };
	uint64_t copied, written;
	struct err e = { 0 };
	struct mig_fill *fill = start(f);

	assert_int_equal(mig_fill_pages(fill, 0, offs, f->ptr, 4, &e), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_memory_equal(f->mem + offs[i], f->data[i], PS);
	mig_fill_counts(fill, &copied, &written);
	assert_int_equal(copied, 4);
	assert_int_equal(written, 0);
	/* a page already placed is overwritten in place */
	assert_int_equal(mig_fill_pages(fill, 0, &offs[1], &f->ptr[7], 1, &e), 0);
	assert_memory_equal(f->mem + offs[1], f->data[7], PS);
	mig_fill_counts(fill, &copied, &written);
	assert_int_equal(written, 1);
	mig_fill_stop(fill);
	assert_false(resident(f->mem + 3 * PS));
	assert_false(resident(f->mem + 7 * PS));
	assert_true(resident(f->mem + 4 * PS));
	for (unsigned i = 0; i < PS; i++)	/* ordinary memory again: zero */
		assert_int_equal(f->mem[7 * PS + i], 0);
}

static void test_pages_apart_in_memory_are_not_one_run(void **state)
{
	struct fx *f = *state;
	uint64_t offs[3] = { 8 * PS, 9 * PS, 10 * PS };
	void *src[3] = { f->data[2], f->data[0], f->data[1] };	/* not in order */
	struct err e = { 0 };
	struct mig_fill *fill = start(f);

	assert_int_equal(mig_fill_pages(fill, 0, offs, src, 3, &e), 0);
	for (unsigned i = 0; i < 3; i++)
		assert_memory_equal(f->mem + offs[i], src[i], PS);
	mig_fill_stop(fill);
}

static void test_zero_run_clears_present_pages_only(void **state)
{
	struct fx *f = *state;
	uint64_t off = 12 * PS;
	struct err e = { 0 };
	struct mig_fill *fill = start(f);

	assert_int_equal(mig_fill_pages(fill, 0, &off, f->ptr, 1, &e), 0);
	mig_fill_zero(fill, 0, 10 * PS, 5);		/* pages 10..14 */
	mig_fill_stop(fill);
	for (unsigned i = 0; i < PS; i++)
		assert_int_equal(f->mem[12 * PS + i], 0);
	assert_false(resident(f->mem + 11 * PS));	/* not populated to clear it */
}

static void test_memory_populated_before_is_found(void **state)
{
	struct fx *f = *state;
	uint64_t off = 30 * PS;
	uint64_t copied, written;
	struct err e = { 0 };
	struct mig_fill *fill;

	memset(f->mem + 30 * PS, 0x55, 2 * PS);		/* pages 30 and 31 */
	fill = start(f);
	mig_fill_zero(fill, 0, 31 * PS, 1);		/* must not be skipped */
	assert_int_equal(mig_fill_pages(fill, 0, &off, &f->ptr[3], 1, &e), 0);
	mig_fill_counts(fill, &copied, &written);
	assert_int_equal(copied, 0);
	assert_int_equal(written, 1);
	assert_memory_equal(f->mem + 30 * PS, f->data[3], PS);
	for (unsigned i = 0; i < PS; i++)
		assert_int_equal(f->mem[31 * PS + i], 0);
	mig_fill_stop(fill);
}

static void test_page_for_update_is_zero_then_kept(void **state)
{
	struct fx *f = *state;
	struct err e = { 0 };
	struct mig_fill *fill = start(f);
	uint8_t *p = mig_fill_page(fill, 0, 40 * PS, &e);

	assert_non_null(p);
	assert_ptr_equal(p, f->mem + 40 * PS);
	for (unsigned i = 0; i < PS; i++)
		assert_int_equal(p[i], 0);
	p[17] = 0x42;
	assert_ptr_equal(mig_fill_page(fill, 0, 40 * PS, &e), p);
	assert_int_equal(p[17], 0x42);		/* present: not placed again */
	mig_fill_stop(fill);
	assert_int_equal(f->mem[40 * PS + 17], 0x42);
}

static void test_fully_populated_memory_needs_no_fill(void **state)
{
	struct fx *f = *state;

	memset(f->mem, 1, NPAGES * PS);
	assert_null(mig_fill_start(&f->blk, 1, PS));
	/* nor do pages of another size */
	assert_null(mig_fill_start(&f->blk, 1, 2 * PS));
	mig_fill_stop(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_runs_land_and_the_rest_stays_absent, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pages_apart_in_memory_are_not_one_run, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_zero_run_clears_present_pages_only, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_memory_populated_before_is_found, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_page_for_update_is_zero_then_kept, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fully_populated_memory_needs_no_fill, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
