/*
 * kvm_test_util.c - the tiny test guest, a single-threaded KVM_RUN driver
 * and stream helpers for the KVM state tests (see kvm_test_util.h).
 */
#include "kvm_test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "boot.h"
#include "util.h"

#define KT_GDT_ADDR	0x500ULL
#define KT_PML4_ADDR	0x9000ULL
#define KT_SEL_CS	0x10
#define KT_SEL_DS	0x18

static char kt_why[256];

/* TERN_KVM_DEVICE (as kvm_open() honours it) lets a run try the skip path. */
const char *kt_kvm_unavailable(void)
{
	const char *dev = getenv("TERN_KVM_DEVICE");
	int fd;

	if (!dev)
		dev = "/dev/kvm";
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return NULL;
	}
	snprintf(kt_why, sizeof(kt_why), "%.64s cannot be opened (%s): KVM tests skipped",
		 dev, strerror(errno));
	return kt_why;
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* GDT (flat 64-bit code, data), page tables mapping 1 GiB, the loop. */
static void kt_write_guest(struct vm *vm)
{
	static const uint8_t code[] = {
		0x48, 0xff, 0xc3,		/* inc %rbx */
		0x48, 0xff, 0x07,		/* incq (%rdi) */
		0xe6, KT_SYNC_PORT,		/* out %al, $KT_SYNC_PORT */
		0xeb, 0xf6,			/* jmp loop */
	};
	uint8_t *gdt = gmem_ptr(&vm->mem, KT_GDT_ADDR, 32);
	uint8_t *pt = gmem_ptr(&vm->mem, KT_PML4_ADDR, 3 * 4096);

	memset(gdt, 0, 32);
	put64(gdt + KT_SEL_CS, 0x00af9b000000ffffULL);
	put64(gdt + KT_SEL_DS, 0x00cf93000000ffffULL);
	memset(pt, 0, 3 * 4096);
	put64(pt, (KT_PML4_ADDR + 0x1000) | 3);
	put64(pt + 0x1000, (KT_PML4_ADDR + 0x2000) | 3);
	for (uint64_t i = 0; i < 512; i++)
		put64(pt + 0x2000 + i * 8, (i << 21) | 0x83);
	memcpy(gmem_ptr(&vm->mem, KT_CODE_ADDR, sizeof(code)), code, sizeof(code));
}

int kt_vm_new(struct vm *vm, unsigned nr_vcpus)
{
	struct vm_config cfg = {
		.mem_size = KT_MEM_SIZE, .nr_vcpus = nr_vcpus, .serial_fd = -1,
	};
	struct err err = { 0 };
	int ret = vm_create(vm, &cfg, &err);

	if (ret) {
		fprintf(stderr, "vm_create: %s\n", err_msg(&err));
		vm_destroy(vm);
		return ret;
	}
	kt_write_guest(vm);
	return 0;
}

uint64_t *kt_counter(struct vm *vm, unsigned i)
{
	return gmem_ptr(&vm->mem, KT_DATA_ADDR + 64 * i, 8);
}

int kt_vcpu_enter(struct vm *vm, unsigned i, uint64_t rbx0)
{
	struct boot_entry be = {
		.rip = KT_CODE_ADDR, .cr3 = KT_PML4_ADDR, .gdt_base = KT_GDT_ADDR,
		.gdt_limit = 31, .cs_selector = KT_SEL_CS, .ds_selector = KT_SEL_DS,
	};
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
	struct kvm_regs r;
	struct err err = { 0 };

	if (vcpu_setup_boot(&vm->vcpus[i], &be, &err)) {
		fprintf(stderr, "vcpu_setup_boot: %s\n", err_msg(&err));
		return err.code;
	}
	if (kt_get_regs(vm, i, &r))
		return -errno;
	r.rbx = rbx0;
	r.rdi = KT_DATA_ADDR + 64 * i;
	r.rax = 0x1111 * (i + 1);
	r.r12 = 0x0123456789abcdefULL ^ i;
	r.r15 = 0xfedcba9876543210ULL + i;
	if (kt_set_regs(vm, i, &r))
		return -errno;
	if (ioctl(vm->vcpus[i].kfd.fd, KVM_SET_MP_STATE, &mp) < 0)
		return -errno;
	return 0;
}

