/*
 * boot_priv.h - private to vmm/boot (and its unit tests / fuzzers).
 *
 * Byte offsets of the Linux x86 setup header inside a bzImage (identical
 * inside boot_params, the "zero page"), the zero-page fields the loader
 * fills, little-endian accessors, and the builders load.c strings together.
 * Offsets follow Documentation/arch/x86/boot.rst and zero-page.rst.
 */
#ifndef VMM_BOOT_PRIV_H
#define VMM_BOOT_PRIV_H

#include <stdint.h>
#include <string.h>

#include "boot.h"
#include "util.h"

/* Setup header fields (offset in the image and in boot_params). */
#define BZ_SETUP_SECTS		0x1f1	/* u8 */
#define BZ_SYSSIZE		0x1f4	/* u32, 16-byte paragraphs */
#define BZ_VID_MODE		0x1fa	/* u16 */
#define BZ_BOOT_FLAG		0x1fe	/* u16 0xaa55 */
#define BZ_JUMP			0x200	/* u8 0xeb, u8 rel8: header end */
#define BZ_HEADER		0x202	/* "HdrS" */
#define BZ_VERSION		0x206	/* u16 */
#define BZ_TYPE_OF_LOADER	0x210	/* u8 */
#define BZ_LOADFLAGS		0x211	/* u8 */
#define BZ_CODE32_START		0x214	/* u32 */
#define BZ_RAMDISK_IMAGE	0x218	/* u32 */
#define BZ_RAMDISK_SIZE		0x21c	/* u32 */
#define BZ_HEAP_END_PTR		0x224	/* u16 */
#define BZ_CMD_LINE_PTR		0x228	/* u32 */
#define BZ_INITRD_ADDR_MAX	0x22c	/* u32 */
#define BZ_KERNEL_ALIGNMENT	0x230	/* u32 */
#define BZ_RELOCATABLE		0x234	/* u8 */
#define BZ_MIN_ALIGNMENT	0x235	/* u8, log2 (2.10+) */
#define BZ_XLOADFLAGS		0x236	/* u16 (2.12+) */
#define BZ_CMDLINE_SIZE		0x238	/* u32 (2.06+) */
#define BZ_PAYLOAD_OFFSET	0x248	/* u32 (2.08+) */
#define BZ_PAYLOAD_LENGTH	0x24c	/* u32 (2.08+) */
#define BZ_SETUP_DATA		0x250	/* u64 (2.09+) */
#define BZ_PREF_ADDRESS		0x258	/* u64 (2.10+) */
#define BZ_INIT_SIZE		0x260	/* u32 (2.10+) */
#define BZ_HANDOVER_OFFSET	0x264	/* u32 (2.11+) */
#define BZ_KERNEL_INFO_OFFSET	0x268	/* u32 (2.15+) */
#define BZ_HDR_END_MAX		0x290	/* boot_params reserves up to here */

#define BZ_BOOT_FLAG_MAGIC	0xaa55
#define BZ_HEADER_MAGIC		0x53726448	/* "HdrS" little-endian */
#define BZ_KERNEL_INFO_MAGIC	0x506f544c	/* "LToP" little-endian */
#define BZ_MIN_LEN		1024	/* boot sector + one setup sector */
#define BZ_SECTOR		512
#define BZ_ENTRY64_OFFSET	0x200	/* 64-bit entry inside the kernel */
#define BZ_ALIGN_MAX		(1u << 30)
#define BOOT_PAGE_SIZE		4096ULL

/* loadflags */
#define BZ_LOADED_HIGH		0x01
#define BZ_KASLR_FLAG		0x02
#define BZ_KEEP_SEGMENTS	0x40
#define BZ_CAN_USE_HEAP		0x80

/* xloadflags */
#define BZ_XLF_KERNEL_64	0x0001
#define BZ_XLF_ABOVE_4G		0x0002
#define BZ_XLF_EFI_HANDOVER_32	0x0004
#define BZ_XLF_EFI_HANDOVER_64	0x0008

/* boot_params ("zero page") fields outside the setup header. */
#define ZP_SIZE			4096
#define ZP_ACPI_RSDP_ADDR	0x070	/* u64 (2.14+) */
#define ZP_EXT_RAMDISK_IMAGE	0x0c0	/* u32 */
#define ZP_EXT_RAMDISK_SIZE	0x0c4	/* u32 */
#define ZP_EXT_CMD_LINE_PTR	0x0c8	/* u32 */
#define ZP_E820_ENTRIES		0x1e8	/* u8 */
#define ZP_SENTINEL		0x1ef	/* u8, must stay 0 */
#define ZP_E820_TABLE		0x2d0	/* 128 x {u64 addr, u64 size, u32 type} */
#define ZP_E820_MAX		128
#define ZP_E820_ENTRY_SIZE	20

#define BOOT_LOADER_TYPE	0xff	/* "undefined" boot loader id */
#define BOOT_HEAP_END_PTR	0xfe00

/* GDT selectors required by the 64-bit boot protocol. */
#define BOOT_GDT_ENTRIES	4
#define BOOT_CS			0x10
#define BOOT_DS			0x18

/* Identity page tables: PML4, PDPT, then one PD per GiB mapped. */
#define BOOT_PGTABLE_GIB	4
#define BOOT_PGTABLE_PAGES	(2 + BOOT_PGTABLE_GIB)

static inline uint16_t boot_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t boot_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t boot_get64(const uint8_t *p)
{
	return boot_get32(p) | (uint64_t)boot_get32(p + 4) << 32;
}

static inline void boot_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void boot_put32(uint8_t *p, uint32_t v)
{
	boot_put16(p, (uint16_t)v);
	boot_put16(p + 2, (uint16_t)(v >> 16));
}

static inline void boot_put64(uint8_t *p, uint64_t v)
{
	boot_put32(p, (uint32_t)v);
	boot_put32(p + 4, (uint32_t)(v >> 32));
}

/* acpi.c: RSDP, XSDT, FADT, DSDT, MADT in [BOOT_ACPI_ADDR, BOOT_ACPI_END). */
int boot_acpi_build(struct guest_mem *mem, unsigned nr_cpus,
		    uint64_t *rsdp_addr, struct err *err);

/* cpu.c: GDT at BOOT_GDT_ADDR, identity page tables at BOOT_PGTABLE_ADDR. */
int boot_gdt_build(struct guest_mem *mem, struct err *err);
int boot_pgtable_build(struct guest_mem *mem, struct err *err);

#endif
