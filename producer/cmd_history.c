/* bx history and bx workers — the two tables: jobs newest first (paged
 * by id, following "next" with --all), and the live workers. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cmd.h"

/* Width of the terminal on stdout; when stdout is not one, COLUMNS or a
 * width that keeps commands readable in a pipe. */
static int term_width(void)
{
    struct winsize ws;
    if (isatty(1) && !ioctl(1, TIOCGWINSZ, &ws) && ws.ws_col >= 40)
        return ws.ws_col;
    const char *cols = getenv("COLUMNS");
    if (cols && atoi(cols) >= 40)
        return atoi(cols);
    return 160;
}

/* Prints s on one line in at most width bytes: newlines and tabs as
 * spaces, cut with "..." at a character boundary when longer. */
static void print_cut(const char *s, int width)
{
    size_t n = strlen(s), w = width > 3 ? (size_t)width : 3;
    size_t end = n;
    if (n > w) {
        end = w - 3;
        while (end > 0 && ((unsigned char)s[end] & 0xc0) == 0x80)
            end--; /* never print half a UTF-8 character */
    }
    for (size_t i = 0; i < end; i++)
        putchar(s[i] == '\n' || s[i] == '\t' || s[i] == '\r' ? ' ' : s[i]);
    if (end < n)
        fputs("...", stdout);
    putchar('\n');
}

static void history_row(json_t *j, int width)
{
    char ex[32], dur[32];
    json_t *d = json_object_get(j, "duration_ms");
    const char *id = cli_str(j, "id"), *state = cli_str(j, "state"), *cmd = cli_str(j, "command");
    cli_fmt_exit(j, ex, sizeof ex);
    cli_fmt_duration(json_is_integer(d) ? json_integer_value(d) : -1, dur, sizeof dur);
    int used = printf("%-36s  %-9s  %-7s  %8s  ", id ? id : "?", state ? state : "?", ex, dur);
    /* a narrow terminal wraps rather than show no command at all */
    print_cut(cmd ? cmd : "", width - used < 24 ? 24 : width - used);
}

static void history_usage(FILE *f)
{
    fprintf(f,
            "usage: bx history [OPTIONS]\n"
            "\n"
            "Lists jobs, newest first: id, state, exit code, duration and command.\n"
            "\n"
            "  -s, --state S       only jobs in state S (queued, running, succeeded, failed,\n"
            "                      timed_out, cancelled, rejected)\n"
            "  -q, --queue Q       only jobs of queue Q\n"
            "  -l, --label K=V     only jobs labelled K=V\n"
            "      --since TIME    only jobs submitted at or after TIME (RFC 3339, such\n"
            "                      as 2026-11-23T11:46:35Z, or a date 2026-11-23)\n"
            "      --until TIME    only jobs submitted before TIME\n"
            "  -n, --limit N       jobs per page, 1 to 1000 (default 50)\n"
            "  -b, --before ID     start after job ID (the 'next' of the page before)\n"
            "  -a, --all           every page, not only the first\n"
            "      --json          print the API's JSON (with --all, every page's jobs\n"
            "                      in one document)\n");
}

