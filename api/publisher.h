/* publisher — the one thread that owns the API's RabbitMQ connection
 * (rabbitmq-c is not thread-safe). Request threads hand it messages and
 * get called back once RabbitMQ confirmed or refused each; it publishes
 * all that is queued before reading confirms, so the confirms of many
 * requests overlap on one channel in confirm mode.
 *
 * Jobs go to exchange "<ns>.jobs" (routing key = queue) and events to
 * "<ns>.events"; both mandatory, so an unroutable message is a failure,
 * never a silent drop. The jobs queue of a queue name is declared on the
 * name's first use, so a job for a queue no worker consumes yet waits in
 * it. The connection comes back with capped exponential backoff; while it
 * is down every submit fails at once. */
#ifndef BX_API_PUBLISHER_H
#define BX_API_PUBLISHER_H

#include <stddef.h>
#include <stdint.h>

typedef struct publisher publisher;
typedef struct pub_msg pub_msg;

typedef enum pub_kind { PUB_JOB, PUB_EVENT } pub_kind;

/* A message to publish. body is taken (freed with the message); rkey is
 * the job's queue (PUB_JOB) or ignored (PUB_EVENT); the strings are
 * copied; any may be NULL but rkey for a job. Reference counted: the
 * caller holds one reference and drops it with pub_msg_free. */
pub_msg *pub_msg_new(pub_kind kind, const char *rkey, char *body, size_t len, int priority,
                     const char *msg_id, const char *request_id, const char *traceparent);
void pub_msg_free(pub_msg *m);
/* Makes the publisher write doc (copied) as the status of job msg_id in
 * Redis (status_put: state, attempt) before it publishes m; when that
 * write fails m fails too, unpublished. 0, or -1 when out of memory. */
int pub_msg_set_status(pub_msg *m, const char *state, int attempt, const char *doc, size_t len);
/* After the done callback: 0 when RabbitMQ confirmed the message, -1 with
 * the reason in err otherwise. */
int pub_msg_result(const pub_msg *m, char *err, size_t errlen);

/* Starts the thread. redis_url: where the statuses of pub_msg_set_status
 * go (terminal ones expire after status_ttl_s). confirm_timeout_ms bounds
 * how long a message waits for its confirm. depth_check_ms > 0: refresh
 * the depth of every jobs queue that often (publisher_queue_depth).
 * NULL + err on a bad URL. */
publisher *publisher_new(const char *url, const char *ns, const char *redis_url,
                         int status_ttl_s, int confirm_timeout_ms, int depth_check_ms, char *err,
                         size_t errlen);
/* Stops: refuses new messages, publishes those queued, waits (at most
 * stop_ms) for the pending confirms, fails what is left and joins the
 * thread. Every done callback has run when it returns. Once only. */
void publisher_stop(publisher *p, int stop_ms);
/* Stops (at once if publisher_stop did not run) and frees. */
void publisher_free(publisher *p);

typedef void (*pub_done_fn)(void *ud);
/* Queues m. 0: done(ud) is called exactly once, from another thread,
 * when m is resolved. -1 + err (not connected, stopping): done is never
 * called. Takes its own reference to m. */
int publisher_submit(publisher *p, pub_msg *m, pub_done_fn done, void *ud, char *err,
                     size_t errlen);

int publisher_connected(publisher *p);
/* Fails the messages whose confirm is overdue. Any thread; the publisher
 * calls it too, but the main loop's calls keep deadlines even when the
 * publisher thread is stuck in a blocked socket write. */
void publisher_sweep(publisher *p);
/* Messages ready in queue "<ns>.jobs.<queue>" at the last check, or -1
 * when unknown. */
long publisher_queue_depth(publisher *p, const char *queue);

/* Counters, for /metrics. */
typedef struct pub_stats {
    uint64_t published, confirmed, failed, reconnects;
    int connected;
} pub_stats;
void publisher_stats(publisher *p, pub_stats *s);

#endif
