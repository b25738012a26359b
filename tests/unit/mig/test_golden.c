/*
 * test_golden.c - the committed golden stream (tests/golden/stream-v1.0.bin)
 * against what the codec writes today, and the loader against it: exact
 * bytes, full load in both placement modes, and a cut at every byte.
 *
 * argv[1] is the golden file (meson passes it).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mig_test_util.h"

static const char *golden_path;
static uint8_t *golden;
static size_t golden_len;

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		p = malloc((size_t)n + 1);
		if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
			free(p);
			p = NULL;
		}
		*len = (size_t)n;
	}
	fclose(f);
	return p;
}

static int setup(void **state)
{
	golden = read_file(golden_path, &golden_len);
	if (!golden)
		fprintf(stderr, "# cannot read golden file %s\n", golden_path);
	return golden ? 0 : -1;
}

static int teardown(void **state)
{
	free(golden);
	return 0;
}

static void test_bytes_match(void **state)
{
	struct mig_stream s;
	const uint8_t *p;
	size_t len, i;

	mig_stream_init_mem_writer(&s, 0);
	assert_int_equal(golden_build(&s), 0);
	p = mig_stream_data(&s, &len);
	for (i = 0; i < len && i < golden_len && p[i] == golden[i]; i++)
		;
	if (i != len || len != golden_len)
		fail_msg("stream differs from %s at byte %zu (%zu vs %zu bytes): "
			 "format changed? see docs/migration-stream.md",
			 golden_path, i, len, golden_len);
	mig_stream_fini(&s);
}

static void load_golden(bool direct)
{
	struct fake_target t;
	struct mig_stream r;
	struct err e = { 0 };
	const char *why = NULL;

	fake_init(&t, direct);
	mig_stream_init_mem_reader(&r, golden, golden_len);
	if (mig_load(&r, &fake_ops, &t, &e))
		fail_msg("load failed: %s", e.msg);
	if (golden_verify(&t, &why))
		fail_msg("golden load wrong: %s", why);
	assert_int_equal(mig_stream_offset(&r), golden_len);
	assert_int_equal(t.pages, 6);
	assert_int_equal(t.zero_pages, 4);
	fake_fini(&t);
}

static void test_load_direct(void **state)
{
	load_golden(true);
}

static void test_load_copy(void **state)
{
	load_golden(false);
}

static void test_description_json(void **state)
{
	char path[4096], *want = golden_description(), *file;
	struct fake_target t;
	struct mig_stream r;
	size_t len;

	fake_init(&t, true);
	mig_stream_init_mem_reader(&r, golden, golden_len);
	assert_int_equal(mig_load(&r, &fake_ops, &t, NULL), 0);
	assert_string_equal(t.desc, want);
	snprintf(path, sizeof(path), "%.*s.json",
		 (int)(strlen(golden_path) - 4), golden_path);
	file = (char *)read_file(path, &len);
	assert_non_null(file);
	file[len] = '\0';
	assert_string_equal(file, want);
	free(file);
	free(want);
	fake_fini(&t);
}

/* Cut the stream at every length: all fail cleanly, device untouched. */
static void test_truncate_every_byte(void **state)
{
	struct test_dev_state init;

	test_dev_init(&init);
	for (size_t cut = 0; cut < golden_len; cut++) {
		struct fake_target t;
		struct mig_stream r;
		struct err e = { 0 };
		int rc;

		fake_init(&t, cut & 1);
		mig_stream_init_mem_reader(&r, golden, cut);
		rc = mig_load(&r, &fake_ops, &t, &e);
		if (rc != -ENODATA || !strstr(e.msg, "truncated stream"))
			fail_msg("cut %zu: rc %d '%s'", cut, rc, e.msg);
		assert_false(t.eof);
		if (!t.dev_loaded && memcmp(&t.dev, &init, sizeof(init)))
			fail_msg("cut %zu: device changed without a load", cut);
		fake_fini(&t);
	}
}

/* Flip every byte of the non-RAM part: never crash, never a silent pass
 * with wrong device state. */
static void test_flip_bytes(void **state)
{
	uint8_t *copy = malloc(golden_len);

	assert_non_null(copy);
	for (size_t i = 0; i < golden_len; i++) {
		struct fake_target t;
		struct mig_stream r;
		const char *why;
		int rc;

		memcpy(copy, golden, golden_len);
		copy[i] ^= 0x41;
		fake_init(&t, i & 1);
		mig_stream_init_mem_reader(&r, copy, golden_len);
		rc = mig_load(&r, &fake_ops, &t, NULL);
		/* RAM page bytes carry no crc in the golden stream: a flip
		 * there loads, and only the RAM contents differ. */
		if (!rc && golden_verify(&t, &why) && strcmp(why, "RAM contents"))
			fail_msg("flip at %zu loaded with wrong %s", i, why);
		fake_fini(&t);
	}
	free(copy);
}

/* The fuzz seeds (crc-free and small variants) are valid streams. */
static void test_variants_load(void **state)
{
	for (int v = GOLDEN_NOCRC; v <= GOLDEN_SMALL; v++) {
		struct fake_target t;
		struct mig_stream w, r;
		struct err e = { 0 };
		const char *why;

		mig_stream_init_mem_writer(&w, 0);
		assert_int_equal(golden_build_variant(&w, v), 0);
		fake_init(&t, v & 1);
		mig_stream_init_mem_reader(&r, mig_stream_data(&w, NULL),
					   mig_stream_offset(&w));
		if (mig_load(&r, &fake_ops, &t, &e))
			fail_msg("variant %d: %s", v, e.msg);
		if (v == GOLDEN_NOCRC && golden_verify(&t, &why))
			fail_msg("nocrc variant: %s", why);
		assert_true(t.eof && t.dev_loaded);
		fake_fini(&t);
		mig_stream_fini(&w);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bytes_match),
		cmocka_unit_test(test_load_direct),
		cmocka_unit_test(test_load_copy),
		cmocka_unit_test(test_description_json),
		cmocka_unit_test(test_truncate_every_byte),
		cmocka_unit_test(test_flip_bytes),
		cmocka_unit_test(test_variants_load),
	};

	golden_path = argc > 1 ? argv[1] : "tests/golden/stream-v1.0.bin";
	return cmocka_run_group_tests_name("mig-stream-golden", tests, setup,
					   teardown);
}
