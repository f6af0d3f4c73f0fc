/* ratelimit — a token's submission rate (auth.h rate=, burst=) as a
 * token bucket in Redis, key "<ns>:rate:<token name>", taken by one Lua
 * script in one round trip. The script also claims the job's idempotency
 * key when there is one, so a rate-limited submission with a key costs
 * one round trip as one without a limit does; a replay (the key already
 * names a job) takes nothing from the bucket. Tokens without a limit
 * never come here: their submissions cost Redis nothing more. */
#ifndef BX_API_RATELIMIT_H
#define BX_API_RATELIMIT_H

#include <stddef.h>

#include "auth.h"
#include "rds.h"

typedef enum ratelimit_result {
    RL_OK,      /* taken; the idempotency key, if any, now names job_id */
    RL_REPLAY,  /* the idempotency key already names a job: nothing taken */
    RL_LIMITED, /* the bucket is empty: *retry_ms until the next token */
    RL_ERROR,   /* Redis failed: err */
} ratelimit_result;

/* Takes one submission from token name's bucket (rate). idem_key: the
 * Redis key of the job's idempotency key, or NULL; set to job_id for
 * idem_ttl_s when taken. */
ratelimit_result ratelimit_take(bx_redis *r, const char *ns, const char *name, const auth_rate *rate,
                                const char *idem_key, const char *job_id, int idem_ttl_s,
                                long *retry_ms, char *err, size_t errlen);

#endif
