/* handlers_jobs — submit, status, history, cancel, output.
 *
 * Submission order is what makes "never a 202 for a job that is not in
 * RabbitMQ" hold: the idempotency key (SET NX), then the "queued" status
 * in Redis, then the publish; 202 only after the confirm. When the publish
 * fails the key is taken back, so a retry with the same key makes a new
 * job, and the id gets a final "rejected" status (see undo_script). */
#include "handlers_jobs.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "audit.h"
#include "clock.h"
#include "event.h"
#include "histq.h"
#include "job.h"
#include "log.h"
#include "names.h"
#include "ratelimit.h"
#include "rconn.h"
#include "utf8.h"

#define QUERY_MAX 32
#define REJECT_LOGS_PER_S 20 /* beyond this, rejections are counted, not logged */

/* 1 when one more rejection may be logged this second. While RabbitMQ
 * is away every submission is refused in microseconds; a line for each
 * would flood syslog, so past the limit they are summed up instead. */
static int reject_log_ok(void)
{
    static atomic_long second, logged, skipped;
    long now = (long)(clock_mono_ms() / 1000);
    long was = atomic_load(&second);
    if (now != was && atomic_compare_exchange_strong(&second, &was, now)) {
        long n = atomic_exchange(&skipped, 0);
        atomic_store(&logged, 0);
        if (n)
            LOGW("event=job_rejected_unlogged count=%ld msg=\"more rejections than %d a second\"", n,
                 REJECT_LOGS_PER_S);
    }
    if (atomic_fetch_add(&logged, 1) < REJECT_LOGS_PER_S)
        return 1;
    atomic_fetch_add(&skipped, 1);
    return 0;
}

/* Marks a job that was answered 503 "rejected" (final, kept for the
 * status TTL) where its status is missing or still the first "queued",
 * and deletes the idempotency key (KEYS[2]) if it still names this job.
 * A status a worker moved on is left alone. Not a DEL: the "queued" write
 * this undoes may still be on its way, sent by the publisher on another
 * connection to a Redis that stalled; it runs after this script once
 * Redis resumes, and a final status is what status_put never overwrites
 * within an attempt. ARGV: job id, the "rejected" doc ("" when no status
 * was ever sent: then only the key goes), ttl. */
static const char undo_script[] =
    "local st = redis.call('HMGET', KEYS[1], 'state', 'attempt')\n"
    "if ARGV[2] ~= '' and (not st[1] or (st[1] == 'queued' and st[2] == '1')) then\n"
    "  redis.call('HSET', KEYS[1], 'state', 'rejected', 'attempt', '1', 'doc', ARGV[2], 'terminal', '1')\n"
    "  redis.call('PUBLISH', KEYS[1], 'rejected')\n"
    "  if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end\n"
    "end\n"
    "if KEYS[2] and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end\n"
    "return 1\n";

static bx_redis *redis_or_503(http_req *req)
{
    bx_redis *r = rconn_get();
    if (!r)
        http_reply_error(req, 503, "unavailable", "out of memory");
    return r;
}

static int traceparent_ok(const char *s)
{
    /* version-traceid-parentid-flags, all lowercase hex: 2-32-16-2 */
    static const int len[] = {2, 32, 16, 2};
    for (int part = 0; part < 4; part++) {
        for (int i = 0; i < len[part]; i++, s++)
            if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
                return 0;
        if (part < 3 && *s++ != '-')
            return 0;
    }
    return *s == 0;
}

/* Answers a doc kept as text (req->doc), giving it to the reply. */
static void reply_doc(http_req *req, unsigned status)
{
    char *d = req->doc;
    size_t n = req->doc_len ? req->doc_len : (d ? strlen(d) : 0);
    req->doc = NULL;
    req->doc_len = 0;
    http_reply(req, status, "application/json", d, n);
}

/* --- POST /v1/jobs ------------------------------------------------------------ */

/* The final status of a job answered 503: its "queued" doc (req->doc)
 * turned "rejected", with why. New string, or NULL. */
