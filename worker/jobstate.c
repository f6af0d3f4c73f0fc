/* jobstate — see jobstate.h. The scripts repeat status_put's fencing rule
 * (attempts go forward; terminal is final within an attempt) so that
 * taking the lease and writing "running" happen atomically. */
#include "jobstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "names.h"

static const char begin_script[] =
    /* KEYS: status lease cancel lock starts; ARGV: owner lease_ms attempt doc has_lock max_starts.
     * "starts" counts how often this attempt was begun: a job that keeps
     * killing (or losing) its worker is poison after max_starts. */
    "if redis.call('EXISTS', KEYS[3]) == 1 then return 'cancelled' end\n"
    "local cur = redis.call('HMGET', KEYS[1], 'attempt', 'terminal')\n"
    "local a = tonumber(cur[1])\n"
    "local na = tonumber(ARGV[3])\n"
    "if a and (na < a or (na == a and cur[2] == '1')) then return 'done' end\n"
    "local holder = redis.call('GET', KEYS[2])\n"
    "if holder == ARGV[1] then return 'mine' end\n"
    "if holder then return 'leased' end\n"
    "if ARGV[5] == '1' then\n"
    "  local lk = redis.call('GET', KEYS[4])\n"
    "  if lk and lk ~= ARGV[1] then return 'locked' end\n"
    "end\n"
    "local starts = redis.call('INCR', KEYS[5])\n"
    "redis.call('EXPIRE', KEYS[5], 86400)\n"
    "if starts > tonumber(ARGV[6]) then return 'poison' end\n"
    "if ARGV[5] == '1' then redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2]) end\n"
    "redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])\n"
    "redis.call('HSET', KEYS[1], 'state', 'running', 'attempt', ARGV[3], 'doc', ARGV[4], 'terminal', '0')\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "return 'ok'\n";

static const char finish_script[] =
    /* KEYS: status lease lock starts out:stdout out:stderr;
     * ARGV: state attempt doc ttl terminal owner has_lock. The live output
     * goes: the final status holds it now. */
    "local written = 0\n"
    "local cur = redis.call('HMGET', KEYS[1], 'attempt', 'terminal')\n"
    "local a = tonumber(cur[1])\n"
    "local na = tonumber(ARGV[2])\n"
    "if not (a and (na < a or (na == a and cur[2] == '1'))) then\n"
    "  redis.call('HSET', KEYS[1], 'state', ARGV[1], 'attempt', ARGV[2], 'doc', ARGV[3], 'terminal', ARGV[5])\n"
    "  local ttl = tonumber(ARGV[4])\n"
    "  if ARGV[5] == '1' and ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end\n"
    "  written = 1\n"
    "end\n"
    "if redis.call('GET', KEYS[2]) == ARGV[6] then redis.call('DEL', KEYS[2]) end\n"
    "if ARGV[7] == '1' and redis.call('GET', KEYS[3]) == ARGV[6] then redis.call('DEL', KEYS[3]) end\n"
    "redis.call('DEL', KEYS[4], KEYS[5], KEYS[6])\n"
    "return written\n";

static const char release_script[] =
    /* KEYS: lease lock; ARGV: owner */
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end\n"
    "return 1\n";

static const char renew_script[] =
    /* KEYS: lease cancel lock; ARGV: owner ms has_lock. Returns {ours, cancelled} */
    "local ours = 0\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) ours = 1 end\n"
    "if ARGV[3] == '1' and redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end\n"
    "return {ours, redis.call('EXISTS', KEYS[2])}\n";

/* The key of a job's lock is per lock name, not per job. */
static void lock_key(char *out, size_t n, const char *ns, const char *lock)
{
    name_key(out, n, ns, "lock", lock ? lock : "-");
}

