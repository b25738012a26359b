/*
 * test_load.c - boot_load() into malloc'd guests: kernel placement, command
 * line, initrd placement and refusal, boot_params fields, e820 layouts,
 * identity page tables, GDT, and the ACPI tables (checksums, FADT, MADT
 * with 1 and 8 CPUs). Set BOOT_TEST_ACPI_DUMP=<dir> to write the tables as
 * <dir>/<SIG>.dat for `iasl -d` (docs/boot.md).
 */
#include <errno.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image.h"
#include "layout.h"
#include "util.h"

#define GUEST_SIZE	(32 * MiB)

struct fixture {
	struct guest_mem mem;
	uint8_t *base;
	uint8_t img[TIMG_LEN];
	uint8_t initrd[64 * 1024];
	struct boot_config cfg;
	struct boot_entry entry;
	struct err err;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->base = tguest_new(&f->mem, GUEST_SIZE);
	if (!f->base) {
		free(f);
		return -1;
	}
	timg_fill(f->img);
	for (size_t i = 0; i < sizeof(f->initrd); i++)
		f->initrd[i] = (uint8_t)(i ^ 0x5a);
	f->cfg = (struct boot_config){
		.kernel = f->img, .kernel_len = sizeof(f->img),
		.initrd = f->initrd, .initrd_len = sizeof(f->initrd),
		.cmdline = "console=ttyS0 panic=-1", .nr_cpus = 1,
	};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->base);
	free(f);
	return 0;
}

static uint8_t *gpa(struct fixture *f, uint64_t addr, uint64_t len)
{
	uint8_t *p = gmem_ptr(&f->mem, addr, len);

	assert_non_null(p);
	return p;
}

static int load(struct fixture *f)
{
	memset(&f->err, 0, sizeof(f->err));
	return boot_load(&f->mem, &f->cfg, &f->entry, &f->err);
}

static void expect_fail(struct fixture *f, int code, const char *msg)
{
	int rc = load(f);

	if (rc != code || !strstr(f->err.msg, msg))
		fail_msg("rc %d \"%s\", want %d \"%s\"", rc, f->err.msg, code, msg);
}

static void test_kernel_placement(void **state)
{
	struct fixture *f = *state;
	uint8_t *k;

	assert_int_equal(load(f), 0);
	assert_int_equal(f->entry.kernel_load_addr, TIMG_PREF);
	assert_int_equal(f->entry.rip, TIMG_PREF + 0x200);
	assert_int_equal(f->entry.kernel_end, TIMG_PREF + TIMG_INIT_SIZE);
	k = gpa(f, TIMG_PREF, TIMG_KERNEL_LEN);
	assert_memory_equal(k, f->img + TIMG_SETUP_LEN, TIMG_KERNEL_LEN);
	assert_int_equal(k[TIMG_KERNEL_LEN - 1], timg_pattern(TIMG_KERNEL_LEN - 1));
	/* Only syssize * 16 bytes are copied. */
	assert_int_equal(*gpa(f, TIMG_PREF + TIMG_KERNEL_LEN, 1), 0);
}

static void test_non_relocatable(void **state)
{
	struct fixture *f = *state;

	f->img[BZ_RELOCATABLE] = 0;
	boot_put64(f->img + BZ_PREF_ADDRESS, 0x1000000);	/* 16 MiB */
	assert_int_equal(load(f), 0);
	assert_int_equal(f->entry.kernel_load_addr, 0x1000000);
	assert_int_equal(f->entry.kernel_end, 0x1000000 + TIMG_INIT_SIZE);
}

/* pref_address below 1 MiB: load at 1 MiB; the kernel runs 2 MiB-aligned. */
static void test_pref_below_1m(void **state)
{
	struct fixture *f = *state;

	boot_put64(f->img + BZ_PREF_ADDRESS, 0x1000);
	assert_int_equal(load(f), 0);
	assert_int_equal(f->entry.kernel_load_addr, HIMEM_START);
	assert_int_equal(f->entry.rip, HIMEM_START + 0x200);
	assert_int_equal(f->entry.kernel_end, 0x200000 + TIMG_INIT_SIZE);
}

