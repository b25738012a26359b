/*
 * host.c - collect this host's facts (host.h): KVM's supported CPUID read
 * through the CPU model table, memory and CPUs from /proc and sysconf, NUMA
 * nodes from /sys, versions from uname and KVM, and the scheduler labels.
 */
#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cpu_models.h"
#include "util.h"

#ifndef TERN_VERSION
#define TERN_VERSION "unknown"
#endif

#define LABEL_PREFIX ".node.tern.io/"

const char *host_config_allowed_csv(const struct host_config *cfg, char *buf,
				    size_t size)
{
	size_t off = 0;

	if (!size)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; cfg && i < cfg->n_allowed && i < ARRAY_SIZE(cfg->allowed_models); i++) {
		int n;

		if (!cfg->allowed_models[i])
			continue;
		n = snprintf(buf + off, size - off, "%s%s", off ? "," : "",
			     cfg->allowed_models[i]);
		if (n < 0 || (size_t)n >= size - off)
			break;
		off += (size_t)n;
	}
	return buf;
}

int host_config_parse_allowed(struct host_config *cfg, char *csv)
{
	char *save = NULL;

	cfg->n_allowed = 0;
	for (char *t = strtok_r(csv, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		if (cfg->n_allowed >= ARRAY_SIZE(cfg->allowed_models))
			return -E2BIG;
		cfg->allowed_models[cfg->n_allowed++] = t;
	}
	return 0;
}

static json_t *model_json(const struct cpu_model *m)
{
	json_t *feats = json_array();
	struct cpu_featset fs;

	cpu_model_features(m, &fs);
	for (size_t i = 0; i < cpu_feature_count(); i++)
		if (cpu_featset_has(&fs, i))
			json_array_append_new(feats, json_string(cpu_feature_get(i)->name));
	return json_pack("{s:s, s:s?, s:s?, s:o}", "name", cpu_model_name(m),
			 "parent", cpu_model_parent(m), "vendor", cpu_model_vendor(m),
			 "features", feats);
}

json_t *host_cpu_models_json(void)
{
	json_t *models = json_array(), *feats = json_array();

	for (size_t i = 0; i < cpu_model_count(); i++)
		json_array_append_new(models, model_json(cpu_model_get(i)));
	for (size_t i = 0; i < cpu_feature_count(); i++) {
		const struct cpu_feature *f = cpu_feature_get(i);

		json_array_append_new(feats, json_pack("{s:s, s:I, s:I, s:s, s:i}",
			"name", f->name, "leaf", (json_int_t)f->leaf,
			"subleaf", (json_int_t)f->subleaf, "reg", cpu_reg_name(f->reg),
			"bit", (int)f->bit));
	}
	return json_pack("{s:o, s:o}", "models", models, "features", feats);
}

static const struct kvm_cpuid_entry2 *leaf(const struct kvm_cpuid_entry2 *e,
					   size_t n, uint32_t fn)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].function == fn && e[i].index == 0)
			return &e[i];
	return NULL;
}

/* vendor, family, model, stepping, brand string into "cpu" */
static void cpu_ident(json_t *cpu, const struct kvm_cpuid_entry2 *e, size_t n,
		      const char *brand, char *vendor, size_t vsize)
{
	const struct kvm_cpuid_entry2 *l0 = leaf(e, n, 0), *l1 = leaf(e, n, 1);
	uint32_t a = l1 ? l1->eax : 0, fam = (a >> 8) & 0xf, model = (a >> 4) & 0xf;

	vendor[0] = '\0';
	if (l0 && vsize > 12) {
		memcpy(vendor, &l0->ebx, 4);
		memcpy(vendor + 4, &l0->edx, 4);
		memcpy(vendor + 8, &l0->ecx, 4);
		vendor[12] = '\0';
	}
	if (fam == 0xf)
		fam += (a >> 20) & 0xff;
	if (fam == 6 || fam >= 0xf)
		model += ((a >> 16) & 0xf) << 4;
	json_object_set_new(cpu, "vendor", json_string(vendor));
	json_object_set_new(cpu, "family", json_integer(fam));
	json_object_set_new(cpu, "model", json_integer(model));
	json_object_set_new(cpu, "stepping", json_integer(a & 0xf));
	json_object_set_new(cpu, "model_name", json_string(brand ? brand : ""));
}

