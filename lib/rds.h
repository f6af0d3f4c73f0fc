/* rds — Redis (hiredis): a connection that reconnects, and the job status
 * that every process reads and writes through one fenced Lua script. */
#ifndef BX_RDS_H
#define BX_RDS_H

#include <stddef.h>
#include <hiredis/hiredis.h>

typedef struct bx_redis bx_redis;

/* url: redis://[:password@]host:port/db. Connects lazily: never fails
 * for a server that is down (the first command does). NULL + err only on
 * a bad URL. Not thread-safe: one per thread. */
bx_redis *rds_new(const char *url, char *err, size_t errlen);
void rds_free(bx_redis *r);

/* The live context, reconnecting if the last one broke; NULL + err when
 * Redis does not answer. Borrowed. */
redisContext *rds_ctx(bx_redis *r, char *err, size_t errlen);
/* Runs a command (printf-style, as redisCommand); reconnects once on a
 * broken connection. New reply (freeReplyObject) or NULL + err; a Redis
 * error reply is returned as NULL with its text in err. */
redisReply *rds_cmd(bx_redis *r, char *err, size_t errlen, const char *fmt, ...);
redisReply *rds_cmdargv(bx_redis *r, char *err, size_t errlen, int argc, const char **argv,
                        const size_t *argvlen);

/* The status of job id in namespace ns (key "<ns>:job:<id>", a hash of
 * state, attempt and doc). status_put writes doc (JSON text) when it does
 * not go back in time: a lower attempt never overwrites a higher one,
 * within one attempt a terminal state is final, and "queued" replaces
 * nothing of its own attempt but "queued". A terminal status expires
 * after ttl_s (0 = keep). Returns 1 written, 0 refused as stale, -1 + err. */
/* The Lua script behind status_put, for callers that pipeline it with
 * EVAL: KEYS[1] the status key; ARGV state, attempt, doc, ttl_s, and "1"
 * when the state is terminal. Returns 1 written, 0 refused. */
extern const char status_put_script[];
extern const size_t status_put_script_len;

int status_put(bx_redis *r, const char *ns, const char *id, const char *state, int attempt,
               const char *doc, size_t doclen, int ttl_s, char *err, size_t errlen);

/* The status doc as new malloc'd JSON text; NULL with err "" when there
 * is none, NULL with err set on failure. state/attempt out-params may be
 * NULL; *state is malloc'd. */
char *status_get(bx_redis *r, const char *ns, const char *id, char **state, int *attempt,
                 char *err, size_t errlen);

#endif
