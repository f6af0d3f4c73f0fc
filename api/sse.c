/* sse — the hub thread and the streams it feeds. See sse.h.
 *
 * A stream is shared by two sides: the hub (which builds events) and
 * MHD's threads (which send them). Its mutex guards only the queued
 * bytes and three flags; everything else is the hub's alone. It lives as
 * long as either side holds it: the hub's list and MHD's response each
 * own a reference, and whoever lets go last frees it. */
#include "sse.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "id.h"
#include "log.h"
#include "names.h"
#include "rds.h"
#include "sseout.h"
#include "ssesub.h"
#include "utf8.h"

typedef struct sse_stream sse_stream;

struct sse_stream {
    sse_stream *next; /* the hub's list, under hub->mu */
    atomic_int refs;  /* the hub's list and MHD's response */
    atomic_int gone;  /* MHD destroyed the response: the stream is over */
    /* shared with MHD's threads, under mu */
    pthread_mutex_t mu;
    char *buf; /* bytes queued for the client: [off, len) */
    size_t off, len, cap;
    int suspended; /* the reader suspended the connection; only the hub resumes it */
    int ended;     /* no more events: the end of the stream once buf is sent */
    int failed;    /* the client left, or no memory: close at once */
    struct MHD_Connection *conn; /* valid while the response lives */
    int fd;                      /* its socket; polled only while suspended */
    /* the hub's alone */
    char id[ID_LEN];
    char *state; /* the last state sent */
    int attempt;
    sseout out[2]; /* stdout, stderr */
    int done;      /* the last event is built: no more polling */
    int poke;      /* its state changed (a notification): poll it now */
    unsigned sub_epoch; /* subscribed to its changes on this connection (ssesub) */
    int end_sent;  /* ... and handed over with the end */
    int oom;
    int64_t last_ms; /* monotonic: when bytes were last queued */
    char *hbuf;      /* events built this tick, handed over at its end */
    size_t hlen, hcap;
};

struct sse_hub {
    const bx_cfg *cfg;
    bx_store *store;
    bx_redis *redis; /* the hub thread's own */
    ssesub *sub;     /* notifications of state changes; the hub thread's own */
    int wake_fd;     /* eventfd: a stream opened, drain or stop (wake) */
    char sha[48];    /* of the live script once loaded, else "" */
    pthread_t thread;
    int started;
    int failing; /* Redis fails: logged once until it answers again */
    atomic_long nstreams;
    pthread_mutex_t mu; /* what follows */
    sse_stream *head;
    int draining, stopping;
};

static const char *const stream_names[2] = {"stdout", "stderr"};

/* One look at a job: its state and attempt, and per output stream what
 * changed since the look before (ARGV: the length seen, its last bytes,
 * and "1" when any change must come back whole). Returns state, attempt,
 * then per stream: length now, mode (sseout.h), from, data. One script,
 * so that the state and the output are of the same instant. */
static const char live_script[] =
    "local st = redis.call('HMGET', KEYS[1], 'state', 'attempt')\n"
    "local res = {st[1] or '', st[2] or ''}\n"
    "for i = 0, 1 do\n"
    "  local key = KEYS[2 + i]\n"
    "  local prev = tonumber(ARGV[1 + 3 * i])\n"
    "  local tail = ARGV[2 + 3 * i]\n"
    "  local whole = ARGV[3 + 3 * i] == '1'\n"
    "  local tl = string.len(tail)\n"
    "  local n = redis.call('STRLEN', key)\n"
    "  local mode, from = 0, n\n"
    "  if n == prev and (tl == 0 or redis.call('GETRANGE', key, n - tl, n - 1) == tail) then\n"
    "    mode = 0\n"
    "  elseif whole then\n"
    "    mode, from = 2, 0\n"
    "  elseif n > prev and (tl == 0 or redis.call('GETRANGE', key, prev - tl, prev - 1) == tail) then\n"
    "    mode, from = 1, prev\n"
    "  else\n"
    "    mode = 2\n"
    "    if n < prev then from = 0 else from = math.floor(n / 2) end\n"
    "  end\n"
    "  local data = ''\n"
    "  if mode ~= 0 and n > from then data = redis.call('GETRANGE', key, from, n - 1) end\n"
    "  res[#res + 1] = n\n"
    "  res[#res + 1] = mode\n"
    "  res[#res + 1] = from\n"
    "  res[#res + 1] = data\n"
    "end\n"
    "return res\n";

