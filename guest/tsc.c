/*
 * tsc.c - find the TSC frequency for tern-guest (ring 3).
 *
 * Order: tg.tsc_khz, CPUID 0x40000010 (hypervisor timing leaf), kvmclock
 * (the pvclock page r0.c registers when KVM offers it: exact), CPUID 0x15
 * (crystal ratio, when complete), the PIT channel 2 (three 25 ms one-shots
 * gated through port 0x61, the best-bracketed wins), CPUID 0x16 (nominal
 * MHz), and finally a 2 GHz guess. The PIT path needs IOPL=3 for ports 0x42, 0x43
 * and 0x61.
 */
#include "tg.h"

#define PIT_HZ		1193182UL
#define PIT_MS		25
#define KHZ_MIN		100000UL	/* 100 MHz */
#define KHZ_MAX		20000000UL	/* 20 GHz */

static bool tg_khz_sane(u64 khz)
{
	return khz >= KHZ_MIN && khz <= KHZ_MAX;
}

static u64 tg_tsc_cpuid_hv(void)
{
	u32 r[4];

	tg_cpuid(1, 0, r);
	if (!(r[2] & (1U << 31)))	/* no hypervisor */
		return 0;
	tg_cpuid(0x40000000, 0, r);
	if (r[0] < 0x40000010)
		return 0;
	tg_cpuid(0x40000010, 0, r);
	return r[0];
}

static u64 tg_tsc_cpuid15(u32 max_leaf)
{
	u32 r[4];

	if (max_leaf < 0x15)
		return 0;
	tg_cpuid(0x15, 0, r);
	if (!r[0] || !r[1] || !r[2])
		return 0;
	return (u64)r[2] * r[1] / r[0] / 1000;
}

static u64 tg_tsc_cpuid16(u32 max_leaf)
{
	u32 r[4];

	if (max_leaf < 0x16)
		return 0;
	tg_cpuid(0x16, 0, r);
	return (u64)(r[0] & 0xffff) * 1000;
}

/*
 * One PIT channel 2 one-shot of PIT_MS. Every port access is a VM exit
 * (tens of us on PVM; more if the vCPU is preempted), so both ends are
 * bracketed by TSC reads and the midpoints used; *width returns the sum of
 * both brackets, i.e. the uncertainty of the result.
 */
static u64 tg_tsc_pit_once(u64 *width)
{
	u32 latch = PIT_HZ * PIT_MS / 1000;
	u64 a0, a1, b0, b1, prev, mid, spins = 0;
	u8 v;

	tg_outb(0x61, (tg_inb(0x61) & ~0x02) | 0x01);	/* gate on, no spk */
	tg_outb(0x43, 0xb0);		/* ch 2, lo/hi, mode 0, binary */
	tg_outb(0x42, latch & 0xff);
	a0 = tg_rdtsc();
	tg_outb(0x42, latch >> 8);	/* counting starts here */
	a1 = tg_rdtsc();
	prev = a1;
	for (;;) {
		b0 = tg_rdtsc();
		v = tg_inb(0x61);
		b1 = tg_rdtsc();
		mid = b0 + (b1 - b0) / 2;
		if (v & 0x20)
			break;
		prev = mid;
		/* no PIT: give up after ~1-2 s at any plausible TSC rate */
		if (++spins > 2000000 || b1 - a0 > 4000000000UL)
			return 0;
	}
	if (!spins)		/* OUT high at once: no PIT behind the port */
		return 0;
	*width = (a1 - a0) + (mid - prev);
	return prev + (mid - prev) / 2 - (a0 + (a1 - a0) / 2);
}

/*
 * At least three runs, at most ten; keep the most precise one and stop
 * once one is known to better than 0.2%.
 */
static u64 tg_tsc_pit(void)
{
	u64 best = 0, best_w = ~0UL, t, w = 0;
	int i;

	for (i = 0; i < 10; i++) {
		t = tg_tsc_pit_once(&w);
		if (!t)
			return 0;
		if (w < best_w) {
			best = t;
			best_w = w;
		}
		if (i >= 2 && best_w * 500 < best)
			break;
	}
	return best / PIT_MS;
}

/* kvmclock, enabled by r0.c when KVM advertises it: exact TSC rate. */
static u64 tg_tsc_kvmclock(void)
{
	const volatile struct tg_pvclock *pv = &tg_pvclock;
	u64 khz;
	u32 ver, mul;
	s8 shift;
	int tries = 0;

	do {
		ver = pv->version;
		__asm__ volatile("" ::: "memory");
		mul = pv->tsc_to_system_mul;
		shift = pv->tsc_shift;
		__asm__ volatile("" ::: "memory");
		if (++tries > 1000)
			return 0;
	} while ((ver & 1) || ver != pv->version);
	if (!ver || !mul)
		return 0;
	khz = (1000000UL << 32) / mul;
	return shift < 0 ? khz << -shift : khz >> shift;
}

u64 tg_tsc_calibrate(u64 param_khz, const char **src)
{
	u32 r[4];
	u64 khz;

	tg_cpuid(0, 0, r);
	if (param_khz) {
		*src = "param";
		return param_khz;
	}
	khz = tg_tsc_cpuid_hv();
	if (tg_khz_sane(khz)) {
		*src = "cpuid40000010";
		return khz;
	}
	khz = tg_tsc_kvmclock();
	if (tg_khz_sane(khz)) {
		*src = "kvmclock";
		return khz;
	}
	khz = tg_tsc_cpuid15(r[0]);
	if (tg_khz_sane(khz)) {
		*src = "cpuid15";
		return khz;
	}
	khz = tg_tsc_pit();
	if (tg_khz_sane(khz)) {
		*src = "pit";
		return khz;
	}
	khz = tg_tsc_cpuid16(r[0]);
	if (tg_khz_sane(khz)) {
		*src = "cpuid16";
		return khz;
	}
	*src = "guess";
	return 2000000;
}