begin_result jobstate_begin(bx_redis *r, const char *ns, const char *id, int attempt,
                            const char *owner, int lease_ms, const char *lock,
                            const char *running_doc, size_t doclen, int max_starts, char *err,
                            size_t errlen)
{
    char ks[NAME_MAX_LEN], kl[NAME_MAX_LEN], kc[NAME_MAX_LEN], kk[NAME_MAX_LEN],
        kn[NAME_MAX_LEN], rest[NAME_MAX_LEN], at[16], ms[16], mx[16];
    name_key(ks, sizeof ks, ns, "job", id);
    name_key(kl, sizeof kl, ns, "lease", id);
    name_key(kc, sizeof kc, ns, "cancel", id);
    lock_key(kk, sizeof kk, ns, lock);
    snprintf(rest, sizeof rest, "%s:%d", id, attempt);
    name_key(kn, sizeof kn, ns, "starts", rest);
    snprintf(at, sizeof at, "%d", attempt);
    snprintf(ms, sizeof ms, "%d", lease_ms);
    snprintf(mx, sizeof mx, "%d", max_starts);
    const char *argv[] = {"EVAL", begin_script, "5", ks, kl, kc, kk, kn, owner, ms, at, running_doc,
                          lock ? "1" : "0", mx};
    size_t len[] = {4, sizeof begin_script - 1, 1, strlen(ks), strlen(kl), strlen(kc), strlen(kk),
                    strlen(kn), strlen(owner), strlen(ms), strlen(at), doclen, 1, strlen(mx)};
    redisReply *rep = rds_cmdargv(r, err, errlen, 14, argv, len);
    if (!rep)
        return BEGIN_ERROR;
    begin_result res = BEGIN_ERROR;
    if (rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_STRING) {
        static const struct { const char *s; begin_result r; } map[] = {
            {"ok", BEGIN_OK}, {"mine", BEGIN_MINE}, {"leased", BEGIN_LEASED}, {"done", BEGIN_DONE},
            {"cancelled", BEGIN_CANCELLED}, {"locked", BEGIN_LOCKED}, {"poison", BEGIN_POISON}};
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
            if (!strcmp(rep->str, map[i].s))
                res = map[i].r;
    }
    if (res == BEGIN_ERROR)
        snprintf(err, errlen, "redis: unexpected reply to the begin script");
    freeReplyObject(rep);
    return res;
}

int jobstate_finish(bx_redis *r, const char *ns, const char *id, const char *state, int attempt,
                    const char *owner, const char *lock, const char *doc, size_t doclen,
                    int ttl_s, char *err, size_t errlen)
{
    char ks[NAME_MAX_LEN], kl[NAME_MAX_LEN], kk[NAME_MAX_LEN], kn[NAME_MAX_LEN],
        ko[NAME_MAX_LEN], ke[NAME_MAX_LEN], rest[NAME_MAX_LEN], at[16], ttl[16];
    name_key(ks, sizeof ks, ns, "job", id);
    name_key(kl, sizeof kl, ns, "lease", id);
    lock_key(kk, sizeof kk, ns, lock);
    /* the previous attempt's count: a retry's status is written with the
     * next attempt number */
    snprintf(rest, sizeof rest, "%s:%d", id, state_is_terminal(state) ? attempt : attempt - 1);
    name_key(kn, sizeof kn, ns, "starts", rest);
    snprintf(rest, sizeof rest, "%s:stdout", id);
    name_key(ko, sizeof ko, ns, "out", rest);
    snprintf(rest, sizeof rest, "%s:stderr", id);
    name_key(ke, sizeof ke, ns, "out", rest);
    snprintf(at, sizeof at, "%d", attempt);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *term = state_is_terminal(state) ? "1" : "0";
    const char *argv[] = {"EVAL", finish_script, "6", ks, kl, kk, kn, ko, ke, state, at, doc, ttl,
                          term, owner, lock ? "1" : "0"};
    size_t len[] = {4, sizeof finish_script - 1, 1, strlen(ks), strlen(kl), strlen(kk), strlen(kn),
                    strlen(ko), strlen(ke), strlen(state), strlen(at), doclen, strlen(ttl), 1,
                    strlen(owner), 1};
    redisReply *rep = rds_cmdargv(r, err, errlen, 16, argv, len);
    if (!rep)
        return -1;
    int ok = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    if (ok < 0)
        snprintf(err, errlen, "redis: unexpected reply to the finish script");
    freeReplyObject(rep);
    return ok;
}

