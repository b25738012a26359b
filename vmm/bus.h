/*
 * bus.h - port I/O dispatch: devices register a port range and handlers;
 * vCPU threads call bus_pio() for every KVM_EXIT_IO access.
 *
 * Registration happens before vCPUs start; dispatch is lock-free (each
 * device locks its own state if it needs to).
 */
#ifndef VMM_BUS_H
#define VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct pio_ops {
	/* `data` holds `size` bytes (1, 2 or 4); reads fill it. */
	void (*read)(void *opaque, uint16_t port, uint8_t *data, unsigned size);
	void (*write)(void *opaque, uint16_t port, const uint8_t *data, unsigned size);
};

#define BUS_MAX_DEVICES 32

struct bus_entry {
	uint16_t base;
	uint16_t len;
	const struct pio_ops *ops;
	void *opaque;
};

struct bus {
	unsigned nr;
	struct bus_entry e[BUS_MAX_DEVICES];
};

/* Returns 0, -EEXIST on overlap, -ENOSPC when full. */
int bus_register(struct bus *bus, uint16_t base, uint16_t len,
		 const struct pio_ops *ops, void *opaque);

/*
 * Dispatch one access. Unclaimed reads return all ones, unclaimed writes
 * are dropped (as on a PC with nothing on those ports). Returns true if a
 * device claimed the port.
 */
bool bus_pio(const struct bus *bus, uint16_t port, bool is_write,
	     uint8_t *data, unsigned size);

#endif
