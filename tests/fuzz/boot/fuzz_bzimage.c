/*
 * fuzz_bzimage.c - libFuzzer target: bzimage_parse() on arbitrary bytes,
 * and when the header is accepted, boot_load() into a small guest (32 MiB,
 * allocated once) with a fixed initrd and command line. The last input byte
 * picks nr_cpus (0..255, so out-of-range counts are exercised too).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "boot.h"

#define FUZZ_GUEST_SIZE (32u << 20)

static uint8_t fuzz_initrd[8192];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *guest;
	static struct guest_mem mem;
	struct bzimage_info info;
	struct boot_entry entry;
	struct err err = { 0 };
	struct boot_config cfg = {
		.kernel = data, .kernel_len = size,
		.initrd = fuzz_initrd, .initrd_len = sizeof(fuzz_initrd),
		.cmdline = "console=ttyS0 root=/dev/vda",
		.nr_cpus = size ? data[size - 1] : 1,
	};

	if (bzimage_parse(data, size, &info, &err))
		return 0;
	if (!guest) {
		guest = calloc(1, FUZZ_GUEST_SIZE);
		if (!guest)
			abort();
		gmem_layout(&mem, guest, FUZZ_GUEST_SIZE);
	}
	err_clear(&err);
	boot_load(&mem, &cfg, &entry, &err);
	return 0;
}
