/* publisher — one thread, one AMQP connection, many requests in flight.
 *
 * Channel 1 is in confirm mode and carries every publish; channel 2 does
 * the declarations and queue-depth checks, so a refused declaration
 * closes only channel 2 and never costs the confirms in flight.
 *
 * It takes what is queued in batches: first the status of every message
 * that carries one is written to Redis in one pipelined round trip, then
 * the messages are published, then their confirms are read. So a request
 * thread does no Redis round trip for a submission, and RabbitMQ never
 * holds a job whose status Redis does not.
 *
 * Messages move queue -> sending -> pending -> resolved, all under mu.
 * A message is resolved exactly once: by its confirm, by a nack or a
 * return, by its deadline (publisher_sweep, any thread), or by the loss
 * of the connection. Its done callback runs outside mu. */
#include "publisher.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <amqp.h>

#include "amqpc.h"
#include "clock.h"
#include "event.h"
#include "statusbatch.h"
#include "job.h"
#include "log.h"
#include "names.h"

#define CH_PUB 1
#define CH_DECL 2
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define DRAIN_EVERY 64 /* read confirms after this many publishes in one batch */
#define BATCH_MAX 256  /* messages taken from the queue at once */

enum { W_NONE, W_QUEUE, W_SENDING, W_PENDING };

struct pub_msg {
    atomic_int refs;
    pub_kind kind;
    char *body;
    size_t len;
    int priority;
    char rkey[JOB_QUEUE_MAX + 1];
    char msg_id[72];
    char request_id[136];
    char traceparent[136];
    char *status_doc; /* the status to write before publishing, or NULL */
    size_t status_len;
    char status_state[16];
    int status_attempt;
    char why[256]; /* the thread's own: why it could not publish */
    /* under the publisher's mu */
    pub_msg *prev, *next; /* in queue or pending */
    pub_msg *rnext;       /* in a list of resolved messages being fired */
    int where;
    int state; /* 0 unresolved, 1 confirmed, -1 failed */
    int returned;
    uint64_t seq;
    int64_t deadline_ms;
    char err[256];
    pub_done_fn done;
    void *ud;
};

typedef struct msg_list {
    pub_msg *head, *tail;
    size_t n;
} msg_list;

typedef struct depth_entry {
    char name[JOB_QUEUE_MAX + 1];
    long depth;
} depth_entry;

struct publisher {
    char *url, *ns;
    char jobs_ex[NAME_MAX_LEN], events_ex[NAME_MAX_LEN];
    int timeout_ms, depth_check_ms;
    int efd; /* wakes the thread */
    pthread_t thread;

    pthread_mutex_t mu;
    msg_list queue, sending, pending;
    int connected, stopping, sleeping;
    int64_t stop_deadline_ms;
    depth_entry *depths;
    size_t ndepths, capdepths;
    pub_stats stats;
    uint64_t confirm_timeouts; /* pending messages failed by their deadline */

    /* the thread's own */
    bx_redis *redis; /* for the statuses; NULL = messages carry none */
    int status_ttl_s;
    bx_amqp *a;
    uint64_t next_seq;
    char **declared; /* queue names declared on this connection */
    size_t ndeclared, capdeclared;
    int ret_active;      /* inside a basic.return's frames */
    uint64_t ret_left;   /* body bytes of it still to come */
    char ret_text[128];
    int64_t next_depth_ms;
    uint64_t last_ack;    /* the highest tag RabbitMQ confirmed on this connection */
    int64_t last_frame_ms; /* when a frame last came (monotonic) */
};

/* --- messages --------------------------------------------------------- */

static void copy_str(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s ? s : "");
}

pub_msg *pub_msg_new(pub_kind kind, const char *rkey, char *body, size_t len, int priority,
                     const char *msg_id, const char *request_id, const char *traceparent)
{
    pub_msg *m = calloc(1, sizeof *m);
    if (!m) {
        free(body);
        return NULL;
    }
    atomic_init(&m->refs, 1);
    m->kind = kind;
    m->body = body;
    m->len = len;
    m->priority = priority < 0 ? 0 : priority > 9 ? 9 : priority;
    copy_str(m->rkey, sizeof m->rkey, kind == PUB_JOB ? rkey : "");
    copy_str(m->msg_id, sizeof m->msg_id, msg_id);
    copy_str(m->request_id, sizeof m->request_id, request_id);
    copy_str(m->traceparent, sizeof m->traceparent, traceparent);
    return m;
}

