/*
 * uart16550.c - 16550A UART emulation (the console on ttyS0).
 *
 * Transmit is immediate: THR writes go straight to the output fd and the
 * transmitter is always empty again, so THRE/TEMT stay set and a THR-empty
 * interrupt is raised when enabled. Receive goes through a 16-byte FIFO fed
 * from host input. The IRQ line is recomputed after every access and
 * driven as a level through the callback (KVM_IRQ_LINE).
 */
#include "uart16550.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

enum {
	UART_RBR_THR = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_LCR = 3,
	UART_MCR = 4, UART_LSR = 5, UART_MSR = 6, UART_SCR = 7,
};

#define IER_RDI		0x01
#define IER_THRI	0x02
#define IER_RLSI	0x04
#define IER_MSI		0x08

#define IIR_NO_INT	0x01
#define IIR_MSI		0x00
#define IIR_THRI	0x02
#define IIR_RDI		0x04
#define IIR_RLSI	0x06
#define IIR_FIFO_ON	0xc0

#define FCR_ENABLE	0x01
#define FCR_CLEAR_RX	0x02

#define LCR_DLAB	0x80

#define MCR_DTR		0x01
#define MCR_RTS		0x02
#define MCR_OUT1	0x04
#define MCR_OUT2	0x08
#define MCR_LOOP	0x10

#define LSR_DR		0x01
#define LSR_OE		0x02
#define LSR_BI		0x10
#define LSR_THRE	0x20
#define LSR_TEMT	0x40
#define LSR_ERRS	0x1e

#define MSR_DCTS	0x01
#define MSR_DDSR	0x02
#define MSR_TERI	0x04
#define MSR_DDCD	0x08
#define MSR_DELTAS	0x0f
#define MSR_CTS		0x10
#define MSR_DSR		0x20
#define MSR_RI		0x40
#define MSR_DCD		0x80

static unsigned fifo_cap(const struct uart16550_state *s)
{
	return (s->fcr & FCR_ENABLE) ? UART_FIFO_LEN : 1;
}

/* Highest-priority pending interrupt, as IIR reports it. */
static uint8_t uart_iir(const struct uart16550_state *s)
{
	if ((s->ier & IER_RLSI) && (s->lsr & LSR_ERRS))
		return IIR_RLSI;
	if ((s->ier & IER_RDI) && (s->lsr & LSR_DR))
		return IIR_RDI;
	if ((s->ier & IER_THRI) && s->thr_ipending)
		return IIR_THRI;
	if ((s->ier & IER_MSI) && (s->msr & MSR_DELTAS))
		return IIR_MSI;
	return IIR_NO_INT;
}

static void uart_update_irq(struct uart16550 *u)
{
	int level = uart_iir(&u->s) != IIR_NO_INT;

	if (level != u->irq_level && u->irq) {
		u->irq_level = level;
		u->irq(u->irq_opaque, level);
	}
}

/* Modem status lines: in loopback they mirror MCR, else "all ready". */
static void uart_update_msr(struct uart16550_state *s)
{
	uint8_t old = s->msr, now;

	if (s->mcr & MCR_LOOP)
		now = ((s->mcr & MCR_RTS) ? MSR_CTS : 0) |
		      ((s->mcr & MCR_DTR) ? MSR_DSR : 0) |
		      ((s->mcr & MCR_OUT1) ? MSR_RI : 0) |
		      ((s->mcr & MCR_OUT2) ? MSR_DCD : 0);
	else
		now = MSR_DCD | MSR_DSR | MSR_CTS;
	uint8_t changed = (old ^ now) & 0xf0;
	uint8_t delta = old & MSR_DELTAS;

	if (changed & MSR_CTS)
		delta |= MSR_DCTS;
	if (changed & MSR_DSR)
		delta |= MSR_DDSR;
	if (changed & MSR_DCD)
		delta |= MSR_DDCD;
	if ((old & MSR_RI) && !(now & MSR_RI))
		delta |= MSR_TERI;
	s->msr = now | delta;
}

static void rx_push(struct uart16550_state *s, uint8_t c)
{
	if (s->rx_len >= fifo_cap(s)) {
		s->lsr |= LSR_OE;
		return;
	}
	s->rx[s->rx_len++] = c;
	s->lsr |= LSR_DR;
}

/* Move host input into the FIFO while there is room. Caller holds lock. */
static void rx_refill(struct uart16550 *u)
{
	size_t n = 0;

	if (u->s.mcr & MCR_LOOP)
		return;
	while (n < u->pending_len && u->s.rx_len < fifo_cap(&u->s))
		rx_push(&u->s, u->pending[n++]);
	memmove(u->pending, u->pending + n, u->pending_len - n);
	u->pending_len -= n;
}