static void test_kernel_too_big(void **state)
{
	struct fixture *f = *state;

	boot_put32(f->img + BZ_INIT_SIZE, 31 * MiB);
	expect_fail(f, -ENOMEM, "init_size 0x1f00000");
	boot_put32(f->img + BZ_INIT_SIZE, TIMG_INIT_SIZE);
	boot_put64(f->img + BZ_PREF_ADDRESS, 0x80000000);
	expect_fail(f, -ENOMEM, "load address 0x80000000 is above low RAM end 0x2000000");
}

static void test_no_entry64(void **state)
{
	struct fixture *f = *state;

	boot_put16(f->img + BZ_XLOADFLAGS, 0);
	expect_fail(f, -ENOTSUP, "no 64-bit entry");
}

static void test_bad_image(void **state)
{
	struct fixture *f = *state;

	f->img[BZ_LOADFLAGS] = 0;
	expect_fail(f, -ENOTSUP, "bzImage: loadflags 0x00 lacks LOADED_HIGH");
}

static void test_cmdline(void **state)
{
	struct fixture *f = *state;
	char line[12] = "0123456789a";

	assert_int_equal(load(f), 0);
	assert_string_equal((char *)gpa(f, BOOT_CMDLINE_ADDR, 23), "console=ttyS0 panic=-1");
	boot_put32(f->img + BZ_CMDLINE_SIZE, 11);
	f->cfg.cmdline = line;
	assert_int_equal(load(f), 0);
	assert_string_equal((char *)gpa(f, BOOT_CMDLINE_ADDR, 12), line);
	boot_put32(f->img + BZ_CMDLINE_SIZE, 10);
	expect_fail(f, -E2BIG, "command line is 11 bytes, limit 10 (kernel cmdline_size)");
	f->cfg.cmdline = NULL;
	assert_int_equal(load(f), 0);
	assert_int_equal(*gpa(f, BOOT_CMDLINE_ADDR, 1), 0);
}

static void test_cmdline_over_max(void **state)
{
	struct fixture *f = *state;
	char *line = malloc(BOOT_CMDLINE_MAX + 10);

	assert_non_null(line);
	memset(line, 'x', BOOT_CMDLINE_MAX + 9);
	line[BOOT_CMDLINE_MAX + 9] = '\0';
	boot_put32(f->img + BZ_CMDLINE_SIZE, 0xffffffff);
	f->cfg.cmdline = line;
	expect_fail(f, -E2BIG, "limit 65535 (BOOT_CMDLINE_MAX)");
	line[BOOT_CMDLINE_MAX - 1] = '\0';
	assert_int_equal(load(f), 0);
	free(line);
}

static void test_initrd_high(void **state)
{
	struct fixture *f = *state;
	uint64_t want = GUEST_SIZE - sizeof(f->initrd);

	assert_int_equal(load(f), 0);
	assert_int_equal(f->entry.initrd_addr, want);
	assert_memory_equal(gpa(f, want, sizeof(f->initrd)), f->initrd, sizeof(f->initrd));
	/* An odd size is still page-aligned, ending as high as it can. */
	f->cfg.initrd_len = 5000;
	assert_int_equal(load(f), 0);
	assert_int_equal(f->entry.initrd_addr, GUEST_SIZE - 8192);
	/* No initrd at all. */
	f->cfg.initrd = NULL;
	assert_int_equal(load(f), 0);
	assert_int_equal(f->entry.initrd_addr, 0);
}

static void test_initrd_addr_max(void **state)
{
	struct fixture *f = *state;

	boot_put32(f->img + BZ_INITRD_ADDR_MAX, 16 * MiB - 1);
	assert_int_equal(load(f), 0);
	assert_int_equal(f->entry.initrd_addr, 16 * MiB - sizeof(f->initrd));
	/* Only the kernel's range is left below the limit: refuse. */
	boot_put32(f->img + BZ_INITRD_ADDR_MAX, TIMG_PREF + TIMG_INIT_SIZE - 1);
	expect_fail(f, -ENOMEM, "initrd (64.0 KiB) does not fit below 0x300000");
}