int pub_msg_set_status(pub_msg *m, const char *state, int attempt, const char *doc, size_t len)
{
    char *d = malloc(len + 1);
    if (!d)
        return -1;
    memcpy(d, doc, len);
    d[len] = 0;
    free(m->status_doc);
    m->status_doc = d;
    m->status_len = len;
    copy_str(m->status_state, sizeof m->status_state, state);
    m->status_attempt = attempt;
    return 0;
}

void pub_msg_free(pub_msg *m)
{
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    free(m->body);
    free(m->status_doc);
    free(m);
}

int pub_msg_result(const pub_msg *m, char *err, size_t errlen)
{
    if (m->state == 1)
        return 0;
    snprintf(err, errlen, "%s", m->err[0] ? m->err : "not published");
    return -1;
}

static void list_push(msg_list *l, pub_msg *m)
{
    m->next = NULL;
    m->prev = l->tail;
    if (l->tail)
        l->tail->next = m;
    else
        l->head = m;
    l->tail = m;
    l->n++;
}

static void list_remove(msg_list *l, pub_msg *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        l->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        l->tail = m->prev;
    m->prev = m->next = NULL;
    l->n--;
}

/* Resolves m (under mu) and adds it to *fire: the caller runs fire_all
 * after unlocking. The reference fire_all drops is the publisher's. */
static void resolve_locked(publisher *p, pub_msg *m, int ok, const char *why, pub_msg **fire)
{
    if (m->state)
        return;
    switch (m->where) {
    case W_QUEUE:
        list_remove(&p->queue, m);
        break;
    case W_PENDING:
        list_remove(&p->pending, m);
        break;
    case W_SENDING:
        /* the thread still reads it and drops its reference when done */
        list_remove(&p->sending, m);
        atomic_fetch_add(&m->refs, 1);
        break;
    }
    m->where = W_NONE;
    m->state = ok ? 1 : -1;
    if (!ok)
        snprintf(m->err, sizeof m->err, "%s", why);
    if (ok)
        p->stats.confirmed++;
    else
        p->stats.failed++;
    m->rnext = *fire;
    *fire = m;
}

static void fire_all(pub_msg *m)
{
    while (m) {
        pub_msg *next = m->rnext;
        m->done(m->ud); /* after this only our reference keeps m */
        pub_msg_free(m);
        m = next;
    }
}

static void fail_all_locked(publisher *p, const char *why, pub_msg **fire)
{
    while (p->queue.head)
        resolve_locked(p, p->queue.head, 0, why, fire);
    while (p->pending.head)
        resolve_locked(p, p->pending.head, 0, why, fire);
    while (p->sending.head)
        resolve_locked(p, p->sending.head, 0, why, fire);
}

/* --- the API for request threads ----------------------------------------- */

static void wake(publisher *p)
{
    uint64_t one = 1;
    ssize_t w = write(p->efd, &one, sizeof one);
    (void)w; /* a full counter already means "wake up" */
}

int publisher_submit(publisher *p, pub_msg *m, pub_done_fn done, void *ud, char *err,
                     size_t errlen)
{
    int do_wake;
    pthread_mutex_lock(&p->mu);
    if (p->stopping || !p->connected) {
        snprintf(err, errlen, p->stopping ? "the api is shutting down" : "rabbitmq is not connected");
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    atomic_fetch_add(&m->refs, 1);
    m->done = done;
    m->ud = ud;
    m->state = 0;
    m->deadline_ms = clock_mono_ms() + p->timeout_ms;
    m->where = W_QUEUE;
    list_push(&p->queue, m);
    do_wake = p->sleeping;
    p->sleeping = 0;
    pthread_mutex_unlock(&p->mu);
    if (do_wake)
        wake(p);
    return 0;
}

int publisher_connected(publisher *p)
{
    pthread_mutex_lock(&p->mu);
    int c = p->connected;
    pthread_mutex_unlock(&p->mu);
    return c;
}

void publisher_sweep(publisher *p)
{
    char why[96];
    pub_msg *fire = NULL;
    int64_t now = clock_mono_ms();
    snprintf(why, sizeof why, "no confirm from rabbitmq within %d ms", p->timeout_ms);
    pthread_mutex_lock(&p->mu);
    /* both lists are in deadline order: submission order, one timeout */
    while (p->queue.head && p->queue.head->deadline_ms <= now)
        resolve_locked(p, p->queue.head, 0, why, &fire);
    while (p->pending.head && p->pending.head->deadline_ms <= now) {
        resolve_locked(p, p->pending.head, 0, why, &fire);
        p->confirm_timeouts++;
    }
    while (p->sending.head && p->sending.head->deadline_ms <= now)
        resolve_locked(p, p->sending.head, 0, why, &fire);
    pthread_mutex_unlock(&p->mu);
    fire_all(fire);
}

long publisher_queue_depth(publisher *p, const char *queue)
{
    long d = -1;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->ndepths; i++)
        if (!strcmp(p->depths[i].name, queue))
            d = p->depths[i].depth;
    pthread_mutex_unlock(&p->mu);
    return d;
}

