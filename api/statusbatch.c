/* statusbatch — a pipelined status_put. */
#include "statusbatch.h"

#include <stdio.h>
#include <string.h>

#include "event.h"
#include "names.h"
#include "rds.h"

/* One attempt on the current connection. 0 all replies read, -1 the
 * connection failed (replies not read are -1). */
static int attempt_batch(redisContext *c, const char *ns, int ttl_s, statusbatch_item *items,
                         size_t n, char *err, size_t errlen)
{
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    for (size_t i = 0; i < n; i++) {
        char key[NAME_MAX_LEN], at[16];
        name_key(key, sizeof key, ns, "job", items[i].id);
        snprintf(at, sizeof at, "%d", items[i].attempt);
        const char *argv[] = {"EVAL", status_put_script, "1", key, items[i].state, at, items[i].doc, ttl,
                              state_is_terminal(items[i].state) ? "1" : "0"};
        size_t len[] = {4, status_put_script_len, 1, strlen(key), strlen(items[i].state),
                        strlen(at), items[i].doclen, strlen(ttl), 1};
        items[i].result = -1;
        if (redisAppendCommandArgv(c, 9, argv, len) != REDIS_OK) {
            snprintf(err, errlen, "redis: %s", c->errstr);
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep) {
            snprintf(err, errlen, "redis: %s", c->err ? c->errstr : "no reply");
            freeReplyObject(rep);
            return -1;
        }
        if (rep->type == REDIS_REPLY_INTEGER)
            items[i].result = rep->integer ? 1 : 0;
        else
            snprintf(err, errlen, "redis: %s", rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply to the status script");
        freeReplyObject(rep);
    }
    return 0;
}

int statusbatch_put(bx_redis *r, const char *ns, int ttl_s, statusbatch_item *items, size_t n,
                    char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        items[i].result = -1;
    if (!n)
        return 0;
    /* A broken connection is found only when used: then try once more on
     * a fresh one. Writing a status twice is harmless (same doc). */
    for (int tries = 0; tries < 2; tries++) {
        redisContext *c = rds_ctx(r, err, errlen);
        if (!c)
            return -1;
        if (!attempt_batch(c, ns, ttl_s, items, n, err, errlen))
            return 0;
    }
    return -1;
}
