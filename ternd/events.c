/*
 * events.c - the persisted event log (SQLite, STATE_DIR/events.db): one
 * row per lifecycle or migration step, with time, VM, host, kind and
 * message; also written to stderr as a structured log line. Readers can
 * long-poll for rows newer than the last id they saw.
 */
#include "ternd.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct ternd_events {
	sqlite3 *db;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* signalled on every new row */
};

#define EVENTS_SCHEMA \
	"CREATE TABLE IF NOT EXISTS events (" \
	" id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL," \
	" vm TEXT, host TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL);" \
	"CREATE INDEX IF NOT EXISTS events_vm ON events(vm, id);"

int ternd_events_open(struct ternd *d, struct err *err)
{
	struct ternd_events *ev = calloc(1, sizeof(*ev));
	char path[PATH_MAX];
	char *msg = NULL;

	if (!ev)
		return err_set(err, -ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/events.db", d->cfg.state_dir);
	if (sqlite3_open(path, &ev->db) != SQLITE_OK ||
	    sqlite3_exec(ev->db, EVENTS_SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(err, -EIO, "event log %s: %s", path,
			msg ? msg : sqlite3_errmsg(ev->db));
		sqlite3_free(msg);
		sqlite3_close(ev->db);
		free(ev);
		return -EIO;
	}
	sqlite3_busy_timeout(ev->db, 2000);
	pthread_mutex_init(&ev->lock, NULL);
	pthread_cond_init(&ev->cond, NULL);
	d->events = ev;
	return 0;
}

void ternd_events_close(struct ternd *d)
{
	if (!d->events)
		return;
	sqlite3_close(d->events->db);
	free(d->events);
	d->events = NULL;
}

static void events_now(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	char sec[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
	if (snprintf(buf, len, "%s.%03dZ", sec, (int)(ts.tv_nsec / 1000000)) >= (int)len)
		buf[0] = '\0';
}

void ternd_event(struct ternd *d, const char *vm, const char *kind,
		 const char *fmt, ...)
{
	struct ternd_events *ev = d->events;
	char msg[512], now[64];
	sqlite3_stmt *st;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("event", "host=%s vm=%s kind=%s msg=\"%s\"", d->cfg.host,
		 vm ? vm : "-", kind, msg);
	if (!ev)
		return;
	events_now(now, sizeof(now));
	pthread_mutex_lock(&ev->lock);
	if (sqlite3_prepare_v2(ev->db, "INSERT INTO events(time, vm, host, kind, message)"
			       " VALUES (?, ?, ?, ?, ?)", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, now, -1, SQLITE_TRANSIENT);
		if (vm)
			sqlite3_bind_text(st, 2, vm, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, d->cfg.host, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 4, kind, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 5, msg, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) != SQLITE_DONE)
			log_warn("event", "cannot store event: %s",
				 sqlite3_errmsg(ev->db));
		sqlite3_finalize(st);
	}
	pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
}

static const char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "";
}

/* Called with ev->lock held. */
static json_t *events_select(struct ternd_events *ev, const char *vm,
			     int64_t after)
{
	json_t *a = json_array();
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(ev->db, "SELECT id, time, vm, host, kind, message"
			       " FROM events WHERE id > ? AND (?2 IS NULL OR vm = ?2)"
			       " ORDER BY id LIMIT 1000", -1, &st, NULL) != SQLITE_OK)
		return a;
	sqlite3_bind_int64(st, 1, after);
	if (vm)
		sqlite3_bind_text(st, 2, vm, -1, SQLITE_TRANSIENT);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(a, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}",
			"id", (json_int_t)sqlite3_column_int64(st, 0),
			"time", col(st, 1), "vm", col(st, 2), "host", col(st, 3),
			"kind", col(st, 4), "message", col(st, 5)));
	sqlite3_finalize(st);
	return a;
}

/* after < 0: the last 100 events. wait_s > 0: long-poll for new rows. */
json_t *ternd_events_query(struct ternd *d, const char *vm, int64_t after,
			   unsigned wait_s)
{
	struct ternd_events *ev = d->events;
	struct timespec until;
	json_t *a;

	pthread_mutex_lock(&ev->lock);
	if (after < 0) {
		after = sqlite3_last_insert_rowid(ev->db);
		sqlite3_stmt *st;

		if (sqlite3_prepare_v2(ev->db, "SELECT MAX(id) FROM events", -1,
				       &st, NULL) == SQLITE_OK) {
			if (sqlite3_step(st) == SQLITE_ROW)
				after = sqlite3_column_int64(st, 0);
			sqlite3_finalize(st);
		}
		after = vm ? 0 : (after > 100 ? after - 100 : 0);
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_s;
	for (;;) {
		a = events_select(ev, vm, after);
		if (json_array_size(a) || !wait_s || d->stopping)
			break;
		json_decref(a);
		if (pthread_cond_timedwait(&ev->cond, &ev->lock, &until) ==
		    ETIMEDOUT) {
			a = events_select(ev, vm, after);
			break;
		}
	}
	pthread_mutex_unlock(&ev->lock);
	return a;
}
