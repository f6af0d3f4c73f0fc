/* wmetrics — see wmetrics.h. */
#include "wmetrics.h"

#include <stdio.h>
#include <string.h>

#include "event.h"
#include "job.h"

int wmetrics_init(wmetrics *m, metrics *reg, const bx_cfg *cfg, char *err, size_t errlen)
{
    static const char *const states[] = {ST_SUCCEEDED, ST_FAILED, ST_TIMED_OUT, ST_CANCELLED,
                                         ST_REJECTED};
    const double *sec = METRICS_SECONDS_BUCKETS;
    const size_t nsec = METRICS_SECONDS_NBUCKETS;
    memset(m, 0, sizeof *m);
#define FAM(field, call)                                                                           \
    if (!(m->field = call))                                                                        \
        return -1;
    FAM(started, metrics_counter(reg, "bx_worker_jobs_started_total",
                                 "Job attempts whose command was started.", "queue", NULL, err,
                                 errlen))
    FAM(finished, metrics_counter(reg, "bx_worker_jobs_finished_total",
                                  "Jobs that reached a final state here (a retried attempt is not final).",
                                  "queue", "state", err, errlen))
    FAM(retries, metrics_counter(reg, "bx_worker_retries_total",
                                 "Failed attempts sent back to be retried.", "queue", NULL, err,
                                 errlen))
    FAM(dead_lettered, metrics_counter(reg, "bx_worker_dead_lettered_total",
                                       "Job messages sent to the dead-letter queue (undecodable or poison).",
                                       NULL, NULL, err, errlen))
    FAM(queue_wait, metrics_histogram(reg, "bx_worker_queue_wait_seconds",
                                      "From submission to the start of the command (started_at - submitted_at).",
                                      sec, nsec, "queue", NULL, err, errlen))
    FAM(run_seconds, metrics_histogram(reg, "bx_worker_run_seconds",
                                       "Run time of each attempt's command.", sec, nsec, "queue",
                                       NULL, err, errlen))
    FAM(running, metrics_gauge(reg, "bx_worker_running_jobs", "Jobs running now.", NULL, NULL,
                               err, errlen))
    FAM(slots, metrics_gauge(reg, "bx_worker_slots",
                             "Jobs this worker runs at once (BX_CONCURRENCY).", NULL, NULL, err,
                             errlen))
    FAM(output_bytes, metrics_counter(reg, "bx_worker_output_bytes_total",
                                      "Bytes commands wrote, kept or not.", "stream", NULL, err,
                                      errlen))
    FAM(amqp_up, metrics_gauge(reg, "bx_worker_amqp_up", "1 when connected to RabbitMQ.", NULL,
                               NULL, err, errlen))
    FAM(redis_up, metrics_gauge(reg, "bx_worker_redis_up",
                                "1 when Redis answered the last command.", NULL, NULL, err,
                                errlen))
#undef FAM
    metric_set(m->slots, NULL, NULL, cfg->concurrency);
    metric_touch(m->output_bytes, "stdout", NULL);
    metric_touch(m->output_bytes, "stderr", NULL);
    /* the queues this worker consumes, each with every final state */
    const char *q = cfg->queues;
    while (q && *q) {
        size_t n = strcspn(q, ",");
        char name[JOB_QUEUE_MAX + 1];
        if (n > 0 && n <= JOB_QUEUE_MAX) {
            snprintf(name, sizeof name, "%.*s", (int)n, q);
            metric_touch(m->started, name, NULL);
            metric_touch(m->retries, name, NULL);
            for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
                metric_touch(m->finished, name, states[i]);
        }
        q += n + (q[n] == ',');
    }
    return 0;
}

int wmetrics_ready(void *ud, statusd_check *c, int max)
{
    const wmetrics *m = ud;
    if (max < 2)
        return 0;
    c[0].name = "rabbitmq";
    c[0].ok = metric_value(m->amqp_up, NULL, NULL) == 1;
    c[1].name = "redis";
    c[1].ok = metric_value(m->redis_up, NULL, NULL) == 1;
    return 2;
}
