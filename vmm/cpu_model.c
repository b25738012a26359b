/*
 * cpu_model.c - the VM's CPU model (docs/cpu-models.md): check that this
 * host can offer it (known, allowed by $TERN_CPU_MODELS_ALLOWED, every
 * feature in KVM_GET_SUPPORTED_CPUID) and arm the CPUID masking that
 * kvm_vcpu_set_cpuid() applies to every vCPU.
 */
#include <stdlib.h>

#include "cpu_models.h"
#include "log.h"
#include "util.h"
#include "vm.h"

int vm_cpu_model_setup(struct vm *vm, const char *name, struct err *err)
{
	const struct cpu_model *m = NULL;
	struct cpu_featset host;
	int ret;

	cpu_featset_from_cpuid(vm->kvm.cpuid->entries, vm->kvm.cpuid->nent, &host);
	cpu_featset_host_quirks(&host, vm->kvm.is_pvm);
	ret = cpu_model_check(name, &host, getenv("TERN_CPU_MODELS_ALLOWED"), &m, err);
	if (ret)
		return ret;
	vm->kvm.cpu_model = m;
	str_copy(vm->cpu_model, sizeof(vm->cpu_model), m ? cpu_model_name(m) : CPU_MODEL_HOST);
	log_info("vmm", "cpu model %s", vm->cpu_model);
	return 0;
}
