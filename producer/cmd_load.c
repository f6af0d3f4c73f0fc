/* bx load — N jobs through C connections at once (libcurl multi), the
 * submit rate, and with --wait the end-to-end rate and the latency from
 * submission to the end state. Used by the benchmarks.
 *
 * Latencies come from the jobs' own timestamps (finished_at minus
 * submitted_at, both written by the system), so how often bx polls
 * does not change them; bx polls the oldest unfinished jobs first, a
 * few more than ended in the last round, which keeps the polling light
 * next to the load. */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "cmd.h"
#include "event.h"
#include "id.h"

#define LOAD_MAX_JOBS 10000000L
#define LOAD_MAX_CONC 1024L

typedef struct load_job {
    char id[ID_LEN];    /* "" until the API gave one */
    int64_t sent_mono;  /* when bx sent the submit */
    int64_t lat_ms;     /* submitted to terminal; -1 until then */
    int64_t end_wall;   /* wall-clock ms of the end */
    const char *state;  /* the terminal state (a constant of event.h) */
    int gone;           /* its status could not be had: no longer polled */
} load_job;

typedef struct slot {
    CURL *e;
    http_resp r;
    struct curl_slist *hdrs;
    size_t job;         /* index into jobs */
    int busy;
} slot;

typedef struct load {
    bx_cli *c;
    CURLM *m;
    slot *slots;
    int nslots;
    load_job *jobs;
    size_t njobs;
    const char *body;   /* the submit request, the same for every job */
    size_t body_len;
    /* counts */
    size_t submitted, errors, finished;
    int conn_failed;    /* the API is unreachable: stop sending */
    char first_err[512];
    char what[64];
} load;

enum { REQ_SUBMIT, REQ_STATUS };

static const char *const terminal_states[] = {ST_SUCCEEDED, ST_FAILED, ST_TIMED_OUT,
                                              ST_CANCELLED, ST_REJECTED, NULL};

static void note_error(load *L, const char *msg)
{
    L->errors++;
    if (!L->first_err[0])
        snprintf(L->first_err, sizeof L->first_err, "%s", msg);
}

/* What the answer to a request for job j says. */
static void on_done(load *L, int kind, slot *s, CURLcode rc)
{
    char err[512];
    load_job *j = &L->jobs[s->job];
    if (http_finish(L->c->http, s->e, rc, &s->r, err, sizeof err)) {
        note_error(L, err);
        L->conn_failed = 1;
        return;
    }
    json_t *doc = json_loadb(s->r.body ? s->r.body : "", s->r.len, 0, NULL);
    if (s->r.status < 200 || s->r.status > 299) {
        if (kind == REQ_STATUS && s->r.status >= 502 && s->r.status <= 504)
            goto out; /* the API restarting: the next poll asks again */
        const char *msg = cli_error_message(doc);
        snprintf(err, sizeof err, "%s (HTTP %ld)", msg ? msg : "no message", s->r.status);
        note_error(L, err);
        if (s->r.status == 401 || s->r.status == 403)
            L->conn_failed = 1; /* every other request would say the same */
        if (kind == REQ_STATUS)
            j->gone = 1; /* asking again would get the same answer */
        goto out;
    }
    if (kind == REQ_SUBMIT) {
        const char *id = cli_str(doc, "id");
        if (!id || strlen(id) >= ID_LEN) {
            note_error(L, "an answer without a job id");
            goto out;
        }
        strcpy(j->id, id);
        L->submitted++;
        goto out;
    }
    const char *state = cli_str(doc, "state");
    if (!state || !state_is_terminal(state))
        goto out;
    for (int i = 0; terminal_states[i]; i++)
        if (!strcmp(state, terminal_states[i]))
            j->state = terminal_states[i];
    int64_t sub = cli_parse_time(cli_str(doc, "submitted_at"));
    int64_t fin = cli_parse_time(cli_str(doc, "finished_at"));
    if (sub >= 0 && fin >= sub) {
        j->lat_ms = fin - sub;
        j->end_wall = fin;
    } else {
        /* a document without the times: what bx saw has to do */
        j->lat_ms = clock_mono_ms() - j->sent_mono;
        j->end_wall = clock_wall_ms();
    }
    L->finished++;
out:
    json_decref(doc);
}

/* Sends one request for each job in idx[0..n), C at a time. 0, or -1
 * when libcurl itself failed. */
