/* ratelimit — the token bucket script. */
#include "ratelimit.h"

#include <stdio.h>
#include <string.h>

#include "names.h"

/* KEYS[1] the bucket, KEYS[2] the idempotency key (optional).
 * ARGV: rate (per second), burst, job id, idempotency TTL (s).
 * The bucket holds t (tokens, fractional) as of at (ms, Redis's clock:
 * one clock for every API process). Returns {1,0} taken, {2,0} replay,
 * {0, ms until a whole token}. */
static const char bucket_script[] =
    "if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then return {2, 0} end\n"
    "local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local now = redis.call('TIME')\n"
    "now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)\n"
    "local b = redis.call('HMGET', KEYS[1], 't', 'at')\n"
    "local t, at = tonumber(b[1]), tonumber(b[2])\n"
    "if not t or not at then t, at = burst, now end\n"
    "if now > at then t = math.min(burst, t + (now - at) * rate / 1000) end\n"
    "if t > burst then t = burst end\n"
    "if t < 1 then return {0, math.ceil((1 - t) * 1000 / rate)} end\n"
    "redis.call('HSET', KEYS[1], 't', tostring(t - 1), 'at', tostring(math.max(now, at)))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)\n"
    "if KEYS[2] then redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[4])) end\n"
    "return {1, 0}\n";

ratelimit_result ratelimit_take(bx_redis *r, const char *ns, const char *name, const auth_rate *rate,
                                const char *idem_key, const char *job_id, int idem_ttl_s,
                                long *retry_ms, char *err, size_t errlen)
{
    char key[NAME_MAX_LEN], rs[32], bs[16], ttl[16];
    name_key(key, sizeof key, ns, "rate", name);
    snprintf(rs, sizeof rs, "%.9g", rate->rate_per_s);
    snprintf(bs, sizeof bs, "%d", rate->burst);
    snprintf(ttl, sizeof ttl, "%d", idem_ttl_s);
    const char *argv[] = {"EVAL", bucket_script, idem_key ? "2" : "1", key, idem_key, rs, bs, job_id, ttl};
    int argc = 9;
    if (!idem_key) { /* no KEYS[2]: close the gap */
        memmove(&argv[4], &argv[5], 4 * sizeof argv[0]);
        argc = 8;
    }
    size_t len[9];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    *retry_ms = 0;
    redisReply *rep = rds_cmdargv(r, err, errlen, argc, argv, len);
    if (!rep)
        return RL_ERROR;
    ratelimit_result res = RL_ERROR;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[1]->type == REDIS_REPLY_INTEGER) {
        long long k = rep->element[0]->integer;
        res = k == 1 ? RL_OK : k == 2 ? RL_REPLAY : RL_LIMITED;
        *retry_ms = (long)rep->element[1]->integer;
    } else {
        snprintf(err, errlen, "redis: %s",
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply to the rate limit script");
    }
    freeReplyObject(rep);
    return res;
}
