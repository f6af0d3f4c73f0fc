/* runner — a job's way through the worker:
 *
 *   delivery ─decode─▶ begin (lease, lock, "running" in Redis) ─▶ spawn
 *      │                  │ done/cancelled: republish/ack          │
 *      └ bad: dead-letter └ leased/locked: wait and ask again      ▼
 *   ack ◀─confirm── publish result event ◀── finish (final status in Redis)
 *
 * Nothing is acked before the result it stands for is confirmed by
 * RabbitMQ, so a worker that dies anywhere leaves the job to be redelivered;
 * the lease and the fenced status keep the redelivered copy from running
 * twice. */
#include "runner.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clock.h"
#include "consumer.h"
#include "event.h"
#include "job.h"
#include "jobdir.h"
#include "jobstate.h"
#include "log.h"
#include "names.h"
#include "proc.h"
#include "rds.h"
#include "wmetrics.h"

#define TICK_MS 250           /* cancel checks and live output */
#define HEARTBEAT_MS 5000
#define DEFER_MS 1000         /* a leased or locked job is asked again after this */
#define CANCEL_GRACE_MS 500   /* "killed within a second" */
#define MAX_STARTS 5          /* begins of one attempt before it is poison */
#define HOLD_MAX_MS 500       /* see requeue_stale_ready */
#define LOCK_WAIT_MS 250      /* a job whose lock is held asks again after this */
#define LOCK_WAIT_TEXT "250"
#define MAX_WATCH PROC_MAX_FDS
#define SWEEP_MS 5000         /* the sweeper's period, shared by all workers */
#define SWEEP_MAX 100         /* jobs one sweep handles */

typedef struct slot slot;

/* A file descriptor of a running job in the loop's epoll. */
typedef struct watch {
    runner_watch w; /* first: the loop calls w.fn with a pointer to it */
    slot *s;
    int fd;
} watch;

/* A running job. */
struct slot {
    runner *r;
    delivery *d;
    bx_job job;
    proc *p;
    watch watches[MAX_WATCH];
    int64_t started_wall;
    int64_t deadline_mono;   /* timeout; 0 = none */
    int timed_out, cancelled, lease_lost;
    int superseded;          /* another worker took the job over: killed, its result dropped */
    int done;                /* the process is done: finish at the next tick */
    int64_t output_put_mono; /* last live output written to Redis */
    uint64_t output_put_total;
    char *tmpdir;            /* the job's private cwd (jobdir), given back with the slot */
    slot *next;
};

/* A publication awaiting its confirm: a result, a dead letter, or a retry.
 * It owns the delivery that is acked once RabbitMQ confirmed. */
typedef struct outmsg {
    delivery *d;           /* or NULL */
    char *exchange, *rkey;
    char *body;
    size_t len;
    char *reason;          /* dead letters: header x-reason */
    char *expiration;      /* retries: per-message TTL */
    int priority;
    /* Redis first: the final status is written before the event goes out */
    char *id, *state, *lock;
    int attempt;
    int redis_pending;
    char *status_doc;      /* what Redis gets, when it is not the body (retries) */
    char *delay_queue;     /* retries: the job's queue; its delay queue (rkey) is */
    long delay_ms;         /* declared just before publishing */
    size_t status_len;
    int unindex;           /* a lost event: once confirmed, the sweeper is done with it */
    struct outmsg *next;   /* in the unsent list */
} outmsg;

/* A delivery that must wait: its lease or lock is held elsewhere, or
 * Redis did not answer. */
typedef struct deferred {
    delivery *d;
    int64_t at_mono;
    struct deferred *next;
} deferred;

struct runner {
    const bx_cfg *cfg;
    int epfd;
    consumer *c;
    bx_redis *redis;
    char owner[300];        /* lease value: this process, not just this worker id */
    uid_t run_uid;          /* (uid_t)-1: commands run as the worker's own user */
    gid_t run_gid;
    jobdirs *dirs;          /* the jobs' private directories */
    runner_watch amqp_watch;
    int amqp_registered;
    int64_t reconnect_at, backoff_ms;
    int64_t next_heartbeat, next_check, next_renew;
    slot *slots;            /* running */
    int nrunning;
    outmsg *unsent;         /* to (re)publish when connected and Redis is done */
    deferred *deferred;
    deferred *ready;        /* delivered, waiting for a free slot, FIFO */
    deferred **ready_tail;
    int draining;
    int64_t drain_deadline;
    int64_t next_sweep;
    int redis_ok;           /* for "lost"/"regained" log lines, and bx_worker_redis_up */
    wmetrics m;             /* all NULL (no metrics) until runner_set_metrics */
};

static void runner_on_deliver(void *ud, delivery *d);
static void start_ready(runner *r);
static void drop_ready(runner *r, int reject);
static void runner_on_confirm(void *ud, void *token, int ack);

/* ---------- publications ---------- */

static void outmsg_free(outmsg *o)
{
    if (!o)
        return;
    delivery_free(o->d);
    free(o->exchange);
    free(o->rkey);
    free(o->body);
    free(o->reason);
    free(o->expiration);
    free(o->id);
    free(o->state);
    free(o->lock);
    free(o->status_doc);
    free(o->delay_queue);
    free(o);
}

static void outmsg_try(runner *r, outmsg *o);

static void outmsg_park(runner *r, outmsg *o)
{
    o->next = r->unsent;
    r->unsent = o;
}

/* Sends o, or parks it until RabbitMQ/Redis are back. */
static void outmsg_try(runner *r, outmsg *o)
{
    char err[512];
    if (o->redis_pending) {
        const char *doc = o->status_doc ? o->status_doc : o->body;
        size_t len = o->status_doc ? o->status_len : o->len;
        int w = jobstate_finish(r->redis, r->cfg->ns, o->id, o->state, o->attempt, r->owner,
                                o->lock, doc, len, r->cfg->status_ttl_s, err, sizeof err);
        if (w < 0) {
            if (r->redis_ok)
                LOGE("event=redis_lost error=%s", log_q(err));
            r->redis_ok = 0;
            outmsg_park(r, o);
            return;
        }
        if (!r->redis_ok)
            LOGI("event=redis_regained");
        r->redis_ok = 1;
        o->redis_pending = 0;
        if (w == 0)
            LOGW("event=stale_result id=%s attempt=%d state=%s msg=\"a newer attempt or final state is recorded\"",
                 o->id, o->attempt, o->state);
        if (w == 2) {
            /* Another worker took the job over as a newer attempt: this
             * run is fenced out. Its result would only race that one's
             * to the history, so it goes nowhere; the delivery (of a
             * connection long gone, as a rule) is acked. */
            LOGW("event=result_fenced_out id=%s attempt=%d state=%s msg=\"the job was taken over by a newer attempt\"",
                 o->id, o->attempt, o->state);
            if (o->d && consumer_ack(r->c, o->d))
                LOGW("event=ack_failed id=%s", o->id);
            outmsg_free(o);
            return;
        }
    }
    if (!consumer_connected(r->c)) {
        outmsg_park(r, o);
        return;
    }
    if (o->delay_queue) {
        char jobs_ex[NAME_MAX_LEN];
        name_jobs_exchange(jobs_ex, sizeof jobs_ex, r->cfg->ns);
        if (consumer_declare_delay_queue(r->c, o->rkey, jobs_ex, o->delay_queue, o->delay_ms, err,
                                         sizeof err)) {
            LOGE("event=retry_declare_failed queue=%s error=%s", o->rkey, log_q(err));
            outmsg_park(r, o);
            return;
        }
    }
    amqpc_msg m = {o->body, o->len, o->priority, o->d ? o->d->request_id : NULL,
                   o->d ? o->d->traceparent : NULL, o->reason, o->expiration};
    if (consumer_publish(r->c, o->exchange, o->rkey, &m, o, err, sizeof err)) {
        LOGE("event=publish_failed exchange=%s error=%s", o->exchange, log_q(err));
        outmsg_park(r, o);
    }
}