void publisher_stats(publisher *p, pub_stats *s)
{
    pthread_mutex_lock(&p->mu);
    *s = p->stats;
    s->connected = p->connected;
    pthread_mutex_unlock(&p->mu);
}

/* --- the thread: declarations ---------------------------------------------- */

static int is_declared(publisher *p, const char *q)
{
    for (size_t i = 0; i < p->ndeclared; i++)
        if (!strcmp(p->declared[i], q))
            return 1;
    return 0;
}

static void forget_declared(publisher *p, const char *q)
{
    for (size_t i = 0; i < p->ndeclared; i++)
        if (!strcmp(p->declared[i], q)) {
            free(p->declared[i]);
            p->declared[i] = p->declared[--p->ndeclared];
            return;
        }
}

static void clear_declared(publisher *p)
{
    for (size_t i = 0; i < p->ndeclared; i++)
        free(p->declared[i]);
    p->ndeclared = 0;
}

static void remember_declared(publisher *p, const char *q)
{
    if (p->ndeclared == p->capdeclared) {
        size_t nc = p->capdeclared ? p->capdeclared * 2 : 16;
        char **nd = realloc(p->declared, nc * sizeof *nd);
        if (!nd)
            return; /* then we declare it again next time: harmless */
        p->declared = nd;
        p->capdeclared = nc;
    }
    char *s = strdup(q);
    if (s)
        p->declared[p->ndeclared++] = s;
}

/* After a failed RPC on the declaration channel: a channel-level refusal
 * (406 arguments differ, 404 no such queue) closed only that channel, so
 * acknowledge the close and open it again. 0 when the connection is still
 * usable, -1 when it is not. */
