/*
 * ternd.h - private to ternd/: the per-host daemon's shared state.
 *
 * One struct ternd per process: its configuration, the VMs it owns (each a
 * tern-vmm process in its own session, so VMs outlive the daemon), the
 * event log and the API servers. d->lock guards the VM list and every
 * ternd_vm field; it is never held across a call to another process.
 */
#ifndef TERND_TERND_H
#define TERND_TERND_H

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "host.h"
#include "parse.h"

enum ternd_vm_state {
	TERND_VM_INVALID = 0,
	TERND_VM_STOPPED,
	TERND_VM_RUNNING,
	TERND_VM_PAUSED,
	TERND_VM_INCOMING,	/* destination of a migration, not ours yet */
};

struct ternd_vm {
	struct ternd_vm *next;
	char name[TERND_NAME_MAX];
	json_t *def;			/* the validated definition */
	enum ternd_vm_state state;
	pid_t pid;			/* tern-vmm, 0 when stopped */
	char dir[TERND_PATH_MAX + TERND_NAME_MAX + 8];	/* STATE_DIR/vms/NAME */
	char sock[108];			/* RUN_DIR/vms/NAME.sock */
	bool busy;			/* an operation is under way */
	bool removed;			/* unlinked from the list */
	/* source side of a migration */
	bool migrating;
	char peer[160];			/* the destination ternd's URL */
	char mig_uri[128];
	json_t *mig_status;		/* last GET /vm/migration */
	char mig_result[256];		/* how the last migration ended */
	bool cancel;
};

struct ternd_events;

struct ternd {
	struct ternd_config cfg;
	pthread_mutex_t lock;
	struct ternd_vm *vms;
	struct ternd_vm *graveyard;	/* removed VMs, freed at exit */
	struct ternd_events *events;
	volatile bool stopping;
};

/* events.c */
int ternd_events_open(struct ternd *d, struct err *err);
void ternd_events_close(struct ternd *d);
void ternd_event(struct ternd *d, const char *vm, const char *kind,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
json_t *ternd_events_query(struct ternd *d, const char *vm, int64_t after,
			   unsigned wait_s);

/* hooks.c: 0, or -EPERM with msg set when a hook failed (veto) */
int ternd_hook_run(struct ternd *d, const char *vm, const char *phase,
		   const char *side, char *msg, size_t len);

/* vm.c: definitions and per-VM files */
struct ternd_vm *ternd_vm_find(struct ternd *d, const char *name);
/* ternd_vm_find, or -ENOENT naming the VM and host; caller holds d->lock */
int ternd_vm_lookup(struct ternd *d, const char *name, struct ternd_vm **vm,
		    struct err *err);
struct ternd_vm *ternd_vm_new(struct ternd *d, const char *name, json_t *def);
void ternd_vm_remove(struct ternd *d, struct ternd_vm *vm);
int ternd_vm_save(struct ternd *d, struct ternd_vm *vm);
int ternd_vm_load_all(struct ternd *d, struct err *err);
json_t *ternd_vm_json(struct ternd *d, struct ternd_vm *vm);
const char *ternd_vm_state_name(enum ternd_vm_state s);
void ternd_vm_usage(struct ternd *d, uint64_t *mem, uint64_t *vcpus);

/* proc.c: tern-vmm processes */
int ternd_proc_spawn(struct ternd *d, struct ternd_vm *vm, const char *incoming,
		     pid_t *pid, struct err *err);
bool ternd_proc_alive(pid_t pid, const char *sock);
int ternd_proc_kill(pid_t pid, const char *sock, unsigned timeout_ms);
int ternd_vmm_call(const char *sock, const char *method, const char *path,
		   const char *body, json_t **reply, struct err *err);
int ternd_peer_call(struct ternd *d, const char *peer, const char *method,
		    const char *path, json_t *body, json_t **reply,
		    struct err *err);

/* ops.c: lifecycle */
int ternd_op(struct ternd *d, const char *name, const char *op,
	     const json_t *args, json_t **reply, struct err *err);
void ternd_adopt_all(struct ternd *d);
void *ternd_monitor(void *opaque);

/* migrate.c */
int ternd_migrate(struct ternd *d, const char *name, const json_t *args,
		  json_t **reply, struct err *err);
int ternd_migrate_cancel(struct ternd *d, const char *name, struct err *err);
int ternd_incoming(struct ternd *d, const json_t *args, json_t **reply,
		   struct err *err);
int ternd_incoming_end(struct ternd *d, const char *name, bool commit,
		       struct err *err);
void ternd_migrate_recover(struct ternd *d, struct ternd_vm *vm);
json_t *ternd_host_facts(struct ternd *d, struct err *err);
json_t *ternd_host_state(struct ternd *d);

/* http.c */
struct ternd_http;
struct ternd_http *ternd_http_start(struct ternd *d, struct err *err);
void ternd_http_stop(struct ternd_http *h);

/* https.c: the TCP API over TLS (see there) */
struct ternd_https;
struct MHD_Daemon;
struct MHD_Connection;
struct ternd_https *ternd_https_new(struct ternd *d, int lfd, struct err *err);
int ternd_https_run(struct ternd_https *hs, struct MHD_Daemon *mhd,
		    struct err *err);
void ternd_https_quiesce(struct ternd_https *hs);
void ternd_https_free(struct ternd_https *hs);
/* Its client's verified certificate names ("" none), NULL if not HTTPS. */
const char *ternd_https_names(struct MHD_Connection *conn);
/* Its MHD_OPTION_NOTIFY_CONNECTION callback, declared in http.c. */

#endif