static uint8_t rx_pop(struct uart16550 *u)
{
	struct uart16550_state *s = &u->s;
	uint8_t c;

	if (!s->rx_len)
		return 0;
	c = s->rx[0];
	memmove(s->rx, s->rx + 1, --s->rx_len);
	rx_refill(u);
	if (!s->rx_len)
		s->lsr &= ~LSR_DR;
	return c;
}

static void uart_transmit(struct uart16550 *u, uint8_t c)
{
	if (u->s.mcr & MCR_LOOP) {
		rx_push(&u->s, c);
	} else if (u->out_fd >= 0) {
		ssize_t r;

		do {
			r = write(u->out_fd, &c, 1);
		} while (r < 0 && errno == EINTR);
	}
	u->s.lsr |= LSR_THRE | LSR_TEMT;
	u->s.thr_ipending = 1;
}

void uart16550_init(struct uart16550 *u, int out_fd, uart16550_irq_fn irq,
		    void *opaque)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	u->out_fd = out_fd;
	u->irq = irq;
	u->irq_opaque = opaque;
	u->s.lsr = LSR_THRE | LSR_TEMT;
	u->s.msr = MSR_DCD | MSR_DSR | MSR_CTS;
	u->s.dll = 0x0c;	/* 9600 baud until the guest sets it */
}

void uart16550_fini(struct uart16550 *u)
{
	pthread_mutex_destroy(&u->lock);
}

static uint8_t uart_read_locked(struct uart16550 *u, unsigned off)
{
	struct uart16550_state *s = &u->s;
	uint8_t v;

	switch (off) {
	case UART_RBR_THR:
		return (s->lcr & LCR_DLAB) ? s->dll : rx_pop(u);
	case UART_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case UART_IIR_FCR:
		v = uart_iir(s);
		if (v == IIR_THRI)
			s->thr_ipending = 0;	/* reading IIR clears THRI */
		return v | ((s->fcr & FCR_ENABLE) ? IIR_FIFO_ON : 0);
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		v = s->lsr;
		s->lsr &= ~(LSR_OE | LSR_BI | 0x0c);
		return v;
	case UART_MSR:
		v = s->msr;
		s->msr &= ~MSR_DELTAS;
		return v;
	default:
		return s->scr;
	}
}

static void uart_write_locked(struct uart16550 *u, unsigned off, uint8_t val)
{
	struct uart16550_state *s = &u->s;

	switch (off) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB)
			s->dll = val;
		else
			uart_transmit(u, val);
		break;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = val;
			break;
		}
		/* enabling THRI with THR empty raises it at once */
		if (!(s->ier & IER_THRI) && (val & IER_THRI) && (s->lsr & LSR_THRE))
			s->thr_ipending = 1;
		s->ier = val & 0x0f;
		break;
	case UART_IIR_FCR:
		if ((val ^ s->fcr) & FCR_ENABLE || (val & FCR_CLEAR_RX)) {
			s->rx_len = 0;
			s->lsr &= ~LSR_DR;
		}
		s->fcr = val & 0xc9;
		rx_refill(u);
		break;
	case UART_LCR:
		s->lcr = val;
		break;
	case UART_MCR:
		s->mcr = val & 0x1f;
		uart_update_msr(s);
		if (!(s->mcr & MCR_LOOP))
			rx_refill(u);
		break;
	case UART_LSR:
	case UART_MSR:
		break;	/* read-only (factory test) */
	default:
		s->scr = val;
	}
}

uint8_t uart16550_read(struct uart16550 *u, unsigned off)
{
	uint8_t v;

	pthread_mutex_lock(&u->lock);
	v = uart_read_locked(u, off & 7);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return v;
}

void uart16550_write(struct uart16550 *u, unsigned off, uint8_t val)
{
	pthread_mutex_lock(&u->lock);
	uart_write_locked(u, off & 7, val);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

size_t uart16550_receive(struct uart16550 *u, const uint8_t *buf, size_t len)
{
	size_t room;

	pthread_mutex_lock(&u->lock);
	room = sizeof(u->pending) - u->pending_len;
	if (len > room)
		len = room;
	memcpy(u->pending + u->pending_len, buf, len);
	u->pending_len += len;
	rx_refill(u);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return len;
}

void uart16550_save(struct uart16550 *u, struct uart16550_state *st)
{
	pthread_mutex_lock(&u->lock);
	*st = u->s;
	pthread_mutex_unlock(&u->lock);
}

int uart16550_load(struct uart16550 *u, const struct uart16550_state *st,
		   struct err *err)
{
	if (st->rx_len > UART_FIFO_LEN)
		return err_set(err, -EINVAL, "uart: rx_len %u > FIFO size %u",
			       st->rx_len, UART_FIFO_LEN);
	if (st->ier & 0xf0)
		return err_set(err, -EINVAL, "uart: reserved IER bits set (0x%02x)", st->ier);
	pthread_mutex_lock(&u->lock);
	u->s = *st;
	u->irq_level = -1;	/* force the line to be driven again */
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}
