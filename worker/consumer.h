/* consumer — the worker's one RabbitMQ connection, driven by the event
 * loop without blocking: channel 1 consumes jobs, channel 2 publishes
 * result events in confirm mode. Confirms come back with the token the
 * publisher gave, so the worker acks a job only once its result is safe. */
#ifndef BX_CONSUMER_H
#define BX_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

#include "amqpc.h"
#include "cfg.h"

typedef struct delivery {
    uint64_t tag;      /* on the connection of epoch `epoch` */
    unsigned epoch;    /* consumer_epoch() at delivery */
    int redelivered;
    char *body;        /* owned: free with delivery_free */
    size_t len;
    char *request_id;  /* header x-request-id, or NULL */
    char *traceparent; /* header traceparent, or NULL */
    char *queue;       /* the routing key: the job queue's short name */
    int priority;      /* the message's, 0 when it has none */
    int64_t at_mono;   /* when it arrived, CLOCK_MONOTONIC ms */
} delivery;

void delivery_free(delivery *d);

/* d is handed over: the callee owns it. */
typedef void (*consumer_deliver_fn)(void *ud, delivery *d);
/* ack = 1 when RabbitMQ confirmed the publish that carried token. */
typedef void (*consumer_confirm_fn)(void *ud, void *token, int ack);

typedef struct consumer consumer;

/* Borrows cfg for the consumer's lifetime. Does not connect. */
consumer *consumer_new(const bx_cfg *cfg, consumer_deliver_fn on_deliver,
                       consumer_confirm_fn on_confirm, void *ud);
void consumer_free(consumer *c);

/* Connects, declares the topology, sets prefetch and starts consuming
 * every queue of cfg->queues. 0 / -1 + err. */
int consumer_connect(consumer *c, char *err, size_t errlen);
/* Drops the connection. Every publish awaiting a confirm is reported
 * with ack = 0; deliveries of this epoch can no longer be acked. */
void consumer_disconnect(consumer *c);
int consumer_connected(const consumer *c);
int consumer_fd(const consumer *c); /* -1 when disconnected */
unsigned consumer_epoch(const consumer *c);

/* Handles every frame that has arrived. -1 + err when the connection is
 * lost (the caller disconnects and reconnects later). */
int consumer_on_readable(consumer *c, char *err, size_t errlen);
/* Frames still buffered inside rabbitmq-c (epoll will not say so). */
int consumer_pending(const consumer *c);

/* Publishes on the confirm channel; on_confirm(token) follows. */
int consumer_publish(consumer *c, const char *exchange, const char *rkey, const amqpc_msg *m,
                     void *token, char *err, size_t errlen);
/* Ack / reject a delivery of the current epoch (others are ignored:
 * RabbitMQ has already requeued them). */
int consumer_ack(consumer *c, const delivery *d);
int consumer_reject(consumer *c, uint64_t tag, unsigned epoch, int requeue);
/* Stops receiving new jobs (basic.cancel) but keeps the connection. */
int consumer_stop_consuming(consumer *c);
/* Declares queue `name` holding messages delay_ms, then dead-lettering
 * them to exchange dlx with routing key rkey (a retry's wait). */
int consumer_declare_delay_queue(consumer *c, const char *name, const char *dlx,
                                 const char *rkey, long delay_ms, char *err, size_t errlen);
/* Confirms still awaited. */
size_t consumer_unconfirmed(const consumer *c);

#endif