#define LIVE_REPLY_LEN 10

/* --- formatting -------------------------------------------------------------- */

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 1024;
    while (nc < need)
        nc *= 2;
    char *nb = realloc(*buf, nc);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = nc;
    return 0;
}

int sse_format(char **buf, size_t *len, size_t *cap, const char *name, const char *data, size_t n)
{
    size_t lines = 1;
    for (size_t i = 0; i < n; i++)
        lines += data[i] == '\n';
    size_t need = *len + 7 + strlen(name) + 1 + lines * 7 + n + 1;
    if (grow(buf, cap, need))
        return -1;
    char *p = *buf + *len;
    p += sprintf(p, "event: %s\n", name);
    const char *s = data, *end = data + n;
    for (;;) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t k = nl ? (size_t)(nl - s) : (size_t)(end - s);
        memcpy(p, "data: ", 6);
        memcpy(p + 6, s, k);
        p += 6 + k;
        *p++ = '\n';
        if (!nl)
            break;
        s = nl + 1;
    }
    *p++ = '\n';
    *len = (size_t)(p - *buf);
    return 0;
}

static void hub_event(sse_stream *s, const char *name, const char *data, size_t n)
{
    if (!s->oom && sse_format(&s->hbuf, &s->hlen, &s->hcap, name, data, n))
        s->oom = 1;
}

static void hub_event_text(sse_stream *s, const char *name, const char *text)
{
    hub_event(s, name, text, strlen(text));
}

static void hub_comment(sse_stream *s, const char *text)
{
    size_t n = strlen(text);
    if (s->oom || grow(&s->hbuf, &s->hcap, s->hlen + n)) {
        s->oom = 1;
        return;
    }
    memcpy(s->hbuf + s->hlen, text, n);
    s->hlen += n;
}

struct emit_ctx {
    sse_stream *s;
    const char *stream;
};

/* sseout's callback: one output event. Text that JSON can carry as is
 * goes as is; anything else as base64 of the exact bytes. */
static void emit_output(void *ud, uint64_t offset, const char *data, size_t n, int truncated)
{
    struct emit_ctx *e = ud;
    json_t *o = json_object();
    char *b64 = NULL;
    int bin = !utf8_valid_nonul(data, n);
    if (bin)
        b64 = base64_encode(data, n, NULL);
    char *text = NULL;
    if (o && (!bin || b64)) {
        json_object_set_new(o, "stream", json_string(e->stream));
        json_object_set_new(o, "offset", json_integer((json_int_t)offset));
        json_object_set_new(o, "data", bin ? json_string_nocheck(b64) : json_stringn_nocheck(data, n));
        if (bin)
            json_object_set_new(o, "encoding", json_string("base64"));
        if (truncated)
            json_object_set_new(o, "truncated", json_true());
        json_object_set_new(o, "attempt", json_integer(e->s->attempt));
        text = json_dumps(o, JSON_COMPACT);
    }
    if (text)
        hub_event(e->s, "output", text, strlen(text));
    else
        e->s->oom = 1;
    free(text);
    free(b64);
    json_decref(o);
}

/* --- the stream, MHD's side ---------------------------------------------------- */

static void stream_unref(sse_stream *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s->buf);
    free(s->hbuf);
    free(s->state);
    free(s);
}

/* MHD's content reader. With nothing queued it suspends the connection
 * and returns 0; the hub resumes it. The suspend happens under mu, and the
 * hub resumes only a stream it sees suspended, so a resume never comes
 * before its suspend. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    sse_stream *s = cls;
    ssize_t n;
    pthread_mutex_lock(&s->mu);
    if (s->failed) {
        n = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (s->off < s->len) {
        size_t k = s->len - s->off < max ? s->len - s->off : max;
        memcpy(out, s->buf + s->off, k);
        s->off += k;
        if (s->off == s->len)
            s->off = s->len = 0;
        n = (ssize_t)k;
    } else if (s->ended) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        s->suspended = 1;
        MHD_suspend_connection(s->conn);
        n = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* MHD is done with the response (the request completed, or it was
 * never queued). */
