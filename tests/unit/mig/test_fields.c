/*
 * test_fields.c - field tables: the macros, table checks, TLV encoding
 * bytes, version rules (since / required / optional), refusals that leave
 * the struct untouched, JSON description and the section version window.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mig_test_util.h"

struct small {
	uint16_t a;
	uint32_t b[2];
	bool c;
};

static const struct mig_field small_fields[] = {
	MIG_U16(struct small, a, 7),
	MIG_ARRAY_U32(struct small, b, 8, .since = 2),
	MIG_BOOL(struct small, c, 9, .flags = MIG_FIELD_OPTIONAL),
	MIG_END
};

/* Encode obj at version into a fresh memory writer. */
static void save(struct mig_stream *w, const struct mig_field *f,
		 const void *obj, size_t size, uint32_t version)
{
	mig_stream_init_mem_writer(w, 0);
	assert_int_equal(mig_fields_save(f, obj, size, version, w), 0);
}

static int load(const struct mig_field *f, void *obj, size_t size,
		uint32_t version, const uint8_t *p, size_t len, struct err *e)
{
	struct mig_stream r;

	mig_stream_init_mem_reader(&r, p, len);
	return mig_fields_load(f, obj, size, version, &r, e);
}

static void test_macros(void **state)
{
	assert_string_equal(small_fields[0].name, "a");
	assert_int_equal(small_fields[0].offset, offsetof(struct small, a));
	assert_int_equal(small_fields[0].size, 2);
	assert_int_equal(small_fields[0].type, MIG_FT_U16);
	assert_int_equal(small_fields[0].since, 0);
	assert_int_equal(small_fields[1].size, 8);
	assert_int_equal(small_fields[1].type, MIG_FT_ARRAY_U32);
	assert_int_equal(small_fields[1].since, 2);
	assert_int_equal(small_fields[2].flags, MIG_FIELD_OPTIONAL);
	assert_null(small_fields[3].name);
	assert_int_equal(mig_fields_check(test_dev_fields,
					  sizeof(struct test_dev_state), NULL), 0);
}

static void test_wire_bytes(void **state)
{
	static const uint8_t want[] = {
		7, 0, MIG_FT_U16, 2, 0, 0, 0, 0x02, 0x01,
		8, 0, MIG_FT_ARRAY_U32, 8, 0, 0, 0, 4, 3, 2, 1, 0xd, 0xc, 0xb, 0xa,
		9, 0, MIG_FT_BOOL | MIG_FIELD_WIRE_OPTIONAL, 1, 0, 0, 0, 1,
	};
	struct small s = { 0x0102, { 0x01020304, 0x0a0b0c0d }, true };
	struct mig_stream w;

	save(&w, small_fields, &s, sizeof(s), 2);
	assert_int_equal(mig_stream_offset(&w), sizeof(want));
	assert_memory_equal(mig_stream_data(&w, NULL), want, sizeof(want));
	mig_stream_fini(&w);
	/* version 1: field b (since 2) is not written */
	save(&w, small_fields, &s, sizeof(s), 1);
	assert_int_equal(mig_stream_offset(&w), sizeof(want) - 15);
	mig_stream_fini(&w);
}

static void test_roundtrip_versions(void **state)
{
	struct test_dev_state src, dst, want;
	struct mig_stream w;

	memset(&src, 0, sizeof(src));
	test_dev_golden(&src);
	for (uint32_t v = 0; v <= 3; v++) {
		save(&w, test_dev_fields, &src, sizeof(src), v);
		test_dev_init(&dst);
		assert_int_equal(load(test_dev_fields, &dst, sizeof(dst), v,
				      mig_stream_data(&w, NULL),
				      mig_stream_offset(&w), NULL), 0);
		test_dev_init(&want);
		test_dev_golden(&want);
		if (v < 2) {	/* absent fields keep their init values */
			memset(want.hist, 0x5a, sizeof(want.hist));
			memset(want.tbl, 0x5a, sizeof(want.tbl));
		}
		if (v < 3)
			want.added_v3 = 99;
		assert_memory_equal(&dst, &want, sizeof(want));
		mig_stream_fini(&w);
	}
}

