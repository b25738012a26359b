/*
 * field.c - device state as versioned field tables (the C counterpart of
 * QEMU's VMStateDescription).
 *
 * A table of struct mig_field describes a plain wire-state struct. Each
 * field travels as a TLV {u16 id, u8 type (0x80 = optional), u32 len,
 * value}, integers little-endian element by element. Decoding works on a
 * scratch copy of the caller's (initialised) struct and commits it only
 * when the whole payload is valid: no partial changes, no writes outside the
 * struct whatever the input.
 */
#define MIG_STREAM_INTERNAL
#include "stream_int.h"

#include <errno.h>
#include <stdlib.h>

#define TLV_HDR 7u

static const char *const type_names[MIG_FT_END_] = {
	[MIG_FT_U8] = "u8",		[MIG_FT_U16] = "u16",
	[MIG_FT_U32] = "u32",		[MIG_FT_U64] = "u64",
	[MIG_FT_BYTES] = "bytes",	[MIG_FT_ARRAY_U16] = "u16[]",
	[MIG_FT_ARRAY_U32] = "u32[]",	[MIG_FT_ARRAY_U64] = "u64[]",
	[MIG_FT_BOOL] = "bool",
};

const char *mig_field_type_name(uint8_t type)
{
	return type < MIG_FT_END_ && type_names[type] ? type_names[type] : "?";
}

/* Bytes per element; 0 for an invalid type. */
static size_t elem_size(uint8_t type)
{
	switch (type) {
	case MIG_FT_U8: case MIG_FT_BYTES: case MIG_FT_BOOL: return 1;
	case MIG_FT_U16: case MIG_FT_ARRAY_U16: return 2;
	case MIG_FT_U32: case MIG_FT_ARRAY_U32: return 4;
	case MIG_FT_U64: case MIG_FT_ARRAY_U64: return 8;
	default: return 0;
	}
}

static bool scalar_type(uint8_t type)
{
	return type == MIG_FT_U8 || type == MIG_FT_U16 || type == MIG_FT_U32 ||
	       type == MIG_FT_U64 || type == MIG_FT_BOOL;
}

static int check_field(const struct mig_field *f, size_t obj_size,
		       struct err *err)
{
	size_t es = elem_size(f->type);

	if (!f->id)
		return err_set(err, -EINVAL, "field '%s': id 0", f->name);
	if (!es)
		return err_set(err, -EINVAL, "field '%s': bad type %u", f->name,
			       f->type);
	if (!f->size || f->size % es || (scalar_type(f->type) && f->size != es))
		return err_set(err, -EINVAL, "field '%s': size %zu for %s",
			       f->name, f->size, mig_field_type_name(f->type));
	if (f->size > UINT32_MAX || f->offset > obj_size ||
	    f->size > obj_size - f->offset)
		return err_set(err, -EINVAL, "field '%s': outside the %zu-byte struct",
			       f->name, obj_size);
	if (f->flags & ~(MIG_FIELD_OPTIONAL | MIG_FIELD_REQUIRED))
		return err_set(err, -EINVAL, "field '%s': bad flags", f->name);
	return 0;
}

int mig_fields_check(const struct mig_field *fields, size_t obj_size,
		     struct err *err)
{
	for (const struct mig_field *f = fields; f->name; f++) {
		int rc = check_field(f, obj_size, err);

		if (rc)
			return rc;
		for (const struct mig_field *g = fields; g < f; g++)
			if (g->id == f->id)
				return err_set(err, -EINVAL,
					"fields '%s' and '%s' share id %u",
					g->name, f->name, f->id);
	}
	return 0;
}

/* ---- encode ---- */

static void put_value(struct mig_stream *out, const struct mig_field *f,
		      const uint8_t *p)
{
	size_t es = elem_size(f->type);

	if (es == 1 && f->type != MIG_FT_BOOL) {
		mig_stream_put_bytes(out, p, f->size);
		return;
	}
	for (size_t i = 0; i < f->size; i += es) {
		uint64_t v = 0;

		switch (es) {
		case 1: v = p[i] ? 1 : 0; break;
		case 2: { uint16_t x; memcpy(&x, p + i, 2); v = x; break; }
		case 4: { uint32_t x; memcpy(&x, p + i, 4); v = x; break; }
		default: memcpy(&v, p + i, 8); break;
		}
		for (size_t b = 0; b < es; b++)
			mig_stream_put_u8(out, (uint8_t)(v >> (8 * b)));
	}
}

