/* handlers_dashboard — the web dashboard: GET / and GET /ui/{name}.
 *
 * The files of api/dashboard/ are built into bx-api (handlers_dashboard.c
 * includes them with the assembler's .incbin), so the binary serves them
 * with nothing beside it and no build step of their own. They need no
 * token: the page asks for one and sends it with each API call. */
#ifndef BX_API_HANDLERS_DASHBOARD_H
#define BX_API_HANDLERS_DASHBOARD_H

#include <stddef.h>

#include "http.h"

typedef struct dashboard_asset {
    const char *name;         /* "" for the page itself (GET /), else {name} of /ui/{name} */
    const char *content_type;
    const char *data;         /* static, not NUL-terminated */
    size_t len;
} dashboard_asset;

/* Fills out with the asset named name (its strings and data static). 0, or
 * -1 when there is none. */
int dashboard_find(const char *name, dashboard_asset *out);

/* GET / and GET /ui/{name} (the name in req->r.job_id): the asset, or 404. */
void handle_dashboard(http_req *req);

#endif