static outmsg *outmsg_new(delivery *d, const char *exchange, const char *rkey, char *body,
                          size_t len)
{
    outmsg *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->d = d;
    o->exchange = strdup(exchange);
    o->rkey = strdup(rkey);
    o->body = body;
    o->len = len;
    return o;
}

static void runner_on_confirm(void *ud, void *token, int ack)
{
    runner *r = ud;
    outmsg *o = token;
    if (!ack) {
        /* nacked, or the connection went away before the confirm */
        outmsg_park(r, o);
        return;
    }
    if (o->d && consumer_ack(r->c, o->d))
        LOGW("event=ack_failed id=%s", o->id ? o->id : "-");
    char err[512];
    if (o->unindex && jobstate_unindex(r->redis, r->cfg->ns, o->id, o->attempt, err, sizeof err))
        LOGW("event=unindex_failed id=%s error=%s", o->id, log_q(err)); /* sent again later */
    outmsg_free(o);
}

static void dead_letter(runner *r, delivery *d, const char *reason)
{
    char ex[NAME_MAX_LEN];
    name_dead_exchange(ex, sizeof ex, r->cfg->ns);
    LOGW("event=dead_lettered queue=%s reason=%s", d->queue, log_q(reason));
    metric_inc(r->m.dead_lettered, NULL, NULL);
    char *body = malloc(d->len + 1);
    outmsg *o = body ? outmsg_new(NULL, ex, "", body, d->len) : NULL;
    if (!o) {
        free(body);
        consumer_reject(r->c, d->tag, d->epoch, 1); /* out of memory: let it come back */
        delivery_free(d);
        return;
    }
    memcpy(body, d->body, d->len);
    o->reason = strdup(reason);
    o->d = d;
    outmsg_try(r, o);
}

/* ---------- slots ---------- */

static void slot_on_fd(runner_watch *w, uint32_t events);

/* Registers the process's descriptors once: proc closes each when done
 * with it, which takes it out of epoll by itself. */
static void slot_watch(slot *s)
{
    proc_watch want[PROC_MAX_FDS];
    int n = proc_fds(s->p, want);
    for (int i = 0; i < n && i < MAX_WATCH; i++) {
        watch *w = &s->watches[i];
        w->w.fn = slot_on_fd;
        w->s = s;
        w->fd = want[i].fd;
        struct epoll_event ev = {.events = want[i].events, .data.ptr = w};
        epoll_ctl(s->r->epfd, EPOLL_CTL_ADD, w->fd, &ev);
    }
}

/* Finishing frees the slot, and other events of the same epoll batch may
 * still point at it: the tick that follows every batch finishes it. */
static void slot_on_fd(runner_watch *rw, uint32_t events)
{
    watch *w = (watch *)rw;
    slot *s = w->s;
    if (s->done)
        return;
    if (proc_on_ready(s->p, w->fd, events) & PROC_EV_DONE || proc_done(s->p))
        s->done = 1;
}

