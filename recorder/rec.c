/* rec — see rec.h. One thread: wait for the next delivery or the batch
 * deadline, whichever is first; write the batch when it is full or due.
 *
 * Two AMQP connections: one consumes (channel 1, manual ack, prefetch
 * twice the batch), the other publishes dead letters with confirms and
 * is opened only when needed, because waiting for a confirm on the
 * consuming connection would swallow the deliveries that arrive
 * meanwhile (amqpc_poll_confirms is for connections that do not consume). */
#include "rec.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>

#include "amqpc.h"
#include "batch.h"
#include "clock.h"
#include "event.h"
#include "log.h"
#include "memtrim.h"
#include "names.h"

#define REC_IDLE_MS 250         /* longest wait for a delivery: how soon a stop is seen */
#define REC_BACKOFF_MIN_MS 100
#define REC_BACKOFF_MAX_MS 5000
#define REC_CONFIRM_MS 5000     /* a dead letter's confirm */
#define REC_INDEX_RETRY_MS 60000
#define REC_PING_MS 5000        /* idle: how often MongoDB is pinged, so its state stays known */

typedef struct rec {
    const bx_cfg *cfg;
    bx_store *store;
    rec_obs *obs;
    volatile sig_atomic_t *stop;
    bx_amqp *in;  /* consumes; NULL while disconnected */
    bx_amqp *out; /* dead letters, confirm mode on channel 1; opened lazily */
    char results_q[NAME_MAX_LEN];
    char dlx[NAME_MAX_LEN];
    char conn_name[NAME_MAX_LEN + 40]; /* in RabbitMQ's connection list */
    char dlx_conn_name[NAME_MAX_LEN + 40];
    batch b;
    int amqp_down;        /* logged as lost, not yet regained */
    int64_t amqp_down_ms; /* since when (monotonic) */
    int mongo_down;
    int64_t mongo_down_ms;
    int indexes_ok;
    int64_t index_retry_ms; /* next store_ensure_indexes attempt */
    int64_t next_ping_ms;   /* idle: next store_ping, to keep bx_recorder_mongo_up true */
    uint64_t written, dead_lettered;
} rec;

int rec_backoff_next(int cur_ms)
{
    if (cur_ms < REC_BACKOFF_MIN_MS)
        return REC_BACKOFF_MIN_MS;
    return cur_ms >= REC_BACKOFF_MAX_MS / 2 ? REC_BACKOFF_MAX_MS : cur_ms * 2;
}

/* ---------- what statusd shows ---------- */

static const double batch_size_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};

int rec_obs_init(rec_obs *o, metrics *reg, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    pthread_mutex_init(&o->mu, NULL);
    snprintf(o->amqp_err, sizeof o->amqp_err, "not connected yet");
    snprintf(o->mongo_err, sizeof o->mongo_err, "not reached yet");
#define FAM(field, call)                                                                           \
    if (!(o->field = call))                                                                        \
        return -1;
    FAM(events, metrics_counter(reg, "bx_recorder_events_total",
                                "Result events settled: stored in MongoDB, stale (a newer or the same record was there), or dead-lettered.",
                                "result", NULL, err, errlen))
    FAM(batches, metrics_counter(reg, "bx_recorder_batches_total",
                                 "Batches written to MongoDB and acked.", NULL, NULL, err, errlen))
    FAM(write_errors, metrics_counter(reg, "bx_recorder_write_errors_total",
                                      "MongoDB bulk writes that failed (and were retried).", NULL,
                                      NULL, err, errlen))
    FAM(batch_size, metrics_histogram(reg, "bx_recorder_batch_size", "Events per batch written.",
                                      batch_size_buckets,
                                      sizeof batch_size_buckets / sizeof batch_size_buckets[0],
                                      NULL, NULL, err, errlen))
    FAM(write_seconds, metrics_histogram(reg, "bx_recorder_write_seconds",
                                         "Time to write one batch to MongoDB.",
                                         METRICS_SECONDS_BUCKETS, METRICS_SECONDS_NBUCKETS, NULL,
                                         NULL, err, errlen))
    FAM(lag, metrics_gauge(reg, "bx_recorder_lag_seconds",
                           "From the finished_at of the last stored event to its storing.", NULL,
                           NULL, err, errlen))
    FAM(held, metrics_gauge(reg, "bx_recorder_held_events",
                            "Events received and not yet stored (the batch).", NULL, NULL, err,
                            errlen))
    FAM(amqp_up, metrics_gauge(reg, "bx_recorder_amqp_up",
                               "1 when the recorder consumes from RabbitMQ.", NULL, NULL, err,
                               errlen))
    FAM(mongo_up, metrics_gauge(reg, "bx_recorder_mongo_up",
                                "1 when MongoDB answered the recorder's last write or ping.", NULL,
                                NULL, err, errlen))
#undef FAM
    /* every result shows from the start, at 0 */
    metric_touch(o->events, "stored", NULL);
    metric_touch(o->events, "stale", NULL);
    metric_touch(o->events, "dead_lettered", NULL);
    return 0;
}

