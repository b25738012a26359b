/*
 * idle.c - tg.idle=halt: a CPU with nothing due sleeps in hlt until its
 * LAPIC timer (TSC-deadline mode) fires, as an idle Linux guest does,
 * instead of spinning in ring 3 and holding a host CPU.
 *
 * Ring 3 cannot execute hlt, and PVM does not deliver software interrupts
 * raised in ring 3, so tg_idle_until() executes hlt at the known address
 * tg_idle_hlt: the #GP stub (head.S) recognises it, writes the deadline to
 * IA32_TSC_DEADLINE, runs sti; hlt; cli and returns past the hlt. The
 * timer's vector only signals EOI. A sleep costs a few emulated ring-0
 * instructions and VM exits (tens of microseconds on PVM), so work.c
 * sleeps at least tg.tick_us at a time and does what fell due in a batch.
 */
#include "tg.h"

#define LAPIC_SVR		0x0f0
#define LAPIC_LVT_TIMER		0x320
#define LVT_TIMER_TSC_DEADLINE	(2U << 17)
#define CPUID1_ECX_TSC_DEADLINE	(1U << 24)
#define PIC1_DATA		0x21
#define PIC2_DATA		0xa1

/*
 * Per CPU, before its first sleep. The 8259s are masked (firmware such as
 * SeaBIOS leaves the PIT ticking into vector 8, a #DF here); the LAPIC is
 * software-enabled and its timer set to TSC-deadline mode. False when the
 * CPU has no TSC-deadline timer: the caller keeps spinning.
 */
bool tg_idle_init(u32 cpu)
{
	u32 r[4], svr;

	tg_cpuid(1, 0, r);
	if (!(r[2] & CPUID1_ECX_TSC_DEADLINE))
		return false;
	if (!cpu) {
		tg_outb(PIC1_DATA, 0xff);
		tg_outb(PIC2_DATA, 0xff);
	}
	svr = tg_mmio_read32(TG_LAPIC_BASE + LAPIC_SVR);
	tg_mmio_write32(TG_LAPIC_BASE + LAPIC_SVR, svr | 0x1ff);
	tg_mmio_write32(TG_LAPIC_BASE + LAPIC_LVT_TIMER,
			TG_TIMER_VECTOR | LVT_TIMER_TSC_DEADLINE);
	return true;
}

/*
 * Sleep until the TSC reaches `deadline` or any other interrupt arrives
 * (a deadline already past returns at once). Not inline: the label must
 * exist exactly once.
 */
__attribute__((noinline)) void tg_idle_until(u64 deadline)
{
	__asm__ volatile(".globl tg_idle_hlt\n"
			 "tg_idle_hlt:\n\t"
			 "hlt"
			 : : "a"((u32)deadline), "d"((u32)(deadline >> 32))
			 : "rcx", "memory");
}
