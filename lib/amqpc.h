/* amqpc — a RabbitMQ connection (rabbitmq-c) with the topology of DESIGN.md
 * and publisher confirms. Not thread-safe: one owner thread per handle. */
#ifndef BX_AMQPC_H
#define BX_AMQPC_H

#include <stddef.h>
#include <stdint.h>
#include <amqp.h>

typedef struct bx_amqp bx_amqp;

/* Connects and logs in (url: amqp://user:pass@host:port/vhost), opens
 * channel 1. name shows in RabbitMQ's connection list. NULL + err. */
bx_amqp *amqpc_connect(const char *url, const char *name, char *err, size_t errlen);
/* The same with AMQP heartbeats every heartbeat_s (0 = none): RabbitMQ
 * then closes the connection of a process that stopped answering (a
 * frozen or partitioned one) after about twice that, and requeues what
 * it held. rabbitmq-c sends ours only from inside its calls, so the
 * owner must read the connection at least every heartbeat_s / 2 (the
 * server's own heartbeats make the socket readable that often). */
bx_amqp *amqpc_connect_ex(const char *url, const char *name, int heartbeat_s, char *err,
                          size_t errlen);
void amqpc_free(bx_amqp *a); /* NULL is fine; closes politely if it can */

amqp_connection_state_t amqpc_state(bx_amqp *a);
int amqpc_fd(bx_amqp *a);

/* Opens another channel. 0 / -1 + err. */
int amqpc_channel_open(bx_amqp *a, uint16_t ch, char *err, size_t errlen);
/* Puts ch in confirm mode; publishes on it are numbered 1, 2, ... */
int amqpc_confirm_select(bx_amqp *a, uint16_t ch, char *err, size_t errlen);
int amqpc_qos(bx_amqp *a, uint16_t ch, uint16_t prefetch, char *err, size_t errlen);

/* Declares what DESIGN.md names for namespace ns: the jobs, events,
 * dead-letter and retry exchanges, the results and dead queues, and the
 * jobs queue of each name in queues (comma-separated; NULL = none). */
int amqpc_declare(bx_amqp *a, uint16_t ch, const char *ns, const char *queues,
                  char *err, size_t errlen);

/* Message properties we use. Strings may be NULL. */
typedef struct amqpc_msg {
    const void *body;
    size_t len;
    int priority;            /* 0..9 */
    const char *request_id;  /* header x-request-id, also correlation_id */
    const char *traceparent; /* header traceparent */
    const char *reason;      /* header x-reason (dead letters) */
    const char *expiration;  /* per-message TTL in ms, as text (retry delays) */
} amqpc_msg;

/* Publishes persistently; on a confirm channel *seq (if not NULL) gets
 * the message's confirm number. Not mandatory: callers declare the
 * queues they route to first (amqpc_declare), because RabbitMQ confirms
 * an unroutable message all the same and a basic.return names no tag. */
int amqpc_publish(bx_amqp *a, uint16_t ch, const char *exchange, const char *rkey,
                  const amqpc_msg *m, uint64_t *seq, char *err, size_t errlen);

/* Called for each confirm: tags up to and including tag when multiple. */
typedef void (*amqpc_confirm_fn)(void *ud, uint64_t tag, int multiple, int ack);

/* When f is RabbitMQ closing a channel or the connection: answers with
 * the close-ok, describes why in err and returns 1; else 0. */
int amqpc_frame_closed(bx_amqp *a, const amqp_frame_t *f, char *err, size_t errlen);

/* Handles one incoming frame when one is ready within timeout_ms: a
 * confirm goes to fn; a channel or connection close is an error.
 * Returns 1 if a frame was handled, 0 on timeout, -1 + err when the
 * connection is unusable. Use only on connections that do not consume. */
int amqpc_poll_confirms(bx_amqp *a, int timeout_ms, amqpc_confirm_fn fn, void *ud,
                        char *err, size_t errlen);

/* Publishes and waits (at most timeout_ms) for this one confirm: 0 when
 * RabbitMQ acked it, -1 + err otherwise. For low-rate publishers. */
int amqpc_publish_sync(bx_amqp *a, uint16_t ch, const char *exchange, const char *rkey,
                       const amqpc_msg *m, int timeout_ms, char *err, size_t errlen);

/* Number of messages ready in a queue (passive declare), or -1 + err. */
long amqpc_queue_depth(bx_amqp *a, uint16_t ch, const char *queue, char *err, size_t errlen);

/* Describes an rpc reply or library status for messages. */
void amqpc_describe(amqp_rpc_reply_t r, char *err, size_t errlen);

#endif