static void stream_free(void *cls)
{
    sse_stream *s = cls;
    atomic_store(&s->gone, 1);
    stream_unref(s);
}

/* --- the stream, the hub's side ---------------------------------------------- */

/* Hands the events built this tick to MHD's side (ending the stream when
 * end), and resumes the connection if it waits for them. */
static void stream_flush(sse_stream *s, int end, int64_t now)
{
    int resume = 0;
    if (s->oom) {
        end = 1;
        s->done = 1;
    }
    if (!s->hlen && !end)
        return;
    pthread_mutex_lock(&s->mu);
    if (s->hlen) {
        if (s->off == s->len) {
            /* nothing waits: swap the buffers instead of copying */
            char *b = s->buf;
            size_t c = s->cap;
            s->buf = s->hbuf;
            s->cap = s->hcap;
            s->off = 0;
            s->len = s->hlen;
            s->hbuf = b;
            s->hcap = c;
        } else {
            if (s->off) {
                memmove(s->buf, s->buf + s->off, s->len - s->off);
                s->len -= s->off;
                s->off = 0;
            }
            if (grow(&s->buf, &s->cap, s->len + s->hlen))
                s->failed = 1;
            else
                memcpy(s->buf + s->len, s->hbuf, s->hlen), s->len += s->hlen;
        }
    }
    if (s->oom)
        s->failed = 1;
    if (end)
        s->ended = 1;
    if (s->suspended) {
        s->suspended = 0;
        resume = 1;
    }
    pthread_mutex_unlock(&s->mu);
    s->hlen = 0;
    s->last_ms = now;
    if (end)
        s->end_sent = 1;
    if (resume)
        MHD_resume_connection(s->conn);
}