int mig_fields_save(const struct mig_field *fields, const void *obj,
		    size_t obj_size, uint32_t version, struct mig_stream *out)
{
	struct err e = { 0 };

	if (mig_fields_check(fields, obj_size, &e))
		return mig_stream_set_error(out, e.code, "%s", e.msg);
	for (const struct mig_field *f = fields; f->name; f++) {
		uint8_t wt = f->type;

		if (f->since > version)
			continue;
		if (f->flags & MIG_FIELD_OPTIONAL)
			wt |= MIG_FIELD_WIRE_OPTIONAL;
		mig_stream_put_u16(out, f->id);
		mig_stream_put_u8(out, wt);
		mig_stream_put_u32(out, (uint32_t)f->size);
		put_value(out, f, (const uint8_t *)obj + f->offset);
	}
	return mig_stream_error(out);
}

/* ---- decode ---- */

static const struct mig_field *find_field(const struct mig_field *fields,
					  uint16_t id, size_t *idx)
{
	for (*idx = 0; fields[*idx].name; (*idx)++)
		if (fields[*idx].id == id)
			return &fields[*idx];
	return NULL;
}

/* Value bytes (already bounds-checked) from wire to host layout. */
static int get_value(const struct mig_field *f, const uint8_t *w, uint8_t *dst,
		     struct err *err)
{
	size_t es = elem_size(f->type);

	if (f->type == MIG_FT_BOOL && w[0] > 1)
		return err_set(err, -EPROTO, "field '%s': bool value %u",
			       f->name, w[0]);
	for (size_t i = 0; i < f->size; i += es) {
		switch (es) {
		case 1: dst[i] = w[i]; break;
		case 2: { uint16_t x = mig_le16_load(w + i); memcpy(dst + i, &x, 2); break; }
		case 4: { uint32_t x = mig_le32_load(w + i); memcpy(dst + i, &x, 4); break; }
		default: { uint64_t x = mig_le64_load(w + i); memcpy(dst + i, &x, 8); break; }
		}
	}
	return 0;
}

/* The TLV's field, checked against the table and the section version. */
static int match_field(const struct mig_field *f, uint16_t id, uint8_t wt,
		       uint32_t len, uint32_t version, struct err *err)
{
	if (f->since > version)
		return err_set(err, -EPROTO,
			"field '%s' (id %u) is since version %u, data is version %u",
			f->name, id, f->since, version);
	if ((wt & ~MIG_FIELD_WIRE_OPTIONAL) != f->type)
		return err_set(err, -EPROTO, "field '%s' (id %u): type %s, expected %s",
			       f->name, id,
			       mig_field_type_name(wt & ~MIG_FIELD_WIRE_OPTIONAL),
			       mig_field_type_name(f->type));
	if (len != f->size)
		return err_set(err, -EPROTO,
			       "field '%s' (id %u): %u bytes, expected %zu",
			       f->name, id, len, f->size);
	return 0;
}

struct tlv_ctx {
	const struct mig_field *fields;
	uint8_t *scratch;
	uint8_t *seen;
	uint32_t version;
};

static int load_one(struct tlv_ctx *c, struct mig_stream *in, struct err *err)
{
	const uint8_t *w;
	const struct mig_field *f;
	uint16_t id = mig_stream_get_u16(in);
	uint8_t wt = mig_stream_get_u8(in);
	uint32_t len = mig_stream_get_u32(in);
	size_t idx;
	int rc;

	if (len > mig_stream_remaining(in))
		return err_set(err, -EPROTO, "field id %u: %u bytes, only %zu left",
			       id, len, mig_stream_remaining(in));
	w = in->buf + in->pos;
	f = find_field(c->fields, id, &idx);
	if (!f && !(wt & MIG_FIELD_WIRE_OPTIONAL))
		return err_set(err, -EPROTO, "unknown field id %u (type %u, %u bytes)",
			       id, wt, len);
	if (f && c->seen[idx])
		return err_set(err, -EPROTO, "field '%s' (id %u) appears twice",
			       f->name, id);
	if (f) {
		rc = match_field(f, id, wt, len, c->version, err);
		if (!rc)
			rc = get_value(f, w, c->scratch + f->offset, err);
		if (rc)
			return rc;
		c->seen[idx] = 1;
	}
	mig_stream_skip(in, len);
	return mig_stream_error(in);
}