static void test_initrd_too_big(void **state)
{
	struct fixture *f = *state;
	size_t len = 40 * MiB;
	uint8_t *big = malloc(len);

	assert_non_null(big);
	memset(big, 1, len);
	f->cfg.initrd = big;
	f->cfg.initrd_len = len;
	expect_fail(f, -ENOMEM, "initrd (40.0 MiB) does not fit below 0x2000000");
	f->cfg.initrd_len = 30 * MiB;	/* would overlap the kernel */
	expect_fail(f, -ENOMEM, "initrd (30.0 MiB) does not fit below 0x2000000 above the kernel (ends 0x300000)");
	f->cfg.initrd_len = 28 * MiB;
	assert_int_equal(load(f), 0);
	assert_int_equal(f->entry.initrd_addr, 4 * MiB);
	free(big);
}

static void test_boot_params(void **state)
{
	struct fixture *f = *state;
	uint8_t *zp;

	assert_int_equal(load(f), 0);
	zp = gpa(f, BOOT_PARAMS_ADDR, ZP_SIZE);
	assert_int_equal(f->entry.rsi, BOOT_PARAMS_ADDR);
	/* Header copied from the image. */
	assert_memory_equal(zp + BZ_HEADER, "HdrS", 4);
	assert_int_equal(boot_get16(zp + BZ_VERSION), 0x020f);
	assert_int_equal(boot_get16(zp + BZ_BOOT_FLAG), 0xaa55);
	assert_int_equal(boot_get32(zp + BZ_KERNEL_ALIGNMENT), 0x200000);
	assert_int_equal(boot_get32(zp + BZ_INIT_SIZE), TIMG_INIT_SIZE);
	assert_int_equal(boot_get16(zp + BZ_VID_MODE), 0xffff);
	/* Fields the loader owns. */
	assert_int_equal(zp[BZ_TYPE_OF_LOADER], 0xff);
	assert_int_equal(zp[BZ_LOADFLAGS], BZ_LOADED_HIGH | BZ_CAN_USE_HEAP);
	assert_int_equal(boot_get16(zp + BZ_HEAP_END_PTR), 0xfe00);
	assert_int_equal(boot_get32(zp + BZ_CMD_LINE_PTR), BOOT_CMDLINE_ADDR);
	assert_int_equal(boot_get32(zp + ZP_EXT_CMD_LINE_PTR), 0);
	assert_int_equal(boot_get32(zp + BZ_RAMDISK_IMAGE), f->entry.initrd_addr);
	assert_int_equal(boot_get32(zp + BZ_RAMDISK_SIZE), sizeof(f->initrd));
	assert_int_equal(boot_get32(zp + ZP_EXT_RAMDISK_IMAGE), 0);
	assert_int_equal(boot_get32(zp + ZP_EXT_RAMDISK_SIZE), 0);
	assert_int_equal(boot_get64(zp + ZP_ACPI_RSDP_ADDR), BOOT_ACPI_ADDR);
	assert_int_equal(f->entry.rsdp_addr, BOOT_ACPI_ADDR);
	assert_int_equal(zp[ZP_SENTINEL], 0);
	assert_int_equal(zp[ZP_E820_ENTRIES], 4);
	/* Bytes past the header end (0x26c) are not copied from the image. */
	assert_int_equal(zp[0x26c], 0);
}

/* Before 2.14 the RSDP is found by scanning 0xe0000; the field stays 0. */
static void test_rsdp_field_by_version(void **state)
{
	struct fixture *f = *state;

	boot_put16(f->img + BZ_VERSION, 0x020d);
	f->img[BZ_JUMP + 1] = 0x66;
	assert_int_equal(load(f), 0);
	assert_int_equal(boot_get64(gpa(f, BOOT_PARAMS_ADDR + ZP_ACPI_RSDP_ADDR, 8)), 0);
}

static void check_e820(const uint8_t *e, uint64_t addr, uint64_t size, uint32_t type)
{
	assert_int_equal(boot_get64(e), addr);
	assert_int_equal(boot_get64(e + 8), size);
	assert_int_equal(boot_get32(e + 16), type);
}

