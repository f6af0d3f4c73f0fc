/* consumer — see consumer.h. rabbitmq-c buffers frames internally, so the
 * loop must ask consumer_pending() as well as watch the socket. */
#include "consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"
#include "names.h"

#define CH_JOBS 1
#define CH_EVENTS 2

typedef struct pending {
    uint64_t seq;
    void *token;
} pending;

struct consumer {
    const bx_cfg *cfg;
    consumer_deliver_fn on_deliver;
    consumer_confirm_fn on_confirm;
    void *ud;
    bx_amqp *a;
    unsigned epoch;
    char *tags[32]; /* consumer tags, for basic.cancel on shutdown */
    int ntags;
    pending *q; /* publishes awaiting a confirm, in publish order */
    size_t qlen, qcap;
};

void delivery_free(delivery *d)
{
    if (!d)
        return;
    free(d->body);
    free(d->request_id);
    free(d->traceparent);
    free(d->queue);
    free(d);
}

consumer *consumer_new(const bx_cfg *cfg, consumer_deliver_fn on_deliver,
                       consumer_confirm_fn on_confirm, void *ud)
{
    consumer *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cfg = cfg;
    c->on_deliver = on_deliver;
    c->on_confirm = on_confirm;
    c->ud = ud;
    return c;
}

void consumer_free(consumer *c)
{
    if (!c)
        return;
    consumer_disconnect(c);
    free(c->q);
    free(c);
}

int consumer_connected(const consumer *c) { return c->a != NULL; }
int consumer_fd(const consumer *c) { return c->a ? amqpc_fd(c->a) : -1; }
unsigned consumer_epoch(const consumer *c) { return c->epoch; }
size_t consumer_unconfirmed(const consumer *c) { return c->qlen; }

int consumer_pending(const consumer *c)
{
    if (!c->a)
        return 0;
    amqp_connection_state_t s = amqpc_state(c->a);
    return amqp_data_in_buffer(s) || amqp_frames_enqueued(s);
}

int consumer_connect(consumer *c, char *err, size_t errlen)
{
    char name[300];
    snprintf(name, sizeof name, "bx-worker %s", c->cfg->worker_id);
    c->a = amqpc_connect_ex(c->cfg->amqp_url, name, c->cfg->amqp_heartbeat_s, err, errlen);
    if (!c->a)
        return -1;
    if (amqpc_channel_open(c->a, CH_EVENTS, err, errlen) ||
        amqpc_confirm_select(c->a, CH_EVENTS, err, errlen) ||
        amqpc_declare(c->a, CH_JOBS, c->cfg->ns, c->cfg->queues, err, errlen) ||
        /* Jobs whose result awaits its confirm stay unacked and count
         * against the prefetch: leave room for them and for the next jobs,
         * or slots idle for a confirm round trip (runner.c holds extras) */
        amqpc_qos(c->a, CH_JOBS, (uint16_t)(c->cfg->concurrency > 16000 ? 65535 : 4 * c->cfg->concurrency + 8),
                  err, errlen))
        goto fail;
    amqp_connection_state_t s = amqpc_state(c->a);
    for (const char *p = c->cfg->queues; *p;) {
        size_t len = strcspn(p, ",");
        char qn[128], q[NAME_MAX_LEN];
        snprintf(qn, sizeof qn, "%.*s", (int)len, p);
        p += len + (p[len] == ',');
        if (!qn[0])
            continue;
        name_jobs_queue(q, sizeof q, c->cfg->ns, qn);
        amqp_basic_consume_ok_t *ok = amqp_basic_consume(s, CH_JOBS, amqp_cstring_bytes(q),
                                                         amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
        amqp_rpc_reply_t r = amqp_get_rpc_reply(s);
        if (ok && c->ntags < 32)
            c->tags[c->ntags++] = strndup(ok->consumer_tag.bytes, ok->consumer_tag.len);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            char d[256];
            amqpc_describe(r, d, sizeof d);
            snprintf(err, errlen, "consuming '%s': %s", q, d);
            goto fail;
        }
    }
    c->epoch++;
    return 0;
fail:
    consumer_disconnect(c);
    return -1;
}

