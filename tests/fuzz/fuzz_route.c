/* fuzz_route — the API's request router and history query parser. The
 * input is a request line as a client sends it, "METHOD PATH?QUERY"
 * (just "PATH?QUERY" means GET); the query is split and unescaped the
 * way libmicrohttpd does before bx-api sees it. The whole input is also
 * tried as a history time (since=, until=). */
/* fuzz-sources: api/route.c api/histq.c lib/event.c lib/job.c lib/utf8.c lib/clock.c lib/id.c */
#include <ctype.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "fuzz.h"
#include "histq.h"
#include "id.h"
#include "route.h"

#define QUERY_MAX 32 /* as api/handlers_jobs.c: more is a 400 before parsing */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* In place, as libmicrohttpd's argument parsing: '+' is a space, "%XX"
 * is its byte, a '%' not followed by two hex digits stays. */
static void unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        int h, l;
        if (*p == '+') {
            *o++ = ' ';
        } else if (*p == '%' && (h = hexval(p[1])) >= 0 && (l = hexval(p[2])) >= 0) {
            *o++ = (char)(h << 4 | l);
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
}

static void check_route(const char *method, const char *path)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE", "PUT", "OPTIONS", ""};
    route r;
    route_id id = route_match(path, &r);
    FUZZ_CHECK(id == r.id, "route id %d, route's %d", (int)id, (int)r.id);
    FUZZ_CHECK(strlen(r.job_id) <= ROUTE_ID_MAX, "job id not cut");
    FUZZ_CHECK(!r.job_id_valid || (id_valid(r.job_id) && strstr(path, r.job_id)),
               "job id '%s' valid but not a canonical id of the path", r.job_id);
    int has_id = id == R_JOB || id == R_JOB_OUTPUT || id == R_JOB_EVENTS || id == R_DASHBOARD;
    FUZZ_CHECK(has_id || (!r.job_id[0] && !r.job_id_valid), "job id on a route without one");
    FUZZ_CHECK((id == R_NONE) == !route_allow(id)[0], "Allow '%s' on route %d", route_allow(id),
               (int)id);
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        int ok = route_method_ok(id, methods[i]);
        unsigned scope = route_scope(id, methods[i]);
        FUZZ_CHECK(ok == 0 || ok == 1, "method_ok %d", ok);
        FUZZ_CHECK(!ok || strstr(route_allow(id), methods[i]), "%s allowed but not in Allow",
                   methods[i]);
        FUZZ_CHECK(!(scope & ~(SCOPE_SUBMIT | SCOPE_READ | SCOPE_CANCEL)), "scope %#x", scope);
        /* everything but the probes and the page (which asks for a token
         * itself) needs a token: a new route must say which scope */
        FUZZ_CHECK(!ok || scope || id == R_HEALTHZ || id == R_READYZ || id == R_METRICS ||
                       id == R_DASHBOARD,
                   "%s on route %d needs no token", methods[i], (int)id);
    }
    route_method_ok(id, method);
    route_scope(id, method);
}

/* A normalized time must parse back to itself: the records are compared
 * with it as strings. */
static void check_time(const char *s)
{
    int64_t ms = 0, ms2 = 0;
    char norm[CLOCK_RFC3339_LEN];
    if (clock_parse_rfc3339(s, &ms))
        return;
    FUZZ_CHECK(ms >= 0, "negative time %lld from '%s'", (long long)ms, s);
    clock_rfc3339(ms, norm);
    FUZZ_CHECK(clock_parse_rfc3339(norm, &ms2) == 0 && ms2 == ms,
               "'%s' is %lld ms, written '%s', which reads back as %lld", s, (long long)ms, norm,
               (long long)ms2);
}

/* The time the store is queried with is the one the client gave. */
static void check_normalized(const char *given, const char *norm)
{
    int64_t a = 0, b = 0;
    FUZZ_CHECK(norm && clock_parse_rfc3339(given, &a) == 0, "'%s' accepted, yet not a time", given);
    FUZZ_CHECK(clock_parse_rfc3339(norm, &b) == 0 && a == b, "'%s' (%lld ms) is queried as '%s'", given,
               (long long)a, norm);
}

static void check_query(char *query)
{
    histq_kv kv[QUERY_MAX];
    size_t n = 0;
    char err[512] = "";
    for (char *save = NULL, *a = strtok_r(query, "&", &save); a; a = strtok_r(NULL, "&", &save)) {
        if (n == QUERY_MAX)
            return;
        char *eq = strchr(a, '=');
        if (eq)
            *eq++ = 0;
        unescape(a);
        if (eq)
            unescape(eq);
        kv[n].k = a;
        kv[n++].v = eq;
    }
    histq h;
    if (histq_parse(kv, n, &h, err, sizeof err)) {
        FUZZ_CHECK(err[0], "refused without a reason");
        return;
    }
    FUZZ_CHECK(h.q.limit >= 1 && h.q.limit <= HISTQ_LIMIT_MAX, "limit %d", h.q.limit);
    FUZZ_CHECK(!h.q.state || state_is_valid(h.q.state), "state '%s'", h.q.state);
    FUZZ_CHECK(!h.q.before || id_valid(h.q.before), "before '%s'", h.q.before);
    FUZZ_CHECK(!h.q.queue || strlen(h.q.queue) <= JOB_QUEUE_MAX, "queue too long");
    FUZZ_CHECK(!h.q.label_key == !h.q.label_value, "half a label");
    if (h.q.label_key)
        FUZZ_CHECK(*h.q.label_key && strlen(h.q.label_key) <= JOB_NAME_MAX &&
                       !strchr(h.q.label_key, '.') && h.q.label_key[0] != '$' && *h.q.label_value,
                   "label '%s'", h.q.label_key);
    for (size_t i = 0; i < n; i++) {
        if (kv[i].k && !strcmp(kv[i].k, "since"))
            check_normalized(kv[i].v, h.q.since);
        if (kv[i].k && !strcmp(kv[i].k, "until"))
            check_normalized(kv[i].v, h.q.until);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    check_time(s);
    /* only the first line is the request line */
    char *line = strsep(&(char *){s}, "\r\n");
    const char *method = "GET";
    char *target = line, *sp = strchr(line, ' ');
    if (sp) {
        *sp = 0;
        method = line;
        target = sp + 1;
    }
    char *q = strchr(target, '?');
    if (q)
        *q++ = 0;
    check_route(method, target);
    if (q)
        check_query(q);
    free(s);
    return 0;
}
