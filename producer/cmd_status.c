/* bx status and bx output — one job's status document, and its
 * captured output, for a person or (--json) a program. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "cmd.h"

/* Prints "key   value" with newlines in value shown as \n, so that a
 * multi-line command keeps to one row. */
static void row(const char *key, const char *value)
{
    printf("%-10s ", key);
    for (const char *p = value; *p; p++) {
        if (*p == '\n')
            fputs("\\n", stdout);
        else if (*p == '\r')
            fputs("\\r", stdout);
        else
            putchar(*p);
    }
    putchar('\n');
}

static void row_str(json_t *st, const char *key, const char *label)
{
    const char *v = cli_str(st, key);
    if (v && *v)
        row(label, v);
}

static void row_stream(json_t *st, const char *stream)
{
    char key[32], line[160];
    snprintf(key, sizeof key, "%s_bytes", stream);
    json_t *total = json_object_get(st, key);
    json_t *kept = json_object_get(st, stream);
    snprintf(key, sizeof key, "%s_truncated", stream);
    int cut = json_is_true(json_object_get(st, key));
    snprintf(key, sizeof key, "%s_encoding", stream);
    const char *enc = cli_str(st, key);
    if (!total && !kept)
        return;
    long long n = json_is_integer(total) ? (long long)json_integer_value(total)
                                         : (long long)json_string_length(kept);
    snprintf(line, sizeof line, "%lld bytes%s%s%s", n, cut ? ", cut to head and tail" : "",
             enc && strcmp(enc, "utf-8") ? ", stored as " : "",
             enc && strcmp(enc, "utf-8") ? enc : "");
    row(stream, line);
}

static void print_status(json_t *st)
{
    char buf[512], ex[32];
    json_t *v;
    row_str(st, "id", "id");
    row_str(st, "state", "state");
    cli_fmt_exit(st, ex, sizeof ex);
    if (strcmp(ex, "-"))
        row("exit", ex);
    if (json_is_true(json_object_get(st, "core_dumped")))
        row("core", "dumped");
    row_str(st, "limit", "limit");
    row_str(st, "reason", "reason");
    row_str(st, "command", "command");
    const char *queue = cli_str(st, "queue");
    if (queue) {
        snprintf(buf, sizeof buf, "%s, priority %lld", queue,
                 (long long)json_integer_value(json_object_get(st, "priority")));
        row("queue", buf);
    }
    if (json_is_integer(v = json_object_get(st, "attempt"))) {
        json_t *max = json_object_get(st, "max_retries");
        snprintf(buf, sizeof buf, "%lld of %lld", (long long)json_integer_value(v),
                 1 + (long long)json_integer_value(max));
        row("attempt", buf);
    }
    row_str(st, "worker", "worker");
    row_str(st, "lock", "lock");
    row_str(st, "idempotency_key", "idem key");
    json_t *labels = json_object_get(st, "labels");
    if (json_object_size(labels)) {
        const char *k;
        json_t *lv;
        size_t off = 0;
        buf[0] = 0;
        json_object_foreach(labels, k, lv) {
            int w = snprintf(buf + off, sizeof buf - off, "%s%s=%s", off ? ", " : "", k,
                             json_string_value(lv) ? json_string_value(lv) : "?");
            if (w < 0 || (size_t)w >= sizeof buf - off)
                break;
            off += (size_t)w;
        }
        row("labels", buf);
    }
    row_str(st, "submitted_at", "submitted");
    row_str(st, "started_at", "started");
    row_str(st, "finished_at", "finished");
    if (json_is_integer(v = json_object_get(st, "duration_ms"))) {
        cli_fmt_duration(json_integer_value(v), buf, sizeof buf);
        row("duration", buf);
    }
    row_stream(st, "stdout");
    row_stream(st, "stderr");
    row_str(st, "request_id", "request");
}

static void status_usage(FILE *f)
{
    fprintf(f,
            "usage: bx status [--json] ID\n"
            "\n"
            "Shows job ID: its state, exit code (or signal, or limit), command, times\n"
            "and duration. --json prints the status document as the API gives it.\n");
}

