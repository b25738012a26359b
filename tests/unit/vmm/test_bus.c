/* test_bus.c - port I/O registration and dispatch. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bus.h"

static uint16_t last_port;
static uint8_t last_val;

static void rd(void *o, uint16_t port, uint8_t *d, unsigned size)
{
	memset(d, 0x11, size);
	last_port = port;
}

static void wr(void *o, uint16_t port, const uint8_t *d, unsigned size)
{
	last_port = port;
	last_val = d[0];
}

static const struct pio_ops ops = { .read = rd, .write = wr };

static void test_register_overlap(void **state)
{
	struct bus b = { 0 };

	assert_int_equal(bus_register(&b, 0x3f8, 8, &ops, NULL), 0);
	assert_int_equal(bus_register(&b, 0x3ff, 1, &ops, NULL), -EEXIST);
	assert_int_equal(bus_register(&b, 0x3f0, 9, &ops, NULL), -EEXIST);
	assert_int_equal(bus_register(&b, 0x3f0, 8, &ops, NULL), 0);
	assert_int_equal(bus_register(&b, 0xfff8, 8, &ops, NULL), 0);
	for (unsigned i = 0; i < BUS_MAX_DEVICES - 3; i++)
		assert_int_equal(bus_register(&b, 0x1000 + i, 1, &ops, NULL), 0);
	assert_int_equal(bus_register(&b, 0x2000, 1, &ops, NULL), -ENOSPC);
}

static void test_dispatch(void **state)
{
	struct bus b = { 0 };
	uint8_t d[4];

	bus_register(&b, 0x3f8, 8, &ops, NULL);
	d[0] = 0x41;
	assert_true(bus_pio(&b, 0x3f8, true, d, 1));
	assert_int_equal(last_port, 0x3f8);
	assert_int_equal(last_val, 0x41);
	assert_true(bus_pio(&b, 0x3ff, false, d, 2));
	assert_int_equal(d[0], 0x11);
	/* unclaimed: reads float high, writes vanish */
	assert_false(bus_pio(&b, 0x400, false, d, 4));
	assert_int_equal(d[0], 0xff);
	assert_int_equal(d[3], 0xff);
	assert_false(bus_pio(&b, 0x3f7, true, d, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_overlap),
		cmocka_unit_test(test_dispatch),
	};
	return cmocka_run_group_tests_name("vmm-bus", tests, NULL, NULL);
}
