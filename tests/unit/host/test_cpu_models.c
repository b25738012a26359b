/*
 * test_cpu_models.c - the CPU model table: levels are supersets of their
 * parents, support against a fake KVM_GET_SUPPORTED_CPUID, the closest
 * model, CPUID masking, and the CPU part of the host facts (labels).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cpu_models.h"
#include "host.h"

/* A fake supported-CPUID list with exactly the features of `model`. */
static size_t fake_cpuid(const char *model, const char *vendor,
			 struct kvm_cpuid_entry2 *e)
{
	static const uint32_t leaves[][2] = {
		{ 0, 0 }, { 1, 0 }, { 7, 0 }, { 7, 1 }, { 0xd, 0 }, { 0xd, 1 },
		{ 0x80000001, 0 },
	};
	const struct cpu_model *m = cpu_model_find(model);
	struct cpu_featset fs;
	size_t n = sizeof(leaves) / sizeof(leaves[0]);

	memset(e, 0, n * sizeof(*e));
	for (size_t i = 0; i < n; i++) {
		e[i].function = leaves[i][0];
		e[i].index = leaves[i][1];
	}
	memcpy(&e[0].ebx, vendor, 4);
	memcpy(&e[0].edx, vendor + 4, 4);
	memcpy(&e[0].ecx, vendor + 8, 4);
	e[1].eax = 0x000a0671;			/* family 6 model 0xa7 stepping 1 */
	e[1].ecx = 1u << 31;			/* hypervisor: passes through */
	e[4].eax = 0xe7;			/* x87 SSE AVX opmask ZMM */
	cpu_model_features(m, &fs);
	for (size_t f = 0; f < cpu_feature_count(); f++) {
		const struct cpu_feature *cf = cpu_feature_get(f);

		if (!cpu_featset_has(&fs, f))
			continue;
		for (size_t i = 0; i < n; i++) {
			if (e[i].function != cf->leaf || e[i].index != cf->subleaf)
				continue;
			if (cf->reg == CPU_REG_EAX) e[i].eax |= 1u << cf->bit;
			if (cf->reg == CPU_REG_EBX) e[i].ebx |= 1u << cf->bit;
			if (cf->reg == CPU_REG_ECX) e[i].ecx |= 1u << cf->bit;
			if (cf->reg == CPU_REG_EDX) e[i].edx |= 1u << cf->bit;
		}
	}
	return n;
}

static void test_every_model_extends_its_parent(void **state)
{
	for (size_t i = 0; i < cpu_model_count(); i++) {
		const struct cpu_model *m = cpu_model_get(i), *p;
		struct cpu_featset a, b;

		cpu_model_features(m, &a);
		assert_true(cpu_featset_count(&a) > 0);
		if (!cpu_model_parent(m))
			continue;
		p = cpu_model_find(cpu_model_parent(m));
		assert_non_null(p);		/* the parent exists */
		cpu_model_features(p, &b);
		assert_true(cpu_featset_subset(&b, &a));
	}
}

static void test_psabi_levels(void **state)
{
	static const char *const lv[] = { "x86-64-v1", "x86-64-v2", "x86-64-v3", "x86-64-v4" };
	static const char *const adds[] = { "sse2", "sse4_2", "avx2", "avx512f" };
	struct cpu_featset prev = { { 0 } }, cur;

	for (size_t i = 0; i < 4; i++) {
		cpu_model_features(cpu_model_find(lv[i]), &cur);
		assert_true(cpu_featset_subset(&prev, &cur));
		assert_true(cpu_featset_count(&cur) > cpu_featset_count(&prev));
		assert_true(cpu_featset_has(&cur, (size_t)cpu_feature_find(adds[i])));
		if (i)
			assert_false(cpu_featset_has(&prev, (size_t)cpu_feature_find(adds[i])));
		prev = cur;
	}
	/* the psABI's exact lists: spot checks */
	cpu_model_features(cpu_model_find("x86-64-v2"), &cur);
	assert_true(cpu_featset_has(&cur, (size_t)cpu_feature_find("cx16")));
	assert_true(cpu_featset_has(&cur, (size_t)cpu_feature_find("lahf_lm")));
	cpu_model_features(cpu_model_find("x86-64-v3"), &cur);
	assert_true(cpu_featset_has(&cur, (size_t)cpu_feature_find("abm")));	/* LZCNT */
	assert_true(cpu_featset_has(&cur, (size_t)cpu_feature_find("movbe")));
}

