/*
 * precheck.h - STAND-IN for branch h/cpumodel's pre-migration checks (same
 * contract). Deleted when h/cpumodel lands in main.
 */
#ifndef HOST_PRECHECK_H
#define HOST_PRECHECK_H

#include <jansson.h>

/*
 * Evaluate every check; returns a JSON array of {"check","reason"}
 * failures (empty: the migration may go ahead). Warnings are appended to
 * `warnings_out` (an array) when it is not NULL.
 */
json_t *host_precheck(const json_t *vm, const json_t *src_facts,
		      const json_t *dst_facts, const json_t *dst_state,
		      json_t *warnings_out);

#endif