static int run_batch(load *L, int kind, const size_t *idx, size_t n)
{
    size_t next = 0;
    int inflight = 0;
    while ((next < n && !L->conn_failed) || inflight) {
        for (int i = 0; i < L->nslots && next < n && !L->conn_failed; i++) {
            slot *s = &L->slots[i];
            if (s->busy)
                continue;
            char path[128];
            s->job = idx[next++];
            load_job *j = &L->jobs[s->job];
            int bad;
            if (kind == REQ_SUBMIT) {
                j->sent_mono = clock_mono_ms();
                bad = http_prepare(L->c->http, s->e, "POST", "/v1/jobs", L->body, L->body_len,
                                   &s->r, &s->hdrs);
            } else {
                snprintf(path, sizeof path, "/v1/jobs/%s", j->id);
                bad = http_prepare(L->c->http, s->e, "GET", path, NULL, 0, &s->r, &s->hdrs);
            }
            if (bad || curl_multi_add_handle(L->m, s->e) != CURLM_OK) {
                curl_slist_free_all(s->hdrs);
                s->hdrs = NULL;
                cli_err("load: cannot start a request (out of memory?)");
                return -1;
            }
            s->busy = 1;
            inflight++;
        }
        int running;
        if (curl_multi_perform(L->m, &running) != CURLM_OK) {
            cli_err("load: libcurl failed");
            return -1;
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(L->m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            slot *s = NULL;
            for (int i = 0; i < L->nslots; i++)
                if (L->slots[i].e == msg->easy_handle)
                    s = &L->slots[i];
            if (!s)
                continue;
            CURLcode rc = msg->data.result; /* msg is gone after remove_handle */
            curl_multi_remove_handle(L->m, s->e);
            on_done(L, kind, s, rc);
            curl_slist_free_all(s->hdrs);
            s->hdrs = NULL;
            http_resp_release(&s->r);
            s->busy = 0;
            inflight--;
        }
        if (inflight && curl_multi_poll(L->m, NULL, 0, 1000, NULL) != CURLM_OK) {
            cli_err("load: libcurl failed");
            return -1;
        }
    }
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The nearest-rank percentile p (1..100) of the sorted v[0..n), n > 0. */
static int64_t pct(const int64_t *v, size_t n, unsigned p)
{
    size_t k = (n * p + 99) / 100;
    return v[k ? k - 1 : 0];
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts))
        ;
}

#define POLL_MIN_MS 20

/* Polls the unfinished jobs, oldest first, until none is left or
 * timeout_ms (0 = none) passes. */
static int wait_all(load *L, int64_t timeout_ms)
{
    size_t *pending = malloc(L->njobs * sizeof *pending), np = 0;
    if (!pending) {
        cli_err("load: out of memory");
        return -1;
    }
    for (size_t i = 0; i < L->njobs; i++)
        if (L->jobs[i].id[0])
            pending[np++] = i;
    /* Jobs end about in the order they were sent. Each round asks for the
     * oldest k unfinished, k twice what ended in the round before (and a
     * few): polling stays a few requests per job, not a busy loop that
     * takes the CPU from the system it measures. */
    size_t window = (size_t)L->nslots * 4 < 64 ? 64 : (size_t)L->nslots * 4, k = 8;
    int64_t start = clock_mono_ms(), delay = POLL_MIN_MS;
    int rc = 0;
    while (np && !L->conn_failed) {
        size_t w = np < k ? np : k, before = L->finished;
        if (run_batch(L, REQ_STATUS, pending, w)) {
            rc = -1;
            break;
        }
        size_t kept = 0;
        for (size_t i = 0; i < np; i++)
            if (L->jobs[pending[i]].lat_ms < 0 && !L->jobs[pending[i]].gone)
                pending[kept++] = pending[i];
        size_t ended = np - kept;
        np = kept;
        if (timeout_ms > 0 && clock_mono_ms() - start > timeout_ms) {
            cli_err("load: gave up waiting after %.1f s with %zu jobs unfinished",
                    (double)timeout_ms / 1000, np);
            rc = -1;
            break;
        }
        k = 2 * ended + 8 < window ? 2 * ended + 8 : window;
        if (!np)
            break;
        /* nothing ended: the oldest jobs are still running */
        delay = L->finished == before ? (delay * 2 > 200 ? 200 : delay * 2) : POLL_MIN_MS;
        sleep_ms(delay);
    }
    free(pending);
    return rc;
}

/* A label value that needs no quoting anywhere it is shown or queried. */
static int run_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (!n || n >= ID_LEN)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("-_.", *s))
            return 0;
    return 1;
}

static void load_usage(FILE *f)
{
    fprintf(f,
            "usage: bx load [-n N] [-c CONCURRENCY] [--wait] [OPTIONS] [--] COMMAND...\n"
            "\n"
            "Submits COMMAND as N jobs over C connections at once and reports the\n"
            "submit rate; with --wait, also the end-to-end rate and the p50/p99 latency\n"
            "from submission to the end state (the jobs' own timestamps). The jobs are\n"
            "labelled bx_load=<run id>, so 'bx history --label bx_load=ID' finds them.\n"
            "\n"
            "  -n, --jobs N            jobs to submit (default 100)\n"
            "  -c, --concurrency C     requests in flight at once (default 8)\n"
            "  -w, --wait              wait until every job has ended\n"
            "  -q, --queue Q           queue of the jobs\n"
            "  -p, --priority N        priority of the jobs, 0 to 9\n"
            "      --wait-timeout S    give up waiting after S seconds (exit 124)\n"
            "      --run-id ID         the label's value (default: a new id), so that\n"
            "                          another program can watch for the run's jobs\n"
            "      --json              print the results as one JSON document\n");
}