static char *rejected_doc(http_req *req, const char *why)
{
    json_t *d = req->doc ? json_loads(req->doc, 0, NULL) : NULL;
    if (!json_is_object(d)) {
        json_decref(d);
        d = json_pack("{s:s}", "id", req->job_id);
    }
    if (!d)
        return NULL;
    json_object_set_new(d, "state", json_string(ST_REJECTED));
    json_object_set_new(d, "reason", json_string(why));
    event_set_time(d, "finished_at", clock_wall_ms());
    char *s = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    return s;
}

/* Takes back a submission that was not accepted: the idempotency key,
 * and, when its "queued" status may have been sent (status_sent), marks
 * the job rejected for why. */
static void undo_submit(http_req *req, int status_sent, const char *why)
{
    char key[NAME_MAX_LEN], err[256], ttl[16];
    name_key(key, sizeof key, req->app->cfg->ns, "job", req->job_id);
    snprintf(ttl, sizeof ttl, "%d", req->app->cfg->status_ttl_s);
    char *doc = status_sent ? rejected_doc(req, why) : NULL;
    const char *argv[8];
    size_t len[8];
    int argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = undo_script;
    argv[argc++] = req->idem_key ? "2" : "1";
    argv[argc++] = key;
    if (req->idem_key)
        argv[argc++] = req->idem_key;
    argv[argc++] = req->job_id;
    argv[argc++] = doc ? doc : "";
    argv[argc++] = ttl;
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    bx_redis *r = rconn_get();
    redisReply *rep = r ? rds_cmdargv(r, err, sizeof err, argc, argv, len) : NULL;
    if (!rep)
        LOGE("event=submit_undo_failed id=%s err=%s", req->job_id, log_q(r ? err : "out of memory"));
    else if (status_sent && !doc)
        LOGE("event=submit_undo_failed id=%s err=\"out of memory\"", req->job_id);
    freeReplyObject(rep);
    free(doc);
}

static void submit_done(http_req *req)
{
    api_app *app = req->app;
    if (req->pub_ok) {
        char addr[AUDIT_ADDR_MAX];
        audit_addr(req, addr, sizeof addr);
        atomic_fetch_add(&app->jobs_submitted, 1);
        LOGI("event=job_submitted audit=submit outcome=accepted status=202 token=%s request_id=%s addr=%s "
             "id=%s queue=%s ms=%lld",
             log_q(req->token_name), log_q(req->request_id), addr, req->job_id, log_q(req->queue),
             (long long)(clock_mono_ms() - req->t0_ms));
        char loc[64];
        snprintf(loc, sizeof loc, "/v1/jobs/%s", req->job_id);
        http_add_header(req, "Location", loc);
        reply_doc(req, 202);
        return;
    }
    char why[300];
    snprintf(why, sizeof why, "not queued (answered 503): %s", req->pub_err);
    undo_submit(req, 1, why);
    atomic_fetch_add(&app->jobs_unavailable, 1);
    if (reject_log_ok())
        LOGW("event=job_rejected id=%s queue=%s request_id=%s reason=%s", req->job_id, req->queue,
             log_q(req->request_id), log_q(req->pub_err));
    http_add_header(req, "Retry-After", "1");
    http_reply_error(req, 503, "unavailable", "the job could not be queued: %s", req->pub_err);
}

/* The idempotency key is taken: answer with the job it names. */
static void submit_replay(http_req *req, bx_redis *r, const char *key)
{
    char err[512], id[ID_LEN + 8] = "";
    redisReply *rep = rds_cmd(r, err, sizeof err, "GET %s", key);
    if (!rep) {
        http_reply_error(req, 503, "unavailable", "%s", err);
        return;
    }
    if (rep->type == REDIS_REPLY_STRING)
        snprintf(id, sizeof id, "%s", rep->str);
    freeReplyObject(rep);
    if (!id_valid(id)) {
        http_reply_error(req, 409, "conflict", "the job with this idempotency_key is being submitted; retry");
        return;
    }
    char *doc = status_get(r, req->app->cfg->ns, id, NULL, NULL, err, sizeof err);
    if (doc) {
        char addr[AUDIT_ADDR_MAX];
        audit_addr(req, addr, sizeof addr);
        LOGI("event=job_idempotent_replay audit=submit outcome=replayed status=200 token=%s request_id=%s "
             "addr=%s id=%s",
             log_q(req->token_name), log_q(req->request_id), addr, id);
        http_add_header(req, "Idempotent-Replayed", "true");
        http_reply(req, 200, "application/json", doc, strlen(doc));
        return;
    }
    if (err[0]) {
        http_reply_error(req, 503, "unavailable", "%s", err);
        return;
    }
    json_t *rec = store_get(req->app->store, id, err, sizeof err);
    if (rec) {
        http_add_header(req, "Idempotent-Replayed", "true");
        http_reply_json(req, 200, rec);
        json_decref(rec);
        return;
    }
    if (err[0]) {
        http_reply_error(req, 503, "unavailable", "mongodb: %s", err);
        return;
    }
    /* the first submission has the key but has not written its status yet */
    http_add_header(req, "Retry-After", "1");
    http_reply_error(req, 409, "conflict", "the job with this idempotency_key is being submitted; retry");
}

