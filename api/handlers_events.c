/* handlers_events — what happens before an event stream starts (the
 * stream itself is sse.c's), and the worker list. */
#include "handlers_events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "log.h"
#include "names.h"
#include "rconn.h"
#include "sse.h"

/* How long a worker's heartbeat hash lives: the worker renews it every
 * 5 s with a 15 s expiry, so last_seen = now - (15 s - time to live). */
#define WORKER_TTL_MS 15000

/* --- GET /v1/jobs/{id}/events ---------------------------------------------- */

/* A whole stream of one event: the state of a finished job. Takes doc. */
static void reply_one_state(http_req *req, char *doc)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (!doc || sse_format(&buf, &len, &cap, "state", doc, strlen(doc))) {
        free(doc);
        free(buf);
        http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    free(doc);
    http_add_header(req, "Cache-Control", "no-cache");
    http_reply(req, 200, "text/event-stream", buf, len);
}

void handle_events(http_req *req)
{
    char err[512], *state = NULL;
    int attempt = 0;
    if (!req->r.job_id_valid) {
        http_reply_error(req, 400, "bad_request", "'%s' is not a job id (a lowercase UUID)", req->r.job_id);
        return;
    }
    bx_redis *r = rconn_get();
    if (!r) {
        http_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    char *doc = status_get(r, req->app->cfg->ns, req->r.job_id, &state, &attempt, err, sizeof err);
    if (!doc) {
        if (err[0]) {
            http_reply_error(req, 503, "unavailable", "%s", err);
            return;
        }
        /* Redis let it go: the record, if the job ever was */
        json_t *rec = store_get(req->app->store, req->r.job_id, err, sizeof err);
        if (rec) {
            reply_one_state(req, json_dumps(rec, JSON_COMPACT));
            json_decref(rec);
        } else if (err[0]) {
            http_reply_error(req, 503, "unavailable", "mongodb: %s", err);
        } else {
            http_reply_error(req, 404, "not_found", "no job %s", req->r.job_id);
        }
        return;
    }
    if (!state || state_is_terminal(state) || !strcmp(req->method, "HEAD")) {
        reply_one_state(req, doc);
    } else {
        sse_open(req->app->events, req, doc, strlen(doc), state, attempt);
        free(doc);
    }
    free(state);
}

/* --- GET /v1/workers ---------------------------------------------------------- */

typedef struct key_list {
    char **k;
    size_t n, cap;
} key_list;

static int keys_push(key_list *l, const char *s, size_t len)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        char **nk = realloc(l->k, nc * sizeof *nk);
        if (!nk)
            return -1;
        l->k = nk;
        l->cap = nc;
    }
    if (!(l->k[l->n] = strndup(s, len)))
        return -1;
    l->n++;
    return 0;
}

static void keys_release(key_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->k[i]);
    free(l->k);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* s with the glob characters of SCAN MATCH escaped. */
static void glob_escape(char *out, size_t n, const char *s)
{
    size_t o = 0;
    for (; *s && o + 2 < n; s++) {
        if (strchr("*?[]\\", *s))
            out[o++] = '\\';
        out[o++] = *s;
    }
    out[o] = 0;
}

/* Every key of a live worker, sorted, each once (SCAN may repeat one).
 * 0, or -1 + err. */