int cmd_load(bx_cli *c, int argc, char **argv)
{
    enum { O_WAIT_TIMEOUT = 256, O_JSON, O_RUN_ID };
    static const struct option opts[] = {
        {"jobs", required_argument, NULL, 'n'},
        {"concurrency", required_argument, NULL, 'c'},
        {"wait", no_argument, NULL, 'w'},
        {"queue", required_argument, NULL, 'q'},
        {"priority", required_argument, NULL, 'p'},
        {"wait-timeout", required_argument, NULL, O_WAIT_TIMEOUT},
        {"json", no_argument, NULL, O_JSON},
        {"run-id", required_argument, NULL, O_RUN_ID},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long njobs = 100, conc = 8, prio = -1;
    double wait_timeout = 0;
    const char *queue = NULL, *given_run_id = NULL;
    int o, wait = 0, rc = EX_USAGE;
    load L = {.c = c};
    json_t *req = NULL;
    char *body = NULL, *cmdline = NULL;
    size_t *all = NULL;
    int64_t *lat = NULL;

    opterr = 0;
    while ((o = getopt_long(argc, argv, "+:n:c:wq:p:h", opts, NULL)) != -1) {
        switch (o) {
        case 'n':
            if (cli_parse_long("--jobs", optarg, 1, LOAD_MAX_JOBS, &njobs))
                return EX_USAGE;
            break;
        case 'c':
            if (cli_parse_long("--concurrency", optarg, 1, LOAD_MAX_CONC, &conc))
                return EX_USAGE;
            break;
        case 'w': wait = 1; break;
        case 'q': queue = optarg; break;
        case 'p':
            if (cli_parse_long("--priority", optarg, 0, 9, &prio))
                return EX_USAGE;
            break;
        case O_WAIT_TIMEOUT:
            if (cli_parse_double("--wait-timeout", optarg, 0, 1e9, &wait_timeout))
                return EX_USAGE;
            break;
        case O_JSON: c->json = 1; break;
        case O_RUN_ID:
            if (!run_id_ok(optarg)) {
                cli_err("load: --run-id must be 1 to %d letters, digits, '-', '_' or '.'",
                        ID_LEN - 1);
                return EX_USAGE;
            }
            given_run_id = optarg;
            break;
        case 'h': load_usage(stdout); return EX_OK;
        default: return cmd_bad_option("load", o, argv);
        }
    }
    if (optind >= argc) {
        cli_err("load: no command given");
        load_usage(stderr);
        return EX_USAGE;
    }
    size_t clen = 0;
    for (int i = optind; i < argc; i++)
        clen += strlen(argv[i]) + 1;
    rc = EX_SERVER;
    if (!(cmdline = malloc(clen)))
        goto oom;
    cmdline[0] = 0;
    for (int i = optind; i < argc; i++) {
        if (i > optind)
            strcat(cmdline, " ");
        strcat(cmdline, argv[i]);
    }
    char run_id[ID_LEN];
    if (given_run_id)
        snprintf(run_id, sizeof run_id, "%s", given_run_id);
    else
        id_new(run_id);
    json_t *cmd_v = json_string(cmdline);
    if (!cmd_v) {
        cli_err("load: the command is not valid UTF-8 text");
        rc = EX_USAGE;
        goto out;
    }
    req = json_pack("{s:o,s:{s:s}}", "command", cmd_v, "labels", "bx_load", run_id);
    if (!req)
        goto oom;
    if (queue)
        json_object_set_new(req, "queue", json_string(queue));
    if (prio >= 0)
        json_object_set_new(req, "priority", json_integer(prio));
    if (!(body = json_dumps(req, JSON_COMPACT)))
        goto oom;

    L.body = body;
    L.body_len = strlen(body);
    L.njobs = (size_t)njobs;
    L.nslots = (int)(conc < njobs ? conc : njobs);
    if (!(L.jobs = calloc(L.njobs, sizeof *L.jobs)) ||
        !(L.slots = calloc((size_t)L.nslots, sizeof *L.slots)) ||
        !(all = malloc(L.njobs * sizeof *all)) || !(L.m = curl_multi_init()))
        goto oom;
    curl_multi_setopt(L.m, CURLMOPT_MAXCONNECTS, (long)L.nslots);
    for (int i = 0; i < L.nslots; i++)
        if (!(L.slots[i].e = curl_easy_init()))
            goto oom;
    for (size_t i = 0; i < L.njobs; i++) {
        all[i] = i;
        L.jobs[i].lat_ms = -1;
    }

    int64_t t0_mono = clock_mono_ms(), t0_wall = clock_wall_ms();
    if (run_batch(&L, REQ_SUBMIT, all, L.njobs))
        goto out;
    double submit_s = (double)(clock_mono_ms() - t0_mono) / 1000;
    if (submit_s <= 0)
        submit_s = 0.001;
    int waited = wait && L.submitted && !L.conn_failed;
    int wait_failed = waited && wait_all(&L, (int64_t)(wait_timeout * 1000));
    double wall_s = (double)(clock_mono_ms() - t0_mono) / 1000;

    /* the results */
    size_t nl = 0, counts[5] = {0};
    int64_t end_wall = t0_wall;
    if (!(lat = malloc(L.njobs * sizeof *lat)))
        goto oom;
    for (size_t i = 0; i < L.njobs; i++) {
        load_job *j = &L.jobs[i];
        if (j->lat_ms < 0)
            continue;
        lat[nl++] = j->lat_ms;
        if (j->end_wall > end_wall)
            end_wall = j->end_wall;
        for (int k = 0; terminal_states[k]; k++)
            if (j->state == terminal_states[k])
                counts[k]++;
    }
    qsort(lat, nl, sizeof *lat, cmp_i64);
    double e2e_s = (double)(end_wall - t0_wall) / 1000;
    if (e2e_s <= 0)
        e2e_s = 0.001;
    if (c->json) {
        json_t *res = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:f,s:f}", "run_id", run_id, "command",
                                cmdline, "jobs", (json_int_t)njobs, "concurrency",
                                (json_int_t)L.nslots, "submitted", (json_int_t)L.submitted,
                                "errors", (json_int_t)L.errors, "submit_s", submit_s,
                                "submit_per_s", (double)L.submitted / submit_s);
        if (res && L.first_err[0])
            json_object_set_new(res, "first_error", json_string(L.first_err));
        if (res && waited) {
            json_t *states = json_object();
            for (int k = 0; terminal_states[k]; k++)
                json_object_set_new(states, terminal_states[k], json_integer((json_int_t)counts[k]));
            json_object_set_new(res, "finished", json_integer((json_int_t)nl));
            json_object_set_new(res, "states", states);
            json_object_set_new(res, "e2e_s", json_real(e2e_s));
            json_object_set_new(res, "e2e_per_s", json_real((double)nl / e2e_s));
            json_object_set_new(res, "wall_s", json_real(wall_s));
            if (nl)
                json_object_set_new(res, "latency_ms",
                                    json_pack("{s:I,s:I,s:I,s:I}", "min", (json_int_t)lat[0],
                                              "p50", (json_int_t)pct(lat, nl, 50), "p99",
                                              (json_int_t)pct(lat, nl, 99), "max",
                                              (json_int_t)lat[nl - 1]));
        }
        char *s = res ? json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(res);
    } else {
        printf("submitted %zu of %ld jobs in %.3f s: %.1f jobs/s (%d connections, %zu errors)\n",
               L.submitted, njobs, submit_s, (double)L.submitted / submit_s, L.nslots, L.errors);
        if (waited) {
            printf("finished  %zu jobs in %.3f s: %.1f jobs/s end to end\n", nl, e2e_s,
                   (double)nl / e2e_s);
            if (nl)
                printf("latency   submit to end: p50 %lld ms, p99 %lld ms, max %lld ms\n",
                       (long long)pct(lat, nl, 50), (long long)pct(lat, nl, 99),
                       (long long)lat[nl - 1]);
            printf("states   ");
            for (int k = 0; terminal_states[k]; k++)
                if (counts[k])
                    printf(" %s %zu", terminal_states[k], counts[k]);
            printf("\n");
        }
        printf("label     bx_load=%s\n", run_id);
    }
    if (L.first_err[0])
        cli_err("load: %zu requests failed; the first: %s", L.errors, L.first_err);
    rc = L.errors || L.conn_failed ? EX_SERVER : wait_failed ? EX_TIMED_OUT : EX_OK;
    goto out;
oom:
    cli_err("load: out of memory");
out:
    if (L.slots) {
        for (int i = 0; i < L.nslots; i++) {
            if (L.slots[i].busy)
                curl_multi_remove_handle(L.m, L.slots[i].e);
            if (L.slots[i].e)
                curl_easy_cleanup(L.slots[i].e);
            curl_slist_free_all(L.slots[i].hdrs);
            http_resp_release(&L.slots[i].r);
        }
    }
    if (L.m)
        curl_multi_cleanup(L.m);
    free(L.slots);
    free(L.jobs);
    free(all);
    free(lat);
    free(body);
    free(cmdline);
    json_decref(req);
    return rc;
}
