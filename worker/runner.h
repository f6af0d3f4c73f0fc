/* runner — the worker's jobs: from a delivery to an acked result. It owns
 * the slots (one per running job), the RabbitMQ consumer and the Redis
 * connection; main.c owns the loop that drives it. */
#ifndef BX_RUNNER_H
#define BX_RUNNER_H

#include <stdint.h>

#include "cfg.h"
#include "wmetrics.h"

typedef struct runner runner;

/* Borrows cfg. epfd is the loop's epoll: the runner adds and removes its
 * own descriptors, each with data.ptr pointing at a runner_watch. */
runner *runner_new(const bx_cfg *cfg, int epfd, char *err, size_t errlen);
void runner_free(runner *r);

typedef struct runner_watch {
    void (*fn)(struct runner_watch *w, uint32_t events);
} runner_watch;

/* Updates m's families from now on (copied; the families stay the
 * registry's). Without it the runner keeps no metrics. */
void runner_set_metrics(runner *r, const wmetrics *m);

/* Periodic work: reconnects, lease renewal, cancel checks, timeouts,
 * heartbeats, retries of failed Redis writes. Returns the next deadline
 * (CLOCK_MONOTONIC ms) the loop must wake up for. */
int64_t runner_tick(runner *r, int64_t now_ms);

/* SIGTERM: take no new jobs; let running ones finish within the grace
 * period, then requeue the rest. */
void runner_drain(runner *r);
/* Jobs running now. */
int runner_running(const runner *r);
/* 1 once draining is complete and everything is confirmed. */
int runner_drained(const runner *r);

#endif
