/* latency — one job at a time through bashexec's HTTP API: submit, wait
 * until the job is in a terminal state, next. Prints the submit-to-
 * terminal latency as the client sees it (p50, p99, min), measured with
 * a monotonic clock in microseconds: the jobs' own timestamps have only
 * millisecond resolution, too coarse for a 0.5 ms target.
 *
 *   latency -u API_URL -T TOKEN_FILE [-n N] [-w WARMUP] [-m auto|sse|poll]
 *           [-c COMMAND] [-q QUEUE]
 *
 * Waiting: "sse" follows GET /v1/jobs/{id}/events until a terminal state
 * shows (pushed, like Celery's result.get() on Redis pub/sub); "poll"
 * asks GET /v1/jobs/{id} every 200 us on a kept-alive connection; "auto"
 * uses SSE when the API serves it and falls back to polling.
 *
 * Also printed: accepted_p50_ms, the part of it until the API answered
 * 202 (the message is in RabbitMQ, confirmed); server_p50_ms, the same latency from the jobs' own
 * timestamps (finished_at - submitted_at, millisecond resolution), which
 * leaves out the client's HTTP round trips and its polling. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchdoc.h"

typedef struct buf {
    char *p;
    size_t len, cap;
    int terminal; /* SSE: a terminal state was seen */
} buf;

static const char *const terminal[] = {"succeeded", "failed", "timed_out", "cancelled",
                                       "rejected", NULL};

static int is_terminal(const char *s, size_t n)
{
    for (int i = 0; terminal[i]; i++)
        if (strlen(terminal[i]) == n && !memcmp(s, terminal[i], n))
            return 1;
    return 0;
}

/* Does text hold "state": "<terminal>" (any spacing)? */
static int has_terminal_state(const char *p, size_t len)
{
    const char *end = p + len;
    for (const char *s = p; (s = memmem(s, (size_t)(end - s), "\"state\"", 7)); s += 7) {
        const char *q = s + 7;
        while (q < end && (*q == ' ' || *q == ':' || *q == '\t'))
            q++;
        if (q >= end || *q != '"')
            continue;
        const char *v = ++q;
        while (q < end && *q != '"')
            q++;
        if (q < end && is_terminal(v, (size_t)(q - v)))
            return 1;
    }
    return 0;
}

/* The last "key":"<RFC 3339 ms>" in text as ms since the epoch, or -1. */
static int64_t last_time(const char *p, size_t len, const char *key)
{
    char pat[64];
    int pl = snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *end = p + len, *hit = NULL;
    for (const char *s = p; (s = memmem(s, (size_t)(end - s), pat, (size_t)pl)); s += pl)
        hit = s;
    if (!hit)
        return -1;
    hit += pl;
    while (hit < end && (*hit == ' ' || *hit == ':'))
        hit++;
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(hit, "\"%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* finished_at - submitted_at of the document(s) in text, or -1. */
static int64_t server_ms(const char *p, size_t len)
{
    int64_t a = last_time(p, len, "submitted_at"), b = last_time(p, len, "finished_at");
    return a >= 0 && b >= a ? b - a : -1;
}

static size_t on_data(char *d, size_t sz, size_t nm, void *ud)
{
    buf *b = ud;
    size_t n = sz * nm;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = 0;
    return n;
}

/* SSE: stops the transfer (returns 0) once a terminal state was seen. */
static size_t on_sse(char *d, size_t sz, size_t nm, void *ud)
{
    buf *b = ud;
    size_t n = on_data(d, sz, nm, ud);
    if (n && has_terminal_state(b->p, b->len)) {
        b->terminal = 1;
        return 0;
    }
    return n;
}

typedef struct client {
    const char *url;
    int64_t server_ms; /* of the job last waited for; -1 = unknown */
    CURL *post, *get, *sse;
    struct curl_slist *hdrs, *sse_hdrs;
    char *body;
} client;

static CURL *easy(struct curl_slist *h)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 15000L);
    return e;
}

