/*
 * dirtylog.c - micro-benchmark of tern's two dirty-tracking backends (the
 * KVM dirty bitmap and the KVM dirty ring) through vmm/migratable.h, with
 * a tiny ring-3 guest, so the numbers are what the migration engine pays.
 *
 * The guest stores one word into each of the first N pages of its test
 * area whenever the host asks (a round), then reports the round done. The
 * host first has it touch the whole area (every page mapped), turns
 * logging on, re-arms all of RAM (the engine's pass 1), then for each N:
 * one round, pause, and a "sync" as the engine does it: get every block,
 * clear the bits it got. Printed per N: the guest's time per page (the
 * write-fault cost with logging on), the get, clear and sync times.
 *
 *   TERN_DIRTY_LOG=ring|bitmap dirtylog [MEMORY (default 1G)] [REPEAT (3)]
 *
 * Build and run: bench/dirtylog/run.sh (links a meson build's libraries).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "boot/boot.h"
#include "dirty_ring.h"
#include "migratable.h"
#include "util.h"

#define GDT_GPA		0x500ULL
#define CTL_GPA		0x1000ULL	/* go, npages, done words */
#define PT_GPA		0x10000ULL	/* PML4, PDPT, then one PD per GiB */
#define CODE_GPA	0x100000ULL
#define AREA_GPA	(16ULL << 20)	/* first test page */

/*
 * Ring-0 stub: iretq to ring 3. Ring 3 (r11 = rounds done, rdi = area,
 * rsi = control page): wait until go != r11, store go into the first
 * npages pages, done = r11 = go, wait again.
 */
__asm__(".pushsection .rodata\n"
	".globl dl_guest_start, dl_guest_end\n"
	"dl_guest_start:\n"
	"	pushq $0x23\n"
	"	pushq $0x8000\n"
	"	pushq $0x2\n"
	"	pushq $0x2b\n"
	"	leaq 1f(%rip), %rax\n"
	"	pushq %rax\n"
	"	iretq\n"
	"1:	mov (%rsi), %rax\n"
	"	cmp %rax, %r11\n"
	"	je 1b\n"
	"	mov 8(%rsi), %rcx\n"
	"	mov %rdi, %rdx\n"
	"2:	test %rcx, %rcx\n"
	"	jz 3f\n"
	"	mov %rax, (%rdx)\n"
	"	add $4096, %rdx\n"
	"	dec %rcx\n"
	"	jmp 2b\n"
	"3:	mov %rax, %r11\n"
	"	mov %rax, 16(%rsi)\n"
	"	jmp 1b\n"
	"dl_guest_end:\n"
	".popsection\n");
extern const uint8_t dl_guest_start[], dl_guest_end[];

struct bench {
	struct vm vm;
	volatile uint64_t *ctl;		/* go, npages, done */
	uint64_t area_pages;
	uint64_t *bitmap[GMEM_MAX_REGIONS];
	uint64_t round;
};

static void die(const char *what, const struct err *err)
{
	fprintf(stderr, "dirtylog: %s: %s\n", what, err_msg(err));
	exit(1);
}

static void put64(struct vm *vm, uint64_t gpa, uint64_t v)
{
	memcpy(gmem_ptr(&vm->mem, gpa, 8), &v, 8);
}

/* 2 MiB identity pages over the first gib GiB, user-accessible. */
static void write_tables(struct vm *vm, unsigned gib)
{
	put64(vm, PT_GPA, (PT_GPA + 0x1000) | 7);
	for (unsigned g = 0; g < gib; g++) {
		uint64_t pd = PT_GPA + 0x2000 + g * 0x1000ULL;

		put64(vm, PT_GPA + 0x1000 + g * 8, pd | 7);
		for (uint64_t i = 0; i < 512; i++)
			put64(vm, pd + i * 8, (((uint64_t)g << 30) + (i << 21)) | 0x87);
	}
	put64(vm, GDT_GPA + 0x10, 0x00af9b000000ffffULL);	/* kernel code */
	put64(vm, GDT_GPA + 0x18, 0x00cf93000000ffffULL);	/* kernel data */
	put64(vm, GDT_GPA + 0x20, 0x00cff3000000ffffULL);	/* user data */
	put64(vm, GDT_GPA + 0x28, 0x00affb000000ffffULL);	/* user code */
}

static void setup_guest(struct bench *b)
{
	struct boot_entry be = {
		.rip = CODE_GPA, .cr3 = PT_GPA, .gdt_base = GDT_GPA, .gdt_limit = 47,
		.cs_selector = 0x10, .ds_selector = 0x18,
	};
	struct kvm_regs r;
	struct err err = { 0 };
	int fd = b->vm.vcpus[0].kfd.fd;

	write_tables(&b->vm, (unsigned)((b->vm.mem.size + (1ULL << 30) - 1) >> 30));
	memcpy(gmem_ptr(&b->vm.mem, CODE_GPA, dl_guest_end - dl_guest_start),
	       dl_guest_start, dl_guest_end - dl_guest_start);
	b->ctl = gmem_ptr(&b->vm.mem, CTL_GPA, 24);
	if (vcpu_setup_boot(&b->vm.vcpus[0], &be, &err))
		die("vcpu_setup_boot", &err);
	if (ioctl(fd, KVM_GET_REGS, &r) < 0)
		die("KVM_GET_REGS", NULL);
	r.rdi = AREA_GPA;
	r.rsi = CTL_GPA;
	r.r11 = 0;
	if (ioctl(fd, KVM_SET_REGS, &r) < 0)
		die("KVM_SET_REGS", NULL);
}

