/*
 * acpi.c - the guest's ACPI tables, in [BOOT_ACPI_ADDR, BOOT_ACPI_END).
 *
 *   RSDP (v2) at BOOT_ACPI_ADDR, inside the legacy 0xe0000 scan area
 *   XSDT  -> FADT, MADT
 *   FADT  revision 6, HW_REDUCED_ACPI; sleep control / status registers in
 *         I/O space at PORT_ACPI_SLEEP_CTL / PORT_ACPI_SLEEP_STS; reset
 *         register = I/O port 0x64, value 0xfe
 *   DSDT  \_S5_ (SLP_TYP 5) and \_SB_.COM1 (PNP0501, 0x3f8, IRQ 4)
 *   MADT  one Local APIC per vCPU, one IOAPIC (GSI base 0), ISO IRQ0->GSI2,
 *         LAPIC NMI on LINT1, PCAT_COMPAT
 *
 * Why hardware-reduced, and why the UART is in the DSDT: docs/boot.md.
 */
#include <errno.h>

#include "boot_priv.h"
#include "layout.h"

#define ACPI_AREA_SIZE		(BOOT_ACPI_END - BOOT_ACPI_ADDR)
#define ACPI_HDR_LEN		36
#define ACPI_RSDP_LEN		36
#define ACPI_FADT_LEN		276	/* revision 6 */
#define ACPI_OEM_ID		"TERN  "

/* FADT field offsets and flags (ACPI 6.x, table 5.9). */
#define FADT_DSDT		40
#define FADT_FLAGS		112
#define FADT_IAPC_BOOT_ARCH	109
#define FADT_RESET_REG		116
#define FADT_RESET_VALUE	128
#define FADT_X_DSDT		140
#define FADT_SLEEP_CONTROL	244
#define FADT_SLEEP_STATUS	256
#define FADT_HYPERVISOR_ID	268
#define FADT_F_WBINVD		(1u << 0)
#define FADT_F_PWR_BUTTON	(1u << 4)	/* no fixed power button */
#define FADT_F_SLP_BUTTON	(1u << 5)	/* no fixed sleep button */
#define FADT_F_RESET_REG_SUP	(1u << 10)
#define FADT_F_HW_REDUCED	(1u << 20)
#define IAPC_LEGACY_DEVICES	(1u << 0)
#define IAPC_VGA_NOT_PRESENT	(1u << 2)
#define IAPC_PCIE_ASPM_CONTROLS	(1u << 4)
#define IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)
#define ACPI_RESET_VALUE	0xfe

/* MADT (ACPI 6.x, 5.2.12). */
#define MADT_PCAT_COMPAT	1
#define MADT_LAPIC		0	/* type, len 8 */
#define MADT_IOAPIC		1	/* type, len 12 */
#define MADT_ISO		2	/* type, len 10 */
#define MADT_LAPIC_NMI		4	/* type, len 6 */
#define MADT_IOAPIC_ID		0	/* KVM's in-kernel IOAPIC resets to ID 0 */

/*
 * DSDT body, hand-assembled AML (ACPI 6.x, chapter 20):
 *
 *   Name (_S5, Package (0x04) { 0x05, 0x05, Zero, Zero })
 *   Scope (\_SB) {
 *     Device (COM1) {
 *       Name (_HID, EisaId ("PNP0501"))
 *       Name (_UID, One)
 *       Name (_CRS, ResourceTemplate () {
 *         IO (Decode16, 0x03F8, 0x03F8, 0x00, 0x08)
 *         IRQNoFlags () {4}
 *       })
 *     }
 *   }
 */
static const uint8_t acpi_dsdt_aml[] = {
	0x08, '_', 'S', '5', '_',		/* NameOp "_S5_" */
	0x12, 0x08, 0x04,			/* PackageOp, PkgLength 8, 4 elements */
	0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00,	/* BytePrefix 5, BytePrefix 5, Zero, Zero */
	0x10, 0x33, '\\', '_', 'S', 'B', '_',	/* ScopeOp, PkgLength 51, "\_SB_" */
	0x5b, 0x82, 0x2b, 'C', 'O', 'M', '1',	/* DeviceOp, PkgLength 43, "COM1" */
	0x08, '_', 'H', 'I', 'D',		/* Name _HID */
	0x0c, 0x41, 0xd0, 0x05, 0x01,		/* DWordPrefix EisaId("PNP0501") */
	0x08, '_', 'U', 'I', 'D', 0x01,		/* Name _UID One */
	0x08, '_', 'C', 'R', 'S',		/* Name _CRS */
	0x11, 0x10, 0x0a, 0x0d,			/* BufferOp, PkgLength 16, size 13 */
	0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08,	/* IO Decode16 */
	0x22, 0x10, 0x00,			/* IRQNoFlags {4} */
	0x79, 0x00,				/* EndTag */
};