static int recover_decl_channel(publisher *p)
{
    amqp_connection_state_t c = amqpc_state(p->a);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    char err[256];
    if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || r.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
        return -1;
    amqp_channel_close_ok_t ok = {0};
    if (amqp_send_method(c, CH_DECL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK)
        return -1;
    if (amqpc_channel_open(p->a, CH_DECL, err, sizeof err)) {
        LOGW("event=amqp_channel_reopen_failed err=%s", log_q(err));
        return -1;
    }
    return 0;
}

enum { SEND_OK = 0, SEND_MSG_FAILED = 1, SEND_CONN_FAILED = -1 };

static int ensure_queue(publisher *p, const char *queue, char *err, size_t errlen)
{
    if (is_declared(p, queue))
        return SEND_OK;
    char msg[256];
    if (amqpc_declare(p->a, CH_DECL, p->ns, queue, msg, sizeof msg)) {
        snprintf(err, errlen, "cannot declare the queue of '%s': %.150s", queue, msg);
        LOGW("event=queue_declare_failed queue=%s err=%s", log_q(queue), log_q(msg));
        return recover_decl_channel(p) ? SEND_CONN_FAILED : SEND_MSG_FAILED;
    }
    remember_declared(p, queue);
    pthread_mutex_lock(&p->mu);
    if (p->depth_check_ms > 0 && p->ndepths < 4096) {
        int known = 0;
        for (size_t i = 0; i < p->ndepths; i++)
            known |= !strcmp(p->depths[i].name, queue);
        if (!known && p->ndepths == p->capdepths) {
            size_t nc = p->capdepths ? p->capdepths * 2 : 16;
            depth_entry *nd = realloc(p->depths, nc * sizeof *nd);
            if (nd) {
                p->depths = nd;
                p->capdepths = nc;
            }
        }
        if (!known && p->ndepths < p->capdepths) {
            copy_str(p->depths[p->ndepths].name, sizeof p->depths[0].name, queue);
            p->depths[p->ndepths++].depth = -1;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return SEND_OK;
}

/* Refreshes the known queue depths (passive declares on channel 2). */
static int check_depths(publisher *p)
{
    char name[JOB_QUEUE_MAX + 1], q[NAME_MAX_LEN], err[256];
    for (size_t i = 0;; i++) {
        pthread_mutex_lock(&p->mu);
        int more = i < p->ndepths;
        if (more)
            copy_str(name, sizeof name, p->depths[i].name);
        pthread_mutex_unlock(&p->mu);
        if (!more)
            return 0;
        name_jobs_queue(q, sizeof q, p->ns, name);
        long d = amqpc_queue_depth(p->a, CH_DECL, q, err, sizeof err);
        if (d < 0) {
            if (recover_decl_channel(p))
                return -1;
            forget_declared(p, name); /* deleted under us: declare it again on use */
        }
        pthread_mutex_lock(&p->mu);
        if (i < p->ndepths && !strcmp(p->depths[i].name, name))
            p->depths[i].depth = d;
        pthread_mutex_unlock(&p->mu);
    }
}

/* --- the thread: publishing and confirms ------------------------------------ */

static int send_one(publisher *p, pub_msg *m, char *err, size_t errlen)
{
    if (m->kind == PUB_JOB) {
        int rc = ensure_queue(p, m->rkey, err, errlen);
        if (rc != SEND_OK)
            return rc;
    }
    amqp_basic_properties_t props;
    amqp_table_entry_t h[2];
    int nh = 0;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
                   AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props.content_type = amqp_cstring_bytes("application/json");
    props.priority = (uint8_t)m->priority;
    props.timestamp = (uint64_t)(clock_wall_ms() / 1000);
    if (m->msg_id[0]) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = amqp_cstring_bytes(m->msg_id);
    }
    if (m->request_id[0]) {
        props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        props.correlation_id = amqp_cstring_bytes(m->request_id);
        h[nh].key = amqp_cstring_bytes("x-request-id");
        h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
        h[nh++].value.value.bytes = amqp_cstring_bytes(m->request_id);
    }
    if (m->traceparent[0]) {
        h[nh].key = amqp_cstring_bytes("traceparent");
        h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
        h[nh++].value.value.bytes = amqp_cstring_bytes(m->traceparent);
    }
    props.headers.num_entries = nh;
    props.headers.entries = h;
    amqp_bytes_t body = {m->len, m->body};
    const char *ex = m->kind == PUB_JOB ? p->jobs_ex : p->events_ex;
    int st = amqp_basic_publish(amqpc_state(p->a), CH_PUB, amqp_cstring_bytes(ex),
                                amqp_cstring_bytes(m->rkey), 1, 0, &props, body);
    if (st != AMQP_STATUS_OK) {
        snprintf(err, errlen, "publish to '%.100s' failed: %.100s", ex, amqp_error_string2(st));
        return SEND_CONN_FAILED;
    }
    p->next_seq++;
    pthread_mutex_lock(&p->mu);
    p->stats.published++;
    pthread_mutex_unlock(&p->mu);
    return SEND_OK;
}

/* A confirm for tag (and all before it when multiple). */
static void on_confirm(publisher *p, uint64_t tag, int multiple, int ack, pub_msg **fire)
{
    pthread_mutex_lock(&p->mu);
    if (multiple) {
        while (p->pending.head && p->pending.head->seq <= tag) {
            pub_msg *m = p->pending.head;
            int ok = ack && !m->returned;
            resolve_locked(p, m, ok, m->returned ? m->why : "rabbitmq refused the message (nack)", fire);
        }
    } else {
        for (pub_msg *m = p->pending.head; m; m = m->next)
            if (m->seq == tag) {
                int ok = ack && !m->returned;
                resolve_locked(p, m, ok, m->returned ? m->why : "rabbitmq refused the message (nack)", fire);
                break;
            }
    }
    pthread_mutex_unlock(&p->mu);
}

/* The properties of a returned message: mark the pending message it was
 * (by message id) so that its coming ack counts as a failure. */
static void on_returned(publisher *p, const amqp_basic_properties_t *props)
{
    char id[72] = "";
    if (props && (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG))
        snprintf(id, sizeof id, "%.*s", (int)props->message_id.len, (char *)props->message_id.bytes);
    pthread_mutex_lock(&p->mu);
    for (pub_msg *m = p->pending.head; m && id[0]; m = m->next)
        if (!m->returned && !strcmp(m->msg_id, id)) {
            m->returned = 1;
            /* why is the thread's own, unused once a message is pending */
            snprintf(m->why, sizeof m->why, "rabbitmq could not route the message to queue '%s' (%.60s)",
                     m->rkey, p->ret_text);
            if (m->kind == PUB_JOB) {
                char q[JOB_QUEUE_MAX + 1];
                copy_str(q, sizeof q, m->rkey); /* m is not ours once we unlock */
                pthread_mutex_unlock(&p->mu);
                forget_declared(p, q); /* deleted since we declared it */
                LOGW("event=message_returned id=%s queue=%s reason=%s", id, log_q(q),
                     log_q(p->ret_text));
                return;
            }
            break;
        }
    pthread_mutex_unlock(&p->mu);
}

/* Reads every frame that is ready (never waits). 0, or -1 + err when
 * the connection is unusable. */
static int read_frames(publisher *p, char *err, size_t errlen)
{
    amqp_connection_state_t c = amqpc_state(p->a);
    for (;;) {
        pub_msg *fire = NULL;
        amqp_frame_t f;
        struct timeval tv = {0, 0};
        int st = amqp_simple_wait_frame_noblock(c, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT)
            return 0;
        if (st != AMQP_STATUS_OK) {
            snprintf(err, errlen, "rabbitmq connection lost: %s", amqp_error_string2(st));
            return -1;
        }
        p->last_frame_ms = clock_mono_ms();
        if (f.frame_type == AMQP_FRAME_METHOD) {
            switch (f.payload.method.id) {
            case AMQP_BASIC_ACK_METHOD: {
                amqp_basic_ack_t *m = f.payload.method.decoded;
                if (m->delivery_tag > p->last_ack)
                    p->last_ack = m->delivery_tag;
                on_confirm(p, m->delivery_tag, m->multiple, 1, &fire);
                break;
            }
            case AMQP_BASIC_NACK_METHOD: {
                amqp_basic_nack_t *m = f.payload.method.decoded;
                on_confirm(p, m->delivery_tag, m->multiple, 0, &fire);
                break;
            }
            case AMQP_BASIC_RETURN_METHOD: {
                amqp_basic_return_t *m = f.payload.method.decoded;
                p->ret_active = 1;
                p->ret_left = 0;
                snprintf(p->ret_text, sizeof p->ret_text, "%u %.*s", m->reply_code,
                         (int)m->reply_text.len, (char *)m->reply_text.bytes);
                break;
            }
            case AMQP_CHANNEL_CLOSE_METHOD:
            case AMQP_CONNECTION_CLOSE_METHOD:
                amqpc_frame_closed(p->a, &f, err, errlen);
                return -1;
            case AMQP_CONNECTION_BLOCKED_METHOD: {
                amqp_connection_blocked_t *m = f.payload.method.decoded;
                LOGW("event=amqp_blocked reason=\"%.*s\"", (int)m->reason.len, (char *)m->reason.bytes);
                break;
            }
            case AMQP_CONNECTION_UNBLOCKED_METHOD:
                LOGI("event=amqp_unblocked");
                break;
            default:
                break;
            }
        } else if (f.frame_type == AMQP_FRAME_HEADER && p->ret_active) {
            on_returned(p, f.payload.properties.decoded);
            p->ret_left = f.payload.properties.body_size;
            p->ret_active = p->ret_left > 0;
        } else if (f.frame_type == AMQP_FRAME_BODY && p->ret_active) {
            size_t n = f.payload.body_fragment.len;
            p->ret_left = n >= p->ret_left ? 0 : p->ret_left - n;
            p->ret_active = p->ret_left > 0;
        }
        amqp_maybe_release_buffers(c);
        fire_all(fire);
    }
}

/* 1 when m was resolved meanwhile (its deadline passed). */
static int resolved(publisher *p, pub_msg *m)
{
    pthread_mutex_lock(&p->mu);
    int r = m->state != 0;
    pthread_mutex_unlock(&p->mu);
    return r;
}

/* Writes the statuses the batch carries, in one round trip. A message
 * whose status could not be written gets m->why and is not published. */
static void write_statuses(publisher *p, pub_msg **b, size_t n, int *ok)
{
    statusbatch_item items[BATCH_MAX];
    size_t idx[BATCH_MAX], k = 0;
    char err[256];
    for (size_t i = 0; i < n; i++) {
        if (!b[i]->status_doc || !ok[i])
            continue;
        items[k] = (statusbatch_item){NULL, b[i]->status_state, b[i]->status_attempt,
                                      b[i]->status_doc, b[i]->status_len, -1};
        items[k].id = b[i]->msg_id;
        idx[k++] = i;
    }
    if (!k)
        return;
    if (!p->redis) {
        snprintf(err, sizeof err, "no redis for the status");
    } else if (statusbatch_put(p->redis, p->ns, p->status_ttl_s, items, k, err, sizeof err)) {
        LOGW("event=status_write_failed jobs=%zu err=%s", k, log_q(err));
    }
    for (size_t j = 0; j < k; j++) {
        pub_msg *m = b[idx[j]];
        if (items[j].result == 1)
            continue;
        ok[idx[j]] = 0;
        if (items[j].result == 0)
            snprintf(m->why, sizeof m->why, "its status in redis has moved on");
        else
            snprintf(m->why, sizeof m->why, "%s", err);
    }
}

/* Corks the connection's socket while a chunk is published: rabbitmq-c
 * writes each message with a send of its own, and on loopback every send
 * goes through the TCP stack, RabbitMQ's side included, on its own; a
 * cork makes the chunk one segment. A failure only costs that saving. */
static void cork(publisher *p, int on)
{
    if (setsockopt(amqpc_fd(p->a), IPPROTO_TCP, TCP_CORK, &on, sizeof on))
        LOGD("event=tcp_cork_failed err=%s", log_q(strerror(errno)));
}

/* Hands the chunk b[0..n) over after its publishes (under mu): a
 * message published (ok) goes to pending, a failed one is resolved, one
 * resolved meanwhile by its deadline loses our reference. */
static void settle(publisher *p, pub_msg **b, const int *ok, const uint64_t *seq, size_t n)
{
    pub_msg *fire = NULL, *drop[BATCH_MAX];
    size_t ndrop = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        pub_msg *m = b[i];
        if (m->state) {
            drop[ndrop++] = m; /* resolved by its deadline: fire_all ran */
            continue;
        }
        list_remove(&p->sending, m);
        m->where = W_NONE;
        if (ok[i]) {
            m->seq = seq[i];
            m->where = W_PENDING;
            list_push(&p->pending, m); /* our reference goes with it */
        } else {
            resolve_locked(p, m, 0, m->why[0] ? m->why : "not published", &fire);
        }
    }
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < ndrop; i++)
        pub_msg_free(drop[i]);
    fire_all(fire);
}

