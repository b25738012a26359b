/*
 * cmdline.c - parse tern-guest's "tg.*" kernel command line parameters.
 *
 * Words are separated by spaces; words not starting with "tg." are ignored
 * (so the same command line can carry console= etc.). A malformed or
 * unknown tg.* word prints a "TG WARN" line and keeps the default.
 */
#include "tg.h"

struct tg_word {
	const char *key;
	unsigned long klen;
	const char *val;
	unsigned long vlen;
};

static bool tg_key_is(const struct tg_word *w, const char *key)
{
	unsigned long n = strlen(key);

	return w->klen == n && !memcmp(w->key, key, n);
}

static bool tg_val_is(const struct tg_word *w, const char *s)
{
	unsigned long n = strlen(s);

	return w->vlen == n && !memcmp(w->val, s, n);
}

/* Decimal number with an optional K/M/G/T (binary) suffix, "iB"/"B" ok. */
static int tg_parse_num(const struct tg_word *w, bool suffix, u64 *out)
{
	const char *s = w->val, *end = w->val + w->vlen;
	u64 v = 0, mul = 1;

	if (s == end)
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (~0UL - 9) / 10)
			return -1;
		v = v * 10 + (u64)(*s - '0');
	}
	if (s == w->val)
		return -1;
	if (suffix && s < end) {
		switch (*s | 0x20) {
		case 'k': mul = 1UL << 10; break;
		case 'm': mul = 1UL << 20; break;
		case 'g': mul = 1UL << 30; break;
		case 't': mul = 1UL << 40; break;
		default: return -1;
		}
		s++;
		if (s < end && *s == 'i')
			s++;
		if (s < end && (*s | 0x20) == 'b')
			s++;
	}
	if (s != end || (v && mul > ~0UL / v))
		return -1;
	*out = v * mul;
	return 0;
}

static int tg_parse_rate(struct tg_params *p, const struct tg_word *w)
{
	u64 v;

	if (tg_val_is(w, "max")) {
		p->rate_mode = TG_RATE_MAX;
		return 0;
	}
	if (tg_parse_num(w, false, &v) < 0)
		return -1;
	p->rate_mode = v ? TG_RATE_PACED : TG_RATE_IDLE;
	p->rate_mibs = v;
	return 0;
}

static int tg_parse_exit(struct tg_params *p, const struct tg_word *w)
{
	static const struct {
		const char *name;
		enum tg_exit_mode mode;
	} modes[] = {
		{ "debug", TG_EXIT_DEBUG }, { "poweroff", TG_EXIT_POWEROFF },
		{ "reboot", TG_EXIT_REBOOT }, { "halt", TG_EXIT_HALT },
	};
	u32 i;

	for (i = 0; i < TG_ARRAY_SIZE(modes); i++) {
		if (tg_val_is(w, modes[i].name)) {
			p->exit_mode = modes[i].mode;
			return 0;
		}
	}
	return -1;
}

static int tg_parse_bool(const struct tg_word *w, bool *out)
{
	u64 v;

	if (tg_parse_num(w, false, &v) < 0 || v > 1)
		return -1;
	*out = v;
	return 0;
}

/* Plain-number parameters: key, field, smallest and largest value. */
struct tg_num_param {
	const char *key;
	unsigned long off;
	u64 min, max;
};

static const struct tg_num_param tg_num_params[] = {
	{ "tg.report_ms", __builtin_offsetof(struct tg_params, report_ms),
	  1, 3600000 },
	{ "tg.duration", __builtin_offsetof(struct tg_params, duration_s),
	  0, 100000000 },
	{ "tg.tsc_khz", __builtin_offsetof(struct tg_params, tsc_khz),
	  0, 100000000 },
	{ "tg.sweep_ms", __builtin_offsetof(struct tg_params, sweep_ms),
	  0, 3600000 },
	{ "tg.sparse", __builtin_offsetof(struct tg_params, sparse),
	  0, 4096 },
	{ "tg.tick_us", __builtin_offsetof(struct tg_params, tick_us),
	  10, 1000000 },
};

static int tg_parse_idle(struct tg_params *p, const struct tg_word *w)
{
	if (tg_val_is(w, "spin"))
		p->idle_halt = false;
	else if (tg_val_is(w, "halt"))
		p->idle_halt = true;
	else
		return -1;
	return 0;
}

static int tg_parse_word(struct tg_params *p, const struct tg_word *w)
{
	u64 v;
	u32 i;

	if (tg_key_is(w, "tg.wss"))
		return tg_parse_num(w, true, &p->wss);
	if (tg_key_is(w, "tg.rate"))
		return tg_parse_rate(p, w);
	if (tg_key_is(w, "tg.fill"))
		return tg_parse_bool(w, &p->fill);
	if (tg_key_is(w, "tg.selftest_corrupt"))
		return tg_parse_bool(w, &p->selftest_corrupt);
	if (tg_key_is(w, "tg.selftest_fault"))
		return tg_parse_bool(w, &p->selftest_fault);
	if (tg_key_is(w, "tg.echo"))
		return tg_parse_bool(w, &p->echo);
	if (tg_key_is(w, "tg.cpuid"))
		return tg_parse_bool(w, &p->cpuid);
	if (tg_key_is(w, "tg.exit"))
		return tg_parse_exit(p, w);
	if (tg_key_is(w, "tg.idle"))
		return tg_parse_idle(p, w);
	if (tg_key_is(w, "tg.cpus")) {
		if (tg_parse_num(w, false, &v) < 0 || !v || v > TG_MAX_CPUS)
			return -1;
		p->cpus = (u32)v;
		return 0;
	}
	for (i = 0; i < TG_ARRAY_SIZE(tg_num_params); i++) {
		const struct tg_num_param *n = &tg_num_params[i];

		if (!tg_key_is(w, n->key))
			continue;
		if (tg_parse_num(w, false, &v) < 0 || v < n->min || v > n->max)
			return -1;
		*(u64 *)((u8 *)p + n->off) = v;
		return 0;
	}
	return -2;
}

static void tg_params_warn(const struct tg_word *w, const char *what)
{
	char word[64];
	unsigned long n = (unsigned long)(w->val + w->vlen - w->key);

	if (n > sizeof(word) - 1)
		n = sizeof(word) - 1;
	memcpy(word, w->key, n);
	word[n] = '\0';
	tg_printf("TG WARN %s parameter %s\n", what, word);
}

static void tg_params_defaults(struct tg_params *p)
{
	memset(p, 0, sizeof(*p));
	p->rate_mode = TG_RATE_IDLE;
	p->fill = true;
	p->report_ms = 1000;
	p->sweep_ms = 2000;
	p->tick_us = 1000;
	p->exit_mode = TG_EXIT_DEBUG;
}

void tg_params_parse(struct tg_params *p, const char *s)
{
	struct tg_word w;
	int r;

	tg_params_defaults(p);
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		if (!*s)
			break;
		w.key = s;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '=')
			s++;
		w.klen = (unsigned long)(s - w.key);
		w.val = *s == '=' ? ++s : s;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n')
			s++;
		w.vlen = (unsigned long)(s - w.val);
		if (w.klen < 3 || memcmp(w.key, "tg.", 3))
			continue;
		r = tg_parse_word(p, &w);
		if (r < 0)
			tg_params_warn(&w, r == -2 ? "unknown" : "bad");
	}
}
