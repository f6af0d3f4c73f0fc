/* event — a job's status and result as one JSON document. The same
 * document is the live status in Redis, the result event on RabbitMQ and
 * the record in MongoDB, so the three never disagree on a field's name.
 *
 * Fields: the job's own (id, command, queue, priority, labels, lock,
 * idempotency_key, request_id, attempt, max_retries), then state,
 * submitted_at, queued_at, started_at, finished_at (RFC 3339 UTC ms),
 * duration_ms, worker, exit_code | signal + core_dumped | limit,
 * reason (rejected), and per stream: stdout, stdout_encoding ("utf-8" or
 * "base64": output that is not valid UTF-8, or holds NUL, is stored as
 * base64 of the raw bytes), stdout_bytes (all the command wrote),
 * stdout_truncated, stdout_cut_at (offset in the kept bytes where the
 * dropped middle was; absent when not cut); the same for stderr. */
#ifndef BX_EVENT_H
#define BX_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "job.h"

/* Terminal and live states. */
#define ST_QUEUED "queued"
#define ST_RUNNING "running"
#define ST_SUCCEEDED "succeeded"
#define ST_FAILED "failed"
#define ST_TIMED_OUT "timed_out"
#define ST_CANCELLED "cancelled"
#define ST_REJECTED "rejected"
/* no worker holds it and none took it over for BX_LOST_AFTER_S: its worker
 * vanished with its message. Final for clients, but a copy of the message
 * that comes back still runs it, as a new attempt. */
#define ST_LOST "lost"

int state_is_terminal(const char *state);
int state_is_valid(const char *state);

/* The status of a job that is not yet finished: new reference. */
json_t *event_new(const bx_job *j, const char *state);

/* Sets field key to the RFC 3339 form of wall_ms. */
void event_set_time(json_t *ev, const char *key, int64_t wall_ms);

/* Sets stdout or stderr (name) from captured bytes: kept is the head and
 * tail that were kept, total what the command wrote, cut_at the offset
 * of the cut in kept (or -1 if nothing was dropped). */
void event_set_output(json_t *ev, const char *name, const char *kept, size_t kept_len,
                      uint64_t total, long cut_at);

/* Decodes a result event; returns a new reference or NULL with err set
 * (id, state and attempt must be present and valid). */
json_t *event_decode(const char *body, size_t len, char *err, size_t errlen);

#endif
