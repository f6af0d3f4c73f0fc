/* statusd — the status endpoints of a process that is not the API (the
 * worker, the recorder), on a port of their own (BX_METRICS_LISTEN):
 *
 *   GET /metrics  the registry, Prometheus text format 0.0.4
 *   GET /healthz  200 {"status":"ok"} while the process runs
 *   GET /readyz   200 {"ready":true,"status":"ready","checks":{...}}, or
 *                 503 {"ready":false,"down":["rabbitmq",...],"checks":{...},
 *                      "error":{"code":"unavailable","message":...}}
 *
 * The same answers as the API's own /healthz and /readyz, plus "ready"
 * and "down" so that a probe or a person sees at once what is missing.
 * libmicrohttpd answers from its own thread: the readiness callback and
 * the registry are used from there. */
#ifndef BX_STATUSD_H
#define BX_STATUSD_H

#include <stddef.h>

#include "metrics.h"

typedef struct statusd statusd;

#define STATUSD_MAX_CHECKS 8

/* One dependency's state, filled by the process's readiness callback. */
typedef struct statusd_check {
    const char *name; /* "rabbitmq", "redis", "mongodb": a string that outlives the call */
    int ok;           /* 1 = reachable */
    char detail[160]; /* why not, when known; "" otherwise */
} statusd_check;

/* Called on each GET /readyz in statusd's thread, so it may only read
 * what is safe to read from another thread (atomics, metric_value).
 * Fills checks[0..max) (zeroed beforehand) and returns how many. */
typedef int (*statusd_ready_fn)(void *ud, statusd_check *checks, int max);

typedef struct statusd_opts {
    const char *listen;     /* host:port; port 0 = any free port, see statusd_addr */
    metrics *reg;           /* borrowed: outlives the statusd; NULL = empty /metrics */
    statusd_ready_fn ready; /* NULL = ready as soon as it answers */
    void *ud;               /* passed to ready */
} statusd_opts;

/* Binds, listens and starts answering in a thread of its own. The
 * listen address is parsed as "host:port", "[v6]:port" or ":port" (all
 * addresses). NULL + err when the address is bad or taken. */
statusd *statusd_start(const statusd_opts *o, char *err, size_t errlen);

/* Stops answering (waits for the thread), removes the address file
 * statusd_write_addr wrote (unless another process has replaced it
 * since), frees s. NULL is fine. */
void statusd_stop(statusd *s);

/* The address it listens at, the real port in place of 0: "host:port".
 * Borrowed from s. */
const char *statusd_addr(const statusd *s);

/* Writes statusd_addr and a newline to <run_dir>/metrics/<name>.addr,
 * creating the metrics directory, through a rename so that a reader
 * never sees half of it: that is how tests and the local stack find a
 * port chosen by the kernel. name may not contain '/'. 0 / -1 + err. */
int statusd_write_addr(statusd *s, const char *run_dir, const char *name, char *err,
                       size_t errlen);

#endif
