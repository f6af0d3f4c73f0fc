/* bx wait — until a job ends. Polls GET /v1/jobs/{id}, quickly at first
 * (most jobs are short) and then every half second, and rides out an API
 * that restarts meanwhile: a wait may outlive any one connection. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "cmd.h"
#include "event.h"

#define WAIT_POLL_FIRST_MS 20
#define WAIT_POLL_MAX_MS 500
#define WAIT_OUTAGE_MAX_MS 60000 /* give up when the API is gone this long */

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts))
        ;
}

int wait_job(bx_cli *c, const char *id, int64_t timeout_ms, json_t **final)
{
    char path[128], err[512];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    int64_t start = clock_mono_ms(), outage_since = -1, delay = WAIT_POLL_FIRST_MS;
    int warned = 0;
    http_resp r = {0};
    json_t *last = NULL;
    *final = NULL;
    for (;;) {
        int got = !http_do(c->http, "GET", path, NULL, 0, &r, err, sizeof err);
        if (got && r.status == 200) {
            json_t *st = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
            const char *state = cli_str(st, "state");
            if (!state) {
                json_decref(st);
                cli_err("wait: the status of job %s from %s is not a job status", id,
                        http_base(c->http));
                goto fail;
            }
            json_decref(last);
            last = st;
            outage_since = -1;
            if (state_is_terminal(state)) {
                *final = last;
                http_resp_release(&r);
                return EX_OK;
            }
        } else if (!got || r.status == 502 || r.status == 503 || r.status == 504) {
            /* the API restarting, or a proxy in front of it: wait it out */
            if (outage_since < 0)
                outage_since = clock_mono_ms();
            if (!warned) {
                if (got)
                    cli_err("wait: HTTP %ld from %s; retrying", r.status, http_base(c->http));
                else
                    cli_err("wait: %s; retrying", err);
                warned = 1;
            }
            if (clock_mono_ms() - outage_since > WAIT_OUTAGE_MAX_MS) {
                cli_err("wait: gave up on job %s: the API has not answered for %d s", id,
                        WAIT_OUTAGE_MAX_MS / 1000);
                goto fail;
            }
        } else {
            json_t *doc = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
            char what[128];
            snprintf(what, sizeof what, "cannot get job %s", id);
            cli_http_error(c, what, &r, doc);
            json_decref(doc);
            goto fail;
        }
        int64_t now = clock_mono_ms();
        if (timeout_ms > 0 && now - start >= timeout_ms) {
            const char *state = cli_str(last, "state");
            cli_err("wait: gave up after %.1f s: job %s is still %s", (double)timeout_ms / 1000,
                    id, state ? state : "unknown");
            *final = last;
            http_resp_release(&r);
            return EX_TIMED_OUT;
        }
        int64_t nap = delay;
        if (timeout_ms > 0 && now + nap > start + timeout_ms)
            nap = start + timeout_ms - now;
        sleep_ms(nap);
        delay = delay * 3 / 2 > WAIT_POLL_MAX_MS ? WAIT_POLL_MAX_MS : delay * 3 / 2;
    }
fail:
    json_decref(last);
    http_resp_release(&r);
    return EX_SERVER;
}

int wait_report(bx_cli *c, json_t *st, int with_output)
{
    const char *id = cli_str(st, "id"), *state = cli_str(st, "state");
    int rc = cli_job_exit(st);
    if (!id)
        id = "?";
    if (!state)
        state = "unknown";
    if (c->json) {
        char *s = json_dumps(st, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
        return rc;
    }
    if (with_output) {
        fflush(stdout);
        if (cli_write_stream(st, "stdout", 1) || cli_write_stream(st, "stderr", 2))
            cli_err("cannot write the job's output");
        static const char *const streams[] = {"stdout", "stderr"};
        for (int i = 0; i < 2; i++) {
            char key[32];
            snprintf(key, sizeof key, "%s_truncated", streams[i]);
            if (!json_is_true(json_object_get(st, key)))
                continue;
            snprintf(key, sizeof key, "%s_bytes", streams[i]);
            json_t *total = json_object_get(st, key);
            cli_err("job %s: %s was cut to its head and tail (the job wrote %lld bytes)", id,
                    streams[i], (long long)json_integer_value(total));
        }
    } else {
        char ex[32], dur[32];
        json_t *d = json_object_get(st, "duration_ms");
        cli_fmt_exit(st, ex, sizeof ex);
        cli_fmt_duration(json_is_integer(d) ? json_integer_value(d) : -1, dur, sizeof dur);
        const char *why = cli_str(st, "reason");
        printf("%s %s exit=%s duration=%s%s%s\n", id, state, ex, dur, why ? " reason=" : "",
               why ? why : "");
        return rc; /* the line says it all */
    }
    /* what the exit code alone cannot say */
    const char *reason = cli_str(st, "reason");
    json_t *sig = json_object_get(st, "signal");
    if (!strcmp(state, ST_TIMED_OUT)) {
        cli_err("job %s timed out", id);
    } else if (!strcmp(state, ST_CANCELLED)) {
        cli_err("job %s was cancelled", id);
    } else if (!strcmp(state, ST_REJECTED)) {
        cli_err("job %s was rejected: %s", id, reason ? reason : "no reason given");
    } else if (!strcmp(state, ST_LOST)) {
        cli_err("job %s was lost: %s", id, reason ? reason : "no reason given");
    } else if (json_is_integer(sig)) {
        char ex[32];
        cli_fmt_exit(st, ex, sizeof ex);
        cli_err("job %s was killed by %s%s", id, ex,
                json_is_true(json_object_get(st, "core_dumped")) ? " (core dumped)" : "");
    } else if (cli_str(st, "limit") && strcmp(state, ST_SUCCEEDED)) {
        cli_err("job %s was stopped: %s", id, cli_str(st, "limit"));
    }
    return rc;
}

static void wait_usage(FILE *f)
{
    fprintf(f,
            "usage: bx wait [--timeout S] [--json] ID\n"
            "\n"
            "Waits until job ID ends, prints how it ended and exits with its exit code\n"
            "(128+N killed by signal N, 124 timed out, 125 cancelled, rejected or lost).\n"
            "\n"
            "  -t, --timeout S   give up after S seconds (exit 124; the job goes on)\n"
            "      --output      also print the job's stdout and stderr to ours\n"
            "      --json        print the job's final status document\n");
}

int cmd_wait(bx_cli *c, int argc, char **argv)
{
    enum { O_JSON = 256, O_OUTPUT };
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"output", no_argument, NULL, O_OUTPUT},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    double timeout_s = 0;
    int o, with_output = 0;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":t:h", opts, NULL)) != -1) {
        switch (o) {
        case 't':
            if (cli_parse_double("--timeout", optarg, 0, 1e9, &timeout_s))
                return EX_USAGE;
            break;
        case O_OUTPUT: with_output = 1; break;
        case O_JSON: c->json = 1; break;
        case 'h': wait_usage(stdout); return EX_OK;
        default: return cmd_bad_option("wait", o, argv);
        }
    }
    if (optind != argc - 1) {
        wait_usage(stderr);
        return EX_USAGE;
    }
    if (!cli_check_id(argv[optind]))
        return EX_USAGE;
    json_t *final = NULL;
    int rc = wait_job(c, argv[optind], (int64_t)(timeout_s * 1000), &final);
    if (rc == EX_OK)
        rc = wait_report(c, final, with_output);
    else if (rc == EX_TIMED_OUT && c->json && final)
        wait_report(c, final, 0); /* the last status, still running */
    json_decref(final);
    return rc;
}