static int check_required(const struct tlv_ctx *c, struct err *err)
{
	for (size_t i = 0; c->fields[i].name; i++) {
		const struct mig_field *f = &c->fields[i];

		if ((f->flags & MIG_FIELD_REQUIRED) && f->since <= c->version &&
		    !c->seen[i])
			return err_set(err, -EPROTO, "required field '%s' missing",
				       f->name);
	}
	return 0;
}

static int load_all(struct tlv_ctx *c, struct mig_stream *in, struct err *err)
{
	int rc = 0;

	while (!rc && mig_stream_remaining(in)) {
		if (mig_stream_remaining(in) < TLV_HDR)
			return err_set(err, -EPROTO, "%zu stray bytes after the last field",
				       mig_stream_remaining(in));
		rc = load_one(c, in, err);
	}
	return rc ? rc : check_required(c, err);
}

int mig_fields_load(const struct mig_field *fields, void *obj,
		    size_t obj_size, uint32_t version, struct mig_stream *in,
		    struct err *err)
{
	struct tlv_ctx c = { .fields = fields, .version = version };
	size_t n = 0;
	int rc;

	if (in->kind != MIG_STREAM_MEM_READER)
		return err_set(err, -EINVAL, "field decoding needs a memory reader");
	rc = mig_fields_check(fields, obj_size, err);
	if (rc)
		return rc;
	while (fields[n].name)
		n++;
	c.scratch = malloc(obj_size ? obj_size : 1);
	c.seen = calloc(n + 1, 1);
	if (!c.scratch || !c.seen) {
		rc = err_set(err, -ENOMEM, "no memory to decode fields");
		goto out;
	}
	memcpy(c.scratch, obj, obj_size);
	rc = load_all(&c, in, err);
	if (rc && mig_stream_error(in))
		mig_stream_get_err(in, err);
	if (!rc)
		memcpy(obj, c.scratch, obj_size);
out:
	free(c.seen);
	free(c.scratch);
	return rc;
}

/* ---- describe ---- */

int mig_fields_describe(const struct mig_field *fields, struct mig_stream *out)
{
	mig_json_raw(out, "[");
	for (const struct mig_field *f = fields; f->name; f++) {
		mig_json_raw(out, f == fields ? "{\"name\":" : ",{\"name\":");
		mig_json_str(out, f->name);
		mig_json_raw(out, ",\"id\":");
		mig_json_u64(out, f->id);
		mig_json_raw(out, ",\"type\":");
		mig_json_str(out, mig_field_type_name(f->type));
		mig_json_raw(out, ",\"size\":");
		mig_json_u64(out, f->size);
		mig_json_raw(out, ",\"since\":");
		mig_json_u64(out, f->since);
		if (f->flags & MIG_FIELD_OPTIONAL)
			mig_json_raw(out, ",\"optional\":true");
		if (f->flags & MIG_FIELD_REQUIRED)
			mig_json_raw(out, ",\"required\":true");
		mig_json_raw(out, "}");
	}
	mig_json_raw(out, "]");
	return mig_stream_error(out);
}

int mig_section_check_version(const struct mig_section_info *info,
			      uint32_t my_version, uint32_t my_min_version,
			      struct err *err)
{
	if (info->min_version > my_version)
		return err_set(err, -EPROTONOSUPPORT,
			"section '%s': needs a reader of version >= %u, we are %u",
			info->idstr, info->min_version, my_version);
	if (info->version < my_min_version)
		return err_set(err, -EPROTONOSUPPORT,
			"section '%s': version %u is older than the oldest we load (%u)",
			info->idstr, info->version, my_min_version);
	return 0;
}
