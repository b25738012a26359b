/*
 * vm.c - the VM object: guest RAM, devices, vCPUs, and the run-state
 * machine CREATED -> RUNNING <-> PAUSED -> STOPPING.
 */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "boot/boot.h"
#include "dirty_ring.h"
#include "layout.h"
#include "log.h"
#include "state.h"
#include "util.h"

/* ---- devices wired to the VM ---- */

static void vm_uart_irq(void *opaque, int level)
{
	struct vm *vm = opaque;

	kvm_irq_line(&vm->kvm, IRQ_COM1, level);
}

static void uart_pio_read(void *opaque, uint16_t port, uint8_t *data, unsigned size)
{
	memset(data, 0xff, size);
	data[0] = uart16550_read(opaque, port - PORT_COM1);
}

static void uart_pio_write(void *opaque, uint16_t port, const uint8_t *data, unsigned size)
{
	uart16550_write(opaque, port - PORT_COM1, data[0]);
}

static const struct pio_ops uart_pio_ops = { .read = uart_pio_read, .write = uart_pio_write };

static void vm_sysdev_event(void *opaque, enum sysdev_event ev, uint32_t value)
{
	struct vm *vm = opaque;

	switch (ev) {
	case SYSDEV_EVENT_POWEROFF:
		vm_request_exit(vm, VM_EXIT_POWEROFF, 0, "guest powered off");
		break;
	case SYSDEV_EVENT_RESET:
		vm_request_exit(vm, VM_EXIT_RESET, 0, "guest requested a reset (reboot)");
		break;
	case SYSDEV_EVENT_DEBUG_EXIT:
		vm_request_exit(vm, VM_EXIT_DEBUG_PORT, value & 0x3f,
				"guest wrote %u to the debug-exit port", value & 0xff);
		break;
	default:
		break;
	}
}

/* ---- guest RAM ---- */

/*
 * Map guest RAM, or adopt what was mapped before the VM existed (--incoming
 * with --memory), and register it with KVM.
 */
