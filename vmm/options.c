/* options.c - parse and validate tern-vmm's command line. */
#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cpu_models.h"
#include "util.h"
#include "vm.h"

const char vmm_usage[] =
	"usage: tern-vmm --kernel FILE [options]\n"
	"\n"
	"  --kernel FILE        bzImage to boot (Linux x86 boot protocol)\n"
	"  --initrd FILE        initial ramdisk\n"
	"  --cmdline STR        kernel command line\n"
	"  --memory SIZE        guest memory, e.g. 512M, 4G (default 256M, minimum 64M)\n"
	"  --vcpus N            number of vCPUs, 1-254 (default 1)\n"
	"  --mem-prealloc       allocate all guest memory at start (fails now, not\n"
	"                       later, if the host lacks it); with --incoming and\n"
	"                       --memory SIZE, before the source connects\n"
	"  --serial MODE        stdio (interactive, default), file:PATH, or none\n"
	"  --api PATH           serve the control API on unix socket PATH (mode 0600)\n"
	"  --incoming URI       wait for a live migration on tcp:HOST:PORT, then run\n"
	"                       the VM it brings (no --kernel needed); --memory then\n"
	"                       maps RAM ahead and the stream's size must match\n"
	"  --keepalive-interval S, --keepalive-count N\n"
	"                       with --incoming: a source silent for S x N seconds\n"
	"                       is gone (default 5 x 5); docs/migration-protocol.md\n"
	"  --cpu-model NAME     CPU the guest sees: host-model (default) or a named model\n"
	"                       (x86-64-v1..v4, Haswell, EPYC-Rome, ...: docs/cpu-models.md)\n"
	"  --cpu-models-allowed LIST\n"
	"                       comma list of models this host may run or receive\n"
	"                       (default: all it supports; also $TERN_CPU_MODELS_ALLOWED)\n"
	"  --print-host-facts   print this host's facts as JSON and exit\n"
	"  --print-cpu-models   print the CPU model table as JSON and exit\n"
	"  --tls-cert FILE      this host's certificate (tern pki issue), PEM\n"
	"  --tls-key FILE       its private key, PEM\n"
	"  --tls-ca FILE        the cluster CA (tern pki init): with all three,\n"
	"                       migrations in and out use TLS 1.3, both sides\n"
	"                       authenticated (docs/security.md)\n"
	"  --help, --version\n"
	"\n"
	"With --serial stdio on a terminal, press Ctrl-A x to quit.\n";

static int parse_serial(const char *v, struct vmm_options *o, struct err *err)
{
	if (!strcmp(v, "stdio")) {
		o->serial = SERIAL_STDIO;
	} else if (!strcmp(v, "none")) {
		o->serial = SERIAL_NONE;
	} else if (!strncmp(v, "file:", 5) && v[5]) {
		o->serial = SERIAL_FILE;
		o->serial_path = v + 5;
	} else {
		return err_set(err, -EINVAL,
			       "--serial: '%s' is not stdio, none or file:PATH", v);
	}
	return 0;
}

static int parse_value(const char *name, const char *v, struct vmm_options *o,
		       struct err *err)
{
	uint64_t n;

	if (!strcmp(name, "kernel")) {
		o->kernel = v;
	} else if (!strcmp(name, "initrd")) {
		o->initrd = v;
	} else if (!strcmp(name, "cmdline")) {
		o->cmdline = v;
	} else if (!strcmp(name, "api")) {
		o->api_path = v;
	} else if (!strcmp(name, "incoming")) {
		o->incoming = v;
	} else if (!strcmp(name, "cpu-model")) {
		if (strcmp(v, CPU_MODEL_HOST) && !cpu_model_find(v))
			return err_set(err, -EINVAL, "--cpu-model: unknown model '%s' (see docs/cpu-models.md)", v);
		o->cpu_model = v;
	} else if (!strcmp(name, "cpu-models-allowed")) {
		o->cpu_models_allowed = v;
	} else if (!strcmp(name, "tls-cert")) {
		o->tls_cert = v;
	} else if (!strcmp(name, "tls-key")) {
		o->tls_key = v;
	} else if (!strcmp(name, "tls-ca")) {
		o->tls_ca = v;
	} else if (!strcmp(name, "serial")) {
		return parse_serial(v, o, err);
	} else if (!strcmp(name, "memory")) {
		if (parse_size(v, &o->memory))
			return err_set(err, -EINVAL, "--memory: '%s' is not a size like 512M or 4G", v);
		if (o->memory < VM_MIN_MEMORY)
			return err_set(err, -EINVAL, "--memory: %s is below the 64M minimum", v);
		if (o->memory % 4096)
			return err_set(err, -EINVAL, "--memory: %s is not a multiple of 4K", v);
	} else if (!strcmp(name, "vcpus")) {
		if (parse_uint(v, 1, VM_MAX_VCPUS, &n))
			return err_set(err, -EINVAL, "--vcpus: '%s' is not a number from 1 to %d",
				       v, VM_MAX_VCPUS);
		o->vcpus = (unsigned)n;
	} else if (!strcmp(name, "keepalive-interval")) {
		if (parse_uint(v, 1, 3600, &n))
			return err_set(err, -EINVAL, "--keepalive-interval: '%s' is not 1-3600 (s)", v);
		o->keepalive_interval_s = (uint32_t)n;
	} else if (!strcmp(name, "keepalive-count")) {
		if (parse_uint(v, 1, 100, &n))
			return err_set(err, -EINVAL, "--keepalive-count: '%s' is not 1-100", v);
		o->keepalive_count = (uint32_t)n;
	} else {
		return err_set(err, -EINVAL, "unknown option '--%s'", name);
	}
	return 0;
}

