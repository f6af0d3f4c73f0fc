/* sse — the Server-Sent Events of GET /v1/jobs/{id}/events.
 *
 * One thread, the hub, watches every open stream: every SSE_POLL_MS it
 * asks Redis (its own connection, one pipelined script per stream) for
 * each job's state and what its output grew by, and queues the events.
 * MHD's threads only copy queued bytes out: when there are none, the
 * content reader suspends the connection and returns 0 — the pattern
 * libmicrohttpd documents for "no data yet", which neither busy-loops
 * (a reader returning 0 on a live connection is called again at once)
 * nor holds a pool thread per stream. The hub resumes the connection
 * when it has queued bytes, a keep-alive comment, or the end.
 *
 * A suspended connection does not notice its client leaving, so the hub
 * also polls the sockets of suspended streams for a hang-up.
 *
 * Between two periods the hub listens to the status channels of its
 * streams' jobs (ssesub.h): a change of state is looked at at once. */
#ifndef BX_API_SSE_H
#define BX_API_SSE_H

#include <stddef.h>

#include "cfg.h"
#include "http.h"
#include "store.h"

#define SSE_POLL_MS 150
#define SSE_KEEPALIVE_MS 15000
#define SSE_PENDING_MAX (4 * 1024 * 1024) /* a stream this far behind is not polled */

typedef struct sse_hub sse_hub;

/* Starts the hub thread. cfg and store are borrowed and must outlive it.
 * NULL + err. */
sse_hub *sse_hub_new(const bx_cfg *cfg, bx_store *store, char *err, size_t errlen);
/* Shutting down: every stream ends after what is queued, and streams
 * opened from now on end after their first event. */
void sse_hub_drain(sse_hub *h);
/* Stops the thread and ends every stream, so none stays suspended (MHD
 * must not be stopped with a suspended connection). Call before
 * http_stop, then sse_hub_free after it. */
void sse_hub_stop(sse_hub *h);
void sse_hub_free(sse_hub *h);
/* Streams open now. */
long sse_hub_streams(sse_hub *h);

/* Answers req with the event stream of job id (req->r.job_id), which is
 * not terminal: doc (JSON text, borrowed) is its status now, state and
 * attempt its fields. Replies itself, 500 when out of memory. */
void sse_open(sse_hub *h, http_req *req, const char *doc, size_t doclen, const char *state,
              int attempt);

/* Appends one event ("event: NAME" and data, split into data: lines at
 * newlines) to *buf (malloc'd, grown). 0, or -1 when out of memory. */
int sse_format(char **buf, size_t *len, size_t *cap, const char *name, const char *data,
               size_t n);

#endif