/* Encode golden state at version 2, let `mutate` damage it, expect error. */
static void expect_refusal(void (*mutate)(uint8_t *p, size_t *len),
			   uint32_t version, int code, const char *msg)
{
	struct test_dev_state src, dst, before;
	struct mig_stream w;
	struct err e = { 0 };
	uint8_t buf[512];
	size_t len;
	int rc;

	memset(&src, 0, sizeof(src));
	test_dev_golden(&src);
	save(&w, test_dev_fields, &src, sizeof(src), 2);
	len = mig_stream_offset(&w);
	memcpy(buf, mig_stream_data(&w, NULL), len);
	mig_stream_fini(&w);
	mutate(buf, &len);
	test_dev_init(&dst);
	before = dst;
	rc = load(test_dev_fields, &dst, sizeof(dst), version, buf, len, &e);
	if (rc != code || !strstr(e.msg, msg))
		fail_msg("rc %d '%s', want %d '%s'", rc, e.msg, code, msg);
	assert_memory_equal(&dst, &before, sizeof(before));	/* untouched */
}

/* TLV layout of the golden state: lcr at 0 (7+1), divisor at 8 (7+2),
 * flags at 17 (7+4), tsc at 28 (7+8), irq at 43 (7+1) ... */
static void m_type(uint8_t *p, size_t *len) { p[2] = MIG_FT_U16; }
static void m_len(uint8_t *p, size_t *len) { p[8 + 3] = 3; }
static void m_unknown(uint8_t *p, size_t *len) { p[0] = 77; }
static void m_dup(uint8_t *p, size_t *len) { p[8] = 1; p[10] = MIG_FT_U8; }
static void m_bool(uint8_t *p, size_t *len) { p[43 + 7] = 2; }
static void m_stray(uint8_t *p, size_t *len) { p[(*len)++] = 0; }
static void m_long(uint8_t *p, size_t *len) { *len -= 1; }
static void m_huge(uint8_t *p, size_t *len) { p[3 + 3] = 0x80; }
static void m_no_flags(uint8_t *p, size_t *len)
{
	memmove(p + 17, p + 28, *len - 28);	/* drop the required field */
	*len -= 11;
}

static void test_refusals(void **state)
{
	expect_refusal(m_type, 2, -EPROTO, "field 'lcr' (id 1): type u16, expected u8");
	expect_refusal(m_len, 2, -EPROTO, "field 'divisor' (id 2): 3 bytes, expected 2");
	expect_refusal(m_unknown, 2, -EPROTO, "unknown field id 77 (type 1, 1 bytes)");
	expect_refusal(m_dup, 2, -EPROTO, "field 'lcr' (id 1) appears twice");
	expect_refusal(m_bool, 2, -EPROTO, "field 'irq': bool value 2");
	expect_refusal(m_stray, 2, -EPROTO, "1 stray bytes after the last field");
	expect_refusal(m_long, 2, -EPROTO, "field id 9: 6 bytes, only 5 left");
	expect_refusal(m_huge, 2, -EPROTO, "field id 1: 2147483649 bytes");
	expect_refusal(m_no_flags, 2, -EPROTO, "required field 'flags' missing");
	/* data says version 1 but carries hist (since 2) */
	expect_refusal(m_stray, 1, -EPROTO,
		       "field 'hist' (id 8) is since version 2, data is version 1");
}

static void m_optional_unknown(uint8_t *p, size_t *len)
{
	static const uint8_t extra[] = { 99, 0, MIG_FT_U32 | 0x80, 4, 0, 0, 0,
					 1, 2, 3, 4 };

	memcpy(p + *len, extra, sizeof(extra));
	*len += sizeof(extra);
}