int jobstate_release(bx_redis *r, const char *ns, const char *id, const char *owner,
                     const char *lock, char *err, size_t errlen)
{
    char kl[NAME_MAX_LEN], kk[NAME_MAX_LEN];
    name_key(kl, sizeof kl, ns, "lease", id);
    lock_key(kk, sizeof kk, ns, lock);
    redisReply *rep = rds_cmd(r, err, errlen, "EVAL %s 2 %s %s %s", release_script, kl, kk, owner);
    if (!rep)
        return -1;
    freeReplyObject(rep);
    return 0;
}

int jobstate_tick(bx_redis *r, const char *ns, const char *owner, int lease_ms,
                  jobstate_item *items, size_t n, char *err, size_t errlen)
{
    if (!n)
        return 0;
    redisContext *c = rds_ctx(r, err, errlen);
    if (!c)
        return -1;
    char ms[16];
    snprintf(ms, sizeof ms, "%d", lease_ms);
    for (size_t i = 0; i < n; i++) {
        char kl[NAME_MAX_LEN], kc[NAME_MAX_LEN], kk[NAME_MAX_LEN];
        name_key(kl, sizeof kl, ns, "lease", items[i].id);
        name_key(kc, sizeof kc, ns, "cancel", items[i].id);
        lock_key(kk, sizeof kk, ns, items[i].lock);
        const char *argv[] = {"EVAL", renew_script, "3", kl, kc, kk, owner, ms,
                              items[i].lock ? "1" : "0"};
        size_t len[] = {4, sizeof renew_script - 1, 1, strlen(kl), strlen(kc), strlen(kk),
                        strlen(owner), strlen(ms), 1};
        redisAppendCommandArgv(c, 9, argv, len);
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
            snprintf(err, errlen, "redis: %s", c->errstr);
            return -1; /* the context is broken; rds_ctx reconnects next time */
        }
        if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
            items[i].lost = rep->element[0]->integer == 0;
            items[i].cancelled = rep->element[1]->integer == 1;
        } else {
            snprintf(err, errlen, "redis: unexpected reply to the renew script");
            rc = -1;
        }
        freeReplyObject(rep);
    }
    return rc;
}

int jobstate_put_output(bx_redis *r, const char *ns, const char *id, const char *stream,
                        const char *data, size_t len, char *err, size_t errlen)
{
    char k[NAME_MAX_LEN], rest[NAME_MAX_LEN];
    snprintf(rest, sizeof rest, "%s:%s", id, stream);
    name_key(k, sizeof k, ns, "out", rest);
    redisReply *rep = rds_cmd(r, err, errlen, "SET %s %b EX 3600", k, data, len);
    if (!rep)
        return -1;
    freeReplyObject(rep);
    return 0;
}

int jobstate_heartbeat(bx_redis *r, const char *ns, const char *worker_id, int ttl_s,
                       const char **fields, size_t nfields, char *err, size_t errlen)
{
    char k[NAME_MAX_LEN];
    name_key(k, sizeof k, ns, "worker", worker_id);
    redisContext *c = rds_ctx(r, err, errlen);
    if (!c)
        return -1;
    const char **argv = calloc(nfields + 2, sizeof *argv);
    if (!argv)
        return -1;
    argv[0] = "HSET";
    argv[1] = k;
    memcpy(argv + 2, fields, nfields * sizeof *argv);
    redisAppendCommandArgv(c, (int)nfields + 2, argv, NULL);
    free(argv);
    redisAppendCommand(c, "EXPIRE %s %d", k, ttl_s);
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
            snprintf(err, errlen, "redis: %s", c->errstr);
            return -1;
        }
        if (!rep || rep->type == REDIS_REPLY_ERROR)
            rc = -1;
        freeReplyObject(rep);
    }
    return rc;
}
