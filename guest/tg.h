/*
 * tg.h - tern-guest: shared declarations of the freestanding test guest.
 *
 * tern-guest is a tiny x86-64 bzImage (no libc, no Linux) that fills guest
 * RAM with per-page patterns, rewrites a working set at a paced rate and
 * verifies everything, reporting on COM1. It is the integrity oracle of the
 * migration tests. Ring 0 (r0.c, head.S) only sets up GDT/TSS/IDT and page
 * tables; all the work runs in ring 3 with IOPL=3 because ring-0 code is
 * emulated (slow) on PVM hosts. See docs/test-guest.md.
 */
#ifndef TG_H
#define TG_H

#include <stdbool.h>
#include <stddef.h>

#include "tg_layout.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long s64;
typedef signed char s8;

#define TG_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define TG_ALIGN_UP(x, a)	(((x) + (a) - 1) & ~((u64)(a) - 1))
#define TG_ALIGN_DOWN(x, a)	((x) & ~((u64)(a) - 1))
#define TG_MIB			(1024UL * 1024UL)

/* ---- boot_params (zero page) offsets, Documentation/arch/x86/zero-page.rst */
#define BP_ACPI_RSDP		0x070	/* u64 */
#define BP_E820_ENTRIES		0x1e8	/* u8 */
#define BP_CMD_LINE_PTR		0x228	/* u32 */
#define BP_EXT_CMD_LINE_PTR	0x0c8	/* u32, high half of cmd_line_ptr */
#define BP_CMDLINE_SIZE		0x238	/* u32 */
#define BP_E820_TABLE		0x2d0	/* 128 x struct e820_entry */
#define BP_E820_MAX		128

struct tg_e820 {
	u64 addr;
	u64 size;
	u32 type;
} __attribute__((packed));

#define E820_RAM		1

