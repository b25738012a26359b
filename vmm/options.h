/*
 * options.h - tern-vmm's command line, parsed into a plain struct.
 * Pure (no KVM): unit-tested in tests/unit/vmm.
 */
#ifndef VMM_OPTIONS_H
#define VMM_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

enum serial_mode {
	SERIAL_INVALID = 0,
	SERIAL_STDIO,
	SERIAL_FILE,
	SERIAL_NONE,
};

struct vmm_options {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	uint64_t memory;		/* bytes */
	bool memory_set;		/* --memory given (with --incoming: map ahead) */
	bool mem_prealloc;		/* --mem-prealloc */
	unsigned vcpus;
	enum serial_mode serial;
	const char *serial_path;	/* SERIAL_FILE */
	const char *api_path;
	const char *incoming;		/* tcp:HOST:PORT: receive a migration */
	char vm_option[40];		/* a VM-shaping option seen (vs --incoming) */
	bool help;
	bool version;
	uint32_t keepalive_interval_s;	/* --incoming: 0 = default (5) */
	uint32_t keepalive_count;	/* --incoming: 0 = default (5) */
	const char *cpu_model;		/* NULL: host-model */
	const char *cpu_models_allowed;	/* comma list; NULL: all */
	bool print_host_facts;
	bool print_cpu_models;
	const char *tls_cert;		/* this host's TLS identity (all three or none) */
	const char *tls_key;
	const char *tls_ca;
};

#define VMM_DEFAULT_MEMORY	(256ULL << 20)

/*
 * Parse argv. Accepts "--opt value" and "--opt=value". Returns 0, or
 * -EINVAL with a one-line message in `err`. Strings point into argv.
 */
int vmm_options_parse(int argc, char **argv, struct vmm_options *o,
		      struct err *err);

extern const char vmm_usage[];

#endif
