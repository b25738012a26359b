/*
 * test_bzimage.c - bzimage_parse(): a valid synthesized image, truncation
 * at every length, one hostile value per header field, and the real Debian
 * cloud kernel from /boot when it is installed (skipped otherwise).
 */
#include <errno.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image.h"
#include "layout.h"

static void test_valid(void **state)
{
	uint8_t img[TIMG_LEN];
	struct bzimage_info info;
	struct err err = { 0 };

	timg_fill(img);
	assert_int_equal(bzimage_parse(img, sizeof(img), &info, &err), 0);
	assert_int_equal(info.version, 0x020f);
	assert_int_equal(info.setup_sects, TIMG_SETUP_SECTS);
	assert_int_equal(info.setup_len, TIMG_SETUP_LEN);
	assert_int_equal(info.payload_len, TIMG_KERNEL_LEN);
	assert_int_equal(info.kernel_size, TIMG_KERNEL_LEN);
	assert_int_equal(info.syssize, TIMG_KERNEL_LEN / 16);
	assert_int_equal(info.hdr_end, 0x26c);
	assert_true(info.relocatable);
	assert_true(info.has_entry64);
	assert_int_equal(info.kernel_alignment, 0x200000);
	assert_int_equal(info.pref_address, TIMG_PREF);
	assert_int_equal(info.init_size, TIMG_INIT_SIZE);
	assert_int_equal(info.initrd_addr_max, 0x7fffffff);
	assert_int_equal(info.cmdline_size, 2047);
	assert_int_equal(err.code, 0);
}

/* Trailing bytes (e.g. an appended signature) are allowed and not copied. */
static void test_trailing_bytes(void **state)
{
	static uint8_t img[TIMG_LEN + 1472];
	struct bzimage_info info;

	timg_fill(img);
	assert_int_equal(bzimage_parse(img, sizeof(img), &info, NULL), 0);
	assert_int_equal(info.kernel_size, TIMG_KERNEL_LEN);
	assert_int_equal(info.payload_len, TIMG_KERNEL_LEN + 1472);
}

static void test_setup_sects_zero_means_four(void **state)
{
	static uint8_t img[TIMG_LEN + 512];
	struct bzimage_info info;

	timg_fill(img);
	/* Move the kernel one sector later: setup is now 5 sectors. */
	memmove(img + TIMG_SETUP_LEN + 512, img + TIMG_SETUP_LEN, TIMG_KERNEL_LEN);
	img[BZ_SETUP_SECTS] = 0;
	assert_int_equal(bzimage_parse(img, sizeof(img), &info, NULL), 0);
	assert_int_equal(info.setup_sects, 4);
	assert_int_equal(info.setup_len, 5 * 512);
}

static void test_truncated(void **state)
{
	uint8_t img[TIMG_LEN];
	struct bzimage_info info;

	timg_fill(img);
	for (size_t len = 0; len < TIMG_LEN; len++) {
		struct err err = { 0 };
		/* A fresh heap copy so ASan sees any read past `len`. */
		uint8_t *cut = malloc(len ? len : 1);

		assert_non_null(cut);
		memcpy(cut, img, len);
		assert_int_not_equal(bzimage_parse(cut, len, &info, &err), 0);
		assert_true(err.code < 0);
		assert_non_null(strstr(err.msg, "bzImage: "));
		free(cut);
	}
}

struct poke {
	unsigned off;
	unsigned size;		/* 1, 2, 4 or 8 */
	uint64_t val;
	const char *msg;	/* expected in the error */
};

static const struct poke hostile[] = {
	{ BZ_BOOT_FLAG, 2, 0x1234, "boot_flag 0x1234" },
	{ BZ_HEADER, 4, 0x53726449, "HdrS" },
	{ BZ_VERSION, 2, 0x0205, "protocol 2.05 too old" },
	{ BZ_SETUP_SECTS, 1, 200, "setup_sects 200 extends past end of file (6144 bytes)" },
	{ BZ_SETUP_SECTS, 1, 11, "setup_sects 11 extends past end of file" },
	{ BZ_SETUP_SECTS, 1, 1, "LToP" },
	{ BZ_JUMP, 1, 0xe9, "setup header ends" },
	{ BZ_JUMP + 1, 1, 0x30, "setup header ends at 0x232" },
	{ BZ_LOADFLAGS, 1, 0, "LOADED_HIGH" },
	{ BZ_SYSSIZE, 4, 0, "syssize 0" },
	{ BZ_SYSSIZE, 4, TIMG_KERNEL_LEN / 16 + 1, "syssize 257" },
	{ BZ_SYSSIZE, 4, 0xffffffff, "syssize 4294967295 (68719476720 bytes)" },
	{ BZ_KERNEL_ALIGNMENT, 4, 0, "kernel_alignment 0x0" },
	{ BZ_KERNEL_ALIGNMENT, 4, 0x300000, "kernel_alignment 0x300000" },
	{ BZ_KERNEL_ALIGNMENT, 4, 0x80000000, "kernel_alignment 0x80000000" },
	{ BZ_MIN_ALIGNMENT, 1, 22, "min_alignment 2^22" },
	{ BZ_MIN_ALIGNMENT, 1, 255, "min_alignment 2^255" },
	{ BZ_PAYLOAD_OFFSET, 4, 0xffffffff, "payload_offset 0xffffffff" },
	{ BZ_PAYLOAD_LENGTH, 4, 0xfffffff0, "payload_length 0xfffffff0" },
	{ BZ_INIT_SIZE, 4, 0x10, "init_size 0x10 smaller" },
	{ BZ_PREF_ADDRESS, 8, 0x200001, "pref_address 0x200001" },
	{ BZ_PREF_ADDRESS, 8, 0xfffffffffffff000ULL, "pref_address 0xfffffffffffff000" },
	{ BZ_KERNEL_INFO_OFFSET, 4, TIMG_KERNEL_LEN - 8, "kernel_info_offset 0xff8" },
	{ BZ_KERNEL_INFO_OFFSET, 4, 0xfffffff0, "kernel_info_offset 0xfffffff0" },
	{ BZ_KERNEL_INFO_OFFSET, 4, 0x80, "LToP" },
};

