/*
 * boot.h - load a kernel into guest memory by the Linux x86 boot protocol.
 *
 * Pure code: it writes into a struct guest_mem and describes the first
 * vCPU's entry state; it never touches KVM. See
 * Documentation/arch/x86/boot.rst (64-bit boot protocol).
 */
#ifndef VMM_BOOT_H
#define VMM_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "mem.h"

struct boot_config {
	const uint8_t *kernel;		/* whole bzImage file */
	size_t kernel_len;
	const uint8_t *initrd;		/* may be NULL */
	size_t initrd_len;
	const char *cmdline;		/* may be NULL */
	unsigned nr_cpus;		/* for the ACPI MADT */
};

/* The BSP's state at the kernel's 64-bit entry point. */
struct boot_entry {
	uint64_t rip;			/* 64-bit entry (load address + 0x200) */
	uint64_t rsi;			/* guest-physical address of boot_params */
	uint64_t cr3;			/* identity-mapping page tables */
	uint64_t gdt_base;		/* GDT with flat 64-bit code / data */
	uint16_t gdt_limit;
	uint16_t cs_selector;		/* __BOOT_CS (0x10) */
	uint16_t ds_selector;		/* __BOOT_DS (0x18) */
	uint64_t kernel_load_addr;	/* where the protected-mode part went */
	uint64_t initrd_addr;		/* 0 if none */
	uint64_t kernel_end;		/* end of the kernel's init_size range */
	uint64_t rsdp_addr;		/* ACPI RSDP (BOOT_ACPI_ADDR) */
};

/* The parts of the bzImage setup header the loader validated. */
struct bzimage_info {
	uint16_t version;		/* boot protocol, e.g. 0x020f */
	uint8_t setup_sects;
	uint32_t syssize;		/* protected-mode size in 16-byte units */
	size_t setup_len;		/* (setup_sects + 1) * 512 */
	size_t payload_len;		/* bytes after the setup code */
	uint8_t loadflags;
	uint16_t xloadflags;
	uint32_t kernel_alignment;
	bool relocatable;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size;		/* max cmdline length, excl. NUL */
	size_t kernel_size;		/* syssize * 16: bytes boot_load copies */
	size_t hdr_end;			/* 0x202 + jump byte: setup header end */
	bool has_entry64;		/* protocol >= 2.12 with XLF_KERNEL_64 */
};

/*
 * Validate a bzImage held in memory. Every field is checked before use;
 * truncated or hostile images fail with a one-line reason in `err`.
 */
int bzimage_parse(const uint8_t *img, size_t len, struct bzimage_info *info,
		  struct err *err);

/*
 * Load kernel, initrd and command line into `mem`, build boot_params (with
 * the e820 map), the ACPI tables, the GDT and the identity page tables, and
 * fill `entry`. Returns 0 or a negative errno with `err` set.
 */
int boot_load(struct guest_mem *mem, const struct boot_config *cfg,
	      struct boot_entry *entry, struct err *err);

/* Largest nr_cpus the MADT describes (8-bit xAPIC IDs, 0xff = broadcast). */
#define BOOT_MAX_CPUS		254

/* e820 memory map, as handed to the kernel in boot_params. */
enum boot_e820_type {
	BOOT_E820_RAM = 1,
	BOOT_E820_RESERVED = 2,
};

struct boot_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;			/* enum boot_e820_type */
};

#define BOOT_E820_MAX		8	/* boot_e820_build never needs more */

/*
 * Pure: the e820 map of a guest with `ram_size` bytes laid out like
 * gmem_layout() does (low RAM below MMIO_HOLE_START, the rest from 4 GiB).
 * Returns the number of entries written to `tab`, -EINVAL if ram_size is
 * not above 1 MiB, or -ENOSPC if `max` is too small.
 */
int boot_e820_build(uint64_t ram_size, struct boot_e820_entry *tab,
		    unsigned max);

#endif
