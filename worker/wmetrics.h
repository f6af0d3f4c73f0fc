/* wmetrics — the worker's Prometheus metrics (families owned by the
 * registry) and its readiness, for statusd. Updated from the worker's
 * one thread; statusd reads them from its own. */
#ifndef BX_WMETRICS_H
#define BX_WMETRICS_H

#include <stddef.h>

#include "cfg.h"
#include "metrics.h"
#include "statusd.h"

typedef struct wmetrics {
    metric_fam *started;       /* bx_worker_jobs_started_total{queue} */
    metric_fam *finished;      /* bx_worker_jobs_finished_total{queue,state}: final states only */
    metric_fam *retries;       /* bx_worker_retries_total{queue} */
    metric_fam *dead_lettered; /* bx_worker_dead_lettered_total */
    metric_fam *queue_wait;    /* bx_worker_queue_wait_seconds{queue}: started_at - submitted_at */
    metric_fam *run_seconds;   /* bx_worker_run_seconds{queue}: every attempt that ran */
    metric_fam *running;       /* bx_worker_running_jobs */
    metric_fam *slots;         /* bx_worker_slots: BX_CONCURRENCY */
    metric_fam *output_bytes;  /* bx_worker_output_bytes_total{stream} */
    metric_fam *amqp_up;       /* bx_worker_amqp_up */
    metric_fam *redis_up;      /* bx_worker_redis_up */
} wmetrics;

/* Registers the families in reg (borrowed; outlives m) and makes the
 * series of cfg's queues, the states and the streams exist at 0.
 * 0, or -1 + err. A zeroed wmetrics (all NULL) is valid: every update
 * is then a no-op. */
int wmetrics_init(wmetrics *m, metrics *reg, const bx_cfg *cfg, char *err, size_t errlen);

/* statusd_ready_fn: ready = RabbitMQ and Redis up. ud is the wmetrics. */
int wmetrics_ready(void *ud, statusd_check *checks, int max);

#endif