static void poke(uint8_t *img, const struct poke *p)
{
	switch (p->size) {
	case 1: img[p->off] = (uint8_t)p->val; break;
	case 2: boot_put16(img + p->off, (uint16_t)p->val); break;
	case 4: boot_put32(img + p->off, (uint32_t)p->val); break;
	default: boot_put64(img + p->off, p->val); break;
	}
}

static void test_hostile_fields(void **state)
{
	uint8_t img[TIMG_LEN];

	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		struct bzimage_info info;
		struct err err = { 0 };

		timg_fill(img);
		poke(img, &hostile[i]);
		assert_int_not_equal(bzimage_parse(img, sizeof(img), &info, &err), 0);
		if (!strstr(err.msg, hostile[i].msg))
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err.msg, hostile[i].msg);
	}
}

static void test_handover_offset(void **state)
{
	uint8_t img[TIMG_LEN];
	struct err err = { 0 };
	struct bzimage_info info;

	timg_fill(img);
	boot_put16(img + BZ_XLOADFLAGS, BZ_XLF_KERNEL_64 | BZ_XLF_EFI_HANDOVER_64);
	boot_put32(img + BZ_HANDOVER_OFFSET, 0x100);
	assert_int_equal(bzimage_parse(img, sizeof(img), &info, NULL), 0);
	boot_put32(img + BZ_HANDOVER_OFFSET, TIMG_KERNEL_LEN - 0x100);
	assert_int_equal(bzimage_parse(img, sizeof(img), &info, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "handover_offset 0xf00"));
	/* Without the EFI handover flags the field is ignored. */
	boot_put16(img + BZ_XLOADFLAGS, BZ_XLF_KERNEL_64);
	assert_int_equal(bzimage_parse(img, sizeof(img), &info, NULL), 0);
}

/* Older protocols parse; their missing fields are neither read nor needed. */
static void test_old_protocols(void **state)
{
	uint8_t img[TIMG_LEN];
	struct bzimage_info info;

	timg_fill(img);
	boot_put16(img + BZ_VERSION, 0x0206);
	img[BZ_JUMP + 1] = 0x3a;			/* header ends at 0x23c */
	boot_put32(img + BZ_INIT_SIZE, 0);		/* not a 2.06 field */
	assert_int_equal(bzimage_parse(img, sizeof(img), &info, NULL), 0);
	assert_false(info.has_entry64);
	assert_int_equal(info.pref_address, HIMEM_START);
	assert_int_equal(info.init_size, TIMG_KERNEL_LEN);

	timg_fill(img);
	boot_put16(img + BZ_VERSION, 0x020c);
	boot_put16(img + BZ_XLOADFLAGS, 0);
	assert_int_equal(bzimage_parse(img, sizeof(img), &info, NULL), 0);
	assert_false(info.has_entry64);
	boot_put16(img + BZ_XLOADFLAGS, BZ_XLF_KERNEL_64);
	assert_int_equal(bzimage_parse(img, sizeof(img), &info, NULL), 0);
	assert_true(info.has_entry64);
}

static void test_null_args(void **state)
{
	struct bzimage_info info;
	struct err err = { 0 };

	assert_int_equal(bzimage_parse(NULL, 100, &info, &err), -EINVAL);
	assert_int_equal(bzimage_parse((const uint8_t *)"x", 1, NULL, NULL), -EINVAL);
}

static void test_debian_kernel(void **state)
{
	glob_t g;
	struct bzimage_info info;
	struct err err = { 0 };
	uint8_t *img;
	size_t len = 0;

	if (glob("/boot/vmlinuz-*-cloud-amd64", 0, NULL, &g) != 0 || g.gl_pathc == 0) {
		globfree(&g);
		skip();
	}
	img = timg_read_file(g.gl_pathv[0], &len);
	assert_non_null(img);
	if (bzimage_parse(img, len, &info, &err))
		fail_msg("%s: %s", g.gl_pathv[0], err.msg);
	print_message("# %s: protocol %x, setup %zu, kernel %zu of %zu bytes, init_size 0x%x, pref 0x%llx\n",
		      g.gl_pathv[0], info.version, info.setup_len, info.kernel_size,
		      info.payload_len, info.init_size, (unsigned long long)info.pref_address);
	assert_true(info.version >= 0x20f);
	assert_true(info.has_entry64);
	assert_true(info.relocatable);
	assert_true(info.kernel_size <= info.payload_len);
	free(img);
	globfree(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_setup_sects_zero_means_four),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_hostile_fields),
		cmocka_unit_test(test_handover_offset),
		cmocka_unit_test(test_old_protocols),
		cmocka_unit_test(test_null_args),
		cmocka_unit_test(test_debian_kernel),
	};

	return cmocka_run_group_tests_name("bzimage", tests, NULL, NULL);
}
