/*
 * kvm.c - /dev/kvm system and VM set-up: API version, capabilities, the
 * in-kernel irqchip and PIT, memory slots, vCPU fds and their CPUID.
 */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpu_models.h"
#include "log.h"

/* Fixed addresses KVM needs on Intel for real-mode emulation helpers. */
#define KVM_IDENTITY_MAP_ADDR	0xfffbc000ULL
#define KVM_TSS_ADDR		0xfffbd000ULL

int kvm_ioctl_err(struct err *err, const char *name)
{
	int e = errno ? errno : EIO;

	return err_set(err, -e, "%s failed: %s", name, strerror(e));
}

int kvm_check_cap(struct kvm *kvm, long cap)
{
	return ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, cap);
}

int kvm_vm_check_cap(struct kvm *kvm, long cap)
{
	return ioctl(kvm->vm_fd, KVM_CHECK_EXTENSION, cap);
}

static int kvm_open_dev(const char *dev, struct err *err)
{
	int fd = open(dev, O_RDWR | O_CLOEXEC);

	if (fd >= 0)
		return fd;
	if (errno == ENOENT)
		return err_set(err, -ENOENT,
			       "%s does not exist: is KVM enabled (kvm_intel/kvm_amd module loaded, virtualization on in the BIOS)?",
			       dev);
	if (errno == EACCES || errno == EPERM)
		return err_set(err, -errno,
			       "cannot open %s: permission denied (run as root or join the 'kvm' group)",
			       dev);
	return err_set(err, -errno, "cannot open %s: %s", dev, strerror(errno));
}

static struct kvm_cpuid2 *kvm_get_supported_cpuid(int sys_fd)
{
	for (int n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(sys_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG)
			return NULL;
	}
	return NULL;
}

