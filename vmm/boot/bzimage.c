/*
 * bzimage.c - validate a bzImage's setup header (Linux x86 boot protocol).
 *
 * The image is untrusted: every field is range-checked against the file
 * length and the protocol version before anything else uses it, and all
 * arithmetic is done in 64 bits so no sum can wrap. Each failure names the
 * field: "bzImage: setup_sects 200 extends past end of file (12345 bytes)".
 */
#include <errno.h>
#include <string.h>

#include "boot_priv.h"
#include "layout.h"

/* End of the setup header a given protocol version must provide. */
static size_t bz_hdr_need(uint16_t version)
{
	if (version >= 0x20f)
		return BZ_KERNEL_INFO_OFFSET + 4;
	if (version >= 0x20b)
		return BZ_HANDOVER_OFFSET + 4;
	if (version >= 0x20a)
		return BZ_INIT_SIZE + 4;
	if (version >= 0x209)
		return BZ_SETUP_DATA + 8;
	if (version >= 0x208)
		return BZ_PAYLOAD_LENGTH + 4;
	return BZ_CMDLINE_SIZE + 4;
}

static int bz_check_magic(const uint8_t *img, size_t len, struct bzimage_info *info,
			  struct err *err)
{
	if (len < BZ_MIN_LEN)
		return err_set(err, -EINVAL,
			       "bzImage: file too small (%zu bytes, need at least %d)",
			       len, BZ_MIN_LEN);
	if (boot_get16(img + BZ_BOOT_FLAG) != BZ_BOOT_FLAG_MAGIC)
		return err_set(err, -EINVAL, "bzImage: boot_flag 0x%04x at 0x1fe is not 0xaa55",
			       boot_get16(img + BZ_BOOT_FLAG));
	if (boot_get32(img + BZ_HEADER) != BZ_HEADER_MAGIC)
		return err_set(err, -EINVAL, "bzImage: no \"HdrS\" magic at 0x202 (not a bzImage)");
	info->version = boot_get16(img + BZ_VERSION);
	if (info->version < 0x206)
		return err_set(err, -ENOTSUP,
			       "bzImage: boot protocol %u.%02u too old (need >= 2.06)",
			       info->version >> 8, info->version & 0xff);
	return 0;
}

static int bz_check_setup(const uint8_t *img, size_t len, struct bzimage_info *info,
			  struct err *err)
{
	size_t need = bz_hdr_need(info->version);

	info->setup_sects = img[BZ_SETUP_SECTS] ? img[BZ_SETUP_SECTS] : 4;
	info->setup_len = ((size_t)info->setup_sects + 1) * BZ_SECTOR;
	if (info->setup_len >= len)
		return err_set(err, -EINVAL,
			       "bzImage: setup_sects %u extends past end of file (%zu bytes)",
			       info->setup_sects, len);
	info->payload_len = len - info->setup_len;
	/* At most 0x301, so always inside the >= 1024-byte setup code. */
	info->hdr_end = BZ_HEADER + (size_t)img[BZ_JUMP + 1];
	if (img[BZ_JUMP] != 0xeb || info->hdr_end < need)
		return err_set(err, -EINVAL,
			       "bzImage: setup header ends at 0x%zx, protocol %u.%02u needs 0x%zx",
			       info->hdr_end, info->version >> 8, info->version & 0xff, need);
	return 0;
}

static int bz_check_sizes(const uint8_t *img, struct bzimage_info *info, struct err *err)
{
	uint64_t bytes;

	info->loadflags = img[BZ_LOADFLAGS];
	if (!(info->loadflags & BZ_LOADED_HIGH))
		return err_set(err, -ENOTSUP,
			       "bzImage: loadflags 0x%02x lacks LOADED_HIGH (zImage not supported)",
			       info->loadflags);
	info->syssize = boot_get32(img + BZ_SYSSIZE);
	bytes = (uint64_t)info->syssize * 16;
	if (info->syssize == 0 || bytes > info->payload_len)
		return err_set(err, -EINVAL,
			       "bzImage: syssize %u (%llu bytes) does not fit the %zu bytes after setup",
			       info->syssize, (unsigned long long)bytes, info->payload_len);
	info->kernel_size = (size_t)bytes;
	info->cmdline_size = boot_get32(img + BZ_CMDLINE_SIZE);
	info->initrd_addr_max = boot_get32(img + BZ_INITRD_ADDR_MAX);
	return 0;
}

