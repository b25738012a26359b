/*
 * bench_xbzrle.c - XBZRLE encode/decode throughput on 4 KiB pages.
 *
 * Cases: (a) unchanged page, (b) one 8-byte word changed, (c) 10% of the
 * words changed, (d) a completely random new page. Each runs "hot" (one
 * page pair, in L1) and "cold" (a 64 MiB pool of pairs, so every page
 * comes from memory), with the AVX2 and the 8-byte-word scanners. Encode
 * uses dst_max = page size (what an engine passes: a delta only when it
 * is smaller); case (d) is also shown with dst_max = xbzrle_bound(), where
 * the whole page is copied as one literal. MB/s counts page bytes
 * (10^6 bytes per second).
 *
 *   bench_xbzrle [seconds-per-measurement]     (default 0.3)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "xbzrle.h"

#define PS	4096
#define POOL	16384	/* pairs in the cold pool: 64 MiB old + 64 MiB new */

static uint64_t rng = 0x243f6a8885a308d3ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void rnd_fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

/* Make new from old for case 'a'..'d'. */
static void make_case(char kind, const uint8_t *old, uint8_t *new)
{
	memcpy(new, old, PS);
	switch (kind) {
	case 'b':
		new[2048] ^= 0xff;
		new[2049] ^= 0x5a;
		break;
	case 'c':
		for (size_t i = 0; i < PS; i += 8) {
			if (rnd() % 10 == 0)
				for (size_t k = 0; k < 8; k++)
					new[i + k] ^= (uint8_t)(rnd() | 1);
		}
		break;
	case 'd':
		rnd_fill(new, PS);
		break;
	}
}

struct pool {
	uint8_t *old, *new, *enc, *scratch;	/* scratch: decode target */
	int *len;
	size_t n;
};

static double bench_encode(struct pool *p, size_t dst_max, double secs,
			   long *result)
{
	static uint8_t out[2 * PS];
	uint64_t t0 = time_now_ns(), t, iters = 0;
	long sum = 0;

	do {
		for (int r = 0; r < 64; r++, iters++) {
			size_t k = iters % p->n;

			sum += xbzrle_encode(p->old + k * PS, p->new + k * PS, PS,
					     out, dst_max);
		}
		t = time_now_ns();
	} while (t - t0 < secs * 1e9);
	*result = sum / (long)iters;
	return (double)iters * PS / ((double)(t - t0) / 1e9) / 1e6;
}

static double bench_decode(struct pool *p, double secs)
{
	uint64_t t0 = time_now_ns(), t, iters = 0;
	int bad = 0;

	do {
		for (int r = 0; r < 64; r++, iters++) {
			size_t k = iters % p->n;

			bad |= xbzrle_decode(p->enc + k * xbzrle_bound(PS),
					     (size_t)p->len[k],
					     p->scratch + k * PS, PS);
		}
		t = time_now_ns();
	} while (t - t0 < secs * 1e9);
	if (bad) {
		fprintf(stderr, "decode failed (%zu pages)\n", p->n);
		exit(1);
	}
	return (double)iters * PS / ((double)(t - t0) / 1e9) / 1e6;
}

static void pool_init(struct pool *p, size_t n, char kind)
{
	size_t b = xbzrle_bound(PS);

	p->n = n;
	p->old = malloc(n * PS);
	p->new = malloc(n * PS);
	p->enc = malloc(n * b);
	p->scratch = malloc(n * PS);
	p->len = malloc(n * sizeof(int));
	if (!p->old || !p->new || !p->enc || !p->scratch || !p->len) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	rnd_fill(p->old, n * PS);
	memcpy(p->scratch, p->old, n * PS);
	for (size_t k = 0; k < n; k++) {
		make_case(kind, p->old + k * PS, p->new + k * PS);
		p->len[k] = xbzrle_encode(p->old + k * PS, p->new + k * PS, PS,
					  p->enc + k * b, b);
	}
}

static void pool_fini(struct pool *p)
{
	free(p->old);
	free(p->new);
	free(p->enc);
	free(p->scratch);
	free(p->len);
}

static void run_case(char kind, const char *what, double secs)
{
	static const char *const label[] = { "word", "avx2" };

	for (size_t pi = 0; pi < 2; pi++) {
		struct pool p;
		size_t n = pi ? POOL : 1;

		pool_init(&p, n, kind);
		for (int simd = 0; simd < 2; simd++) {
			long r1, r2;
			double e1, e2 = 0, d = 0;

			if (simd && !xbzrle_use_simd(true))
				continue;
			if (!simd)
				xbzrle_use_simd(false);
			e1 = bench_encode(&p, PS, secs, &r1);
			if (kind == 'd')
				e2 = bench_encode(&p, xbzrle_bound(PS), secs, &r2);
			if (kind != 'a')
				d = bench_decode(&p, secs);
			printf("(%c) %-22s %-4s %s  encode %8.0f MB/s (ret %5ld)",
			       kind, what, pi ? "cold" : "hot", label[simd], e1, r1);
			if (kind == 'd')
				printf("  bound: %6.0f MB/s (ret %ld)", e2, r2);
			if (kind != 'a')
				printf("  decode %8.0f MB/s", d);
			printf("\n");
		}
		pool_fini(&p);
	}
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 0.3;

	if (secs <= 0)
		secs = 0.3;
	run_case('a', "unchanged", secs);
	run_case('b', "one word changed", secs);
	run_case('c', "10% of words changed", secs);
	run_case('d', "random page", secs);
	xbzrle_use_simd(true);
	return 0;
}