static void test_boot_params_e820(void **state)
{
	struct fixture *f = *state;
	const uint8_t *t;

	assert_int_equal(load(f), 0);
	t = gpa(f, BOOT_PARAMS_ADDR + ZP_E820_TABLE, 4 * ZP_E820_ENTRY_SIZE);
	check_e820(t, 0, LOWMEM_END, 1);
	check_e820(t + 20, LOWMEM_END, HIMEM_START - LOWMEM_END, 2);
	check_e820(t + 40, HIMEM_START, GUEST_SIZE - HIMEM_START, 1);
	check_e820(t + 60, IOAPIC_ADDR, MMIO_HOLE_END - IOAPIC_ADDR, 2);
}

/*
 * An 8 GiB guest described over a 32 MiB buffer: without an initrd the
 * loader only writes below 3 MiB, so the fake layout is safe.
 */
static void test_boot_params_e820_8g(void **state)
{
	struct fixture *f = *state;
	const uint8_t *t;

	gmem_layout(&f->mem, f->base, 8 * GiB);
	f->mem.regions[0].size = GUEST_SIZE;	/* what we can really touch */
	f->cfg.initrd = NULL;
	assert_int_equal(load(f), 0);
	assert_int_equal(*gpa(f, BOOT_PARAMS_ADDR + ZP_E820_ENTRIES, 1), 5);
	t = gpa(f, BOOT_PARAMS_ADDR + ZP_E820_TABLE, 5 * ZP_E820_ENTRY_SIZE);
	check_e820(t + 40, HIMEM_START, MMIO_HOLE_START - HIMEM_START, 1);
	check_e820(t + 80, 4 * GiB, 5 * GiB, 1);
}

static void test_gdt(void **state)
{
	struct fixture *f = *state;
	const uint8_t *g;

	assert_int_equal(load(f), 0);
	assert_int_equal(f->entry.gdt_base, BOOT_GDT_ADDR);
	assert_int_equal(f->entry.gdt_limit, 31);
	assert_int_equal(f->entry.cs_selector, 0x10);
	assert_int_equal(f->entry.ds_selector, 0x18);
	g = gpa(f, BOOT_GDT_ADDR, 32);
	assert_int_equal(boot_get64(g), 0);
	assert_int_equal(boot_get64(g + 8), 0);
	/* 0x10: present, DPL0, code exec/read, L=1, D=0, G=1. */
	assert_int_equal(boot_get64(g + 0x10), 0x00af9b000000ffffULL);
	assert_int_equal((g[0x16] >> 5) & 1, 1);	/* L */
	/* 0x18: present, DPL0, data read/write, G=1. */
	assert_int_equal(boot_get64(g + 0x18), 0x00cf93000000ffffULL);
}

/* Walk the identity map like the MMU would, for 2 MiB pages. */
static uint64_t walk(struct fixture *f, uint64_t va)
{
	uint64_t pml4e = boot_get64(gpa(f, f->entry.cr3 + ((va >> 39) & 511) * 8, 8));
	uint64_t pdpte, pde;

	assert_int_equal(pml4e & 1, 1);
	pdpte = boot_get64(gpa(f, (pml4e & ~0xfffULL) + ((va >> 30) & 511) * 8, 8));
	assert_int_equal(pdpte & 0x81, 1);	/* present, not a 1 GiB page */
	pde = boot_get64(gpa(f, (pdpte & ~0xfffULL) + ((va >> 21) & 511) * 8, 8));
	assert_int_equal(pde & 0x83, 0x83);	/* present, writable, 2 MiB */
	return (pde & ~0x1fffffULL) | (va & 0x1fffff);
}

static void test_page_tables(void **state)
{
	struct fixture *f = *state;
	const uint64_t probes[] = {
		0, 0x7000, TIMG_PREF + 0x200, 0x1234567, GiB + 5, 3 * GiB - 1,
		IOAPIC_ADDR, 4 * GiB - 1,
	};

	assert_int_equal(load(f), 0);
	assert_int_equal(f->entry.cr3, BOOT_PGTABLE_ADDR);
	for (size_t i = 0; i < ARRAY_SIZE(probes); i++)
		assert_int_equal(walk(f, probes[i]), probes[i]);
	/* Nothing above 4 GiB is mapped. */
	assert_int_equal(boot_get64(gpa(f, BOOT_PGTABLE_ADDR + 8, 8)), 0);
	assert_int_equal(boot_get64(gpa(f, BOOT_PGTABLE_ADDR + 0x1000 + 4 * 8, 8)), 0);
}