/* POSTs the job; its id into id. 0 or -1. */
static int submit(client *c, char id[64])
{
    buf b = {0};
    char url[512];
    snprintf(url, sizeof url, "%s/v1/jobs", c->url);
    curl_easy_setopt(c->post, CURLOPT_URL, url);
    curl_easy_setopt(c->post, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->post, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->post, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(c->post);
    long status = 0;
    curl_easy_getinfo(c->post, CURLINFO_RESPONSE_CODE, &status);
    int ret = -1;
    if (rc != CURLE_OK || status != 202) {
        fprintf(stderr, "latency: POST /v1/jobs: %s (HTTP %ld) %.200s\n",
                rc ? curl_easy_strerror(rc) : "", status, b.p ? b.p : "");
        goto out;
    }
    json_t *doc = json_loadb(b.p, b.len, 0, NULL);
    const char *s = json_string_value(json_object_get(doc, "id"));
    if (s && strlen(s) < 64) {
        strcpy(id, s);
        ret = 0;
    } else
        fprintf(stderr, "latency: an answer without an id\n");
    json_decref(doc);
out:
    free(b.p);
    return ret;
}

/* 1 terminal, 0 not yet, -1 error (poll mode). */
static int poll_once(client *c, const char *id)
{
    buf b = {0};
    char url[512];
    snprintf(url, sizeof url, "%s/v1/jobs/%s", c->url, id);
    curl_easy_setopt(c->get, CURLOPT_URL, url);
    curl_easy_setopt(c->get, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->get, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(c->get);
    long status = 0;
    curl_easy_getinfo(c->get, CURLINFO_RESPONSE_CODE, &status);
    int r = -1;
    if (rc == CURLE_OK && status == 200) {
        r = has_terminal_state(b.p, b.len);
        if (r)
            c->server_ms = server_ms(b.p, b.len);
    }
    else if (rc == CURLE_OK && status == 404)
        r = 0; /* not visible yet */
    else
        fprintf(stderr, "latency: GET %s: %s (HTTP %ld)\n", url, curl_easy_strerror(rc), status);
    free(b.p);
    return r;
}

/* 1 terminal seen, 0 the stream ended or is not served, -1 error. */
static int sse_wait(client *c, const char *id)
{
    buf b = {0};
    char url[512];
    snprintf(url, sizeof url, "%s/v1/jobs/%s/events", c->url, id);
    curl_easy_setopt(c->sse, CURLOPT_URL, url);
    curl_easy_setopt(c->sse, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(c->sse, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(c->sse);
    long status = 0;
    curl_easy_getinfo(c->sse, CURLINFO_RESPONSE_CODE, &status);
    int r = b.terminal ? 1 : (rc == CURLE_OK || status != 200) ? 0 : -1;
    if (r == 1)
        c->server_ms = server_ms(b.p, b.len);
    free(b.p);
    return r;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int wait_job(client *c, const char *id, int use_sse)
{
    c->server_ms = -1;
    if (use_sse)
        return sse_wait(c, id);
    int64_t deadline = bench_now_ns() + (int64_t)30 * 1000000000;
    for (;;) {
        int r = poll_once(c, id);
        if (r)
            return r;
        if (bench_now_ns() > deadline) {
            fprintf(stderr, "latency: job %s not finished after 30 s\n", id);
            return -1;
        }
        usleep(200);
    }
}

int main(int argc, char **argv)
{
    const char *url = NULL, *token_file = NULL, *mode = "auto", *cmd = "true", *queue = NULL;
    long n = 200, warmup = 10;
    int o;
    while ((o = getopt(argc, argv, "u:T:n:w:m:c:q:")) != -1) {
        switch (o) {
        case 'u': url = optarg; break;
        case 'T': token_file = optarg; break;
        case 'n': n = strtol(optarg, NULL, 10); break;
        case 'w': warmup = strtol(optarg, NULL, 10); break;
        case 'm': mode = optarg; break;
        case 'c': cmd = optarg; break;
        case 'q': queue = optarg; break;
        default: goto usage;
        }
    }
    if (!url || !token_file || n < 1 || warmup < 0 ||
        (strcmp(mode, "auto") && strcmp(mode, "sse") && strcmp(mode, "poll")))
        goto usage;
    char token[512] = "";
    FILE *tf = fopen(token_file, "r");
    if (!tf || !fgets(token, sizeof token, tf)) {
        fprintf(stderr, "latency: cannot read the token from %s\n", token_file);
        if (tf)
            fclose(tf);
        return 1;
    }
    fclose(tf);
    token[strcspn(token, " \r\n")] = 0;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    client c = {.url = url};
    char auth[600];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    c.hdrs = curl_slist_append(NULL, auth);
    c.hdrs = curl_slist_append(c.hdrs, "Content-Type: application/json");
    c.sse_hdrs = curl_slist_append(NULL, auth);
    c.sse_hdrs = curl_slist_append(c.sse_hdrs, "Accept: text/event-stream");
    json_t *req = json_pack("{s:s}", "command", cmd);
    if (queue)
        json_object_set_new(req, "queue", json_string(queue));
    c.body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    c.post = easy(c.hdrs);
    c.get = easy(c.hdrs);
    c.sse = easy(c.sse_hdrs);
    if (c.sse) /* a stream that says nothing more is given up sooner */
        curl_easy_setopt(c.sse, CURLOPT_TIMEOUT_MS, 5000L);
    int64_t *lat = malloc((size_t)n * sizeof *lat), *srv = malloc((size_t)n * sizeof *srv),
            *acc = malloc((size_t)n * sizeof *acc);
    long nsrv = 0;
    int rc = 1, use_sse = strcmp(mode, "poll") != 0;
    if (!c.body || !c.post || !c.get || !c.sse || !lat || !srv || !acc)
        goto out;

    char id[64];
    for (long i = 0; i < warmup + n; i++) {
        int64_t t0 = bench_now_ns();
        if (submit(&c, id))
            goto out;
        int64_t t_acc = bench_now_ns();
        int r = wait_job(&c, id, use_sse);
        if (r <= 0 && use_sse && !strcmp(mode, "auto")) {
            /* no SSE here: poll from now on, this job included */
            use_sse = 0;
            fprintf(stderr, "latency: no terminal state over SSE; polling every 200 us\n");
            if (wait_job(&c, id, 0) <= 0)
                goto out;
            i--; /* not a fair sample */
            continue;
        }
        if (r <= 0) {
            fprintf(stderr, "latency: waiting for job %s failed\n", id);
            goto out;
        }
        if (i >= warmup) {
            lat[i - warmup] = bench_now_ns() - t0;
            acc[i - warmup] = t_acc - t0;
            if (c.server_ms >= 0)
                srv[nsrv++] = c.server_ms;
        }
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    qsort(srv, (size_t)nsrv, sizeof *srv, cmp_i64);
    qsort(acc, (size_t)n, sizeof *acc, cmp_i64);
    printf("{\"n\":%ld,\"method\":\"%s\",\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"min_ms\":%.4f", n,
           use_sse ? "sse" : "poll", (double)lat[n / 2] / 1e6, (double)lat[(n * 99) / 100] / 1e6,
           (double)lat[0] / 1e6);
    printf(",\"accepted_p50_ms\":%.4f", (double)acc[n / 2] / 1e6);
    if (nsrv)
        printf(",\"server_p50_ms\":%lld", (long long)srv[nsrv / 2]);
    printf("}\n");
    rc = 0;
out:
    free(lat);
    free(srv);
    free(acc);
    free(c.body);
    if (c.post)
        curl_easy_cleanup(c.post);
    if (c.get)
        curl_easy_cleanup(c.get);
    if (c.sse)
        curl_easy_cleanup(c.sse);
    curl_slist_free_all(c.hdrs);
    curl_slist_free_all(c.sse_hdrs);
    curl_global_cleanup();
    return rc;
usage:
    fprintf(stderr, "usage: latency -u API_URL -T TOKEN_FILE [-n N] [-w WARMUP] "
                    "[-m auto|sse|poll] [-c COMMAND] [-q QUEUE]\n");
    return 2;
}
