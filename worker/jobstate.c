/* jobstate — see jobstate.h. The scripts repeat status_put's fencing rule
 * (attempts go forward; terminal is final within an attempt) so that
 * taking the lease and writing "running" happen atomically. */
#include "jobstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "names.h"

/* Redis's own clock, in ms, inside a script: one clock for every worker
 * of every host, so that lease deadlines in "<ns>:running" compare. */
#define LUA_NOW "local t = redis.call('TIME')\nlocal now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

static const char begin_script[] =
    /* KEYS: status lease cancel lock starts running;
     * ARGV: owner lease_ms attempt doc has_lock max_starts takeover_from.
     * "starts" counts begins since the job's last result: a job that keeps
     * killing (or losing) its worker is poison after max_starts, across
     * takeovers. An attempt that is running (or was marked lost) with
     * nobody holding its lease is not run again under its own number:
     * the answer is {'expired', attempt, doc}, and the caller comes back
     * with attempt + 1 and takeover_from = attempt, so that the worker
     * that lost the lease is fenced out of every later write. */
    "if redis.call('EXISTS', KEYS[3]) == 1 then return 'cancelled' end\n"
    "local cur = redis.call('HMGET', KEYS[1], 'attempt', 'terminal', 'state')\n"
    "local a = tonumber(cur[1])\n"
    "local na = tonumber(ARGV[3])\n"
    "local holder = redis.call('GET', KEYS[2])\n"
    "local expired = a and cur[2] ~= '1' and (cur[3] == 'running' or cur[3] == 'lost') and not holder\n"
    "if a and cur[2] == '1' and na <= a then return 'done' end\n"
    "if a and na < a then\n"
    "  if expired then return {'expired', a, redis.call('HGET', KEYS[1], 'doc')} end\n"
    "  return 'done'\n"
    "end\n"
    "if holder == ARGV[1] then return 'mine' end\n"
    "if holder then return 'leased' end\n"
    "if ARGV[7] ~= '' and a == tonumber(ARGV[7]) then\n"
    "  if cur[2] == '1' then return 'done' end\n"
    "  if not expired then return 'leased' end\n"
    "elseif a and na == a and expired then\n"
    "  return {'expired', a, redis.call('HGET', KEYS[1], 'doc')}\n"
    "end\n"
    "if ARGV[5] == '1' then\n"
    "  local lk = redis.call('GET', KEYS[4])\n"
    "  if lk and lk ~= ARGV[1] then return 'locked' end\n"
    "end\n"
    "local starts = redis.call('INCR', KEYS[5])\n"
    "redis.call('EXPIRE', KEYS[5], 86400)\n"
    "if starts > tonumber(ARGV[6]) then return 'poison' end\n"
    LUA_NOW
    "if ARGV[5] == '1' then redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2]) end\n"
    "redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])\n"
    "redis.call('HSET', KEYS[1], 'state', 'running', 'attempt', ARGV[3], 'doc', ARGV[4], 'terminal', '0')\n"
    "redis.call('PUBLISH', KEYS[1], 'running')\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "redis.call('ZADD', KEYS[6], now + tonumber(ARGV[2]), ARGV[8])\n"
    "return 'ok'\n";

