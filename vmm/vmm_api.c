/* vmm_api.c - the API backend: GET /vm, pause, resume, shutdown. */
#include "vmm_api.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static enum api_vm_state to_api_state(enum vm_state s)
{
	switch (s) {
	case VM_STATE_RUNNING: return API_VM_RUNNING;
	case VM_STATE_PAUSED: return API_VM_PAUSED;
	case VM_STATE_STOPPING: return API_VM_SHUTTING_DOWN;
	default: return API_VM_INVALID;
	}
}

static void fill_info(struct vm *vm, struct api_vm_info *info)
{
	memset(info, 0, sizeof(*info));
	info->state = to_api_state(vm_get_state(vm));
	if (vm->exit_reason != VM_EXIT_NONE)
		info->state = API_VM_SHUTTING_DOWN;
	info->vcpus = vm->nr_vcpus;
	info->memory_bytes = vm->mem.size;
	info->uptime_ms = vm->start_ns ? (time_now_ns() - vm->start_ns) / 1000000 : 0;
	str_copy(info->kernel, sizeof(info->kernel), vm->kernel_path);
	str_copy(info->cmdline, sizeof(info->cmdline), vm->cmdline);
}

static int vmm_api_execute(void *opaque, const struct api_request *req,
			   struct api_reply *reply, struct err *err)
{
	struct vm *vm = opaque;
	int ret = 0;

	switch (req->action) {
	case API_ACTION_GET_INFO:
		break;
	case API_ACTION_PAUSE:
		ret = vm_pause(vm, err);
		break;
	case API_ACTION_RESUME:
		ret = vm_resume(vm, err);
		break;
	case API_ACTION_SHUTDOWN:
		vm_request_exit(vm, VM_EXIT_API_SHUTDOWN, 0, "shut down through the API");
		break;
	default:
		return err_set(err, -EINVAL, "unsupported action");
	}
	if (!ret)
		fill_info(vm, &reply->info);
	return ret;
}

int vmm_api_start(struct api_server **srv, const char *path, struct vm *vm,
		  struct err *err)
{
	static struct api_backend backend;

	backend.opaque = vm;
	backend.execute = vmm_api_execute;
	*srv = api_server_start(path, &backend, err);
	return *srv ? 0 : (err && err->code ? err->code : -EIO);
}
