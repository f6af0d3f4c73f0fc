/* route — a table would be overkill for nine paths; a few prefix checks
 * read better and cost nothing. */
#include "route.h"

#include <stdio.h>
#include <string.h>

#include "id.h"

/* Copies the segment [s, s+n) into r->job_id and validates it. */
static void take_id(route *r, const char *s, size_t n)
{
    size_t k = n > ROUTE_ID_MAX ? ROUTE_ID_MAX : n;
    memcpy(r->job_id, s, k);
    r->job_id[k] = 0;
    r->job_id_valid = n == ID_LEN - 1 && id_valid(r->job_id);
}

route_id route_match(const char *path, route *r)
{
    static const char jobs[] = "/v1/jobs";
    memset(r, 0, sizeof *r);
    r->id = R_NONE;
    if (!path)
        return r->id;
    if (!strcmp(path, "/healthz"))
        return r->id = R_HEALTHZ;
    if (!strcmp(path, "/readyz"))
        return r->id = R_READYZ;
    if (!strcmp(path, "/metrics"))
        return r->id = R_METRICS;
    if (!strcmp(path, "/v1/workers"))
        return r->id = R_WORKERS;
    if (!strcmp(path, "/"))
        return r->id = R_DASHBOARD;
    if (!strncmp(path, "/ui/", 4) && path[4] && !strchr(path + 4, '/')) {
        take_id(r, path + 4, strlen(path + 4)); /* the file's name, not an id */
        return r->id = R_DASHBOARD;
    }
    if (strncmp(path, jobs, sizeof jobs - 1))
        return r->id;
    const char *p = path + sizeof jobs - 1;
    if (!*p)
        return r->id = R_JOBS;
    if (*p != '/' || !p[1])
        return r->id; /* "/v1/jobsX" or "/v1/jobs/" */
    p++;
    const char *slash = strchr(p, '/');
    if (!slash) {
        take_id(r, p, strlen(p));
        return r->id = R_JOB;
    }
    if (slash == p)
        return r->id; /* "/v1/jobs//..." */
    take_id(r, p, (size_t)(slash - p));
    if (!strcmp(slash, "/output"))
        return r->id = R_JOB_OUTPUT;
    if (!strcmp(slash, "/events"))
        return r->id = R_JOB_EVENTS;
    r->job_id[0] = 0;
    r->job_id_valid = 0;
    return r->id = R_NONE;
}

static int is_get(const char *m) { return !strcmp(m, "GET") || !strcmp(m, "HEAD"); }

int route_method_ok(route_id id, const char *method)
{
    if (!method)
        return 0;
    switch (id) {
    case R_JOBS:
        return is_get(method) || !strcmp(method, "POST");
    case R_JOB:
        return is_get(method) || !strcmp(method, "DELETE");
    case R_NONE:
        return 0;
    default:
        return is_get(method);
    }
}

const char *route_allow(route_id id)
{
    switch (id) {
    case R_NONE:
        return "";
    case R_JOBS:
        return "GET, HEAD, POST";
    case R_JOB:
        return "GET, HEAD, DELETE";
    default:
        return "GET, HEAD";
    }
}

unsigned route_scope(route_id id, const char *method)
{
    switch (id) {
    case R_NONE:
    case R_HEALTHZ:
    case R_READYZ:
    case R_METRICS:
    case R_DASHBOARD: /* the page asks for a token itself */
        return 0;
    default:
        break;
    }
    if (!strcmp(method, "POST"))
        return SCOPE_SUBMIT;
    if (!strcmp(method, "DELETE"))
        return SCOPE_CANCEL;
    return SCOPE_READ;
}
