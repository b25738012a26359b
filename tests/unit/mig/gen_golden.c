/*
 * gen_golden.c - writes the golden stream fixtures.
 *
 *   mig_gen_golden tests/golden/stream-v1.0.bin [tests/golden/stream-v1.0.json]
 *   mig_gen_golden --corpus tests/fuzz/mig/corpus_mig_stream
 *
 * The .bin is golden_build()'s output; the optional .json is its DESCRIPTION
 * record, for humans. Run it only when the format changes on purpose (see
 * docs/migration-stream.md, "Golden streams"). --corpus writes the fuzz
 * seeds: the golden stream, a crc-free copy and a small stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mig_test_util.h"

static int write_file(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(p, 1, len, f) != len || fclose(f)) {
		perror(path);
		return 1;
	}
	return 0;
}

static int write_variant(const char *dir, const char *name,
			 enum golden_variant v)
{
	char path[4096];
	struct mig_stream s;
	const uint8_t *p;
	size_t len;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	mig_stream_init_mem_writer(&s, 0);
	rc = golden_build_variant(&s, v) ? 1 : 0;
	p = mig_stream_data(&s, &len);
	if (!rc)
		rc = write_file(path, p, len);
	mig_stream_fini(&s);
	return rc;
}

static int write_corpus(const char *dir)
{
	return write_variant(dir, "golden-v1.0", GOLDEN_FULL) ||
	       write_variant(dir, "golden-nocrc", GOLDEN_NOCRC) ||
	       write_variant(dir, "small", GOLDEN_SMALL);
}

int main(int argc, char **argv)
{
	struct mig_stream s;
	const uint8_t *p;
	char *desc;
	size_t len;
	int rc;

	if (argc == 3 && !strcmp(argv[1], "--corpus"))
		return write_corpus(argv[2]);
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s OUT.bin [OUT.json] | --corpus DIR\n",
			argv[0]);
		return 2;
	}
	mig_stream_init_mem_writer(&s, 0);
	if (golden_build(&s)) {
		fprintf(stderr, "golden_build: %s\n", mig_stream_errmsg(&s));
		return 1;
	}
	p = mig_stream_data(&s, &len);
	rc = write_file(argv[1], p, len);
	mig_stream_fini(&s);
	if (!rc && argc == 3) {
		desc = golden_description();
		rc = desc ? write_file(argv[2], desc, strlen(desc)) : 1;
		free(desc);
	}
	if (!rc)
		printf("wrote %s (%zu bytes)\n", argv[1], len);
	return rc;
}