static void checksum_ok(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += p[i];
	assert_int_equal(sum, 0);
}

static void dump_table(const char *sig, const uint8_t *t, size_t len)
{
	const char *dir = getenv("BOOT_TEST_ACPI_DUMP");
	char path[512];
	FILE *out;

	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/%.4s.dat", dir, sig);
	out = fopen(path, "wb");
	if (out) {
		fwrite(t, 1, len, out);
		fclose(out);
	}
}

/* Validate a table at `addr` and return a pointer to it. */
static const uint8_t *table(struct fixture *f, uint64_t addr, const char *sig)
{
	const uint8_t *t = gpa(f, addr, 36);
	uint32_t len = boot_get32(t + 4);

	assert_memory_equal(t, sig, 4);
	assert_true(len >= 36 && addr + len <= BOOT_ACPI_END);
	t = gpa(f, addr, len);
	checksum_ok(t, len);
	dump_table(sig, t, len);
	return t;
}

struct acpi_view {
	const uint8_t *fadt, *dsdt, *madt;
};

static void acpi_walk(struct fixture *f, struct acpi_view *v)
{
	const uint8_t *r = gpa(f, f->entry.rsdp_addr, 36), *x;
	uint32_t n;

	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(r[15], 2);
	assert_int_equal(boot_get32(r + 20), 36);
	checksum_ok(r, 20);
	checksum_ok(r, 36);
	assert_int_equal(f->entry.rsdp_addr % 16, 0);
	x = table(f, boot_get64(r + 24), "XSDT");
	n = (boot_get32(x + 4) - 36) / 8;
	assert_int_equal(n, 2);
	v->fadt = table(f, boot_get64(x + 36), "FACP");
	v->madt = table(f, boot_get64(x + 44), "APIC");
	v->dsdt = table(f, boot_get64(v->fadt + 140), "DSDT");
	assert_int_equal(boot_get32(v->fadt + 40), boot_get64(v->fadt + 140));
}

static void test_acpi_fadt_dsdt(void **state)
{
	struct fixture *f = *state;
	struct acpi_view v;
	const uint8_t *ctl, *sts;

	assert_int_equal(load(f), 0);
	acpi_walk(f, &v);
	assert_int_equal(boot_get32(v.fadt + 4), 276);
	assert_int_equal(v.fadt[8], 6);
	assert_true(boot_get32(v.fadt + 112) & (1u << 20));	/* HW_REDUCED_ACPI */
	ctl = v.fadt + 244;
	sts = v.fadt + 256;
	assert_int_equal(ctl[0], 1);				/* SystemIO */
	assert_int_equal(ctl[1], 8);
	assert_int_equal(boot_get64(ctl + 4), PORT_ACPI_SLEEP_CTL);
	assert_int_equal(sts[0], 1);
	assert_int_equal(boot_get64(sts + 4), PORT_ACPI_SLEEP_STS);
	assert_int_equal(boot_get64(v.fadt + 116 + 4), PORT_I8042_CMD);	/* RESET_REG */
	assert_int_equal(v.fadt[128], 0xfe);
	/* \_S5_ package: SLP_TYPa = 5. */
	assert_memory_equal(v.dsdt + 36, "\x08_S5_\x12\x08\x04\x0a\x05", 10);
	/* \_SB_.COM1 with _HID EisaId("PNP0501") = 0x0105d041. */
	assert_non_null(memmem(v.dsdt, boot_get32(v.dsdt + 4), "COM1\x08_HID\x0c\x41\xd0\x05\x01", 14));
}

static unsigned madt_count(const uint8_t *m, uint8_t type)
{
	uint32_t len = boot_get32(m + 4);
	unsigned n = 0;

	for (uint32_t off = 44; off < len; off += m[off + 1]) {
		assert_true(m[off + 1] >= 2 && off + m[off + 1] <= len);
		n += m[off] == type;
	}
	return n;
}

