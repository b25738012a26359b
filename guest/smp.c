/*
 * smp.c - count CPUs from the ACPI MADT and start the APs (ring 3).
 *
 * The RSDP comes from boot_params.acpi_rsdp_addr or a scan of the EBDA's
 * first KiB and 0xE0000-0xFFFFF; the RSDT/XSDT leads to the MADT ("APIC"),
 * whose enabled local-APIC entries give the APIC IDs (and to the FADT for
 * power.c). Table lengths and
 * addresses are checked before use (tables are firmware input). APs are
 * woken with INIT-SIPI-SIPI through the xAPIC MMIO page (mapped user
 * accessible and uncached) and start in the real-mode trampoline head.S
 * provides, copied to TG_TRAMP_ADDR.
 */
#include "tg.h"

#define ACPI_LIMIT	0x100000000UL	/* tables must be below 4 GiB */
#define ACPI_MAX_LEN	0x100000U
#define SDT_HDR_LEN	36
#define MADT_ENTRIES	44
#define LAPIC_ID	0x020
#define LAPIC_SVR	0x0f0
#define LAPIC_ICR_LO	0x300
#define LAPIC_ICR_HI	0x310
#define ICR_BUSY	(1U << 12)
#define ICR_INIT	0x00004500	/* INIT, level assert */
#define ICR_SIPI	0x00004600	/* start-up, level assert */
#define ICR_ALL_BUT_ME	0x000c0000

extern const char tg_tramp_start[], tg_tramp_end[];
volatile u32 tg_ap_count;

static u8 tg_sum(const u8 *p, u32 n)
{
	u8 s = 0;

	while (n--)
		s += *p++;
	return s;
}

static u64 tg_rd32(const u8 *p)
{
	u32 v;

	memcpy(&v, p, 4);
	return v;
}

static u64 tg_rd64(const u8 *p)
{
	u64 v;

	memcpy(&v, p, 8);
	return v;
}

/* Read a u16 at a low constant address (hidden from -Warray-bounds). */
static u64 tg_peek16(u64 addr)
{
	u16 v;

	__asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(addr) : "memory");
	return v;
}

static const u8 *tg_rsdp_scan(u64 start, u64 len)
{
	u64 a;

	for (a = start; a + 20 <= start + len; a += 16) {
		const u8 *p = (const u8 *)a;

		if (!memcmp(p, "RSD PTR ", 8) && !tg_sum(p, 20))
			return p;
	}
	return NULL;
}

static const u8 *tg_rsdp_find(const u8 *bp)
{
	u64 a = tg_rd64(bp + BP_ACPI_RSDP);
	u64 ebda = tg_peek16(0x40e) << 4;	/* BDA: EBDA segment */
	const u8 *p;

	if (a && a < ACPI_LIMIT - 36 && !memcmp((const u8 *)a, "RSD PTR ", 8))
		return (const u8 *)a;
	if (ebda >= 0x80000 && ebda < 0xa0000) {
		p = tg_rsdp_scan(ebda, 1024);
		if (p)
			return p;
	}
	return tg_rsdp_scan(0xe0000, 0x20000);
}

/* A system description table at `a`, or NULL if it is not plausible. */
const u8 *tg_acpi_sdt(u64 a, u32 *len)
{
	const u8 *p = (const u8 *)a;

	if (!a || a >= ACPI_LIMIT - SDT_HDR_LEN)
		return NULL;
	*len = (u32)tg_rd32(p + 4);
	if (*len < SDT_HDR_LEN || *len > ACPI_MAX_LEN || a + *len > ACPI_LIMIT)
		return NULL;
	return p;
}

static const u8 *tg_sdt_find(const u8 *rsdp, const char *sig, u32 *len)
{
	bool x = rsdp[15] >= 2 && tg_rd64(rsdp + 24);
	u64 root = x ? tg_rd64(rsdp + 24) : tg_rd32(rsdp + 16);
	u32 rlen, esz = x ? 8 : 4, off;
	const u8 *r = tg_acpi_sdt(root, &rlen), *t;

	if (!r)
		return NULL;
	for (off = SDT_HDR_LEN; off + esz <= rlen; off += esz) {
		u64 a = x ? tg_rd64(r + off) : tg_rd32(r + off);

		t = tg_acpi_sdt(a, len);
		if (t && !memcmp(t, sig, 4))
			return t;
	}
	return NULL;
}