static void slot_unlink(slot *s)
{
    runner *r = s->r;
    for (slot **pp = &r->slots; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    r->nrunning--;
}

/* Empties a job's private directory and gives it back (frees dir). */
static void remove_tmpdir(runner *r, char *dir)
{
    char err[512];
    if (jobdir_put(r->dirs, dir, err, sizeof err) < 0)
        LOGW("event=tmpdir_not_removed error=%s", log_q(err));
}

static void slot_free(slot *s)
{
    proc_free(s->p); /* the tree is gone before its directory is */
    remove_tmpdir(s->r, s->tmpdir);
    job_release(&s->job);
    delivery_free(s->d);
    free(s);
}

static void set_outputs(json_t *ev, proc *p)
{
    static const char *const names[] = {"stdout", "stderr"};
    for (int i = 0; i < 2; i++) {
        char *kept = NULL;
        size_t len = 0;
        uint64_t total = 0;
        long cut = -1;
        if (proc_output(p, i ? PROC_STDERR : PROC_STDOUT, &kept, &len, &total, &cut) == 0) {
            event_set_output(ev, names[i], kept ? kept : "", len, total, cut);
            free(kept);
        }
    }
}

/* The retries a job has used: its earlier attempts that failed or timed
 * out. An attempt lost with its worker (state lost in `attempts`, taken
 * over by another worker) is not the job's doing and uses none; the
 * poison limit (MAX_STARTS) bounds those instead. */
static int retries_used(const bx_job *j)
{
    json_t *attempts = json_object_get(j->doc, "attempts"), *v;
    size_t i;
    int n = 0;
    json_array_foreach(attempts, i, v) {
        const char *st = json_string_value(json_object_get(v, "state"));
        if (st && (!strcmp(st, ST_FAILED) || !strcmp(st, ST_TIMED_OUT)))
            n++;
    }
    return n;
}

/* Whether a failed attempt goes back to the queue. */
static int should_retry(const bx_job *j, const char *state, int exit_code)
{
    if (retries_used(j) >= j->max_retries || (strcmp(state, ST_FAILED) && strcmp(state, ST_TIMED_OUT)))
        return 0;
    if (!j->retry_on)
        return 1;
    size_t i;
    json_t *v;
    json_array_foreach(j->retry_on, i, v) {
        if (json_integer_value(v) == exit_code)
            return 1;
    }
    return 0;
}

/* Sends the job back through "<ns>.retry.<queue>.<delay>": a queue with a
 * message TTL whose dead-letters go to the jobs exchange. The delay costs
 * no worker slot; RabbitMQ holds it. */
static int retry_queue(runner *r, const char *queue, long delay_ms, char *name, size_t n,
                       char *err, size_t errlen);
static int retry_queue_name(runner *r, const char *queue, long delay_ms, char *name, size_t n,
                            char *err, size_t errlen);

static void slot_finish(slot *s)
{
    runner *r = s->r;
    bx_job *j = &s->job;
    int code = -1, sig = 0, core = 0;
    int64_t now = clock_wall_ms();
    const char *state;
    proc_status(s->p, &code, &sig, &core);
    json_t *ev = event_new(j, ST_RUNNING);
    event_set_time(ev, "started_at", s->started_wall);
    event_set_time(ev, "finished_at", now);
    json_object_set_new(ev, "duration_ms", json_integer(now - s->started_wall));
    json_object_set_new(ev, "worker", json_string(r->cfg->worker_id));
    if (s->cancelled) {
        state = ST_CANCELLED;
    } else if (s->timed_out) {
        state = ST_TIMED_OUT;
        json_object_set_new(ev, "limit", json_string("timeout_s"));
    } else if (sig) {
        state = ST_FAILED;
    } else {
        state = code == 0 ? ST_SUCCEEDED : ST_FAILED;
    }
    if (sig) {
        json_object_set_new(ev, "signal", json_integer(sig));
        json_object_set_new(ev, "core_dumped", json_boolean(core));
    } else if (code >= 0) {
        json_object_set_new(ev, "exit_code", json_integer(code));
    }
    set_outputs(ev, s->p);
    metric_add(r->m.output_bytes, "stdout", NULL, (double)proc_outbuf(s->p, PROC_STDOUT)->total);
    metric_add(r->m.output_bytes, "stderr", NULL, (double)proc_outbuf(s->p, PROC_STDERR)->total);
    metric_observe(r->m.run_seconds, j->queue, NULL, (double)(now - s->started_wall) / 1000.0);
    LOGI("event=job_finished id=%s state=%s exit_code=%d signal=%d attempt=%d duration_ms=%" PRId64
         " request_id=%s",
         j->id, state, code, sig, j->attempt, now - s->started_wall, j->request_id ? j->request_id : "-");

    slot_unlink(s);
    proc_free(s->p);
    s->p = NULL;

    char ex[NAME_MAX_LEN], err[512];
    outmsg *o = NULL;
    if (should_retry(j, state, code) && !s->cancelled && !s->superseded) {
        /* This attempt's outcome goes into the job's history; the next
         * attempt starts queued. */
        long delay = (long)(j->retry_backoff_s * 1000.0 * pow(2, j->attempt - 1));
        if (delay > 86400000L)
            delay = 86400000L;
        char q[NAME_MAX_LEN];
        json_object_set_new(ev, "state", json_string(state));
        json_t *attempts = json_object_get(j->doc, "attempts");
        if (!attempts) {
            attempts = json_array();
            json_object_set_new(j->doc, "attempts", attempts);
        }
        json_object_del(ev, "attempts");
        json_array_append(attempts, ev);
        job_set_attempt(j, j->attempt + 1);
        if (retry_queue_name(r, j->queue, delay, q, sizeof q, err, sizeof err) == 0) {
            size_t len;
            char *body = job_encode(j, &len);
            json_t *queued = event_new(j, ST_QUEUED);
            event_set_time(queued, "queued_at", now);
            char *qdoc = json_dumps(queued, JSON_COMPACT);
            json_decref(queued);
            /* the queued status of the next attempt is written first, then
             * the job goes to the delay queue, then the old copy is acked */
            o = body && qdoc ? outmsg_new(s->d, "", q, body, len) : NULL;
            if (o) {
                s->d = NULL;
                o->priority = j->priority;
                o->id = strdup(j->id);
                o->state = strdup(ST_QUEUED);
                o->attempt = j->attempt;
                o->redis_pending = 1;
                o->status_doc = qdoc;
                o->status_len = strlen(qdoc);
                char *ttl = malloc(24);
                if (ttl)
                    snprintf(ttl, 24, "%ld", delay);
                o->expiration = ttl;
                /* declared when published: RabbitMQ may be away right now */
                o->delay_queue = strdup(j->queue);
                o->delay_ms = delay;
                LOGI("event=job_retried id=%s attempt=%d delay_ms=%ld", j->id, j->attempt, delay);
                metric_inc(r->m.retries, j->queue, NULL);
            } else {
                free(body);
                free(qdoc);
            }
        } else {
            LOGE("event=retry_failed id=%s error=%s", j->id, log_q(err));
        }
        if (!o)
            job_set_attempt(j, j->attempt - 1); /* fall through to a final state */
    }
    if (!o) {
        metric_inc(r->m.finished, j->queue, state);
        json_object_set_new(ev, "state", json_string(state));
        size_t len = 0;
        char *doc = json_dumps(ev, JSON_COMPACT);
        len = doc ? strlen(doc) : 0;
        name_events_exchange(ex, sizeof ex, r->cfg->ns);
        o = doc ? outmsg_new(s->d, ex, "", doc, len) : NULL;
        if (!o) {
            free(doc);
            LOGE("event=out_of_memory id=%s", j->id);
            consumer_reject(r->c, s->d->tag, s->d->epoch, 1);
        } else {
            s->d = NULL;
            o->id = strdup(j->id);
            o->state = strdup(state);
            o->attempt = j->attempt;
            o->redis_pending = 1;
        }
    }
    json_decref(ev);
    if (o && j->lock)
        o->lock = strdup(j->lock);
    slot_free(s);
    if (o)
        outmsg_try(r, o);
    start_ready(r);
}

/* ---------- deliveries ---------- */

/* The limits of a command: the server's, lowered by the job's own. */
static void job_limits(const runner *r, const bx_job *j, proc_spec *spec)
{
    static const struct { const char *key; int res; unsigned long long unit; } map[] = {
        {"cpu_s", RLIMIT_CPU, 1}, {"as_mb", RLIMIT_AS, 1ULL << 20},
        {"nofile", RLIMIT_NOFILE, 1}, {"nproc", RLIMIT_NPROC, 1},
        {"fsize_mb", RLIMIT_FSIZE, 1ULL << 20}};
    const long server[] = {r->cfg->limit_cpu_s, r->cfg->limit_as_mb, r->cfg->limit_nofile,
                           r->cfg->limit_nproc, r->cfg->limit_fsize_mb};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        long long v = server[i];
        json_t *x = j->limits ? json_object_get(j->limits, map[i].key) : NULL;
        if (x && (v == 0 || json_integer_value(x) < v))
            v = json_integer_value(x);
        if (v > 0 && spec->nlimits < 8)
            spec->limits[spec->nlimits++] = (struct proc_limit){map[i].res, (unsigned long long)v * map[i].unit};
    }
}

/* The command's environment: a clean base plus the job's env, never the
 * worker's own (it holds the services' credentials). New array of new
 * strings (free_envp), or NULL on OOM. */