int cmd_history(bx_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'},
        {"queue", required_argument, NULL, 'q'},
        {"label", required_argument, NULL, 'l'},
        {"limit", required_argument, NULL, 'n'},
        {"before", required_argument, NULL, 'b'},
        {"all", no_argument, NULL, 'a'},
        {"since", required_argument, NULL, 'S'},
        {"until", required_argument, NULL, 'U'},
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char query[4096] = "";
    size_t qlen = 0;
    char *before = NULL;
    int o, all = 0, labels = 0, rc = EX_USAGE;
    long limit;
    json_t *merged = NULL;

    opterr = 0;
    while ((o = getopt_long(argc, argv, ":s:q:l:n:b:ah", opts, NULL)) != -1) {
        char k[256], kv[1024], *esc = NULL;
        const char *v, *name = NULL;
        switch (o) {
        case 's': name = "state"; esc = http_escape(optarg); break;
        case 'q': name = "queue"; esc = http_escape(optarg); break;
        case 'S': name = "since"; esc = http_escape(optarg); break;
        case 'U': name = "until"; esc = http_escape(optarg); break;
        case 'l':
            if (labels++) {
                cli_err("history: one --label at a time");
                goto out;
            }
            /* the API's form is label=k:v */
            if (cli_parse_kv("--label", optarg, k, sizeof k, &v))
                goto out;
            snprintf(kv, sizeof kv, "%s:%s", k, v);
            name = "label";
            esc = http_escape(kv);
            break;
        case 'n':
            if (cli_parse_long("--limit", optarg, 1, 1000, &limit))
                goto out;
            name = "limit";
            esc = http_escape(optarg);
            break;
        case 'b':
            if (!cli_check_id(optarg))
                goto out;
            free(before);
            before = strdup(optarg);
            break;
        case 'a': all = 1; break;
        case 'J': c->json = 1; break;
        case 'h': history_usage(stdout); rc = EX_OK; goto out;
        default: rc = cmd_bad_option("history", o, argv); goto out;
        }
        if (name) {
            int w = esc ? snprintf(query + qlen, sizeof query - qlen, "&%s=%s", name, esc) : -1;
            free(esc);
            if (w < 0 || (size_t)w >= sizeof query - qlen) {
                cli_err("history: the filters are too long");
                goto out;
            }
            qlen += (size_t)w;
        }
    }
    if (optind != argc) {
        cli_err("history: unexpected argument '%s'", argv[optind]);
        goto out;
    }
    int width = term_width(), page = 0;
    if (c->json && all && !(merged = json_array())) {
        rc = EX_SERVER;
        goto out;
    }
    for (;;) {
        char path[4200];
        json_t *doc = NULL;
        snprintf(path, sizeof path, "/v1/jobs?%s%s%s", before ? "before=" : "",
                 before ? before : "", qlen ? query + (before ? 0 : 1) : "");
        if ((rc = cli_call(c, "GET", path, NULL, 0, "cannot list jobs", c->json && !all, &doc)))
            goto out;
        json_t *jobs = json_object_get(doc, "jobs"), *j;
        const char *next = cli_str(doc, "next");
        size_t i;
        if (!json_is_array(jobs)) {
            json_decref(doc);
            cli_err("history: the answer from %s holds no job list", http_base(c->http));
            rc = EX_SERVER;
            goto out;
        }
        if (!c->json && page == 0) /* after the first answer: no table of nothing */
            printf("%-36s  %-9s  %-7s  %8s  %s\n", "ID", "STATE", "EXIT", "DURATION", "COMMAND");
        json_array_foreach(jobs, i, j) {
            if (merged)
                json_array_append(merged, j);
            else if (!c->json)
                history_row(j, width);
        }
        page++;
        size_t got = json_array_size(jobs);
        free(before);
        before = next ? strdup(next) : NULL;
        json_decref(doc); /* jobs and next were borrowed from it */
        if (!all || !before || !got)
            break;
        fflush(stdout); /* a long --all shows as it goes */
    }
    if (merged) {
        json_t *out_doc = json_pack("{s:O,s:n}", "jobs", merged, "next");
        char *s = out_doc ? json_dumps(out_doc, JSON_COMPACT) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(out_doc);
    } else if (!c->json && before && isatty(1)) {
        cli_err("more: bx history --before %s (or --all)", before);
    }
    rc = EX_OK;
out:
    free(before);
    json_decref(merged);
    return rc;
}

/* A worker field for the table: strings as they are, numbers printed,
 * arrays of strings joined with ','. */
static void field(json_t *v, char *out, size_t n)
{
    size_t i, off = 0;
    json_t *e;
    out[0] = 0;
    if (json_is_string(v)) {
        snprintf(out, n, "%s", json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(out, n, "%lld", (long long)json_integer_value(v));
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            int w = snprintf(out + off, n - off, "%s%s", off ? "," : "",
                             json_string_value(e) ? json_string_value(e) : "?");
            if (w < 0 || (size_t)w >= n - off)
                break;
            off += (size_t)w;
        }
    } else {
        snprintf(out, n, "-");
    }
}

static void workers_usage(FILE *f)
{
    fprintf(f,
            "usage: bx workers [--json]\n"
            "\n"
            "Lists the live workers (those whose heartbeat is in Redis): id, host, pid,\n"
            "queues, jobs running of the concurrency.\n");
}

int cmd_workers(bx_cli *c, int argc, char **argv)
{
    const char *none;
    int rc;
    if (!cmd_plain_args(c, argc, argv, workers_usage, 0, &none, &rc))
        return rc;
    json_t *doc = NULL;
    rc = cli_call(c, "GET", "/v1/workers", NULL, 0, "cannot list workers", 1, &doc);
    if (rc || c->json)
        goto out;
    json_t *list = json_is_array(doc) ? doc : json_object_get(doc, "workers"), *w;
    size_t i;
    if (!json_is_array(list)) {
        cli_err("workers: the answer from %s holds no worker list", http_base(c->http));
        rc = EX_SERVER;
        goto out;
    }
    printf("%-32s  %-20s  %7s  %-16s  %s\n", "ID", "HOST", "PID", "QUEUES", "RUNNING");
    json_array_foreach(list, i, w) {
        char id[128], host[128], pid[32], queues[256], conc[32];
        json_t *running = json_object_get(w, "running");
        if (!running)
            running = json_object_get(w, "running_jobs");
        long long nrun = json_is_array(running) ? (long long)json_array_size(running)
                                                : (long long)json_integer_value(running);
        field(json_object_get(w, "id"), id, sizeof id);
        field(json_object_get(w, "host"), host, sizeof host);
        field(json_object_get(w, "pid"), pid, sizeof pid);
        field(json_object_get(w, "queues"), queues, sizeof queues);
        field(json_object_get(w, "concurrency"), conc, sizeof conc);
        printf("%-32s  %-20s  %7s  %-16s  %lld/%s\n", id, host, pid, queues, nrun, conc);
    }
out:
    json_decref(doc);
    return rc;
}