/* FNV-1a over vendor, family/model/stepping and the feature set. */
static uint64_t host_model_id(const char *vendor, uint32_t fms,
			      const struct cpu_featset *fs)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const unsigned char *p = (const unsigned char *)vendor;

	while (*p)
		h = (h ^ *p++) * 0x100000001b3ULL;
	for (int i = 0; i < 4; i++)
		h = (h ^ ((fms >> (8 * i)) & 0xff)) * 0x100000001b3ULL;
	for (size_t w = 0; w < CPU_FEAT_WORDS; w++)
		for (int i = 0; i < 8; i++)
			h = (h ^ ((fs->w[w] >> (8 * i)) & 0xff)) * 0x100000001b3ULL;
	return h;
}

static void set_label(json_t *labels, const char *kind, const char *name)
{
	char key[160];

	snprintf(key, sizeof(key), "%s" LABEL_PREFIX "%s", kind, name);
	json_object_set_new(labels, key, json_string("true"));
}

static json_t *flags_json(const struct cpu_featset *fs, json_t *labels)
{
	json_t *flags = json_array();

	for (size_t i = 0; i < cpu_feature_count(); i++) {
		if (!cpu_featset_has(fs, i))
			continue;
		json_array_append_new(flags, json_string(cpu_feature_get(i)->name));
		set_label(labels, "cpu-feature", cpu_feature_get(i)->name);
	}
	return flags;
}

/* Named models supported here (and allowed), with labels; the others with why. */
static void models_json(json_t *facts, const struct cpu_featset *fs,
			const char *csv, json_t *labels)
{
	json_t *ok = json_array(), *no = json_object();

	for (size_t i = 0; i < cpu_model_count(); i++) {
		const struct cpu_model *m = cpu_model_get(i);
		const char *name = cpu_model_name(m), *missing = NULL;
		char why[96];

		if (!cpu_model_supported(m, fs, &missing)) {
			snprintf(why, sizeof(why), "needs %s, which this host lacks", missing);
			json_object_set_new(no, name, json_string(why));
		} else if (!cpu_model_allowed(csv, name)) {
			json_object_set_new(no, name, json_string("not allowed by the host's configuration"));
		} else {
			json_array_append_new(ok, json_string(name));
			set_label(labels, "cpu-model", name);
			set_label(labels, "cpu-model-migration", name);
		}
	}
	json_object_set_new(facts, "cpu_models", ok);
	json_object_set_new(facts, "cpu_models_unsupported", no);
}

int host_facts_cpu(json_t *facts, const struct kvm_cpuid_entry2 *e, size_t n,
		   bool is_pvm, const char *brand, const struct host_config *cfg)
{
	json_t *cpu = json_object(), *labels = json_object();
	const struct kvm_cpuid_entry2 *l1 = leaf(e, n, 1);
	const struct cpu_model *closest;
	struct cpu_featset fs;
	char vendor[16], csv[1024], id[24];
	bool hm_ok;

	if (!cpu || !labels) {
		json_decref(cpu);
		json_decref(labels);
		return -ENOMEM;
	}
	host_config_allowed_csv(cfg, csv, sizeof(csv));
	cpu_featset_from_cpuid(e, n, &fs);
	cpu_featset_host_quirks(&fs, is_pvm);
	cpu_ident(cpu, e, n, brand, vendor, sizeof(vendor));
	json_object_set_new(cpu, "flags", flags_json(&fs, labels));
	json_object_set_new(facts, "cpu", cpu);
	closest = cpu_model_closest(&fs, vendor);
	json_object_set_new(facts, "host_model",
			    json_string(closest ? cpu_model_name(closest) : "none"));
	snprintf(id, sizeof(id), "%016llx", (unsigned long long)
		 host_model_id(vendor, l1 ? l1->eax : 0, &fs));
	json_object_set_new(facts, "host_model_id", json_string(id));
	hm_ok = cpu_model_allowed(csv, CPU_MODEL_HOST);
	json_object_set_new(facts, "host_model_allowed", json_boolean(hm_ok));
	if (hm_ok && closest)
		set_label(labels, "host-model-cpu", cpu_model_name(closest));
	models_json(facts, &fs, csv, labels);
	json_object_set_new(facts, "labels", labels);
	return 0;
}

/* ---- reading the host ---- */

static struct kvm_cpuid2 *supported_cpuid(int fd)
{
	for (unsigned n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG)
			return NULL;
	}
	return NULL;
}