static const char finish_script[] =
    /* KEYS: status lease lock starts out:stdout out:stderr running;
     * ARGV: state attempt doc ttl terminal owner has_lock id fence. fence
     * is the attempt that ran: attempt itself for a result, attempt - 1
     * for the queued status of a retry. The live output goes: the final
     * status holds it now. Returns 1 written, 0 refused (that attempt is
     * final already), 2 refused because a newer attempt exists (taken
     * over, or retried already): the keys are that one's and stay.
     * The same write again (its reply was lost: Redis paused past our
     * timeout, then ran it) is ours, not a newer attempt's: without that,
     * a retry written twice took its own first write for a takeover and
     * dropped the retry's message. */
    "local cur = redis.call('HMGET', KEYS[1], 'attempt', 'terminal', 'state')\n"
    "local a = tonumber(cur[1])\n"
    "local fa = tonumber(ARGV[9])\n"
    "local written = 1\n"
    "if a and a == tonumber(ARGV[2]) and cur[3] == ARGV[1] and redis.call('HGET', KEYS[1], 'doc') == ARGV[3] then\n"
    "  written = 3\n"
    "elseif a and fa < a then written = 2 elseif a and fa == a and cur[2] == '1' then written = 0 end\n"
    "if written == 1 then\n"
    "  redis.call('HSET', KEYS[1], 'state', ARGV[1], 'attempt', ARGV[2], 'doc', ARGV[3], 'terminal', ARGV[5])\n"
    "  redis.call('PUBLISH', KEYS[1], ARGV[1])\n"
    "  local ttl = tonumber(ARGV[4])\n"
    "  if ARGV[5] == '1' and ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end\n"
    "end\n"
    "if redis.call('GET', KEYS[2]) == ARGV[6] then redis.call('DEL', KEYS[2]) end\n"
    "if ARGV[7] == '1' and redis.call('GET', KEYS[3]) == ARGV[6] then redis.call('DEL', KEYS[3]) end\n"
    "if written ~= 2 then redis.call('DEL', KEYS[4], KEYS[5], KEYS[6]) redis.call('ZREM', KEYS[7], ARGV[8]) end\n"
    "if written == 3 then return 1 end\n"
    "return written\n";

static const char release_script[] =
    /* KEYS: lease lock starts status running; ARGV: owner attempt queued_doc id.
     * A job given back (shutdown, the worker's own trouble) did not fail:
     * its begin is not counted, and it is queued again at the same attempt. */
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end\n"
    "if tonumber(redis.call('GET', KEYS[3]) or '0') > 0 then redis.call('DECR', KEYS[3]) end\n"
    "local cur = redis.call('HMGET', KEYS[4], 'attempt', 'state')\n"
    "if cur[1] == ARGV[2] and cur[2] == 'running' and ARGV[3] ~= '' then\n"
    "  redis.call('HSET', KEYS[4], 'state', 'queued', 'doc', ARGV[3])\n"
    "  redis.call('PUBLISH', KEYS[4], 'queued')\n"
    "end\n"
    "redis.call('ZREM', KEYS[5], ARGV[4])\n"
    "return 1\n";

static const char renew_script[] =
    /* KEYS: lease cancel lock running status; ARGV: owner ms has_lock id attempt.
     * Returns {ours, cancelled, superseded}: superseded when the lease is
     * gone and a newer attempt of the job exists (another worker took it
     * over). The lease deadline in "running" moves with the lease. */
    "local ours, newer = 0, 0\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2]) ours = 1\n"
    LUA_NOW
    "  redis.call('ZADD', KEYS[4], 'XX', now + tonumber(ARGV[2]), ARGV[4])\n"
    "elseif tonumber(redis.call('HGET', KEYS[5], 'attempt') or '0') > tonumber(ARGV[5]) then\n"
    "  newer = 1\n"
    "end\n"
    "if ARGV[3] == '1' and redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end\n"
    "return {ours, redis.call('EXISTS', KEYS[2]), newer}\n";

/* The key of a job's lock is per lock name, not per job. */
static void lock_key(char *out, size_t n, const char *ns, const char *lock)
{
    name_key(out, n, ns, "lock", lock ? lock : "-");
}

/* "<ns>:index:running": every job begun and not finished, scored by its
 * lease deadline (Redis ms); what the sweeper scans. */
static void running_key(char *out, size_t n, const char *ns)
{
    name_key(out, n, ns, "index", "running");
}

static void starts_key(char *out, size_t n, const char *ns, const char *id)
{
    name_key(out, n, ns, "starts", id);
}

