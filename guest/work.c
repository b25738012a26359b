/*
 * work.c - tern-guest's workload: fill, paced rewrites, verification, stats.
 *
 * Every tested page holds a pattern derived from (pfn, generation): word 0 =
 * pfn, word 1 = generation, word i >= 2 = seed(pfn, gen) + (i - 2) * K. The
 * generation array (tg_pool.gen, one u32 per pool page, in guest RAM) says
 * what each page must hold; generation 0 means "never written".
 *
 * Each CPU owns one contiguous slice of the pool: it fills the slice (or only
 * its working-set part with tg.fill=0), then loops one page per iteration:
 * a background sweep verifies the filled part of the slice at a pace that
 * completes a sweep every tg.sweep_ms, and the rest of the time it rewrites
 * working-set pages (verify first, then gen++ and write the whole page),
 * walking them with a stride coprime to the working-set size, paced to
 * tg.rate with the TSC. No page is ever touched by two CPUs, so no locks.
 * The longest TSC gap between two moments a CPU was seen running (loop
 * iterations, and each spin and port access while it prints) is its stall
 * (struct tg_gap); migration downtime shows up as the largest stall, the
 * guest's own printing does not. With tg.echo=1, CPU 0 also polls COM1
 * every TG_ECHO_MS and reports what arrived as TG KEY lines.
 *
 * With tg.sparse=N, a rewrite changes only ceil(N/8) words: word 1 (the
 * generation) and words 2 .. ceil(N/8); the other words keep generation
 * 1's pattern. The check follows the same rule, so it stays exact, and a
 * delta against the page's previous content (XBZRLE) is about N bytes.
 */
#include "tg.h"

#define TG_K		0xd1b54a32d192ed03UL
#define TG_WORDS	(TG_PAGE_SIZE / 8)
#define TG_FP		8		/* fractional bits of pacing times */
#define TG_ERR_LINES	8		/* ERROR lines per CPU per interval */
#define TG_CATCHUP_MS	100		/* pacing debt kept after a stall */
#define TG_ECHO_MS	10		/* console input poll period */
#define TG_KEY_MAX	32		/* bytes per TG KEY line */

struct tg_cpu {
	u64 first;		/* first pool index of the slice */
	u64 npages;		/* pages in the slice */
	u64 wss;		/* rewritten: [first, first + wss) */
	u64 filled;		/* filled and verified: [first, first + filled) */
	u64 stride, wpos, vpos;
	u64 base, w_next, v_next, v_tpp;	/* pacing, TG_FP fixed point */
	u64 writes, verified, errors;
	struct tg_gap gap;	/* stall since the last report */
	u64 stall_all;		/* longest stall of the run, TSC ticks */
	u64 rep_tsc, rep_writes, next_report;
	u64 halted, rep_halted;	/* TSC ticks asleep (tg.idle=halt) */
	u32 err_lines;
	bool tsc_warned;
	bool halt;		/* tg.idle=halt and a TSC-deadline timer */
} __attribute__((aligned(64)));

static struct tg_cpu tg_cpus[TG_MAX_CPUS];
static u32 tg_ncpus;
static u64 tg_w_tpp, tg_report_ticks, tg_tick_ticks;
static u64 tg_fill_t0, tg_run_t0, tg_stop_tsc, tg_echo_next;
static volatile u32 tg_go, tg_filled_cnt, tg_run, tg_stop, tg_final_cnt;

static inline u64 tg_mix(u64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdUL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53UL;
	x ^= x >> 33;
	return x;
}

static inline u64 tg_seed(u64 pfn, u32 gen)
{
	return tg_mix(pfn * 0x9e3779b97f4a7c15UL + gen);
}

/* Words past 1 that a rewrite changes: all, or tg.sparse's share. */
static u32 tg_live_end(void)
{
	u64 n = (tg_params.sparse + 7) / 8;

	if (!tg_params.sparse || n >= TG_WORDS)
		return TG_WORDS;
	return n < 2 ? 2 : (u32)n + 1;
}

static u64 tg_expected(u64 pfn, u32 gen, u32 word)
{
	if (word == 0)
		return pfn;
	if (word == 1)
		return gen;
	if (word >= tg_live_end())
		gen = 1;
	return tg_seed(pfn, gen) + (u64)(word - 2) * TG_K;
}