static int vm_alloc_memory(struct vm *vm, const struct vm_config *cfg, struct err *err)
{
	struct guest_ram own, *r = cfg->ram;
	char a[32], b[32];
	int ret;

	if (r && r->host && r->size != cfg->mem_size)
		return err_set(err, -EINVAL,
			       "the incoming VM has %s of memory but this tern-vmm was started "
			       "with --memory %s",
			       fmt_bytes(cfg->mem_size, a, sizeof(a)), fmt_bytes(r->size, b, sizeof(b)));
	if (!r || !r->host) {
		ret = ram_map(&own, cfg->mem_size, cfg->mem_prealloc, err);
		if (ret)
			return ret;
		r = &own;
	}
	if (r->prealloc)
		log_info("vmm", "guest memory: %s preallocated in %llu ms",
			 fmt_bytes(r->size, a, sizeof(a)),
			 (unsigned long long)(r->prealloc_ns / 1000000));
	gmem_layout(&vm->mem, r->host, r->size);
	r->host = NULL;			/* the VM owns it now (vm_destroy unmaps) */
	for (unsigned i = 0; i < vm->mem.nr_regions; i++) {
		const struct gmem_region *g = &vm->mem.regions[i];

		ret = kvm_set_memslot(&vm->kvm, i, g->gpa, g->size, g->hva, 0, err);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * What a state save asks KVM (the MSRs it can read) is found now, while no
 * vCPU runs: an ioctl on a running vCPU waits for its next exit, and the
 * save itself happens inside a migration's downtime. A failure only costs
 * that time later (the save looks again and reports).
 */
static void vm_prepare_state_save(struct vm *vm)
{
	struct err e = { 0 };

	if (vm_state_prepare(vm, &e))
		log_warn("vm", "%s (a migration will look again)", e.msg);
}

/* ---- life cycle ---- */

int vm_create(struct vm *vm, const struct vm_config *cfg, struct err *err)
{
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->initialized = true;
	vm->exit_efd = -1;
	vm->kvm.sys_fd = vm->kvm.vm_fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_condattr_t ca;

	pthread_mutex_init(&vm->throttle_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);	/* timed waits use time_now_ns() */
	pthread_cond_init(&vm->cond, &ca);
	pthread_condattr_destroy(&ca);
	vm->state = VM_STATE_CREATED;
	str_copy(vm->kernel_path, sizeof(vm->kernel_path), cfg->kernel_path);
	str_copy(vm->cmdline, sizeof(vm->cmdline), cfg->cmdline);
	str_copy(vm->initrd_path, sizeof(vm->initrd_path), cfg->initrd_path);

	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > VM_MAX_VCPUS)
		return err_set(err, -EINVAL, "vCPU count %u out of range 1..%d",
			       cfg->nr_vcpus, VM_MAX_VCPUS);
	if (cfg->mem_size < VM_MIN_MEMORY || cfg->mem_size % 4096)
		return err_set(err, -EINVAL,
			       "memory size %" PRIu64 " must be a multiple of 4 KiB and at least 64 MiB",
			       cfg->mem_size);
	ret = kvm_open(&vm->kvm, NULL, err);
	if (!ret)
		ret = vm_cpu_model_setup(vm, cfg->cpu_model, err);
	if (ret)
		return ret;
	if ((int)cfg->nr_vcpus > vm->kvm.max_vcpus)
		return err_set(err, -EINVAL, "%u vCPUs requested but KVM allows at most %d",
			       cfg->nr_vcpus, vm->kvm.max_vcpus);
	ret = kvm_create_vm(&vm->kvm, err);
	if (ret)
		return ret;
	ret = vm_alloc_memory(vm, cfg, err);
	if (ret)
		return ret;
	/* dirty ring or bitmap: KVM takes the ring only before any vCPU exists */
	ret = dirty_ring_enable(vm, err);
	if (ret)
		return ret;
	vm->exit_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->exit_efd < 0)
		return err_set(err, -errno, "eventfd: %s", strerror(errno));

	uart16550_init(&vm->uart, cfg->serial_fd, vm_uart_irq, vm);
	sysdev_init(&vm->sysdev, vm_sysdev_event, vm);
	if (bus_register(&vm->bus, PORT_COM1, 8, &uart_pio_ops, &vm->uart) ||
	    sysdev_register(&vm->sysdev, &vm->bus))
		return err_set(err, -EEXIST, "device port ranges overlap");

	vm->nr_vcpus = cfg->nr_vcpus;
	vm->vcpus = calloc(cfg->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return err_set(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < cfg->nr_vcpus; i++)
		vm->vcpus[i].kfd.fd = -1;
	for (unsigned i = 0; i < cfg->nr_vcpus; i++) {
		ret = vcpu_init(vm, &vm->vcpus[i], i, err);
		if (ret)
			return ret;
	}
	vm_prepare_state_save(vm);
	return dirty_ring_map(vm, err);	/* no-op with the bitmap backend */
}

static int read_file(const char *what, const char *path, uint8_t **buf,
		     size_t *len, uint64_t max, struct err *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char a[32];

	if (fd < 0)
		return err_set(err, -errno, "cannot open %s %s: %s", what, path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(err, -EINVAL, "%s %s is not a regular file", what, path);
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return err_set(err, -EFBIG, "%s %s (%s) does not fit in guest memory",
			       what, path, fmt_bytes(st.st_size, a, sizeof(a)));
	}
	*len = st.st_size;
	*buf = malloc(*len ? *len : 1);
	if (!*buf) {
		close(fd);
		return err_set(err, -ENOMEM, "out of memory reading %s", path);
	}
	for (size_t off = 0; off < *len;) {
		ssize_t r = read(fd, *buf + off, *len - off);

		if (r <= 0) {
			int e = r < 0 ? errno : EIO;

			close(fd);
			free(*buf);
			*buf = NULL;
			return err_set(err, -e, "cannot read %s %s: %s", what, path, strerror(e));
		}
		off += r;
	}
	close(fd);
	return 0;
}

int vm_boot(struct vm *vm, const struct vm_config *cfg, struct err *err)
{
	struct boot_config bc = { .cmdline = cfg->cmdline, .nr_cpus = vm->nr_vcpus };
	struct boot_entry entry;
	uint8_t *kernel = NULL, *initrd = NULL;
	int ret;

	ret = read_file("kernel", cfg->kernel_path, &kernel, &bc.kernel_len, vm->mem.size, err);
	if (ret)
		return ret;
	bc.kernel = kernel;
	if (cfg->initrd_path) {
		ret = read_file("initrd", cfg->initrd_path, &initrd, &bc.initrd_len,
				vm->mem.size, err);
		if (ret)
			goto out;
		bc.initrd = initrd;
	}
	ret = boot_load(&vm->mem, &bc, &entry, err);
	if (ret)
		goto out;
	ret = vcpu_setup_boot(&vm->vcpus[0], &entry, err);
out:
	free(kernel);
	free(initrd);
	return ret;
}

static void kick_handler(int sig)
{
	(void)sig;	/* only interrupts KVM_RUN */
}

int vm_start(struct vm *vm, struct err *err)
{
	struct sigaction sa = { .sa_handler = kick_handler };

	sigemptyset(&sa.sa_mask);
	sigaction(vcpu_kick_signal(), &sa, NULL);
	pthread_mutex_lock(&vm->lock);
	vm->state = VM_STATE_RUNNING;
	vm->start_ns = time_now_ns();
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		int ret = pthread_create(&v->thread, NULL, vcpu_thread, v);

		if (ret) {
			vm_stop(vm);
			return err_set(err, -ret, "cannot start vCPU thread %u: %s", i, strerror(ret));
		}
		v->thread_started = true;
	}
	return 0;
}

