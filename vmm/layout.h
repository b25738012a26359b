/*
 * layout.h - the guest-physical memory map and I/O port map of a tern VM.
 *
 * One place for every fixed address, so the boot loader, the devices and
 * the docs (docs/architecture.md) agree.
 *
 *   0x0000_0000  low RAM (real-mode IVT/BDA, boot structures below)
 *   0x0000_0500  GDT for the 64-bit entry            (BOOT_GDT_ADDR)
 *   0x0000_7000  boot_params "zero page"             (BOOT_PARAMS_ADDR)
 *   0x0000_9000  identity page tables (PML4, PDPT, PDs) (BOOT_PGTABLE_ADDR)
 *   0x0002_0000  kernel command line (max 64 KiB)    (BOOT_CMDLINE_ADDR)
 *   0x0009_fc00  end of usable low RAM (EBDA region reserved above)
 *   0x000e_0000  ACPI tables + RSDP (BIOS scan area)  (BOOT_ACPI_ADDR)
 *   0x0010_0000  protected-mode kernel (bzImage payload) / RAM continues
 *   0xc000_0000  32-bit MMIO hole start               (MMIO_HOLE_START)
 *   0xfec0_0000  IOAPIC
 *   0xfee0_0000  LAPIC
 *   0x1_0000_0000 RAM above the hole, when memory > MMIO_HOLE_START
 */
#ifndef VMM_LAYOUT_H
#define VMM_LAYOUT_H

#define BOOT_GDT_ADDR		0x500ULL
#define BOOT_PARAMS_ADDR	0x7000ULL
#define BOOT_PGTABLE_ADDR	0x9000ULL
#define BOOT_CMDLINE_ADDR	0x20000ULL
#define BOOT_CMDLINE_MAX	0x10000ULL
#define LOWMEM_END		0x9fc00ULL
#define BOOT_ACPI_ADDR		0xe0000ULL
#define BOOT_ACPI_END		0x100000ULL
#define HIMEM_START		0x100000ULL

#define MMIO_HOLE_START		0xc0000000ULL
#define MMIO_HOLE_END		0x100000000ULL
#define IOAPIC_ADDR		0xfec00000ULL
#define LAPIC_ADDR		0xfee00000ULL

/* I/O ports */
#define PORT_COM1		0x3f8	/* 16550 UART, 8 ports, IRQ 4 */
#define IRQ_COM1		4
#define PORT_I8042_DATA		0x60
#define PORT_I8042_CMD		0x64	/* write 0xfe = CPU reset (reboot) */
#define PORT_DEBUG_EXIT		0x501	/* QEMU isa-debug-exit compatible */
#define PORT_ACPI_SLEEP_CTL	0x600	/* ACPI hardware-reduced sleep control */
#define PORT_ACPI_SLEEP_STS	0x601	/* ACPI hardware-reduced sleep status */

#endif