static bool is_value_option(const char *name)
{
	static const char *const names[] = {
		"kernel", "initrd", "cmdline", "memory", "vcpus", "serial", "api",
		"incoming", "keepalive-interval", "keepalive-count", "cpu-model",
		"cpu-models-allowed", "tls-cert", "tls-key", "tls-ca",
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

/* Options that shape the VM, which the migration stream brings instead. */
static bool is_vm_shaping(const char *name)
{
	return !strcmp(name, "kernel") || !strcmp(name, "initrd") ||
	       !strcmp(name, "cmdline") || !strcmp(name, "vcpus") ||
	       !strcmp(name, "cpu-model");
}

static bool is_flag(const char *name, struct vmm_options *o)
{
	if (!strcmp(name, "help"))
		o->help = true;
	else if (!strcmp(name, "version"))
		o->version = true;
	else if (!strcmp(name, "print-host-facts"))
		o->print_host_facts = true;
	else if (!strcmp(name, "print-cpu-models"))
		o->print_cpu_models = true;
	else if (!strcmp(name, "mem-prealloc"))
		o->mem_prealloc = true;
	else
		return false;
	return true;
}

int vmm_options_parse(int argc, char **argv, struct vmm_options *o,
		      struct err *err)
{
	memset(o, 0, sizeof(*o));
	o->memory = VMM_DEFAULT_MEMORY;
	o->vcpus = 1;
	o->serial = SERIAL_STDIO;

	for (int i = 1; i < argc; i++) {
		char name[32];
		const char *arg = argv[i], *val, *eq;
		size_t len;
		int ret;

		if (!strcmp(arg, "-h"))
			arg = "--help";
		if (strncmp(arg, "--", 2) || !arg[2])
			return err_set(err, -EINVAL, "unexpected argument '%s'", arg);
		arg += 2;
		eq = strchr(arg, '=');
		len = eq ? (size_t)(eq - arg) : strlen(arg);
		if (len >= sizeof(name))
			return err_set(err, -EINVAL, "unknown option '--%.40s'", arg);
		memcpy(name, arg, len);
		name[len] = '\0';
		if (!eq && is_flag(name, o))
			continue;
		if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else if (is_value_option(name)) {
			return err_set(err, -EINVAL, "option '--%s' needs a value", name);
		} else {
			return err_set(err, -EINVAL, "unknown option '--%s'", name);
		}
		ret = parse_value(name, val, o, err);
		if (ret)
			return ret;
		if (is_vm_shaping(name))
			snprintf(o->vm_option, sizeof(o->vm_option), "--%s", name);
		if (!strcmp(name, "memory"))
			o->memory_set = true;
	}
	if (o->incoming && o->vm_option[0])
		return err_set(err, -EINVAL,
			       "--incoming takes the VM's configuration from the stream: drop %s",
			       o->vm_option);
	if (o->incoming && o->mem_prealloc && !o->memory_set)
		return err_set(err, -EINVAL,
			       "--mem-prealloc with --incoming needs --memory SIZE: the size to "
			       "allocate before the source connects");
	if (!o->help && !o->version && !o->kernel && !o->incoming &&
	    !o->print_host_facts && !o->print_cpu_models)
		return err_set(err, -EINVAL, "--kernel FILE is required");
	if ((o->tls_cert || o->tls_key || o->tls_ca) && !(o->tls_cert && o->tls_key && o->tls_ca))
		return err_set(err, -EINVAL, "TLS needs all three of --tls-cert, --tls-key and --tls-ca");
	return 0;
}