void handle_submit(http_req *req)
{
    api_app *app = req->app;
    const bx_cfg *cfg = app->cfg;
    bx_job job;
    char err[512], key[NAME_MAX_LEN];
    json_t *ev = NULL;
    auth_rate rate;
    if (job_from_request(&job, req->body ? req->body : "", req->body_len, err, sizeof err)) {
        atomic_fetch_add(&app->jobs_rejected, 1);
        audit_refused(req, 400, err);
        http_reply_error(req, 400, "bad_request", "%s", err);
        return;
    }
    snprintf(req->queue, sizeof req->queue, "%s", job.queue);
    if (access_submit(req, &job, &rate)) {
        atomic_fetch_add(&app->jobs_rejected, 1);
        goto out;
    }
    const char *tp = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "traceparent");
    if (tp && traceparent_ok(tp)) {
        json_object_set_new(job.doc, "traceparent", json_string(tp));
    } else {
        /* a trace starts here */
        char gen[ID_TRACEPARENT_LEN];
        id_traceparent(gen);
        json_object_set_new(job.doc, "traceparent", json_string(gen));
    }
    id_new(req->job_id);
    int64_t now = clock_wall_ms();
    job_assign(&job, req->job_id, now, req->request_id);

    bx_redis *r = redis_or_503(req);
    if (!r)
        goto out;
    if (job.idempotency_key)
        name_key(key, sizeof key, cfg->ns, "idem", job.idempotency_key);
    if (rate.rate_per_s > 0) {
        /* one round trip: the token's bucket and the idempotency key */
        long retry_ms;
        ratelimit_result rl = ratelimit_take(r, cfg->ns, req->token_name, &rate,
                                             job.idempotency_key ? key : NULL, req->job_id,
                                             API_IDEM_TTL_S, &retry_ms, err, sizeof err);
        if (rl == RL_ERROR) {
            http_reply_error(req, 503, "unavailable", "%s", err);
            goto out;
        }
        if (rl == RL_LIMITED) {
            atomic_fetch_add(&app->jobs_rejected, 1);
            access_rate_limited(req, &rate, retry_ms);
            goto out;
        }
        if (rl == RL_REPLAY) {
            submit_replay(req, r, key);
            goto out;
        }
        if (job.idempotency_key && !(req->idem_key = strdup(key))) {
            http_reply_error(req, 503, "unavailable", "out of memory");
            goto out;
        }
    } else if (job.idempotency_key) {
        redisReply *rep = rds_cmd(r, err, sizeof err, "SET %s %s NX EX %d", key, req->job_id, API_IDEM_TTL_S);
        if (!rep) {
            http_reply_error(req, 503, "unavailable", "%s", err);
            goto out;
        }
        int taken = rep->type == REDIS_REPLY_NIL;
        freeReplyObject(rep);
        if (taken) {
            submit_replay(req, r, key);
            goto out;
        }
        if (!(req->idem_key = strdup(key))) {
            http_reply_error(req, 503, "unavailable", "out of memory");
            goto out;
        }
    }
    /* after the idempotency key, so that a retry of a job already queued
     * is answered even while RabbitMQ is away or the queue is full */
    long depth = cfg->max_queue_depth > 0 ? publisher_queue_depth(app->pub, job.queue) : -1;
    if (depth >= 0 && depth >= cfg->max_queue_depth) {
        if (req->idem_key)
            undo_submit(req, 0, NULL);
        atomic_fetch_add(&app->jobs_rejected, 1);
        char why[200];
        snprintf(why, sizeof why, "queue full: %ld jobs (limit %d)", depth, cfg->max_queue_depth);
        audit_refused(req, 429, why);
        http_add_header(req, "Retry-After", "5");
        http_reply_error(req, 429, "too_many_requests", "queue '%s' holds %ld jobs (limit %d)",
                         job.queue, depth, cfg->max_queue_depth);
        goto out;
    }
    if (!publisher_connected(app->pub)) {
        /* fail fast while RabbitMQ is away: no status is written */
        if (req->idem_key)
            undo_submit(req, 0, NULL);
        atomic_fetch_add(&app->jobs_unavailable, 1);
        if (reject_log_ok())
            LOGW("event=job_rejected queue=%s request_id=%s reason=\"rabbitmq is not connected\"",
                 log_q(job.queue), log_q(req->request_id));
        http_add_header(req, "Retry-After", "1");
        http_reply_error(req, 503, "unavailable", "the job could not be queued: rabbitmq is not connected");
        goto out;
    }
    ev = event_new(&job, ST_QUEUED);
    if (ev)
        event_set_time(ev, "queued_at", now);
    req->doc = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    if (!req->doc) {
        snprintf(req->pub_err, sizeof req->pub_err, "out of memory");
        submit_done(req);
        goto out;
    }
    req->doc_len = strlen(req->doc);
    size_t blen;
    char *body = job_encode(&job, &blen);
    /* the publisher writes the status first, batched with others' */
    pub_msg *m = body ? pub_msg_new(PUB_JOB, job.queue, body, blen, job.priority, req->job_id,
                                    req->request_id, job.traceparent)
                      : NULL;
    if (m && pub_msg_set_status(m, ST_QUEUED, 1, req->doc, req->doc_len)) {
        pub_msg_free(m);
        m = NULL;
    }
    http_wait(req, m, submit_done);
