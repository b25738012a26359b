/*
 * power.c - how tern-guest ends (tg.exit): a value on the debug-exit port,
 * ACPI power-off, a reset through the i8042, or every CPU halted.
 *
 * Power-off enters ACPI S5 the way the FADT says: SLP_TYP (the first
 * element of the DSDT's \_S5 package, found by a byte search; AML is not
 * interpreted) | SLP_EN goes to the hardware-reduced sleep control register
 * if there is one (tern-vmm), else to PM1a_CNT (QEMU's PC machines). Then,
 * whatever the tables said, it writes SLP_TYP 5 | SLP_EN to port 0x600,
 * tern-vmm's fixed sleep control port. Reset writes 0xfe to the i8042
 * command port (tern-vmm and QEMU both reset on it). Halt runs hlt in ring
 * 3, whose #GP the fault handler turns into cli; hlt in ring 0, so the
 * vCPUs stop using host CPU while the VM stays up. If a power-off or reset
 * has not ended the VM TG_END_WAIT_MS later, the guest says so and uses
 * the debug-exit port, so a run never hangs.
 */
#include "tg.h"

#define TG_END_WAIT_MS	500

#define SDT_HDR_LEN		36
#define FADT_DSDT		40	/* u32 */
#define FADT_PM1A_CNT		64	/* u32 I/O port */
#define FADT_X_DSDT		140	/* u64 */
#define FADT_SLEEP_CTL		244	/* generic address structure */
#define GAS_SYSTEM_IO		1
#define GAS_ADDR		4	/* u64 inside the GAS */
#define PM1_SLP_TYP_SHIFT	10
#define PM1_SLP_EN		(1U << 13)
#define AML_PACKAGE_OP		0x12
#define AML_ZERO_OP		0x00
#define AML_ONE_OP		0x01
#define AML_BYTE_PREFIX		0x0a

static const char *tg_exit_mode_name(enum tg_exit_mode mode)
{
	switch (mode) {
	case TG_EXIT_POWEROFF:
		return "poweroff";
	case TG_EXIT_REBOOT:
		return "reboot";
	case TG_EXIT_HALT:
		return "halt";
	default:
		return "debug";
	}
}

static u64 tg_get(const u8 *p, u32 n)
{
	u64 v = 0;

	memcpy(&v, p, n);
	return v;
}

/* SLP_TYP of a "_S5_" Package at p (len bytes left), or -1. */
static int tg_s5_package(const u8 *p, u32 len)
{
	u32 pkglen_bytes;

	if (len < 12 || memcmp(p, "_S5_", 4) || p[4] != AML_PACKAGE_OP)
		return -1;
	pkglen_bytes = (p[5] >> 6) + 1u;
	p += 5 + pkglen_bytes + 1;		/* PkgLength, NumElements */
	switch (p[0]) {
	case AML_ZERO_OP:
		return 0;
	case AML_ONE_OP:
		return 1;
	case AML_BYTE_PREFIX:
		return p[1] & 7;
	default:
		return -1;
	}
}

/* The \_S5 SLP_TYP from the DSDT the FADT points to, or -1. */
static int tg_s5_type(const u8 *fadt, u32 flen)
{
	u64 a = flen >= FADT_X_DSDT + 8 ? tg_get(fadt + FADT_X_DSDT, 8) : 0;
	const u8 *d;
	u32 len, off;
	int typ;

	if (!a)
		a = tg_get(fadt + FADT_DSDT, 4);
	d = tg_acpi_sdt(a, &len);
	if (!d)
		return -1;
	for (off = SDT_HDR_LEN; off < len; off++) {
		typ = tg_s5_package(d + off, len - off);
		if (typ >= 0)
			return typ;
	}
	return -1;
}

/* ACPI S5 through the FADT's sleep control register or PM1a_CNT. */
static void tg_acpi_poweroff(void)
{
	const u8 *f;
	u32 len;
	u64 port;
	int typ;

	f = tg_acpi_table((const u8 *)tg_boot_params, "FACP", &len);
	if (!f || len < FADT_PM1A_CNT + 4)
		return;
	typ = tg_s5_type(f, len);
	if (typ < 0)
		return;
	port = len >= FADT_SLEEP_CTL + 12 &&
	       f[FADT_SLEEP_CTL] == GAS_SYSTEM_IO ?
	       tg_get(f + FADT_SLEEP_CTL + GAS_ADDR, 8) : 0;
	if (port && port <= 0xffff) {
		tg_outb((u16)port, (u8)((typ << 2) | TG_ACPI_SLP_EN));
		return;
	}
	port = tg_get(f + FADT_PM1A_CNT, 4);
	if (port && port <= 0xffff)
		tg_outw((u16)port, (u16)((typ << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN));
}

/* hlt in ring 3 faults; the #GP handler (r0.c) halts this CPU for good. */
void tg_halt(void)
{
	for (;;)
		__asm__ volatile("hlt" ::: "memory");
}

/* Exit through the debug-exit port; if there is none, halt. */
void tg_exit(u8 code)
{
	tg_outb(TG_EXIT_PORT, code);
	tg_halt();
}

static void tg_end_fallback(enum tg_exit_mode mode, u8 code)
	__attribute__((noreturn));
static void tg_end_fallback(enum tg_exit_mode mode, u8 code)
{
	tg_delay_us(TG_END_WAIT_MS * 1000);
	tg_printf("TG WARN tg.exit=%s did not end the VM, using the debug-exit "
		  "port\n", tg_exit_mode_name(mode));
	tg_exit(code);
}

/* End the run the way tg.exit asks; `code` is the debug-exit value. */
void tg_end(enum tg_exit_mode mode, u8 code)
{
	switch (mode) {
	case TG_EXIT_POWEROFF:
		tg_acpi_poweroff();
		tg_outb(TG_ACPI_SLEEP_CTL, (TG_ACPI_S5 << 2) | TG_ACPI_SLP_EN);
		break;
	case TG_EXIT_REBOOT:
		tg_outb(TG_I8042_CMD, TG_I8042_RESET);
		break;
	case TG_EXIT_HALT:
		tg_halt();
	default:
		tg_exit(code);
	}
	tg_end_fallback(mode, code);
}
