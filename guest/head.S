/*
 * head.S - tern-guest protected-mode entry points and ring transitions.
 *
 * Loaded at TG_LOAD_ADDR (0x100000):
 *   +0x000  startup_32: the 32-bit boot protocol entry (flat CS/DS, paging
 *           off, %esi = boot_params). Our real-mode setup also comes here,
 *           with %ebp = TG_REALMODE_MAGIC and the entry TSC in %ebx:%edi.
 *           It maps the first GiB with 2 MiB pages and enters long mode.
 *   +0x200  startup_64: the 64-bit boot protocol entry (long mode, identity
 *           paging, %rsi = boot_params), used by tern-vmm.
 * Both continue in common64: load our GDT, build the final page tables, IDT
 * and TSS (r0.c), then iretq to ring 3 with IOPL=3, interrupts off.
 * Also here: the exception stubs and the AP real-mode trampoline.
 */
#include "tg_layout.h"

#define MSR_EFER	0xc0000080
#define EFER_LME	0x100
#define CR4_PAE		0x20
#define CR0_PG		0x80000000
#define RFLAGS_USER	0x3002		/* IOPL=3, IF=0, reserved bit 1 */
#define MSR_TSC_DEADLINE	0x6e0

	.section .head, "ax"
	.code32
	.globl	startup_32
startup_32:
	cli
	cld
	cmpl	$TG_REALMODE_MAGIC, %ebp
	jne	1f
	movl	%edi, tg_tsc_boot
	movl	%ebx, tg_tsc_boot + 4
	movl	$TG_ENTRY_REALMODE, tg_entry_kind
	jmp	2f
1:	rdtsc
	movl	%eax, tg_tsc_boot
	movl	%edx, tg_tsc_boot + 4
	movl	$TG_ENTRY_BZIMAGE32, tg_entry_kind
2:	movl	%esi, tg_boot_params
	lgdt	tg_gdt_desc
	ljmp	$TG_SEL_KCODE32, $3f
3:	movl	$TG_SEL_KDATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	$(tg_kstacks + TG_KSTACK_SIZE), %esp

	/* Boot page tables: identity-map the first GiB with 2 MiB pages. */
	movl	$(tg_boot_pdpt + 7), tg_boot_pml4
	movl	$(tg_boot_pd + 7), tg_boot_pdpt
	movl	$tg_boot_pd, %edi
	movl	$0x83, %eax			/* present, writable, 2 MiB */
	movl	$512, %ecx
4:	movl	%eax, (%edi)
	addl	$TG_HUGE_SIZE, %eax
	addl	$8, %edi
	loop	4b

	movl	%cr4, %eax
	orl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$tg_boot_pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$(CR0_PG | 1), %eax
	movl	%eax, %cr0
	ljmp	$TG_SEL_KCODE64, $common64

	.org	0x200
	.code64
	.globl	startup_64
startup_64:
	cli
	cld
	rdtsc
	shlq	$32, %rdx
	orq	%rdx, %rax
	movq	%rax, tg_tsc_boot(%rip)
	movq	%rsi, tg_boot_params(%rip)
	movl	$TG_ENTRY_BZIMAGE64, tg_entry_kind(%rip)

common64:
	lgdt	tg_gdt_desc(%rip)
	movl	$TG_SEL_KDATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	movq	$(tg_kstacks + TG_KSTACK_SIZE), %rsp
	pushq	$TG_SEL_KCODE64
	leaq	1f(%rip), %rax
	pushq	%rax
	lretq
1:	call	tg_r0_bsp_setup
	xorl	%edi, %edi

/* Enter ring 3 on CPU %edi: its user stack, IOPL=3, interrupts off. */
tg_enter_ring3:
	movl	%edi, %eax
	incq	%rax
	imulq	$TG_USTACK_SIZE, %rax
	addq	$tg_ustacks, %rax
	pushq	$(TG_SEL_UDATA | 3)
	pushq	%rax
	pushq	$RFLAGS_USER
	pushq	$(TG_SEL_UCODE64 | 3)
	pushq	$tg_ring3_start
	iretq

/* First ring-3 instruction: a call keeps the ABI's stack alignment. */
tg_ring3_start:
	call	tg_ring3_main
	ud2

/* APs arrive here from the trampoline, in long mode on our page tables. */
ap_entry64:
	movl	$TG_SEL_KDATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	$1, %eax
	lock xaddl %eax, tg_ap_next(%rip)
	cmpl	$TG_MAX_CPUS, %eax
	jae	ap_park
	movl	%eax, %ebx
	leaq	1(%rax), %rax
	imulq	$TG_KSTACK_SIZE, %rax
	addq	$tg_kstacks, %rax
	movq	%rax, %rsp
	movl	%ebx, %edi
	call	tg_r0_cpu_setup
	movl	%ebx, %edi
	jmp	tg_enter_ring3
ap_park:
	cli
	hlt
	jmp	ap_park