static void check_madt(struct fixture *f, unsigned cpus)
{
	struct acpi_view v;
	uint32_t len;

	f->cfg.nr_cpus = cpus;
	assert_int_equal(load(f), 0);
	acpi_walk(f, &v);
	len = boot_get32(v.madt + 4);
	assert_int_equal(boot_get32(v.madt + 36), LAPIC_ADDR);
	assert_int_equal(boot_get32(v.madt + 40), 1);		/* PCAT_COMPAT */
	assert_int_equal(madt_count(v.madt, 0), cpus);
	assert_int_equal(madt_count(v.madt, 1), 1);
	assert_int_equal(madt_count(v.madt, 2), 1);
	for (unsigned i = 0; i < cpus; i++) {
		const uint8_t *e = v.madt + 44 + 8 * i;

		assert_int_equal(e[3], i);			/* APIC ID */
		assert_int_equal(boot_get32(e + 4), 1);		/* enabled */
	}
	/* IOAPIC then IRQ0 -> GSI2 right after the CPUs. */
	assert_int_equal(boot_get32(v.madt + 44 + 8 * cpus + 4), IOAPIC_ADDR);
	assert_int_equal(boot_get32(v.madt + 44 + 8 * cpus + 8), 0);
	assert_int_equal(v.madt[44 + 8 * cpus + 12 + 3], 0);
	assert_int_equal(boot_get32(v.madt + 44 + 8 * cpus + 12 + 4), 2);
	assert_int_equal(len, 44 + 8 * cpus + 12 + 10 + 6);
}

static void test_acpi_madt_1(void **state)
{
	check_madt(*state, 1);
}

static void test_acpi_madt_8(void **state)
{
	check_madt(*state, 8);
}

static void test_acpi_madt_max(void **state)
{
	struct fixture *f = *state;

	check_madt(f, BOOT_MAX_CPUS);
	f->cfg.nr_cpus = 0;
	expect_fail(f, -EINVAL, "nr_cpus 0 out of range 1..254");
	f->cfg.nr_cpus = BOOT_MAX_CPUS + 1;
	expect_fail(f, -EINVAL, "nr_cpus 255");
}

/* A guest too small for the low boot structures is refused cleanly. */
static void test_tiny_guest(void **state)
{
	struct fixture *f = *state;

	gmem_layout(&f->mem, f->base, HIMEM_START);
	expect_fail(f, -ENOMEM, "no RAM above 1 MiB");
	gmem_layout(&f->mem, f->base, 2 * MiB + 0x1000);
	expect_fail(f, -ENOMEM, "init_size");
	assert_int_equal(boot_load(NULL, &f->cfg, &f->entry, &f->err), -EINVAL);
	assert_int_equal(boot_load(&f->mem, NULL, &f->entry, NULL), -EINVAL);
}

struct e820_case {
	uint64_t ram;
	int n;
	uint64_t low_end;	/* end of the RAM entry at 1 MiB */
	uint64_t high;		/* size of RAM at 4 GiB, 0 = none */
};

static void test_e820_layouts(void **state)
{
	static const struct e820_case cases[] = {
		{ 64 * MiB, 4, 64 * MiB, 0 },
		{ 512 * MiB, 4, 512 * MiB, 0 },
		{ 3 * GiB, 4, 3 * GiB, 0 },
		{ 4 * GiB, 5, 3 * GiB, 1 * GiB },
		{ 8 * GiB, 5, 3 * GiB, 5 * GiB },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct e820_case *c = &cases[i];
		struct boot_e820_entry t[BOOT_E820_MAX];

		assert_int_equal(boot_e820_build(c->ram, t, BOOT_E820_MAX), c->n);
		assert_true(t[0].addr == 0 && t[0].size == LOWMEM_END && t[0].type == BOOT_E820_RAM);
		assert_true(t[1].addr == LOWMEM_END && t[1].addr + t[1].size == HIMEM_START);
		assert_int_equal(t[1].type, BOOT_E820_RESERVED);
		assert_true(t[2].addr == HIMEM_START && t[2].addr + t[2].size == c->low_end);
		assert_int_equal(t[2].type, BOOT_E820_RAM);
		assert_true(t[3].addr == IOAPIC_ADDR && t[3].addr + t[3].size == 4 * GiB);
		assert_int_equal(t[3].type, BOOT_E820_RESERVED);
		if (c->high) {
			assert_true(t[4].addr == 4 * GiB && t[4].size == c->high);
			assert_int_equal(t[4].type, BOOT_E820_RAM);
		}
		/* RAM entries add up to the guest size, minus the hole below 1 MiB. */
		uint64_t ram = 0;

		for (int j = 0; j < c->n; j++)
			ram += t[j].type == BOOT_E820_RAM ? t[j].size : 0;
		assert_int_equal(ram, c->ram - (HIMEM_START - LOWMEM_END));
	}
}

