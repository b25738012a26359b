/*
 * fault.c - the TERN_FAULT test facility: parse "<point>:<action>" once,
 * and at the named point say so on stderr and kill, stop or end the
 * process. Only async-signal-safe calls on the hit path.
 */
#include "fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum fault_action {
	FAULT_NONE = 0,
	FAULT_KILL,
	FAULT_STOP,
	FAULT_EXIT,
};

bool fault_armed;
static char fault_where[64];
static enum fault_action fault_what;

static enum fault_action fault_parse_action(const char *s)
{
	if (!strcmp(s, "kill"))
		return FAULT_KILL;
	if (!strcmp(s, "stop"))
		return FAULT_STOP;
	if (!strcmp(s, "exit"))
		return FAULT_EXIT;
	return FAULT_NONE;
}

void fault_init(void)
{
	const char *v = getenv("TERN_FAULT"), *colon;
	size_t n;

	fault_armed = false;
	if (!v || !*v)
		return;
	colon = strrchr(v, ':');
	n = colon ? (size_t)(colon - v) : 0;
	fault_what = colon ? fault_parse_action(colon + 1) : FAULT_NONE;
	if (!n || n >= sizeof(fault_where) || fault_what == FAULT_NONE) {
		fprintf(stderr, "TERN_FAULT='%s' ignored: want <point>:kill|stop|exit\n", v);
		return;
	}
	memcpy(fault_where, v, n);
	fault_where[n] = '\0';
	fault_armed = true;
}

static void fault_say(const char *point, const char *what)
{
	char line[160];
	int n = snprintf(line, sizeof(line), "TERN_FAULT: %s at %s\n", what, point);

	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void fault_hit(const char *point)
{
	if (strcmp(point, fault_where))
		return;
	switch (fault_what) {
	case FAULT_KILL:
		fault_say(point, "kill");
		raise(SIGKILL);
		break;
	case FAULT_STOP:
		fault_say(point, "stop");
		fault_armed = false;		/* once: go on when continued */
		raise(SIGSTOP);
		break;
	case FAULT_EXIT:
		fault_say(point, "exit");
		_exit(FAULT_EXIT_STATUS);
	default:
		break;
	}
}
