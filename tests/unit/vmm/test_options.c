/* test_options.c - tern-vmm command-line parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "options.h"

#define ARGV(...) (char *[]){ "tern-vmm", __VA_ARGS__, NULL }
#define ARGC(a) ((int)(sizeof(a) / sizeof(a[0])) - 1)

static int parse(int argc, char **argv, struct vmm_options *o, struct err *e)
{
	memset(e, 0, sizeof(*e));
	return vmm_options_parse(argc, argv, o, e);
}

static void test_defaults(void **state)
{
	char **a = ARGV("--kernel", "bz");
	struct vmm_options o;
	struct err e;

	assert_int_equal(parse(ARGC(ARGV("--kernel", "bz")), a, &o, &e), 0);
	assert_string_equal(o.kernel, "bz");
	assert_int_equal(o.vcpus, 1);
	assert_true(o.memory == VMM_DEFAULT_MEMORY);
	assert_int_equal(o.serial, SERIAL_STDIO);
	assert_null(o.api_path);
}

static void test_all_options(void **state)
{
	char **a = ARGV("--kernel=k", "--initrd", "i", "--cmdline", "console=ttyS0 x=1",
			"--memory", "4G", "--vcpus=8", "--serial", "file:/tmp/log",
			"--api", "vm.sock");
	struct vmm_options o;
	struct err e;

	assert_int_equal(parse(13, a, &o, &e), 0);
	assert_string_equal(o.kernel, "k");
	assert_string_equal(o.initrd, "i");
	assert_string_equal(o.cmdline, "console=ttyS0 x=1");
	assert_true(o.memory == 4ULL << 30);
	assert_int_equal(o.vcpus, 8);
	assert_int_equal(o.serial, SERIAL_FILE);
	assert_string_equal(o.serial_path, "/tmp/log");
	assert_string_equal(o.api_path, "vm.sock");
}

static void test_memory_sizes(void **state)
{
	static const struct { const char *v; unsigned long long bytes; int ok; } cases[] = {
		{ "512M", 512ULL << 20, 1 }, { "64M", 64ULL << 20, 1 },
		{ "1G", 1ULL << 30, 1 }, { "2GiB", 2ULL << 30, 1 },
		{ "67108864", 64ULL << 20, 1 },
		{ "63M", 0, 0 }, { "0", 0, 0 }, { "abc", 0, 0 }, { "12Q", 0, 0 },
		{ "-1G", 0, 0 }, { "", 0, 0 }, { "99999999999999999999", 0, 0 },
		{ "17179869184T", 0, 0 }, { "67108865", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *a[] = { "tern-vmm", "--kernel", "k", "--memory", (char *)cases[i].v, NULL };
		struct vmm_options o;
		struct err e;
		int ret = parse(5, a, &o, &e);

		if (cases[i].ok) {
			assert_int_equal(ret, 0);
			assert_true(o.memory == cases[i].bytes);
		} else {
			assert_int_not_equal(ret, 0);
			assert_non_null(strstr(e.msg, "--memory"));
		}
	}
}

static void test_vcpus_range(void **state)
{
	static const char *bad[] = { "0", "255", "1000", "-1", "two", "", "1.5" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *a[] = { "tern-vmm", "--kernel", "k", "--vcpus", (char *)bad[i], NULL };
		struct vmm_options o;
		struct err e;

		assert_int_equal(parse(5, a, &o, &e), -22);
		assert_non_null(strstr(e.msg, "--vcpus"));
	}
	char *ok[] = { "tern-vmm", "--kernel", "k", "--vcpus", "254", NULL };
	struct vmm_options o;
	struct err e;
	assert_int_equal(parse(5, ok, &o, &e), 0);
	assert_int_equal(o.vcpus, 254);
}

static void test_errors(void **state)
{
	struct { char *args[4]; int argc; const char *msg; } cases[] = {
		{ { "tern-vmm", "--kernel", "k", "--frobnicate" }, 4, "unknown option '--frobnicate'" },
		{ { "tern-vmm", "--kernel", "k", "--memory" }, 4, "'--memory' needs a value" },
		{ { "tern-vmm", "--kernel", "k", "stray" }, 4, "unexpected argument 'stray'" },
		{ { "tern-vmm", "--kernel", "k", "--serial=tty" }, 4, "--serial" },
		{ { "tern-vmm", "--kernel", "k", "--serial=file:" }, 4, "--serial" },
		{ { "tern-vmm", "--memory", "1G" }, 3, "--kernel FILE is required" },
		{ { "tern-vmm", "-x" }, 2, "unexpected argument '-x'" },
		{ { "tern-vmm", "--" }, 2, "unexpected argument '--'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vmm_options o;
		struct err e;

		assert_int_not_equal(parse(cases[i].argc, cases[i].args, &o, &e), 0);
		if (!strstr(e.msg, cases[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, e.msg, cases[i].msg);
	}
}

static void test_help_version(void **state)
{
	char *h[] = { "tern-vmm", "--help", NULL }, *v[] = { "tern-vmm", "--version", NULL };
	struct vmm_options o;
	struct err e;

	assert_int_equal(parse(2, h, &o, &e), 0);
	assert_true(o.help);
	assert_int_equal(parse(2, v, &o, &e), 0);
	assert_true(o.version);
	assert_non_null(strstr(vmm_usage, "--kernel"));
}

static void test_cpu_model(void **state)
{
	char **a = ARGV("--kernel", "k", "--cpu-model", "x86-64-v2", "--cpu-models-allowed=x86-64-v2,host-model");
	char **b = ARGV("--kernel", "k", "--cpu-model", "i486");
	char **c = ARGV("--incoming", "tcp:127.0.0.1:1", "--cpu-model", "x86-64-v2");
	char **d = ARGV("--print-host-facts");
	struct vmm_options o;
	struct err e;

	assert_int_equal(parse(6, a, &o, &e), 0);
	assert_string_equal(o.cpu_model, "x86-64-v2");
	assert_string_equal(o.cpu_models_allowed, "x86-64-v2,host-model");
	assert_int_equal(parse(5, b, &o, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "unknown model 'i486'"));
	assert_int_equal(parse(5, c, &o, &e), -EINVAL);	/* the stream brings it */
	assert_non_null(strstr(e.msg, "--cpu-model"));
	assert_int_equal(parse(2, d, &o, &e), 0);		/* no --kernel needed */
	assert_true(o.print_host_facts);
}