/* Exception stubs, 16 bytes apart: push a dummy error code if needed. */
	.macro	EXC vec, haserr
	.balign	16
	.if	\haserr == 0
	pushq	$0
	.endif
	pushq	$\vec
	jmp	tg_exc_common
	.endm

	.balign	16
	.globl	tg_exc_stubs
tg_exc_stubs:
	EXC 0, 0
	EXC 1, 0
	EXC 2, 0
	EXC 3, 0
	EXC 4, 0
	EXC 5, 0
	EXC 6, 0
	EXC 7, 0
	EXC 8, 1
	EXC 9, 0
	EXC 10, 1
	EXC 11, 1
	EXC 12, 1
	.balign	16
	jmp	tg_gp_stub		/* 13: #GP, error code pushed */
	EXC 14, 1
	EXC 15, 0
	EXC 16, 0
	EXC 17, 1
	EXC 18, 0
	EXC 19, 0
	EXC 20, 0
	EXC 21, 1
	EXC 22, 0
	EXC 23, 0
	EXC 24, 0
	EXC 25, 0
	EXC 26, 0
	EXC 27, 0
	EXC 28, 0
	EXC 29, 1
	EXC 30, 1
	EXC 31, 0

/*
 * #GP. A hlt at tg_idle_hlt in ring 3 (idle.c) is a timed halt: arm the
 * LAPIC TSC-deadline timer with %edx:%eax, halt with interrupts on until
 * an interrupt arrives, and return to ring 3 past the hlt. %ecx is
 * clobbered (the caller says so). Any other #GP goes to tg_fault.
 */
tg_gp_stub:
	cmpq	$tg_idle_hlt, 8(%rsp)
	jne	1f
	movl	$MSR_TSC_DEADLINE, %ecx
	wrmsr
	sti
	hlt
	cli
	incq	8(%rsp)
	addq	$8, %rsp
	iretq
1:	pushq	$13
	jmp	tg_exc_common

/* Vectors 32-255 (the tg.idle=halt timer, or anything stray): EOI, return. */
	.balign	16
	.globl	tg_irq_stub
tg_irq_stub:
	pushq	%rax
	movl	$TG_LAPIC_EOI, %eax
	movl	$0, (%rax)
	popq	%rax
	iretq

/* Frame at %rsp: vec, err, rip, cs, rflags, rsp, ss. Never returns. */
tg_exc_common:
	movq	%rsp, %rdi
	andq	$-16, %rsp
	call	tg_fault
	ud2

/*
 * AP trampoline, copied to TG_TRAMP_ADDR by the BSP; a SIPI with vector
 * TG_TRAMP_ADDR >> 12 starts it in real mode at CS = 0x800, IP = 0.
 */
	.section .rodata.tramp, "a"
	.code16
	.balign	16
	.globl	tg_tramp_start, tg_tramp_end
tg_tramp_start:
	cli
	cld
	movw	%cs, %ax
	movw	%ax, %ds
	lgdtl	(tramp_gdt_desc - tg_tramp_start)
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	ljmpl	$TG_SEL_KCODE32, $(TG_TRAMP_ADDR + tramp32 - tg_tramp_start)
	.code32
tramp32:
	movl	$TG_SEL_KDATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%cr4, %eax
	orl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$tg_pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$CR0_PG, %eax
	movl	%eax, %cr0
	ljmp	$TG_SEL_KCODE64, $ap_entry64
	.balign	8
tramp_gdt_desc:
	.word	TG_GDT_ENTRIES * 8 - 1
	.long	tg_gdt
tg_tramp_end:

/* Data written before ring 3; kept out of .bss (ring 3 clears .bss). */
	.data
	.balign	8
	.globl	tg_tsc_boot, tg_boot_params, tg_entry_kind, tg_ap_next
	.globl	tg_gdt, tg_gdt_desc
tg_tsc_boot:
	.quad	0
tg_boot_params:
	.quad	0
tg_entry_kind:
	.long	0
tg_ap_next:
	.long	1
	.balign	8
tg_gdt:
	.quad	0
	.quad	0x00af9a000000ffff	/* 0x08 kernel code, 64-bit */
	.quad	0x00cf92000000ffff	/* 0x10 kernel data */
	.quad	0x00cf9a000000ffff	/* 0x18 kernel code, 32-bit */
	.quad	0x00cff2000000ffff	/* 0x20 user data */
	.quad	0x00affa000000ffff	/* 0x28 user code, 64-bit */
	.fill	2 * TG_MAX_CPUS, 8, 0	/* 0x30 TSS descriptors */
tg_gdt_desc:
	.word	TG_GDT_ENTRIES * 8 - 1
	.quad	tg_gdt

	.section .data.pgt, "aw"
	.balign	4096
tg_boot_pml4:
	.fill	512, 8, 0
tg_boot_pdpt:
	.fill	512, 8, 0
tg_boot_pd:
	.fill	512, 8, 0

	.section .note.GNU-stack, "", @progbits
