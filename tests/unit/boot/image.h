/*
 * image.h - synthesize small bzImages and guests for the boot unit tests.
 *
 * The default image is a valid protocol 2.15 64-bit relocatable kernel:
 * 3 setup sectors + the boot sector, a 4 KiB "kernel" filled with a
 * pattern, kernel_info ("LToP") at offset 0x40, pref_address 2 MiB,
 * kernel_alignment 2 MiB, init_size 1 MiB. Tests then poke single fields.
 */
#ifndef TEST_BOOT_IMAGE_H
#define TEST_BOOT_IMAGE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot.h"
#include "boot_priv.h"
#include "mem.h"

#define TIMG_SETUP_SECTS	3
#define TIMG_SETUP_LEN		((TIMG_SETUP_SECTS + 1) * 512)
#define TIMG_KERNEL_LEN		4096
#define TIMG_LEN		(TIMG_SETUP_LEN + TIMG_KERNEL_LEN)
#define TIMG_PREF		0x200000ULL
#define TIMG_INIT_SIZE		0x100000U
#define TIMG_KINFO		0x40

static inline uint8_t timg_pattern(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

/* Fill `img` (TIMG_LEN bytes) with the default valid image. */
static inline void timg_fill(uint8_t *img)
{
	memset(img, 0, TIMG_LEN);
	for (size_t i = 0; i < TIMG_KERNEL_LEN; i++)
		img[TIMG_SETUP_LEN + i] = timg_pattern(i);
	img[BZ_SETUP_SECTS] = TIMG_SETUP_SECTS;
	boot_put32(img + BZ_SYSSIZE, TIMG_KERNEL_LEN / 16);
	boot_put16(img + BZ_VID_MODE, 0xffff);
	boot_put16(img + BZ_BOOT_FLAG, 0xaa55);
	img[BZ_JUMP] = 0xeb;
	img[BZ_JUMP + 1] = 0x6a;			/* header ends at 0x26c */
	memcpy(img + BZ_HEADER, "HdrS", 4);
	boot_put16(img + BZ_VERSION, 0x020f);
	img[BZ_LOADFLAGS] = BZ_LOADED_HIGH;
	boot_put32(img + BZ_CODE32_START, 0x100000);
	boot_put32(img + BZ_INITRD_ADDR_MAX, 0x7fffffff);
	boot_put32(img + BZ_KERNEL_ALIGNMENT, 0x200000);
	img[BZ_RELOCATABLE] = 1;
	img[BZ_MIN_ALIGNMENT] = 21;
	boot_put16(img + BZ_XLOADFLAGS, BZ_XLF_KERNEL_64 | BZ_XLF_ABOVE_4G);
	boot_put32(img + BZ_CMDLINE_SIZE, 2047);
	boot_put32(img + BZ_PAYLOAD_OFFSET, 0x100);
	boot_put32(img + BZ_PAYLOAD_LENGTH, 0x800);
	boot_put64(img + BZ_PREF_ADDRESS, TIMG_PREF);
	boot_put32(img + BZ_INIT_SIZE, TIMG_INIT_SIZE);
	boot_put32(img + BZ_KERNEL_INFO_OFFSET, TIMG_KINFO);
	memcpy(img + TIMG_SETUP_LEN + TIMG_KINFO, "LToP", 4);
	boot_put32(img + TIMG_SETUP_LEN + TIMG_KINFO + 4, 16);
	boot_put32(img + TIMG_SETUP_LEN + TIMG_KINFO + 8, 16);
}

/* A zeroed guest of `size` bytes (must stay below MMIO_HOLE_START). */
static inline uint8_t *tguest_new(struct guest_mem *mem, uint64_t size)
{
	uint8_t *base = calloc(1, size);

	if (base)
		gmem_layout(mem, base, size);
	return base;
}

/* A whole file into a new malloc()ed buffer (NULL if unreadable or empty). */
static inline uint8_t *timg_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		*len = (size_t)n;
	}
	fclose(f);
	return buf;
}

#endif
