/*
 * vm.h - one virtual machine: KVM VM, guest RAM, devices, vCPU threads,
 * and its run state (running / paused / stopping).
 *
 * Threads: each vCPU has its own thread running KVM_RUN; the VMM's main
 * thread runs the event loop; the API server has its own thread. Pausing
 * kicks every vCPU out of KVM_RUN (signal + immediate_exit) and waits
 * until all are parked, so while paused no guest code runs and every
 * vCPU's state can be read consistently (this is what migration needs).
 */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "err.h"
#include "kvm.h"
#include "mem.h"
#include "ram.h"
#include "dev/sysdev.h"
#include "dev/uart16550.h"

#define VM_MIN_MEMORY	(64ULL << 20)
#define VM_MAX_VCPUS	254	/* xAPIC IDs 0..254 (255 is broadcast) */

enum vm_state {
	VM_STATE_INVALID = 0,
	VM_STATE_CREATED,	/* set up, vCPUs not started */
	VM_STATE_RUNNING,
	VM_STATE_PAUSED,
	VM_STATE_STOPPING,	/* vCPU threads are exiting */
};

/* Why the VM ended; decides tern-vmm's exit status (docs/vmm.md). */
enum vm_exit_reason {
	VM_EXIT_NONE = 0,
	VM_EXIT_POWEROFF,	/* guest ACPI power-off */
	VM_EXIT_RESET,		/* guest reboot/reset/triple fault (panic=-1) */
	VM_EXIT_API_SHUTDOWN,	/* POST /vm/shutdown */
	VM_EXIT_SIGNAL,		/* SIGTERM / SIGINT / console escape */
	VM_EXIT_DEBUG_PORT,	/* test device at PORT_DEBUG_EXIT */
	VM_EXIT_ERROR,		/* KVM or emulation failure */
	VM_EXIT_MIGRATED,	/* live-migrated away: the destination runs it */
};

struct vm_config {
	const char *kernel_path;
	const char *initrd_path;	/* NULL: none */
	const char *cmdline;		/* NULL: empty */
	uint64_t mem_size;
	unsigned nr_vcpus;
	int serial_fd;			/* console output, -1 = discard */
	const char *cpu_model;		/* NULL: host-model (docs/cpu-models.md) */
	bool mem_prealloc;		/* populate all RAM up front (--mem-prealloc) */
	struct guest_ram *ram;		/* RAM mapped ahead (ram.h), or NULL */
};

struct vm;
struct dirty_ring;

struct vcpu {
	struct vm *vm;
	unsigned id;
	struct kvm_vcpu_fd kfd;
	pthread_t thread;
	bool thread_started;
	bool parked;
	uint64_t throttle_until_ns;	/* throttled: sleep until (vm->lock) */
	uint64_t exits_io;
};

struct vm {
	bool initialized;		/* vm_create ran: vm_destroy has work */
	struct kvm kvm;
	struct guest_mem mem;
	struct bus bus;
	struct uart16550 uart;
	struct sysdev sysdev;
	unsigned nr_vcpus;
	struct vcpu *vcpus;

	pthread_mutex_t lock;		/* guards state, nr_parked, exit_* */
	pthread_cond_t cond;
	enum vm_state state;
	unsigned nr_parked;
	bool handed_over;		/* migration passed ownership: never resume */
	uint64_t start_ns;

	int exit_efd;			/* eventfd: the VM wants to end */
	enum vm_exit_reason exit_reason;
	uint32_t exit_value;		/* debug-exit value */
	char exit_msg[256];

	/* auto-converge: vCPUs sleep throttle_pct % of the time */
	unsigned throttle_pct;		/* 0..99, vm->lock */
	pthread_mutex_t throttle_lock;	/* serialises vm_set_throttle() */
	pthread_t throttle_thread;
	bool throttle_thread_started;

	bool dirty_manual_enabled;	/* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 on */
	bool dirty_initially_set;
	struct dirty_ring *dirty_ring;	/* NULL: bitmap backend (dirty_ring.h) */
	uint32_t *save_msrs;		/* MSRs KVM_GET_MSRS reads here (state.c) */
	int nsave_msrs;			/* valid once save_msrs is set */

	char kernel_path[4096];
	char initrd_path[4096];
	char cmdline[4096];
	char cpu_model[64];		/* "host-model" or a named model */
};

/* Open KVM, allocate RAM, create devices and vCPUs. */
int vm_create(struct vm *vm, const struct vm_config *cfg, struct err *err);
/* Load kernel/initrd/cmdline and set the boot vCPU's entry state. */
int vm_boot(struct vm *vm, const struct vm_config *cfg, struct err *err);
/* Start the vCPU threads (state becomes RUNNING). */
int vm_start(struct vm *vm, struct err *err);
/* Stop all vCPUs, wait until none runs. -EALREADY if already paused. */
int vm_pause(struct vm *vm, struct err *err);
int vm_resume(struct vm *vm, struct err *err);
/*
 * Ownership of the (paused) VM passed to a migration destination: from now
 * on vm_resume() refuses, so this process can never run the guest again.
 */
void vm_mark_handed_over(struct vm *vm);
void vm_take_back(struct vm *vm);
int vm_pause_within(struct vm *vm, uint32_t timeout_ms, struct err *err);
/*
 * Throttle the vCPUs to run (100 - pct) % of the time (auto-converge):
 * every 10 ms of running, each vCPU sleeps pct/(100-pct) x 10 ms outside
 * KVM_RUN. 0 releases it. pct above 99 is taken as 99.
 */
int vm_set_throttle(struct vm *vm, unsigned pct, struct err *err);
unsigned vm_get_throttle(struct vm *vm);

/* Ask the main loop to end the VM (first reason wins). */
void vm_request_exit(struct vm *vm, enum vm_exit_reason why, uint32_t value,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Stop and join the vCPU threads. Idempotent. */
void vm_stop(struct vm *vm);
void vm_destroy(struct vm *vm);

enum vm_state vm_get_state(struct vm *vm);
const char *vm_state_name(enum vm_state s);

/* cpu_model.c: check the model against this host, arm CPUID masking. */
int vm_cpu_model_setup(struct vm *vm, const char *name, struct err *err);

/* vcpu.c */
int vcpu_init(struct vm *vm, struct vcpu *v, unsigned id, struct err *err);
int vcpu_setup_boot(struct vcpu *v, const void *boot_entry, struct err *err);
void *vcpu_thread(void *arg);
void vcpu_kick(struct vcpu *v);
int vcpu_kick_signal(void);

#endif