static void test_feature_table_unique(void **state)
{
	for (size_t i = 0; i < cpu_feature_count(); i++) {
		const struct cpu_feature *a = cpu_feature_get(i);

		assert_int_equal(cpu_feature_find(a->name), (int)i);
		assert_true(a->bit < 32);
		for (size_t j = i + 1; j < cpu_feature_count(); j++) {
			const struct cpu_feature *b = cpu_feature_get(j);

			assert_false(a->leaf == b->leaf && a->subleaf == b->subleaf &&
				     a->reg == b->reg && a->bit == b->bit);
		}
	}
	assert_null(cpu_model_find("Pentium-Pro"));
}

static void test_supported_against_fake_kvm(void **state)
{
	struct kvm_cpuid_entry2 e[16];
	struct cpu_featset host;
	const char *missing = NULL;
	size_t n = fake_cpuid("Skylake-Server", "GenuineIntel", e);

	cpu_featset_from_cpuid(e, n, &host);
	assert_true(cpu_model_supported(cpu_model_find("x86-64-v4"), &host, NULL));
	assert_true(cpu_model_supported(cpu_model_find("Haswell"), &host, NULL));
	assert_false(cpu_model_supported(cpu_model_find("Cascadelake-Server"), &host, &missing));
	assert_string_equal(missing, "avx512_vnni");
	assert_false(cpu_model_supported(cpu_model_find("EPYC"), &host, &missing));
	/* the closest entry for this vendor is the one we faked */
	assert_string_equal(cpu_model_name(cpu_model_closest(&host, "GenuineIntel")),
			    "Skylake-Server");
	/* an unknown vendor only gets the neutral levels */
	assert_string_equal(cpu_model_name(cpu_model_closest(&host, "HygonGenuine")),
			    "x86-64-v4");
}

static void test_pvm_quirk_hides_cx16(void **state)
{
	struct kvm_cpuid_entry2 e[16];
	struct cpu_featset host;
	size_t n = fake_cpuid("x86-64-v2", "GenuineIntel", e);

	cpu_featset_from_cpuid(e, n, &host);
	assert_true(cpu_model_supported(cpu_model_find("x86-64-v2"), &host, NULL));
	cpu_featset_host_quirks(&host, true);
	assert_false(cpu_model_supported(cpu_model_find("x86-64-v2"), &host, NULL));
}

static void test_check_messages(void **state)
{
	struct kvm_cpuid_entry2 e[16];
	const struct cpu_model *m;
	struct cpu_featset host;
	struct err err = { 0 };
	size_t n = fake_cpuid("x86-64-v3", "GenuineIntel", e);

	cpu_featset_from_cpuid(e, n, &host);
	assert_int_equal(cpu_model_check(NULL, &host, NULL, &m, &err), 0);
	assert_null(m);
	assert_int_equal(cpu_model_check("x86-64-v3", &host, "x86-64-v3,host-model", &m, &err), 0);
	assert_string_equal(cpu_model_name(m), "x86-64-v3");
	assert_true(cpu_model_check("x86-64-v4", &host, NULL, &m, &err) < 0);
	assert_string_equal(err.msg, "cpu model 'x86-64-v4' needs avx512f, which this host lacks");
	err_clear(&err);
	assert_true(cpu_model_check("x86-64-v2", &host, "x86-64-v1", &m, &err) < 0);
	assert_non_null(strstr(err.msg, "not allowed on this host"));
	err_clear(&err);
	assert_true(cpu_model_check("host-model", &host, "x86-64-v1", &m, &err) < 0);
	err_clear(&err);
	assert_true(cpu_model_check("i486", &host, NULL, &m, &err) < 0);
	assert_non_null(strstr(err.msg, "unknown cpu model 'i486'"));
	assert_true(cpu_model_allowed("a, b,c", "b"));
	assert_false(cpu_model_allowed("ab,c", "a"));
	assert_true(cpu_model_allowed("", "a"));
}