/* Non-temporal store from a general register: no read-for-ownership. */
static inline void tg_stnt(u64 *p, u64 v)
{
	__asm__ volatile("movnti %1, %0" : "=m"(*p) : "r"(v));
}

/*
 * Write the page for generation gen. `whole`: every word (the fill, a
 * repair); otherwise only the words a rewrite changes (tg.sparse).
 */
static void tg_page_write(u64 pfn, u32 gen, bool whole)
{
	u64 *p = (u64 *)(pfn * TG_PAGE_SIZE), v = tg_seed(pfn, gen);
	u32 i, end = tg_live_end();

	if (!whole && gen == 1)
		whole = true;		/* first write, or wrapped: all of it */
	tg_stnt(&p[0], pfn);
	tg_stnt(&p[1], gen);
	for (i = 2; i < end; i++, v += TG_K)
		tg_stnt(&p[i], v);
	for (v = tg_seed(pfn, 1) + (u64)(end - 2) * TG_K; whole && i < TG_WORDS; i++, v += TG_K)
		tg_stnt(&p[i], v);
	__asm__ volatile("sfence" ::: "memory");
}

/* Returns -1 if the page is intact, else the first mismatching word. */
static int tg_page_check(u64 pfn, u32 gen)
{
	const u64 *p = (const u64 *)(pfn * TG_PAGE_SIZE);
	u64 v = tg_seed(pfn, gen), acc;
	u32 i, end = tg_live_end();

	__asm__ volatile("" ::: "memory");
	acc = (p[0] ^ pfn) | (p[1] ^ gen);
	for (i = 2; i < end; i++, v += TG_K)
		acc |= p[i] ^ v;
	for (v = tg_seed(pfn, 1) + (u64)(end - 2) * TG_K; i < TG_WORDS; i++, v += TG_K)
		acc |= p[i] ^ v;
	if (!acc)
		return -1;
	for (i = 0; i < TG_WORDS; i++) {
		if (p[i] != tg_expected(pfn, gen, i))
			return (int)i;
	}
	return 0;
}

static u64 tg_ticks_to_us(u64 t)
{
	return t * 1000 / tg_tsc_khz;
}

void tg_delay_us(u64 us)
{
	u64 t0 = tg_rdtsc(), n = us * tg_tsc_khz / 1000;

	while (tg_rdtsc() - t0 < n)
		tg_pause();
}

static void tg_write_idx(u64 idx, u64 pfn, bool whole)
{
	u32 gen = tg_pool.gen[idx] + 1;

	if (!gen)
		gen = 1;
	tg_pool.gen[idx] = gen;
	tg_page_write(pfn, gen, whole || gen == 1);
}

static void tg_error(struct tg_cpu *c, u32 cpu, u64 pfn, u32 gen, int w)
{
	const u64 *p = (const u64 *)(pfn * TG_PAGE_SIZE);

	c->errors++;
	if (c->err_lines >= TG_ERR_LINES)
		return;
	c->err_lines++;
	tg_cprintf(&c->gap, "TG ERROR cpu=%u page=0x%lx word=%d expected=0x%lx "
		   "got=0x%lx\n", cpu, pfn * TG_PAGE_SIZE, w,
		   tg_expected(pfn, gen, (u32)w), p[w]);
}

/* Verify one page; a bad page is counted, reported and rewritten. */
static void tg_check_idx(struct tg_cpu *c, u32 cpu, u64 idx, u64 pfn)
{
	u32 gen = tg_pool.gen[idx];
	int w;

	if (!gen)
		return;
	c->verified++;
	w = tg_page_check(pfn, gen);
	if (w < 0)
		return;
	tg_error(c, cpu, pfn, gen, w);
	tg_write_idx(idx, pfn, true);
}

static void tg_verify_one(struct tg_cpu *c, u32 cpu)
{
	u64 idx = c->first + c->vpos;

	tg_check_idx(c, cpu, idx, tg_pool_pfn(&tg_pool, idx));
	if (++c->vpos >= c->filled)
		c->vpos = 0;
}