/* A "key : value" line's value from a /proc file into buf, or "". */
static char *proc_value(const char *path, const char *key, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	char line[512];
	size_t klen = strlen(key);

	buf[0] = '\0';
	if (!f)
		return buf;
	while (fgets(line, sizeof(line), f)) {
		char *v;

		if (strncmp(line, key, klen) || !(v = strchr(line + klen, ':')))
			continue;
		v += strspn(v + 1, " \t") + 1;
		v[strcspn(v, "\n")] = '\0';
		str_copy(buf, size, v);
		break;
	}
	fclose(f);
	return buf;
}

static uint64_t kb_value(const char *path, const char *key)
{
	char buf[64];

	return strtoull(proc_value(path, key, buf, sizeof(buf)), NULL, 10) * 1024;
}

static json_t *capacity(uint64_t total, uint64_t reserved)
{
	return json_pack("{s:I, s:I, s:I}", "total", (json_int_t)total,
			 "reserved", (json_int_t)reserved,
			 "allocatable", (json_int_t)(total > reserved ? total - reserved : 0));
}

static json_t *numa_nodes(void)
{
	json_t *nodes = json_array();

	for (int i = 0; i < 1024; i++) {
		char path[96], cpus[256] = "", mem[96];
		struct stat st;
		FILE *f;

		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", i);
		if (stat(path, &st))
			continue;
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist", i);
		f = fopen(path, "re");
		if (f) {
			if (fgets(cpus, sizeof(cpus), f))
				cpus[strcspn(cpus, "\n")] = '\0';
			fclose(f);
		}
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/meminfo", i);
		snprintf(mem, sizeof(mem), "Node %d MemTotal", i);
		json_array_append_new(nodes, json_pack("{s:i, s:s, s:I}", "id", i, "cpus", cpus,
						       "memory", (json_int_t)kb_value(path, mem)));
	}
	return nodes;
}

static void system_facts(json_t *facts, const struct host_config *cfg)
{
	struct utsname u;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char hn[256] = "";

	if (uname(&u) == 0)
		json_object_set_new(facts, "kernel", json_string(u.release));
	if (gethostname(hn, sizeof(hn) - 1) == 0)
		json_object_set_new(facts, "hostname", json_string(hn));
	json_object_set_new(facts, "tern_version", json_string(TERN_VERSION));
	json_object_set_new(facts, "memory",
			    capacity(kb_value("/proc/meminfo", "MemTotal"),
				     cfg ? cfg->reserved_memory : 0));
	json_object_set_new(facts, "cpus", capacity(ncpu > 0 ? (uint64_t)ncpu : 0,
						   cfg ? cfg->reserved_cpus : 0));
	json_object_set_new(json_object_get(facts, "cpus"), "allocation_ratio",
			    json_real(4.0));
	json_object_set_new(facts, "numa", numa_nodes());
}

static int kvm_facts(json_t *facts, const struct host_config *cfg, struct err *err)
{
	const char *dev = getenv("TERN_KVM_DEVICE");
	struct kvm_cpuid2 *c;
	struct stat st;
	bool pvm = stat("/sys/module/kvm_pvm", &st) == 0;
	char brand[128];
	int fd, api, ret;

	dev = dev ? dev : "/dev/kvm";
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, -errno, "cannot open %s: %s", dev, strerror(errno));
	api = ioctl(fd, KVM_GET_API_VERSION, 0);
	c = supported_cpuid(fd);
	close(fd);
	if (!c)
		return err_set(err, -EIO, "%s: KVM_GET_SUPPORTED_CPUID failed", dev);
	json_object_set_new(facts, "kvm", json_pack("{s:s, s:i, s:b}", "device", dev,
						    "api_version", api, "pvm", pvm));
	proc_value("/proc/cpuinfo", "model name", brand, sizeof(brand));
	ret = host_facts_cpu(facts, c->entries, c->nent, pvm, brand, cfg);
	free(c);
	return ret ? err_set(err, ret, "out of memory") : 0;
}

json_t *host_facts_collect(const struct host_config *cfg, struct err *err)
{
	json_t *facts = json_object();

	if (!facts) {
		err_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	if (kvm_facts(facts, cfg, err)) {
		json_decref(facts);
		return NULL;
	}
	system_facts(facts, cfg);
	return facts;
}