static void test_unknown_optional_skipped(void **state)
{
	struct test_dev_state src, dst;
	struct mig_stream w;
	uint8_t buf[512];
	size_t len;

	memset(&src, 0, sizeof(src));
	test_dev_golden(&src);
	save(&w, test_dev_fields, &src, sizeof(src), 2);
	len = mig_stream_offset(&w);
	memcpy(buf, mig_stream_data(&w, NULL), len);
	mig_stream_fini(&w);
	m_optional_unknown(buf, &len);
	test_dev_init(&dst);
	assert_int_equal(load(test_dev_fields, &dst, sizeof(dst), 2, buf, len,
			      NULL), 0);
	assert_int_equal(dst.tsc, src.tsc);
}

/* Every prefix of a payload: loads or fails, never a partial change. */
static void test_every_prefix(void **state)
{
	struct test_dev_state src, dst, init;
	struct mig_stream w;
	const uint8_t *p;
	size_t len;
	int ok = 0;

	memset(&src, 0, sizeof(src));
	test_dev_golden(&src);
	save(&w, test_dev_fields, &src, sizeof(src), 2);
	p = mig_stream_data(&w, NULL);
	len = mig_stream_offset(&w);
	test_dev_init(&init);
	for (size_t cut = 0; cut < len; cut++) {
		dst = init;
		if (load(test_dev_fields, &dst, sizeof(dst), 2, p, cut, NULL))
			assert_memory_equal(&dst, &init, sizeof(init));
		else
			ok++;
	}
	/* only cuts at a TLV edge load, and only once the required 'flags'
	 * is in: edges 28, 43, 51, 74, 97 and 120 of 133 bytes */
	assert_int_equal(len, 133);
	assert_int_equal(ok, 6);
	mig_stream_fini(&w);
}

static void test_table_checks(void **state)
{
	struct mig_field t[3] = {
		MIG_U16(struct small, a, 1),
		MIG_U16(struct small, a, 1),
		MIG_END,
	};
	struct err e = { 0 };

	assert_int_equal(mig_fields_check(t, sizeof(struct small), &e), -EINVAL);
	assert_string_equal(e.msg, "fields 'a' and 'a' share id 1");
	t[1].id = 2;
	assert_int_equal(mig_fields_check(t, sizeof(struct small), NULL), 0);
	assert_int_equal(mig_fields_check(t, 1, NULL), -EINVAL);
	t[1].id = 0;
	assert_int_equal(mig_fields_check(t, sizeof(struct small), NULL), -EINVAL);
	t[1].id = 2;
	t[1].size = 3;
	assert_int_equal(mig_fields_check(t, sizeof(struct small), NULL), -EINVAL);
	t[1].size = 2;
	t[1].type = 0;
	assert_int_equal(mig_fields_check(t, sizeof(struct small), NULL), -EINVAL);
	t[1].type = MIG_FT_U16;
	t[1].offset = SIZE_MAX;
	assert_int_equal(mig_fields_check(t, sizeof(struct small), NULL), -EINVAL);
	t[1].offset = 0;
	t[1].flags = 0x40;
	assert_int_equal(mig_fields_check(t, sizeof(struct small), NULL), -EINVAL);
	/* a bad table is refused by save and load too */
	{
		struct small s = { 0 };
		struct mig_stream w;

		mig_stream_init_mem_writer(&w, 0);
		assert_int_equal(mig_fields_save(t, &s, sizeof(s), 1, &w), -EINVAL);
		mig_stream_fini(&w);
		assert_int_equal(load(t, &s, sizeof(s), 1, (const uint8_t *)"", 0,
				      NULL), -EINVAL);
	}
}