/* Kick every vCPU and wait until all are parked. Caller holds vm->lock. */
static void vm_park_all_locked(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	while (vm->nr_parked < vm->nr_vcpus)
		pthread_cond_wait(&vm->cond, &vm->lock);
}

int vm_pause(struct vm *vm, struct err *err)
{
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_STATE_PAUSED)
		ret = err_set(err, -EALREADY, "VM is already paused");
	else if (vm->state != VM_STATE_RUNNING)
		ret = err_set(err, -EBUSY, "VM is %s, not running", vm_state_name(vm->state));
	if (!ret) {
		vm->state = VM_STATE_PAUSED;
		vm_park_all_locked(vm);
	}
	pthread_mutex_unlock(&vm->lock);
	if (!ret)
		log_info("vm", "paused");
	return ret;
}

int vm_resume(struct vm *vm, struct err *err)
{
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->handed_over)
		ret = err_set(err, -EBUSY,
			      "the VM was handed over to a migration destination: it cannot run here");
	else if (vm->state == VM_STATE_RUNNING)
		ret = err_set(err, -EALREADY, "VM is not paused");
	else if (vm->state != VM_STATE_PAUSED)
		ret = err_set(err, -EBUSY, "VM is %s, cannot resume", vm_state_name(vm->state));
	if (!ret) {
		vm->state = VM_STATE_RUNNING;
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
	if (!ret)
		log_info("vm", "resumed");
	return ret;
}

/* ---- auto-converge throttle ---- */

/*
 * A throttle of p% runs the vCPUs THROTTLE_SLICE_NS, then sleeps them
 * slice * p / (100 - p), as QEMU does, except that no sleep is longer than
 * THROTTLE_MAX_SLEEP_NS: past that the run shrinks instead (99%: 0.2 ms
 * run, 20 ms sleep, where QEMU sleeps 990 ms). The guest's longest stall
 * stays short at any throttle.
 */
#define THROTTLE_SLICE_NS	10000000ULL
#define THROTTLE_MAX_SLEEP_NS	20000000ULL