static const struct kvm_cpuid_entry2 *leaf(const struct kvm_cpuid_entry2 *e, size_t n,
					   uint32_t fn, uint32_t idx)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].function == fn && e[i].index == idx)
			return &e[i];
	return NULL;
}

static void test_apply_masks_to_model(void **state)
{
	struct kvm_cpuid_entry2 e[16];
	struct cpu_featset got, want;
	size_t n = fake_cpuid("Icelake-Server", "GenuineIntel", e);
	const struct cpu_model *v2 = cpu_model_find("x86-64-v2");

	e[2].edx |= 1u << 29;			/* arch_capabilities: not in v2 */
	cpu_model_apply(v2, e, n);
	cpu_featset_from_cpuid(e, n, &got);
	cpu_model_features(v2, &want);
	assert_memory_equal(&got, &want, sizeof(got));
	assert_int_equal(leaf(e, n, 7, 0)->ebx & (1u << 5), 0);	/* no AVX2 */
	assert_int_equal(leaf(e, n, 7, 0)->edx, 0);
	assert_true(leaf(e, n, 1, 0)->ecx & (1u << 31));		/* hypervisor kept */
	assert_int_equal(leaf(e, n, 1, 0)->eax, 0x000a0671);	/* FMS kept */
	assert_int_equal(leaf(e, n, 0xd, 0)->eax, 0x3);		/* x87+SSE only */
	assert_int_equal(memcmp(&leaf(e, n, 0, 0)->ebx, "Genu", 4), 0);
}

static void test_facts_cpu_and_labels(void **state)
{
	struct kvm_cpuid_entry2 e[16];
	size_t n = fake_cpuid("Haswell", "GenuineIntel", e);
	struct host_config cfg = { .allowed_models = { "x86-64-v2", "Haswell" }, .n_allowed = 2 };
	json_t *f = json_object(), *labels;

	assert_int_equal(host_facts_cpu(f, e, n, false, "Fake CPU", &cfg), 0);
	assert_string_equal(json_string_value(json_object_get(f, "host_model")), "Haswell");
	assert_false(json_is_true(json_object_get(f, "host_model_allowed")));
	assert_int_equal(json_array_size(json_object_get(f, "cpu_models")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(f, "cpu"), "model")), 0xa7);
	labels = json_object_get(f, "labels");
	assert_non_null(json_object_get(labels, "cpu-model.node.tern.io/Haswell"));
	assert_non_null(json_object_get(labels, "cpu-model-migration.node.tern.io/x86-64-v2"));
	assert_null(json_object_get(labels, "cpu-model.node.tern.io/x86-64-v3"));	/* not allowed */
	assert_null(json_object_get(labels, "host-model-cpu.node.tern.io/Haswell"));	/* not allowed */
	assert_non_null(json_object_get(labels, "cpu-feature.node.tern.io/avx2"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(f, "cpu_models_unsupported"),
								"x86-64-v3")),
			    "not allowed by the host's configuration");
	json_decref(f);
	f = json_object();
	assert_int_equal(host_facts_cpu(f, e, n, false, NULL, NULL), 0);
	assert_non_null(json_object_get(json_object_get(f, "labels"),
					"host-model-cpu.node.tern.io/Haswell"));
	json_decref(f);
}

static void test_models_json(void **state)
{
	json_t *j = host_cpu_models_json();

	assert_int_equal(json_array_size(json_object_get(j, "models")), cpu_model_count());
	assert_int_equal(json_array_size(json_object_get(j, "features")), cpu_feature_count());
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_model_extends_its_parent),
		cmocka_unit_test(test_psabi_levels),
		cmocka_unit_test(test_feature_table_unique),
		cmocka_unit_test(test_supported_against_fake_kvm),
		cmocka_unit_test(test_pvm_quirk_hides_cx16),
		cmocka_unit_test(test_check_messages),
		cmocka_unit_test(test_apply_masks_to_model),
		cmocka_unit_test(test_facts_cpu_and_labels),
		cmocka_unit_test(test_models_json),
	};

	return cmocka_run_group_tests_name("host-cpu-models", tests, NULL, NULL);
}