out:
    json_decref(ev);
    job_release(&job);
}

/* --- GET /v1/jobs/{id} ---------------------------------------------------------- */

static int check_id(http_req *req)
{
    if (req->r.job_id_valid)
        return 0;
    http_reply_error(req, 400, "bad_request", "'%s' is not a job id (a lowercase UUID)",
                     req->r.job_id);
    return -1;
}

/* The record in MongoDB when Redis has none. Replies 404/503 itself and
 * returns NULL then. redis_err: why Redis failed, or "". */
static json_t *from_store(http_req *req, const char *redis_err)
{
    char err[512];
    json_t *rec = store_get(req->app->store, req->r.job_id, err, sizeof err);
    if (rec)
        return rec;
    if (err[0])
        http_reply_error(req, 503, "unavailable", "mongodb: %s", err);
    else if (redis_err[0])
        http_reply_error(req, 503, "unavailable", "%s", redis_err);
    else
        http_reply_error(req, 404, "not_found", "no job %s", req->r.job_id);
    return NULL;
}

void handle_get(http_req *req)
{
    char err[512];
    if (check_id(req))
        return;
    bx_redis *r = redis_or_503(req);
    if (!r)
        return;
    char *doc = status_get(r, req->app->cfg->ns, req->r.job_id, NULL, NULL, err, sizeof err);
    if (doc) {
        http_reply(req, 200, "application/json", doc, strlen(doc));
        return;
    }
    json_t *rec = from_store(req, err);
    if (rec) {
        http_reply_json(req, 200, rec);
        json_decref(rec);
    }
}

/* --- GET /v1/jobs ------------------------------------------------------------------ */

struct kv_list {
    histq_kv kv[QUERY_MAX];
    size_t n;
    int overflow;
};

static void collect(void *ud, const char *k, const char *v)
{
    struct kv_list *l = ud;
    if (l->n == QUERY_MAX) {
        l->overflow = 1;
        return;
    }
    l->kv[l->n].k = k;
    l->kv[l->n++].v = v;
}

