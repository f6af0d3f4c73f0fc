/* store — the execution history in MongoDB (libmongoc), see store.h.
 *
 * Documents are the event.h JSON with "id" stored as "_id" (first field)
 * and converted field by field between jansson and BSON: strings,
 * integers (int32 when they fit, else int64), reals, booleans, null,
 * objects and arrays. Nothing bson-specific leaks out: a value of
 * another BSON type (written by someone else) comes back as its relaxed
 * extended JSON.
 *
 * What FerretDB v1.24 (SQLite backend, our test server) does, and why
 * the code below is shaped by it (checked against a live server):
 *  - The `update` command ignores `ordered` (FerretDB issue 2612): it
 *    stops at the first failing statement, skips the rest without a
 *    word and reports the failure as index 0. So an upsert fenced by
 *    {_id, attempt: {$lte}} that hits a stored higher attempt (E11000)
 *    would silently drop the rest of the batch.
 *  - No query uses the _id index (the pushed-down `_id = ?` is written
 *    `->'$._id'` while the index is on `->"_id"`), so every update, find
 *    or upsert by _id reads the whole table: about 1 s per statement at
 *    20k documents. Inserts, on the other hand, are checked against the
 *    unique index and written in batched transactions, and honour
 *    `ordered: false` with correct indexes on duplicate-key errors.
 * Hence store_upsert inserts first (every new job: the common case, one
 * cheap statement on both servers); only the ids that already exist go
 * through one $in read (one table scan on FerretDB, the _id index on
 * MongoDB) and a fenced replace of those that really change (a higher
 * attempt, or new content for the same attempt). Redelivered batches,
 * which hold only documents already stored, then cost one read.
 * Within one call the new ids become visible before the replaced ones;
 * the call returns once all are written.
 * Reads by _id (store_get) and the history's filters and sort also scan
 * on FerretDB (no pushdown but `_id = ?`, no sort pushdown); the indexes
 * below serve MongoDB, and are created one command each (see
 * store_ensure_indexes). */
#include "store.h"
#include "event.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#define STORE_COLL "jobs"
#define STORE_MAX_DOC (16 * 1024 * 1024) /* MongoDB's and FerretDB's BSON limit */
#define STORE_DUP_KEY 11000
/* When the URL says nothing: fail a call against a server that is down
 * within seconds rather than libmongoc's 30 s (API threads wait on it). */
#define STORE_SELECT_MS 5000
#define STORE_CONNECT_MS 5000
/* ... and a server that hangs within a minute rather than libmongoc's
 * five (a FerretDB bulk write of a full batch takes well under that). */
#define STORE_SOCKET_MS 60000

struct bx_store {
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    char *db;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* lib/ does not log: libmongoc's own warnings (e.g. FerretDB's missing
 * endSessions at pool teardown) would go to stderr; every error we care
 * about comes back through a bson_error_t instead. */
static void mongoc_quiet(mongoc_log_level_t level, const char *domain, const char *message,
                         void *ud)
{
    (void)level;
    (void)domain;
    (void)message;
    (void)ud;
}

