/*
 * compress_speed.c - how fast one core compresses and decompresses 1 MiB
 * page batches with lz4 and zstd (levels 1 and 3), for two kinds of data:
 * the test guest's pattern (word i = seed + i * K: nothing an LZ coder can
 * find) and "compressible" pages (a text-like mix: runs, repeated words,
 * about a quarter zero). Prints MiB/s of input and the ratio.
 *
 *   make -C bench compress_speed && bench/compress_speed [-s MIB]
 */
#include <lz4.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#define PAGE 4096
#define BATCH (256 * PAGE)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fill_guest(uint8_t *p, size_t n)
{
	uint64_t *w = (uint64_t *)p;

	for (size_t pg = 0; pg < n / PAGE; pg++)
		for (size_t i = 0; i < PAGE / 8; i++)
			w[pg * PAGE / 8 + i] = pg * 0x9e3779b97f4a7c15ULL + i * 0xd1b54a32d192ed03ULL;
}

static void fill_text(uint8_t *p, size_t n)
{
	static const char *words[] = { "kernel ", "page ", "migration ", "0000 ", "tern ",
				       "struct ", "return ", "\n\t", "zzzz " };
	size_t i = 0;

	srand(1);
	while (i < n) {
		if (rand() % 4 == 0) {
			size_t z = (size_t)(rand() % 512);

			memset(p + i, 0, z < n - i ? z : n - i);
			i += z;
			continue;
		}
		const char *w = words[rand() % 9];

		for (; *w && i < n; w++)
			p[i++] = (uint8_t)*w;
	}
}

static void run(const char *what, const uint8_t *src, size_t size, int method, int level)
{
	size_t cap = method ? ZSTD_compressBound(BATCH) : (size_t)LZ4_compressBound(BATCH);
	uint8_t *c = malloc(cap), *d = malloc(BATCH);
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	double t0, tc = 0, td = 0;
	size_t out = 0;

	for (size_t off = 0; off + BATCH <= size; off += BATCH) {
		size_t n;

		t0 = now();
		n = method ? ZSTD_compressCCtx(cc, c, cap, src + off, BATCH, level) :
			     (size_t)LZ4_compress_default((const char *)src + off, (char *)c, BATCH, (int)cap);
		tc += now() - t0;
		out += n;
		t0 = now();
		if (method)
			ZSTD_decompressDCtx(dc, d, BATCH, c, n);
		else
			LZ4_decompress_safe((const char *)c, (char *)d, (int)n, BATCH);
		td += now() - t0;
	}
	printf("%-13s %-7s %3d  %8.0f  %8.0f  %6.3f\n", what, method ? "zstd" : "lz4", level,
	       size / 1048576.0 / tc, size / 1048576.0 / td, (double)out / size);
	ZSTD_freeCCtx(cc);
	ZSTD_freeDCtx(dc);
	free(c);
	free(d);
}

int main(int argc, char **argv)
{
	size_t size = 256u << 20;
	uint8_t *buf;
	int opt;

	while ((opt = getopt(argc, argv, "s:")) != -1)
		size = strtoull(optarg, NULL, 0) << 20;
	buf = malloc(size);
	if (!buf)
		return 1;
	printf("data          method  lvl  comp MiB/s  dec MiB/s  ratio\n");
	fill_guest(buf, size);
	run("guest-pattern", buf, size, 0, 1);
	run("guest-pattern", buf, size, 1, 1);
	run("guest-pattern", buf, size, 1, 3);
	fill_text(buf, size);
	run("compressible", buf, size, 0, 1);
	run("compressible", buf, size, 1, 1);
	run("compressible", buf, size, 1, 3);
	free(buf);
	return 0;
}
