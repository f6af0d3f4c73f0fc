/* route — which endpoint a request path names, the methods it allows and
 * the token scope each method needs. Pure: no I/O, unit-tested. */
#ifndef BX_API_ROUTE_H
#define BX_API_ROUTE_H

#include <stddef.h>

typedef enum route_id {
    R_NONE,       /* no such path: 404 */
    R_HEALTHZ,    /* /healthz */
    R_READYZ,     /* /readyz */
    R_METRICS,    /* /metrics */
    R_JOBS,       /* /v1/jobs */
    R_JOB,        /* /v1/jobs/{id} */
    R_JOB_OUTPUT, /* /v1/jobs/{id}/output */
    R_JOB_EVENTS, /* /v1/jobs/{id}/events */
    R_WORKERS,    /* /v1/workers */
    R_DASHBOARD,  /* / and /ui/{name}: the web page; {name} in job_id */
} route_id;

/* Token scopes, as bits. admin holds every other one. */
#define SCOPE_SUBMIT 0x1u
#define SCOPE_READ 0x2u
#define SCOPE_CANCEL 0x4u
#define SCOPE_ADMIN 0x8u

#define ROUTE_ID_MAX 64 /* longest {id} segment we keep; longer is still "bad" */

typedef struct route {
    route_id id;
    char job_id[ROUTE_ID_MAX + 1]; /* the {id} segment, cut to ROUTE_ID_MAX */
    int job_id_valid;              /* 1 when job_id is a canonical UUID */
} route;

/* Matches path (no query string). Fills r; returns r->id. */
route_id route_match(const char *path, route *r);

/* 1 when method is allowed on id (HEAD counts as GET). */
int route_method_ok(route_id id, const char *method);
/* The Allow header's value for id ("" for R_NONE). */
const char *route_allow(route_id id);
/* The scope method needs on id; 0 = no token needed. */
unsigned route_scope(route_id id, const char *method);

#endif