static char **job_envp(const bx_job *j, const char *home)
{
    static const char *const base[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"};
    size_t n = sizeof base / sizeof base[0] + (j->env ? json_object_size(j->env) : 0) + 6;
    char **envp = calloc(n, sizeof *envp);
    size_t k = 0;
    if (!envp)
        return NULL;
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        envp[k++] = strdup(base[i]);
    if (asprintf(&envp[k], "HOME=%s", home ? home : "/") > 0)
        k++;
    if (j->request_id && asprintf(&envp[k], "BX_REQUEST_ID=%s", j->request_id) > 0)
        k++;
    if (j->traceparent && asprintf(&envp[k], "TRACEPARENT=%s", j->traceparent) > 0)
        k++;
    if (asprintf(&envp[k], "BX_JOB_ID=%s", j->id) > 0)
        k++;
    if (asprintf(&envp[k], "BX_ATTEMPT=%d", j->attempt) > 0)
        k++;
    const char *key;
    json_t *v;
    json_object_foreach(j->env, key, v) {
        /* the job's value wins over the base */
        for (size_t i = 0; i < k; i++) {
            size_t kl = strlen(key);
            if (envp[i] && !strncmp(envp[i], key, kl) && envp[i][kl] == '=') {
                free(envp[i]);
                envp[i] = envp[--k];
                envp[k] = NULL;
                break;
            }
        }
        if (asprintf(&envp[k], "%s=%s", key, json_string_value(v)) > 0)
            k++;
    }
    envp[k] = NULL;
    for (size_t i = 0; i < k; i++)
        if (!envp[i])
            return envp; /* a strdup failed: the list is cut short, still valid */
    return envp;
}

static void free_envp(char **envp)
{
    for (size_t i = 0; envp && envp[i]; i++)
        free(envp[i]);
    free(envp);
}

static void defer(runner *r, delivery *d, int64_t delay_ms)
{
    deferred *x = calloc(1, sizeof *x);
    if (!x) {
        consumer_reject(r->c, d->tag, d->epoch, 1);
        delivery_free(d);
        return;
    }
    x->d = d;
    x->at_mono = clock_mono_ms() + delay_ms;
    x->next = r->deferred;
    r->deferred = x;
}

static slot *slot_find(runner *r, const char *id)
{
    for (slot *s = r->slots; s; s = s->next)
        if (!strcmp(s->job.id, id))
            return s;
    return NULL;
}

/* A copy of a job that already finished: make sure its result event was
 * published (the worker may have died between Redis and RabbitMQ), then
 * ack. The recorder's upsert makes the repeat harmless. */
static void republish_final(runner *r, delivery *d, const bx_job *j)
{
    char err[512], ex[NAME_MAX_LEN];
    char *state = NULL;
    int attempt = 0;
    char *doc = status_get(r->redis, r->cfg->ns, j->id, &state, &attempt, err, sizeof err);
    if (!doc) {
        free(state);
        consumer_ack(r->c, d);
        delivery_free(d);
        return;
    }
    outmsg *o;
    if (!state_is_terminal(state)) {
        /* A newer attempt is queued or running: this copy is an old one.
         * Its successor's message may have been lost with a worker that
         * died before RabbitMQ confirmed it, so send the job again at the
         * stored attempt; a second copy is harmless (lease, fencing). */
        bx_job next;
        size_t len = 0;
        char *body = NULL;
        if (job_from_message(&next, d->body, d->len, err, sizeof err) == 0) {
            job_set_attempt(&next, attempt);
            body = job_encode(&next, &len);
            job_release(&next);
        }
        free(doc);
        name_jobs_exchange(ex, sizeof ex, r->cfg->ns);
        o = body ? outmsg_new(d, ex, j->queue, body, len) : NULL;
        if (o)
            o->priority = j->priority;
        else
            free(body);
        LOGI("event=job_superseded id=%s attempt=%d stored_attempt=%d stored_state=%s", j->id,
             j->attempt, attempt, state ? state : "-");
        free(state);
    } else {
        free(state);
        name_events_exchange(ex, sizeof ex, r->cfg->ns);
        o = outmsg_new(d, ex, "", doc, strlen(doc));
        if (!o)
            free(doc);
    }
    if (!o) {
        consumer_reject(r->c, d->tag, d->epoch, 1);
        delivery_free(d);
        return;
    }
    outmsg_try(r, o);
}

/* The status of a lost attempt, from its status doc (JSON text): state
 * lost, why and when, unless it says lost already. New reference or NULL. */
static json_t *lost_doc(const char *status_doc, const char *reason)
{
    json_t *d = json_loads(status_doc, 0, NULL);
    if (!json_is_object(d)) {
        json_decref(d);
        return NULL;
    }
    const char *st = json_string_value(json_object_get(d, "state"));
    if (st && !strcmp(st, ST_LOST))
        return d;
    json_object_set_new(d, "state", json_string(ST_LOST));
    json_object_set_new(d, "reason", json_string(reason));
    event_set_time(d, "finished_at", clock_wall_ms());
    return d;
}

/* j becomes attempt stored + 1, whose history (`attempts`, as the stored
 * status has it: the most recent) ends with attempt stored, lost.
 * 0 / -1 (out of memory, a status that is not JSON). */
static int take_over(bx_job *j, int stored, const char *stored_doc)
{
    json_t *sd = json_loads(stored_doc, 0, NULL);
    const char *w = json_string_value(json_object_get(sd, "worker"));
    char reason[300];
    snprintf(reason, sizeof reason,
             "lease expired: worker %s stopped renewing it (died, frozen or cut off)", w ? w : "?");
    json_t *lost = lost_doc(stored_doc, reason);
    json_t *prior = json_object_get(lost, "attempts");
    json_t *hist = json_is_array(prior) ? json_copy(prior) : json_array();
    json_object_del(lost, "attempts");
    if (!lost || !hist) {
        json_decref(lost);
        json_decref(hist);
        json_decref(sd);
        return -1;
    }
    if (json_array_append_new(hist, lost)) { /* it takes lost, even when it fails */
        json_decref(hist);
        json_decref(sd);
        return -1;
    }
    json_object_set_new(j->doc, "attempts", hist);
    LOGW("event=job_taken_over id=%s attempt=%d lost_attempt=%d lost_worker=%s", j->id, stored + 1,
         stored, w ? w : "-");
    json_decref(sd);
    job_set_attempt(j, stored + 1);
    return 0;
}

/* Begins s's job: lease, lock, "running". A copy whose attempt runs
 * without a lease (its worker died, froze or was cut off) takes it over
 * as the next attempt, so that the old run's late writes are fenced out.
 * Never BEGIN_EXPIRED: a takeover that keeps losing races is BEGIN_LEASED,
 * asked again later. */
static begin_result begin(runner *r, slot *s, char *err, size_t errlen)
{
    bx_job *j = &s->job;
    int from = 0;
    for (int tries = 0; tries < 3; tries++) {
        json_t *ev = event_new(j, ST_RUNNING);
        char *doc = NULL;
        if (ev) {
            event_set_time(ev, "started_at", s->started_wall);
            json_object_set_new(ev, "worker", json_string(r->cfg->worker_id));
            doc = json_dumps(ev, JSON_COMPACT);
            json_decref(ev);
        }
        if (!doc) {
            snprintf(err, errlen, "out of memory");
            return BEGIN_ERROR;
        }
        int stored = 0;
        char *sdoc = NULL;
        begin_result br = jobstate_begin(r->redis, r->cfg->ns, j->id, j->attempt, r->owner,
                                         r->cfg->lease_ms, j->lock, doc, strlen(doc), MAX_STARTS,
                                         from, &stored, &sdoc, err, errlen);
        free(doc);
        if (br != BEGIN_EXPIRED)
            return br;
        int rc = take_over(j, stored, sdoc);
        free(sdoc);
        if (rc)
            break;
        from = stored;
    }
    return BEGIN_LEASED;
}

/* A running job given back (shutdown, the worker's own trouble): lease
 * and lock freed, status queued again at the same attempt. */
static void give_back(runner *r, const bx_job *j)
{
    char err[512];
    json_t *q = event_new(j, ST_QUEUED);
    char *doc = NULL;
    if (q) {
        event_set_time(q, "queued_at", clock_wall_ms());
        doc = json_dumps(q, JSON_COMPACT);
        json_decref(q);
    }
    if (jobstate_release(r->redis, r->cfg->ns, j->id, r->owner, j->lock, j->attempt, doc, err,
                         sizeof err))
        LOGW("event=lease_release_failed id=%s error=%s", j->id, log_q(err));
    free(doc);
}

static void start(runner *r, delivery *d)
{
    char err[512];
    slot *s = calloc(1, sizeof *s);
    if (!s) {
        defer(r, d, DEFER_MS);
        return;
    }
    s->r = r;
    if (job_from_message(&s->job, d->body, d->len, err, sizeof err)) {
        free(s);
        dead_letter(r, d, err);
        return;
    }
    bx_job *j = &s->job;
    slot *mine = slot_find(r, j->id);
    if (mine) {
        /* redelivered to us after a reconnect while still running it:
         * the new delivery is the one to ack */
        delivery_free(mine->d);
        mine->d = d;
        job_release(j);
        free(s);
        return;
    }
    s->started_wall = clock_wall_ms();
    begin_result br = begin(r, s, err, sizeof err);
    switch (br) {
    case BEGIN_OK:
    case BEGIN_MINE:
        break;
    case BEGIN_DONE:
    case BEGIN_CANCELLED:
        LOGI("event=job_skipped id=%s attempt=%d reason=%s", j->id, j->attempt,
             br == BEGIN_DONE ? "already_final" : "cancelled");
        republish_final(r, d, j);
        job_release(j);
        free(s);
        return;
    case BEGIN_POISON: {
        /* Its runs keep dying with their worker: stop the cycle. The job
         * is rejected, and its message kept in the dead-letter queue. */
        char reason[200];
        snprintf(reason, sizeof reason, "poison: begun %d times without a result", MAX_STARTS);
        LOGE("event=job_quarantined id=%s attempt=%d reason=%s", j->id, j->attempt, log_q(reason));
        metric_inc(r->m.finished, j->queue, ST_REJECTED);
        json_t *rej = event_new(j, ST_REJECTED);
        json_object_set_new(rej, "reason", json_string(reason));
        event_set_time(rej, "finished_at", clock_wall_ms());
        char *rdoc = json_dumps(rej, JSON_COMPACT);
        json_decref(rej);
        char ex[NAME_MAX_LEN];
        name_events_exchange(ex, sizeof ex, r->cfg->ns);
        outmsg *o = rdoc ? outmsg_new(NULL, ex, "", rdoc, strlen(rdoc)) : NULL;
        if (o) {
            o->id = strdup(j->id);
            o->state = strdup(ST_REJECTED);
            o->attempt = j->attempt;
            o->redis_pending = 1;
            outmsg_try(r, o);
        } else {
            free(rdoc);
        }
        job_release(j);
        free(s);
        dead_letter(r, d, reason);
        return;
    }
    case BEGIN_LOCKED: {
        /* Waiting for a lock must hold neither a slot nor the prefetch
         * window: the job waits in a delay queue and comes back. */
        char q[NAME_MAX_LEN];
        char *body = malloc(d->len + 1);
        outmsg *o = NULL;
        if (body && retry_queue(r, j->queue, LOCK_WAIT_MS, q, sizeof q, err, sizeof err) == 0)
            o = outmsg_new(d, "", q, body, d->len);
        if (o) {
            memcpy(body, d->body, d->len);
            o->priority = j->priority;
            o->expiration = strdup(LOCK_WAIT_TEXT);
            LOGD("event=job_waits_for_lock id=%s lock=%s", j->id, log_q(j->lock));
            job_release(j);
            free(s);
            outmsg_try(r, o);
            return;
        }
        free(body);
        job_release(j);
        free(s);
        defer(r, d, DEFER_MS);
        return;
    }
    case BEGIN_EXPIRED: /* begin() never returns it */
    case BEGIN_LEASED:
    case BEGIN_ERROR:
        if (br == BEGIN_ERROR) {
            if (r->redis_ok)
                LOGE("event=redis_lost error=%s", log_q(err));
            r->redis_ok = 0;
        }
        job_release(j);
        free(s);
        defer(r, d, DEFER_MS);
        return;
    }
    if (!r->redis_ok)
        LOGI("event=redis_regained");
    r->redis_ok = 1;

    proc_spec spec = PROC_SPEC_INIT;
    if (!j->cwd) {
        /* a fresh private directory, the command's own, removed afterwards */
        s->tmpdir = jobdir_get(r->dirs, err, sizeof err);
        if (!s->tmpdir)
            LOGW("event=tmpdir_failed error=%s", log_q(err));
    }
    char **envp = job_envp(j, s->tmpdir);
    spec.uid = r->run_uid;
    spec.gid = r->run_gid;
    job_limits(r, j, &spec);
    spec.shell = r->cfg->shell;
    spec.command = j->command;
    spec.envp = envp;
    spec.job_id = j->id;
    spec.cwd = j->cwd ? j->cwd : s->tmpdir;
    spec.stdin_data = j->stdin_data;
    spec.stdin_len = j->stdin_len;
    long max = j->max_output_bytes ? j->max_output_bytes : r->cfg->max_output_bytes;
    spec.max_output = (size_t)(max > r->cfg->max_output_cap ? r->cfg->max_output_cap : max);
    s->d = d;
    proc_fail why = PROC_FAIL_NONE;
    s->p = envp ? proc_spawn_ex(&spec, &why, err, sizeof err) : NULL;
    free_envp(envp);
    if (!s->p && (why == PROC_FAIL_SYSTEM || !envp)) {
        /* the worker's trouble, not the job's: try again later */
        LOGE("event=spawn_failed id=%s error=%s", j->id, log_q(envp ? err : "out of memory"));
        give_back(r, j);
        remove_tmpdir(r, s->tmpdir);
        job_release(j);
        free(s);
        defer(r, d, DEFER_MS);
        return;
    }
    if (!s->p) {
        /* the command could not start (cwd missing, ...): rejected */
        LOGW("event=job_rejected id=%s reason=%s", j->id, log_q(err));
        metric_inc(r->m.finished, j->queue, ST_REJECTED);
        json_t *rej = event_new(j, ST_REJECTED);
        json_object_set_new(rej, "reason", json_string(err));
        json_object_set_new(rej, "worker", json_string(r->cfg->worker_id));
        event_set_time(rej, "started_at", s->started_wall);
        event_set_time(rej, "finished_at", clock_wall_ms());
        char *rdoc = json_dumps(rej, JSON_COMPACT);
        json_decref(rej);
        char ex[NAME_MAX_LEN];
        name_events_exchange(ex, sizeof ex, r->cfg->ns);
        outmsg *o = rdoc ? outmsg_new(d, ex, "", rdoc, strlen(rdoc)) : NULL;
        if (o) {
            o->id = strdup(j->id);
            o->state = strdup(ST_REJECTED);
            o->attempt = j->attempt;
            o->redis_pending = 1;
            if (j->lock)
                o->lock = strdup(j->lock);
            s->d = NULL;
            outmsg_try(r, o);
        } else {
            free(rdoc);
        }
        delivery_free(s->d);
        remove_tmpdir(r, s->tmpdir);
        job_release(j);
        free(s);
        return;
    }
    int timeout = j->timeout_s ? j->timeout_s : r->cfg->default_timeout_s;
    s->deadline_mono = timeout ? clock_mono_ms() + (int64_t)timeout * 1000 : 0;
    s->next = r->slots;
    r->slots = s;
    r->nrunning++;
    LOGI("event=job_started id=%s attempt=%d queue=%s request_id=%s traceparent=%s", j->id,
         j->attempt, j->queue, j->request_id ? j->request_id : "-",
         j->traceparent ? j->traceparent : "-");
    metric_inc(r->m.started, j->queue, NULL);
    /* first attempts only: a retry's wait is mostly its chosen backoff */
    if (j->attempt == 1 && j->submitted_ms > 0)
        metric_observe(r->m.queue_wait, j->queue, NULL,
                       s->started_wall > j->submitted_ms
                           ? (double)(s->started_wall - j->submitted_ms) / 1000.0
                           : 0);
    if (proc_done(s->p))
        slot_finish(s);
    else
        slot_watch(s);
}

/* The prefetch is larger than the concurrency so that the next job is
 * already here when a slot frees up (its predecessor stays unacked until
 * its result is confirmed); the extra ones wait in arrival order. */
static void runner_on_deliver(void *ud, delivery *d)
{
    runner *r = ud;
    if (r->draining) {
        consumer_reject(r->c, d->tag, d->epoch, 1);
        delivery_free(d);
        return;
    }
    if (r->nrunning >= r->cfg->concurrency || r->ready) {
        deferred *x = calloc(1, sizeof *x);
        if (!x) {
            consumer_reject(r->c, d->tag, d->epoch, 1);
            delivery_free(d);
            return;
        }
        x->d = d;
        *r->ready_tail = x;
        r->ready_tail = &x->next;
        return;
    }
    start(r, d);
}

/* The held delivery to run next: the highest priority, the oldest among
 * equals. Unlinked from the list; NULL when none. */
static deferred *take_best_ready(runner *r)
{
    deferred **best = NULL;
    for (deferred **pp = &r->ready; *pp; pp = &(*pp)->next)
        if (!best || (*pp)->d->priority > (*best)->d->priority)
            best = pp;
    if (!best)
        return NULL;
    deferred *x = *best;
    *best = x->next;
    r->ready_tail = &r->ready;
    while (*r->ready_tail)
        r->ready_tail = &(*r->ready_tail)->next;
    return x;
}

/* A job held here longer than HOLD_MAX_MS may no longer be the one the
 * queue would pick: higher-priority jobs may have come in since. It goes
 * back (requeued in its priority's place) so that the queue chooses
 * again. Short jobs never wait that long, so they keep the prefetch's
 * throughput; priorities are exact among what is held here, and up to
 * HOLD_MAX_MS against what is still in the queue. */
static void requeue_stale_ready(runner *r)
{
    int64_t now = clock_mono_ms();
    for (deferred **pp = &r->ready; *pp;) {
        deferred *x = *pp;
        if (x->d->priority < 9 && now - x->d->at_mono >= HOLD_MAX_MS) {
            *pp = x->next;
            consumer_reject(r->c, x->d->tag, x->d->epoch, 1);
            delivery_free(x->d);
            free(x);
        } else {
            pp = &x->next;
        }
    }
    r->ready_tail = &r->ready;
    while (*r->ready_tail)
        r->ready_tail = &(*r->ready_tail)->next;
}

static void start_ready(runner *r)
{
    int started = 0;
    while (r->ready && r->nrunning < r->cfg->concurrency && !r->draining) {
        deferred *x = take_best_ready(r);
        delivery *d = x->d;
        free(x);
        started = 1;
        if (d->epoch == consumer_epoch(r->c) && consumer_connected(r->c))
            start(r, d);
        else
            delivery_free(d);
    }
    if (started)
        requeue_stale_ready(r);
}

static void drop_ready(runner *r, int reject)
{
    while (r->ready) {
        deferred *x = r->ready;
        r->ready = x->next;
        if (reject)
            consumer_reject(r->c, x->d->tag, x->d->epoch, 1);
        delivery_free(x->d);
        free(x);
    }
    r->ready_tail = &r->ready;
}

/* ---------- retry queues ---------- */

static int retry_queue_name(runner *r, const char *queue, long delay_ms, char *name, size_t n,
                            char *err, size_t errlen)
{
    if (snprintf(name, n, "%s.retry.%.64s.%ld", r->cfg->ns, queue, delay_ms) >= (int)n) {
        snprintf(err, errlen, "retry queue name too long");
        return -1;
    }
    return 0;
}

static int retry_queue(runner *r, const char *queue, long delay_ms, char *name, size_t n,
                       char *err, size_t errlen)
{
    /* Declared on the jobs channel with a synchronous RPC: rabbitmq-c keeps
     * the frames that arrive meanwhile for consumer_on_readable. */
    char jobs_ex[NAME_MAX_LEN];
    name_jobs_exchange(jobs_ex, sizeof jobs_ex, r->cfg->ns);
    if (snprintf(name, n, "%s.retry.%.64s.%ld", r->cfg->ns, queue, delay_ms) >= (int)n) {
        snprintf(err, errlen, "retry queue name too long");
        return -1;
    }
    return consumer_declare_delay_queue(r->c, name, jobs_ex, queue, delay_ms, err, errlen);
}

/* ---------- lifecycle ---------- */

static void amqp_on_fd(runner_watch *w, uint32_t events);

runner *runner_new(const bx_cfg *cfg, int epfd, char *err, size_t errlen)
{
    runner *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->cfg = cfg;
    r->epfd = epfd;
    r->redis_ok = 1;
    r->backoff_ms = 100;
    r->ready_tail = &r->ready;
    snprintf(r->owner, sizeof r->owner, "%s/%ld/%" PRId64, cfg->worker_id, (long)getpid(),
             clock_wall_ms());
    r->amqp_watch.fn = amqp_on_fd;
    r->run_uid = (uid_t)-1;
    r->run_gid = (gid_t)-1;
    if (geteuid() == 0 && cfg->run_as[0] && strcmp(cfg->run_as, "-")) {
        /* a root worker never runs a stranger's command as root */
        struct passwd *pw = getpwnam(cfg->run_as);
        if (!pw || pw->pw_uid == 0) {
            snprintf(err, errlen, "BX_RUN_AS: no unprivileged user '%s'", cfg->run_as);
            free(r);
            return NULL;
        }
        r->run_uid = pw->pw_uid;
        r->run_gid = pw->pw_gid;
    }
    /* two per slot: one in use, one emptied while the next job starts */
    r->dirs = jobdirs_new(cfg->job_tmpdir, r->run_uid, r->run_gid, 2 * cfg->concurrency);
    if (!r->dirs) {
        snprintf(err, errlen, "out of memory");
        free(r);
        return NULL;
    }
    /* what workers killed on this host left behind (SIGKILL, a crash) */
    char serr[512];
    int swept = jobdirs_sweep(cfg->job_tmpdir, serr, sizeof serr);
    if (swept > 0)
        LOGI("event=job_dirs_swept n=%d base=%s", swept, log_q(cfg->job_tmpdir));
    else if (swept < 0)
        LOGW("event=job_dirs_sweep_failed error=%s", log_q(serr));
    r->redis = rds_new(cfg->redis_url, err, errlen);
    r->c = consumer_new(cfg, runner_on_deliver, runner_on_confirm, r);
    if (!r->redis || !r->c) {
        runner_free(r);
        return NULL;
    }
    return r;
}

void runner_free(runner *r)
{
    if (!r)
        return;
    while (r->slots) {
        slot *s = r->slots;
        r->slots = s->next;
        slot_free(s);
    }
    consumer_free(r->c); /* reports unconfirmed publications: they get parked */
    while (r->unsent) {
        outmsg *o = r->unsent;
        r->unsent = o->next;
        outmsg_free(o);
    }
    while (r->deferred) {
        deferred *x = r->deferred;
        r->deferred = x->next;
        delivery_free(x->d);
        free(x);
    }
    drop_ready(r, 0);
    rds_free(r->redis);
    jobdirs_free(r->dirs);
    free(r);
}

static void amqp_lost(runner *r, const char *why)
{
    LOGE("event=amqp_lost error=%s", log_q(why));
    if (r->amqp_registered)
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, consumer_fd(r->c), NULL);
    r->amqp_registered = 0;
    consumer_disconnect(r->c);
    /* deliveries of the old connection are requeued by RabbitMQ */
    while (r->deferred) {
        deferred *x = r->deferred;
        r->deferred = x->next;
        delivery_free(x->d);
        free(x);
    }
    drop_ready(r, 0);
    r->backoff_ms = 100;
    r->reconnect_at = clock_mono_ms() + r->backoff_ms;
}

