/*
 * log.h - leveled logging to stderr with a module tag.
 *
 *   log_info("vcpu", "vCPU %d started", id);
 *
 * The level is set once at start-up (TERN_LOG=debug|info|warn|error or
 * log_set_level()). Lines are written whole with one write(2), so threads do
 * not interleave inside a line.
 */
#ifndef BASE_LOG_H
#define BASE_LOG_H

enum log_level { LOG_DEBUG = 1, LOG_INFO, LOG_WARN, LOG_ERR };

void log_set_level(enum log_level lvl);
void log_init_from_env(void);
enum log_level log_get_level(void);
void log_msg(enum log_level lvl, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(tag, ...) log_msg(LOG_DEBUG, tag, __VA_ARGS__)
#define log_info(tag, ...)  log_msg(LOG_INFO, tag, __VA_ARGS__)
#define log_warn(tag, ...)  log_msg(LOG_WARN, tag, __VA_ARGS__)
#define log_err(tag, ...)   log_msg(LOG_ERR, tag, __VA_ARGS__)

#endif