static int worker_keys(bx_redis *r, const char *ns, key_list *l, char *err, size_t errlen)
{
    char prefix[NAME_MAX_LEN], pat[2 * NAME_MAX_LEN], cursor[32] = "0";
    name_key(prefix, sizeof prefix, ns, "worker", "");
    glob_escape(pat, sizeof pat - 1, prefix);
    strcat(pat, "*");
    do {
        redisReply *rep = rds_cmd(r, err, errlen, "SCAN %s MATCH %s COUNT 1000", cursor, pat);
        if (!rep)
            return -1;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            snprintf(err, errlen, "redis: unexpected reply to SCAN");
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            if (keys->element[i]->type == REDIS_REPLY_STRING &&
                keys_push(l, keys->element[i]->str, keys->element[i]->len)) {
                freeReplyObject(rep);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0"));
    if (l->n)
        qsort(l->k, l->n, sizeof *l->k, cmp_str);
    size_t o = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (o && !strcmp(l->k[o - 1], l->k[i]))
            free(l->k[i]);
        else
            l->k[o++] = l->k[i];
    }
    l->n = o;
    return 0;
}

/* "a,b,c" as ["a","b","c"] (empty items left out). */
static json_t *split_list(const char *s)
{
    json_t *a = json_array();
    while (a && *s) {
        const char *c = strchr(s, ',');
        size_t n = c ? (size_t)(c - s) : strlen(s);
        if (n)
            json_array_append_new(a, json_stringn(s, n));
        s += n + (c ? 1 : 0);
    }
    return a;
}

static json_t *number_or_string(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    return *s && !*end ? json_integer(v) : json_string(s);
}

/* A worker's heartbeat hash (HGETALL: field, value, ...) as JSON, the
 * fields in the order of the contract, any other after them as strings.
 * NULL when the hash is empty (it expired since SCAN saw it). */
static json_t *worker_json(const char *key, size_t prefix_len, const redisReply *h, long long pttl_ms)
{
    static const char *const order[] = {"id", "host", "pid", "queues", "concurrency", "running", "jobs", "state"};
    if (h->type != REDIS_REPLY_ARRAY || h->elements < 2)
        return NULL;
    json_t *w = json_object();
    if (!w)
        return NULL;
    size_t norder = sizeof order / sizeof order[0];
    for (size_t pass = 0; pass <= norder; pass++) {
        for (size_t i = 0; i + 1 < h->elements; i += 2) {
            const redisReply *k = h->element[i], *v = h->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            size_t j = 0;
            while (j < norder && strcmp(k->str, order[j]))
                j++;
            if (j != pass)
                continue;
            json_t *val;
            if (!strcmp(k->str, "queues") || !strcmp(k->str, "jobs"))
                val = split_list(v->str);
            else if (!strcmp(k->str, "pid") || !strcmp(k->str, "concurrency") || !strcmp(k->str, "running"))
                val = number_or_string(v->str);
            else
                val = json_stringn(v->str, v->len); /* NULL when not UTF-8: left out */
            if (val)
                json_object_set_new(w, k->str, val);
        }
    }
    if (!json_object_get(w, "id"))
        json_object_set_new(w, "id", json_string(key + prefix_len));
    if (!json_object_get(w, "jobs"))
        json_object_set_new(w, "jobs", json_array());
    if (!json_object_get(w, "last_seen") && pttl_ms > 0 && pttl_ms <= WORKER_TTL_MS)
        event_set_time(w, "last_seen", clock_wall_ms() - (WORKER_TTL_MS - pttl_ms));
    return w;
}

static int by_id(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));
    return strcmp(x ? x : "", y ? y : "");
}

void handle_workers(http_req *req)
{
    const char *ns = req->app->cfg->ns;
    char err[512], prefix[NAME_MAX_LEN];
    key_list keys = {0};
    json_t **ws = NULL, *arr = NULL, *doc = NULL;
    redisReply **reps = NULL;
    size_t nw = 0, got = 0;
    bx_redis *r = rconn_get();
    if (!r) {
        http_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    if (worker_keys(r, ns, &keys, err, sizeof err)) {
        http_reply_error(req, 503, "unavailable", "%s", err);
        goto out;
    }
    name_key(prefix, sizeof prefix, ns, "worker", "");
    if (keys.n) {
        /* one round trip for all: HGETALL and PTTL of each */
        redisContext *c = rds_ctx(r, err, sizeof err);
        if (!c) {
            http_reply_error(req, 503, "unavailable", "%s", err);
            goto out;
        }
        if (!(reps = calloc(2 * keys.n, sizeof *reps)) || !(ws = calloc(keys.n, sizeof *ws))) {
            http_reply_error(req, 503, "unavailable", "out of memory");
            goto out;
        }
        for (size_t i = 0; i < keys.n; i++) {
            redisAppendCommand(c, "HGETALL %s", keys.k[i]);
            redisAppendCommand(c, "PTTL %s", keys.k[i]);
        }
        for (; got < 2 * keys.n; got++) {
            if (redisGetReply(c, (void **)&reps[got]) != REDIS_OK) {
                http_reply_error(req, 503, "unavailable", "redis: %s", c->errstr);
                goto out;
            }
        }
        for (size_t i = 0; i < keys.n; i++) {
            const redisReply *t = reps[2 * i + 1];
            json_t *w = worker_json(keys.k[i], strlen(prefix), reps[2 * i],
                                    t && t->type == REDIS_REPLY_INTEGER ? t->integer : -1);
            if (w)
                ws[nw++] = w;
        }
        qsort(ws, nw, sizeof *ws, by_id);
    }
    if (!(arr = json_array()) || !(doc = json_pack("{s:O}", "workers", arr))) {
        http_reply_error(req, 500, "internal", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nw; i++)
        json_array_append(arr, ws[i]);
    http_reply_json(req, 200, doc);
out:
    for (size_t i = 0; i < got; i++)
        freeReplyObject(reps[i]);
    for (size_t i = 0; i < nw; i++)
        json_decref(ws[i]);
    free(reps);
    free(ws);
    json_decref(arr);
    json_decref(doc);
    keys_release(&keys);
}
