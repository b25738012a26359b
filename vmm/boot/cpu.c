/*
 * cpu.c - the CPU structures the 64-bit boot protocol expects in memory.
 *
 * A GDT whose __BOOT_CS (0x10) is a flat 64-bit code segment and __BOOT_DS
 * (0x18) a flat data segment, and page tables identity-mapping the first
 * 4 GiB with 2 MiB pages (no 1 GiB pages: the PVM host may not offer them).
 * The kernel replaces both early; they only have to cover the kernel, its
 * init_size range, boot_params and the command line.
 */
#include <errno.h>

#include "boot_priv.h"
#include "layout.h"

#define PTE_PRESENT	0x001ULL
#define PTE_WRITE	0x002ULL
#define PTE_LARGE	0x080ULL	/* PS: 2 MiB page in a PD entry */
#define PTES_PER_PAGE	512

/* Flat descriptors: G=1, limit 0xfffff, present, DPL 0, accessed. */
#define GDT_CODE64	0x00af9b000000ffffULL	/* L=1, D=0, execute/read */
#define GDT_DATA	0x00cf93000000ffffULL	/* D/B=1, read/write */

int boot_gdt_build(struct guest_mem *mem, struct err *err)
{
	uint8_t *gdt = gmem_ptr(mem, BOOT_GDT_ADDR, BOOT_GDT_ENTRIES * 8);

	if (!gdt)
		return err_set(err, -ENOMEM, "boot: GDT at 0x%llx is outside guest RAM",
			       BOOT_GDT_ADDR);
	boot_put64(gdt + 0, 0);
	boot_put64(gdt + 8, 0);
	boot_put64(gdt + BOOT_CS, GDT_CODE64);
	boot_put64(gdt + BOOT_DS, GDT_DATA);
	return 0;
}

int boot_pgtable_build(struct guest_mem *mem, struct err *err)
{
	const uint64_t pml4 = BOOT_PGTABLE_ADDR, pdpt = pml4 + BOOT_PAGE_SIZE;
	uint8_t *p = gmem_ptr(mem, pml4, BOOT_PGTABLE_PAGES * BOOT_PAGE_SIZE);

	if (!p)
		return err_set(err, -ENOMEM, "boot: page tables at 0x%llx are outside guest RAM",
			       BOOT_PGTABLE_ADDR);
	memset(p, 0, BOOT_PGTABLE_PAGES * BOOT_PAGE_SIZE);
	boot_put64(p, pdpt | PTE_PRESENT | PTE_WRITE);
	for (unsigned g = 0; g < BOOT_PGTABLE_GIB; g++) {
		uint64_t pd = pdpt + (1 + g) * BOOT_PAGE_SIZE;
		uint8_t *pd_host = p + (pd - pml4);

		boot_put64(p + BOOT_PAGE_SIZE + g * 8, pd | PTE_PRESENT | PTE_WRITE);
		for (unsigned i = 0; i < PTES_PER_PAGE; i++) {
			uint64_t pa = (uint64_t)g * GiB + (uint64_t)i * 2 * MiB;

			boot_put64(pd_host + i * 8, pa | PTE_PRESENT | PTE_WRITE | PTE_LARGE);
		}
	}
	return 0;
}
