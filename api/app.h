/* app — what every request handler of bx-api shares. */
#ifndef BX_API_APP_H
#define BX_API_APP_H

#include <stdatomic.h>

#include "auth.h"
#include "cfg.h"
#include "publisher.h"
#include "store.h"

#define API_BODY_MAX (1024 * 1024) /* POST bodies beyond this get 413 */
#define API_CONFIRM_TIMEOUT_MS 5000
#define API_IDEM_TTL_S 86400
#define API_CANCEL_TTL_S 86400

struct sse_hub;

typedef struct api_app {
    const bx_cfg *cfg;
    auth_store *auth;
    publisher *pub;
    bx_store *store;
    struct sse_hub *events; /* the event streams' hub */
    atomic_int draining;  /* shutting down: answer with Connection: close */
    atomic_long inflight; /* requests between their first call and completion */
    /* counters for /metrics */
    atomic_ulong jobs_submitted, jobs_rejected, jobs_unavailable, jobs_cancelled;
    atomic_ulong responses[6]; /* by status class: [1] 1xx .. [5] 5xx */
} api_app;

#endif
