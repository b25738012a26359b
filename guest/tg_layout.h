/*
 * tg_layout.h - constants shared by the assembly and C parts of tern-guest.
 *
 * Only #defines (this file is included from .S files). Physical layout:
 *   0x8000     AP real-mode trampoline (copied there by the BSP)
 *   0x100000   protected-mode image: +0 32-bit entry, +0x200 64-bit entry,
 *              then code, data, bss, page tables and per-CPU stacks
 *   image end  the generation array (one u32 per tested page)
 */
#ifndef TG_LAYOUT_H
#define TG_LAYOUT_H

#define TG_LOAD_ADDR		0x100000
#define TG_TRAMP_ADDR		0x8000
#define TG_MAX_CPUS		64
#define TG_KSTACK_SIZE		8192
#define TG_USTACK_SIZE		16384
#define TG_MAX_PD		64	/* page directories: maps 64 GiB */
#define TG_PAGE_SIZE		4096
#define TG_HUGE_SIZE		0x200000

/* GDT selectors */
#define TG_SEL_KCODE64		0x08
#define TG_SEL_KDATA		0x10
#define TG_SEL_KCODE32		0x18
#define TG_SEL_UDATA		0x20
#define TG_SEL_UCODE64		0x28
#define TG_SEL_TSS0		0x30	/* 16 bytes per CPU */
#define TG_GDT_ENTRIES		(6 + 2 * TG_MAX_CPUS)

/* How the guest was entered (tg_entry_kind) */
#define TG_ENTRY_INVALID	0
#define TG_ENTRY_BZIMAGE64	1	/* 64-bit boot protocol, offset 0x200 */
#define TG_ENTRY_BZIMAGE32	2	/* 32-bit boot protocol, offset 0 */
#define TG_ENTRY_REALMODE	3	/* our own real-mode setup code */

/* %ebp value the real-mode setup passes to the 32-bit entry */
#define TG_REALMODE_MAGIC	0x4d525754	/* "TWRM" */

#define TG_EXIT_PORT		0x501	/* QEMU isa-debug-exit, tern-vmm */
#define TG_COM1			0x3f8
#define TG_I8042_CMD		0x64	/* write 0xfe: CPU reset */
#define TG_I8042_RESET		0xfe
#define TG_ACPI_SLEEP_CTL	0x600	/* tern-vmm: hardware-reduced sleep control */
#define TG_ACPI_SLP_EN		0x20	/* sleep control register: SLP_EN */
#define TG_ACPI_S5		5	/* \_S5 sleep type tern-vmm uses */
#define TG_LAPIC_BASE		0xfee00000
#define TG_LAPIC_EOI		0xfee000b0
#define TG_TIMER_VECTOR		0x30	/* tg.idle=halt: LAPIC timer */
#define TG_IDT_ENTRIES		256

#endif
