/* store — the execution history in MongoDB (libmongoc): database = the
 * namespace, collection "jobs", one document per job with _id = job id
 * and the fields of event.h. Thread-safe (a client pool). */
#ifndef BX_STORE_H
#define BX_STORE_H

#include <stddef.h>
#include <jansson.h>

typedef struct bx_store bx_store;

/* Never fails for a server that is down (calls do). NULL + err on a bad URL. */
bx_store *store_new(const char *url, const char *db, char *err, size_t errlen);
void store_free(bx_store *s);

int store_ping(bx_store *s, char *err, size_t errlen);
/* The indexes the history queries need; idempotent. */
int store_ensure_indexes(bx_store *s, char *err, size_t errlen);

/* Upserts events (result documents of event.h, borrowed) by job id in
 * one unordered bulk write, fenced: a document never replaces one of a
 * higher attempt. 0 once MongoDB acknowledged all (stale ones count as
 * done), -1 + err if any could not be written (the caller retries the
 * whole batch: upserts are idempotent). */
int store_upsert(bx_store *s, json_t *const *events, size_t n, char *err, size_t errlen);
/* The same; *unchanged (if not NULL) gets how many of the n events
 * changed nothing: a higher attempt or the very same document was
 * stored already, or a later event of the batch superseded it. */
int store_upsert_ex(bx_store *s, json_t *const *events, size_t n, size_t *unchanged, char *err,
                    size_t errlen);

/* The record of id: new reference; NULL with err "" when absent. */
json_t *store_get(bx_store *s, const char *id, char *err, size_t errlen);

typedef struct store_query {
    const char *state;       /* NULL = any */
    const char *queue;       /* NULL = any */
    const char *label_key;   /* with label_value: labels.<key> == value */
    const char *label_value;
    const char *before;      /* id: only older jobs (paging) */
    const char *since;       /* RFC 3339: submitted at or after */
    const char *until;       /* RFC 3339: submitted before */
    int limit;               /* 1..1000 */
} store_query;

/* {"jobs": [...newest first...], "next": id or null}: new reference, or
 * NULL + err. next is the `before` of the following page. */
json_t *store_history(bx_store *s, const store_query *q, char *err, size_t errlen);

#endif
