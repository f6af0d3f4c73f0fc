/* cli — see cli.h. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "utf8.h"
#include "event.h"
#include "id.h"

void cli_err(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fflush(stdout); /* keep the order a person sees when both are a terminal */
    fprintf(stderr, "bx: %s\n", line);
}

const char *cli_str(json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }

int cli_request(bx_cli *c, const char *method, const char *path, const char *body,
                size_t body_len, http_resp *r, json_t **doc)
{
    char err[512];
    if (doc)
        *doc = NULL;
    if (http_do(c->http, method, path, body, body_len, r, err, sizeof err)) {
        cli_err("%s", err);
        return EX_SERVER;
    }
    if (doc && r->body && r->len)
        *doc = json_loadb(r->body, r->len, 0, NULL);
    return 0;
}

const char *cli_error_message(json_t *doc)
{
    json_t *e = json_object_get(doc, "error");
    const char *m = cli_str(e, "message");
    if (!m)
        m = json_string_value(e); /* {"error": "text"} */
    return m;
}

int cli_http_error(bx_cli *c, const char *what, const http_resp *r, json_t *doc)
{
    const char *msg = cli_error_message(doc);
    char body[200] = "";
    if (!msg && r->body && r->len) {
        /* not our API's error document: show the start of what came */
        size_t n = r->len < sizeof body - 1 ? r->len : sizeof body - 1;
        memcpy(body, r->body, n);
        body[n] = 0;
        for (char *p = body; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        msg = body;
    }
    if (r->status == 401) {
        if (c->token_note[0])
            cli_err("unauthorized: check BX_API_TOKEN (%s)", c->token_note);
        else
            cli_err("unauthorized: check BX_API_TOKEN");
        return EX_SERVER;
    }
    if (r->status == 403) {
        cli_err("forbidden: %s (the token lacks the scope this needs)", msg ? msg : what);
        return EX_SERVER;
    }
    if (msg && *msg)
        cli_err("%s: %s (HTTP %ld)", what, msg, r->status);
    else
        cli_err("%s: HTTP %ld from %s", what, r->status, http_base(c->http));
    return EX_SERVER;
}

int cli_call(bx_cli *c, const char *method, const char *path, const char *body, size_t body_len,
             const char *what, int print_json, json_t **doc)
{
    http_resp r = {0};
    json_t *d = NULL;
    int rc = cli_request(c, method, path, body, body_len, &r, &d);
    if (rc)
        goto out;
    if (r.status < 200 || r.status > 299) {
        rc = cli_http_error(c, what, &r, d);
        goto out;
    }
    if (!d && r.status != 204) {
        cli_err("%s: the answer from %s is not JSON", what, http_base(c->http));
        rc = EX_SERVER;
        goto out;
    }
    if (c->json && print_json) {
        cli_write_all(1, r.body ? r.body : "", r.len);
        if (!r.len || r.body[r.len - 1] != '\n')
            cli_write_all(1, "\n", 1);
    }
out:
    http_resp_release(&r);
    if (rc || !doc)
        json_decref(d);
    else
        *doc = d;
    return rc;
}

int cli_check_id(const char *id)
{
    if (id_valid(id))
        return 1;
    cli_err("'%s' is not a job id (a UUID such as 0190b2a4-7c1e-7d3a-9f00-1a2b3c4d5e6f)", id);
    return 0;
}

int cli_parse_long(const char *opt, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        cli_err("%s: '%s' is not a whole number from %ld to %ld", opt, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *opt, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max) {
        cli_err("%s: '%s' is not a number from %g to %g", opt, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_size(const char *opt, const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    long mul = 1;
    if (!errno && end != s && *end && !end[1]) {
        switch (*end) {
        case 'k': case 'K': mul = 1L << 10; end++; break;
        case 'm': case 'M': mul = 1L << 20; end++; break;
        case 'g': case 'G': mul = 1L << 30; end++; break;
        }
    }
    if (errno || end == s || *end || v < 1 || v > LONG_MAX / mul) {
        cli_err("%s: '%s' is not a size in bytes (such as 65536, 64k, 16M)", opt, s);
        return -1;
    }
    *out = v * mul;
    return 0;
}

int cli_parse_kv(const char *opt, const char *s, char *k, size_t kn, const char **v)
{
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || (size_t)(eq - s) >= kn) {
        cli_err("%s: '%s' is not KEY=VALUE", opt, s);
        return -1;
    }
    memcpy(k, s, (size_t)(eq - s));
    k[eq - s] = 0;
    *v = eq + 1;
    return 0;
}

int cli_job_exit(json_t *st)
{
    const char *state = cli_str(st, "state");
    json_t *code = json_object_get(st, "exit_code");
    json_t *sig = json_object_get(st, "signal");
    if (!state)
        return EX_SERVER;
    if (!strcmp(state, ST_SUCCEEDED))
        return 0;
    if (!strcmp(state, ST_TIMED_OUT))
        return EX_TIMED_OUT;
    if (!strcmp(state, ST_CANCELLED) || !strcmp(state, ST_REJECTED) || !strcmp(state, ST_LOST))
        return EX_CANCELLED;
    if (json_is_integer(sig) && json_integer_value(sig) > 0 && json_integer_value(sig) < 128)
        return 128 + (int)json_integer_value(sig);
    if (json_is_integer(code) && json_integer_value(code) > 0 && json_integer_value(code) < 256)
        return (int)json_integer_value(code);
    return 1; /* failed, and neither a code nor a signal says how */
}

int cli_write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int cli_write_stream(json_t *st, const char *stream, int fd)
{
    json_t *v = json_object_get(st, stream);
    if (!json_is_string(v))
        return 0;
    char key[32];
    snprintf(key, sizeof key, "%s_encoding", stream);
    const char *enc = cli_str(st, key);
    if (enc && !strcmp(enc, "base64")) {
        size_t n;
        char *raw = base64_decode(json_string_value(v), json_string_length(v), &n);
        if (!raw) {
            cli_err("the job's %s is not valid base64", stream);
            return -1;
        }
        int rc = cli_write_all(fd, raw, n);
        free(raw);
        return rc;
    }
    return cli_write_all(fd, json_string_value(v), json_string_length(v));
}

void cli_fmt_duration(int64_t ms, char *out, size_t n)
{
    if (ms < 0)
        snprintf(out, n, "-");
    else if (ms < 1000)
        snprintf(out, n, "%lldms", (long long)ms);
    else if (ms < 60000)
        snprintf(out, n, "%.2fs", (double)ms / 1000);
    else if (ms < 3600000)
        snprintf(out, n, "%lldm%02llds", (long long)(ms / 60000), (long long)(ms / 1000 % 60));
    else
        snprintf(out, n, "%lldh%02lldm", (long long)(ms / 3600000),
                 (long long)(ms / 60000 % 60));
}

static const char *sig_name(int sig)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    return sigabbrev_np(sig);
#else
    (void)sig;
    return NULL;
#endif
}

void cli_fmt_exit(json_t *st, char *out, size_t n)
{
    const char *state = cli_str(st, "state");
    json_t *code = json_object_get(st, "exit_code");
    json_t *sig = json_object_get(st, "signal");
    if (json_is_integer(sig)) {
        const char *name = sig_name((int)json_integer_value(sig));
        if (name)
            snprintf(out, n, "SIG%s", name);
        else
            snprintf(out, n, "signal %lld", (long long)json_integer_value(sig));
    } else if (json_is_integer(code)) {
        snprintf(out, n, "%lld", (long long)json_integer_value(code));
    } else if (state && !strcmp(state, ST_TIMED_OUT)) {
        snprintf(out, n, "timeout");
    } else if (cli_str(st, "limit")) {
        snprintf(out, n, "%s", cli_str(st, "limit"));
    } else {
        snprintf(out, n, "-");
    }
}

int64_t cli_parse_time(const char *s)
{
    int64_t ms;
    return clock_parse_rfc3339(s, &ms) ? -1 : ms;
}