static void test_e820_errors(void **state)
{
	struct boot_e820_entry t[BOOT_E820_MAX];

	assert_int_equal(boot_e820_build(HIMEM_START, t, BOOT_E820_MAX), -EINVAL);
	assert_int_equal(boot_e820_build(0, t, BOOT_E820_MAX), -EINVAL);
	assert_int_equal(boot_e820_build(UINT64_MAX, t, BOOT_E820_MAX), -EINVAL);
	assert_int_equal(boot_e820_build(64 * MiB, NULL, BOOT_E820_MAX), -EINVAL);
	assert_int_equal(boot_e820_build(64 * MiB, t, 3), -ENOSPC);
	assert_int_equal(boot_e820_build(8 * GiB, t, 4), -ENOSPC);
	assert_int_equal(boot_e820_build(64 * MiB, t, 4), 4);
}

/* The real Debian cloud kernel + initrd into a 256 MiB, 2-vCPU guest. */
static void test_debian_kernel_load(void **state)
{
	struct fixture *f = *state;
	struct guest_mem mem;
	glob_t g;
	uint8_t *base, *kernel, *initrd = NULL;
	size_t klen = 0, ilen = 0;
	char ipath[512];

	if (glob("/boot/vmlinuz-*-cloud-amd64", 0, NULL, &g) != 0 || g.gl_pathc == 0) {
		globfree(&g);
		skip();
	}
	kernel = timg_read_file(g.gl_pathv[0], &klen);
	assert_non_null(kernel);
	snprintf(ipath, sizeof(ipath), "/boot/initrd.img-%s", g.gl_pathv[0] + strlen("/boot/vmlinuz-"));
	initrd = timg_read_file(ipath, &ilen);
	base = tguest_new(&mem, 256 * MiB);
	assert_non_null(base);
	f->cfg = (struct boot_config){
		.kernel = kernel, .kernel_len = klen, .initrd = initrd,
		.initrd_len = initrd ? ilen : 0, .cmdline = "console=ttyS0", .nr_cpus = 2,
	};
	if (boot_load(&mem, &f->cfg, &f->entry, &f->err))
		fail_msg("%s", f->err.msg);
	print_message("# kernel at 0x%llx..0x%llx, initrd %zu bytes at 0x%llx\n",
		      (unsigned long long)f->entry.kernel_load_addr,
		      (unsigned long long)f->entry.kernel_end, ilen,
		      (unsigned long long)f->entry.initrd_addr);
	assert_int_equal(f->entry.kernel_load_addr, 0x1000000);
	assert_true(!initrd || f->entry.initrd_addr >= f->entry.kernel_end);
	assert_int_equal(boot_get64(gmem_ptr(&mem, BOOT_PARAMS_ADDR + ZP_ACPI_RSDP_ADDR, 8)),
			 BOOT_ACPI_ADDR);
	free(base);
	free(initrd);
	free(kernel);
	globfree(&g);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_kernel_placement),
		T(test_non_relocatable),
		T(test_pref_below_1m),
		T(test_kernel_too_big),
		T(test_no_entry64),
		T(test_bad_image),
		T(test_cmdline),
		T(test_cmdline_over_max),
		T(test_initrd_high),
		T(test_initrd_addr_max),
		T(test_initrd_too_big),
		T(test_boot_params),
		T(test_rsdp_field_by_version),
		T(test_boot_params_e820),
		T(test_boot_params_e820_8g),
		T(test_gdt),
		T(test_page_tables),
		T(test_acpi_fadt_dsdt),
		T(test_acpi_madt_1),
		T(test_acpi_madt_8),
		T(test_acpi_madt_max),
		T(test_tiny_guest),
		cmocka_unit_test(test_e820_layouts),
		cmocka_unit_test(test_e820_errors),
		T(test_debian_kernel_load),
	};

	return cmocka_run_group_tests_name("boot_load", tests, NULL, NULL);
}
