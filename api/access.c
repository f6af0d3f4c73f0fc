/* access — token, scope and per-token checks of a request. */
#include "access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "log.h"

#define ENV_NAMES_STACK 32

/* Submissions and cancels are audited; reads are not (they change nothing). */
static int audited(const http_req *req)
{
    return (req->r.id == R_JOBS && !strcmp(req->method, "POST")) ||
           (req->r.id == R_JOB && !strcmp(req->method, "DELETE"));
}

static const char *scope_name(unsigned scope)
{
    return scope == SCOPE_SUBMIT ? "submit" : scope == SCOPE_CANCEL ? "cancel" : "read";
}

int access_admit(http_req *req, unsigned scope)
{
    const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    char why[160];
    switch (auth_store_check(req->app->auth, h, scope, req->token_name)) {
    case AUTH_OK:
        return 0;
    case AUTH_MISSING:
        req->token_name[0] = 0;
        if (audited(req))
            audit_refused(req, 401, h ? "not a Bearer token" : "no Authorization header");
        http_add_header(req, "WWW-Authenticate", "Bearer realm=\"bashexec\"");
        http_reply_error(req, 401, "unauthorized", "an Authorization: Bearer token is required");
        return -1;
    case AUTH_INVALID:
        req->token_name[0] = 0;
        if (audited(req))
            audit_refused(req, 401, "unknown token");
        http_add_header(req, "WWW-Authenticate", "Bearer realm=\"bashexec\", error=\"invalid_token\"");
        http_reply_error(req, 401, "unauthorized", "the token is not valid");
        return -1;
    case AUTH_FORBIDDEN:
        snprintf(why, sizeof why, "token '%s' lacks the '%s' scope", req->token_name, scope_name(scope));
        if (audited(req))
            audit_refused(req, 403, why);
        http_add_header(req, "WWW-Authenticate", "Bearer realm=\"bashexec\", error=\"insufficient_scope\"");
        http_reply_error(req, 403, "forbidden", "%s", why);
        return -1;
    }
    return -1;
}

int access_submit(http_req *req, const bx_job *job, auth_rate *rate)
{
    const char *stack_names[ENV_NAMES_STACK] = {0}, **names = stack_names;
    size_t n = job->env ? json_object_size(job->env) : 0, i = 0;
    char why[512];
    if (n > ENV_NAMES_STACK && !(names = malloc(n * sizeof *names))) {
        http_reply_error(req, 503, "unavailable", "out of memory");
        return -1;
    }
    const char *k;
    json_t *v;
    if (job->env)
        json_object_foreach(job->env, k, v) names[i++] = k;
    auth_job_result r = auth_store_job_check(req->app->auth, req->token_name, job->command, job->queue,
                                             names, i, rate, why, sizeof why);
    if (names != stack_names)
        free(names);
    switch (r) {
    case AUTH_JOB_OK:
        return 0;
    case AUTH_JOB_UNKNOWN:
        audit_refused(req, 401, why);
        http_add_header(req, "WWW-Authenticate", "Bearer realm=\"bashexec\", error=\"invalid_token\"");
        http_reply_error(req, 401, "unauthorized", "the token is not valid");
        return -1;
    case AUTH_JOB_COMMAND:
    case AUTH_JOB_QUEUE:
    case AUTH_JOB_ENV:
        break;
    }
    audit_refused(req, 403, why);
    http_reply_error(req, 403, "forbidden", "%s", why);
    return -1;
}

void access_rate_limited(http_req *req, const auth_rate *rate, long retry_ms)
{
    char why[200], ra[24];
    long s = (retry_ms + 999) / 1000;
    if (s < 1)
        s = 1;
    snprintf(ra, sizeof ra, "%ld", s);
    snprintf(why, sizeof why, "token '%s' is over its rate of %s (burst %d): retry in %ld s", req->token_name,
             rate->text, rate->burst, s);
    audit_refused(req, 429, why);
    http_add_header(req, "Retry-After", ra);
    http_reply_error(req, 429, "rate_limited", "%s", why);
}
