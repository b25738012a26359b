/* test_uart16550.c - 16550A register behaviour, interrupts, FIFO, state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "dev/uart16550.h"

enum { RBR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

struct fixture {
	struct uart16550 u;
	int pipe[2];
	int level;
	int edges;
};

static void irq(void *opaque, int level)
{
	struct fixture *f = opaque;

	f->level = level;
	f->edges++;
}

static int setup(void **state)
{
	struct fixture *f = test_calloc(1, sizeof(*f));

	if (pipe2(f->pipe, O_NONBLOCK))
		return -1;
	uart16550_init(&f->u, f->pipe[1], irq, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	uart16550_fini(&f->u);
	close(f->pipe[0]);
	close(f->pipe[1]);
	test_free(f);
	return 0;
}

static void test_transmit(void **state)
{
	struct fixture *f = *state;
	char buf[8] = { 0 };

	uart16550_write(&f->u, RBR, 'h');
	uart16550_write(&f->u, RBR, 'i');
	assert_int_equal(read(f->pipe[0], buf, sizeof(buf)), 2);
	assert_string_equal(buf, "hi");
	assert_int_equal(uart16550_read(&f->u, LSR) & 0x60, 0x60);
}

static void test_divisor_latch(void **state)
{
	struct fixture *f = *state;

	uart16550_write(&f->u, LCR, 0x83);
	uart16550_write(&f->u, RBR, 0x01);	/* DLL, not transmitted */
	uart16550_write(&f->u, IER, 0x00);	/* DLM */
	assert_int_equal(uart16550_read(&f->u, RBR), 0x01);
	uart16550_write(&f->u, LCR, 0x03);
	assert_int_equal(uart16550_read(&f->u, LCR), 0x03);
	char c;
	assert_int_equal(read(f->pipe[0], &c, 1), -1);	/* nothing was sent */
}

static void test_thri_interrupt(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(uart16550_read(&f->u, IIR) & 0x0f, 0x01);	/* none */
	uart16550_write(&f->u, IER, 0x02);	/* enable THRI with THR empty */
	assert_int_equal(f->level, 1);
	assert_int_equal(uart16550_read(&f->u, IIR) & 0x0f, 0x02);
	/* reading IIR cleared it */
	assert_int_equal(f->level, 0);
	assert_int_equal(uart16550_read(&f->u, IIR) & 0x0f, 0x01);
	uart16550_write(&f->u, RBR, 'x');	/* transmit -> THR empty again */
	assert_int_equal(f->level, 1);
	uart16550_write(&f->u, IER, 0x00);
	assert_int_equal(f->level, 0);
}

static void test_receive_fifo(void **state)
{
	struct fixture *f = *state;
	uint8_t in[40];

	for (int i = 0; i < 40; i++)
		in[i] = 'a' + (i % 26);
	uart16550_write(&f->u, FCR, 0x01);	/* FIFO on */
	uart16550_write(&f->u, IER, 0x01);	/* RDI */
	assert_int_equal(uart16550_receive(&f->u, in, 40), 40);
	assert_int_equal(f->level, 1);
	assert_int_equal(uart16550_read(&f->u, IIR), 0xc4);
	/* all 40 bytes arrive in order, FIFO refilled from host input */
	for (int i = 0; i < 40; i++) {
		assert_true(uart16550_read(&f->u, LSR) & 0x01);
		assert_int_equal(uart16550_read(&f->u, RBR), in[i]);
	}
	assert_false(uart16550_read(&f->u, LSR) & 0x01);
	assert_int_equal(f->level, 0);
}

static void test_loopback(void **state)
{
	struct fixture *f = *state;

	uart16550_write(&f->u, MCR, 0x10 | 0x02 | 0x08);	/* LOOP, RTS, OUT2 */
	uint8_t msr = uart16550_read(&f->u, MSR);
	assert_int_equal(msr & 0xf0, 0x10 | 0x80);		/* CTS, DCD */
	uart16550_write(&f->u, RBR, 0x5a);
	assert_true(uart16550_read(&f->u, LSR) & 0x01);
	assert_int_equal(uart16550_read(&f->u, RBR), 0x5a);
	uart16550_write(&f->u, MCR, 0x0b);
	assert_int_equal(uart16550_read(&f->u, MSR) & 0xf0, 0xb0);
}

static void test_overrun(void **state)
{
	struct fixture *f = *state;

	uart16550_write(&f->u, MCR, 0x10);	/* loopback, FIFO off: 1 byte */
	uart16550_write(&f->u, RBR, 1);
	uart16550_write(&f->u, RBR, 2);
	uint8_t lsr = uart16550_read(&f->u, LSR);
	assert_true(lsr & 0x02);		/* OE */
	assert_false(uart16550_read(&f->u, LSR) & 0x02);	/* cleared by read */
}

static void test_save_load(void **state)
{
	struct fixture *f = *state;
	struct uart16550_state st;
	struct err e = { 0 };

	uart16550_write(&f->u, SCR, 0x42);
	uart16550_write(&f->u, IER, 0x03);
	uart16550_save(&f->u, &st);
	assert_int_equal(st.scr, 0x42);
	assert_int_equal(st.ier, 0x03);

	struct uart16550_state bad = st;
	bad.rx_len = 17;
	assert_int_not_equal(uart16550_load(&f->u, &bad, &e), 0);
	assert_non_null(strstr(e.msg, "rx_len"));
	bad = st;
	bad.ier = 0x80;
	memset(&e, 0, sizeof(e));
	assert_int_not_equal(uart16550_load(&f->u, &bad, &e), 0);
	/* a rejected load changed nothing */
	assert_int_equal(uart16550_read(&f->u, SCR), 0x42);

	st.scr = 0x99;
	assert_int_equal(uart16550_load(&f->u, &st, NULL), 0);
	assert_int_equal(uart16550_read(&f->u, SCR), 0x99);
	assert_int_equal(f->level, 1);	/* THRI pending was restored and driven */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_transmit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_divisor_latch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thri_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receive_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overrun, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
	};
	return cmocka_run_group_tests_name("vmm-uart16550", tests, NULL, NULL);
}