static size_t stream_pending(sse_stream *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->len - s->off;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* The output of a finished job, from its status doc, through sseout_final. */
static void output_final(sse_stream *s, json_t *doc, int i)
{
    char key[32];
    const char *name = stream_names[i];
    json_t *t = json_object_get(doc, name);
    if (!json_is_string(t))
        return;
    const char *text = json_string_value(t);
    size_t len = json_string_length(t);
    char *raw = NULL;
    snprintf(key, sizeof key, "%s_encoding", name);
    const char *enc = json_string_value(json_object_get(doc, key));
    if (enc && !strcmp(enc, "base64")) {
        if (!(raw = base64_decode(text, len, &len)))
            return; /* not base64 after all: the state event still has it */
        text = raw;
    }
    snprintf(key, sizeof key, "%s_bytes", name);
    json_t *b = json_object_get(doc, key);
    uint64_t total = json_is_integer(b) && json_integer_value(b) >= 0 ? (uint64_t)json_integer_value(b) : len;
    snprintf(key, sizeof key, "%s_truncated", name);
    int truncated = json_is_true(json_object_get(doc, key));
    snprintf(key, sizeof key, "%s_cut_at", name);
    json_t *c = json_object_get(doc, key);
    long cut = truncated && json_is_integer(c) ? (long)json_integer_value(c) : -1;
    struct emit_ctx e = {s, name};
    sseout_final(&s->out[i], text, len, total, cut, emit_output, &e);
    free(raw);
}

/* The job is over: the rest of its output, then its last state. */
static void finish(sse_stream *s, json_t *doc, const char *text, size_t n)
{
    json_t *a = json_object_get(doc, "attempt");
    if (json_is_integer(a) && (int)json_integer_value(a) != s->attempt) {
        sseout_restart(&s->out[0]);
        sseout_restart(&s->out[1]);
        s->attempt = (int)json_integer_value(a);
    }
    for (int i = 0; i < 2; i++)
        output_final(s, doc, i);
    hub_event(s, "state", text, n);
    s->done = 1;
}

static void redis_trouble(sse_hub *h, const char *err)
{
    if (!h->failing)
        LOGW("event=events_redis_failed err=%s msg=\"event streams wait\"", log_q(err));
    h->failing = 1;
}

/* Redis no longer has the job: it ended and its status expired. The
 * record in MongoDB, or an error event, ends the stream. */
static void finish_from_store(sse_hub *h, sse_stream *s)
{
    char err[512];
    json_t *rec = store_get(h->store, s->id, err, sizeof err);
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    if (text) {
        finish(s, rec, text, strlen(text));
    } else if (rec || err[0]) {
        LOGW("event=events_store_failed id=%s err=%s", s->id, log_q(rec ? "out of memory" : err));
        /* no retry: the client may reconnect and be answered from MongoDB */
        hub_event_text(s, "error", "{\"error\":{\"code\":\"unavailable\",\"message\":\"the job's record cannot be read now\"}}");
        s->done = 1;
    } else {
        hub_event_text(s, "error", "{\"error\":{\"code\":\"not_found\",\"message\":\"the job is gone\"}}");
        s->done = 1;
    }
    free(text);
    json_decref(rec);
}

/* A retry began: the rest of the previous attempt's output (from its
 * result, which the new status keeps in "attempts"), then output starts
 * again at 0. */
static void new_attempt(sse_stream *s, const char *doc, int attempt)
{
    json_t *j = json_loads(doc, 0, NULL);
    json_t *prev, *all = json_object_get(j, "attempts");
    size_t i;
    json_array_foreach(all, i, prev) {
        json_t *a = json_object_get(prev, "attempt");
        if (json_is_integer(a) && json_integer_value(a) == s->attempt) {
            output_final(s, prev, 0);
            output_final(s, prev, 1);
        }
    }
    json_decref(j);
    sseout_restart(&s->out[0]);
    sseout_restart(&s->out[1]);
    s->attempt = attempt;
}

/* The state changed: the new status, or the end. */
static void state_changed(sse_hub *h, sse_stream *s)
{
    char err[512], *state = NULL;
    int attempt = 0;
    char *doc = status_get(h->redis, h->cfg->ns, s->id, &state, &attempt, err, sizeof err);
    if (!doc) {
        if (err[0])
            redis_trouble(h, err); /* asked again next tick */
        else
            finish_from_store(h, s);
        free(state);
        return;
    }
    if (attempt != s->attempt)
        new_attempt(s, doc, attempt);
    if (state) {
        free(s->state);
        s->state = state;
        state = NULL;
    }
    size_t n = strlen(doc);
    if (s->state && state_is_terminal(s->state)) {
        json_t *j = json_loadb(doc, n, 0, NULL);
        if (j) {
            finish(s, j, doc, n);
            json_decref(j);
        } else {
            hub_event(s, "state", doc, n);
            s->done = 1;
        }
    } else {
        hub_event(s, "state", doc, n);
    }
    free(doc);
    free(state);
}

static const char *str_of(const redisReply *e, size_t *len)
{
    if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) {
        *len = e->len;
        return e->str;
    }
    *len = 0;
    return "";
}

/* One stream's answer to the live script. */
static void on_live(sse_hub *h, sse_stream *s, const redisReply *rep)
{
    if (rep->type == REDIS_REPLY_ERROR) {
        if (!strncmp(rep->str, "NOSCRIPT", 8))
            h->sha[0] = 0; /* Redis restarted: load it again next tick */
        else
            redis_trouble(h, rep->str);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != LIVE_REPLY_LEN) {
        redis_trouble(h, "unexpected reply to the live script");
        return;
    }
    size_t n;
    const char *state = str_of(rep->element[0], &n);
    if (!n) {
        finish_from_store(h, s);
        return;
    }
    const char *att = str_of(rep->element[1], &n);
    int attempt = n ? atoi(att) : 0;
    if (attempt != s->attempt) {
        /* a retry: what was looked at now may be either attempt's output,
         * so it waits for the next look */
        state_changed(h, s);
        return;
    }
    for (int i = 0; i < 2; i++) {
        redisReply *const *e = rep->element + 2 + 4 * i;
        size_t len;
        const char *data = str_of(e[3], &len);
        if (e[0]->type != REDIS_REPLY_INTEGER || e[1]->type != REDIS_REPLY_INTEGER ||
            e[2]->type != REDIS_REPLY_INTEGER || e[0]->integer < 0 || e[2]->integer < 0 ||
            (e[1]->integer != SSEOUT_SAME && (long long)len != e[0]->integer - e[2]->integer)) {
            redis_trouble(h, "unexpected reply to the live script");
            return;
        }
        struct emit_ctx ctx = {s, stream_names[i]};
        sseout_live(&s->out[i], (size_t)e[0]->integer, (int)e[1]->integer, (size_t)e[2]->integer,
                    data, len, emit_output, &ctx);
    }
    if (!s->state || strcmp(state, s->state))
        state_changed(h, s);
}

