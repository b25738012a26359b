/*
 * uart16550.h - a 16550A UART (COM1) with FIFOs and interrupts.
 *
 * The wire state (struct uart16550_state) is what migration saves and
 * loads; the runtime struct adds the lock, the output fd, the IRQ callback
 * and host-side input not yet taken into the FIFO.
 */
#ifndef VMM_UART16550_H
#define VMM_UART16550_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define UART_FIFO_LEN 16

struct uart16550_state {
	uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
	uint8_t dll, dlm;
	uint8_t thr_ipending;	/* THR-empty interrupt pending */
	uint8_t rx_len;		/* bytes in rx[] */
	uint8_t rx[UART_FIFO_LEN];
};

typedef void (*uart16550_irq_fn)(void *opaque, int level);

struct uart16550 {
	pthread_mutex_t lock;
	struct uart16550_state s;
	int out_fd;		/* -1: output dropped */
	uart16550_irq_fn irq;
	void *irq_opaque;
	int irq_level;
	uint8_t pending[4096];	/* host input waiting for FIFO room */
	size_t pending_len;
};

void uart16550_init(struct uart16550 *u, int out_fd, uart16550_irq_fn irq,
		    void *opaque);
void uart16550_fini(struct uart16550 *u);

/* Register access at offset 0..7 from the base port. */
uint8_t uart16550_read(struct uart16550 *u, unsigned off);
void uart16550_write(struct uart16550 *u, unsigned off, uint8_t val);

/* Host input (keyboard). Returns bytes accepted (may be < len if full). */
size_t uart16550_receive(struct uart16550 *u, const uint8_t *buf, size_t len);

/* Migration: copy out / validate and load the wire state. */
void uart16550_save(struct uart16550 *u, struct uart16550_state *st);
int uart16550_load(struct uart16550 *u, const struct uart16550_state *st,
		   struct err *err);

#endif
