/*
 * setup.S - the real-mode part of the tern-guest bzImage.
 *
 * Sector 0 holds the Linux setup header (Documentation/arch/x86/boot.rst,
 * protocol 2.12) at 0x1f1; the real-mode entry the header's jump at 0x200
 * leads to follows it. Loaders that use the 64-bit or 32-bit boot protocol
 * (tern-vmm) only read the header and never run this code. QEMU's -kernel
 * path (SeaBIOS + linuxboot option ROM) jumps here in real mode with
 * CS = setup segment + 0x20, IP = 0, DS = ES = SS = setup segment. We then:
 * build a zero page (copy of the header + BIOS E820 map), enable A20, enter
 * flat 32-bit protected mode (CS = 0x10, DS = 0x18, like the 32-bit boot
 * protocol) and jump to code32_start with %esi = &zero page, %ebp = magic and
 * the entry TSC in %ebx:%edi.
 *
 * The section is linked at address 0: offsets are relative to the setup
 * segment once CS has been normalised to DS.
 */
#include "tg_layout.h"

#define SMAP		0x534d4150
#define ZP_E820_COUNT	0x1e8
#define ZP_E820_TABLE	0x2d0
#define ZP_E820_MAX	128

	.section .setup, "ax"
	.code16
	.globl	tg_setup_start
tg_setup_start:
	/* Not a boot sector: if started from disk, just stop. */
	cli
1:	hlt
	jmp	1b

	.org	0x1f1
hdr:
	.byte	tg_setup_sects		/* 0x1f1 setup_sects */
	.word	0			/* 0x1f2 root_flags */
	.long	tg_syssize		/* 0x1f4 syssize (16-byte units) */
	.word	0			/* 0x1f8 ram_size */
	.word	0xffff			/* 0x1fa vid_mode: normal */
	.word	0			/* 0x1fc root_dev */
	.word	0xaa55			/* 0x1fe boot_flag */
	.byte	0xeb			/* 0x200 jump to start_of_setup */
	.byte	start_of_setup - 1f
1:	.ascii	"HdrS"			/* 0x202 header */
	.word	0x020c			/* 0x206 version 2.12 */
	.long	0			/* 0x208 realmode_swtch */
	.word	0x1000			/* 0x20c start_sys_seg */
	.word	kernel_version - tg_setup_start - 0x200	/* 0x20e */
	.byte	0			/* 0x210 type_of_loader */
	.byte	0x01			/* 0x211 loadflags: LOADED_HIGH */
	.word	0x8000			/* 0x212 setup_move_size */
code32_start:
	.long	TG_LOAD_ADDR		/* 0x214 code32_start */
	.long	0			/* 0x218 ramdisk_image */
	.long	0			/* 0x21c ramdisk_size */
	.long	0			/* 0x220 bootsect_kludge */
	.word	0			/* 0x224 heap_end_ptr */
	.byte	0			/* 0x226 ext_loader_ver */
	.byte	0			/* 0x227 ext_loader_type */
	.org	0x228
	.long	0			/* 0x228 cmd_line_ptr */
	.long	0x7fffffff		/* 0x22c initrd_addr_max */
	.long	TG_HUGE_SIZE		/* 0x230 kernel_alignment */
	.byte	0			/* 0x234 relocatable_kernel: no */
	.byte	21			/* 0x235 min_alignment (log2) */
	.word	0x0001			/* 0x236 xloadflags: XLF_KERNEL_64 */
	.long	2047			/* 0x238 cmdline_size */
	.long	0			/* 0x23c hardware_subarch */
	.quad	0			/* 0x240 hardware_subarch_data */
	.long	0			/* 0x248 payload_offset */
	.long	0			/* 0x24c payload_length */
	.quad	0			/* 0x250 setup_data */
	.org	0x258
	.quad	TG_LOAD_ADDR		/* 0x258 pref_address */
	.long	tg_init_size		/* 0x260 init_size */
	.long	0			/* 0x264 handover_offset */
hdr_end:

start_of_setup:
	cli
	cld
	/* Make CS equal DS so link offsets work for code and data. */
	pushw	%ds
	pushw	$(rm_norm - tg_setup_start)
	lretw
rm_norm:
	rdtsc
	movl	%eax, rm_tsc
	movl	%edx, rm_tsc + 4
	movw	%ds, %ax
	movw	%ax, %es

	/* Zero page = zeros + a copy of the (loader-patched) header. */
	movw	$hdr - tg_setup_start, %si
	movw	$(zero_page - tg_setup_start + 0x1f1), %di
	movw	$(hdr_end - hdr), %cx
	rep movsb

	call	rm_e820
	call	rm_a20
	jmp	rm_go_pm

/* BIOS INT 15h E820 into zero_page.e820_table, count at 0x1e8. */
rm_e820:
	xorl	%ebx, %ebx
	movw	$(zero_page - tg_setup_start + ZP_E820_TABLE), %di
1:	movl	$0xe820, %eax
	movl	$SMAP, %edx
	movl	$20, %ecx
	pushw	%di
	int	$0x15
	popw	%di
	jc	2f
	cmpl	$SMAP, %eax
	jne	2f
	addw	$20, %di
	incb	zero_page + ZP_E820_COUNT
	cmpb	$ZP_E820_MAX, zero_page + ZP_E820_COUNT
	jae	2f
	testl	%ebx, %ebx
	jnz	1b
2:	ret

/* A20: ask the BIOS, then the fast A20 gate (never set bit 0: reset). */
rm_a20:
	movw	$0x2401, %ax
	int	$0x15
	inb	$0x92, %al
	orb	$0x02, %al
	andb	$0xfe, %al
	outb	%al, $0x92
	ret

rm_go_pm:
	cli
	xorl	%edx, %edx
	movw	%ds, %dx
	shll	$4, %edx			/* %edx = setup segment base */
	leal	(rm_gdt - tg_setup_start)(%edx), %eax
	movl	%eax, rm_gdt_desc + 2
	lgdtl	rm_gdt_desc
	leal	(zero_page - tg_setup_start)(%edx), %esi
	movl	code32_start, %eax
	movl	%eax, rm_jump
	movl	rm_tsc, %edi
	movl	rm_tsc + 4, %ebx
	movl	$TG_REALMODE_MAGIC, %ebp
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	/* Flat data segments as the 32-bit protocol promises; CS still has
	 * the real-mode base, so fetch the far pointer through it. */
	movw	$0x18, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	%ax, %fs
	movw	%ax, %gs
	ljmpl	*%cs:rm_jump

	.balign	8
rm_gdt:
	.quad	0
	.quad	0
	.quad	0x00cf9a000000ffff	/* 0x10: flat 32-bit code */
	.quad	0x00cf92000000ffff	/* 0x18: flat data */
rm_gdt_end:
rm_gdt_desc:
	.word	rm_gdt_end - rm_gdt - 1
	.long	0
rm_jump:
	.long	0
	.word	0x10
rm_tsc:
	.quad	0
kernel_version:
	.asciz	"tern-guest 0.1"

	.balign	16
zero_page:
	.fill	4096, 1, 0

	.section .note.GNU-stack, "", @progbits
