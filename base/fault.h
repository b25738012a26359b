/*
 * fault.h - fault injection, a test facility (docs/testing-faults.md).
 *
 * TERN_FAULT=<point>:<action> in the environment makes the process act on
 * itself when it reaches the named point: kill (SIGKILL), stop (SIGSTOP,
 * then go on when continued) or exit (_exit(FAULT_EXIT_STATUS), no
 * cleanup). fault_init() reads the variable once at start; unset, every
 * fault_point() costs one branch on a global.
 */
#ifndef BASE_FAULT_H
#define BASE_FAULT_H

#include <stdbool.h>

#define FAULT_EXIT_STATUS 99

extern bool fault_armed;

/* Read TERN_FAULT; a malformed value is reported on stderr and ignored. */
void fault_init(void);
void fault_hit(const char *point);

#define fault_point(point)			\
	do {					\
		if (fault_armed)		\
			fault_hit(point);	\
	} while (0)

#endif
