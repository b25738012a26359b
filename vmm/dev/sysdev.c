/*
 * sysdev.c - platform odds and ends: reset, power-off, RTC, debug exit.
 *
 * The RTC reports the host's wall-clock time in BCD, 24-hour mode, never
 * "update in progress"; its NVRAM bytes are plain storage.
 */
#include "sysdev.h"

#include <string.h>
#include <time.h>

#include "layout.h"

#define PORT_CMOS_INDEX	0x70
#define PORT_CMOS_DATA	0x71
#define PORT_POST	0x80

#define ACPI_SLP_EN	(1u << 5)
#define ACPI_SLP_TYP(v)	(((v) >> 2) & 7)
#define ACPI_S5		5

static uint8_t bcd(int v)
{
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static uint8_t cmos_read(struct sysdev *d)
{
	unsigned idx = d->cmos.index & 0x7f;
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	switch (idx) {
	case 0x00: return bcd(tm.tm_sec);
	case 0x02: return bcd(tm.tm_min);
	case 0x04: return bcd(tm.tm_hour);
	case 0x06: return bcd(tm.tm_wday + 1);
	case 0x07: return bcd(tm.tm_mday);
	case 0x08: return bcd(tm.tm_mon + 1);
	case 0x09: return bcd(tm.tm_year % 100);
	case 0x32: return bcd(19 + tm.tm_year / 100);
	case 0x0a: return 0x26;		/* 32.768 kHz, 1024 Hz; UIP clear */
	case 0x0b: return 0x02;		/* 24-hour, BCD, no interrupts */
	case 0x0c: return 0x00;
	case 0x0d: return 0x80;		/* valid RAM and time */
	default: return d->cmos.nvram[idx];
	}
}

static void sys_read(void *opaque, uint16_t port, uint8_t *data, unsigned size)
{
	struct sysdev *d = opaque;

	memset(data, 0xff, size);
	pthread_mutex_lock(&d->lock);
	switch (port) {
	case PORT_CMOS_INDEX:
		data[0] = d->cmos.index;
		break;
	case PORT_CMOS_DATA:
		data[0] = cmos_read(d);
		break;
	case PORT_I8042_CMD:
		data[0] = 0x1c;		/* input buffer empty, system flag */
		break;
	case PORT_I8042_DATA:
		data[0] = 0x00;
		break;
	case PORT_ACPI_SLEEP_STS:
		data[0] = 0x00;
		break;
	}
	pthread_mutex_unlock(&d->lock);
}

static void sys_write(void *opaque, uint16_t port, const uint8_t *data, unsigned size)
{
	struct sysdev *d = opaque;
	uint32_t v = 0;

	memcpy(&v, data, size > 4 ? 4 : size);
	switch (port) {
	case PORT_CMOS_INDEX:
		pthread_mutex_lock(&d->lock);
		d->cmos.index = v & 0xff;
		pthread_mutex_unlock(&d->lock);
		break;
	case PORT_CMOS_DATA:
		pthread_mutex_lock(&d->lock);
		if ((d->cmos.index & 0x7f) >= 0x0e)
			d->cmos.nvram[d->cmos.index & 0x7f] = v & 0xff;
		pthread_mutex_unlock(&d->lock);
		break;
	case PORT_I8042_CMD:
		if ((v & 0xff) == 0xfe)
			d->event(d->opaque, SYSDEV_EVENT_RESET, 0);
		break;
	case PORT_ACPI_SLEEP_CTL:
		if ((v & ACPI_SLP_EN) && ACPI_SLP_TYP(v) == ACPI_S5)
			d->event(d->opaque, SYSDEV_EVENT_POWEROFF, 0);
		break;
	case PORT_DEBUG_EXIT:
		d->event(d->opaque, SYSDEV_EVENT_DEBUG_EXIT, v);
		break;
	}
}

static const struct pio_ops sys_ops = { .read = sys_read, .write = sys_write };

void sysdev_init(struct sysdev *d, sysdev_event_fn event, void *opaque)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	d->event = event;
	d->opaque = opaque;
}

void sysdev_fini(struct sysdev *d)
{
	pthread_mutex_destroy(&d->lock);
}

int sysdev_register(struct sysdev *d, struct bus *bus)
{
	static const struct { uint16_t base, len; } ranges[] = {
		{ PORT_I8042_DATA, 1 }, { PORT_I8042_CMD, 1 },
		{ PORT_CMOS_INDEX, 2 }, { PORT_POST, 1 },
		{ PORT_DEBUG_EXIT, 2 }, { PORT_ACPI_SLEEP_CTL, 2 },
	};
	int ret;

	for (unsigned i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		ret = bus_register(bus, ranges[i].base, ranges[i].len, &sys_ops, d);
		if (ret)
			return ret;
	}
	return 0;
}