/* Publishes everything queued, a batch at a time, reading confirms after
 * every DRAIN_EVERY publishes. Each chunk is settled (its messages put in
 * pending) before any frame is read: a confirm finds its message only in
 * pending, so a confirm read while its message was still being sent was
 * lost, and the message failed by its deadline. 0, or -1 + err when the
 * connection broke. */
static int pump(publisher *p, char *err, size_t errlen)
{
    pub_msg *b[BATCH_MAX];
    int ok[BATCH_MAX];
    uint64_t seq[BATCH_MAX];
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&p->mu);
        while (n < BATCH_MAX && p->queue.head) {
            pub_msg *m = p->queue.head;
            list_remove(&p->queue, m);
            m->where = W_SENDING;
            list_push(&p->sending, m);
            b[n++] = m;
        }
        pthread_mutex_unlock(&p->mu);
        if (!n)
            break;

        for (size_t i = 0; i < n; i++) {
            ok[i] = 1;
            seq[i] = 0;
            b[i]->why[0] = 0;
        }
        write_statuses(p, b, n, ok);

        int broken = 0;
        for (size_t from = 0; from < n; from += DRAIN_EVERY) {
            size_t to = from + DRAIN_EVERY < n ? from + DRAIN_EVERY : n;
            int corked = !broken && to - from > 1;
            if (corked)
                cork(p, 1);
            for (size_t i = from; i < to; i++) {
                if (broken) {
                    ok[i] = 0;
                    snprintf(b[i]->why, sizeof b[i]->why, "%s", err);
                    continue;
                }
                if (!ok[i] || resolved(p, b[i]))
                    continue;
                int rc = send_one(p, b[i], b[i]->why, sizeof b[i]->why);
                if (rc == SEND_OK) {
                    seq[i] = p->next_seq;
                    continue;
                }
                ok[i] = 0;
                if (rc == SEND_CONN_FAILED) {
                    snprintf(err, errlen, "%s", b[i]->why);
                    broken = 1;
                }
            }
            if (corked && !broken)
                cork(p, 0);
            settle(p, b + from, ok + from, seq + from, to - from);
            if (!broken && to < n && read_frames(p, err, errlen))
                broken = 1;
        }
        if (broken)
            return -1;
    }
    return read_frames(p, err, errlen);
}

