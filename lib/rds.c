/* rds — Redis with lazy (re)connection and the fenced job status. */
#include "rds.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "log.h"
#include "names.h"

struct bx_redis {
    char host[256];
    int port;
    int db;
    char password[256];
    redisContext *c; /* NULL until first use, or after a broken connection */
};

bx_redis *rds_new(const char *url, char *err, size_t errlen)
{
    bx_redis *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *p = url;
    if (strncmp(p, "redis://", 8)) {
        snprintf(err, errlen, "redis url '%s' must start with redis://", log_url(url));
        goto fail;
    }
    p += 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        snprintf(r->password, sizeof r->password, "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    snprintf(r->host, sizeof r->host, "%.*s", (int)hl, p);
    p += hl;
    r->port = 6379;
    if (*p == ':') {
        /* range-checked as a long: a cast would wrap 4294973591 into 6295 */
        long port = strtol(p + 1, (char **)&p, 10);
        r->port = port > 0 && port <= 65535 ? (int)port : 0;
    }
    if (*p == '/' && p[1])
        r->db = atoi(p + 1);
    if (!r->host[0] || r->port <= 0 || r->port > 65535) {
        snprintf(err, errlen, "redis url '%s' lacks a host or a valid port", log_url(url));
        goto fail;
    }
    return r;
fail:
    free(r);
    return NULL;
}

void rds_free(bx_redis *r)
{
    if (!r)
        return;
    if (r->c)
        redisFree(r->c);
    free(r);
}

redisContext *rds_ctx(bx_redis *r, char *err, size_t errlen)
{
    if (r->c && !r->c->err)
        return r->c;
    if (r->c)
        redisFree(r->c);
    struct timeval tv = {2, 0};
    r->c = redisConnectWithTimeout(r->host, r->port, tv);
    if (!r->c || r->c->err) {
        snprintf(err, errlen, "cannot connect to redis at %s:%d: %s", r->host, r->port,
                 r->c ? r->c->errstr : "out of memory");
        goto fail;
    }
    struct timeval cmd_tv = {5, 0}; /* a paused Redis must not hang us forever */
    redisSetTimeout(r->c, cmd_tv);
    redisReply *rep;
    if (r->password[0]) {
        rep = redisCommand(r->c, "AUTH %s", r->password);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "redis refused AUTH");
            freeReplyObject(rep);
            goto fail;
        }
        freeReplyObject(rep);
    }
    if (r->db) {
        rep = redisCommand(r->c, "SELECT %d", r->db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "redis refused SELECT %d", r->db);
            freeReplyObject(rep);
            goto fail;
        }
        freeReplyObject(rep);
    }
    return r->c;
fail:
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
    return NULL;
}

/* A reply, or NULL with err; a broken connection is retried once on a
 * fresh one because every command we send is safe to repeat. */
static redisReply *finish(bx_redis *r, redisReply *rep, char *err, size_t errlen)
{
    if (!rep) {
        snprintf(err, errlen, "redis: %s", r->c && r->c->err ? r->c->errstr : "no reply");
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis: %s", rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

redisReply *rds_cmd(bx_redis *r, char *err, size_t errlen, const char *fmt, ...)
{
    redisReply *rep = NULL;
    for (int tries = 0; tries < 2 && !rep; tries++) {
        redisContext *c = rds_ctx(r, err, errlen);
        if (!c)
            return NULL;
        va_list ap;
        va_start(ap, fmt);
        rep = redisvCommand(c, fmt, ap);
        va_end(ap);
    }
    return finish(r, rep, err, errlen);
}

redisReply *rds_cmdargv(bx_redis *r, char *err, size_t errlen, int argc, const char **argv,
                        const size_t *argvlen)
{
    redisReply *rep = NULL;
    for (int tries = 0; tries < 2 && !rep; tries++) {
        redisContext *c = rds_ctx(r, err, errlen);
        if (!c)
            return NULL;
        rep = redisCommandArgv(c, argc, argv, argvlen);
    }
    return finish(r, rep, err, errlen);
}

/* Fenced write: attempts only go forward, a terminal state is final
 * within its attempt, and "queued" (where an attempt starts) never takes
 * an attempt back. This is what lets a late "running" from a slow worker,
 * a result from an attempt that lost its lease, or the API's "queued"
 * held up in a paused Redis after a worker began the job, do no harm. */
const char status_put_script[] =
    "local cur = redis.call('HMGET', KEYS[1], 'attempt', 'terminal', 'state')\n"
    "local a = tonumber(cur[1])\n"
    "local na = tonumber(ARGV[2])\n"
    "if a and (na < a or (na == a and cur[2] == '1')) then return 0 end\n"
    "if a and na == a and ARGV[1] == 'queued' and cur[3] ~= 'queued' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', ARGV[1], 'attempt', ARGV[2], 'doc', ARGV[3], 'terminal', ARGV[5])\n"
    "redis.call('PUBLISH', KEYS[1], ARGV[1])\n"
    "local ttl = tonumber(ARGV[4])\n"
    "if ARGV[5] == '1' and ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end\n"
    "return 1\n";

const size_t status_put_script_len = sizeof status_put_script - 1;

int status_put(bx_redis *r, const char *ns, const char *id, const char *state, int attempt,
               const char *doc, size_t doclen, int ttl_s, char *err, size_t errlen)
{
    char key[NAME_MAX_LEN], at[16], ttl[16];
    name_key(key, sizeof key, ns, "job", id);
    snprintf(at, sizeof at, "%d", attempt);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *argv[] = {"EVAL", status_put_script, "1", key, state, at, doc, ttl,
                          state_is_terminal(state) ? "1" : "0"};
    size_t len[] = {4, sizeof status_put_script - 1, 1, strlen(key), strlen(state), strlen(at), doclen,
                    strlen(ttl), 1};
    redisReply *rep = rds_cmdargv(r, err, errlen, 9, argv, len);
    if (!rep)
        return -1;
    int ok = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    if (ok < 0)
        snprintf(err, errlen, "redis: unexpected reply to the status script");
    freeReplyObject(rep);
    return ok;
}

char *status_get(bx_redis *r, const char *ns, const char *id, char **state, int *attempt,
                 char *err, size_t errlen)
{
    char key[NAME_MAX_LEN];
    char *doc = NULL;
    name_key(key, sizeof key, ns, "job", id);
    err[0] = 0;
    if (state)
        *state = NULL;
    redisReply *rep = rds_cmd(r, err, errlen, "HMGET %s doc state attempt", key);
    if (!rep)
        return NULL;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        goto out; /* no such job: err stays "" */
    doc = strndup(rep->element[0]->str, rep->element[0]->len);
    if (state && rep->element[1]->type == REDIS_REPLY_STRING)
        *state = strdup(rep->element[1]->str);
    if (attempt)
        *attempt = rep->element[2]->type == REDIS_REPLY_STRING ? atoi(rep->element[2]->str) : 0;
    if (!doc)
        snprintf(err, errlen, "out of memory");
out:
    freeReplyObject(rep);
    return doc;
}