struct acpi_area {
	uint8_t *host;		/* host view of the whole ACPI area */
	size_t used;
};

static uint8_t *acpi_alloc(struct acpi_area *a, size_t len, uint64_t *gpa)
{
	size_t off = ALIGN_UP(a->used, (size_t)16);

	if (off > ACPI_AREA_SIZE || len > ACPI_AREA_SIZE - off)
		return NULL;
	a->used = off + len;
	*gpa = BOOT_ACPI_ADDR + off;
	return a->host + off;
}

static void acpi_checksum(uint8_t *p, size_t len, size_t at)
{
	uint8_t sum = 0;

	p[at] = 0;
	for (size_t i = 0; i < len; i++)
		sum += p[i];
	p[at] = (uint8_t)-sum;
}

static void acpi_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	boot_put32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, ACPI_OEM_ID, 6);
	memcpy(t + 16, "TERN", 4);
	memcpy(t + 20, sig, 4);			/* OEM table id "TERN<sig>" */
	boot_put32(t + 24, 1);			/* OEM revision */
	memcpy(t + 28, "TERN", 4);		/* creator id */
	boot_put32(t + 32, 1);			/* creator revision */
}

/* Generic Address Structure for a byte-wide I/O port. */
static void acpi_gas_io8(uint8_t *g, uint16_t port)
{
	g[0] = 1;				/* SystemIO */
	g[1] = 8;				/* bit width */
	g[2] = 0;				/* bit offset */
	g[3] = 1;				/* byte access */
	boot_put64(g + 4, port);
}

static int acpi_dsdt(struct acpi_area *a, uint64_t *gpa)
{
	uint32_t len = ACPI_HDR_LEN + sizeof(acpi_dsdt_aml);
	uint8_t *t = acpi_alloc(a, len, gpa);

	if (!t)
		return -ENOSPC;
	acpi_header(t, "DSDT", len, 2);
	memcpy(t + ACPI_HDR_LEN, acpi_dsdt_aml, sizeof(acpi_dsdt_aml));
	acpi_checksum(t, len, 9);
	return 0;
}

static int acpi_fadt(struct acpi_area *a, uint64_t dsdt, uint64_t *gpa)
{
	uint8_t *t = acpi_alloc(a, ACPI_FADT_LEN, gpa);

	if (!t)
		return -ENOSPC;
	acpi_header(t, "FACP", ACPI_FADT_LEN, 6);
	boot_put32(t + FADT_DSDT, (uint32_t)dsdt);
	boot_put64(t + FADT_X_DSDT, dsdt);
	boot_put16(t + FADT_IAPC_BOOT_ARCH, IAPC_LEGACY_DEVICES | IAPC_VGA_NOT_PRESENT |
		   IAPC_PCIE_ASPM_CONTROLS | IAPC_CMOS_RTC_NOT_PRESENT);
	boot_put32(t + FADT_FLAGS, FADT_F_WBINVD | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON |
		   FADT_F_RESET_REG_SUP | FADT_F_HW_REDUCED);
	acpi_gas_io8(t + FADT_RESET_REG, PORT_I8042_CMD);
	t[FADT_RESET_VALUE] = ACPI_RESET_VALUE;
	acpi_gas_io8(t + FADT_SLEEP_CONTROL, PORT_ACPI_SLEEP_CTL);
	acpi_gas_io8(t + FADT_SLEEP_STATUS, PORT_ACPI_SLEEP_STS);
	memcpy(t + FADT_HYPERVISOR_ID, "TERNVMM ", 8);
	acpi_checksum(t, ACPI_FADT_LEN, 9);
	return 0;
}

static size_t madt_put(uint8_t *p, uint8_t type, uint8_t len)
{
	p[0] = type;
	p[1] = len;
	return len;
}