/* One round over n pages; returns the guest's wall time in ns. */
static uint64_t round_run(struct bench *b, uint64_t n)
{
	struct err err = { 0 };
	uint64_t t0;

	b->ctl[1] = n;
	__atomic_store_n(&b->ctl[0], ++b->round, __ATOMIC_RELEASE);
	t0 = time_now_ns();
	if (vm_resume(&b->vm, &err) && err.code != -EALREADY)
		die("vm_resume", &err);
	while (__atomic_load_n(&b->ctl[2], __ATOMIC_ACQUIRE) != b->round)
		;
	t0 = time_now_ns() - t0;
	if (vm_pause(&b->vm, &err))
		die("vm_pause", &err);
	return t0;
}

/* The engine's sync: get every block, then clear what it got. */
static void sync_all(struct bench *b, uint64_t *get_ns, uint64_t *clear_ns,
		     uint64_t *dirty)
{
	struct err err = { 0 };
	uint64_t t0 = time_now_ns();

	*dirty = 0;
	for (unsigned i = 0; i < b->vm.mem.nr_regions; i++)
		if (vm_dirty_log_get(&b->vm, i, b->bitmap[i], &err))
			die("vm_dirty_log_get", &err);
	*get_ns = time_now_ns() - t0;
	t0 = time_now_ns();
	for (unsigned i = 0; i < b->vm.mem.nr_regions; i++) {
		uint64_t np = b->vm.mem.regions[i].size / 4096;

		for (uint64_t w = 0; w < (np + 63) / 64; w++)
			*dirty += __builtin_popcountll(b->bitmap[i][w]);
		if (vm_dirty_log_clear(&b->vm, i, 0, np, b->bitmap[i], &err))
			die("vm_dirty_log_clear", &err);
	}
	*clear_ns = time_now_ns() - t0;
}

static void bench_init(struct bench *b, uint64_t mem)
{
	struct vm_config cfg = { .mem_size = mem, .nr_vcpus = 1, .serial_fd = -1 };
	struct err err = { 0 };

	if (vm_create(&b->vm, &cfg, &err))
		die("vm_create", &err);
	for (unsigned i = 0; i < b->vm.mem.nr_regions; i++) {
		b->bitmap[i] = calloc(b->vm.mem.regions[i].size / 4096 / 64 + 1, 8);
		if (!b->bitmap[i])
			die("out of memory", NULL);
	}
	b->area_pages = (b->vm.mem.regions[0].size - AREA_GPA) / 4096;
	setup_guest(b);
	if (vm_start(&b->vm, &err))
		die("vm_start", &err);
}

int main(int argc, char **argv)
{
	static const uint64_t counts[] = { 0, 1024, 16384, 65536, 262144 };
	uint64_t mem = 1ULL << 30, t0, start_ns, rearm_ns, base_ns, g, c, d;
	unsigned repeat = argc > 2 ? (unsigned)atoi(argv[2]) : 3;
	struct err err = { 0 };
	struct dirty_ring_stats st;
	struct bench b;

	if (argc > 1 && parse_size(argv[1], &mem))
		die("bad memory size", NULL);
	memset(&b, 0, sizeof(b));
	bench_init(&b, mem);
	round_run(&b, b.area_pages);		/* every page mapped, no logging */
	base_ns = round_run(&b, b.area_pages);	/* again: the cost without logging */
	t0 = time_now_ns();
	if (vm_dirty_log_start(&b.vm, &err))
		die("vm_dirty_log_start", &err);
	start_ns = time_now_ns() - t0;
	t0 = time_now_ns();
	sync_all(&b, &g, &c, &d);		/* re-arm all (pass 1) */
	rearm_ns = time_now_ns() - t0;
	dirty_ring_get_stats(&b.vm, &st);
	printf("backend %s, memory %llu MiB, %llu test pages\n",
	       b.vm.dirty_ring ? "ring" : "bitmap", (unsigned long long)(mem >> 20),
	       (unsigned long long)b.area_pages);
	printf("guest without logging %.3f us/page\n", (double)base_ns / 1e3 / b.area_pages);
	printf("start %.3f ms, first re-arm of all RAM %.3f ms\n", start_ns / 1e6, rearm_ns / 1e6);
	printf("%8s %8s %10s %10s %10s %10s\n", "pages", "dirty", "guest/pg", "get ms",
	       "clear ms", "sync ms");
	for (unsigned k = 0; k < ARRAY_SIZE(counts); k++) {
		uint64_t n = counts[k] < b.area_pages ? counts[k] : b.area_pages;

		for (unsigned r = 0; r < repeat; r++) {
			uint64_t ns = round_run(&b, n);

			sync_all(&b, &g, &c, &d);
			printf("%8llu %8llu %9.2fus %10.3f %10.3f %10.3f\n",
			       (unsigned long long)n, (unsigned long long)d,
			       n ? ns / 1e3 / n : 0.0, g / 1e6, c / 1e6, (g + c) / 1e6);
		}
	}
	dirty_ring_get_stats(&b.vm, &st);
	if (b.vm.dirty_ring)
		printf("ring: %u entries/vCPU, %llu harvested, %llu ring-full exits\n", st.entries,
		       (unsigned long long)st.harvested, (unsigned long long)st.full_exits);
	vm_destroy(&b.vm);
	for (unsigned i = 0; i < GMEM_MAX_REGIONS; i++)
		free(b.bitmap[i]);
	return 0;
}
