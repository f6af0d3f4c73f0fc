/* handlers_jobs — the /v1/jobs endpoints. Each answers or suspends (to
 * wait for a publish) before it returns. */
#ifndef BX_API_HANDLERS_JOBS_H
#define BX_API_HANDLERS_JOBS_H

#include "http.h"

void handle_submit(http_req *req); /* POST /v1/jobs */
void handle_list(http_req *req);   /* GET /v1/jobs?... */
void handle_get(http_req *req);    /* GET /v1/jobs/{id} */
void handle_cancel(http_req *req); /* DELETE /v1/jobs/{id} */
void handle_output(http_req *req); /* GET /v1/jobs/{id}/output */

#endif
