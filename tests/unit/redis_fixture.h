/* redis_fixture — the real Redis of the unit tests that need one:
 * BX_REDIS_URL (default redis://127.0.0.1:6379/0), in a namespace of the
 * test's own ("<name>_<pid>_<ms>", in ns) whose keys are deleted at the
 * end. Included once, by the test's .c file; err is its scratch buffer. */
#ifndef BX_TEST_REDIS_FIXTURE_H
#define BX_TEST_REDIS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "rds.h"

static char ns[64];
static char err[512];

static inline const char *redis_url(void)
{
    const char *u = getenv("BX_REDIS_URL");
    return u && *u ? u : "redis://127.0.0.1:6379/0";
}

/* Deletes every key of the namespace. */
static inline void redis_fixture_cleanup(bx_redis *r)
{
    char pat[128], cursor[32] = "0";
    snprintf(pat, sizeof pat, "%s:*", ns);
    do {
        redisReply *rep = rds_cmd(r, err, sizeof err, "SCAN %s MATCH %s COUNT 1000", cursor, pat);
        if (!rep)
            return;
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements; i++)
            freeReplyObject(rds_cmd(r, err, sizeof err, "DEL %b", keys->element[i]->str,
                                    keys->element[i]->len));
        freeReplyObject(rep);
    } while (strcmp(cursor, "0"));
}

/* cmocka group setup: the namespace, and a connection that answered a
 * PING in *state. */
static inline int redis_fixture_setup(void **state, const char *name)
{
    snprintf(ns, sizeof ns, "%s_%ld_%lld", name, (long)getpid(), (long long)clock_wall_ms());
    bx_redis *r = rds_new(redis_url(), err, sizeof err);
    redisReply *rep = r ? rds_cmd(r, err, sizeof err, "PING") : NULL;
    if (!rep) {
        fprintf(stderr, "redis at %s does not answer: %s\n", redis_url(), err);
        rds_free(r);
        return -1;
    }
    freeReplyObject(rep);
    *state = r;
    return 0;
}

static inline int redis_fixture_teardown(void **state)
{
    redis_fixture_cleanup(*state);
    rds_free(*state);
    return 0;
}

#endif
