/* access — who may do what, at the request's edge: the bearer token and
 * its scope before any handler runs, and a token's own limits (command=,
 * queues=, env=, rate=; api/auth.h) on a submission. Every refusal of a
 * submission or cancel is answered with a JSON error naming the rule and
 * leaves an audit line (api/audit.h). */
#ifndef BX_API_ACCESS_H
#define BX_API_ACCESS_H

#include "http.h"
#include "job.h"

/* Checks req's Authorization header for scope and sets req->token_name.
 * 0 when the handler may run; -1 when a 401/403 is queued. */
int access_admit(http_req *req, unsigned scope);

/* Checks job against the options of the token that submits it. 0 with
 * *rate (the token's submission limit, rate_per_s 0 = none) when it may
 * be submitted; -1 when a 403 is queued. */
int access_submit(http_req *req, const bx_job *job, auth_rate *rate);

/* Answers 429 for a submission over its token's rate (retry_ms until a
 * submission would be taken) and logs the refusal. */
void access_rate_limited(http_req *req, const auth_rate *rate, long retry_ms);

#endif