int kt_run_syncs(struct vm *vm, unsigned i, unsigned n)
{
	struct kvm_run *run = vm->vcpus[i].kfd.run;
	unsigned k = 0;

	while (k < n) {
		if (ioctl(vm->vcpus[i].kfd.fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (run->exit_reason == KVM_EXIT_IO && run->io.port == KT_SYNC_PORT)
			k++;
		else if (run->exit_reason != KVM_EXIT_IO &&
			 run->exit_reason != KVM_EXIT_INTR) {
			fprintf(stderr, "vCPU %u: unexpected exit %u\n", i, run->exit_reason);
			return -EIO;
		}
	}
	return 0;
}

int kt_park(struct vm *vm, unsigned i)
{
	struct kvm_run *run = vm->vcpus[i].kfd.run;
	int ret;

	run->immediate_exit = 1;
	ret = ioctl(vm->vcpus[i].kfd.fd, KVM_RUN, 0);
	run->immediate_exit = 0;
	if (ret == 0)
		return -EIO;
	return errno == EINTR ? 0 : -errno;
}

void kt_copy_ram(struct vm *dst, const struct vm *src)
{
	memcpy(dst->mem.base, src->mem.base, KT_COPY_BYTES);
}

int kt_get_regs(struct vm *vm, unsigned i, struct kvm_regs *r)
{
	return ioctl(vm->vcpus[i].kfd.fd, KVM_GET_REGS, r) < 0 ? -errno : 0;
}

int kt_set_regs(struct vm *vm, unsigned i, struct kvm_regs *r)
{
	return ioctl(vm->vcpus[i].kfd.fd, KVM_SET_REGS, r) < 0 ? -errno : 0;
}

/* One MSR: a kvm_msrs header and its entry in an aligned buffer. */
static int kt_msr_ioctl(struct vm *vm, unsigned i, unsigned long req,
			uint32_t index, uint64_t *v)
{
	uint64_t buf[(sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)) / 8 + 1];
	struct kvm_msrs *m = (struct kvm_msrs *)buf;

	memset(buf, 0, sizeof(buf));
	m->nmsrs = 1;
	m->entries[0].index = index;
	m->entries[0].data = *v;
	if (ioctl(vm->vcpus[i].kfd.fd, req, m) != 1)
		return -EINVAL;
	*v = m->entries[0].data;
	return 0;
}

int kt_get_msr(struct vm *vm, unsigned i, uint32_t index, uint64_t *v)
{
	*v = 0;
	return kt_msr_ioctl(vm, i, KVM_GET_MSRS, index, v);
}

int kt_set_msr(struct vm *vm, unsigned i, uint32_t index, uint64_t v)
{
	return kt_msr_ioctl(vm, i, KVM_SET_MSRS, index, &v);
}

/* ---- streams ---- */

int kt_save(struct vm *vm, struct mig_stream *out, struct err *err)
{
	struct mig_header h;
	int ret;

	mig_stream_init_mem_writer(out, 0);
	mig_header_init(&h, 4096);
	ret = mig_stream_put_header(out, &h);
	if (ret)
		return mig_stream_get_err(out, err);
	ret = vm_state_save(vm, out, err);
	if (ret)
		return ret;
	ret = mig_stream_put_eof(out);
	return ret ? mig_stream_get_err(out, err) : 0;
}

static int on_section_load(void *ctx, const struct mig_section_info *info,
			   struct mig_stream *in, struct err *err)
{
	return vm_state_load_section(ctx, info, in, err);
}

int kt_load(struct vm *vm, const void *data, size_t len, struct err *err)
{
	const struct mig_load_ops ops = { .on_section = on_section_load };
	struct vm_state_loader *l = vm_state_loader_new(vm);
	struct mig_stream in;
	int ret;

	if (!l)
		return err_set(err, -ENOMEM, "vm_state_loader_new");
	mig_stream_init_mem_reader(&in, data, len);
	ret = mig_load(&in, &ops, l, err);
	if (!ret)
		ret = vm_state_load_finish(l, err);
	mig_stream_fini(&in);
	vm_state_loader_free(l);
	return ret;
}

static int on_section_split(void *ctx, const struct mig_section_info *info,
			    struct mig_stream *in, struct err *err)
{
	struct kt_sections *ss = ctx;
	struct kt_section *s;
	size_t len = mig_stream_remaining(in);

	if (ss->n >= ARRAY_SIZE(ss->s))
		return err_set(err, -ENOSPC, "too many sections for the test");
	s = &ss->s[ss->n];
	s->info = *info;
	s->len = len;
	s->data = malloc(len ? len : 1);
	if (!s->data)
		return err_set(err, -ENOMEM, "out of memory");
	mig_stream_get_bytes(in, s->data, len);
	ss->n++;
	return 0;
}

int kt_split(const void *data, size_t len, struct kt_sections *out,
	     struct err *err)
{
	const struct mig_load_ops ops = { .on_section = on_section_split };
	struct mig_stream in;
	int ret;

	memset(out, 0, sizeof(*out));
	mig_stream_init_mem_reader(&in, data, len);
	ret = mig_load(&in, &ops, out, err);
	mig_stream_fini(&in);
	return ret;
}

void kt_sections_free(struct kt_sections *ss)
{
	for (size_t i = 0; i < ss->n; i++)
		free(ss->s[i].data);
	ss->n = 0;
}

struct kt_section *kt_find(struct kt_sections *ss, const char *idstr,
			   uint32_t instance)
{
	for (size_t i = 0; i < ss->n; i++)
		if (!strcmp(ss->s[i].info.idstr, idstr) &&
		    ss->s[i].info.instance_id == instance)
			return &ss->s[i];
	return NULL;
}

int kt_load_sections(struct vm *vm, struct kt_section *s, size_t n, int skip,
		     struct err *err)
{
	struct vm_state_loader *l = vm_state_loader_new(vm);
	int ret = 0;

	if (!l)
		return err_set(err, -ENOMEM, "vm_state_loader_new");
	for (size_t i = 0; !ret && i < n; i++) {
		struct mig_stream in;

		if ((int)i == skip)
			continue;
		mig_stream_init_mem_reader(&in, s[i].data, s[i].len);
		ret = vm_state_load_section(l, &s[i].info, &in, err);
		mig_stream_fini(&in);
	}
	if (!ret)
		ret = vm_state_load_finish(l, err);
	vm_state_loader_free(l);
	return ret;
}

bool kt_tlv_find(const uint8_t *p, size_t len, uint16_t id, size_t *off,
		 uint32_t *flen)
{
	size_t pos = 0;

	while (len - pos >= 7) {
		uint16_t fid;
		uint32_t l;

		memcpy(&fid, p + pos, 2);
		memcpy(&l, p + pos + 3, 4);
		if (l > len - pos - 7)
			return false;
		if (fid == id) {
			*off = pos + 7;
			*flen = l;
			return true;
		}
		pos += 7 + (size_t)l;
	}
	return false;
}
