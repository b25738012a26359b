/* log.c - leveled, tagged, line-atomic logging to stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static enum log_level log_level = LOG_WARN;

void log_set_level(enum log_level lvl)
{
	log_level = lvl;
}

enum log_level log_get_level(void)
{
	return log_level;
}

void log_init_from_env(void)
{
	const char *v = getenv("TERN_LOG");

	if (!v)
		return;
	if (!strcasecmp(v, "debug"))
		log_level = LOG_DEBUG;
	else if (!strcasecmp(v, "info"))
		log_level = LOG_INFO;
	else if (!strcasecmp(v, "warn"))
		log_level = LOG_WARN;
	else if (!strcasecmp(v, "error"))
		log_level = LOG_ERR;
}

void log_msg(enum log_level lvl, const char *tag, const char *fmt, ...)
{
	static const char *names[] = { "", "debug", "info", "warn", "error" };
	char line[1024];
	va_list ap;
	int n;

	if (lvl < log_level)
		return;
	n = snprintf(line, sizeof(line), "tern %s [%s]: ", names[lvl], tag);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
}