static void amqp_read(runner *r)
{
    char err[512];
    if (consumer_on_readable(r->c, err, sizeof err))
        amqp_lost(r, err);
}

static void amqp_on_fd(runner_watch *w, uint32_t events)
{
    runner *r = (runner *)((char *)w - offsetof(runner, amqp_watch));
    (void)events;
    amqp_read(r);
}

static void reconnect(runner *r, int64_t now)
{
    char err[512];
    if (consumer_connect(r->c, err, sizeof err)) {
        /* capped exponential backoff; log only the first failure of a
         * series and then each time the delay reaches its cap */
        if (r->backoff_ms <= 100 || r->backoff_ms >= 5000)
            LOGE("event=amqp_connect_failed error=%s retry_in_ms=%" PRId64, log_q(err), r->backoff_ms);
        r->reconnect_at = now + r->backoff_ms;
        r->backoff_ms = r->backoff_ms * 2 > 5000 ? 5000 : r->backoff_ms * 2;
        return;
    }
    LOGI("event=amqp_connected queues=%s concurrency=%d", r->cfg->queues, r->cfg->concurrency);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &r->amqp_watch};
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, consumer_fd(r->c), &ev) == 0)
        r->amqp_registered = 1;
    r->backoff_ms = 100;
    if (r->draining)
        consumer_stop_consuming(r->c);
}

