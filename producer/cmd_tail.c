/* bx tail — a job's output as it is produced, until the job ends; then
 * bx exits as bx wait does.
 *
 * First GET /v1/jobs/{id}/events (Server-Sent Events). Each event's data
 * is JSON: an output chunk {"stream": "stdout"|"stderr", "data": "...",
 * "encoding": "utf-8"|"base64"} (event "output", or "stdout"/"stderr"),
 * or a status document with "state" (event "state"). When the API has
 * no event stream, or it ends before the job does, bx polls
 * /v1/jobs/{id}/output instead and prints what is new. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "cmd.h"
#include "event.h"
#include "sse.h"

#define TAIL_POLL_MIN_MS 100
#define TAIL_POLL_MAX_MS 1000

typedef struct tail {
    bx_cli *c;
    const char *id;
    size_t written[2]; /* bytes of stdout, stderr printed so far */
    int done;          /* a terminal state came */
    int bad;           /* a write failed, or the stream was garbage */
} tail;

static int stream_index(const char *s)
{
    if (!s)
        return -1;
    return !strcmp(s, "stdout") ? 0 : !strcmp(s, "stderr") ? 1 : -1;
}

static void emit(tail *t, int idx, const char *buf, size_t len)
{
    if (cli_write_all(idx == 0 ? 1 : 2, buf, len))
        t->bad = 1;
    t->written[idx] += len;
}

static int on_event(void *arg, const char *event, const char *data, size_t len)
{
    tail *t = arg;
    json_t *doc = json_loadb(data, len, JSON_DECODE_ANY, NULL);
    int idx = stream_index(event);
    if (t->c->json) {
        /* one JSON document a line, for a program to read */
        printf("%s\n", data);
        fflush(stdout);
    }
    if (!json_is_object(doc)) {
        if (idx >= 0 && !t->c->json)
            emit(t, idx, data, len); /* plain text on a stdout/stderr event */
        json_decref(doc);
        return t->bad;
    }
    const char *state = cli_str(doc, "state");
    int sidx = stream_index(cli_str(doc, "stream"));
    if (sidx >= 0)
        idx = sidx;
    if (idx >= 0 && !t->c->json) {
        char *buf;
        size_t n;
        if (!output_decode(doc, idx == 0 ? "stdout" : "stderr", &buf, &n)) {
            emit(t, idx, buf, n);
            free(buf);
        }
    }
    if (state && state_is_terminal(state))
        t->done = 1;
    json_decref(doc);
    return t->done || t->bad;
}

static int on_data(void *arg, const char *data, size_t len)
{
    sse_parser *p = arg;
    return sse_feed(p, data, len) != 0;
}

/* 1 when the events endpoint carried the job to its end, 0 when bx
 * should poll instead, EX_SERVER when the API is unreachable. */
static int tail_events(tail *t)
{
    char path[160], err[512];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", t->id);
    sse_parser p;
    sse_init(&p, on_event, t);
    http_resp r = {0};
    int stopped, rc;
    if (http_stream(t->c->http, path, on_data, NULL, &p, &r, &stopped, err, sizeof err)) {
        cli_err("%s", err);
        rc = -1;
    } else if (r.status == 401 || r.status == 403 || r.status == 404) {
        json_t *doc = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
        char what[128];
        snprintf(what, sizeof what, "cannot follow job %s", t->id);
        /* 404 can also be an API without the endpoint: the output poll
         * tells the two apart */
        if (r.status != 404)
            cli_http_error(t->c, what, &r, doc);
        json_decref(doc);
        rc = r.status == 404 ? 0 : -1;
    } else {
        rc = t->done ? 1 : 0;
    }
    sse_release(&p);
    http_resp_release(&r);
    return rc;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts))
        ;
}

/* Polls status and output until the job ends. 0 or EX_SERVER. */
static int tail_poll(tail *t)
{
    static const char *const names[] = {"stdout", "stderr"};
    char path[128], what[128];
    int64_t delay = TAIL_POLL_MIN_MS;
    snprintf(path, sizeof path, "/v1/jobs/%s", t->id);
    snprintf(what, sizeof what, "cannot follow job %s", t->id);
    while (!t->done) {
        json_t *st = NULL;
        int rc = cli_call(t->c, "GET", path, NULL, 0, what, 0, &st);
        if (rc)
            return rc;
        const char *state = cli_str(st, "state");
        /* the output fetched after a terminal status is the whole of it */
        t->done = state && state_is_terminal(state);
        json_decref(st);
        int grew = 0;
        for (int i = 0; i < 2; i++) {
            char *buf;
            size_t n;
            if ((rc = output_fetch(t->c, t->id, names[i], 0, &buf, &n)))
                return rc;
            if (n > t->written[i]) {
                size_t from = t->written[i];
                emit(t, i, buf + from, n - from);
                grew = 1;
            }
            free(buf);
        }
        if (t->bad)
            return EX_SERVER;
        if (t->done)
            break;
        delay = grew ? TAIL_POLL_MIN_MS : (delay * 2 > TAIL_POLL_MAX_MS ? TAIL_POLL_MAX_MS : delay * 2);
        sleep_ms(delay);
    }
    return EX_OK;
}

static void tail_usage(FILE *f)
{
    fprintf(f,
            "usage: bx tail [--json] ID\n"
            "\n"
            "Prints job ID's stdout and stderr to ours as the job writes them, from the\n"
            "start, until the job ends; then exits with its exit code (as bx wait).\n"
            "--json prints each event of the stream as one line of JSON instead.\n");
}

int cmd_tail(bx_cli *c, int argc, char **argv)
{
    tail t = {.c = c};
    int rc;
    if (!cmd_plain_args(c, argc, argv, tail_usage, 1, &t.id, &rc))
        return rc;
    rc = tail_events(&t);
    if (rc < 0)
        return EX_SERVER;
    if (t.bad) {
        cli_err("tail: cannot write the job's output");
        return EX_SERVER;
    }
    if (rc == 0 && (rc = tail_poll(&t)))
        return rc;
    /* how it ended: the exit code, and a word when the code cannot say it */
    json_t *final = NULL;
    char path[128], what[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", t.id);
    snprintf(what, sizeof what, "cannot get job %s", t.id);
    if ((rc = cli_call(c, "GET", path, NULL, 0, what, 0, &final)))
        return rc;
    const char *state = cli_str(final, "state");
    if (!c->json && state && strcmp(state, ST_SUCCEEDED) && strcmp(state, ST_FAILED))
        cli_err("job %s %s", t.id, state);
    rc = cli_job_exit(final);
    json_decref(final);
    return rc;
}