static void *throttle_thread(void *arg)
{
	struct vm *vm = arg;

	pthread_setname_np(pthread_self(), "throttle");
	pthread_mutex_lock(&vm->lock);
	while (vm->state != VM_STATE_STOPPING && vm->throttle_pct) {
		unsigned pct = vm->throttle_pct;
		uint64_t run_ns = THROTTLE_SLICE_NS, sleep_ns = run_ns * pct / (100 - pct);
		struct timespec ts;
		uint64_t next;

		if (sleep_ns > THROTTLE_MAX_SLEEP_NS) {
			sleep_ns = THROTTLE_MAX_SLEEP_NS;
			run_ns = sleep_ns * (100 - pct) / pct;
		}
		next = time_now_ns() + run_ns + sleep_ns;
		ts.tv_sec = (time_t)(next / 1000000000ULL);
		ts.tv_nsec = (long)(next % 1000000000ULL);

		if (vm->state == VM_STATE_RUNNING) {
			for (unsigned i = 0; i < vm->nr_vcpus; i++) {
				vm->vcpus[i].throttle_until_ns = time_now_ns() + sleep_ns;
				vcpu_kick(&vm->vcpus[i]);
			}
		}
		/* wake at the next period, or at once on a change or stop */
		pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vm->vcpus[i].throttle_until_ns = 0;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vm_set_throttle(struct vm *vm, unsigned pct, struct err *err)
{
	bool start = false, join = false;
	int ret = 0;

	if (pct > 99)
		pct = 99;
	pthread_mutex_lock(&vm->throttle_lock);
	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_STATE_RUNNING && vm->state != VM_STATE_PAUSED && pct) {
		pthread_mutex_unlock(&vm->lock);
		pthread_mutex_unlock(&vm->throttle_lock);
		return err_set(err, -EBUSY, "VM is %s", vm_state_name(vm->state));
	}
	vm->throttle_pct = pct;
	if (pct && !vm->throttle_thread_started)
		start = true;
	if (!pct && vm->throttle_thread_started)
		join = true;
	pthread_cond_broadcast(&vm->cond);
	if (start) {
		ret = pthread_create(&vm->throttle_thread, NULL, throttle_thread, vm);
		if (ret) {
			vm->throttle_pct = 0;
			err_set(err, -ret, "cannot start the throttle thread: %s", strerror(ret));
			ret = -ret;
		} else {
			vm->throttle_thread_started = true;
		}
	}
	if (join)
		vm->throttle_thread_started = false;
	pthread_mutex_unlock(&vm->lock);
	if (join)
		pthread_join(vm->throttle_thread, NULL);
	pthread_mutex_unlock(&vm->throttle_lock);
	if (!ret && (start || join || pct))
		log_info("vm", "vCPU throttle %u%%", pct);
	return ret;
}

unsigned vm_get_throttle(struct vm *vm)
{
	unsigned pct;

	pthread_mutex_lock(&vm->lock);
	pct = vm->throttle_pct;
	pthread_mutex_unlock(&vm->lock);
	return pct;
}

void vm_mark_handed_over(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->handed_over = true;
	pthread_mutex_unlock(&vm->lock);
}

/*
 * The operator abandoned a post-copy whose destination is dead: this copy
 * may run again (vm_resume() is refused until then).
 */
void vm_take_back(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->handed_over = false;
	pthread_mutex_unlock(&vm->lock);
}

/*
 * Pause, waiting at most timeout_ms for the vCPUs to park: a vCPU blocked
 * in a post-copy page fault parks only once its page arrives. -ETIMEDOUT
 * then, with the VM paused all the same (no vCPU enters the guest again).
 */
int vm_pause_within(struct vm *vm, uint32_t timeout_ms, struct err *err)
{
	uint64_t deadline = time_now_ns() + timeout_ms * 1000000ULL;
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_STATE_RUNNING && vm->state != VM_STATE_PAUSED)
		ret = err_set(err, -EBUSY, "VM is %s, not running", vm_state_name(vm->state));
	if (!ret) {
		struct timespec ts = { deadline / 1000000000ULL, deadline % 1000000000ULL };

		vm->state = VM_STATE_PAUSED;
		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			vcpu_kick(&vm->vcpus[i]);
		while (vm->nr_parked < vm->nr_vcpus && !ret)
			if (pthread_cond_timedwait(&vm->cond, &vm->lock, &ts) == ETIMEDOUT)
				ret = err_set(err, -ETIMEDOUT, "%u of %u vCPUs parked",
					      vm->nr_parked, vm->nr_vcpus);
	}
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

void vm_request_exit(struct vm *vm, enum vm_exit_reason why, uint32_t value,
		     const char *fmt, ...)
{
	uint64_t one = 1;
	va_list ap;

	pthread_mutex_lock(&vm->lock);
	if (vm->exit_reason == VM_EXIT_NONE) {
		vm->exit_reason = why;
		vm->exit_value = value;
		va_start(ap, fmt);
		vsnprintf(vm->exit_msg, sizeof(vm->exit_msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&vm->lock);
	if (write(vm->exit_efd, &one, sizeof(one)) < 0) {
		/* counter saturated: an exit is already pending */
	}
}

void vm_stop(struct vm *vm)
{
	if (!vm->initialized || !vm->vcpus)
		return;
	vm_set_throttle(vm, 0, NULL);
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_STATE_RUNNING || vm->state == VM_STATE_PAUSED) {
		vm->state = VM_STATE_STOPPING;
		pthread_cond_broadcast(&vm->cond);
		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			vcpu_kick(&vm->vcpus[i]);
	}
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->thread_started) {
			pthread_join(v->thread, NULL);
			v->thread_started = false;
		}
	}
}

void vm_destroy(struct vm *vm)
{
	if (!vm->initialized)
		return;
	vm_stop(vm);
	free(vm->save_msrs);
	vm->save_msrs = NULL;
	dirty_ring_free(vm);	/* unmaps the rings before the vCPU fds close */
	if (vm->vcpus) {
		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			kvm_destroy_vcpu(&vm->kvm, &vm->vcpus[i].kfd);
		free(vm->vcpus);
		vm->vcpus = NULL;
		vm->nr_vcpus = 0;
	}
	if (vm->mem.base)
		munmap(vm->mem.base, vm->mem.size);
	vm->mem.base = NULL;
	if (vm->exit_efd >= 0)
		close(vm->exit_efd);
	vm->exit_efd = -1;
	kvm_close(&vm->kvm);
	uart16550_fini(&vm->uart);
	sysdev_fini(&vm->sysdev);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->throttle_lock);
	vm->initialized = false;
}

enum vm_state vm_get_state(struct vm *vm)
{
	enum vm_state s;

	pthread_mutex_lock(&vm->lock);
	s = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

const char *vm_state_name(enum vm_state s)
{
	switch (s) {
	case VM_STATE_CREATED: return "created";
	case VM_STATE_RUNNING: return "running";
	case VM_STATE_PAUSED: return "paused";
	case VM_STATE_STOPPING: return "stopping";
	default: return "invalid";
	}
}