void rec_obs_release(rec_obs *o)
{
    pthread_mutex_destroy(&o->mu);
}

int rec_obs_ready(void *ud, statusd_check *c, int max)
{
    rec_obs *o = ud;
    if (max < 2)
        return 0;
    c[0].name = "rabbitmq";
    c[0].ok = metric_value(o->amqp_up, NULL, NULL) == 1;
    c[1].name = "mongodb";
    c[1].ok = metric_value(o->mongo_up, NULL, NULL) == 1;
    pthread_mutex_lock(&o->mu);
    snprintf(c[0].detail, sizeof c[0].detail, "%s", o->amqp_err);
    snprintf(c[1].detail, sizeof c[1].detail, "%s", o->mongo_err);
    pthread_mutex_unlock(&o->mu);
    return 2;
}

/* The state of a connection, for /metrics and /readyz: up, or down and why. */
static void obs_conn(rec_obs *o, metric_fam *up, char *detail, size_t n, const char *err)
{
    metric_set(up, NULL, NULL, err ? 0 : 1);
    pthread_mutex_lock(&o->mu);
    snprintf(detail, n, "%.*s", (int)n - 1, err ? err : "");
    pthread_mutex_unlock(&o->mu);
}

static void obs_amqp(rec *r, const char *err)
{
    obs_conn(r->obs, r->obs->amqp_up, r->obs->amqp_err, sizeof r->obs->amqp_err, err);
}

static void obs_mongo(rec *r, const char *err)
{
    obs_conn(r->obs, r->obs->mongo_up, r->obs->mongo_err, sizeof r->obs->mongo_err, err);
}

int64_t rec_parse_rfc3339(const char *s)
{
    struct tm tm = {0};
    int ms = 0, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    s += n;
    if (*s == '.') {
        int digits = 0;
        for (s++; *s >= '0' && *s <= '9'; s++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*s - '0');
        while (digits > 0 && digits < 3) {
            ms *= 10;
            digits++;
        }
    }
    if (strcmp(s, "Z"))
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return (int64_t)t * 1000 + ms;
}

/* A batch of n events is written, stale of which changed nothing:
 * counts it, and the lag of its last event. */
static void obs_stored(rec *r, size_t n, size_t stale, int64_t t0_ms)
{
    rec_obs *o = r->obs;
    int64_t now = clock_mono_ms();
    metric_add(o->events, "stored", NULL, (double)(n - stale));
    metric_add(o->events, "stale", NULL, (double)stale);
    metric_inc(o->batches, NULL, NULL);
    metric_observe(o->batch_size, NULL, NULL, (double)n);
    metric_observe(o->write_seconds, NULL, NULL, (double)(now - t0_ms) / 1000.0);
    if (n) {
        json_t *fin = json_object_get(r->b.evs[n - 1], "finished_at");
        int64_t ms = rec_parse_rfc3339(json_string_value(fin));
        if (ms >= 0)
            metric_set(o->lag, NULL, NULL, (double)(clock_wall_ms() - ms) / 1000.0);
    }
}