int kvm_open(struct kvm *kvm, const char *dev, struct err *err)
{
	struct stat st;
	int ret;

	memset(kvm, 0, sizeof(*kvm));
	kvm->vm_fd = -1;
	/* TERN_KVM_DEVICE: test facility to point at another device node */
	if (!dev)
		dev = getenv("TERN_KVM_DEVICE");
	kvm->sys_fd = kvm_open_dev(dev ? dev : "/dev/kvm", err);
	if (kvm->sys_fd < 0)
		return kvm->sys_fd;
	ret = ioctl(kvm->sys_fd, KVM_GET_API_VERSION, 0);
	if (ret != KVM_API_VERSION) {
		err_set(err, -EINVAL, "/dev/kvm: unsupported KVM API version %d (want %d)",
			ret, KVM_API_VERSION);
		goto fail;
	}
	static const struct { long cap; const char *name; } required[] = {
		{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
		{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
		{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		if (kvm_check_cap(kvm, required[i].cap) <= 0) {
			err_set(err, -ENOTSUP, "/dev/kvm lacks %s, which tern-vmm needs",
				required[i].name);
			goto fail;
		}
	}
	kvm->run_size = ioctl(kvm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (kvm->run_size <= 0) {
		kvm_ioctl_err(err, "KVM_GET_VCPU_MMAP_SIZE");
		goto fail;
	}
	kvm->max_vcpus = kvm_check_cap(kvm, KVM_CAP_MAX_VCPUS);
	if (kvm->max_vcpus <= 0)
		kvm->max_vcpus = kvm_check_cap(kvm, KVM_CAP_NR_VCPUS);
	if (kvm->max_vcpus <= 0)
		kvm->max_vcpus = 4;
	kvm->cpuid = kvm_get_supported_cpuid(kvm->sys_fd);
	if (!kvm->cpuid) {
		kvm_ioctl_err(err, "KVM_GET_SUPPORTED_CPUID");
		goto fail;
	}
	kvm->is_pvm = stat("/sys/module/kvm_pvm", &st) == 0;
	return 0;
fail:
	kvm_close(kvm);
	return err && err->code ? err->code : -EIO;
}

void kvm_close(struct kvm *kvm)
{
	if (kvm->vm_fd >= 0)
		close(kvm->vm_fd);
	if (kvm->sys_fd >= 0)
		close(kvm->sys_fd);
	free(kvm->cpuid);
	kvm->cpuid = NULL;
	kvm->vm_fd = kvm->sys_fd = -1;
}

int kvm_create_vm(struct kvm *kvm, struct err *err)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	kvm->vm_fd = ioctl(kvm->sys_fd, KVM_CREATE_VM, 0);
	if (kvm->vm_fd < 0)
		return kvm_ioctl_err(err, "KVM_CREATE_VM");
	if (ioctl(kvm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
		log_debug("kvm", "KVM_SET_TSS_ADDR: %s (ignored)", strerror(errno));
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	if (ioctl(kvm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		log_debug("kvm", "KVM_SET_IDENTITY_MAP_ADDR: %s (ignored)", strerror(errno));
	if (ioctl(kvm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return kvm_ioctl_err(err, "KVM_CREATE_IRQCHIP");
	if (ioctl(kvm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return kvm_ioctl_err(err, "KVM_CREATE_PIT2");
	return 0;
}

int kvm_set_memslot(struct kvm *kvm, uint32_t slot, uint64_t gpa,
		    uint64_t size, void *hva, uint32_t flags, struct err *err)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = (uint64_t)(uintptr_t)hva,
	};

	if (ioctl(kvm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return kvm_ioctl_err(err, "KVM_SET_USER_MEMORY_REGION");
	return 0;
}

int kvm_irq_line(struct kvm *kvm, uint32_t gsi, int level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = level };

	return ioctl(kvm->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

int kvm_create_vcpu(struct kvm *kvm, unsigned id, struct kvm_vcpu_fd *v,
		    struct err *err)
{
	v->run = NULL;
	v->fd = ioctl(kvm->vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0)
		return kvm_ioctl_err(err, "KVM_CREATE_VCPU");
	v->run = mmap(NULL, kvm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->fd, 0);
	if (v->run == MAP_FAILED) {
		int e = errno;

		close(v->fd);
		v->fd = -1;
		v->run = NULL;
		return err_set(err, -e, "mmap of vCPU %u run area failed: %s", id,
			       strerror(e));
	}
	return 0;
}

void kvm_destroy_vcpu(struct kvm *kvm, struct kvm_vcpu_fd *v)
{
	if (v->run)
		munmap(v->run, kvm->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

/* Room for the leaves cpu_model_identity() may add. */
#define CPUID_IDENTITY_EXTRA 16

/* Adjust KVM's supported CPUID for one vCPU: APIC IDs and topology. */
static void cpuid_fixup(struct kvm_cpuid_entry2 *e, unsigned id,
			unsigned nr_vcpus, bool is_pvm)
{
	switch (e->function) {
	case 1:
		/* initial APIC ID, logical processor count, hypervisor bit */
		e->ebx = (e->ebx & 0x0000ffff) | (id << 24) | ((nr_vcpus & 0xff) << 16);
		e->ecx |= 1u << 31;
		if (nr_vcpus > 1)
			e->edx |= 1u << 28;	/* HTT: multiple logical CPUs */
		/*
		 * PVM emulates guest ring 0 and cannot emulate CMPXCHG16B
		 * there (MACHINE.md); hide it so kernels take another path.
		 */
		if (is_pvm)
			e->ecx &= ~(1u << 13);
		break;
	case 0xb:
	case 0x1f:
		e->edx = id;		/* x2APIC ID */
		if (e->index == 0) {
			e->eax = 0;
			e->ebx = 1;
			e->ecx = 0x100;	/* SMT level */
		} else if (e->index == 1) {
			unsigned bits = 0;

			while ((1u << bits) < nr_vcpus)
				bits++;
			e->eax = bits;
			e->ebx = nr_vcpus;
			e->ecx = 0x201;	/* core level */
		} else {
			e->eax = e->ebx = 0;
			e->ecx = e->index;
		}
		break;
	case 4:
		/* cores per package - 1 in EAX[31:26] */
		if (e->eax & 0x1f)
			e->eax = (e->eax & 0x3ff) | (((nr_vcpus - 1) & 0x3f) << 26);
		break;
	}
}

/*
 * Read back what KVM made of a masked CPUID: PVM replaces leaves 1 and 7
 * with the hardware's bits whatever KVM_SET_CPUID2 said (measured, see
 * docs/cpu-models.md), so say which features the guest sees beyond its model.
 */
static void cpuid_check_masked(struct kvm *kvm, struct kvm_vcpu_fd *v,
			       struct kvm_cpuid2 *c, unsigned nent)
{
	struct cpu_featset want, got;
	char extra[256] = "";
	size_t off = 0;

	c->nent = nent;
	if (ioctl(v->fd, KVM_GET_CPUID2, c) < 0)
		return;
	cpu_model_features(kvm->cpu_model, &want);
	cpu_featset_from_cpuid(c->entries, c->nent, &got);
	for (size_t i = 0; i < cpu_feature_count() && off < sizeof(extra) - 20; i++)
		if (cpu_featset_has(&got, i) && !cpu_featset_has(&want, i))
			off += (size_t)snprintf(extra + off, sizeof(extra) - off, " %s",
						cpu_feature_get(i)->name);
	if (off)
		log_warn("kvm", "KVM did not mask every CPUID bit of model %s: the guest also sees%s",
			 cpu_model_name(kvm->cpu_model), extra);
}

int kvm_vcpu_set_cpuid(struct kvm *kvm, struct kvm_vcpu_fd *v, unsigned id,
		       unsigned nr_vcpus, struct err *err)
{
	size_t sz = sizeof(*kvm->cpuid) + kvm->cpuid->nent * sizeof(kvm->cpuid->entries[0]);
	size_t extra = CPUID_IDENTITY_EXTRA * sizeof(kvm->cpuid->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz + extra);
	int ret = 0;

	if (!c)
		return err_set(err, -ENOMEM, "out of memory for CPUID");
	memcpy(c, kvm->cpuid, sz);
	for (unsigned i = 0; i < c->nent; i++)
		cpuid_fixup(&c->entries[i], id, nr_vcpus, kvm->is_pvm);
	if (kvm->cpu_model) {
		cpu_model_apply(kvm->cpu_model, c->entries, c->nent);
		/* the model's identity, not the host's (docs/cpu-models.md) */
		c->nent = (uint32_t)cpu_model_identity(kvm->cpu_model, c->entries, c->nent,
						       c->nent + CPUID_IDENTITY_EXTRA);
		for (unsigned i = 0; i < c->nent; i++)
			cpuid_fixup(&c->entries[i], id, nr_vcpus, kvm->is_pvm);
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		ret = kvm_ioctl_err(err, "KVM_SET_CPUID2");
	else if (kvm->cpu_model && id == 0)
		cpuid_check_masked(kvm, v, c, kvm->cpuid->nent);
	free(c);
	return ret;
}