static void flush_unsent(runner *r)
{
    outmsg *list = r->unsent;
    r->unsent = NULL;
    while (list) {
        outmsg *o = list;
        list = o->next;
        o->next = NULL;
        outmsg_try(r, o);
    }
}

static void check_running(runner *r, int64_t now)
{
    char err[512];
    jobstate_item items[256];
    size_t n = 0;
    for (slot *s = r->slots; s && n < 256; s = s->next)
        items[n++] = (jobstate_item){.id = s->job.id, .lock = s->job.lock, .attempt = s->job.attempt};
    if (jobstate_tick(r->redis, r->cfg->ns, r->owner, r->cfg->lease_ms, items, n, err, sizeof err)) {
        LOGW("event=lease_renew_failed error=%s", log_q(err));
        return;
    }
    size_t i = 0;
    for (slot *s = r->slots; s && i < n; s = s->next, i++) {
        if (items[i].cancelled && !s->cancelled) {
            s->cancelled = 1;
            LOGI("event=job_cancelling id=%s", s->job.id);
            proc_terminate(s->p, CANCEL_GRACE_MS);
        }
        if (items[i].lost && !s->lease_lost) {
            s->lease_lost = 1;
            LOGW("event=lease_lost id=%s", s->job.id);
        }
        if (items[i].superseded && !s->superseded && !s->done) {
            /* we were frozen or cut off past the lease, and another worker
             * runs the job now as a newer attempt: this run is a duplicate */
            s->superseded = 1;
            LOGW("event=job_superseded_killed id=%s attempt=%d", s->job.id, s->job.attempt);
            proc_terminate(s->p, CANCEL_GRACE_MS);
        }
    }
    (void)now;
}

