/*
 * load_section.c - loaders of the device-state records: SECTION_FULL,
 * SECTION_START, SECTION_PART and SECTION_END.
 *
 * A section is opened by FULL (whole state, closed at once) or START
 * (iterative state, open until END) with a fresh non-zero section_id; every
 * record of a section ends with a u32 footer repeating that id. The payload
 * is read whole (capped at MIG_SECTION_MAX), its crc verified, and the
 * state bytes are handed to the engine as a memory reader, so a device's
 * load function can use mig_fields_load() on exactly its own bytes.
 */
#define MIG_STREAM_INTERNAL
#include "stream_int.h"

#include <errno.h>
#include <stdlib.h>

static struct mig_load_section *find_section(struct mig_loader *l, uint32_t id)
{
	for (size_t i = l->nsections; i-- > 0;)
		if (l->sections[i].info.section_id == id)
			return &l->sections[i];
	return NULL;
}

static int add_section(struct mig_loader *l, const struct mig_section_info *info,
		       bool open, struct err *err)
{
	struct mig_load_section *p;

	if (l->nsections >= MIG_SECTIONS_MAX)
		return err_set(err, -EMSGSIZE, "more than %u sections",
			       MIG_SECTIONS_MAX);
	if (l->nsections == l->sections_cap) {
		size_t cap = l->sections_cap ? 2 * l->sections_cap : 8;

		p = realloc(l->sections, cap * sizeof(*p));
		if (!p)
			return err_set(err, -ENOMEM, "no memory for sections");
		l->sections = p;
		l->sections_cap = cap;
	}
	l->sections[l->nsections].info = *info;
	l->sections[l->nsections++].open = open;
	return 0;
}

/* Read the payload, check and strip the footer: *len = bytes before it. */
static uint8_t *payload_footer(struct mig_loader *l, size_t *len,
			       struct err *err)
{
	uint8_t *p;
	uint32_t footer;

	if (l->rec.length < 4) {
		err_set(err, -EPROTO, "length %llu: no room for the footer",
			(unsigned long long)l->rec.length);
		return NULL;
	}
	p = mig_load_payload(l, err);
	if (!p)
		return NULL;
	*len = (size_t)l->rec.length - 4;
	footer = mig_le32_load(p + *len);
	if (footer != l->rec.section_id) {
		err_set(err, -EPROTO, "footer says section %u, header %u", footer,
			l->rec.section_id);
		return NULL;
	}
	return p;
}

static int parse_info(struct mig_loader *l, struct mig_stream *r,
		      struct mig_section_info *info, struct err *err)
{
	uint16_t il = mig_stream_get_u16(r);

	memset(info, 0, sizeof(*info));
	info->section_id = l->rec.section_id;
	if (il < 1 || il > MIG_IDSTR_MAX)
		return err_set(err, -EPROTO, "idstr length %u", il);
	mig_stream_get_bytes(r, info->idstr, il);
	info->instance_id = mig_stream_get_u32(r);
	info->version = mig_stream_get_u32(r);
	info->min_version = mig_stream_get_u32(r);
	if (mig_stream_error(r))
		return err_set(err, -EPROTO, "section header cut short");
	if (!mig_idstr_valid(info->idstr, il))
		return err_set(err, -EPROTO, "idstr not printable ASCII");
	if (info->min_version > info->version)
		return err_set(err, -EPROTO, "section '%s': min_version %u > version %u",
			       info->idstr, info->min_version, info->version);
	return 0;
}

static int cb_section_err(int rc, const struct mig_section_info *info,
			  const char *cb, struct err *err)
{
	rc = mig_load_cb_err(rc, cb, err);
	if (rc)
		err_prefix(err, "section '%s' instance %u version %u",
			   info->idstr, info->instance_id, info->version);
	return rc;
}

/* SECTION_FULL and SECTION_START. */
static int load_first(struct mig_loader *l, bool full, struct err *err)
{
	int (*cb)(void *, const struct mig_section_info *, struct mig_stream *,
		  struct err *);
	struct mig_section_info info;
	struct mig_load_section *old;
	struct mig_stream r;
	size_t len;
	uint8_t *p;
	int rc;

	cb = full ? l->ops->on_section : l->ops->on_section_start;
	if (!l->rec.section_id)
		return err_set(err, -EPROTO, "section id 0");
	old = find_section(l, l->rec.section_id);
	if (old)
		return err_set(err, -EPROTO, "section id %u already used by '%s'",
			       l->rec.section_id, old->info.idstr);
	p = payload_footer(l, &len, err);
	if (!p)
		return err->code;
	mig_stream_init_mem_reader(&r, p, len);
	rc = parse_info(l, &r, &info, err);
	if (!rc)
		rc = mig_load_finish(l, err);
	if (!rc && !cb)
		rc = err_set(err, -ENOTSUP, "section '%s': no handler", info.idstr);
	if (!rc)
		rc = add_section(l, &info, !full, err);
	if (rc)
		return rc;
	return cb_section_err(cb(l->ctx, &info, &r, err), &info,
			      full ? "on_section" : "on_section_start", err);
}

int mig_load_section_full(struct mig_loader *l, struct err *err)
{
	return load_first(l, true, err);
}

int mig_load_section_start(struct mig_loader *l, struct err *err)
{
	return load_first(l, false, err);
}

static struct mig_load_section *open_section(struct mig_loader *l,
					     struct err *err)
{
	struct mig_load_section *sec = find_section(l, l->rec.section_id);

	if (!sec || !sec->open) {
		err_set(err, -EPROTO, "section id %u is not an open section",
			l->rec.section_id);
		return NULL;
	}
	return sec;
}

int mig_load_section_part(struct mig_loader *l, struct err *err)
{
	struct mig_load_section *sec = open_section(l, err);
	struct mig_stream r;
	size_t len;
	uint8_t *p;
	int rc;

	if (!sec)
		return err->code;
	p = payload_footer(l, &len, err);
	if (!p)
		return err->code;
	rc = mig_load_finish(l, err);
	if (!rc && !l->ops->on_section_part)
		rc = err_set(err, -ENOTSUP, "section '%s': no part handler",
			     sec->info.idstr);
	if (rc)
		return rc;
	mig_stream_init_mem_reader(&r, p, len);
	return cb_section_err(l->ops->on_section_part(l->ctx, &sec->info, &r,
						      err),
			      &sec->info, "on_section_part", err);
}

int mig_load_section_end(struct mig_loader *l, struct err *err)
{
	struct mig_load_section *sec = open_section(l, err);
	size_t len;
	int rc;

	if (!sec)
		return err->code;
	if (l->rec.length != 4)
		return err_set(err, -EPROTO, "length %llu, expected 4",
			       (unsigned long long)l->rec.length);
	if (!payload_footer(l, &len, err))
		return err->code;
	rc = mig_load_finish(l, err);
	if (rc)
		return rc;
	sec->open = false;
	if (!l->ops->on_section_end)
		return 0;
	return cb_section_err(l->ops->on_section_end(l->ctx, &sec->info, err),
			      &sec->info, "on_section_end", err);
}
