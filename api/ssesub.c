/* ssesub — see ssesub.h. */
#include "ssesub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "rds.h"

#define SSESUB_RETRY_MS 1000

struct ssesub {
    bx_redis *r;
    unsigned epoch;     /* of the connection in use; 0 = none */
    unsigned next;      /* the epoch of the next connection */
    int64_t retry_ms;   /* no connection attempt before this (monotonic) */
};

ssesub *ssesub_new(const char *redis_url, char *err, size_t errlen)
{
    ssesub *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!(s->r = rds_new(redis_url, err, errlen))) {
        free(s);
        return NULL;
    }
    s->next = 1;
    return s;
}

void ssesub_free(ssesub *s)
{
    if (!s)
        return;
    rds_free(s->r);
    free(s);
}

static redisContext *ctx(const ssesub *s)
{
    char err[8];
    return s->epoch ? rds_ctx(s->r, err, sizeof err) : NULL;
}

int ssesub_fd(const ssesub *s)
{
    redisContext *c = ctx(s);
    return c ? c->fd : -1;
}

unsigned ssesub_epoch(const ssesub *s) { return s->epoch; }

/* The connection broke: rds_ctx makes a new one next time. */
static void lost(ssesub *s)
{
    s->epoch = 0;
    s->retry_ms = clock_mono_ms() + SSESUB_RETRY_MS;
}

void ssesub_want(ssesub *s, const char *channel, int on)
{
    redisContext *c = ctx(s);
    if (c && redisAppendCommand(c, on ? "SUBSCRIBE %s" : "UNSUBSCRIBE %s", channel) != REDIS_OK)
        lost(s);
}

int ssesub_flush(ssesub *s, char *err, size_t errlen)
{
    if (!s->epoch) {
        if (clock_mono_ms() < s->retry_ms) {
            snprintf(err, errlen, "redis: not connected");
            return -1;
        }
        if (!rds_ctx(s->r, err, errlen)) {
            lost(s);
            return -1;
        }
        s->epoch = s->next++;
        if (!s->next)
            s->next = 1;
        return 0; /* nothing was queued on a connection that did not exist */
    }
    redisContext *c = ctx(s);
    int done = 0;
    while (c && !done)
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            snprintf(err, errlen, "redis: %s", c->errstr);
            lost(s);
            return -1;
        }
    return 0;
}

int ssesub_read(ssesub *s, void (*fn)(void *ud, const char *channel), void *ud, char *err,
                size_t errlen)
{
    redisContext *c = ctx(s);
    if (!c)
        return 0;
    if (redisBufferRead(c) != REDIS_OK) {
        snprintf(err, errlen, "redis: %s", c->errstr);
        lost(s);
        return -1;
    }
    for (;;) {
        redisReply *rep = NULL;
        if (redisGetReplyFromReader(c, (void **)&rep) != REDIS_OK) {
            snprintf(err, errlen, "redis: %s", c->errstr);
            lost(s);
            return -1;
        }
        if (!rep)
            return 0;
        /* ["message", channel, payload]; (un)subscribe confirmations are
         * ["subscribe", channel, count] and need nothing */
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
            rep->element[0]->type == REDIS_REPLY_STRING && !strcmp(rep->element[0]->str, "message") &&
            rep->element[1]->type == REDIS_REPLY_STRING)
            fn(ud, rep->element[1]->str);
        freeReplyObject(rep);
    }
}
