/* statusbatch — many status_put writes in one Redis round trip.
 *
 * The publisher writes the "queued" status of every job of a batch in
 * one pipeline before it publishes them, so a submission costs a request
 * thread no Redis round trip. It runs status_put's own script
 * (status_put_script, lib/rds.c): the same fencing, the same hash. */
#ifndef BX_API_STATUSBATCH_H
#define BX_API_STATUSBATCH_H

#include <stddef.h>

#include "rds.h"

typedef struct statusbatch_item {
    const char *id;
    const char *state;
    int attempt;
    const char *doc; /* JSON text, borrowed */
    size_t doclen;
    int result; /* out: 1 written, 0 refused as stale, -1 failed */
} statusbatch_item;

/* Writes every item (status_put semantics, terminal states expire after
 * ttl_s). 0 when Redis answered (each item's result says how its write
 * went), -1 + err when the connection failed: every result is then -1. */
int statusbatch_put(bx_redis *r, const char *ns, int ttl_s, statusbatch_item *items, size_t n,
                    char *err, size_t errlen);

#endif