begin_result jobstate_begin(bx_redis *r, const char *ns, const char *id, int attempt,
                            const char *owner, int lease_ms, const char *lock,
                            const char *running_doc, size_t doclen, int max_starts,
                            int takeover_from, int *stored_attempt, char **stored_doc,
                            char *err, size_t errlen)
{
    char ks[NAME_MAX_LEN], kl[NAME_MAX_LEN], kc[NAME_MAX_LEN], kk[NAME_MAX_LEN],
        kn[NAME_MAX_LEN], kr[NAME_MAX_LEN], at[16], ms[16], mx[16], from[16] = "";
    name_key(ks, sizeof ks, ns, "job", id);
    name_key(kl, sizeof kl, ns, "lease", id);
    name_key(kc, sizeof kc, ns, "cancel", id);
    lock_key(kk, sizeof kk, ns, lock);
    starts_key(kn, sizeof kn, ns, id);
    running_key(kr, sizeof kr, ns);
    snprintf(at, sizeof at, "%d", attempt);
    snprintf(ms, sizeof ms, "%d", lease_ms);
    snprintf(mx, sizeof mx, "%d", max_starts);
    if (takeover_from > 0)
        snprintf(from, sizeof from, "%d", takeover_from);
    const char *argv[] = {"EVAL", begin_script, "6", ks, kl, kc, kk, kn, kr, owner, ms, at,
                          running_doc, lock ? "1" : "0", mx, from, id};
    size_t len[] = {4, sizeof begin_script - 1, 1, strlen(ks), strlen(kl), strlen(kc), strlen(kk),
                    strlen(kn), strlen(kr), strlen(owner), strlen(ms), strlen(at), doclen, 1,
                    strlen(mx), strlen(from), strlen(id)};
    if (stored_doc)
        *stored_doc = NULL;
    redisReply *rep = rds_cmdargv(r, err, errlen, 17, argv, len);
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
    } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
               rep->element[1]->type == REDIS_REPLY_INTEGER &&
               rep->element[2]->type == REDIS_REPLY_STRING) {
        /* {'expired', attempt, doc} */
        res = BEGIN_EXPIRED;
        if (stored_attempt)
            *stored_attempt = (int)rep->element[1]->integer;
        if (stored_doc && !(*stored_doc = strndup(rep->element[2]->str, rep->element[2]->len)))
            res = BEGIN_ERROR;
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
        ko[NAME_MAX_LEN], ke[NAME_MAX_LEN], kr[NAME_MAX_LEN], rest[NAME_MAX_LEN], at[16],
        ttl[16], fence[16];
    name_key(ks, sizeof ks, ns, "job", id);
    name_key(kl, sizeof kl, ns, "lease", id);
    lock_key(kk, sizeof kk, ns, lock);
    starts_key(kn, sizeof kn, ns, id);
    snprintf(rest, sizeof rest, "%s:stdout", id);
    name_key(ko, sizeof ko, ns, "out", rest);
    snprintf(rest, sizeof rest, "%s:stderr", id);
    name_key(ke, sizeof ke, ns, "out", rest);
    running_key(kr, sizeof kr, ns);
    snprintf(at, sizeof at, "%d", attempt);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *term = state_is_terminal(state) ? "1" : "0";
    /* a retry's status is written with the next attempt's number */
    snprintf(fence, sizeof fence, "%d", state_is_terminal(state) ? attempt : attempt - 1);
    const char *argv[] = {"EVAL", finish_script, "7", ks, kl, kk, kn, ko, ke, kr, state, at, doc,
                          ttl, term, owner, lock ? "1" : "0", id, fence};
    size_t len[] = {4, sizeof finish_script - 1, 1, strlen(ks), strlen(kl), strlen(kk), strlen(kn),
                    strlen(ko), strlen(ke), strlen(kr), strlen(state), strlen(at), doclen,
                    strlen(ttl), 1, strlen(owner), 1, strlen(id), strlen(fence)};
    redisReply *rep = rds_cmdargv(r, err, errlen, 19, argv, len);
    if (!rep)
        return -1;
    int ok = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    if (ok < 0)
        snprintf(err, errlen, "redis: unexpected reply to the finish script");
    freeReplyObject(rep);
    return ok;
}