static bx_amqp *connect_amqp(publisher *p, char *err, size_t errlen)
{
    bx_amqp *a = amqpc_connect(p->url, "bx-api", err, errlen);
    if (!a)
        return NULL;
    /* A RabbitMQ that stops answering must not hold the thread in a
     * declaration (or the close) for ever: RPCs give up after this. */
    struct timeval rpc_tv = {p->timeout_ms / 1000, (p->timeout_ms % 1000) * 1000};
    amqp_set_rpc_timeout(amqpc_state(a), &rpc_tv);
    if (amqpc_confirm_select(a, CH_PUB, err, errlen) ||
        amqpc_channel_open(a, CH_DECL, err, errlen) ||
        amqpc_declare(a, CH_DECL, p->ns, NULL, err, errlen)) {
        amqpc_free(a);
        return NULL;
    }
    return a;
}

/* Drops the connection, failing every message in flight. Only a clean
 * shutdown closes politely: after a failure the peer may not answer, and
 * a close that waits for it would stall the thread. */
static void disconnect(publisher *p, const char *why, int polite)
{
    pub_msg *fire = NULL;
    pthread_mutex_lock(&p->mu);
    p->connected = 0;
    fail_all_locked(p, why, &fire);
    for (size_t i = 0; i < p->ndepths; i++)
        p->depths[i].depth = -1;
    pthread_mutex_unlock(&p->mu);
    fire_all(fire);
    if (!polite)
        shutdown(amqpc_fd(p->a), SHUT_RDWR);
    amqpc_free(p->a);
    p->a = NULL;
    p->ret_active = 0;
    clear_declared(p);
}

