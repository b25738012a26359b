/*
 * json.c - the small JSON emitter behind the DESCRIPTION record.
 *
 * Text is appended to a memory-writer mig_stream, so it shares the sticky
 * error and the growth limit. The description lists every section with its
 * identity and, when it has one, its field table:
 *   {"format":"tern-migration-stream","major":1,"minor":0,
 *    "producer":"...","sections":[{"idstr":"uart@0x3f8","section_id":1,
 *    "instance_id":0,"version":2,"min_version":1,"fields":[...]}]}
 */
#define MIG_STREAM_INTERNAL
#include "stream_int.h"

#include <inttypes.h>
#include <stdio.h>

void mig_json_raw(struct mig_stream *out, const char *text)
{
	mig_stream_put_bytes(out, text, strlen(text));
}

void mig_json_u64(struct mig_stream *out, uint64_t v)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%" PRIu64, v);

	mig_stream_put_bytes(out, b, (size_t)n);
}

void mig_json_str(struct mig_stream *out, const char *str)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)str;

	mig_stream_put_u8(out, '"');
	for (; *p; p++) {
		if (*p == '"' || *p == '\\') {
			mig_stream_put_u8(out, '\\');
			mig_stream_put_u8(out, *p);
		} else if (*p < 0x20) {
			char e[6] = { '\\', 'u', '0', '0', hex[*p >> 4],
				      hex[*p & 15] };

			mig_stream_put_bytes(out, e, sizeof(e));
		} else {
			mig_stream_put_u8(out, *p);
		}
	}
	mig_stream_put_u8(out, '"');
}

void mig_desc_init(struct mig_desc *d, const char *producer)
{
	mig_stream_init_mem_writer(&d->out, MIG_DESCRIPTION_MAX);
	d->nsections = 0;
	mig_json_raw(&d->out, "{\"format\":\"tern-migration-stream\",\"major\":");
	mig_json_u64(&d->out, MIG_STREAM_MAJOR);
	mig_json_raw(&d->out, ",\"minor\":");
	mig_json_u64(&d->out, MIG_STREAM_MINOR);
	mig_json_raw(&d->out, ",\"producer\":");
	mig_json_str(&d->out, producer ? producer : "");
	mig_json_raw(&d->out, ",\"sections\":[");
}

int mig_desc_add_section(struct mig_desc *d, const struct mig_section_info *sec,
			 const struct mig_field *fields)
{
	struct mig_stream *o = &d->out;

	mig_json_raw(o, d->nsections++ ? ",{\"idstr\":" : "{\"idstr\":");
	mig_json_str(o, sec->idstr);
	mig_json_raw(o, ",\"section_id\":");
	mig_json_u64(o, sec->section_id);
	mig_json_raw(o, ",\"instance_id\":");
	mig_json_u64(o, sec->instance_id);
	mig_json_raw(o, ",\"version\":");
	mig_json_u64(o, sec->version);
	mig_json_raw(o, ",\"min_version\":");
	mig_json_u64(o, sec->min_version);
	if (fields) {
		mig_json_raw(o, ",\"fields\":");
		mig_fields_describe(fields, o);
	}
	mig_json_raw(o, "}");
	return mig_stream_error(o);
}

int mig_desc_put(struct mig_desc *d, struct mig_stream *s)
{
	const uint8_t *text;
	size_t len;

	mig_json_raw(&d->out, "]}");
	if (mig_stream_error(&d->out))
		return mig_stream_set_error(s, mig_stream_error(&d->out),
					    "DESCRIPTION: %s",
					    mig_stream_errmsg(&d->out));
	text = mig_stream_data(&d->out, &len);
	return mig_stream_put_description(s, (const char *)text, len);
}

void mig_desc_fini(struct mig_desc *d)
{
	mig_stream_fini(&d->out);
}
