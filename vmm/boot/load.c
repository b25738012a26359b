/*
 * load.c - boot_load(): put a bzImage, its initrd and command line into
 * guest memory and describe the BSP's 64-bit entry state.
 *
 * Placement (the reasoning is in docs/boot.md):
 *   kernel   at pref_address (1 MiB if the header's is below 1 MiB); the
 *            range it needs while decompressing, [load, run + init_size),
 *            must lie in RAM below MMIO_HOLE_START
 *   cmdline  at BOOT_CMDLINE_ADDR, at most min(cmdline_size, 64 KiB - 1)
 *   initrd   page-aligned, as high as possible below
 *            min(initrd_addr_max + 1, low RAM top), above the kernel range
 *   boot_params at BOOT_PARAMS_ADDR, ACPI at BOOT_ACPI_ADDR, GDT and page
 *            tables at BOOT_GDT_ADDR / BOOT_PGTABLE_ADDR
 * Everything is checked before the first byte is written into the guest.
 */
#include <errno.h>
#include <string.h>

#include "boot_priv.h"
#include "layout.h"

struct boot_plan {
	struct bzimage_info info;
	uint64_t low_top;	/* end of RAM below the MMIO hole */
	uint64_t load;		/* where the kernel image is copied */
	uint64_t kernel_end;	/* end of [load, run + init_size) */
	uint64_t initrd;	/* 0 = none */
	size_t cmdline_len;
	uint64_t rsdp;
};

static uint64_t low_ram_top(const struct guest_mem *mem)
{
	if (mem->nr_regions == 0 || mem->regions[0].gpa != 0)
		return 0;
	return MIN(mem->regions[0].size, MMIO_HOLE_START);
}

/*
 * A relocatable 64-bit kernel decompresses at its load address rounded up
 * to kernel_alignment, but never below LOAD_PHYSICAL_ADDR, which the header
 * publishes as pref_address; a non-relocatable one always runs there.
 */
static int plan_kernel(struct boot_plan *p, struct err *err)
{
	const struct bzimage_info *in = &p->info;
	uint64_t run;

	p->load = in->pref_address >= HIMEM_START ? in->pref_address : HIMEM_START;
	if (p->load >= p->low_top)
		return err_set(err, -ENOMEM,
			       "boot: kernel load address 0x%llx is above low RAM end 0x%llx",
			       (unsigned long long)p->load, (unsigned long long)p->low_top);
	run = in->relocatable ? ALIGN_UP(p->load, (uint64_t)in->kernel_alignment) : p->load;
	run = MAX(run, in->pref_address);
	p->kernel_end = MAX(p->load + in->kernel_size, run + in->init_size);
	if (p->kernel_end > p->low_top)
		return err_set(err, -ENOMEM,
			       "boot: kernel needs 0x%llx-0x%llx (init_size 0x%x) but low RAM ends at 0x%llx",
			       (unsigned long long)p->load, (unsigned long long)p->kernel_end,
			       in->init_size, (unsigned long long)p->low_top);
	return 0;
}

static int plan_cmdline(struct boot_plan *p, const char *cmdline, struct err *err)
{
	size_t max = MIN((size_t)p->info.cmdline_size, (size_t)BOOT_CMDLINE_MAX - 1);
	const char *limit = max == p->info.cmdline_size ? "kernel cmdline_size" : "BOOT_CMDLINE_MAX";

	p->cmdline_len = cmdline ? strnlen(cmdline, BOOT_CMDLINE_MAX) : 0;
	if (p->cmdline_len > max)
		return err_set(err, -E2BIG, "boot: command line is %s%zu bytes, limit %zu (%s)",
			       p->cmdline_len >= BOOT_CMDLINE_MAX ? ">= " : "", p->cmdline_len, max,
			       limit);
	return 0;
}