/* Live output of running jobs, for GET /v1/jobs/{id}/output. */
static void put_live_output(runner *r, int64_t now)
{
    char err[512];
    for (slot *s = r->slots; s; s = s->next) {
        uint64_t total = proc_outbuf(s->p, PROC_STDOUT)->total + proc_outbuf(s->p, PROC_STDERR)->total;
        if (total == s->output_put_total || now - s->output_put_mono < 1000)
            continue;
        static const char *const names[] = {"stdout", "stderr"};
        for (int i = 0; i < 2; i++) {
            char *kept = NULL;
            size_t len = 0;
            uint64_t t;
            long cut;
            if (proc_output(s->p, i ? PROC_STDERR : PROC_STDOUT, &kept, &len, &t, &cut) == 0) {
                jobstate_put_output(r->redis, r->cfg->ns, s->job.id, names[i], kept ? kept : "",
                                    len, err, sizeof err);
                free(kept);
            }
        }
        s->output_put_total = total;
        s->output_put_mono = now;
    }
}

/* The sweeper: a job whose worker vanished normally comes back through
 * RabbitMQ (the message is requeued when the connection dies) and is
 * taken over. When its message is gone too (a purged or deleted queue),
 * or waits somewhere for longer than BX_LOST_AFTER_S, nothing else would
 * ever end its "running": it is marked lost, with the reason, and a lost
 * event goes to the history. Not final in the fencing sense: a late
 * result of that attempt, or a copy of the message that comes back (then
 * taken over as the next attempt), still wins. */
