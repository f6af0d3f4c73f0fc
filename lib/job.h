/* job — the job: decoding a client's request (strictly: an unknown field
 * is an error naming it), and the message the API publishes and workers
 * consume (the request's fields plus those the server assigns). */
#ifndef BX_JOB_H
#define BX_JOB_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "id.h"

#define JOB_COMMAND_MAX (64 * 1024)
#define JOB_QUEUE_MAX 64
#define JOB_NAME_MAX 200 /* lock names, idempotency keys, label keys */
#define JOB_DEPTH_MAX 16 /* nesting of arrays and objects; a request needs 2 */

/* Every string and json_t here is borrowed from doc; doc is the whole
 * job as JSON and is owned by the job (freed by job_release). */
typedef struct bx_job {
    json_t *doc;
    const char *id;
    const char *command;
    json_t *env;                 /* object of strings, or NULL */
    const char *cwd;             /* NULL = the worker's choice */
    const char *stdin_data;      /* NULL = no input */
    size_t stdin_len;
    int timeout_s;               /* 0 = no limit but the server's */
    long max_output_bytes;       /* per stream; 0 = the server's default */
    const char *queue;           /* never NULL: "default" when not given */
    int priority;                /* 0..9 */
    int max_retries;             /* 0 = run once */
    double retry_backoff_s;      /* first retry's delay, doubled each time */
    json_t *retry_on;            /* array of exit codes that retry, or NULL = any failure */
    const char *idempotency_key; /* or NULL */
    const char *lock;            /* or NULL */
    json_t *labels;              /* object of strings, or NULL */
    json_t *limits;              /* {cpu_s, as_mb, nofile, nproc, fsize_mb}, or NULL */
    /* assigned by the server */
    int attempt;                 /* 1 for the first run */
    int64_t submitted_ms;        /* wall clock */
    const char *request_id;      /* or NULL */
    const char *traceparent;     /* or NULL */
} bx_job;

/* Validates a POST /v1/jobs body. On success fills j (the caller then
 * calls job_assign) and returns 0. On error returns -1 and writes a
 * message naming the offending field into err. */
int job_from_request(bx_job *j, const char *body, size_t len, char *err, size_t errlen);

/* Gives a validated request its id, attempt 1, submission time and
 * request id (copied). */
void job_assign(bx_job *j, const char *id, int64_t submitted_ms, const char *request_id);

/* Decodes a job message (what job_encode wrote). Returns 0, or -1 with
 * the reason in err: the caller dead-letters the message with it. */
int job_from_message(bx_job *j, const char *body, size_t len, char *err, size_t errlen);

/* The message body: new malloc'd JSON text, *len set. NULL on OOM. */
char *job_encode(const bx_job *j, size_t *len);

/* Sets the attempt number (in doc too) for a retry. */
void job_set_attempt(bx_job *j, int attempt);

void job_release(bx_job *j);

#endif
