/*
 * postcopy.c - the pure parts of post-copy: the PC_REQ page request
 * encoding, bitmap scans, the source's request queue and the destination's
 * final report. No I/O, no KVM: unit-tested alone (tests/unit/mig).
 */
#include "postcopy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void pc_req_encode(uint8_t out[PC_REQ_SIZE], uint32_t block, uint64_t offset)
{
	for (int i = 0; i < 4; i++)
		out[i] = (uint8_t)(block >> (8 * i));
	for (int i = 0; i < 8; i++)
		out[4 + i] = (uint8_t)(offset >> (8 * i));
}

int pc_req_decode(const uint8_t *in, size_t len, uint32_t *block,
		  uint64_t *offset, struct err *err)
{
	if (len != PC_REQ_SIZE)
		return err_set(err, -EPROTO, "PC_REQ of %zu bytes, expected %d", len, PC_REQ_SIZE);
	*block = 0;
	*offset = 0;
	for (int i = 0; i < 4; i++)
		*block |= (uint32_t)in[i] << (8 * i);
	for (int i = 0; i < 8; i++)
		*offset |= (uint64_t)in[4 + i] << (8 * i);
	return 0;
}

static uint64_t scan(const uint64_t *words, uint64_t from, uint64_t to)
{
	while (from < to) {
		uint64_t w = words[from / 64] >> (from % 64);

		if (w) {
			uint64_t bit = from + (uint64_t)__builtin_ctzll(w);

			return bit < to ? bit : to;
		}
		from = (from / 64 + 1) * 64;
	}
	return to;
}

uint64_t pc_bitmap_next(const uint64_t *words, uint64_t nbits, uint64_t from)
{
	uint64_t bit;

	if (from >= nbits)
		from = 0;
	bit = scan(words, from, nbits);
	if (bit < nbits)
		return bit;
	bit = scan(words, 0, from);
	return bit < from ? bit : nbits;
}

uint64_t pc_bitmap_count(const uint64_t *words, uint64_t nbits)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < nbits / 64; w++)
		n += (uint64_t)__builtin_popcountll(words[w]);
	if (nbits % 64)
		n += (uint64_t)__builtin_popcountll(words[nbits / 64] &
						    ((1ULL << (nbits % 64)) - 1));
	return n;
}

void pc_reqq_init(struct pc_reqq *q)
{
	memset(q, 0, sizeof(*q));
}

bool pc_reqq_full(const struct pc_reqq *q)
{
	return q->n == PC_REQQ_CAP;
}

bool pc_reqq_push(struct pc_reqq *q, uint32_t block, uint64_t pfn)
{
	unsigned i;

	if (pc_reqq_full(q))
		return false;
	i = (q->head + q->n++) % PC_REQQ_CAP;
	q->e[i].block = block;
	q->e[i].pfn = pfn;
	return true;
}

bool pc_reqq_pop(struct pc_reqq *q, uint32_t *block, uint64_t *pfn)
{
	if (!q->n)
		return false;
	*block = q->e[q->head].block;
	*pfn = q->e[q->head].pfn;
	q->head = (q->head + 1) % PC_REQQ_CAP;
	q->n--;
	return true;
}

int pc_report_format(char *buf, size_t len, const struct pc_report *r)
{
	int n = snprintf(buf, len, "faults=%" PRIu64 " requests=%" PRIu64 " placed=%" PRIu64
			 " lat_avg_us=%" PRIu64 " lat_max_us=%" PRIu64 " lat_p50_us=%" PRIu64,
			 r->faults, r->requests, r->placed, r->lat_avg_us, r->lat_max_us,
			 r->lat_p50_us);

	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int pc_report_parse(const char *s, struct pc_report *r, struct err *err)
{
	int end = 0;

	memset(r, 0, sizeof(*r));
	if (sscanf(s, "faults=%" SCNu64 " requests=%" SCNu64 " placed=%" SCNu64
		   " lat_avg_us=%" SCNu64 " lat_max_us=%" SCNu64 "%n",
		   &r->faults, &r->requests, &r->placed, &r->lat_avg_us,
		   &r->lat_max_us, &end) != 5)
		return err_set(err, -EPROTO, "malformed PC_DONE report '%.64s'", s);
	s += end;
	end = 0;
	if (*s && (sscanf(s, " lat_p50_us=%" SCNu64 "%n", &r->lat_p50_us, &end) != 1 || s[end]))
		return err_set(err, -EPROTO, "malformed PC_DONE report tail '%.64s'", s);
	return 0;
}

void pc_id_format(char buf[PC_ID_TEXT_LEN], uint64_t id)
{
	snprintf(buf, PC_ID_TEXT_LEN, "pcid=%016" PRIx64, id);
}

int pc_id_parse(const char *s, uint64_t *id)
{
	uint64_t v = 0;

	if (strncmp(s, "pcid=", 5) || strlen(s) != PC_ID_TEXT_LEN - 1)
		return -EINVAL;
	for (s += 5; *s; s++) {
		int d = *s >= '0' && *s <= '9' ? *s - '0' :
			*s >= 'a' && *s <= 'f' ? *s - 'a' + 10 : -1;

		if (d < 0)
			return -EINVAL;
		v = v << 4 | (uint64_t)d;
	}
	if (!v)
		return -EINVAL;
	*id = v;
	return 0;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

size_t pc_bitmap_encode(uint8_t *out, uint32_t block, uint64_t first_word,
			const uint64_t *words, uint32_t n)
{
	put_le(out, block, 4);
	put_le(out + 4, 0, 4);
	put_le(out + 8, first_word, 8);
	for (uint32_t i = 0; i < n; i++)
		put_le(out + PC_BITMAP_HDR + 8 * i, words[i], 8);
	return PC_BITMAP_HDR + 8 * (size_t)n;
}

int pc_bitmap_decode(const uint8_t *in, size_t len, uint32_t *block,
		     uint64_t *first_word, uint64_t words[PC_BITMAP_WORDS_MAX],
		     uint32_t *n, struct err *err)
{
	if (len < PC_BITMAP_HDR + 8 || (len - PC_BITMAP_HDR) % 8 ||
	    (len - PC_BITMAP_HDR) / 8 > PC_BITMAP_WORDS_MAX)
		return err_set(err, -EPROTO, "PC_BITMAP of %zu bytes", len);
	if (get_le(in + 4, 4))
		return err_set(err, -EPROTO, "PC_BITMAP: reserved field not zero");
	*block = (uint32_t)get_le(in, 4);
	*first_word = get_le(in + 8, 8);
	*n = (uint32_t)((len - PC_BITMAP_HDR) / 8);
	for (uint32_t i = 0; i < *n; i++)
		words[i] = get_le(in + PC_BITMAP_HDR + 8 * i, 8);
	return 0;
}