static void test_describe_json(void **state)
{
	static const char want[] =
		"[{\"name\":\"a\",\"id\":7,\"type\":\"u16\",\"size\":2,\"since\":0},"
		"{\"name\":\"b\",\"id\":8,\"type\":\"u32[]\",\"size\":8,\"since\":2},"
		"{\"name\":\"c\",\"id\":9,\"type\":\"bool\",\"size\":1,\"since\":0,"
		"\"optional\":true}]";
	struct mig_stream w;
	size_t len;
	const uint8_t *p;

	mig_stream_init_mem_writer(&w, 0);
	assert_int_equal(mig_fields_describe(small_fields, &w), 0);
	p = mig_stream_data(&w, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(p, want, len);
	mig_stream_fini(&w);

	mig_stream_init_mem_writer(&w, 0);
	mig_json_str(&w, "a\"b\\c\n\x01");
	p = mig_stream_data(&w, &len);
	assert_int_equal(len, 21);
	assert_memory_equal(p, "\"a\\\"b\\\\c\\u000a\\u0001\"", len);
	mig_stream_fini(&w);
}

static void test_desc_builder(void **state)
{
	struct mig_section_info si = { .section_id = 3, .instance_id = 1,
				       .version = 2, .min_version = 1,
				       .idstr = "x" };
	struct mig_stream s, r;
	struct mig_desc d;
	struct fake_target t;

	mig_stream_init_mem_writer(&s, 0);
	mig_desc_init(&d, "p\"q");
	assert_int_equal(mig_desc_add_section(&d, &si, NULL), 0);
	assert_int_equal(mig_desc_add_section(&d, &si, small_fields), 0);
	assert_int_equal(mig_desc_put(&d, &s), 0);
	mig_desc_fini(&d);
	/* the record is optional: a loader keeps its JSON text */
	{
		struct mig_stream full;
		struct mig_header h;

		mig_stream_init_mem_writer(&full, 0);
		mig_header_init(&h, 4096);
		mig_stream_put_header(&full, &h);
		mig_stream_put_bytes(&full, mig_stream_data(&s, NULL),
				     mig_stream_offset(&s));
		mig_stream_put_eof(&full);
		fake_init(&t, true);
		mig_stream_init_mem_reader(&r, mig_stream_data(&full, NULL),
					   mig_stream_offset(&full));
		assert_int_equal(mig_load(&r, &fake_ops, &t, NULL), 0);
		assert_non_null(strstr(t.desc, "\"producer\":\"p\\\"q\""));
		assert_non_null(strstr(t.desc,
			"{\"idstr\":\"x\",\"section_id\":3,\"instance_id\":1,"
			"\"version\":2,\"min_version\":1},{\"idstr\":\"x\""));
		assert_int_equal(t.desc[strlen(t.desc) - 1], '}');
		fake_fini(&t);
		mig_stream_fini(&full);
	}
	mig_stream_fini(&s);
}

static void test_section_version_rule(void **state)
{
	struct mig_section_info si = { .version = 3, .min_version = 2,
				       .idstr = "d" };
	struct err e = { 0 };

	assert_int_equal(mig_section_check_version(&si, 3, 1, NULL), 0);
	assert_int_equal(mig_section_check_version(&si, 2, 1, NULL), 0);
	assert_int_equal(mig_section_check_version(&si, 5, 3, NULL), 0);
	assert_int_equal(mig_section_check_version(&si, 1, 1, &e),
			 -EPROTONOSUPPORT);
	assert_string_equal(e.msg, "section 'd': needs a reader of version >= 2, we are 1");
	err_clear(&e);
	assert_int_equal(mig_section_check_version(&si, 9, 4, &e),
			 -EPROTONOSUPPORT);
	assert_string_equal(e.msg,
			    "section 'd': version 3 is older than the oldest we load (4)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_macros),
		cmocka_unit_test(test_wire_bytes),
		cmocka_unit_test(test_roundtrip_versions),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_unknown_optional_skipped),
		cmocka_unit_test(test_every_prefix),
		cmocka_unit_test(test_table_checks),
		cmocka_unit_test(test_describe_json),
		cmocka_unit_test(test_desc_builder),
		cmocka_unit_test(test_section_version_rule),
	};

	return cmocka_run_group_tests_name("mig-stream-fields", tests, NULL,
					   NULL);
}
