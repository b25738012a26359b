/*
 * dispatch.c - one API request cycle without the transport: parse the
 * request, run it on the backend, render the reply or the error as JSON.
 *
 * The HTTP server (server.c) only moves bytes in and out of this; the
 * fuzzer drives it directly with a fake backend.
 */
#define API_INTERNAL
#include "api_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TERN_VERSION
#define TERN_VERSION "unknown"
#endif

int api_status_from_errno(int code)
{
	switch (code) {
	case 0:			return 200;
	case -EINVAL:		return 400;
	case -ENOENT:		return 404;
	case -EBUSY:
	case -EALREADY:
	case -EEXIST:		return 409;
	case -E2BIG:		return 413;
	}
	return 500;
}

/* {"error": msg}; the message is forced to printable ASCII first. */
static char *api_error_json(const char *msg)
{
	char buf[sizeof(((struct err *)0)->msg)];
	json_t *o;
	char *s;

	snprintf(buf, sizeof(buf), "%s", msg && *msg ? msg : "unknown error");
	api_sanitize(buf);
	o = json_pack("{s:s}", "error", buf);
	if (!o)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static json_int_t api_json_u64(uint64_t v)
{
	return v > (uint64_t)LLONG_MAX ? (json_int_t)LLONG_MAX : (json_int_t)v;
}

/* o["field"] = m->field, clamped to what JSON integers hold. */
#define API_SET_U64(o, m, field) \
	json_object_set_new(o, #field, json_integer(api_json_u64((m)->field)))

/* A bounded copy of a backend string: NUL-terminated, printable ASCII. */
static const char *api_clean(const char *s, size_t size, char *buf)
{
	size_t n = strnlen(s, size);

	memcpy(buf, s, n);
	buf[n] = '\0';
	api_sanitize(buf);
	return buf;
}

static json_t *api_info_json(const struct api_vm_info *info)
{
	char kernel[sizeof(info->kernel) + 1];
	char cmdline[sizeof(info->cmdline) + 1];

	return json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:s}",
			 "state", api_vm_state_name(info->state),
			 "vcpus", (json_int_t)info->vcpus,
			 "memory_bytes", api_json_u64(info->memory_bytes),
			 "uptime_ms", api_json_u64(info->uptime_ms),
			 "kernel", api_clean(info->kernel, sizeof(info->kernel),
					     kernel),
			 "cmdline", api_clean(info->cmdline,
					      sizeof(info->cmdline), cmdline),
			 "version", TERN_VERSION);
}

/* The planner's prediction, next to what happens. */
static void api_plan_json(json_t *o, const struct api_migration_info *m)
{
	char plan[sizeof(m->plan) + 1];

	json_object_set_new(o, "plan", json_string(api_clean(m->plan, sizeof(m->plan), plan)));
	API_SET_U64(o, m, predicted_total_ms);
	API_SET_U64(o, m, predicted_downtime_ms);
	API_SET_U64(o, m, predicted_wire_bytes);
	API_SET_U64(o, m, initial_predicted_total_ms);
	API_SET_U64(o, m, initial_predicted_downtime_ms);
	API_SET_U64(o, m, dirty_rate_smoothed_bps);
	API_SET_U64(o, m, working_set_bytes);
	API_SET_U64(o, m, downtime_limit_initial_ms);
}

static json_t *api_migration_json(const struct api_migration_info *m)
{
	char state[sizeof(m->state) + 1], uri[sizeof(m->uri) + 1];
	char error[sizeof(m->error) + 1];
	json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"state", api_clean(m->state, sizeof(m->state), state),
		"uri", api_clean(m->uri, sizeof(m->uri), uri),
		"pass", (json_int_t)m->pass,
		"ram_bytes", api_json_u64(m->ram_bytes),
		"transferred_bytes", api_json_u64(m->transferred_bytes),
		"remaining_bytes", api_json_u64(m->remaining_bytes),
		"dirty_rate_bps", api_json_u64(m->dirty_rate_bps),
		"throughput_bps", api_json_u64(m->throughput_bps),
		"expected_downtime_ms", api_json_u64(m->expected_downtime_ms),
		"eta_ms", api_json_u64(m->eta_ms),
		"elapsed_ms", api_json_u64(m->elapsed_ms),
		"downtime_ms", api_json_u64(m->downtime_ms),
		"pages_normal", api_json_u64(m->pages_normal),
		"pages_zero", api_json_u64(m->pages_zero),
		"downtime_limit_ms", api_json_u64(m->downtime_limit_ms),
		"bandwidth_limit_bps", api_json_u64(m->bandwidth_limit_bps));

	if (o) {
		char strategy[sizeof(m->strategy) + 1];

		json_object_set_new(o, "throttle_pct", json_integer(m->throttle_pct));
		json_object_set_new(o, "progress_pct", json_integer(m->progress_pct));
		API_SET_U64(o, m, pages_xbzrle);
		API_SET_U64(o, m, xbzrle_cache_hits);
		API_SET_U64(o, m, xbzrle_cache_misses);
		API_SET_U64(o, m, xbzrle_overflows);
		API_SET_U64(o, m, xbzrle_bytes_saved);
		API_SET_U64(o, m, postcopy_requests);
		API_SET_U64(o, m, postcopy_bg_pages);
		API_SET_U64(o, m, postcopy_pages_left);
		API_SET_U64(o, m, postcopy_faults);
		API_SET_U64(o, m, postcopy_fault_avg_us);
		API_SET_U64(o, m, postcopy_fault_max_us);
		API_SET_U64(o, m, postcopy_fault_p50_us);
		API_SET_U64(o, m, postcopy_recoveries);
		API_SET_U64(o, m, pages_deferred);
		API_SET_U64(o, m, downtime_us);
		json_object_set_new(o, "strategy",
				    json_string(api_clean(m->strategy, sizeof(m->strategy), strategy)));
		json_object_set_new(o, "channels", json_integer(m->channels));
		API_SET_U64(o, m, pages_compressed);
	}
	if (o && m->error[0])
		json_object_set_new(o, "error",
				    json_string(api_clean(m->error, sizeof(m->error), error)));
	if (o)
		api_plan_json(o, m);
	return o;
}