/* Waits until fd is readable, the eventfd fires, or timeout_ms passes. */
static void wait_for(publisher *p, int fd, int timeout_ms)
{
    struct pollfd pf[2] = {{p->efd, POLLIN, 0}, {fd, POLLIN, 0}};
    int n = poll(pf, fd >= 0 ? 2 : 1, timeout_ms);
    if (n > 0 && (pf[0].revents & POLLIN)) {
        uint64_t v;
        ssize_t r = read(p->efd, &v, sizeof v);
        (void)r;
    }
}

static void *publisher_main(void *arg)
{
    publisher *p = arg;
    int backoff = BACKOFF_MIN_MS, failures = 0;
    int64_t lost_at = 0, last_complaint = 0;
    uint64_t timeouts_seen = 0;
    char err[512] = "";
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int stopping = p->stopping;
        int64_t stop_deadline = p->stop_deadline_ms;
        pthread_mutex_unlock(&p->mu);
        int64_t now = clock_mono_ms();

        if (!p->a) {
            if (stopping)
                break;
            p->a = connect_amqp(p, err, sizeof err);
            if (!p->a) {
                if (!failures++ || now - last_complaint >= 30000) {
                    LOGW("event=amqp_connect_failed err=%s retry_in_ms=%d", log_q(err), backoff);
                    last_complaint = now;
                }
                wait_for(p, -1, backoff);
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            p->next_seq = 0;
            p->last_ack = 0;
            p->last_frame_ms = now;
            pthread_mutex_lock(&p->mu);
            p->connected = 1;
            timeouts_seen = p->confirm_timeouts;
            if (lost_at)
                p->stats.reconnects++;
            pthread_mutex_unlock(&p->mu);
            if (lost_at)
                LOGI("event=amqp_reconnected down_ms=%lld attempts=%d", (long long)(now - lost_at), failures);
            else
                LOGI("event=amqp_connected");
            backoff = BACKOFF_MIN_MS;
            failures = 0;
            lost_at = 0;
            p->next_depth_ms = now;
        }

        err[0] = 0;
        /* A published message that RabbitMQ did not confirm in time means a
         * connection we cannot trust (heartbeats are off): start afresh. */
        pthread_mutex_lock(&p->mu);
        int overdue = p->confirm_timeouts != timeouts_seen;
        timeouts_seen = p->confirm_timeouts;
        size_t npending = p->pending.n;
        uint64_t oldest = p->pending.head ? p->pending.head->seq : 0;
        pthread_mutex_unlock(&p->mu);
        if (overdue) {
            /* what tells a silent RabbitMQ from a confirm we missed */
            LOGW("event=confirm_overdue published=%llu confirmed_to=%llu pending=%zu oldest_pending=%llu "
                 "last_frame_ms_ago=%lld",
                 (unsigned long long)p->next_seq, (unsigned long long)p->last_ack, npending,
                 (unsigned long long)oldest, (long long)(now - p->last_frame_ms));
            snprintf(err, sizeof err, "rabbitmq did not confirm within %d ms", p->timeout_ms);
        }
        if (overdue || pump(p, err, sizeof err) ||
            (p->depth_check_ms > 0 && !stopping && now >= p->next_depth_ms && check_depths(p))) {
            if (!err[0])
                snprintf(err, sizeof err, "rabbitmq channel failed");
            LOGE("event=amqp_connection_lost err=%s", log_q(err));
            disconnect(p, err, 0);
            lost_at = clock_mono_ms();
            continue;
        }
        if (p->depth_check_ms > 0 && now >= p->next_depth_ms)
            p->next_depth_ms = now + p->depth_check_ms;
        publisher_sweep(p);

        pthread_mutex_lock(&p->mu);
        now = clock_mono_ms();
        if (stopping && ((!p->queue.n && !p->pending.n) || now >= stop_deadline)) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        if (p->queue.n) {
            pthread_mutex_unlock(&p->mu);
            continue;
        }
        int64_t until = now + 1000;
        if (p->pending.head && p->pending.head->deadline_ms < until)
            until = p->pending.head->deadline_ms;
        if (p->depth_check_ms > 0 && p->next_depth_ms < until)
            until = p->next_depth_ms;
        if (stopping && stop_deadline < until)
            until = stop_deadline;
        p->sleeping = 1;
        pthread_mutex_unlock(&p->mu);
        wait_for(p, amqpc_fd(p->a), until > now ? (int)(until - now) : 0);
        pthread_mutex_lock(&p->mu);
        p->sleeping = 0;
        pthread_mutex_unlock(&p->mu);
    }
    if (p->a) {
        disconnect(p, "the api is shutting down", 1);
    } else {
        pub_msg *fire = NULL;
        pthread_mutex_lock(&p->mu);
        fail_all_locked(p, "the api is shutting down", &fire);
        pthread_mutex_unlock(&p->mu);
        fire_all(fire);
    }
    return NULL;
}

