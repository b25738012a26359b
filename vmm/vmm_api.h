/*
 * vmm_api.h - tern-vmm's implementation of the control API backend: turns
 * typed API requests (api/api.h) into VM operations.
 */
#ifndef VMM_VMM_API_H
#define VMM_VMM_API_H

#include "api.h"
#include "vm.h"

int vmm_api_start(struct api_server **srv, const char *path, struct vm *vm,
		  struct err *err);
/* The VM exists: serve requests (until then they get 409). */
void vmm_api_set_ready(void);
/* Cancel an outgoing migration (or wait for one past its handover). */
void vmm_api_quiesce(void);
/* Periodic work of the main loop (leave after a completed migration). */
void vmm_api_tick(void);
/* This host's TLS identity for outgoing migrations (NULL: plain TCP). */
struct tls_ctx;
void vmm_api_set_tls(struct tls_ctx *tls);

#endif
