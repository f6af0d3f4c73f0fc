/* handlers_events — GET /v1/jobs/{id}/events (Server-Sent Events) and
 * GET /v1/workers. */
#ifndef BX_API_HANDLERS_EVENTS_H
#define BX_API_HANDLERS_EVENTS_H

#include "http.h"

/* The events of a job: its state now, then (until it ends) its state
 * changes and output as produced, then its last state. A finished job
 * gets its last state only. */
void handle_events(http_req *req);
/* The live workers: those whose heartbeat in Redis has not expired. */
void handle_workers(http_req *req);

#endif