/* --- lifecycle ------------------------------------------------------------ */

publisher *publisher_new(const char *url, const char *ns, const char *redis_url,
                         int status_ttl_s, int confirm_timeout_ms, int depth_check_ms, char *err,
                         size_t errlen)
{
    struct amqp_connection_info ci;
    publisher *p = calloc(1, sizeof *p);
    char *u = strdup(url);
    if (!p || !u) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    p->efd = -1;
    if (amqp_parse_url(u, &ci) != AMQP_STATUS_OK) {
        snprintf(err, errlen, "bad amqp url (want amqp://user:pass@host:port/vhost)");
        goto fail;
    }
    free(u);
    u = NULL;
    if (!(p->url = strdup(url)) || !(p->ns = strdup(ns))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    name_jobs_exchange(p->jobs_ex, sizeof p->jobs_ex, ns);
    name_events_exchange(p->events_ex, sizeof p->events_ex, ns);
    p->timeout_ms = confirm_timeout_ms > 0 ? confirm_timeout_ms : 5000;
    p->status_ttl_s = status_ttl_s;
    if (redis_url && !(p->redis = rds_new(redis_url, err, errlen)))
        goto fail;
    p->depth_check_ms = depth_check_ms;
    if ((p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    pthread_mutex_init(&p->mu, NULL);
    int e = pthread_create(&p->thread, NULL, publisher_main, p);
    if (e) {
        snprintf(err, errlen, "cannot start the publisher thread: %s", strerror(e));
        pthread_mutex_destroy(&p->mu);
        goto fail;
    }
    return p;
fail:
    free(u);
    if (p) {
        if (p->efd >= 0)
            close(p->efd);
        rds_free(p->redis);
        free(p->url);
        free(p->ns);
        free(p);
    }
    return NULL;
}

void publisher_stop(publisher *p, int stop_ms)
{
    pthread_mutex_lock(&p->mu);
    int was = p->stopping;
    p->stopping = 1;
    p->stop_deadline_ms = clock_mono_ms() + (stop_ms > 0 ? stop_ms : 0);
    pthread_mutex_unlock(&p->mu);
    if (was)
        return;
    wake(p);
    pthread_join(p->thread, NULL);
}

void publisher_free(publisher *p)
{
    if (!p)
        return;
    publisher_stop(p, 0);
    clear_declared(p);
    free(p->declared);
    free(p->depths);
    pthread_mutex_destroy(&p->mu);
    close(p->efd);
    rds_free(p->redis);
    free(p->url);
    free(p->ns);
    free(p);
}
