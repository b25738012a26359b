/*
 * r0.c - the only C code tern-guest runs in ring 0.
 *
 * On PVM hosts every ring-0 instruction is emulated (~1 us each), so this
 * file does the minimum: identity page tables with 2 MiB pages covering all
 * RAM (U/S set at every level so ring 3 can reach everything), the IDT (32
 * exception gates; vectors 32-255 only signal EOI, head.S), one TSS per CPU
 * (RSP0 for faults from ring 3) sharing one allow-all I/O bitmap, and the
 * fault reporter, which also parks a CPU whose ring-3 code asked to halt.
 * Everything else happens in ring 3; the timed halts of tg.idle=halt pass
 * through ring 0 in head.S's #GP stub only.
 */
#include "tg.h"

#define PTE_P		0x001
#define PTE_RW		0x002
#define PTE_US		0x004
#define PTE_PWT		0x008
#define PTE_PCD		0x010
#define PTE_PS		0x080
#define PTE_TABLE	(PTE_P | PTE_RW | PTE_US)
#define PTE_LARGE	(PTE_P | PTE_RW | PTE_US | PTE_PS)
#define GIB		(1UL << 30)
#define UC_START	0xfec00000UL	/* IOAPIC, LAPIC, firmware: uncached */
#define UC_END		0x100000000UL

struct tg_idt_gate {
	u16 off_lo;
	u16 sel;
	u8 ist;
	u8 type;
	u16 off_mid;
	u32 off_hi;
	u32 rsvd;
} __attribute__((packed));

struct tg_tss {
	u32 rsvd0;
	u64 rsp[3];
	u64 rsvd1;
	u64 ist[7];
	u64 rsvd2;
	u16 rsvd3;
	u16 iomap;
} __attribute__((packed));

/*
 * All TSSes (128 bytes apart) followed by ONE shared I/O permission bitmap
 * that allows every port, plus its 0xff terminator. Each TSS's iomap offset
 * points at the shared bitmap. IOPL=3 alone is not enough on PVM: its
 * ring-3 #GP emulation loses the guest IOPL and falls back to the TSS
 * bitmap, so ports must be allowed there too.
 */
#define TG_TSS_STRIDE	128
#define TG_IOBITMAP	8192

struct tg_tss_area {
	u8 tss[TG_MAX_CPUS][TG_TSS_STRIDE];
	u8 iobitmap[TG_IOBITMAP];
	u8 term[8];
};

struct tg_fault_frame {
	u64 vec, err, rip, cs, rflags, rsp, ss;
};

/* Zero in the image file; entries past the ones we set stay non-present. */
u64 tg_pml4[512] __attribute__((section(".data.pgt"), aligned(4096))) = { 0 };
static u64 tg_pdpt[512] __attribute__((section(".data.pgt"), aligned(4096))) = { 0 };

/* Not zeroed (.bss.noinit): every entry used is written before use. */
static u64 tg_pd[TG_MAX_PD][512]
	__attribute__((section(".bss.noinit"), aligned(4096)));
static struct tg_idt_gate tg_idt[TG_IDT_ENTRIES]
	__attribute__((section(".bss.noinit"), aligned(16)));
static struct tg_tss_area tg_tss_area
	__attribute__((section(".data.tss"), aligned(64))) = {
	.term = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
};
u8 tg_kstacks[TG_MAX_CPUS][TG_KSTACK_SIZE]
	__attribute__((section(".bss.noinit"), aligned(16)));
u8 tg_ustacks[TG_MAX_CPUS][TG_USTACK_SIZE]
	__attribute__((section(".bss.noinit"), aligned(16)));

extern u64 tg_gdt[];
extern char tg_exc_stubs[], tg_irq_stub[];

/* Highest end of e820 RAM, rounded up to a GiB, at least 4 GiB. */
static u64 tg_r0_map_top(void)
{
	const u8 *bp = (const u8 *)tg_boot_params;
	const struct tg_e820 *e = (const struct tg_e820 *)(bp + BP_E820_TABLE);
	u32 i, n = bp[BP_E820_ENTRIES];
	u64 top = 4 * GIB;

	if (n > BP_E820_MAX)
		n = BP_E820_MAX;
	for (i = 0; i < n; i++) {
		u64 end = e[i].addr + e[i].size;

		if (e[i].type == E820_RAM && end > top && end > e[i].addr)
			top = end;
	}
	top = TG_ALIGN_UP(top, GIB);
	if (top > (u64)TG_MAX_PD * GIB)
		top = (u64)TG_MAX_PD * GIB;
	return top;
}

static void tg_r0_map(void)
{
	u64 npd = tg_r0_map_top() / GIB;
	u64 *pd = &tg_pd[0][0];
	u64 i, n = npd * 512, a;

	for (i = 0, a = PTE_LARGE; i < n; i++, a += TG_HUGE_SIZE)
		pd[i] = a;
	for (a = UC_START; a < UC_END; a += TG_HUGE_SIZE)
		pd[a / TG_HUGE_SIZE] |= PTE_PCD | PTE_PWT;
	for (i = 0; i < npd; i++)
		tg_pdpt[i] = (u64)tg_pd[i] | PTE_TABLE;
	tg_pml4[0] = (u64)tg_pdpt | PTE_TABLE;
	__asm__ volatile("mov %0, %%cr3" : : "r"(tg_pml4) : "memory");
}

