/* rec — the recorder: consumes result events from "<ns>.results",
 * writes them to MongoDB in batches and acks each batch only after
 * MongoDB acknowledged it. Undecodable or unstorable events go to
 * "<ns>.dlx" with an x-reason header. */
#ifndef BX_REC_H
#define BX_REC_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "cfg.h"
#include "metrics.h"
#include "statusd.h"
#include "store.h"

/* What the recorder shows of itself: its metrics (families owned by the
 * registry) and the state of its connections, which statusd's thread
 * reads for /readyz while rec_run's thread writes it. */
typedef struct rec_obs {
    metric_fam *events;        /* bx_recorder_events_total{result=stored|stale|dead_lettered} */
    metric_fam *batches;       /* bx_recorder_batches_total */
    metric_fam *write_errors;  /* bx_recorder_write_errors_total */
    metric_fam *batch_size;    /* bx_recorder_batch_size (histogram, events) */
    metric_fam *write_seconds; /* bx_recorder_write_seconds (histogram) */
    metric_fam *lag;           /* bx_recorder_lag_seconds: store time - finished_at, last event */
    metric_fam *held;          /* bx_recorder_held_events: received, not yet stored */
    metric_fam *amqp_up;       /* bx_recorder_amqp_up */
    metric_fam *mongo_up;      /* bx_recorder_mongo_up */
    pthread_mutex_t mu;        /* guards the two texts below */
    char amqp_err[160];        /* why RabbitMQ is down; "" = it is not, or not yet tried */
    char mongo_err[160];
} rec_obs;

/* Registers the recorder's families in reg (borrowed; outlives o).
 * 0, or -1 + err. rec_obs_release in both cases. */
int rec_obs_init(rec_obs *o, metrics *reg, char *err, size_t errlen);
void rec_obs_release(rec_obs *o);
/* statusd_ready_fn: ready = RabbitMQ consumer connected and MongoDB
 * answering, as the recorder last saw them. ud is the rec_obs. */
int rec_obs_ready(void *ud, statusd_check *checks, int max);

/* Runs until *stop is set (by a signal handler), then writes and acks
 * what it holds (one attempt, none while MongoDB is down: what is not
 * acked RabbitMQ delivers again), closes and returns 0. When *reopen is
 * set (SIGHUP) it clears it and reopens the logs (log_reopen).
 * store and obs are borrowed. Never gives up on a service that is down:
 * it logs and retries with backoff. */
int rec_run(const bx_cfg *cfg, bx_store *store, rec_obs *obs, volatile sig_atomic_t *stop,
            volatile sig_atomic_t *reopen);

/* Milliseconds since the epoch of an RFC 3339 UTC time as clock_rfc3339
 * writes it (fraction optional); -1 when s is not one. */
int64_t rec_parse_rfc3339(const char *s);

/* The next retry delay after cur_ms: doubled, from 100 ms to 5 s. */
int rec_backoff_next(int cur_ms);

#endif