static void tg_rewrite_one(struct tg_cpu *c, u32 cpu)
{
	u64 idx = c->first + c->wpos, pfn = tg_pool_pfn(&tg_pool, idx);

	tg_check_idx(c, cpu, idx, pfn);
	tg_write_idx(idx, pfn, false);
	c->writes++;
	c->wpos += c->stride;
	if (c->wpos >= c->wss)
		c->wpos -= c->wss;
}

static u64 tg_gcd(u64 a, u64 b)
{
	while (b) {
		u64 t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* A stride near 0.618 * n, coprime to n, so the walk visits every page. */
static u64 tg_stride(u64 n)
{
	u64 s;

	if (n < 3)
		return n ? 1 % n : 0;
	s = (n * 618 / 1000) | 1;
	while (tg_gcd(s, n) != 1)
		s++;
	return s % n;
}

void tg_work_setup(u32 ncpus)
{
	u64 n = tg_pool.npages, w = tg_params.wss / TG_PAGE_SIZE;
	u32 i;

	if (!w || w > n)
		w = n;
	tg_ncpus = ncpus;
	tg_report_ticks = tg_params.report_ms * tg_tsc_khz;
	tg_tick_ticks = tg_params.tick_us * tg_tsc_khz / 1000;
	if (tg_params.rate_mode == TG_RATE_PACED)
		tg_w_tpp = tg_tsc_khz * 1000 * ncpus / tg_params.rate_mibs;
	for (i = 0; i < ncpus; i++) {
		struct tg_cpu *c = &tg_cpus[i];

		c->first = i * n / ncpus;
		c->npages = (i + 1) * n / ncpus - c->first;
		c->wss = (i + 1) * w / ncpus - i * w / ncpus;
		if (c->wss > c->npages)
			c->wss = c->npages;
		c->filled = tg_params.fill ? c->npages : c->wss;
		c->stride = tg_stride(c->wss);
		if (tg_params.sweep_ms && c->filled) {
			c->v_tpp = (tg_params.sweep_ms * tg_tsc_khz << TG_FP) /
				   c->filled;
			if (!c->v_tpp)
				c->v_tpp = 1;
		}
	}
}

u64 tg_work_wss_pages(void)
{
	u64 w = 0;
	u32 i;

	for (i = 0; i < tg_ncpus; i++)
		w += tg_cpus[i].wss;
	return w;
}

static void tg_fill(struct tg_cpu *c)
{
	u64 i;

	for (i = 0; i < c->npages; i++) {
		u64 idx = c->first + i;

		if (i < c->filled) {
			tg_pool.gen[idx] = 1;
			tg_page_write(tg_pool_pfn(&tg_pool, idx), 1, true);
		} else {
			tg_pool.gen[idx] = 0;
		}
	}
}

/* The stall is read and reset first: the line's own ticks go to the next. */
static void tg_report(struct tg_cpu *c, u32 cpu, u64 now)
{
	u64 dt = now - c->rep_tsc, dw = c->writes - c->rep_writes;
	u64 rate = dt ? dw * tg_tsc_khz / 256 * 1000 / dt : 0;
	u64 halted = dt ? (c->halted - c->rep_halted) * 100 / dt : 0;
	u64 stall = c->gap.max;

	c->gap.max = 0;
	if (stall > c->stall_all)
		c->stall_all = stall;
	c->rep_tsc = now;
	c->rep_writes = c->writes;
	c->rep_halted = c->halted;
	c->err_lines = 0;
	tg_cprintf(&c->gap, "TG STAT t_ms=%lu cpu=%u writes_mib=%lu "
		   "rate_mibs=%lu verified_mib=%lu errors=%lu halted_pct=%lu "
		   "maxstall_us=%lu maxstall_all_us=%lu\n",
		   tg_ms_since_boot(now), cpu, c->writes >> 8, rate,
		   c->verified >> 8, c->errors, halted, tg_ticks_to_us(stall),
		   tg_ticks_to_us(c->stall_all));
	while (c->next_report <= now)
		c->next_report += tg_report_ticks;
}

static u64 tg_pace(u64 next, u64 tpp, u64 t)
{
	u64 cap = (TG_CATCHUP_MS * tg_tsc_khz) << TG_FP;

	next += tpp;
	if (t > next + cap)
		next = t - cap;
	return next;
}

/*
 * The TSC must never go backwards (a VMM that does not restore it after a
 * migration breaks this). Say so once per CPU and shift this CPU's TSC
 * references so pacing and reporting keep working; t_ms shows the jump.
 */
static void tg_tsc_backwards(struct tg_cpu *c, u32 cpu)
{
	u64 delta = c->gap.back;

	c->gap.back = 0;
	if (!c->tsc_warned) {
		c->tsc_warned = true;
		tg_cprintf(&c->gap, "TG WARN cpu=%u tsc went backwards by %lu "
			   "ticks\n", cpu, delta);
	}
	c->base -= delta;
	c->rep_tsc -= delta;
	c->next_report -= delta;
}

/* tg.echo=1, CPU 0: report what arrived on COM1 since the last poll. */
static void tg_echo_poll(struct tg_cpu *c, u64 now)
{
	char line[TG_KEY_MAX * 3 + 1];
	u8 buf[TG_KEY_MAX];
	u32 n, i;

	while (tg_echo_next <= now)
		tg_echo_next += TG_ECHO_MS * tg_tsc_khz;
	n = tg_serial_read(buf, sizeof(buf), &c->gap);
	if (!n)
		return;
	for (i = 0; i < n; i++)
		tg_snprintf(line + 3 * i, 4, " %02x", buf[i]);
	tg_cprintf(&c->gap, "TG KEY%s\n", line);
}

static inline u64 tg_min(u64 a, u64 b)
{
	return a < b ? a : b;
}

/*
 * tg.idle=halt: nothing is due, so sleep until the first thing that will
 * be (next sweep page, paced write, console poll, report, end of the run),
 * but at least tg.tick_us; what fell due meanwhile runs as a batch (the
 * pacing catches up). The stall clock counts only how late the CPU woke:
 * a pause of the VM that covers the deadline shows in full.
 */
static void tg_idle(struct tg_cpu *c, u32 cpu, bool writer, bool echo,
		    u64 now)
{
	u64 due = c->next_report, t;

	if (c->v_tpp)
		due = tg_min(due, c->base + (c->v_next >> TG_FP));
	if (writer)
		due = tg_min(due, c->base + (c->w_next >> TG_FP));
	if (echo)
		due = tg_min(due, tg_echo_next);
	if (!cpu && tg_stop_tsc)
		due = tg_min(due, tg_stop_tsc);
	if (due < now + tg_tick_ticks)
		due = now + tg_tick_ticks;
	tg_idle_until(due);
	t = tg_rdtsc();
	if (t < now)
		return;		/* backwards: the next tick reports it */
	c->halted += t - now;
	c->gap.last = tg_min(t, due);
}

/* One iteration = verify one page, rewrite one page, or pause. */
static void tg_loop(struct tg_cpu *c, u32 cpu)
{
	bool paced = tg_params.rate_mode == TG_RATE_PACED;
	bool writer = tg_params.rate_mode != TG_RATE_IDLE && c->wss;
	bool echo = tg_params.echo && !cpu;
	u64 now, t;

	c->base = tg_rdtsc();
	c->gap.last = c->base;
	c->gap.max = 0;
	if (echo)
		tg_echo_next = c->base;
	for (;;) {
		now = tg_rdtsc();
		tg_gap_note(&c->gap, now);
		if (c->gap.back)
			tg_tsc_backwards(c, cpu);
		t = (now - c->base) << TG_FP;
		if (c->v_tpp && t >= c->v_next) {
			tg_verify_one(c, cpu);
			c->v_next = tg_pace(c->v_next, c->v_tpp, t);
		} else if (writer && (!paced || t >= c->w_next)) {
			tg_rewrite_one(c, cpu);
			if (paced)
				c->w_next = tg_pace(c->w_next, tg_w_tpp, t);
		} else if (c->halt) {
			tg_idle(c, cpu, writer, echo, now);
		} else {
			tg_pause();
		}
		if (echo && now >= tg_echo_next)
			tg_echo_poll(c, now);
		if (now >= c->next_report)
			tg_report(c, cpu, now);
		if (tg_stop)
			return;
		if (!cpu && tg_stop_tsc && now >= tg_stop_tsc)
			tg_stop = 1;
	}
}

static void tg_wait_count(volatile u32 *cnt, u32 n)
{
	while (__atomic_load_n(cnt, __ATOMIC_ACQUIRE) < n)
		tg_pause();
}

static void tg_wait_flag(volatile u32 *flag)
{
	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE))
		tg_pause();
}