static void tg_r0_idt_init(void)
{
	u32 i;

	for (i = 0; i < TG_ARRAY_SIZE(tg_idt); i++) {
		u64 h = i < 32 ? (u64)tg_exc_stubs + 16 * i : (u64)tg_irq_stub;
		struct tg_idt_gate *g = &tg_idt[i];

		g->off_lo = h & 0xffff;
		g->sel = TG_SEL_KCODE64;
		g->ist = 0;
		g->type = 0x8e;		/* present, DPL 0, interrupt gate */
		g->off_mid = (h >> 16) & 0xffff;
		g->off_hi = h >> 32;
		g->rsvd = 0;
	}
}

/* Not cleared by ring 3: KVM may write it at any time once enabled. */
struct tg_pvclock tg_pvclock __attribute__((section(".bss.noinit"),
					    aligned(64)));

/*
 * Register a kvmclock page if KVM advertises KVM_FEATURE_CLOCKSOURCE2, so
 * ring 3 can read the exact TSC frequency from it (tsc.c).
 */
static void tg_r0_kvmclock(void)
{
	u32 r[4];

	memset(&tg_pvclock, 0, sizeof(tg_pvclock));
	tg_cpuid(0x40000000, 0, r);
	if (r[1] != 0x4b4d564b || r[2] != 0x564b4d56 || r[3] != 0x4d)
		return;			/* not "KVMKVMKVM\0\0\0" */
	tg_cpuid(0x40000001, 0, r);
	if (!(r[0] & (1U << 3)))
		return;
	__asm__ volatile("wrmsr"
			 : : "c"(0x4b564d01), "a"((u32)(u64)&tg_pvclock | 1),
			     "d"(0));
}

const u32 tg_cpuid_leaf[TG_CPUID_LEAVES][2] = {
	{ 1, 0 }, { 7, 0 }, { 0xd, 1 }, { 0x80000001, 0 },
};
/* Written here before ring 3 clears .bss, so it lives in .bss.noinit. */
u32 tg_cpuid_r0[TG_CPUID_LEAVES][4] __attribute__((section(".bss.noinit")));

/* CPUID as ring 0 sees it (emulated on PVM), for tg.cpuid=1. */
static void tg_r0_cpuid(void)
{
	u32 i;

	for (i = 0; i < TG_CPUID_LEAVES; i++)
		tg_cpuid(tg_cpuid_leaf[i][0], tg_cpuid_leaf[i][1], tg_cpuid_r0[i]);
}

void tg_r0_bsp_setup(void)
{
	tg_r0_cpuid();
	tg_r0_map();
	tg_r0_idt_init();
	tg_r0_cpu_setup(0);
	tg_r0_kvmclock();
}

/* Per CPU: TSS (RSP0 = this CPU's kernel stack), TR, IDTR. */
void tg_r0_cpu_setup(u32 cpu)
{
	struct tg_tss *t = (struct tg_tss *)tg_tss_area.tss[cpu];
	u64 base = (u64)t;
	u64 iomap = (u64)tg_tss_area.iobitmap - base;
	u64 limit = iomap + TG_IOBITMAP;	/* includes the terminator */
	struct {
		u16 limit;
		u64 base;
	} __attribute__((packed)) idtr = { sizeof(tg_idt) - 1, (u64)tg_idt };
	u16 sel = TG_SEL_TSS0 + 16 * cpu;

	t->rsp[0] = (u64)tg_kstacks[cpu] + TG_KSTACK_SIZE;
	t->iomap = (u16)iomap;
	tg_gdt[sel / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
			  (0x89UL << 40) | (((limit >> 16) & 0xf) << 48) |
			  (((base >> 24) & 0xff) << 56);
	tg_gdt[sel / 8 + 1] = base >> 32;
	__asm__ volatile("ltr %0" : : "r"(sel));
	__asm__ volatile("lidt %0" : : "m"(idtr));
}

/*
 * tg_halt() runs hlt in ring 3 on purpose: the #GP lands here and the CPU
 * halts for good with interrupts off (PVM does not deliver a software
 * interrupt from ring 3, but it does deliver this fault).
 */
static bool tg_is_halt_request(const struct tg_fault_frame *f)
{
	return f->vec == 13 && (f->cs & 3) == 3 && !f->err &&
	       *(const u8 *)f->rip == 0xf4;
}

/* Ring 0, from the exception stubs: report and stop the VM. */
void tg_fault(const struct tg_fault_frame *f) __attribute__((noreturn));
void tg_fault(const struct tg_fault_frame *f)
{
	char buf[160];
	u64 cr2;
	int n;

	if (tg_is_halt_request(f))
		for (;;)
			__asm__ volatile("cli; hlt");
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	n = tg_snprintf(buf, sizeof(buf),
			"TG FAULT vec=%lu rip=%lx err=%lx cr2=%lx cs=%lx rsp=%lx\n",
			f->vec, f->rip, f->err, cr2, f->cs, f->rsp);
	tg_serial_write(buf, n);
	tg_outb(TG_EXIT_PORT, 3);
	for (;;)
		__asm__ volatile("cli; hlt");
}