void consumer_disconnect(consumer *c)
{
    if (!c->a)
        return;
    amqpc_free(c->a);
    c->a = NULL;
    for (int i = 0; i < c->ntags; i++)
        free(c->tags[i]);
    c->ntags = 0;
    /* Unconfirmed publishes may or may not have reached the broker: the
     * owner republishes them (results are idempotent by job id). */
    size_t n = c->qlen;
    c->qlen = 0;
    pending *q = c->q;
    c->q = NULL;
    c->qcap = 0;
    for (size_t i = 0; i < n; i++)
        c->on_confirm(c->ud, q[i].token, 0);
    free(q);
}

static void resolve(consumer *c, uint64_t tag, int multiple, int ack)
{
    size_t i = 0;
    while (i < c->qlen) {
        pending p = c->q[i];
        if (p.seq == tag || (multiple && p.seq < tag)) {
            memmove(&c->q[i], &c->q[i + 1], (c->qlen - i - 1) * sizeof *c->q);
            c->qlen--;
            c->on_confirm(c->ud, p.token, ack);
            if (p.seq == tag)
                return;
        } else if (p.seq > tag) {
            return;
        } else {
            i++;
        }
    }
}

static char *header(const amqp_table_t *t, const char *key)
{
    for (int i = 0; i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        if (e->key.len == strlen(key) && !memcmp(e->key.bytes, key, e->key.len) &&
            (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES))
            return strndup(e->value.value.bytes.bytes, e->value.value.bytes.len);
    }
    return NULL;
}

static int deliver(consumer *c, const amqp_basic_deliver_t *m, char *err, size_t errlen)
{
    amqp_connection_state_t s = amqpc_state(c->a);
    amqp_message_t msg;
    amqp_rpc_reply_t r = amqp_read_message(s, CH_JOBS, &msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        amqpc_describe(r, err, errlen);
        return -1;
    }
    delivery *d = calloc(1, sizeof *d);
    if (!d)
        goto oom;
    d->tag = m->delivery_tag;
    d->epoch = c->epoch;
    d->redelivered = m->redelivered;
    d->len = msg.body.len;
    d->body = malloc(msg.body.len + 1);
    d->queue = strndup(m->routing_key.bytes, m->routing_key.len);
    if (!d->body || !d->queue)
        goto oom;
    memcpy(d->body, msg.body.bytes, msg.body.len);
    d->body[msg.body.len] = 0;
    if (msg.properties._flags & AMQP_BASIC_PRIORITY_FLAG)
        d->priority = msg.properties.priority;
    d->at_mono = clock_mono_ms();
    if (msg.properties._flags & AMQP_BASIC_HEADERS_FLAG) {
        d->request_id = header(&msg.properties.headers, "x-request-id");
        d->traceparent = header(&msg.properties.headers, "traceparent");
    }
    amqp_destroy_message(&msg);
    c->on_deliver(c->ud, d);
    return 0;
oom:
    delivery_free(d);
    amqp_destroy_message(&msg);
    snprintf(err, errlen, "out of memory");
    return -1;
}

int consumer_on_readable(consumer *c, char *err, size_t errlen)
{
    while (c->a) {
        amqp_connection_state_t s = amqpc_state(c->a);
        amqp_frame_t f;
        struct timeval zero = {0, 0};
        int st = amqp_simple_wait_frame_noblock(s, &f, &zero);
        if (st == AMQP_STATUS_TIMEOUT)
            return 0;
        if (st != AMQP_STATUS_OK) {
            snprintf(err, errlen, "rabbitmq connection lost: %s", amqp_error_string2(st));
            return -1;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_DELIVER_METHOD:
            if (deliver(c, f.payload.method.decoded, err, errlen))
                return -1;
            break;
        case AMQP_BASIC_ACK_METHOD: {
            amqp_basic_ack_t *m = f.payload.method.decoded;
            resolve(c, m->delivery_tag, m->multiple, 1);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            amqp_basic_nack_t *m = f.payload.method.decoded;
            resolve(c, m->delivery_tag, m->multiple, 0);
            break;
        }
        case AMQP_BASIC_CANCEL_METHOD:
            snprintf(err, errlen, "rabbitmq cancelled our consumer (queue deleted?)");
            return -1;
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            amqpc_frame_closed(c->a, &f, err, errlen);
            return -1;
        default:
            break;
        }
        if (c->a)
            amqp_maybe_release_buffers(amqpc_state(c->a));
    }
    return 0;
}

