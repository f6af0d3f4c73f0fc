/* jobstate — what a worker keeps in Redis about the jobs it runs: the
 * lease that keeps a redelivered job from running twice, the fenced
 * status, the cancel flag, its own heartbeat. Each is one round trip. */
#ifndef BX_JOBSTATE_H
#define BX_JOBSTATE_H

#include <stddef.h>

#include "rds.h"

typedef enum {
    BEGIN_OK,        /* lease taken, status is running: run it */
    BEGIN_MINE,      /* we already hold the lease (a redelivery to us) */
    BEGIN_LEASED,    /* another worker holds the lease: not now */
    BEGIN_DONE,      /* status terminal or newer: never run this copy */
    BEGIN_CANCELLED, /* cancelled before it started */
    BEGIN_LOCKED,    /* its lock is held by another job */
    BEGIN_POISON,    /* begun too often without a result: quarantine it */
    BEGIN_ERROR,     /* Redis failed: err says why */
} begin_result;

/* Takes the lease (owner, lease_ms), the lock if lock != NULL, and writes
 * running_doc as the status of attempt, all or nothing. */
begin_result jobstate_begin(bx_redis *r, const char *ns, const char *id, int attempt,
                            const char *owner, int lease_ms, const char *lock,
                            const char *running_doc, size_t doclen, int max_starts, char *err,
                            size_t errlen);

/* Writes the final status (fenced like status_put), then frees the lease
 * and the lock if owner still holds them. 1 written, 0 stale, -1 + err. */
int jobstate_finish(bx_redis *r, const char *ns, const char *id, const char *state, int attempt,
                    const char *owner, const char *lock, const char *doc, size_t doclen,
                    int ttl_s, char *err, size_t errlen);

/* Frees the lease and the lock if owner holds them (a job given back). */
int jobstate_release(bx_redis *r, const char *ns, const char *id, const char *owner,
                     const char *lock, char *err, size_t errlen);

/* One pipelined round trip for n running jobs: renews each lease (and
 * lock) that owner holds, and sets cancelled[i] = 1 for each job with a
 * cancel request. lost[i] = 1 when the lease is no longer ours. */
typedef struct jobstate_item {
    const char *id;
    const char *lock; /* or NULL */
    int cancelled;    /* out */
    int lost;         /* out */
} jobstate_item;
int jobstate_tick(bx_redis *r, const char *ns, const char *owner, int lease_ms,
                  jobstate_item *items, size_t n, char *err, size_t errlen);

/* Stores partial output of a running job for GET .../output. */
int jobstate_put_output(bx_redis *r, const char *ns, const char *id, const char *stream,
                        const char *data, size_t len, char *err, size_t errlen);

/* The worker's heartbeat: a hash "<ns>:worker:<worker_id>" expiring
 * after ttl_s, with the fields given as name/value pairs. */
int jobstate_heartbeat(bx_redis *r, const char *ns, const char *worker_id, int ttl_s,
                       const char **fields, size_t nfields, char *err, size_t errlen);

#endif