static int plan_initrd(struct boot_plan *p, size_t len, struct err *err)
{
	uint64_t top = MIN((uint64_t)p->info.initrd_addr_max + 1, p->low_top);
	char sz[32];

	p->initrd = 0;
	if (len == 0)
		return 0;
	if (len <= top)
		p->initrd = ALIGN_DOWN(top - len, BOOT_PAGE_SIZE);
	if (len > top || p->initrd < p->kernel_end) {
		p->initrd = 0;
		return err_set(err, -ENOMEM,
			       "boot: initrd (%s) does not fit below 0x%llx above the kernel (ends 0x%llx)",
			       fmt_bytes(len, sz, sizeof(sz)), (unsigned long long)top,
			       (unsigned long long)p->kernel_end);
	}
	return 0;
}

static int plan_boot(struct boot_plan *p, const struct guest_mem *mem,
		     const struct boot_config *cfg, struct err *err)
{
	int rc = bzimage_parse(cfg->kernel, cfg->kernel_len, &p->info, err);

	if (rc)
		return rc;
	if (!p->info.has_entry64)
		return err_set(err, -ENOTSUP,
			       "bzImage: protocol %u.%02u xloadflags 0x%x: no 64-bit entry (need >= 2.12 with XLF_KERNEL_64)",
			       p->info.version >> 8, p->info.version & 0xff, p->info.xloadflags);
	p->low_top = low_ram_top(mem);
	if (p->low_top <= HIMEM_START)
		return err_set(err, -ENOMEM, "boot: guest has no RAM above 1 MiB");
	if (cfg->nr_cpus == 0 || cfg->nr_cpus > BOOT_MAX_CPUS)
		return err_set(err, -EINVAL, "boot: nr_cpus %u out of range 1..%d",
			       cfg->nr_cpus, BOOT_MAX_CPUS);
	rc = plan_kernel(p, err);
	if (!rc)
		rc = plan_cmdline(p, cfg->cmdline, err);
	if (!rc)
		rc = plan_initrd(p, cfg->initrd ? cfg->initrd_len : 0, err);
	return rc;
}

static int copy_in(struct guest_mem *mem, uint64_t gpa, const void *src, size_t len,
		   const char *what, struct err *err)
{
	uint8_t *dst = gmem_ptr(mem, gpa, len);

	if (!dst)
		return err_set(err, -ENOMEM, "boot: %s at 0x%llx (+0x%zx) is outside guest RAM",
			       what, (unsigned long long)gpa, len);
	memcpy(dst, src, len);
	return 0;
}

static int copy_payloads(struct guest_mem *mem, const struct boot_config *cfg,
			 const struct boot_plan *p, struct err *err)
{
	uint8_t *cmd = gmem_ptr(mem, BOOT_CMDLINE_ADDR, p->cmdline_len + 1);
	int rc;

	if (!cmd)
		return err_set(err, -ENOMEM, "boot: command line at 0x%llx is outside guest RAM",
			       BOOT_CMDLINE_ADDR);
	if (p->cmdline_len)
		memcpy(cmd, cfg->cmdline, p->cmdline_len);
	cmd[p->cmdline_len] = '\0';
	rc = copy_in(mem, p->load, cfg->kernel + p->info.setup_len, p->info.kernel_size,
		     "kernel", err);
	if (!rc && p->initrd)
		rc = copy_in(mem, p->initrd, cfg->initrd, cfg->initrd_len, "initrd", err);
	return rc;
}

static void zp_e820(uint8_t *zp, uint64_t ram_size)
{
	struct boot_e820_entry tab[BOOT_E820_MAX];
	int n = boot_e820_build(ram_size, tab, BOOT_E820_MAX);

	for (int i = 0; i < n; i++) {
		uint8_t *e = zp + ZP_E820_TABLE + i * ZP_E820_ENTRY_SIZE;

		boot_put64(e, tab[i].addr);
		boot_put64(e + 8, tab[i].size);
		boot_put32(e + 16, tab[i].type);
	}
	zp[ZP_E820_ENTRIES] = (uint8_t)(n > 0 ? n : 0);
}