/*
 * Final full verification of the slice. Then the APs halt, and the BSP
 * prints DONE and ends the run the way tg.exit says.
 */
static void tg_finish(struct tg_cpu *c, u32 cpu) __attribute__((noreturn));
static void tg_finish(struct tg_cpu *c, u32 cpu)
{
	u64 i, errors = 0, t0 = tg_rdtsc(), v0 = c->verified, e0 = c->errors;

	for (i = 0; i < c->filled; i++)
		tg_check_idx(c, cpu, c->first + i,
			     tg_pool_pfn(&tg_pool, c->first + i));
	tg_printf("TG FINAL cpu=%u verified_mib=%lu errors=%lu ms=%lu "
		  "writes_mib=%lu maxstall_all_us=%lu\n", cpu,
		  (c->verified - v0) >> 8, c->errors - e0,
		  (tg_rdtsc() - t0) / tg_tsc_khz, c->writes >> 8,
		  tg_ticks_to_us(c->gap.max > c->stall_all ? c->gap.max :
							     c->stall_all));
	__atomic_add_fetch(&tg_final_cnt, 1, __ATOMIC_RELEASE);
	if (cpu)
		tg_halt();
	tg_wait_count(&tg_final_cnt, tg_ncpus);
	for (i = 0; i < tg_ncpus; i++)
		errors += tg_cpus[i].errors;
	tg_printf("TG DONE errors=%lu t_ms=%lu\n", errors,
		  tg_ms_since_boot(tg_rdtsc()));
	tg_end(tg_params.exit_mode, errors ? 1 : 0);
}