static int bz_check_align(const uint8_t *img, struct bzimage_info *info, struct err *err)
{
	uint32_t a = boot_get32(img + BZ_KERNEL_ALIGNMENT);
	unsigned min = img[BZ_MIN_ALIGNMENT];

	info->relocatable = img[BZ_RELOCATABLE] != 0;
	info->kernel_alignment = a;
	if (a == 0 || (a & (a - 1)) || a > BZ_ALIGN_MAX)
		return err_set(err, -EINVAL,
			       "bzImage: kernel_alignment 0x%x is not a power of two <= 1 GiB",
			       a);
	if (info->version >= 0x20a && (min > 30 || (1u << min) > a))
		return err_set(err, -EINVAL,
			       "bzImage: min_alignment 2^%u exceeds kernel_alignment 0x%x",
			       min, a);
	return 0;
}

static int bz_check_payload(const uint8_t *img, const struct bzimage_info *info,
			    struct err *err)
{
	uint64_t off = boot_get32(img + BZ_PAYLOAD_OFFSET);
	uint64_t plen = boot_get32(img + BZ_PAYLOAD_LENGTH);

	if (info->version < 0x208)
		return 0;
	if (off + plen > info->kernel_size)
		return err_set(err, -EINVAL,
			       "bzImage: payload_offset 0x%llx + payload_length 0x%llx past kernel end 0x%zx",
			       (unsigned long long)off, (unsigned long long)plen,
			       info->kernel_size);
	return 0;
}

static int bz_check_layout(const uint8_t *img, struct bzimage_info *info, struct err *err)
{
	if (info->version < 0x20a) {
		info->pref_address = HIMEM_START;
		info->init_size = (uint32_t)MIN(info->kernel_size, UINT32_MAX);
		return 0;
	}
	info->pref_address = boot_get64(img + BZ_PREF_ADDRESS);
	info->init_size = boot_get32(img + BZ_INIT_SIZE);
	if (info->init_size < info->kernel_size)
		return err_set(err, -EINVAL,
			       "bzImage: init_size 0x%x smaller than the 0x%zx-byte kernel",
			       info->init_size, info->kernel_size);
	if (info->pref_address & (BOOT_PAGE_SIZE - 1) ||
	    info->pref_address > UINT64_MAX - info->init_size)
		return err_set(err, -EINVAL,
			       "bzImage: pref_address 0x%llx is unaligned or overflows with init_size",
			       (unsigned long long)info->pref_address);
	return 0;
}

static int bz_check_entries(const uint8_t *img, struct bzimage_info *info, struct err *err)
{
	uint64_t handover = boot_get32(img + BZ_HANDOVER_OFFSET);
	uint64_t kinfo = boot_get32(img + BZ_KERNEL_INFO_OFFSET);

	if (info->version >= 0x20c)
		info->xloadflags = boot_get16(img + BZ_XLOADFLAGS);
	info->has_entry64 = info->version >= 0x20c && (info->xloadflags & BZ_XLF_KERNEL_64);
	if (info->version >= 0x20b &&
	    (info->xloadflags & (BZ_XLF_EFI_HANDOVER_32 | BZ_XLF_EFI_HANDOVER_64)) &&
	    handover + BZ_ENTRY64_OFFSET >= info->kernel_size)
		return err_set(err, -EINVAL,
			       "bzImage: handover_offset 0x%llx past kernel end 0x%zx",
			       (unsigned long long)handover, info->kernel_size);
	if (info->version < 0x20f || kinfo == 0)
		return 0;
	if (kinfo + 16 > info->kernel_size)
		return err_set(err, -EINVAL,
			       "bzImage: kernel_info_offset 0x%llx past kernel end 0x%zx",
			       (unsigned long long)kinfo, info->kernel_size);
	if (boot_get32(img + info->setup_len + kinfo) != BZ_KERNEL_INFO_MAGIC)
		return err_set(err, -EINVAL,
			       "bzImage: no \"LToP\" magic at kernel_info_offset 0x%llx",
			       (unsigned long long)kinfo);
	return 0;
}

int bzimage_parse(const uint8_t *img, size_t len, struct bzimage_info *info,
		  struct err *err)
{
	int rc;

	if (!img || !info)
		return err_set(err, -EINVAL, "bzImage: no image");
	memset(info, 0, sizeof(*info));
	rc = bz_check_magic(img, len, info, err);
	if (!rc)
		rc = bz_check_setup(img, len, info, err);
	if (!rc)
		rc = bz_check_sizes(img, info, err);
	if (!rc)
		rc = bz_check_align(img, info, err);
	if (!rc)
		rc = bz_check_payload(img, info, err);
	if (!rc)
		rc = bz_check_layout(img, info, err);
	if (!rc)
		rc = bz_check_entries(img, info, err);
	return rc;
}