int consumer_publish(consumer *c, const char *exchange, const char *rkey, const amqpc_msg *m,
                     void *token, char *err, size_t errlen)
{
    uint64_t seq;
    if (!c->a) {
        snprintf(err, errlen, "not connected to rabbitmq");
        return -1;
    }
    if (c->qlen == c->qcap) {
        size_t cap = c->qcap ? c->qcap * 2 : 64;
        pending *q = realloc(c->q, cap * sizeof *q);
        if (!q) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        c->q = q;
        c->qcap = cap;
    }
    if (amqpc_publish(c->a, CH_EVENTS, exchange, rkey, m, &seq, err, errlen))
        return -1;
    c->q[c->qlen++] = (pending){seq, token};
    return 0;
}

int consumer_ack(consumer *c, const delivery *d)
{
    if (!c->a || d->epoch != c->epoch)
        return 0;
    return amqp_basic_ack(amqpc_state(c->a), CH_JOBS, d->tag, 0) ? -1 : 0;
}

int consumer_reject(consumer *c, uint64_t tag, unsigned epoch, int requeue)
{
    if (!c->a || epoch != c->epoch)
        return 0;
    return amqp_basic_reject(amqpc_state(c->a), CH_JOBS, tag, requeue) ? -1 : 0;
}

int consumer_stop_consuming(consumer *c)
{
    if (!c->a)
        return 0;
    /* Cancelling the consumers (not closing the channel, which would
     * requeue the running jobs) stops new deliveries and keeps acks valid. */
    int rc = 0;
    for (int i = 0; i < c->ntags; i++) {
        amqp_basic_cancel(amqpc_state(c->a), CH_JOBS, amqp_cstring_bytes(c->tags[i]));
        if (amqp_get_rpc_reply(amqpc_state(c->a)).reply_type != AMQP_RESPONSE_NORMAL)
            rc = -1;
        free(c->tags[i]);
    }
    c->ntags = 0;
    return rc;
}

int consumer_declare_delay_queue(consumer *c, const char *name, const char *dlx,
                                 const char *rkey, long delay_ms, char *err, size_t errlen)
{
    if (!c->a) {
        snprintf(err, errlen, "not connected to rabbitmq");
        return -1;
    }
    amqp_table_entry_t e[4];
    e[0].key = amqp_cstring_bytes("x-dead-letter-exchange");
    e[0].value.kind = AMQP_FIELD_KIND_UTF8;
    e[0].value.value.bytes = amqp_cstring_bytes(dlx);
    e[1].key = amqp_cstring_bytes("x-dead-letter-routing-key");
    e[1].value.kind = AMQP_FIELD_KIND_UTF8;
    e[1].value.value.bytes = amqp_cstring_bytes(rkey);
    e[2].key = amqp_cstring_bytes("x-message-ttl");
    e[2].value.kind = AMQP_FIELD_KIND_I64;
    e[2].value.value.i64 = delay_ms;
    /* an idle delay queue goes away by itself after its last message */
    e[3].key = amqp_cstring_bytes("x-expires");
    e[3].value.kind = AMQP_FIELD_KIND_I64;
    e[3].value.value.i64 = delay_ms + 60000;
    amqp_table_t args = {4, e};
    amqp_queue_declare(amqpc_state(c->a), CH_JOBS, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(amqpc_state(c->a));
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char d[256];
        amqpc_describe(r, d, sizeof d);
        snprintf(err, errlen, "declaring '%s': %s", name, d);
        return -1;
    }
    return 0;
}