static json_t *api_dirty_rate_json(const struct api_dirty_rate_info *d)
{
	char state[sizeof(d->state) + 1], error[sizeof(d->error) + 1];
	json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
		"state", api_clean(d->state, sizeof(d->state), state),
		"dirty_rate_bps", api_json_u64(d->dirty_rate_bps),
		"peak_dirty_rate_bps", api_json_u64(d->peak_dirty_rate_bps),
		"working_set_bytes", api_json_u64(d->working_set_bytes),
		"duration_ms", api_json_u64(d->duration_ms),
		"window_ms", api_json_u64(d->window_ms),
		"windows", (json_int_t)d->windows);

	if (o && d->error[0])
		json_object_set_new(o, "error",
				    json_string(api_clean(d->error, sizeof(d->error), error)));
	return o;
}

/* The state an action leaves the VM in, if the backend did not say. */
static enum api_vm_state api_implied_state(enum api_action a)
{
	switch (a) {
	case API_ACTION_PAUSE:		return API_VM_PAUSED;
	case API_ACTION_RESUME:		return API_VM_RUNNING;
	case API_ACTION_SHUTDOWN:	return API_VM_SHUTTING_DOWN;
	default:			return API_VM_INVALID;
	}
}

static char *api_reply_json(const struct api_request *req,
			    const struct api_reply *reply)
{
	enum api_vm_state st = reply->info.state;
	json_t *o;
	char *s;

	if (req->action == API_ACTION_GET_INFO) {
		o = api_info_json(&reply->info);
	} else if (req->action == API_ACTION_MIGRATE ||
		   req->action == API_ACTION_MIGRATE_STATUS ||
		   req->action == API_ACTION_MIGRATE_CANCEL ||
		   req->action == API_ACTION_MIGRATE_POSTCOPY ||
		   req->action == API_ACTION_MIGRATE_RECOVER ||
		   req->action == API_ACTION_MIGRATE_ABANDON) {
		o = api_migration_json(&reply->migration);
	} else if (req->action == API_ACTION_DIRTY_RATE ||
		   req->action == API_ACTION_DIRTY_RATE_STATUS) {
		o = api_dirty_rate_json(&reply->dirty_rate);
	} else {
		if (st == API_VM_INVALID)
			st = api_implied_state(req->action);
		o = json_pack("{s:s}", "state", api_vm_state_name(st));
	}
	if (!o)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

int api_dispatch(const struct api_backend *backend, const char *method,
		 const char *path, const char *body, size_t body_len,
		 char **resp_json)
{
	struct api_request req;
	struct api_reply reply;
	struct err err = { 0 };
	int status, ret;

	*resp_json = NULL;
	status = api_parse_request(method, path, body, body_len, &req, &err);
	if (status != 200)
		goto fail;
	memset(&reply, 0, sizeof(reply));
	ret = backend->execute(backend->opaque, &req, &reply, &err);
	if (ret) {
		err_set(&err, ret, "%s failed: %s", api_action_name(req.action),
			strerror(-ret));
		status = api_status_from_errno(ret);
		goto fail;
	}
	*resp_json = api_reply_json(&req, &reply);
	if (*resp_json)
		return 200;
	err_set(&err, -ENOMEM, "out of memory rendering the reply");
	status = 500;
fail:
	*resp_json = api_error_json(err.msg);
	return status;
}
