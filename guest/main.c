/*
 * main.c - tern-guest's ring-3 entry: boot sequence of the BSP and the APs.
 *
 * BSP: clear .bss, init COM1, read the command line and e820 map from the
 * zero page, size the page pool, calibrate the TSC, count CPUs (ACPI MADT,
 * else tg.cpus, else 1), start the APs, print TG BOOT / TG CPUID / TG INFO,
 * then run the workload (work.c) like every other CPU.
 */
#include "tg.h"

extern char __bss_start[], __bss_end[], tg_image_end[];

struct tg_params tg_params;
struct tg_pool tg_pool;
u64 tg_tsc_khz;

void tg_ring3_main(u32 cpu) __attribute__((noreturn));

static const char *tg_entry_name(void)
{
	switch (tg_entry_kind) {
	case TG_ENTRY_BZIMAGE64:
		return "bzimage64";
	case TG_ENTRY_BZIMAGE32:
		return "bzimage32";
	case TG_ENTRY_REALMODE:
		return "realmode";
	default:
		return "unknown";
	}
}

/* Copy the NUL-terminated command line the zero page points to. */
static void tg_cmdline_copy(const u8 *bp, char *buf, unsigned long size)
{
	u32 lo, hi;
	u64 a;
	unsigned long i;

	memcpy(&lo, bp + BP_CMD_LINE_PTR, 4);
	memcpy(&hi, bp + BP_EXT_CMD_LINE_PTR, 4);
	a = ((u64)hi << 32) | lo;
	buf[0] = '\0';
	if (!a || a + size > 0x100000000UL)
		return;
	for (i = 0; i + 1 < size && ((const char *)a)[i]; i++)
		buf[i] = ((const char *)a)[i];
	buf[i] = '\0';
}

static void tg_print_rate(char *buf, unsigned long size)
{
	if (tg_params.rate_mode == TG_RATE_MAX)
		tg_snprintf(buf, size, "max");
	else if (tg_params.rate_mode == TG_RATE_PACED)
		tg_snprintf(buf, size, "%lu", tg_params.rate_mibs);
	else
		tg_snprintf(buf, size, "0");
}

/* tg.cpuid=1: each reported leaf as ring 0 saw it at boot and as ring 3 sees it. */
static void tg_print_cpuid(void)
{
	static const char *const names[TG_CPUID_LEAVES] = {
		"1", "7.0", "0xd.1", "0x80000001",
	};
	u32 i, r[4];

	for (i = 0; i < TG_CPUID_LEAVES; i++) {
		const u32 *z = tg_cpuid_r0[i];

		tg_cpuid(tg_cpuid_leaf[i][0], tg_cpuid_leaf[i][1], r);
		tg_printf("TG CPUID leaf=%s eax=%x ebx=%x ecx=%x edx=%x ring=0\n",
			  names[i], z[0], z[1], z[2], z[3]);
		tg_printf("TG CPUID leaf=%s eax=%x ebx=%x ecx=%x edx=%x ring=3\n",
			  names[i], r[0], r[1], r[2], r[3]);
	}
}

static void tg_print_boot(u32 ncpus, u32 napic, const char *tsc_src,
			  u64 ring0_us)
{
	char rate[24];
	u32 a[4], b[4], c[4];
	u64 t0, t1;
	u32 i;

	tg_print_rate(rate, sizeof(rate));
	tg_printf("TG BOOT cpus=%u mem_mib=%lu tsc_khz=%lu wss_mib=%lu "
		  "rate=%s entry=%s idle=%s\n", ncpus, tg_pool.ram_bytes >> 20,
		  tg_tsc_khz, tg_work_wss_pages() >> 8, rate, tg_entry_name(),
		  tg_params.idle_halt ? "halt" : "spin");
	tg_cpuid(1, 0, a);
	tg_cpuid(7, 0, b);
	tg_cpuid(0x80000001, 0, c);
	t0 = tg_rdtsc();
	tg_printf("TG CPUID 1:ecx=%x 1:edx=%x 7:ebx=%x 7:ecx=%x "
		  "80000001:ecx=%x 80000001:edx=%x\n",
		  a[2], a[3], b[1], b[2], c[2], c[3]);
	t1 = tg_rdtsc();
	if (tg_params.cpuid)
		tg_print_cpuid();
	tg_printf("TG INFO tsc_src=%s boot_ms=%lu pool_mib=%lu madt_cpus=%u "
		  "ring0_us=%lu line_us=%lu image_end=0x%lx gen=0x%lx\n",
		  tsc_src, tg_ms_since_boot(t0), tg_pool.npages >> 8, napic,
		  ring0_us, (t1 - t0) * 1000 / tg_tsc_khz, (u64)tg_image_end,
		  (u64)tg_pool.gen);
	for (i = 0; i < tg_pool.nreg; i++)
		tg_printf("TG MEM start=0x%lx end=0x%lx pages=%lu\n",
			  tg_pool.reg[i].start_pfn * TG_PAGE_SIZE,
			  (tg_pool.reg[i].start_pfn + tg_pool.reg[i].npages) *
				  TG_PAGE_SIZE,
			  tg_pool.reg[i].npages);
}

static u32 tg_cpus_wanted(u32 napic)
{
	u32 want = napic ? napic : (tg_params.cpus ? tg_params.cpus : 1);

	if (napic && tg_params.cpus && tg_params.cpus < want)
		want = tg_params.cpus;
	return want > TG_MAX_CPUS ? TG_MAX_CPUS : want;
}

static void tg_bsp_main(void) __attribute__((noreturn));
static void tg_bsp_main(void)
{
	const u8 *bp = (const u8 *)tg_boot_params;
	u32 ids[TG_MAX_CPUS], napic, want, ncpus;
	const char *tsc_src = "";
	char cmdline[2048];
	u64 t_ring3 = tg_rdtsc();

	memset(__bss_start, 0, (unsigned long)(__bss_end - __bss_start));
	tg_serial_init();
	tg_cmdline_copy(bp, cmdline, sizeof(cmdline));
	tg_params_parse(&tg_params, cmdline);
	if (tg_pool_init(&tg_pool, bp, (u64)tg_image_end) < 0)
		tg_panic("no usable RAM for the test pool (e820 entries=%u)",
			 bp[BP_E820_ENTRIES]);
	tg_tsc_khz = tg_tsc_calibrate(tg_params.tsc_khz, &tsc_src);
	napic = tg_acpi_cpus(bp, ids, TG_MAX_CPUS);
	want = tg_cpus_wanted(napic);
	ncpus = want > 1 ? tg_smp_start(ids, napic, want) : 1;
	tg_work_setup(ncpus);
	tg_print_boot(ncpus, napic, tsc_src, (t_ring3 - tg_tsc_boot) * 1000 /
					     tg_tsc_khz);
	if (tg_params.selftest_fault)
		__asm__ volatile("ud2");	/* must end in TG FAULT vec=6 */
	tg_work_run(0);
}

static void tg_ap_main(u32 cpu) __attribute__((noreturn));
static void tg_ap_main(u32 cpu)
{
	__atomic_add_fetch(&tg_ap_count, 1, __ATOMIC_RELEASE);
	tg_work_run(cpu);
}

void tg_ring3_main(u32 cpu)
{
	if (cpu)
		tg_ap_main(cpu);
	tg_bsp_main();
}
