/*
 * serial.c - COM1 for tern-guest (16550 at 0x3f8, 115200 8N1, polled).
 *
 * Output polls LSR.THRE (bit 5) before writing THR; when the UART reports
 * working FIFOs we write up to 16 bytes per THRE. Every port access is a VM
 * exit (~70 us each on the PVM host), so a line costs a few ms. tg_printf()
 * formats one line and writes it under a ticket lock so lines from different
 * CPUs never interleave; tg_cprintf() also ticks the calling CPU's stall
 * clock on every spin and port access (see struct tg_gap), so printing is
 * not counted as a stall. Input polls LSR.DR (bit 0) and reads RBR.
 * Runs in ring 3 (IOPL=3) and, for fault reports, in ring 0.
 */
#include <stdarg.h>

#include "tg.h"

#define UART_RBR	0
#define UART_THR	0
#define UART_IER	1
#define UART_FCR	2
#define UART_IIR	2
#define UART_LCR	3
#define UART_MCR	4
#define UART_LSR	5
#define LSR_DR		0x01
#define LSR_THRE	0x20

static bool tg_uart_fifo;
static u32 tg_console_next, tg_console_serving;	/* ticket lock */
static u8 tg_early_rx[16];	/* input that arrived before the FIFO reset */
static u32 tg_early_len;

/*
 * Bytes already received are read out first: resetting the FIFO would drop
 * them (e.g. `echo x | tern-vmm --serial stdio` delivers at once).
 */
void tg_serial_init(void)
{
	tg_outb(TG_COM1 + UART_IER, 0x00);
	tg_outb(TG_COM1 + UART_LCR, 0x03);	/* DLAB off: RBR readable */
	while (tg_early_len < sizeof(tg_early_rx) &&
	       (tg_inb(TG_COM1 + UART_LSR) & LSR_DR))
		tg_early_rx[tg_early_len++] = tg_inb(TG_COM1 + UART_RBR);
	tg_outb(TG_COM1 + UART_LCR, 0x80);	/* DLAB */
	tg_outb(TG_COM1 + 0, 0x01);		/* divisor 1: 115200 */
	tg_outb(TG_COM1 + 1, 0x00);
	tg_outb(TG_COM1 + UART_LCR, 0x03);	/* 8N1 */
	tg_outb(TG_COM1 + UART_FCR, 0xc7);	/* FIFO on, cleared */
	tg_outb(TG_COM1 + UART_MCR, 0x03);	/* DTR, RTS; no OUT2 (no IRQ) */
	tg_uart_fifo = (tg_inb(TG_COM1 + UART_IIR) & 0xc0) == 0xc0;
}

static u8 tg_uart_in(u16 reg, struct tg_gap *g)
{
	u8 v = tg_inb(TG_COM1 + reg);

	tg_gap_tick(g);
	return v;
}

static void tg_uart_write(const char *s, unsigned long n, struct tg_gap *g)
{
	unsigned long burst = tg_uart_fifo ? 16 : 1, i;

	while (n) {
		while (!(tg_uart_in(UART_LSR, g) & LSR_THRE))
			tg_pause();
		for (i = 0; i < burst && n; i++, n--) {
			tg_outb(TG_COM1 + UART_THR, (u8)*s++);
			tg_gap_tick(g);
		}
	}
}

void tg_serial_write(const char *s, unsigned long n)
{
	tg_uart_write(s, n, NULL);
}

/* Take up to `size` of the bytes tg_serial_init() read out early. */
static u32 tg_early_take(u8 *buf, u32 size)
{
	u32 n = tg_early_len < size ? tg_early_len : size, i;

	for (i = 0; i < n; i++)
		buf[i] = tg_early_rx[i];
	for (i = n; i < tg_early_len; i++)
		tg_early_rx[i - n] = tg_early_rx[i];
	tg_early_len -= n;
	return n;
}

/* Up to `size` received bytes, without waiting; returns how many. */
u32 tg_serial_read(u8 *buf, u32 size, struct tg_gap *g)
{
	u32 n = tg_early_take(buf, size);

	while (n < size && (tg_uart_in(UART_LSR, g) & LSR_DR))
		buf[n++] = tg_uart_in(UART_RBR, g);
	return n;
}

/*
 * A ticket lock: CPUs print in the order they asked, so one CPU printing
 * often cannot keep another's line waiting for long.
 */
static void tg_console_lock_take(struct tg_gap *g)
{
	u32 t = __atomic_fetch_add(&tg_console_next, 1, __ATOMIC_RELAXED);

	while (__atomic_load_n(&tg_console_serving, __ATOMIC_ACQUIRE) != t) {
		tg_pause();
		tg_gap_tick(g);
	}
}

static void tg_console_lock_drop(void)
{
	__atomic_store_n(&tg_console_serving, tg_console_serving + 1,
			 __ATOMIC_RELEASE);
}

static void tg_vprintf(struct tg_gap *g, const char *fmt, va_list ap)
{
	char buf[256];
	int n = tg_vsnprintf(buf, sizeof(buf), fmt, ap);

	tg_gap_tick(g);
	tg_console_lock_take(g);
	tg_uart_write(buf, n, g);
	tg_console_lock_drop();
}

void tg_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tg_vprintf(NULL, fmt, ap);
	va_end(ap);
}

void tg_cprintf(struct tg_gap *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tg_vprintf(g, fmt, ap);
	va_end(ap);
}

void tg_panic(const char *fmt, ...)
{
	char buf[200];
	va_list ap;

	va_start(ap, fmt);
	tg_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	tg_printf("TG PANIC %s\n", buf);
	tg_exit(3);
}
