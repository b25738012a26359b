/*
 * sysdev.h - the small PC platform devices a guest expects around it:
 * i8042 reset line (reboot), ACPI hardware-reduced sleep control (power
 * off), the CMOS RTC, POST port 0x80, and a QEMU-compatible isa-debug-exit
 * port the test guest uses to end with a status.
 */
#ifndef VMM_SYSDEV_H
#define VMM_SYSDEV_H

#include <pthread.h>
#include <stdint.h>

#include "bus.h"

enum sysdev_event {
	SYSDEV_EVENT_INVALID = 0,
	SYSDEV_EVENT_POWEROFF,		/* ACPI S5 */
	SYSDEV_EVENT_RESET,		/* i8042 0xfe, ACPI reset */
	SYSDEV_EVENT_DEBUG_EXIT,	/* value written to PORT_DEBUG_EXIT */
};

typedef void (*sysdev_event_fn)(void *opaque, enum sysdev_event ev, uint32_t value);

struct cmos_state {
	uint8_t index;
	uint8_t nvram[128];
};

struct sysdev {
	sysdev_event_fn event;
	void *opaque;
	pthread_mutex_t lock;
	struct cmos_state cmos;
	uint8_t i8042_cmd;
};

void sysdev_init(struct sysdev *d, sysdev_event_fn event, void *opaque);
void sysdev_fini(struct sysdev *d);
int sysdev_register(struct sysdev *d, struct bus *bus);

#endif