static void sweep(runner *r)
{
    char err[512], ex[NAME_MAX_LEN], reason[400];
    jobstate_stale *v = NULL;
    size_t n = 0;
    int lost_after_ms = r->cfg->lost_after_s > 2000000 ? 2000000000 : r->cfg->lost_after_s * 1000;
    if (jobstate_sweep(r->redis, r->cfg->ns, r->owner, SWEEP_MS, lost_after_ms, SWEEP_MAX, &v, &n,
                       err, sizeof err)) {
        LOGW("event=sweep_failed error=%s", log_q(err));
        return;
    }
    name_events_exchange(ex, sizeof ex, r->cfg->ns);
    for (size_t i = 0; i < n; i++) {
        char *doc = NULL;
        if (v[i].lost) {
            doc = v[i].doc; /* marked before; its event is sent again */
            v[i].doc = NULL;
        } else {
            json_t *sd = json_loads(v[i].doc, 0, NULL);
            const char *w = json_string_value(json_object_get(sd, "worker"));
            snprintf(reason, sizeof reason,
                     "lost: worker %s stopped renewing its lease and no worker took the job over "
                     "within %d s",
                     w ? w : "?", r->cfg->lost_after_s);
            json_t *ld = lost_doc(v[i].doc, reason);
            doc = ld ? json_dumps(ld, JSON_COMPACT) : NULL;
            json_decref(ld);
            int m = doc ? jobstate_mark_lost(r->redis, r->cfg->ns, v[i].id, v[i].attempt, doc,
                                             r->cfg->status_ttl_s, err, sizeof err)
                        : 0;
            if (m < 0)
                LOGW("event=mark_lost_failed id=%s error=%s", v[i].id, log_q(err));
            if (m != 1) {
                json_decref(sd);
                free(doc);
                continue;
            }
            LOGW("event=job_lost id=%s attempt=%d worker=%s lost_after_s=%d", v[i].id,
                 v[i].attempt, w ? w : "-", r->cfg->lost_after_s);
            json_decref(sd);
        }
        outmsg *o = outmsg_new(NULL, ex, "", doc, strlen(doc));
        if (!o) {
            free(doc);
            continue;
        }
        if (!(o->id = strdup(v[i].id))) {
            outmsg_free(o);
            continue;
        }
        o->attempt = v[i].attempt;
        o->unindex = 1;
        outmsg_try(r, o);
    }
    jobstate_stale_free(v, n);
}

static void heartbeat(runner *r)
{
    char err[512], pid[24], conc[16], running[16], seen[24], host[256] = "";
    snprintf(seen, sizeof seen, "%lld", (long long)clock_wall_ms());
    gethostname(host, sizeof host - 1);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    snprintf(conc, sizeof conc, "%d", r->cfg->concurrency);
    snprintf(running, sizeof running, "%d", r->nrunning);
    char jobs[4096] = "";
    size_t o = 0;
    for (slot *s = r->slots; s && o + 40 < sizeof jobs; s = s->next)
        o += (size_t)snprintf(jobs + o, sizeof jobs - o, "%s%s", o ? "," : "", s->job.id);
    const char *f[] = {"id", r->cfg->worker_id, "host", host, "pid", pid, "queues", r->cfg->queues,
                       "concurrency", conc, "running", running, "jobs", jobs,
                       "state", r->draining ? "draining" : "running", "seen_ms", seen};
    if (jobstate_heartbeat(r->redis, r->cfg->ns, r->cfg->worker_id, 3 * HEARTBEAT_MS / 1000, f,
                           sizeof f / sizeof f[0], err, sizeof err)) {
        LOGW("event=heartbeat_failed error=%s", log_q(err));
        /* the heartbeat is also how an idle worker learns Redis is gone */
        if (r->redis_ok)
            LOGE("event=redis_lost error=%s", log_q(err));
        r->redis_ok = 0;
    } else {
        if (!r->redis_ok)
            LOGI("event=redis_regained");
        r->redis_ok = 1;
    }
}

int64_t runner_tick(runner *r, int64_t now)
{
    int64_t next = now + TICK_MS;
    if (!consumer_connected(r->c) && now >= r->reconnect_at)
        reconnect(r, now);
    if (!consumer_connected(r->c) && r->reconnect_at < next)
        next = r->reconnect_at;
    if (consumer_pending(r->c))
        amqp_read(r);
    if (r->unsent && (consumer_connected(r->c) || !r->redis_ok))
        flush_unsent(r);

    /* deferred deliveries whose time has come */
    deferred **pp = &r->deferred;
    while (*pp) {
        deferred *x = *pp;
        if (x->at_mono <= now) {
            *pp = x->next;
            delivery *d = x->d;
            free(x);
            if (d->epoch == consumer_epoch(r->c) && consumer_connected(r->c))
                runner_on_deliver(r, d);
            else
                delivery_free(d); /* its connection is gone: RabbitMQ requeued it */
            continue;
        }
        if (x->at_mono < next)
            next = x->at_mono;
        pp = &x->next;
    }

    for (slot *s = r->slots, *nx; s; s = nx) {
        nx = s->next;
        if (s->deadline_mono && now >= s->deadline_mono && !s->timed_out && !s->cancelled) {
            s->timed_out = 1;
            LOGI("event=job_timed_out id=%s", s->job.id);
            proc_terminate(s->p, r->cfg->grace_ms);
        }
        if (!s->done)
            proc_tick(s->p, now);
        if (s->done || proc_done(s->p)) {
            slot_finish(s);
            continue;
        }
        int64_t d = proc_next_deadline_ms(s->p);
        if (d > 0 && d < next)
            next = d;
        if (s->deadline_mono && !s->timed_out && s->deadline_mono < next)
            next = s->deadline_mono;
    }
    start_ready(r);
    if (r->slots && now >= r->next_check) {
        check_running(r, now);
        put_live_output(r, now);
        r->next_check = now + TICK_MS;
    }
    if (now >= r->next_sweep) {
        if (consumer_connected(r->c) && !r->draining)
            sweep(r);
        r->next_sweep = now + SWEEP_MS;
    }
    if (now >= r->next_heartbeat) {
        proc_global_reap(); /* stragglers of finished trees */
        heartbeat(r);
        r->next_heartbeat = now + HEARTBEAT_MS;
    }
    if (r->draining && now >= r->drain_deadline && r->slots) {
        /* grace is over: stop what still runs and give it back */
        LOGW("event=drain_timeout running=%d", r->nrunning);
        while (r->slots) {
            slot *s = r->slots;
            r->slots = s->next;
            r->nrunning--;
            proc_kill(s->p, SIGKILL);
            /* free the lease so that the next worker need not wait for it */
            LOGI("event=job_requeued id=%s attempt=%d reason=shutdown", s->job.id, s->job.attempt);
            give_back(r, &s->job);
            consumer_reject(r->c, s->d->tag, s->d->epoch, 1);
            slot_free(s);
        }
    }
    /* the loop ticks after every batch of events: gauges kept here are
     * at most one wake-up behind */
    metric_set(r->m.running, NULL, NULL, r->nrunning);
    metric_set(r->m.amqp_up, NULL, NULL, consumer_connected(r->c) ? 1 : 0);
    metric_set(r->m.redis_up, NULL, NULL, r->redis_ok ? 1 : 0);
    return next;
}

void runner_set_metrics(runner *r, const wmetrics *m)
{
    r->m = *m;
}

void runner_drain(runner *r)
{
    if (r->draining)
        return;
    r->draining = 1;
    r->drain_deadline = clock_mono_ms() + (int64_t)r->cfg->shutdown_grace_s * 1000;
    LOGI("event=draining running=%d grace_s=%d", r->nrunning, r->cfg->shutdown_grace_s);
    consumer_stop_consuming(r->c);
    while (r->deferred) {
        deferred *x = r->deferred;
        r->deferred = x->next;
        consumer_reject(r->c, x->d->tag, x->d->epoch, 1);
        delivery_free(x->d);
        free(x);
    }
    drop_ready(r, 1);
}

int runner_running(const runner *r)
{
    return r->nrunning;
}

int runner_drained(const runner *r)
{
    return r->draining && !r->slots && !r->deferred && !r->ready &&
           (!consumer_connected(r->c) || consumer_unconfirmed(r->c) == 0) &&
           (!r->unsent || !consumer_connected(r->c));
}