static int acpi_madt(struct acpi_area *a, unsigned nr_cpus, uint64_t *gpa)
{
	uint32_t len = ACPI_HDR_LEN + 8 + 8 * nr_cpus + 12 + 10 + 6;
	uint8_t *t = acpi_alloc(a, len, gpa);
	size_t off = ACPI_HDR_LEN + 8;

	if (!t)
		return -ENOSPC;
	acpi_header(t, "APIC", len, 5);
	boot_put32(t + 36, (uint32_t)LAPIC_ADDR);
	boot_put32(t + 40, MADT_PCAT_COMPAT);
	for (unsigned i = 0; i < nr_cpus; i++) {
		t[off + 2] = (uint8_t)i;		/* ACPI processor UID */
		t[off + 3] = (uint8_t)i;		/* APIC ID */
		boot_put32(t + off + 4, 1);		/* enabled */
		off += madt_put(t + off, MADT_LAPIC, 8);
	}
	t[off + 2] = MADT_IOAPIC_ID;
	boot_put32(t + off + 4, (uint32_t)IOAPIC_ADDR);
	boot_put32(t + off + 8, 0);			/* GSI base */
	off += madt_put(t + off, MADT_IOAPIC, 12);
	t[off + 2] = 0;					/* bus: ISA */
	t[off + 3] = 0;					/* IRQ0 (PIT) ... */
	boot_put32(t + off + 4, 2);			/* ... is GSI 2 */
	boot_put16(t + off + 8, 0);			/* conforms to bus */
	off += madt_put(t + off, MADT_ISO, 10);
	t[off + 2] = 0xff;				/* all processors */
	boot_put16(t + off + 3, 0);
	t[off + 5] = 1;					/* LINT1 */
	madt_put(t + off, MADT_LAPIC_NMI, 6);
	acpi_checksum(t, len, 9);
	return 0;
}

static int acpi_xsdt(struct acpi_area *a, uint64_t fadt, uint64_t madt, uint64_t *gpa)
{
	uint32_t len = ACPI_HDR_LEN + 2 * 8;
	uint8_t *t = acpi_alloc(a, len, gpa);

	if (!t)
		return -ENOSPC;
	acpi_header(t, "XSDT", len, 1);
	boot_put64(t + ACPI_HDR_LEN, fadt);
	boot_put64(t + ACPI_HDR_LEN + 8, madt);
	acpi_checksum(t, len, 9);
	return 0;
}

static void acpi_rsdp(uint8_t *r, uint64_t xsdt)
{
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, ACPI_OEM_ID, 6);
	r[15] = 2;					/* revision: ACPI 2.0+ */
	boot_put32(r + 16, 0);				/* no RSDT */
	boot_put32(r + 20, ACPI_RSDP_LEN);
	boot_put64(r + 24, xsdt);
	acpi_checksum(r, 20, 8);
	acpi_checksum(r, ACPI_RSDP_LEN, 32);
}

int boot_acpi_build(struct guest_mem *mem, unsigned nr_cpus,
		    uint64_t *rsdp_addr, struct err *err)
{
	struct acpi_area a = { .host = gmem_ptr(mem, BOOT_ACPI_ADDR, ACPI_AREA_SIZE) };
	uint64_t rsdp, dsdt, fadt, madt, xsdt;
	uint8_t *r;

	if (!a.host)
		return err_set(err, -ENOMEM, "boot: ACPI area 0x%llx-0x%llx is outside guest RAM",
			       BOOT_ACPI_ADDR, BOOT_ACPI_END);
	if (nr_cpus == 0 || nr_cpus > BOOT_MAX_CPUS)
		return err_set(err, -EINVAL, "boot: nr_cpus %u out of range 1..%d",
			       nr_cpus, BOOT_MAX_CPUS);
	memset(a.host, 0, ACPI_AREA_SIZE);
	r = acpi_alloc(&a, ACPI_RSDP_LEN, &rsdp);
	if (!r || acpi_dsdt(&a, &dsdt) || acpi_fadt(&a, dsdt, &fadt) ||
	    acpi_madt(&a, nr_cpus, &madt) || acpi_xsdt(&a, fadt, madt, &xsdt))
		return err_set(err, -ENOSPC, "boot: ACPI tables for %u CPUs overflow 0x%llx-0x%llx",
			       nr_cpus, BOOT_ACPI_ADDR, BOOT_ACPI_END);
	acpi_rsdp(r, xsdt);
	*rsdp_addr = rsdp;
	return 0;
}