static void cleanup_at_exit(void)
{
    mongoc_cleanup();
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
/* mongoc_init is once per process and cannot follow mongoc_cleanup, so
 * the cleanup waits for exit rather than the last store_free. */
static void global_init(void)
{
    mongoc_log_set_handler(mongoc_quiet, NULL);
    mongoc_init();
    atexit(cleanup_at_exit);
}

/* FerretDB accepts [A-Za-z0-9_-]{1,63}; MongoDB more. Keep to the
 * common part so a namespace works on both. */
static int db_name_ok(const char *db)
{
    size_t n = strlen(db);
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = db[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

bx_store *store_new(const char *url, const char *db, char *err, size_t errlen)
{
    bx_store *s = NULL;
    bson_error_t e;

    pthread_once(&init_once, global_init);
    if (!url || !db || !db_name_ok(db)) {
        seterr(err, errlen, "invalid database name '%s' (want [A-Za-z0-9_-]{1,63})",
               db ? db : "(null)");
        return NULL;
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->db = strdup(db))) {
        seterr(err, errlen, "out of memory");
        goto fail;
    }
    s->uri = mongoc_uri_new_with_error(url, &e);
    if (!s->uri) {
        seterr(err, errlen, "invalid MongoDB url: %s", e.message);
        goto fail;
    }
    if (!mongoc_uri_has_option(s->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(s->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                       STORE_SELECT_MS);
    if (!mongoc_uri_has_option(s->uri, MONGOC_URI_CONNECTTIMEOUTMS))
        mongoc_uri_set_option_as_int32(s->uri, MONGOC_URI_CONNECTTIMEOUTMS, STORE_CONNECT_MS);
    if (!mongoc_uri_has_option(s->uri, MONGOC_URI_SOCKETTIMEOUTMS))
        mongoc_uri_set_option_as_int32(s->uri, MONGOC_URI_SOCKETTIMEOUTMS, STORE_SOCKET_MS);
    if (!mongoc_uri_get_appname(s->uri))
        mongoc_uri_set_appname(s->uri, "bashexec");
    s->pool = mongoc_client_pool_new_with_error(s->uri, &e);
    if (!s->pool) {
        seterr(err, errlen, "cannot use MongoDB url: %s", e.message);
        goto fail;
    }
    mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
    return s;
fail:
    store_free(s);
    return NULL;
}

void store_free(bx_store *s)
{
    if (!s)
        return;
    if (s->pool)
        mongoc_client_pool_destroy(s->pool);
    mongoc_uri_destroy(s->uri);
    free(s->db);
    free(s);
}

/* A client of the pool and the jobs collection: release with coll_put. */
typedef struct conn {
    mongoc_client_t *client;
    mongoc_collection_t *coll;
} conn;

static void coll_get(bx_store *s, conn *c)
{
    c->client = mongoc_client_pool_pop(s->pool);
    c->coll = mongoc_client_get_collection(c->client, s->db, STORE_COLL);
}

static void coll_put(bx_store *s, conn *c)
{
    if (c->coll)
        mongoc_collection_destroy(c->coll);
    if (c->client)
        mongoc_client_pool_push(s->pool, c->client);
    c->coll = NULL;
    c->client = NULL;
}

int store_ping(bx_store *s, char *err, size_t errlen)
{
    conn c;
    bson_error_t e;
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    coll_get(s, &c);
    bool ok = mongoc_client_command_simple(c.client, "admin", cmd, NULL, NULL, &e);
    coll_put(s, &c);
    bson_destroy(cmd);
    if (!ok) {
        seterr(err, errlen, "mongodb ping: %s", e.message);
        return -1;
    }
    return 0;
}

/* One createIndexes command per index: FerretDB v1.24 panics (and drops
 * the connection) on a command listing two indexes that both exist
 * already (it deletes from the list it iterates by stale positions). */
int store_ensure_indexes(bx_store *s, char *err, size_t errlen)
{
    /* Newest first within a state or a queue: the history's queries. */
    static const char *const fields[] = {"state", "queue"};
    conn c;
    int rc = 0;
    coll_get(s, &c);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && rc == 0; i++) {
        char name[64];
        bson_error_t e;
        bson_t reply;
        snprintf(name, sizeof name, "%s_1__id_-1", fields[i]);
        bson_t *cmd = BCON_NEW("createIndexes", STORE_COLL, "indexes", "[", "{", "key", "{",
                               fields[i], BCON_INT32(1), "_id", BCON_INT32(-1), "}", "name",
                               BCON_UTF8(name), "}", "]");
        if (!mongoc_collection_write_command_with_opts(c.coll, cmd, NULL, &reply, &e)) {
            seterr(err, errlen, "mongodb createIndexes %s: %s", name, e.message);
            rc = -1;
        }
        bson_destroy(&reply);
        bson_destroy(cmd);
    }
    coll_put(s, &c);
    return rc;
}

/* ---- jansson -> BSON ---- */

/* Keys MongoDB cannot store or query by path: empty, with '.', or
 * starting with '$' (FerretDB rejects the last two; libmongoc the first). */
static const char *key_problem(const char *k)
{
    if (!*k)
        return "empty key";
    if (*k == '$')
        return "key starts with '$'";
    if (strchr(k, '.'))
        return "key contains '.'";
    return NULL;
}

static int append_json(bson_t *b, const char *key, const json_t *v, char *err, size_t errlen);

static int append_object(bson_t *b, const json_t *obj, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        const char *why = key_problem(k);
        if (why) {
            seterr(err, errlen, "%s: '%s'", why, k);
            return -1;
        }
        if (append_json(b, k, v, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int append_json(bson_t *b, const char *key, const json_t *v, char *err, size_t errlen)
{
    bool ok = true;
    switch (json_typeof(v)) {
    case JSON_STRING:
        ok = bson_append_utf8(b, key, -1, json_string_value(v), (int)json_string_length(v));
        break;
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        if (i >= INT32_MIN && i <= INT32_MAX)
            ok = bson_append_int32(b, key, -1, (int32_t)i);
        else
            ok = bson_append_int64(b, key, -1, (int64_t)i);
        break;
    }
    case JSON_REAL:
        ok = bson_append_double(b, key, -1, json_real_value(v));
        break;
    case JSON_TRUE:
        ok = bson_append_bool(b, key, -1, true);
        break;
    case JSON_FALSE:
        ok = bson_append_bool(b, key, -1, false);
        break;
    case JSON_NULL:
        ok = bson_append_null(b, key, -1);
        break;
    case JSON_OBJECT: {
        bson_t child;
        if (!bson_append_document_begin(b, key, -1, &child))
            break;
        if (append_object(&child, v, err, errlen) < 0) {
            bson_append_document_end(b, &child);
            return -1;
        }
        ok = bson_append_document_end(b, &child);
        break;
    }
    case JSON_ARRAY: {
        bson_t child;
        char ibuf[16];
        const char *ikey;
        size_t i;
        json_t *e;
        if (!bson_append_array_begin(b, key, -1, &child))
            break;
        json_array_foreach(v, i, e) {
            bson_uint32_to_string((uint32_t)i, &ikey, ibuf, sizeof ibuf);
            if (append_json(&child, ikey, e, err, errlen) < 0) {
                bson_append_array_end(b, &child);
                return -1;
            }
        }
        ok = bson_append_array_end(b, &child);
        break;
    }
    }
    if (!ok) {
        seterr(err, errlen, "document too large at '%s'", key);
        return -1;
    }
    return 0;
}

/* The stored form of event ev: "_id" first (from "id"), then the other
 * fields in order. New bson_t (bson_destroy) or NULL + err. */
static bson_t *event_to_bson(const json_t *ev, const char **id, int *attempt, char *err,
                             size_t errlen)
{
    const char *k;
    json_t *v;
    json_t *jid = json_object_get(ev, "id");
    json_t *jatt = json_object_get(ev, "attempt");
    bson_t *b;

    if (!json_is_object(ev)) {
        seterr(err, errlen, "not an object");
        return NULL;
    }
    if (!json_is_string(jid) || json_string_length(jid) == 0) {
        seterr(err, errlen, "no string 'id'");
        return NULL;
    }
    if (!json_is_integer(jatt) || json_integer_value(jatt) < 0 ||
        json_integer_value(jatt) > INT32_MAX) {
        seterr(err, errlen, "no valid 'attempt'");
        return NULL;
    }
    *id = json_string_value(jid);
    *attempt = (int)json_integer_value(jatt);
    b = bson_new();
    bson_append_utf8(b, "_id", 3, *id, (int)json_string_length(jid));
    json_object_foreach((json_t *)ev, k, v) {
        const char *why;
        if (strcmp(k, "id") == 0)
            continue;
        if (strcmp(k, "_id") == 0) {
            seterr(err, errlen, "reserved key '_id'");
            goto fail;
        }
        if ((why = key_problem(k))) {
            seterr(err, errlen, "%s: '%s'", why, k);
            goto fail;
        }
        if (append_json(b, k, v, err, errlen) < 0)
            goto fail;
    }
    if (b->len > STORE_MAX_DOC) {
        seterr(err, errlen, "document of %u bytes is over MongoDB's 16 MiB", b->len);
        goto fail;
    }
    return b;
fail:
    bson_destroy(b);
    return NULL;
}

/* ---- BSON -> jansson ---- */

static json_t *iter_to_json(bson_iter_t *it);

static json_t *doc_to_json(bson_iter_t *child, int is_array)
{
    json_t *out = is_array ? json_array() : json_object();
    while (out && bson_iter_next(child)) {
        json_t *v = iter_to_json(child);
        if (!v)
            goto fail;
        if ((is_array ? json_array_append_new(out, v)
                      : json_object_set_new(out, bson_iter_key(child), v)) < 0)
            goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

/* A value of a type we never write: its relaxed extended JSON, so that
 * nothing bson-specific reaches the API. */
static json_t *foreign_to_json(bson_iter_t *it)
{
    bson_t tmp = BSON_INITIALIZER;
    json_t *out = NULL;
    char *text;
    bson_append_iter(&tmp, "v", 1, it);
    text = bson_as_relaxed_extended_json(&tmp, NULL);
    if (text) {
        json_t *wrap = json_loads(text, JSON_DECODE_ANY, NULL);
        out = json_incref(json_object_get(wrap, "v"));
        json_decref(wrap);
        bson_free(text);
    }
    bson_destroy(&tmp);
    return out ? out : json_null();
}

static json_t *iter_to_json(bson_iter_t *it)
{
    bson_iter_t child;
    switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8: {
        uint32_t n;
        const char *str = bson_iter_utf8(it, &n);
        return json_stringn(str, n);
    }
    case BSON_TYPE_INT32:
        return json_integer(bson_iter_int32(it));
    case BSON_TYPE_INT64:
        return json_integer(bson_iter_int64(it));
    case BSON_TYPE_DOUBLE:
        return json_real(bson_iter_double(it));
    case BSON_TYPE_BOOL:
        return json_boolean(bson_iter_bool(it));
    case BSON_TYPE_NULL:
        return json_null();
    case BSON_TYPE_DOCUMENT:
        if (!bson_iter_recurse(it, &child))
            return NULL;
        return doc_to_json(&child, 0);
    case BSON_TYPE_ARRAY:
        if (!bson_iter_recurse(it, &child))
            return NULL;
        return doc_to_json(&child, 1);
    default:
        return foreign_to_json(it);
    }
}

/* A stored document as the API shows it: "id" first. New reference. */
static json_t *record_to_json(const bson_t *doc)
{
    bson_iter_t it;
    json_t *out = json_object();
    if (!out || !bson_iter_init(&it, doc))
        goto fail;
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        json_t *v = iter_to_json(&it);
        if (!v)
            goto fail;
        if (json_object_set_new(out, strcmp(k, "_id") == 0 ? "id" : k, v) < 0)
            goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

/* ---- writes ---- */

typedef struct item {
    const char *id;  /* borrowed from the event */
    int attempt;
    bson_t *doc;     /* owned */
    size_t pos;      /* place in the batch: of equal attempts the last wins */
    int dup;         /* the insert found the id already stored */
} item;

static int item_cmp(const void *a, const void *b)
{
    const item *x = a, *y = b;
    return strcmp(x->id, y->id);
}

/* By id, then attempt, then position: the last of a run is the one to keep. */
static int item_order(const void *a, const void *b)
{
    const item *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c)
        return c;
    if (x->attempt != y->attempt)
        return x->attempt < y->attempt ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Write concern for our writes: the URL's, unless it is unacknowledged
 * (we ack RabbitMQ only after MongoDB did). Appended to opts. */
static void add_write_concern(mongoc_collection_t *coll, bson_t *opts)
{
    const mongoc_write_concern_t *wc = mongoc_collection_get_write_concern(coll);
    if (!mongoc_write_concern_is_acknowledged(wc)) {
        mongoc_write_concern_t *w1 = mongoc_write_concern_new();
        mongoc_write_concern_set_w(w1, 1);
        mongoc_write_concern_append(w1, opts);
        mongoc_write_concern_destroy(w1);
    }
}

/* Non-empty array field key of reply, into *it. */
static int reply_array(const bson_t *reply, const char *key, bson_iter_t *it)
{
    bson_iter_t a;
    if (!bson_iter_init_find(&a, reply, key) || !BSON_ITER_HOLDS_ARRAY(&a))
        return 0;
    if (!bson_iter_recurse(&a, it))
        return 0;
    bson_iter_t probe = *it;
    return bson_iter_next(&probe) ? 1 : 0;
}

/* Inserts every item (unordered). Marks those whose id exists (E11000);
 * any other failure is -1 + err. */
static int insert_new(mongoc_collection_t *coll, item *items, size_t n, char *err,
                      size_t errlen)
{
    bson_t opts = BSON_INITIALIZER, reply;
    bson_error_t e;
    bson_iter_t we;
    int rc = -1;
    mongoc_bulk_operation_t *bulk;

    BSON_APPEND_BOOL(&opts, "ordered", false);
    add_write_concern(coll, &opts);
    bulk = mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
    for (size_t i = 0; i < n; i++) {
        if (!mongoc_bulk_operation_insert_with_opts(bulk, items[i].doc, NULL, &e)) {
            seterr(err, errlen, "event id=%s: %s", items[i].id, e.message);
            mongoc_bulk_operation_destroy(bulk);
            bson_destroy(&opts);
            return -1;
        }
    }
    bool ok = mongoc_bulk_operation_execute(bulk, &reply, &e) != 0;
    if (ok) {
        rc = 0;
        goto out;
    }
    /* Failed: fine only if every failure is a duplicate id and the write
     * concern was met; anything else (network, server) fails the batch. */
    if (reply_array(&reply, "writeConcernErrors", &we) || !reply_array(&reply, "writeErrors", &we)) {
        seterr(err, errlen, "mongodb insert: %s", e.message);
        goto out;
    }
    while (bson_iter_next(&we)) {
        bson_iter_t f, d;
        int32_t code = 0, idx = -1;
        if (!BSON_ITER_HOLDS_DOCUMENT(&we) || !bson_iter_recurse(&we, &d))
            continue;
        f = d;
        if (bson_iter_find(&f, "code"))
            code = bson_iter_as_int64(&f) > INT32_MAX ? 0 : (int32_t)bson_iter_as_int64(&f);
        f = d;
        if (bson_iter_find(&f, "index"))
            idx = (int32_t)bson_iter_as_int64(&f);
        if (code != STORE_DUP_KEY || idx < 0 || (size_t)idx >= n) {
            f = d;
            seterr(err, errlen, "mongodb insert: event id=%s: %s",
                   idx >= 0 && (size_t)idx < n ? items[idx].id : "?",
                   bson_iter_find(&f, "errmsg") && BSON_ITER_HOLDS_UTF8(&f)
                       ? bson_iter_utf8(&f, NULL) : e.message);
            goto out;
        }
        items[idx].dup = 1;
    }
    rc = 0;
out:
    mongoc_bulk_operation_destroy(bulk);
    bson_destroy(&reply);
    bson_destroy(&opts);
    return rc;
}

/* For the items whose id was already stored: reads what is stored (one
 * $in), then replaces, fenced by attempt, those that change. Adds to
 * *unchanged those it leaves alone, and those the fence refused. */
/* 1 when the document's state is a final one. */
static int doc_terminal(const bson_t *doc)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, "state") && BSON_ITER_HOLDS_UTF8(&it) &&
           state_is_terminal(bson_iter_utf8(&it, NULL));
}

static int replace_changed(mongoc_collection_t *coll, item *items, size_t n, size_t *unchanged,
                           char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, reply;
    bson_error_t e;
    mongoc_cursor_t *cur;
    mongoc_bulk_operation_t *bulk = NULL;
    const bson_t *doc;
    char ibuf[16];
    const char *ikey;
    uint32_t k = 0;
    size_t nrep = 0;
    int rc = -1;
    int *keep = calloc(n ? n : 1, sizeof *keep); /* 1 = write it */

    if (!keep) {
        seterr(err, errlen, "out of memory");
        goto out0;
    }
    {
        bson_t idd, arr;
        bson_append_document_begin(&filter, "_id", 3, &idd);
        bson_append_array_begin(&idd, "$in", 3, &arr);
        for (size_t i = 0; i < n; i++) {
            if (!items[i].dup)
                continue;
            keep[i] = 1;
            bson_uint32_to_string(k++, &ikey, ibuf, sizeof ibuf);
            bson_append_utf8(&arr, ikey, -1, items[i].id, -1);
        }
        bson_append_array_end(&idd, &arr);
        bson_append_document_end(&filter, &idd);
    }
    if (k == 0) {
        rc = 0;
        goto out0;
    }
    cur = mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        item key = {0}, *hit;
        int32_t stored_attempt = 0;
        if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it))
            continue;
        key.id = bson_iter_utf8(&it, NULL);
        hit = bsearch(&key, items, n, sizeof *items, item_cmp);
        if (!hit || !hit->dup)
            continue;
        if (bson_iter_init_find(&it, doc, "attempt") && BSON_ITER_HOLDS_NUMBER(&it))
            stored_attempt = (int32_t)bson_iter_as_int64(&it);
        /* Stale (a higher attempt is stored, or a final state of this
         * attempt that a late non-final event must not undo) or already
         * what we have (a redelivery): nothing to write. */
        if (stored_attempt > hit->attempt || bson_equal(doc, hit->doc) ||
            (stored_attempt == hit->attempt && doc_terminal(doc) && !doc_terminal(hit->doc))) {
            keep[hit - items] = 0;
            (*unchanged)++;
        }
    }
    if (mongoc_cursor_error(cur, &e)) {
        seterr(err, errlen, "mongodb find: %s", e.message);
        mongoc_cursor_destroy(cur);
        goto out0;
    }
    mongoc_cursor_destroy(cur);

    BSON_APPEND_BOOL(&opts, "ordered", false);
    add_write_concern(coll, &opts);
    bulk = mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
    for (size_t i = 0; i < n; i++) {
        bson_t *sel, *ropts;
        if (!keep[i])
            continue;
        /* The fence: replace only a document of this attempt or lower;
         * one that turned higher since the read is left alone. No
         * upsert: the id was stored a moment ago and nothing deletes
         * (an upsert's E11000 would also end FerretDB's batch). */
        sel = BCON_NEW("_id", BCON_UTF8(items[i].id), "attempt", "{", "$lte",
                       BCON_INT32(items[i].attempt), "}");
        ropts = BCON_NEW("upsert", BCON_BOOL(false));
        bool added = mongoc_bulk_operation_replace_one_with_opts(bulk, sel, items[i].doc, ropts, &e);
        bson_destroy(sel);
        bson_destroy(ropts);
        if (!added) {
            seterr(err, errlen, "event id=%s: %s", items[i].id, e.message);
            goto out;
        }
        nrep++;
    }
    if (nrep == 0) {
        rc = 0;
        goto out;
    }
    if (!mongoc_bulk_operation_execute(bulk, &reply, &e)) {
        seterr(err, errlen, "mongodb replace: %s", e.message);
        bson_destroy(&reply);
        goto out;
    }
    {
        /* a document that turned higher since the read: the fence held */
        bson_iter_t it;
        if (bson_iter_init_find(&it, &reply, "nMatched") && BSON_ITER_HOLDS_NUMBER(&it) &&
            bson_iter_as_int64(&it) >= 0 && (size_t)bson_iter_as_int64(&it) < nrep)
            *unchanged += nrep - (size_t)bson_iter_as_int64(&it);
    }
    bson_destroy(&reply);
    rc = 0;
out:
    mongoc_bulk_operation_destroy(bulk);
out0:
    free(keep);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

int store_upsert(bx_store *s, json_t *const *events, size_t n, char *err, size_t errlen)
{
    return store_upsert_ex(s, events, n, NULL, err, errlen);
}

int store_upsert_ex(bx_store *s, json_t *const *events, size_t n, size_t *unchanged, char *err,
                    size_t errlen)
{
    item *items = NULL;
    size_t m = 0, ndup = 0, same = 0;
    conn c = {0};
    int rc = -1;
    char why[256];

    if (unchanged)
        *unchanged = 0;
    if (n == 0)
        return 0;
    items = calloc(n, sizeof *items);
    if (!items) {
        seterr(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        items[i].pos = i;
        items[i].doc = event_to_bson(events[i], &items[i].id, &items[i].attempt, why, sizeof why);
        if (!items[i].doc) {
            seterr(err, errlen, "event %zu: %s", i, why);
            goto out;
        }
    }
    /* One write per id: the highest attempt, and of equal attempts the
     * last one received. Sorted by id, too, for replace_changed. */
    qsort(items, n, sizeof *items, item_order);
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && strcmp(items[i].id, items[i + 1].id) == 0) {
            bson_destroy(items[i].doc); /* superseded by the next one */
            continue;
        }
        items[m++] = items[i];
    }
    same = n - m; /* superseded within the batch */
    n = m;

    coll_get(s, &c);
    if (insert_new(c.coll, items, n, err, errlen) < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        ndup += items[i].dup != 0;
    if (ndup && replace_changed(c.coll, items, n, &same, err, errlen) < 0)
        goto out;
    rc = 0;
    if (unchanged)
        *unchanged = same;
out:
    coll_put(s, &c);
    if (items)
        for (size_t i = 0; i < n; i++)
            bson_destroy(items[i].doc);
    free(items);
    return rc;
}

/* ---- reads ---- */

json_t *store_get(bx_store *s, const char *id, char *err, size_t errlen)
{
    conn c;
    bson_error_t e;
    const bson_t *doc;
    json_t *out = NULL;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
    mongoc_cursor_t *cur;

    seterr(err, errlen, "%s", "");
    coll_get(s, &c);
    cur = mongoc_collection_find_with_opts(c.coll, filter, opts, NULL);
    if (mongoc_cursor_next(cur, &doc)) {
        out = record_to_json(doc);
        if (!out)
            seterr(err, errlen, "out of memory");
    } else if (mongoc_cursor_error(cur, &e)) {
        seterr(err, errlen, "mongodb find: %s", e.message);
    }
    mongoc_cursor_destroy(cur);
    coll_put(s, &c);
    bson_destroy(filter);
    bson_destroy(opts);
    return out;
}

json_t *store_history(bx_store *s, const store_query *q, char *err, size_t errlen)
{
    conn c = {0};
    bson_error_t e;
    const bson_t *doc;
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = NULL;
    mongoc_cursor_t *cur = NULL;
    json_t *jobs = NULL, *out = NULL;
    size_t got = 0;

    if (q->limit < 1 || q->limit > 1000) {
        seterr(err, errlen, "limit %d is out of 1..1000", q->limit);
        goto fail;
    }
    if (q->state)
        BSON_APPEND_UTF8(&filter, "state", q->state);
    if (q->queue)
        BSON_APPEND_UTF8(&filter, "queue", q->queue);
    if (q->label_key) {
        char path[512];
        const char *why = key_problem(q->label_key);
        if (why || !q->label_value) {
            seterr(err, errlen, "label '%s': %s", q->label_key, why ? why : "no value");
            goto fail;
        }
        if ((size_t)snprintf(path, sizeof path, "labels.%s", q->label_key) >= sizeof path) {
            seterr(err, errlen, "label key too long");
            goto fail;
        }
        BSON_APPEND_UTF8(&filter, path, q->label_value);
    }
    if (q->before) {
        bson_t sub;
        bson_append_document_begin(&filter, "_id", 3, &sub);
        BSON_APPEND_UTF8(&sub, "$lt", q->before);
        bson_append_document_end(&filter, &sub);
    }
    if (q->since || q->until) {
        bson_t sub;
        bson_append_document_begin(&filter, "submitted_at", -1, &sub);
        if (q->since)
            BSON_APPEND_UTF8(&sub, "$gte", q->since);
        if (q->until)
            BSON_APPEND_UTF8(&sub, "$lt", q->until);
        bson_append_document_end(&filter, &sub);
    }
    /* One more than asked: whether there is a next page. */
    opts = BCON_NEW("sort", "{", "_id", BCON_INT32(-1), "}", "limit",
                    BCON_INT64((int64_t)q->limit + 1));
    jobs = json_array();
    if (!jobs) {
        seterr(err, errlen, "out of memory");
        goto fail;
    }
    coll_get(s, &c);
    cur = mongoc_collection_find_with_opts(c.coll, &filter, opts, NULL);
    while (got < (size_t)q->limit && mongoc_cursor_next(cur, &doc)) {
        json_t *j = record_to_json(doc);
        if (!j || json_array_append_new(jobs, j) < 0) {
            seterr(err, errlen, "out of memory");
            goto fail;
        }
        got++;
    }
    int more = got == (size_t)q->limit && mongoc_cursor_next(cur, &doc);
    if (mongoc_cursor_error(cur, &e)) {
        seterr(err, errlen, "mongodb find: %s", e.message);
        goto fail;
    }
    json_t *next = more ? json_object_get(json_array_get(jobs, got - 1), "id") : NULL;
    out = json_pack("{s:o,s:O}", "jobs", jobs, "next", next ? next : json_null());
    jobs = NULL;
    if (!out)
        seterr(err, errlen, "out of memory");
fail:
    if (cur)
        mongoc_cursor_destroy(cur);
    if (c.client)
        coll_put(s, &c);
    json_decref(jobs);
    bson_destroy(opts);
    bson_destroy(&filter);
    return out;
}