void handle_list(http_req *req)
{
    struct kv_list l = {.n = 0};
    histq h;
    char err[512];
    http_query_each(req, collect, &l);
    if (l.overflow) {
        http_reply_error(req, 400, "bad_request", "too many query parameters");
        return;
    }
    if (histq_parse(l.kv, l.n, &h, err, sizeof err)) {
        http_reply_error(req, 400, "bad_request", "%s", err);
        return;
    }
    json_t *page = store_history(req->app->store, &h.q, err, sizeof err);
    if (!page) {
        http_reply_error(req, 503, "unavailable", "mongodb: %s", err);
        return;
    }
    http_reply_json(req, 200, page);
    json_decref(page);
}

/* --- DELETE /v1/jobs/{id} ------------------------------------------------------------- */

static void cancel_done(http_req *req)
{
    if (!req->pub_ok)
        LOGW("event=cancel_event_unpublished id=%s err=%s", req->r.job_id, log_q(req->pub_err));
    char addr[AUDIT_ADDR_MAX];
    audit_addr(req, addr, sizeof addr);
    atomic_fetch_add(&req->app->jobs_cancelled, 1);
    LOGI("event=job_cancelled audit=cancel outcome=cancelled status=202 token=%s request_id=%s addr=%s "
         "id=%s was=queued",
         log_q(req->token_name), log_q(req->request_id), addr, req->r.job_id);
    reply_doc(req, 202);
}

void handle_cancel(http_req *req)
{
    api_app *app = req->app;
    const bx_cfg *cfg = app->cfg;
    char err[512], key[NAME_MAX_LEN], *state = NULL;
    int attempt = 0;
    json_t *ev = NULL;
    if (check_id(req))
        return;
    bx_redis *r = redis_or_503(req);
    if (!r)
        return;
    char *doc = status_get(r, cfg->ns, req->r.job_id, &state, &attempt, err, sizeof err);
    if (!doc) {
        if (err[0]) {
            http_reply_error(req, 503, "unavailable", "%s", err);
            return;
        }
        json_t *rec = from_store(req, "");
        if (rec) {
            http_reply_error(req, 409, "conflict", "job %s is already %s", req->r.job_id,
                             json_string_value(json_object_get(rec, "state"))
                                 ? json_string_value(json_object_get(rec, "state"))
                                 : "finished");
            json_decref(rec);
        }
        return;
    }
    /* lost is final to a client but not to the system: its message may
     * come back and run. Cancelled, it never will. */
    int lost = state && !strcmp(state, ST_LOST);
    if (!state || (state_is_terminal(state) && !lost)) {
        http_reply_error(req, 409, "conflict", "job %s is already %s", req->r.job_id,
                         state ? state : "finished");
        goto out;
    }
    name_key(key, sizeof key, cfg->ns, "cancel", req->r.job_id);
    redisReply *rep = rds_cmd(r, err, sizeof err, "SET %s 1 EX %d", key, API_CANCEL_TTL_S);
    if (!rep) {
        http_reply_error(req, 503, "unavailable", "%s", err);
        goto out;
    }
    freeReplyObject(rep);
    if (strcmp(state, ST_QUEUED) && !lost) {
        /* running: the worker sees the cancel key and kills the job's tree */
        char addr[AUDIT_ADDR_MAX];
        audit_addr(req, addr, sizeof addr);
        LOGI("event=job_cancel_requested audit=cancel outcome=cancelled status=202 token=%s request_id=%s "
             "addr=%s id=%s was=%s",
             log_q(req->token_name), log_q(req->request_id), addr, req->r.job_id, state);
        http_reply(req, 202, "application/json", doc, strlen(doc));
        doc = NULL;
        goto out;
    }
    ev = json_loads(doc, 0, NULL);
    if (!ev) {
        http_reply_error(req, 500, "internal", "the status of %s is not JSON", req->r.job_id);
        goto out;
    }
    json_object_set_new(ev, "state", json_string(ST_CANCELLED));
    event_set_time(ev, "finished_at", clock_wall_ms());
    char *cdoc = json_dumps(ev, JSON_COMPACT);
    if (!cdoc) {
        http_reply_error(req, 500, "internal", "out of memory");
        goto out;
    }
    int rc = status_put(r, cfg->ns, req->r.job_id, ST_CANCELLED, attempt, cdoc, strlen(cdoc),
                        cfg->status_ttl_s, err, sizeof err);
    if (rc <= 0) {
        free(cdoc);
        if (rc < 0) {
            http_reply_error(req, 503, "unavailable", "%s", err);
            goto out;
        }
        /* a worker moved it on meanwhile: answer with what it is now */
        free(doc);
        doc = status_get(r, cfg->ns, req->r.job_id, NULL, NULL, err, sizeof err);
        if (doc) {
            http_reply(req, 202, "application/json", doc, strlen(doc));
            doc = NULL;
        } else {
            http_reply_error(req, 503, "unavailable", "%s", err[0] ? err : "status vanished");
        }
        goto out;
    }
    /* the job will never run: the recorder learns it from this event */
    req->doc = cdoc;
    req->doc_len = strlen(cdoc);
    char *body = strdup(cdoc);
    pub_msg *m = body ? pub_msg_new(PUB_EVENT, NULL, body, req->doc_len, 0, req->r.job_id,
                                    req->request_id,
                                    json_string_value(json_object_get(ev, "traceparent")))
                      : NULL;
    http_wait(req, m, cancel_done);
out:
    json_decref(ev);
    free(doc);
    free(state);
}