/* tg.selftest_corrupt=1: flip a bit behind the generation array's back. */
static void tg_selftest_corrupt(void)
{
	struct tg_cpu *c = &tg_cpus[0];
	u64 idx = c->first + c->filled / 2, pfn;
	u64 *p;

	if (!c->filled)
		return;
	pfn = tg_pool_pfn(&tg_pool, idx);
	p = (u64 *)(pfn * TG_PAGE_SIZE);
	p[100] ^= 1UL << 17;
	tg_printf("TG SELFTEST corrupted page=0x%lx word=100\n",
		  pfn * TG_PAGE_SIZE);
}

static void tg_bsp_fill_done(void)
{
	u64 pages = 0, now;
	u32 i;

	tg_wait_count(&tg_filled_cnt, tg_ncpus);
	for (i = 0; i < tg_ncpus; i++)
		pages += tg_cpus[i].filled;
	now = tg_rdtsc();
	tg_printf("TG FILLED pages=%lu ms=%lu\n", pages,
		  (now - tg_fill_t0) / tg_tsc_khz);
	if (tg_params.selftest_corrupt)
		tg_selftest_corrupt();
	tg_run_t0 = tg_rdtsc();
	if (tg_params.duration_s)
		tg_stop_tsc = tg_run_t0 +
			      tg_params.duration_s * 1000 * tg_tsc_khz;
	__atomic_store_n(&tg_run, 1, __ATOMIC_RELEASE);
}

void tg_work_run(u32 cpu)
{
	struct tg_cpu *c = &tg_cpus[cpu];

	if (!cpu) {
		tg_fill_t0 = tg_rdtsc();
		__atomic_store_n(&tg_go, 1, __ATOMIC_RELEASE);
	}
	tg_wait_flag(&tg_go);
	if (cpu >= tg_ncpus)
		for (;;)
			tg_pause();
	if (tg_params.idle_halt) {
		c->halt = tg_idle_init(cpu);
		if (!c->halt && !cpu)
			tg_printf("TG WARN tg.idle=halt: no TSC-deadline timer, "
				  "spinning\n");
	}
	tg_fill(c);
	__atomic_add_fetch(&tg_filled_cnt, 1, __ATOMIC_RELEASE);
	if (!cpu)
		tg_bsp_fill_done();
	tg_wait_flag(&tg_run);
	c->rep_tsc = tg_run_t0;
	c->next_report = tg_run_t0 + tg_report_ticks;
	tg_loop(c, cpu);
	tg_finish(c, cpu);
}