/* The ACPI table with signature `sig` ("APIC", "FACP"), or NULL. */
const u8 *tg_acpi_table(const u8 *bp, const char *sig, u32 *len)
{
	const u8 *rsdp = tg_rsdp_find(bp);

	return rsdp ? tg_sdt_find(rsdp, sig, len) : NULL;
}

u32 tg_acpi_cpus(const u8 *bp, u32 *ids, u32 max)
{
	u32 len, off, n = 0;
	const u8 *m = tg_acpi_table(bp, "APIC", &len);

	if (!m)
		return 0;
	for (off = MADT_ENTRIES; off + 2 <= len && n < max; off += m[off + 1]) {
		const u8 *e = m + off;

		if (e[1] < 2 || off + e[1] > len)
			break;
		if (e[0] == 0 && e[1] >= 8 && (tg_rd32(e + 4) & 1))
			ids[n++] = e[3];
		else if (e[0] == 9 && e[1] >= 16 && (tg_rd32(e + 8) & 1) &&
			 tg_rd32(e + 4) < 0xff)
			ids[n++] = (u32)tg_rd32(e + 4);
	}
	return n;
}

u32 tg_lapic_id(void)
{
	return tg_mmio_read32(TG_LAPIC_BASE + LAPIC_ID) >> 24;
}

static void tg_icr_send(u32 dest, u32 lo)
{
	u64 t0 = tg_rdtsc(), limit = tg_tsc_khz * 100;	/* 100 ms */

	while (tg_mmio_read32(TG_LAPIC_BASE + LAPIC_ICR_LO) & ICR_BUSY) {
		if (tg_rdtsc() - t0 > limit)
			break;
		tg_pause();
	}
	tg_mmio_write32(TG_LAPIC_BASE + LAPIC_ICR_HI, dest << 24);
	tg_mmio_write32(TG_LAPIC_BASE + LAPIC_ICR_LO, lo);
}

/* Send `lo` to every AP in `ids` (or broadcast when napic == 0). */
static void tg_ipi_all(const u32 *ids, u32 napic, u32 want, u32 self, u32 lo)
{
	u32 i, sent = 0;

	if (!napic) {
		tg_icr_send(0, lo | ICR_ALL_BUT_ME);
		return;
	}
	for (i = 0; i < napic && sent + 1 < want; i++) {
		if (ids[i] == self)
			continue;
		tg_icr_send(ids[i], lo);
		sent++;
	}
}

static bool tg_wait_aps(u32 n, u64 ms)
{
	u64 t0 = tg_rdtsc(), limit = tg_tsc_khz * ms;

	while (__atomic_load_n(&tg_ap_count, __ATOMIC_ACQUIRE) < n) {
		if (tg_rdtsc() - t0 > limit)
			return false;
		tg_pause();
	}
	return true;
}

/*
 * Start up to want - 1 APs; returns the number of CPUs now running
 * (BSP included). APs beyond that number park themselves (work.c).
 */
u32 tg_smp_start(const u32 *ids, u32 napic, u32 want)
{
	u32 self = tg_lapic_id(), svr, vec = TG_TRAMP_ADDR >> 12, n;

	memcpy((void *)TG_TRAMP_ADDR, tg_tramp_start,
	       (unsigned long)(tg_tramp_end - tg_tramp_start));
	svr = tg_mmio_read32(TG_LAPIC_BASE + LAPIC_SVR);
	tg_mmio_write32(TG_LAPIC_BASE + LAPIC_SVR, svr | 0x1ff);
	tg_ipi_all(ids, napic, want, self, ICR_INIT);
	tg_delay_us(10000);
	tg_ipi_all(ids, napic, want, self, ICR_SIPI | vec);
	if (!tg_wait_aps(want - 1, 1)) {
		tg_delay_us(200);
		tg_ipi_all(ids, napic, want, self, ICR_SIPI | vec);
	}
	tg_wait_aps(want - 1, 2000);
	n = 1 + __atomic_load_n(&tg_ap_count, __ATOMIC_ACQUIRE);
	return n < want ? n : want;
}