static int load_script(sse_hub *h, char *err, size_t errlen)
{
    redisReply *rep = rds_cmd(h->redis, err, errlen, "SCRIPT LOAD %s", live_script);
    if (!rep)
        return -1;
    int ok = rep->type == REDIS_REPLY_STRING && rep->len < sizeof h->sha;
    if (ok)
        snprintf(h->sha, sizeof h->sha, "%s", rep->str);
    else
        snprintf(err, errlen, "unexpected reply to SCRIPT LOAD");
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

/* One pipelined round trip for every stream, then each answer. The
 * answers are all read before any is handled: handling may send
 * commands of its own on the same connection. */
static void poll_streams(sse_hub *h, sse_stream **arr, size_t n)
{
    char err[512];
    redisContext *c = rds_ctx(h->redis, err, sizeof err);
    if (!c || (!h->sha[0] && load_script(h, err, sizeof err))) {
        redis_trouble(h, err);
        return;
    }
    sse_stream **polled = calloc(n ? n : 1, sizeof *polled);
    redisReply **reps = calloc(n ? n : 1, sizeof *reps);
    size_t k = 0;
    if (!polled || !reps)
        goto out;
    for (size_t i = 0; i < n; i++) {
        sse_stream *s = arr[i];
        if (s->done || stream_pending(s) > SSE_PENDING_MAX)
            continue; /* a slow reader is not fed more until it catches up */
        char key[3][NAME_MAX_LEN], rest[NAME_MAX_LEN], seen[2][24], whole[2][2];
        const char *argv[12];
        size_t lens[12];
        name_key(key[0], sizeof key[0], h->cfg->ns, "job", s->id);
        for (int j = 0; j < 2; j++) {
            snprintf(rest, sizeof rest, "%s:%s", s->id, stream_names[j]);
            name_key(key[1 + j], sizeof key[1], h->cfg->ns, "out", rest);
        }
        argv[0] = "EVALSHA";
        argv[1] = h->sha;
        argv[2] = "3";
        for (int j = 0; j < 3; j++)
            argv[3 + j] = key[j];
        for (int j = 0; j < 6; j++)
            lens[j] = strlen(argv[j]);
        for (int j = 0; j < 2; j++) {
            size_t sn, tl;
            const char *tail;
            int w;
            sseout_args(&s->out[j], &sn, &tail, &tl, &w);
            snprintf(seen[j], sizeof seen[j], "%zu", sn);
            whole[j][0] = w ? '1' : '0';
            whole[j][1] = 0;
            argv[6 + 3 * j] = seen[j];
            lens[6 + 3 * j] = strlen(seen[j]);
            argv[7 + 3 * j] = tail;
            lens[7 + 3 * j] = tl;
            argv[8 + 3 * j] = whole[j];
            lens[8 + 3 * j] = 1;
        }
        if (redisAppendCommandArgv(c, 12, argv, lens) != REDIS_OK) {
            redis_trouble(h, "out of memory");
            break;
        }
        polled[k++] = s;
    }
    for (size_t i = 0; i < k; i++) {
        if (redisGetReply(c, (void **)&reps[i]) != REDIS_OK) {
            snprintf(err, sizeof err, "redis: %s", c->errstr);
            redis_trouble(h, err); /* broken: rds_ctx reconnects next tick */
            k = i;
            break;
        }
    }
    if (k && h->failing) {
        LOGI("event=events_redis_ok");
        h->failing = 0;
    }
    for (size_t i = 0; i < k; i++)
        if (reps[i])
            on_live(h, polled[i], reps[i]);
out:
    for (size_t i = 0; i < k; i++)
        freeReplyObject(reps[i]);
    free(reps);
    free(polled);
}

/* Suspended connections do not see their client leave: their sockets are
 * polled for a hang-up, and a stream whose client left is closed. */
static void hangups(sse_stream **arr, size_t n)
{
    struct pollfd *pf = calloc(n ? n : 1, sizeof *pf);
    sse_stream **who = calloc(n ? n : 1, sizeof *who);
    size_t k = 0;
    if (!pf || !who)
        goto out;
    for (size_t i = 0; i < n; i++) {
        sse_stream *s = arr[i];
        pthread_mutex_lock(&s->mu);
        if (s->suspended && s->fd >= 0) {
            pf[k].fd = s->fd;
            pf[k].events = POLLRDHUP;
            who[k++] = s;
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (!k || poll(pf, k, 0) <= 0)
        goto out;
    for (size_t i = 0; i < k; i++) {
        if (!(pf[i].revents & (POLLRDHUP | POLLHUP | POLLERR)))
            continue;
        sse_stream *s = who[i];
        pthread_mutex_lock(&s->mu);
        int resume = s->suspended; /* still: only this thread resumes */
        s->suspended = 0;
        s->ended = 1; /* MHD then finds the socket closed and lets go quietly */
        s->off = s->len = 0;
        pthread_mutex_unlock(&s->mu);
        s->done = 1;
        s->end_sent = 1;
        LOGD("event=events_client_left id=%s", s->id);
        if (resume)
            MHD_resume_connection(s->conn);
    }
out:
    free(pf);
    free(who);
}

static void status_channel(const sse_hub *h, const sse_stream *s, char *key, size_t n)
{
    name_key(key, n, h->cfg->ns, "job", s->id);
}

/* Subscribes to the state changes of the streams still to end, and
 * unsubscribes those that ended; before they are polled, so that a
 * change is either in the poll or notified after it. */
static void subscribe(sse_hub *h, sse_stream **arr, size_t n)
{
    char err[256], key[NAME_MAX_LEN];
    if (ssesub_flush(h->sub, err, sizeof err) < 0)
        return; /* polled on the period until Redis is back */
    unsigned ep = ssesub_epoch(h->sub);
    for (size_t i = 0; i < n; i++) {
        sse_stream *s = arr[i];
        if (!s->done && s->sub_epoch != ep) {
            status_channel(h, s, key, sizeof key);
            ssesub_want(h->sub, key, 1);
            s->sub_epoch = ep;
        } else if (s->done && s->sub_epoch && s->sub_epoch == ep) {
            status_channel(h, s, key, sizeof key);
            ssesub_want(h->sub, key, 0);
            s->sub_epoch = 0;
        }
    }
    ssesub_flush(h->sub, err, sizeof err);
}

/* Polls every stream, or with poked only those notified of a change. */
static void tick(sse_hub *h, int poked)
{
    /* Streams MHD let go leave the list; the rest stay in it, and so
     * alive, for the whole tick: only this thread removes any. */
    char key[NAME_MAX_LEN];
    unsigned ep = ssesub_epoch(h->sub);
    pthread_mutex_lock(&h->mu);
    size_t n = 0;
    for (sse_stream **pp = &h->head; *pp;) {
        sse_stream *s = *pp;
        if (atomic_load(&s->gone)) {
            if (s->sub_epoch && s->sub_epoch == ep) {
                status_channel(h, s, key, sizeof key);
                ssesub_want(h->sub, key, 0);
            }
            *pp = s->next;
            atomic_fetch_sub(&h->nstreams, 1);
            stream_unref(s);
            continue;
        }
        n += !poked || s->poke;
        pp = &s->next;
    }
    sse_stream **arr = n ? malloc(n * sizeof *arr) : NULL;
    size_t k = 0;
    if (arr)
        for (sse_stream *s = h->head; s; s = s->next)
            if (!poked || s->poke) {
                s->poke = 0;
                arr[k++] = s;
            }
    int draining = h->draining;
    pthread_mutex_unlock(&h->mu);
    if (!arr)
        return;

    if (!draining) {
        subscribe(h, arr, n);
        poll_streams(h, arr, n);
    }
    int64_t now = clock_mono_ms();
    for (size_t i = 0; i < n; i++) {
        sse_stream *s = arr[i];
        if (draining)
            s->done = 1;
        if (!s->done && !s->hlen && now - s->last_ms >= SSE_KEEPALIVE_MS)
            hub_comment(s, ": keep-alive\n\n");
        if (s->hlen || ((s->done || s->oom) && !s->end_sent))
            stream_flush(s, s->done, now);
    }
    hangups(arr, n);
    free(arr);
}

/* A notification: the stream(s) of that job are polled at once. */
static void on_notice(void *ud, const char *channel)
{
    sse_hub *h = ud;
    char prefix[NAME_MAX_LEN];
    name_key(prefix, sizeof prefix, h->cfg->ns, "job", ""); /* the channel is it and the id */
    size_t pl = strlen(prefix);
    if (strncmp(channel, prefix, pl))
        return;
    pthread_mutex_lock(&h->mu);
    for (sse_stream *s = h->head; s; s = s->next)
        if (!strcmp(s->id, channel + pl))
            s->poke = 1;
    pthread_mutex_unlock(&h->mu);
}

/* Takes the wake-up (eventfd: the count of wakes since the last read). */
static void woken(sse_hub *h)
{
    uint64_t v;
    if (read(h->wake_fd, &v, sizeof v) < 0) {
        /* nothing to take: woken all the same */
    }
}

/* Until the next period: polls what is notified meanwhile; returns early
 * when woken (an open, a drain, a stop). */
static void wait_period(sse_hub *h)
{
    int64_t until = clock_mono_ms() + SSE_POLL_MS;
    for (;;) {
        int64_t left = until - clock_mono_ms();
        if (left <= 0)
            return;
        struct pollfd pf[2] = {{h->wake_fd, POLLIN, 0}, {ssesub_fd(h->sub), POLLIN, 0}};
        int r = poll(pf, 2, (int)left);
        if (r < 0 && errno != EINTR)
            return;
        if (r <= 0)
            continue;
        if (pf[0].revents & POLLIN) {
            woken(h);
            return;
        }
        if (pf[1].revents) {
            char err[256];
            if (ssesub_read(h->sub, on_notice, h, err, sizeof err) < 0)
                LOGD("event=events_notifications_lost err=%s", log_q(err));
            tick(h, 1);
        }
    }
}

static void wake(sse_hub *h)
{
    uint64_t one = 1;
    if (h->wake_fd >= 0 && write(h->wake_fd, &one, sizeof one) < 0) {
        /* the counter is full: the hub is awake anyway */
    }
}

static void *hub_main(void *arg)
{
    sse_hub *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        int stopping = h->stopping, idle = !h->head;
        pthread_mutex_unlock(&h->mu);
        if (stopping)
            break;
        if (idle) {
            /* nothing to watch: until a stream opens (or a stop); a wake
             * that came before the poll is still counted in the eventfd */
            struct pollfd pf = {h->wake_fd, POLLIN, 0};
            if (poll(&pf, 1, -1) > 0)
                woken(h);
            continue;
        }
        int64_t t0 = clock_mono_ms();
        tick(h, 0);
        int64_t took = clock_mono_ms() - t0;
        if (took > 1000)
            LOGW("event=events_tick_slow ms=%lld", (long long)took);
        wait_period(h);
    }
    return NULL;
}

/* --- the hub ------------------------------------------------------------------- */

sse_hub *sse_hub_new(const bx_cfg *cfg, bx_store *store, char *err, size_t errlen)
{
    sse_hub *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->store = store;
    h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->wake_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        free(h);
        return NULL;
    }
    if (!(h->redis = rds_new(cfg->redis_url, err, errlen)) ||
        !(h->sub = ssesub_new(cfg->redis_url, err, errlen))) {
        rds_free(h->redis);
        close(h->wake_fd);
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    if (pthread_create(&h->thread, NULL, hub_main, h)) {
        snprintf(err, errlen, "cannot start the event stream thread");
        sse_hub_free(h);
        return NULL;
    }
    h->started = 1;
    return h;
}

void sse_hub_drain(sse_hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->draining = 1;
    pthread_mutex_unlock(&h->mu);
    wake(h);
}

void sse_hub_stop(sse_hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    h->draining = 1;
    pthread_mutex_unlock(&h->mu);
    wake(h);
    if (h->started) {
        pthread_join(h->thread, NULL);
        h->started = 0;
    }
    /* No thread resumes anything any more: end every stream now, so that
     * its reader never suspends again, and wake those that wait. */
    pthread_mutex_lock(&h->mu);
    for (sse_stream *s = h->head; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        int resume = s->suspended;
        s->suspended = 0;
        s->ended = 1;
        pthread_mutex_unlock(&s->mu);
        if (resume)
            MHD_resume_connection(s->conn);
    }
    pthread_mutex_unlock(&h->mu);
}

void sse_hub_free(sse_hub *h)
{
    if (!h)
        return;
    if (h->started)
        sse_hub_stop(h);
    while (h->head) {
        sse_stream *s = h->head;
        h->head = s->next;
        stream_unref(s);
    }
    rds_free(h->redis);
    ssesub_free(h->sub);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

long sse_hub_streams(sse_hub *h) { return h ? atomic_load(&h->nstreams) : 0; }

/* The bytes per stream the worker keeps for this job: its own
 * max_output_bytes when the status shows it, else the default, capped as
 * the worker caps it. Both processes read the same settings. */
static size_t job_max_output(const bx_cfg *cfg, const char *doc, size_t n)
{
    long m = cfg->max_output_bytes;
    json_t *j = json_loadb(doc, n, 0, NULL);
    json_t *v = json_object_get(j, "max_output_bytes");
    if (json_is_integer(v) && json_integer_value(v) > 0)
        m = (long)json_integer_value(v);
    json_decref(j);
    if (m > cfg->max_output_cap)
        m = cfg->max_output_cap;
    return m > 0 ? (size_t)m : 0;
}

void sse_open(sse_hub *h, http_req *req, const char *doc, size_t doclen, const char *state,
              int attempt)
{
    sse_stream *s = calloc(1, sizeof *s);
    if (!s || pthread_mutex_init(&s->mu, NULL)) {
        free(s);
        http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    atomic_init(&s->refs, 2);
    atomic_init(&s->gone, 0);
    s->conn = req->conn;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = ci ? ci->connect_fd : -1;
    memcpy(s->id, req->r.job_id, ID_LEN - 1); /* valid, so exactly that long */
    s->id[ID_LEN - 1] = 0;
    s->attempt = attempt;
    size_t max = job_max_output(h->cfg, doc, doclen);
    sseout_init(&s->out[0], max);
    sseout_init(&s->out[1], max);
    s->last_ms = clock_mono_ms();
    if (!(s->state = strdup(state)) || sse_format(&s->buf, &s->len, &s->cap, "state", doc, doclen)) {
        pthread_mutex_destroy(&s->mu);
        free(s->state);
        free(s->buf);
        free(s);
        http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    pthread_mutex_lock(&h->mu);
    if (h->draining) {
        s->ended = 1; /* shutting down: the first event, then the end */
        s->done = 1;
        s->end_sent = 1;
    }
    s->next = h->head;
    h->head = s;
    atomic_fetch_add(&h->nstreams, 1);
    pthread_mutex_unlock(&h->mu);
    wake(h); /* its first poll, and its subscription, now */
    http_add_header(req, "Cache-Control", "no-cache");
    http_add_header(req, "X-Accel-Buffering", "no"); /* to proxies: do not hold events back */
    /* on failure MHD or http_reply_stream has already let go of it */
    http_reply_stream(req, 200, "text/event-stream", stream_read, s, stream_free);
}