/* --- GET /v1/jobs/{id}/output ------------------------------------------------------------ */

static void reply_output(http_req *req, json_t *doc, const char *stream)
{
    char key[64];
    json_t *text = json_object_get(doc, stream);
    snprintf(key, sizeof key, "%s_encoding", stream);
    const char *enc = json_string_value(json_object_get(doc, key));
    snprintf(key, sizeof key, "%s_truncated", stream);
    http_add_header(req, "X-Output-Truncated", json_is_true(json_object_get(doc, key)) ? "true" : "false");
    const char *st = json_string_value(json_object_get(doc, "state"));
    if (st)
        http_add_header(req, "X-Job-State", st);
    char *out = NULL;
    size_t n = 0;
    if (json_is_string(text)) {
        if (enc && !strcmp(enc, "base64")) {
            out = base64_decode(json_string_value(text), json_string_length(text), &n);
            if (!out) {
                http_reply_error(req, 500, "internal", "the stored %s is not valid base64", stream);
                return;
            }
        } else {
            n = json_string_length(text);
            out = malloc(n + 1);
            if (!out) {
                http_reply_error(req, 500, "internal", "out of memory");
                return;
            }
            memcpy(out, json_string_value(text), n);
        }
    }
    http_reply(req, 200, "application/octet-stream", out, n);
}

void handle_output(http_req *req)
{
    const bx_cfg *cfg = req->app->cfg;
    char err[512], *state = NULL;
    if (check_id(req))
        return;
    const char *stream = http_query(req, "stream");
    if (!stream)
        stream = "stdout";
    if (strcmp(stream, "stdout") && strcmp(stream, "stderr")) {
        http_reply_error(req, 400, "bad_request", "query parameter 'stream' must be stdout or stderr");
        return;
    }
    bx_redis *r = redis_or_503(req);
    if (!r)
        return;
    char *doc = status_get(r, cfg->ns, req->r.job_id, &state, NULL, err, sizeof err);
    if (doc && state && !strcmp(state, ST_RUNNING)) {
        /* what the worker has captured so far */
        char key[NAME_MAX_LEN], rest[NAME_MAX_LEN];
        snprintf(rest, sizeof rest, "%s:%s", req->r.job_id, stream);
        name_key(key, sizeof key, cfg->ns, "out", rest);
        redisReply *rep = rds_cmd(r, err, sizeof err, "GET %s", key);
        if (!rep) {
            http_reply_error(req, 503, "unavailable", "%s", err);
        } else {
            char *out = NULL;
            size_t n = 0;
            if (rep->type == REDIS_REPLY_STRING && (out = malloc(rep->len + 1))) {
                memcpy(out, rep->str, rep->len);
                n = rep->len;
            }
            freeReplyObject(rep);
            http_add_header(req, "X-Job-State", ST_RUNNING);
            http_reply(req, 200, "application/octet-stream", out, n);
        }
        goto out;
    }
    json_t *j = doc ? json_loads(doc, 0, NULL) : from_store(req, err);
    if (j) {
        reply_output(req, j, stream);
        json_decref(j);
    } else if (doc) {
        http_reply_error(req, 500, "internal", "the status of %s is not JSON", req->r.job_id);
    }
out:
    free(doc);
    free(state);
}
