/*
 * serial.c - COM1 output for tern-guest (16550 at 0x3f8, 115200 8N1).
 *
 * Polls LSR.THRE (bit 5) before writing THR; when the UART reports working
 * FIFOs we write up to 16 bytes per THRE. Every port access is a VM exit
 * (~70 us each on the PVM host under QEMU), so a line costs a few ms.
 * tg_printf() formats one line and writes it under a spinlock so lines from
 * different CPUs never interleave. Runs in ring 3 (IOPL=3) and, for fault
 * reports, in ring 0.
 */
#include <stdarg.h>

#include "tg.h"

#define UART_THR	0
#define UART_IER	1
#define UART_FCR	2
#define UART_IIR	2
#define UART_LCR	3
#define UART_MCR	4
#define UART_LSR	5
#define LSR_THRE	0x20

static bool tg_uart_fifo;
static volatile u32 tg_console_lock;

void tg_serial_init(void)
{
	tg_outb(TG_COM1 + UART_IER, 0x00);
	tg_outb(TG_COM1 + UART_LCR, 0x80);	/* DLAB */
	tg_outb(TG_COM1 + 0, 0x01);		/* divisor 1: 115200 */
	tg_outb(TG_COM1 + 1, 0x00);
	tg_outb(TG_COM1 + UART_LCR, 0x03);	/* 8N1 */
	tg_outb(TG_COM1 + UART_FCR, 0xc7);	/* FIFO on, cleared */
	tg_outb(TG_COM1 + UART_MCR, 0x03);	/* DTR, RTS; no OUT2 (no IRQ) */
	tg_uart_fifo = (tg_inb(TG_COM1 + UART_IIR) & 0xc0) == 0xc0;
}

void tg_serial_write(const char *s, unsigned long n)
{
	unsigned long burst = tg_uart_fifo ? 16 : 1, i;

	while (n) {
		while (!(tg_inb(TG_COM1 + UART_LSR) & LSR_THRE))
			tg_pause();
		for (i = 0; i < burst && n; i++, n--)
			tg_outb(TG_COM1 + UART_THR, (u8)*s++);
	}
}

static void tg_console_lock_take(void)
{
	while (__atomic_exchange_n(&tg_console_lock, 1, __ATOMIC_ACQUIRE))
		tg_pause();
}

static void tg_console_lock_drop(void)
{
	__atomic_store_n(&tg_console_lock, 0, __ATOMIC_RELEASE);
}

static void tg_vprintf(const char *fmt, va_list ap)
{
	char buf[256];
	int n = tg_vsnprintf(buf, sizeof(buf), fmt, ap);

	tg_console_lock_take();
	tg_serial_write(buf, n);
	tg_console_lock_drop();
}

void tg_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tg_vprintf(fmt, ap);
	va_end(ap);
}

/* Exit through the debug-exit port; if there is none, spin forever. */
void tg_exit(u8 code)
{
	tg_outb(TG_EXIT_PORT, code);
	for (;;)
		tg_pause();
}

void tg_panic(const char *fmt, ...)
{
	char buf[200];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = tg_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	tg_printf("TG PANIC %s\n", buf);
	(void)n;
	tg_exit(3);
}
