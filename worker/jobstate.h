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
    BEGIN_EXPIRED,   /* its attempt runs (or was lost) without a lease: take it
                        over as a new attempt (stored_attempt, stored_doc) */
    BEGIN_ERROR,     /* Redis failed: err says why */
} begin_result;

/* Takes the lease (owner, lease_ms), the lock if lock != NULL, and writes
 * running_doc as the status of attempt, all or nothing, and indexes the
 * job in "<ns>:index:running". BEGIN_EXPIRED: attempt *stored_attempt is
 * running (or lost) and nobody holds its lease; *stored_doc (new, free)
 * is its status. Call again with attempt = *stored_attempt + 1 and
 * takeover_from = *stored_attempt (0 otherwise) to take it over. */
begin_result jobstate_begin(bx_redis *r, const char *ns, const char *id, int attempt,
                            const char *owner, int lease_ms, const char *lock,
                            const char *running_doc, size_t doclen, int max_starts,
                            int takeover_from, int *stored_attempt, char **stored_doc,
                            char *err, size_t errlen);

/* Writes the final status (fenced like status_put), then frees the lease
 * and the lock if owner still holds them. 1 written, 0 stale (this
 * attempt is final already), 2 superseded (a newer attempt exists: its
 * result is that attempt's to give), -1 + err. */
int jobstate_finish(bx_redis *r, const char *ns, const char *id, const char *state, int attempt,
                    const char *owner, const char *lock, const char *doc, size_t doclen,
                    int ttl_s, char *err, size_t errlen);

/* A job given back (shutdown, the worker's own trouble): frees the lease
 * and the lock if owner holds them, uncounts the begin (not the job's
 * fault), and writes queued_doc as the status of the same attempt. */
int jobstate_release(bx_redis *r, const char *ns, const char *id, const char *owner,
                     const char *lock, int attempt, const char *queued_doc, char *err,
                     size_t errlen);

/* One pipelined round trip for n running jobs: renews each lease (and
 * lock) that owner holds, and sets cancelled[i] = 1 for each job with a
 * cancel request. lost[i] = 1 when the lease is no longer ours. */
typedef struct jobstate_item {
    const char *id;
    const char *lock; /* or NULL */
    int attempt;
    int cancelled;    /* out */
    int lost;         /* out */
    int superseded;   /* out: lost, and a newer attempt exists (taken over) */
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

/* The sweeper. Jobs whose lease deadline passed more than lost_after_ms
 * ago without a result: their worker vanished and nobody took them over
 * (their message is gone, or waits somewhere). One worker at a time
 * sweeps: the call takes "<ns>:index:sweeper" for interval_ms, and finds
 * nothing when another holds it. *out (jobstate_stale_free) gets at most
 * max, each with its status doc: lost == 0, still running (mark it lost);
 * lost == 1, marked before and its event not confirmed (send it again). */
typedef struct jobstate_stale {
    char *id;
    char *doc;
    int attempt;
    int lost;
} jobstate_stale;
int jobstate_sweep(bx_redis *r, const char *ns, const char *owner, int interval_ms,
                   int lost_after_ms, size_t max, jobstate_stale **out, size_t *nout, char *err,
                   size_t errlen);
void jobstate_stale_free(jobstate_stale *v, size_t n);
/* Writes doc (state lost) when attempt is still running without a lease.
 * 1 written, 0 not (someone came back), -1 + err. */
int jobstate_mark_lost(bx_redis *r, const char *ns, const char *id, int attempt, const char *doc,
                       int ttl_s, char *err, size_t errlen);
/* The lost event of attempt is confirmed: the job leaves the index. */
int jobstate_unindex(bx_redis *r, const char *ns, const char *id, int attempt, char *err,
                     size_t errlen);

#endif