int cmd_status(bx_cli *c, int argc, char **argv)
{
    const char *id;
    int rc;
    if (!cmd_plain_args(c, argc, argv, status_usage, 1, &id, &rc))
        return rc;
    char path[128], what[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    snprintf(what, sizeof what, "cannot get job %s", id);
    json_t *st = NULL;
    rc = cli_call(c, "GET", path, NULL, 0, what, 1, &st);
    if (rc == EX_OK && !c->json)
        print_status(st);
    json_decref(st);
    return rc;
}

int output_decode(json_t *doc, const char *stream, char **out, size_t *len)
{
    static const char *const keys[] = {"data", "output", "content", "text", NULL};
    json_t *v = NULL;
    for (int i = 0; keys[i] && !json_is_string(v); i++)
        v = json_object_get(doc, keys[i]);
    if (!json_is_string(v))
        v = json_object_get(doc, stream);
    if (!json_is_string(v))
        return -1;
    char key[32];
    snprintf(key, sizeof key, "%s_encoding", stream);
    const char *enc = cli_str(doc, "encoding");
    if (!enc)
        enc = cli_str(doc, key);
    if (enc && !strcmp(enc, "base64"))
        return (*out = base64_decode(json_string_value(v), json_string_length(v), len)) ? 0 : -1;
    *len = json_string_length(v);
    if (!(*out = malloc(*len + 1)))
        return -1;
    memcpy(*out, json_string_value(v), *len + 1);
    return 0;
}

int output_fetch(bx_cli *c, const char *id, const char *stream, int print_json, char **out,
                 size_t *len)
{
    char path[160], what[160];
    http_resp r = {0};
    json_t *doc = NULL;
    int rc;
    *out = NULL;
    *len = 0;
    snprintf(path, sizeof path, "/v1/jobs/%s/output?stream=%s", id, stream);
    snprintf(what, sizeof what, "cannot get the %s of job %s", stream, id);
    if ((rc = cli_request(c, "GET", path, NULL, 0, &r, &doc)))
        goto out;
    if (r.status != 200) {
        rc = cli_http_error(c, what, &r, doc);
        goto out;
    }
    if (print_json && c->json) {
        cli_write_all(1, r.body ? r.body : "", r.len);
        if (!r.len || r.body[r.len - 1] != '\n')
            cli_write_all(1, "\n", 1);
    }
    if (strstr(r.ctype, "json")) {
        if (!doc || output_decode(doc, stream, out, len)) {
            cli_err("%s: the answer from %s holds no output", what, http_base(c->http));
            rc = EX_SERVER;
        }
    } else {
        /* raw bytes: take the body over */
        *out = r.body ? r.body : calloc(1, 1);
        *len = r.len;
        r.body = NULL;
    }
out:
    json_decref(doc);
    http_resp_release(&r);
    return rc;
}

static void output_usage(FILE *f)
{
    fprintf(f,
            "usage: bx output [--stream stdout|stderr] [--json] ID\n"
            "\n"
            "Prints what job ID wrote: its stdout to our stdout and its stderr to our\n"
            "stderr, or only the stream asked for (to stdout). While the job runs, what\n"
            "it has written so far.\n");
}

int cmd_output(bx_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"stream", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *stream = NULL;
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":s:h", opts, NULL)) != -1) {
        switch (o) {
        case 's':
            if (strcmp(optarg, "stdout") && strcmp(optarg, "stderr")) {
                cli_err("output: --stream is stdout or stderr, not '%s'", optarg);
                return EX_USAGE;
            }
            stream = optarg;
            break;
        case 'J': c->json = 1; break;
        case 'h': output_usage(stdout); return EX_OK;
        default: return cmd_bad_option("output", o, argv);
        }
    }
    if (optind != argc - 1) {
        output_usage(stderr);
        return EX_USAGE;
    }
    const char *id = argv[optind];
    if (!cli_check_id(id))
        return EX_USAGE;
    static const char *const both[] = {"stdout", "stderr", NULL};
    const char *one[] = {stream, NULL};
    const char *const *streams = stream ? one : both;
    for (int i = 0; streams[i]; i++) {
        char *buf;
        size_t len;
        int rc = output_fetch(c, id, streams[i], 1, &buf, &len);
        if (rc)
            return rc;
        if (!c->json && cli_write_all(stream || i == 0 ? 1 : 2, buf, len)) {
            cli_err("output: cannot write the %s of job %s: %s", streams[i], id, strerror(errno));
            free(buf);
            return EX_SERVER;
        }
        free(buf);
    }
    return EX_OK;
}