int jobstate_release(bx_redis *r, const char *ns, const char *id, const char *owner,
                     const char *lock, int attempt, const char *queued_doc, char *err,
                     size_t errlen)
{
    char kl[NAME_MAX_LEN], kk[NAME_MAX_LEN], kn[NAME_MAX_LEN], ks[NAME_MAX_LEN],
        kr[NAME_MAX_LEN], at[16];
    name_key(kl, sizeof kl, ns, "lease", id);
    lock_key(kk, sizeof kk, ns, lock);
    starts_key(kn, sizeof kn, ns, id);
    name_key(ks, sizeof ks, ns, "job", id);
    running_key(kr, sizeof kr, ns);
    snprintf(at, sizeof at, "%d", attempt);
    const char *argv[] = {"EVAL", release_script, "5", kl, kk, kn, ks, kr, owner, at,
                          queued_doc ? queued_doc : "", id};
    redisReply *rep = rds_cmdargv(r, err, errlen, 12, argv, NULL);
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
    char ms[16], kr[NAME_MAX_LEN];
    snprintf(ms, sizeof ms, "%d", lease_ms);
    running_key(kr, sizeof kr, ns);
    for (size_t i = 0; i < n; i++) {
        char kl[NAME_MAX_LEN], kc[NAME_MAX_LEN], kk[NAME_MAX_LEN], ks[NAME_MAX_LEN], at[16];
        name_key(kl, sizeof kl, ns, "lease", items[i].id);
        name_key(kc, sizeof kc, ns, "cancel", items[i].id);
        lock_key(kk, sizeof kk, ns, items[i].lock);
        name_key(ks, sizeof ks, ns, "job", items[i].id);
        snprintf(at, sizeof at, "%d", items[i].attempt);
        const char *argv[] = {"EVAL", renew_script, "5", kl, kc, kk, kr, ks, owner, ms,
                              items[i].lock ? "1" : "0", items[i].id, at};
        redisAppendCommandArgv(c, 13, argv, NULL);
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
            snprintf(err, errlen, "redis: %s", c->errstr);
            return -1; /* the context is broken; rds_ctx reconnects next time */
        }
        if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3) {
            items[i].lost = rep->element[0]->integer == 0;
            items[i].cancelled = rep->element[1]->integer == 1;
            items[i].superseded = rep->element[2]->integer == 1;
        } else {
            snprintf(err, errlen, "redis: unexpected reply to the renew script");
            rc = -1;
        }
        freeReplyObject(rep);
    }
    return rc;
}

/* ---------- the sweeper: running jobs nobody holds ---------- */

static const char sweep_script[] =
    /* KEYS: running sweeper-lock; ARGV: owner interval_ms lost_after_ms max ns.
     * One worker at a time (the lock lives one interval). Returns
     * {id, state, attempt, doc} for each job whose lease deadline is more
     * than lost_after_ms past and whose status is still running (to be
     * marked lost) or lost (its event may not have been confirmed: sent
     * again). A live lease moves its entry on; an entry without a
     * running or lost status goes. It reads each job's lease and status
     * by a name built here, not passed in KEYS: fine on one Redis (what
     * BX_REDIS_URL names), not on Redis Cluster, which bashexec does not
     * support anyway. */
    "if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {} end\n"
    LUA_NOW
    "local lost_after = tonumber(ARGV[3])\n"
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - lost_after, 'LIMIT', 0, tonumber(ARGV[4]))\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  local ttl = redis.call('PTTL', ARGV[5] .. ':lease:' .. id)\n"
    "  local st = redis.call('HMGET', ARGV[5] .. ':job:' .. id, 'state', 'attempt', 'doc')\n"
    "  if ttl > 0 then\n"
    "    redis.call('ZADD', KEYS[1], now + ttl, id)\n"
    "  elseif st[1] == 'running' or st[1] == 'lost' then\n"
    "    table.insert(out, {id, st[1], st[2], st[3]})\n"
    "    redis.call('ZADD', KEYS[1], now, id)\n"
    "  else\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "  end\n"
    "end\n"
    "return out\n";

static const char mark_lost_script[] =
    /* KEYS: status lease; ARGV: attempt doc ttl. Marks a running attempt
     * lost when nobody took its lease meanwhile. Not final in the fencing
     * sense (terminal stays 0): the attempt's own late result, or a
     * redelivered copy (a takeover), may still replace it. */
    "if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end\n"
    "local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt')\n"
    "if cur[1] ~= 'running' or cur[2] ~= ARGV[1] then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'lost', 'doc', ARGV[2], 'terminal', '0')\n"
    "redis.call('PUBLISH', KEYS[1], 'lost')\n"
    "local ttl = tonumber(ARGV[3])\n"
    "if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end\n"
    "return 1\n";

