/* bus.c - port I/O range table and dispatch. */
#include "bus.h"

#include <errno.h>
#include <string.h>

int bus_register(struct bus *bus, uint16_t base, uint16_t len,
		 const struct pio_ops *ops, void *opaque)
{
	for (unsigned i = 0; i < bus->nr; i++) {
		const struct bus_entry *e = &bus->e[i];

		if ((uint32_t)base < (uint32_t)e->base + e->len &&
		    (uint32_t)e->base < (uint32_t)base + len)
			return -EEXIST;
	}
	if (bus->nr == BUS_MAX_DEVICES)
		return -ENOSPC;
	bus->e[bus->nr++] = (struct bus_entry){ base, len, ops, opaque };
	return 0;
}

bool bus_pio(const struct bus *bus, uint16_t port, bool is_write,
	     uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < bus->nr; i++) {
		const struct bus_entry *e = &bus->e[i];

		if (port < e->base || port >= (uint32_t)e->base + e->len)
			continue;
		if (is_write) {
			if (e->ops->write)
				e->ops->write(e->opaque, port, data, size);
		} else if (e->ops->read) {
			e->ops->read(e->opaque, port, data, size);
		} else {
			memset(data, 0xff, size);
		}
		return true;
	}
	if (!is_write)
		memset(data, 0xff, size);
	return false;
}