/* --incoming --memory maps RAM ahead; --mem-prealloc there needs the size */
static void test_mem_prealloc(void **state)
{
	char **a = ARGV("--kernel", "k", "--mem-prealloc");
	char **b = ARGV("--incoming", "tcp:127.0.0.1:1", "--memory", "2G", "--mem-prealloc");
	char **c = ARGV("--incoming", "tcp:127.0.0.1:1", "--mem-prealloc");
	char **d = ARGV("--incoming", "tcp:127.0.0.1:1", "--memory=512M");
	char **e2 = ARGV("--kernel", "k");
	struct vmm_options o;
	struct err e;

	(void)state;
	assert_int_equal(parse(4, a, &o, &e), 0);
	assert_true(o.mem_prealloc);
	assert_false(o.memory_set);
	assert_int_equal(parse(6, b, &o, &e), 0);
	assert_true(o.mem_prealloc && o.memory_set);
	assert_true(o.memory == 2ULL << 30);
	assert_int_equal(parse(4, c, &o, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "--mem-prealloc with --incoming needs --memory"));
	assert_int_equal(parse(4, d, &o, &e), 0);
	assert_true(o.memory_set && !o.mem_prealloc);
	assert_int_equal(parse(3, e2, &o, &e), 0);
	assert_false(o.mem_prealloc || o.memory_set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_cpu_model),
		cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_memory_sizes),
		cmocka_unit_test(test_mem_prealloc),
		cmocka_unit_test(test_vcpus_range),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_help_version),
	};
	return cmocka_run_group_tests_name("vmm-options", tests, NULL, NULL);
}