/* Sleeps ms, in short steps so that a stop is seen soon. */
static void nap(rec *r, int ms)
{
    int64_t end = clock_mono_ms() + ms;
    for (;;) {
        int64_t left = end - clock_mono_ms();
        if (left <= 0 || *r->stop)
            return;
        if (left > 50)
            left = 50;
        struct timespec ts = {0, (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void amqp_close(rec *r)
{
    amqpc_free(r->in);
    amqpc_free(r->out);
    r->in = r->out = NULL;
}

/* Connects, declares the events topology, and starts consuming. */
static int amqp_open(rec *r, char *err, size_t errlen)
{
    amqp_connection_state_t st;
    int prefetch = r->cfg->batch_max * 2;
    if (prefetch > 65535)
        prefetch = 65535;
    r->in = amqpc_connect(r->cfg->amqp_url, r->conn_name, err, errlen);
    if (!r->in)
        return -1;
    if (amqpc_declare(r->in, 1, r->cfg->ns, NULL, err, errlen) ||
        amqpc_qos(r->in, 1, (uint16_t)prefetch, err, errlen))
        goto fail;
    st = amqpc_state(r->in);
    amqp_basic_consume(st, 1, amqp_cstring_bytes(r->results_q), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    amqp_rpc_reply_t rr = amqp_get_rpc_reply(st);
    if (rr.reply_type != AMQP_RESPONSE_NORMAL) {
        char d[256];
        amqpc_describe(rr, d, sizeof d);
        snprintf(err, errlen, "consuming '%.200s': %.250s", r->results_q, d);
        goto fail;
    }
    return 0;
fail:
    amqp_close(r);
    return -1;
}

/* The consuming connection is gone: what we hold is redelivered to
 * whoever consumes next (upserts are idempotent), so drop it. */
static void amqp_lost(rec *r, const char *err)
{
    if (!r->amqp_down) {
        LOGE("event=amqp_lost err=%s dropped=%zu", log_q(err), r->b.n);
        r->amqp_down = 1;
        r->amqp_down_ms = clock_mono_ms();
    }
    obs_amqp(r, err);
    amqp_close(r);
    batch_clear(&r->b);
}

/* Publishes body to <ns>.dlx with x-reason and waits for the confirm;
 * tries a fresh connection once. 0, or -1 + err (not dead-lettered). */
static int dead_letter(rec *r, const void *body, size_t len, const char *request_id,
                       const char *reason, char *err, size_t errlen)
{
    amqpc_msg m = {.body = body, .len = len, .request_id = request_id, .reason = reason};
    for (int i = 0; i < 2; i++) {
        if (!r->out) {
            r->out = amqpc_connect(r->cfg->amqp_url, r->dlx_conn_name, err, errlen);
            if (!r->out)
                continue;
            if (amqpc_confirm_select(r->out, 1, err, errlen)) {
                amqpc_free(r->out);
                r->out = NULL;
                continue;
            }
        }
        if (amqpc_publish_sync(r->out, 1, r->dlx, "", &m, REC_CONFIRM_MS, err, errlen) == 0)
            return 0;
        amqpc_free(r->out);
        r->out = NULL;
    }
    return -1;
}

/* x-request-id of a delivery, into buf ("" when absent). */
static const char *header_request_id(const amqp_envelope_t *env, char *buf, size_t n)
{
    const amqp_basic_properties_t *p = &env->message.properties;
    buf[0] = 0;
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return NULL;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (e->key.len == 12 && memcmp(e->key.bytes, "x-request-id", 12) == 0 &&
            (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES)) {
            snprintf(buf, n, "%.*s", (int)e->value.value.bytes.len,
                     (const char *)e->value.value.bytes.bytes);
            return buf;
        }
    }
    return NULL;
}

/* One delivery: into the batch, or dead-lettered and acked at once.
 * 0, or -1 + err when the connection failed. */
static int on_delivery(rec *r, amqp_envelope_t *env, char *err, size_t errlen)
{
    char why[256], reason[300], rid[128];
    const char *body = env->message.body.bytes;
    size_t len = env->message.body.len;
    json_t *ev = event_decode(body, len, why, sizeof why);
    if (ev) {
        batch_add(&r->b, ev, env->delivery_tag, len, clock_mono_ms());
        return 0;
    }
    snprintf(reason, sizeof reason, "invalid event: %s", why);
    if (dead_letter(r, body, len, header_request_id(env, rid, sizeof rid), reason, err, errlen))
        return -1;
    /* Alone, not multiple: the batch's earlier tags are not stored yet. */
    if (amqp_basic_ack(amqpc_state(r->in), 1, env->delivery_tag, 0) != AMQP_STATUS_OK) {
        snprintf(err, errlen, "ack failed");
        return -1;
    }
    r->dead_lettered++;
    metric_inc(r->obs->events, "dead_lettered", NULL);
    LOGW("event=dead_lettered tag=%" PRIu64 " bytes=%zu reason=%s", (uint64_t)env->delivery_tag,
         len, log_q(reason));
    return 0;
}

/* 1 when a frame is already here: in rabbitmq-c's buffers or the socket. */
static int delivery_ready(rec *r)
{
    amqp_connection_state_t st = amqpc_state(r->in);
    if (amqp_data_in_buffer(st) || amqp_frames_enqueued(st))
        return 1;
    struct pollfd pf = {amqpc_fd(r->in), POLLIN, 0};
    return poll(&pf, 1, 0) > 0;
}

/* Waits at most timeout_ms for one delivery and handles it. 0 (also on
 * timeout), or -1 + err when the connection is unusable. */
static int consume_one(rec *r, int timeout_ms, char *err, size_t errlen)
{
    amqp_connection_state_t st = amqpc_state(r->in);
    amqp_envelope_t env;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    amqp_maybe_release_buffers(st);
    amqp_rpc_reply_t rr = amqp_consume_message(st, &env, &tv, 0);
    if (rr.reply_type == AMQP_RESPONSE_NORMAL) {
        int rc = on_delivery(r, &env, err, errlen);
        amqp_destroy_envelope(&env);
        return rc;
    }
    if (rr.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && rr.library_error == AMQP_STATUS_TIMEOUT)
        return 0;
    if (rr.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        rr.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        /* A frame that is not a delivery: a close, or the server
         * cancelling our consumer (queue deleted). */
        amqp_frame_t f;
        if (amqp_simple_wait_frame(st, &f) != AMQP_STATUS_OK) {
            snprintf(err, errlen, "rabbitmq connection lost");
            return -1;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            return 0;
        switch (f.payload.method.id) {
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            amqpc_frame_closed(r->in, &f, err, errlen);
            return -1;
        case AMQP_BASIC_CANCEL_METHOD:
            snprintf(err, errlen, "rabbitmq cancelled the consumer of '%.200s'", r->results_q);
            return -1;
        default:
            return 0;
        }
    }
    char d[256];
    amqpc_describe(rr, d, sizeof d);
    snprintf(err, errlen, "rabbitmq: %s", d);
    return -1;
}

static void mongo_lost(rec *r, const char *err)
{
    obs_mongo(r, err);
    if (r->mongo_down)
        return;
    r->mongo_down = 1;
    r->mongo_down_ms = clock_mono_ms();
    LOGE("event=mongo_lost err=%s held=%zu", log_q(err), r->b.n);
}

static void mongo_ok(rec *r)
{
    obs_mongo(r, NULL);
    r->next_ping_ms = clock_mono_ms() + REC_PING_MS;
    if (r->mongo_down) {
        LOGI("event=mongo_regained down_ms=%" PRId64, clock_mono_ms() - r->mongo_down_ms);
        r->mongo_down = 0;
    }
    if (!r->indexes_ok && clock_mono_ms() >= r->index_retry_ms) {
        char err[256];
        if (store_ensure_indexes(r->store, err, sizeof err) == 0) {
            r->indexes_ok = 1;
            LOGI("event=indexes_ready");
        } else {
            r->index_retry_ms = clock_mono_ms() + REC_INDEX_RETRY_MS;
            LOGW("event=indexes_failed err=%s", log_q(err));
        }
    }
}

/* Idle, MongoDB's state would only be learnt at the next write: ask it
 * now and then. Blocks up to the store's server selection timeout when
 * it is down, which costs nothing then: no batch waits. */
static void ping_mongo(rec *r)
{
    char err[256];
    if (store_ping(r->store, err, sizeof err) == 0) {
        mongo_ok(r);
    } else {
        mongo_lost(r, err);
        r->next_ping_ms = clock_mono_ms() + REC_PING_MS;
    }
}

/* The batch failed while MongoDB answers a ping: some event in it cannot
 * be stored (a key MongoDB refuses, too large, ...). Writes the events
 * one by one and dead-letters those that fail alone, so that one bad
 * event never blocks the queue. 0 when the batch is settled, 1 when
 * MongoDB stopped answering (retry later), -1 + err on an AMQP failure. */
static int settle_one_by_one(rec *r, size_t *stale, char *err, size_t errlen)
{
    char e1[512], reason[600];
    for (size_t i = 0; i < r->b.n;) {
        json_t *ev = r->b.evs[i];
        size_t same = 0;
        if (store_upsert_ex(r->store, &ev, 1, &same, e1, sizeof e1) == 0) {
            *stale += same;
            i++;
            continue;
        }
        if (store_ping(r->store, reason, sizeof reason) < 0) {
            mongo_lost(r, reason);
            return 1;
        }
        char *body = json_dumps(ev, JSON_COMPACT);
        if (!body) {
            snprintf(err, errlen, "out of memory");
            return 1;
        }
        snprintf(reason, sizeof reason, "unstorable event: %.500s", e1);
        const char *rid = json_string_value(json_object_get(ev, "request_id"));
        int rc = dead_letter(r, body, strlen(body), rid, reason, err, errlen);
        free(body);
        if (rc)
            return -1;
        r->dead_lettered++;
        metric_inc(r->obs->events, "dead_lettered", NULL);
        LOGW("event=dead_lettered id=%s reason=%s", json_string_value(json_object_get(ev, "id")),
             log_q(reason));
        batch_drop(&r->b, i); /* its tag is acked with the batch */
    }
    return 0;
}

/* Writes the batch to MongoDB, retrying with backoff while MongoDB is
 * down, then acks it. Once stopping, one attempt only: what it cannot
 * write is left unacked, safe in RabbitMQ, which delivers it again.
 * 0 when written and acked, or given up on (the batch is then cleared);
 * -1 + err on an AMQP failure. */
static int flush(rec *r, char *err, size_t errlen)
{
    char serr[512], perr[256];
    int backoff = 0;
    int suspect = 0; /* the last write failed while MongoDB answered a ping */
    while (r->b.n > 0) {
        int64_t t0 = clock_mono_ms();
        if (*r->stop && r->mongo_down) {
            LOGW("event=batch_unwritten n=%zu reason=stopping", r->b.n);
            batch_clear(&r->b);
            return 0;
        }
        size_t stale = 0;
        if (store_upsert_ex(r->store, r->b.evs, r->b.n, &stale, serr, sizeof serr) == 0) {
            r->written += r->b.n;
            LOGI("event=batch_written n=%zu stale=%zu ms=%" PRId64, r->b.n, stale,
                 clock_mono_ms() - t0);
            obs_stored(r, r->b.n, stale, t0);
            mongo_ok(r);
            break;
        }
        metric_inc(r->obs->write_errors, NULL, NULL);
        if (*r->stop) {
            LOGW("event=batch_unwritten n=%zu reason=stopping err=%s", r->b.n, log_q(serr));
            batch_clear(&r->b);
            return 0;
        }
        if (store_ping(r->store, perr, sizeof perr) < 0) {
            mongo_lost(r, serr);
            suspect = 0;
        } else if (!suspect) {
            /* MongoDB answers now: it may have just come back. Once more
             * with the whole batch before suspecting its events. */
            suspect = 1;
            continue;
        } else {
            LOGW("event=batch_rejected n=%zu err=%s", r->b.n, log_q(serr));
            stale = 0;
            int rc = settle_one_by_one(r, &stale, err, errlen);
            if (rc < 0)
                return -1;
            if (rc == 0) {
                obs_stored(r, r->b.n, stale, t0); /* what is left was stored one by one */
                mongo_ok(r);
                break;
            }
            suspect = 0;
        }
        backoff = rec_backoff_next(backoff);
        nap(r, backoff);
    }
    if (r->b.ack_tag &&
        amqp_basic_ack(amqpc_state(r->in), 1, r->b.ack_tag, 1) != AMQP_STATUS_OK) {
        snprintf(err, errlen, "ack failed");
        return -1;
    }
    batch_clear(&r->b);
    return 0;
}

int rec_run(const bx_cfg *cfg, bx_store *store, rec_obs *obs, volatile sig_atomic_t *stop,
            volatile sig_atomic_t *reopen)
{
    rec r = {.cfg = cfg, .store = store, .obs = obs, .stop = stop};
    char err[512];
    int backoff = 0;

    if (batch_init(&r.b, (size_t)cfg->batch_max) < 0) {
        LOGE("event=stop err=%s", log_q("out of memory"));
        return -1;
    }
    name_results_queue(r.results_q, sizeof r.results_q, cfg->ns);
    name_dead_exchange(r.dlx, sizeof r.dlx, cfg->ns);
    snprintf(r.conn_name, sizeof r.conn_name, "bx-recorder %.200s %ld", cfg->ns, (long)getpid());
    snprintf(r.dlx_conn_name, sizeof r.dlx_conn_name, "bx-recorder-dlx %.200s %ld", cfg->ns,
             (long)getpid());
    LOGI("event=start ns=%s queue=%s batch=%d batch_ms=%d", log_q(cfg->ns), log_q(r.results_q),
         cfg->batch_max, cfg->batch_ms);
    /* Once at start; when MongoDB does not answer yet, consumption goes
     * on and the indexes follow the first successful write. */
    if (store_ensure_indexes(store, err, sizeof err) == 0) {
        r.indexes_ok = 1;
        mongo_ok(&r);
    } else {
        LOGW("event=indexes_failed err=%s", log_q(err));
        r.index_retry_ms = clock_mono_ms();
        obs_mongo(&r, err); /* likely down: the first ping says for sure */
    }

    memtrim trim = {0};
    while (!*stop) {
        if (*reopen) {
            *reopen = 0;
            if (log_reopen()) {
                int e = errno;
                LOGE("event=reload_failed what=log_file path=%s error=%s", log_q(cfg->log_file),
                     log_q(strerror(e)));
            }
            LOGI("event=reload log_file=%s", cfg->log_file[0] ? log_q(cfg->log_file) : "-");
        }
        if (r.b.n == 0)
            memtrim_tick(&trim, r.written + r.dead_lettered, clock_mono_ms());
        if (!r.in) {
            if (amqp_open(&r, err, sizeof err) < 0) {
                obs_amqp(&r, err);
                if (!r.amqp_down) {
                    LOGE("event=amqp_lost err=%s", log_q(err));
                    r.amqp_down = 1;
                    r.amqp_down_ms = clock_mono_ms();
                }
                backoff = rec_backoff_next(backoff);
                nap(&r, backoff);
                continue;
            }
            if (r.amqp_down)
                LOGI("event=amqp_regained down_ms=%" PRId64, clock_mono_ms() - r.amqp_down_ms);
            else
                LOGI("event=amqp_connected queue=%s", log_q(r.results_q));
            r.amqp_down = 0;
            backoff = 0;
            obs_amqp(&r, NULL);
        }
        metric_set(obs->held, NULL, NULL, (double)r.b.n);
        if (r.b.n == 0 && clock_mono_ms() >= r.next_ping_ms)
            ping_mongo(&r);
        int64_t due = batch_due_in(&r.b, cfg->batch_ms, clock_mono_ms());
        if (r.b.n > 0 && (batch_full(&r.b) || due <= 0)) {
            /* Due, but deliveries that are already here go in first, up
             * to a full batch: under a backlog the timer alone cut batches
             * short whenever this thread was slow to take them (a busy
             * machine), and each write costs MongoDB per call. */
            if (!batch_full(&r.b) && delivery_ready(&r)) {
                if (consume_one(&r, 0, err, sizeof err) < 0)
                    amqp_lost(&r, err);
                continue;
            }
            if (flush(&r, err, sizeof err) < 0)
                amqp_lost(&r, err);
            continue;
        }
        int wait = (due < 0 || due > REC_IDLE_MS) ? REC_IDLE_MS : (int)due;
        if (consume_one(&r, wait, err, sizeof err) < 0)
            amqp_lost(&r, err);
    }

    if (r.in && r.b.n > 0 && flush(&r, err, sizeof err) < 0)
        LOGW("event=batch_unacked err=%s", log_q(err));
    amqp_close(&r);
    batch_release(&r.b);
    metric_set(obs->held, NULL, NULL, 0);
    obs_amqp(&r, "stopped");
    LOGI("event=stop written=%" PRIu64 " dead_lettered=%" PRIu64, r.written, r.dead_lettered);
    return 0;
}