static int build_zero_page(struct guest_mem *mem, const struct boot_config *cfg,
			   const struct boot_plan *p, struct err *err)
{
	uint8_t *zp = gmem_ptr(mem, BOOT_PARAMS_ADDR, ZP_SIZE);
	size_t hdr_end = MIN(p->info.hdr_end, (size_t)BZ_HDR_END_MAX);

	if (!zp)
		return err_set(err, -ENOMEM, "boot: boot_params at 0x%llx is outside guest RAM",
			       BOOT_PARAMS_ADDR);
	memset(zp, 0, ZP_SIZE);
	memcpy(zp + BZ_SETUP_SECTS, cfg->kernel + BZ_SETUP_SECTS, hdr_end - BZ_SETUP_SECTS);
	zp[BZ_TYPE_OF_LOADER] = BOOT_LOADER_TYPE;
	zp[BZ_LOADFLAGS] = (uint8_t)((p->info.loadflags & ~BZ_KEEP_SEGMENTS) | BZ_CAN_USE_HEAP);
	boot_put16(zp + BZ_HEAP_END_PTR, BOOT_HEAP_END_PTR);
	boot_put32(zp + BZ_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_ADDR);
	boot_put32(zp + ZP_EXT_CMD_LINE_PTR, (uint32_t)(BOOT_CMDLINE_ADDR >> 32));
	boot_put32(zp + BZ_RAMDISK_IMAGE, (uint32_t)p->initrd);
	boot_put32(zp + ZP_EXT_RAMDISK_IMAGE, (uint32_t)(p->initrd >> 32));
	boot_put32(zp + BZ_RAMDISK_SIZE, p->initrd ? (uint32_t)cfg->initrd_len : 0);
	boot_put32(zp + ZP_EXT_RAMDISK_SIZE,
		   p->initrd ? (uint32_t)((uint64_t)cfg->initrd_len >> 32) : 0);
	if (p->info.version >= 0x20e)
		boot_put64(zp + ZP_ACPI_RSDP_ADDR, p->rsdp);
	zp_e820(zp, mem->size);
	return 0;
}

static void fill_entry(struct boot_entry *e, const struct boot_plan *p)
{
	memset(e, 0, sizeof(*e));
	e->rip = p->load + BZ_ENTRY64_OFFSET;
	e->rsi = BOOT_PARAMS_ADDR;
	e->cr3 = BOOT_PGTABLE_ADDR;
	e->gdt_base = BOOT_GDT_ADDR;
	e->gdt_limit = BOOT_GDT_ENTRIES * 8 - 1;
	e->cs_selector = BOOT_CS;
	e->ds_selector = BOOT_DS;
	e->kernel_load_addr = p->load;
	e->initrd_addr = p->initrd;
	e->kernel_end = p->kernel_end;
	e->rsdp_addr = p->rsdp;
}

int boot_load(struct guest_mem *mem, const struct boot_config *cfg,
	      struct boot_entry *entry, struct err *err)
{
	struct boot_plan p;
	int rc;

	if (!mem || !cfg || !entry || !cfg->kernel)
		return err_set(err, -EINVAL, "boot: no guest memory, config or kernel");
	memset(&p, 0, sizeof(p));
	rc = plan_boot(&p, mem, cfg, err);
	if (!rc)
		rc = copy_payloads(mem, cfg, &p, err);
	if (!rc)
		rc = boot_acpi_build(mem, cfg->nr_cpus, &p.rsdp, err);
	if (!rc)
		rc = build_zero_page(mem, cfg, &p, err);
	if (!rc)
		rc = boot_gdt_build(mem, err);
	if (!rc)
		rc = boot_pgtable_build(mem, err);
	if (!rc)
		fill_entry(entry, &p);
	return rc;
}