/* ---- port I/O and other tiny instruction wrappers */
static inline void tg_outb(u16 port, u8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void tg_outw(u16 port, u16 v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline u8 tg_inb(u16 port)
{
	u8 v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline u64 tg_rdtsc(void)
{
	u32 lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}

static inline void tg_cpuid(u32 leaf, u32 sub, u32 r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

static inline void tg_pause(void)
{
	__asm__ volatile("pause" ::: "memory");
}

static inline u32 tg_mmio_read32(u64 addr)
{
	return *(volatile u32 *)addr;
}

static inline void tg_mmio_write32(u64 addr, u32 v)
{
	*(volatile u32 *)addr = v;
}

/* ---- libc.c */
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);
int memcmp(const void *a, const void *b, unsigned long n);
unsigned long strlen(const char *s);

/* ---- fmt.c: a small vsnprintf (%d %u %x %s %c, l/ll, width, '0') */
int tg_vsnprintf(char *buf, unsigned long size, const char *fmt,
		 __builtin_va_list ap);
int tg_snprintf(char *buf, unsigned long size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * ---- the stall clock of one CPU
 *
 * A CPU's stall is the longest TSC gap between two moments it was seen
 * running guest code. The main loop ticks it every iteration, and so do
 * the console lock's spin and every UART access (one VM exit each) while
 * the CPU prints. Printing a line therefore adds at most one port access
 * to the figure, not the whole line, and a pause that lands in the middle
 * of a line is still seen.
 */
struct tg_gap {
	u64 last;	/* TSC when this CPU was last seen running */
	u64 max;	/* longest gap since the last reset, in TSC ticks */
	u64 back;	/* how far the TSC went backwards, not yet handled */
};

static inline void tg_gap_note(struct tg_gap *g, u64 now)
{
	if (now < g->last)
		g->back += g->last - now;
	else if (now - g->last > g->max)
		g->max = now - g->last;
	g->last = now;
}

static inline void tg_gap_tick(struct tg_gap *g)
{
	if (g)
		tg_gap_note(g, tg_rdtsc());
}

/*
 * ---- serial.c: COM1. tg_printf takes the console lock; tg_cprintf does
 * the same and ticks a CPU's stall clock (may be NULL) while it waits and
 * prints.
 */
void tg_serial_init(void);
void tg_serial_write(const char *s, unsigned long n);
u32 tg_serial_read(u8 *buf, u32 size, struct tg_gap *g);
void tg_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tg_cprintf(struct tg_gap *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void tg_panic(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/* ---- power.c: how the guest ends */
enum tg_exit_mode {
	TG_EXIT_INVALID = 0,
	TG_EXIT_DEBUG,		/* value to port 0x501 (default) */
	TG_EXIT_POWEROFF,	/* ACPI S5 */
	TG_EXIT_REBOOT,		/* i8042 reset */
	TG_EXIT_HALT,		/* every CPU halts; the VM stays up */
};

void tg_exit(u8 code) __attribute__((noreturn));
void tg_halt(void) __attribute__((noreturn));
void tg_end(enum tg_exit_mode mode, u8 code) __attribute__((noreturn));

/* ---- cmdline.c */
enum tg_rate_mode {
	TG_RATE_INVALID = 0,
	TG_RATE_IDLE,		/* tg.rate=0: no rewrites after the fill */
	TG_RATE_PACED,		/* tg.rate=N MiB/s */
	TG_RATE_MAX,		/* tg.rate=max */
};

struct tg_params {
	u64 wss;		/* bytes; 0 = all tested memory */
	enum tg_rate_mode rate_mode;
	u64 rate_mibs;
	bool fill;
	u64 report_ms;
	u64 duration_s;		/* 0 = forever */
	u64 tsc_khz;		/* 0 = calibrate */
	u32 cpus;		/* 0 = unset */
	u64 sweep_ms;		/* target period of one background sweep */
	bool selftest_corrupt;
	bool selftest_fault;	/* execute ud2 after TG BOOT */
	enum tg_exit_mode exit_mode;	/* how a tg.duration run ends */
	bool echo;		/* report console input as TG KEY lines */
	bool cpuid;		/* print TG CPUID leaf= lines (ring 0 and 3) */
	u64 sparse;		/* bytes rewritten per page per rewrite; 0 = whole page */
	bool idle_halt;		/* tg.idle=halt: sleep in hlt when nothing is due */
	u64 tick_us;		/* tg.tick_us: shortest such sleep */
};

void tg_params_parse(struct tg_params *p, const char *cmdline);

/* CPUID leaves reported by tg.cpuid=1, as read in ring 0 at boot (r0.c). */
#define TG_CPUID_LEAVES		4
extern const u32 tg_cpuid_leaf[TG_CPUID_LEAVES][2];	/* leaf, subleaf */
extern u32 tg_cpuid_r0[TG_CPUID_LEAVES][4];		/* eax..edx */

/* ---- mem.c: the tested page pool */
#define TG_MAX_REGIONS		32

struct tg_region {
	u64 start_pfn;
	u64 npages;
	u64 first_index;	/* index of start_pfn in the pool */
};

struct tg_pool {
	struct tg_region reg[TG_MAX_REGIONS];
	u32 nreg;
	u64 npages;		/* tested pages */
	u64 ram_bytes;		/* all e820 type-1 RAM */
	u32 *gen;		/* generation per pool page */
	u64 gen_bytes;
	u64 reserved_end;	/* image + generation array end (phys) */
};

int tg_pool_init(struct tg_pool *pool, const u8 *bp, u64 image_end);
u64 tg_pool_pfn(const struct tg_pool *pool, u64 index);

/* ---- tsc.c */
u64 tg_tsc_calibrate(u64 param_khz, const char **src);

/* ---- smp.c */
const u8 *tg_acpi_sdt(u64 addr, u32 *len);
const u8 *tg_acpi_table(const u8 *bp, const char *sig, u32 *len);
u32 tg_acpi_cpus(const u8 *bp, u32 *apic_ids, u32 max);
u32 tg_smp_start(const u32 *apic_ids, u32 napic, u32 want);
u32 tg_lapic_id(void);

/* ---- work.c */
void tg_work_setup(u32 ncpus);
u64 tg_work_wss_pages(void);
void tg_work_run(u32 cpu) __attribute__((noreturn));
void tg_delay_us(u64 us);

/* ---- globals shared across files (main.c) */
extern struct tg_params tg_params;
extern struct tg_pool tg_pool;
extern u64 tg_tsc_khz;
extern u64 tg_tsc_boot;		/* TSC at the guest's first instruction */

/* Set by head.S / r0.c before ring 3 (in .data, never cleared). */
extern u64 tg_boot_params;	/* physical address of the zero page */
extern u32 tg_entry_kind;	/* TG_ENTRY_* */
extern volatile u32 tg_ap_count;	/* APs that reached ring 3 */

/* kvmclock page (struct pvclock_vcpu_time_info), filled by KVM */
struct tg_pvclock {
	u32 version;
	u32 pad0;
	u64 tsc_timestamp;
	u64 system_time;
	u32 tsc_to_system_mul;
	signed char tsc_shift;
	u8 flags;
	u8 pad[2];
} __attribute__((packed));

extern struct tg_pvclock tg_pvclock;

/* ---- idle.c: timed halts for tg.idle=halt */
bool tg_idle_init(u32 cpu);
void tg_idle_until(u64 deadline);

/* ---- r0.c (ring 0 only) */
void tg_r0_bsp_setup(void);
void tg_r0_cpu_setup(u32 cpu);

static inline u64 tg_ms_since_boot(u64 tsc)
{
	return (tsc - tg_tsc_boot) / tg_tsc_khz;
}

#endif
