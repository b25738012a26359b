/*
 * e820.c - the guest's e820 memory map (pure; no guest memory touched).
 *
 * Mirrors gmem_layout(): RAM below LOWMEM_END, the legacy VGA/BIOS hole up
 * to 1 MiB reserved (the ACPI tables live there), RAM from 1 MiB to the
 * low top (at most MMIO_HOLE_START), the IOAPIC/HPET/LAPIC/KVM-TSS range
 * [IOAPIC_ADDR, 4 GiB) reserved, and any remaining RAM from 4 GiB up.
 */
#include <errno.h>

#include "boot_priv.h"
#include "layout.h"

static int e820_add(struct boot_e820_entry *tab, unsigned max, unsigned *n,
		    uint64_t start, uint64_t end, enum boot_e820_type type)
{
	if (*n >= max)
		return -ENOSPC;
	tab[*n] = (struct boot_e820_entry){
		.addr = start, .size = end - start, .type = type,
	};
	(*n)++;
	return 0;
}

int boot_e820_build(uint64_t ram_size, struct boot_e820_entry *tab,
		    unsigned max)
{
	uint64_t low = MIN(ram_size, MMIO_HOLE_START);
	unsigned n = 0;
	int rc;

	if (!tab || ram_size <= HIMEM_START || ram_size > UINT64_MAX - MMIO_HOLE_END)
		return -EINVAL;
	rc = e820_add(tab, max, &n, 0, LOWMEM_END, BOOT_E820_RAM);
	if (!rc)
		rc = e820_add(tab, max, &n, LOWMEM_END, HIMEM_START, BOOT_E820_RESERVED);
	if (!rc)
		rc = e820_add(tab, max, &n, HIMEM_START, low, BOOT_E820_RAM);
	if (!rc)
		rc = e820_add(tab, max, &n, IOAPIC_ADDR, MMIO_HOLE_END, BOOT_E820_RESERVED);
	if (!rc && ram_size > low)
		rc = e820_add(tab, max, &n, MMIO_HOLE_END,
			      MMIO_HOLE_END + (ram_size - low), BOOT_E820_RAM);
	return rc ? rc : (int)n;
}
