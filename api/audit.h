/* audit — the audit trail of submissions and cancels: every accepted,
 * refused (400, 401, 403, 413, 429) and cancelled submission leaves exactly one
 * log line carrying audit=submit or audit=cancel, the outcome, the HTTP
 * status, the token's name (never the token), the request id, the
 * client's address and the job id where there is one:
 *
 *   event=job_submitted audit=submit outcome=accepted status=202 token=ci request_id=... addr=10.0.0.7 id=... queue=default
 *   event=job_refused   audit=submit outcome=refused  status=403 token=ci request_id=... addr=10.0.0.7 reason="..."
 *   event=job_cancelled audit=cancel outcome=cancelled status=202 token=ops request_id=... addr=... id=...
 *
 * `grep audit=` in the API's log gives the trail. */
#ifndef BX_API_AUDIT_H
#define BX_API_AUDIT_H

#include <stddef.h>

#include "http.h"

#define AUDIT_ADDR_MAX 64

/* The client's address as text ("-" when unknown) into out. */
void audit_addr(const http_req *req, char *out, size_t n);
/* The audit word of req's method: "cancel" for DELETE, else "submit". */
const char *audit_action(const http_req *req);
/* Logs the refusal of a submission or cancel (status 400/401/403/429...)
 * with why (a message for the log, never holding a token), the queue
 * when known and, for a cancel, the job id. */
void audit_refused(http_req *req, unsigned status, const char *why);

#endif