static const char unindex_script[] =
    /* KEYS: status running; ARGV: attempt id. The lost event of this
     * attempt is confirmed: the sweeper has nothing more to do for it. */
    "local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt')\n"
    "if cur[1] == 'running' then return 0 end\n"
    "if cur[1] == 'lost' and cur[2] ~= ARGV[1] then return 0 end\n"
    "redis.call('ZREM', KEYS[2], ARGV[2])\n"
    "return 1\n";

void jobstate_stale_free(jobstate_stale *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].id);
        free(v[i].doc);
    }
    free(v);
}

int jobstate_sweep(bx_redis *r, const char *ns, const char *owner, int interval_ms,
                   int lost_after_ms, size_t max, jobstate_stale **out, size_t *nout, char *err,
                   size_t errlen)
{
    char kr[NAME_MAX_LEN], kw[NAME_MAX_LEN], iv[16], la[16], mx[16];
    running_key(kr, sizeof kr, ns);
    name_key(kw, sizeof kw, ns, "index", "sweeper");
    snprintf(iv, sizeof iv, "%d", interval_ms);
    snprintf(la, sizeof la, "%d", lost_after_ms);
    snprintf(mx, sizeof mx, "%zu", max);
    const char *argv[] = {"EVAL", sweep_script, "2", kr, kw, owner, iv, la, mx, ns};
    *out = NULL;
    *nout = 0;
    redisReply *rep = rds_cmdargv(r, err, errlen, 10, argv, NULL);
    if (!rep)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "redis: unexpected reply to the sweep script");
        freeReplyObject(rep);
        return -1;
    }
    jobstate_stale *v = rep->elements ? calloc(rep->elements, sizeof *v) : NULL;
    size_t n = 0;
    for (size_t i = 0; v && i < rep->elements; i++) {
        redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 4 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_STRING ||
            e->element[3]->type != REDIS_REPLY_STRING)
            continue; /* a status without a doc: nothing to say about it */
        v[n].id = strdup(e->element[0]->str);
        v[n].lost = !strcmp(e->element[1]->str, "lost");
        v[n].attempt = e->element[2]->type == REDIS_REPLY_STRING ? atoi(e->element[2]->str) : 0;
        v[n].doc = strndup(e->element[3]->str, e->element[3]->len);
        if (!v[n].id || !v[n].doc) {
            free(v[n].id);
            free(v[n].doc);
            continue;
        }
        n++;
    }
    freeReplyObject(rep);
    *out = v;
    *nout = n;
    return 0;
}

int jobstate_mark_lost(bx_redis *r, const char *ns, const char *id, int attempt, const char *doc,
                       int ttl_s, char *err, size_t errlen)
{
    char ks[NAME_MAX_LEN], kl[NAME_MAX_LEN], at[16], ttl[16];
    name_key(ks, sizeof ks, ns, "job", id);
    name_key(kl, sizeof kl, ns, "lease", id);
    snprintf(at, sizeof at, "%d", attempt);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *argv[] = {"EVAL", mark_lost_script, "2", ks, kl, at, doc, ttl};
    redisReply *rep = rds_cmdargv(r, err, errlen, 8, argv, NULL);
    if (!rep)
        return -1;
    int ok = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    if (ok < 0)
        snprintf(err, errlen, "redis: unexpected reply to the mark-lost script");
    freeReplyObject(rep);
    return ok;
}

int jobstate_unindex(bx_redis *r, const char *ns, const char *id, int attempt, char *err,
                     size_t errlen)
{
    char ks[NAME_MAX_LEN], kr[NAME_MAX_LEN], at[16];
    name_key(ks, sizeof ks, ns, "job", id);
    running_key(kr, sizeof kr, ns);
    snprintf(at, sizeof at, "%d", attempt);
    const char *argv[] = {"EVAL", unindex_script, "2", ks, kr, at, id};
    redisReply *rep = rds_cmdargv(r, err, errlen, 7, argv, NULL);
    if (!rep)
        return -1;
    freeReplyObject(rep);
    return 0;
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
