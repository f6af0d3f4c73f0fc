/* mongo_raw — the MongoDB side of the recorder benchmark (libmongoc):
 *
 *   mongo_raw gen  -n N -t TAG -o FILE   N result-like documents (benchdoc.h),
 *                                        one JSON line each, labelled TAG
 *   mongo_raw raw  -m URL -d DB -f FILE [-b BATCH]
 *        inserts FILE's documents (_id = id) into a fresh collection of DB
 *        with unordered bulk writes of BATCH, the indexes of DB.jobs copied
 *        first so that both sides maintain the same indexes; prints the
 *        rate; drops the collection. The documents are turned into BSON
 *        before the clock starts: this is the server's and the driver's
 *        ceiling, nothing else.
 *   mongo_raw wait -m URL -d DB [-k LABEL] -t VALUE -n N
 *                  [-L RECORDER_LOG [-R READY_FILE]] [-s TIMEOUT_S] [-S STALL_S]
 *        waits until DB.jobs holds N documents with the label LABEL=VALUE
 *        (LABEL defaults to bench_tag) and prints the wall-clock ms at
 *        which they were all there (bx-recorder had written them) and how
 *        many succeeded. On FerretDB a count scans the whole collection
 *        (about 40 ms per 1000 documents) and would slow down what is
 *        measured: without -L it counts every 20 ms. Gives up after
 *        TIMEOUT_S (60), or when a count stops growing for STALL_S (15).
 *        With -L it asks MongoDB nothing until bx-recorder's log (its
 *        stderr) says, in the event=batch_written lines appended since the
 *        wait began, that it wrote N documents; then it counts once to
 *        confirm. Even a find by _id every 5 ms, while the recorder
 *        writes, took FerretDB (SQLite) from about 0.2 to 3.5 ms of CPU
 *        per document written, so the recorder was measured against its
 *        own waiter; the raw insert has none. With -R READY_FILE it then
 *        creates READY_FILE and counts only once the caller removed it
 *        (10 s at most), so that the caller's measurements end where the
 *        recorder did and leave out the count (a scan on FerretDB, of
 *        every document of the database).
 *   mongo_raw dropdb -m URL -d DB    drops database DB (cleanup)
 *
 * Prints one JSON line; exit 0 on success. */
#include <bson/bson.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchdoc.h"

#define MAX_DOC 4096

static int cmd_gen(long n, const char *tag, const char *file)
{
    FILE *f = fopen(file, "w");
    if (!f) {
        perror(file);
        return 1;
    }
    char id[37], doc[MAX_DOC];
    for (long i = 0; i < n; i++) {
        bench_uuid7(id);
        size_t len = bench_result_doc(doc, sizeof doc, id, tag);
        if (!len || fprintf(f, "%s\n", doc) < 0) {
            fclose(f);
            return 1;
        }
    }
    if (fclose(f)) {
        perror(file);
        return 1;
    }
    printf("{\"generated\":%ld,\"tag\":\"%s\"}\n", n, tag);
    return 0;
}

/* The documents of file as BSON with _id = id: a new array of *n. */
static bson_t **load_docs(const char *file, size_t *n)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        perror(file);
        return NULL;
    }
    bson_t **v = NULL;
    size_t cap = 0, lcap = 0;
    char *line = NULL;
    ssize_t r;
    *n = 0;
    while ((r = getline(&line, &lcap, f)) > 0) {
        if (r <= 1)
            continue;
        bson_error_t e;
        bson_t *json = bson_new_from_json((const uint8_t *)line, r, &e);
        if (!json) {
            fprintf(stderr, "mongo_raw: %s: %s\n", file, e.message);
            goto fail;
        }
        bson_iter_t it;
        bson_t *doc = bson_new();
        if (bson_iter_init_find(&it, json, "id") && BSON_ITER_HOLDS_UTF8(&it))
            BSON_APPEND_UTF8(doc, "_id", bson_iter_utf8(&it, NULL));
        bson_concat(doc, json);
        bson_destroy(json);
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            bson_t **nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                bson_destroy(doc);
                goto fail;
            }
            v = nv;
        }
        v[(*n)++] = doc;
    }
    free(line);
    fclose(f);
    return v;
fail:
    for (size_t i = 0; i < *n; i++)
        bson_destroy(v[i]);
    free(v);
    free(line);
    fclose(f);
    return NULL;
}

/* Creates on dst the indexes src has (but _id's); returns how many. */
static int copy_indexes(mongoc_collection_t *src, mongoc_collection_t *dst)
{
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(src, NULL);
    const bson_t *spec;
    bson_t idx = BSON_INITIALIZER;
    int n = 0;
    bson_t arr;
    bson_append_array_begin(&idx, "indexes", -1, &arr);
    while (mongoc_cursor_next(cur, &spec)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, spec, "name") && !strcmp(bson_iter_utf8(&it, NULL), "_id_"))
            continue;
        bson_t one;
        char key[16];
        const char *k;
        bson_uint32_to_string((uint32_t)n, &k, key, sizeof key);
        bson_append_document_begin(&arr, k, -1, &one);
        bson_iter_t f;
        if (bson_iter_init(&f, spec)) {
            while (bson_iter_next(&f)) {
                const char *fk = bson_iter_key(&f);
                if (!strcmp(fk, "v") || !strcmp(fk, "ns"))
                    continue;
                bson_append_iter(&one, fk, -1, &f);
            }
        }
        bson_append_document_end(&arr, &one);
        n++;
    }
    bson_append_array_end(&idx, &arr);
    mongoc_cursor_destroy(cur);
    if (n) {
        bson_t cmd = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&cmd, "createIndexes", mongoc_collection_get_name(dst));
        bson_iter_t it;
        bson_iter_init_find(&it, &idx, "indexes");
        bson_append_iter(&cmd, "indexes", -1, &it);
        bson_error_t e;
        if (!mongoc_collection_write_command_with_opts(dst, &cmd, NULL, NULL, &e)) {
            fprintf(stderr, "mongo_raw: createIndexes: %s\n", e.message);
            n = -1;
        }
        bson_destroy(&cmd);
    }
    bson_destroy(&idx);
    return n;
}

static int cmd_raw(const char *url, const char *db, const char *file, long batch)
{
    size_t n = 0;
    bson_t **docs = load_docs(file, &n);
    if (!docs || !n) {
        fprintf(stderr, "mongo_raw: no documents in %s\n", file);
        free(docs);
        return 1;
    }
    int rc = 1;
    bson_error_t e;
    mongoc_client_t *cl = mongoc_client_new(url);
    if (!cl) {
        fprintf(stderr, "mongo_raw: bad URL\n");
        goto out;
    }
    mongoc_client_set_appname(cl, "bench-mongo-raw");
    char name[64];
    snprintf(name, sizeof name, "bench_raw_%ld", (long)getpid());
    mongoc_database_t *d = mongoc_client_get_database(cl, db);
    mongoc_collection_t *jobs = mongoc_client_get_collection(cl, db, "jobs");
    mongoc_collection_t *c = mongoc_database_create_collection(d, name, NULL, &e);
    if (!c) {
        fprintf(stderr, "mongo_raw: create collection: %s\n", e.message);
        mongoc_collection_destroy(jobs);
        mongoc_database_destroy(d);
        goto out_client;
    }
    int nidx = copy_indexes(jobs, c);
    if (nidx < 0)
        goto out_coll;

    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&opts, "ordered", false);
    int64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i += (size_t)batch) {
        mongoc_bulk_operation_t *b = mongoc_collection_create_bulk_operation_with_opts(c, &opts);
        for (size_t k = i; k < n && k < i + (size_t)batch; k++)
            mongoc_bulk_operation_insert_with_opts(b, docs[k], NULL, NULL);
        bson_t reply;
        uint32_t ok = mongoc_bulk_operation_execute(b, &reply, &e);
        bson_destroy(&reply);
        mongoc_bulk_operation_destroy(b);
        if (!ok) {
            fprintf(stderr, "mongo_raw: bulk insert: %s\n", e.message);
            bson_destroy(&opts);
            goto out_coll;
        }
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    bson_destroy(&opts);
    int64_t count = mongoc_collection_count_documents(c, &(bson_t)BSON_INITIALIZER, NULL, NULL,
                                                      NULL, &e);
    if (count != (int64_t)n) {
        fprintf(stderr, "mongo_raw: %lld documents stored, %zu inserted\n", (long long)count, n);
        goto out_coll;
    }
    printf("{\"docs\":%zu,\"batch\":%ld,\"indexes\":%d,\"seconds\":%.4f,\"per_s\":%.1f}\n", n,
           batch, nidx, secs, (double)n / secs);
    rc = 0;
out_coll:
    if (!mongoc_collection_drop(c, &e))
        fprintf(stderr, "mongo_raw: drop %s: %s\n", name, e.message);
    mongoc_collection_destroy(c);
    mongoc_collection_destroy(jobs);
    mongoc_database_destroy(d);
out_client:
    mongoc_client_destroy(cl);
out:
    for (size_t i = 0; i < n; i++)
        bson_destroy(docs[i]);
    free(docs);
    return rc;
}

/* Documents bx-recorder wrote, by the n= of its event=batch_written log
 * lines in buf[0..len), the last (maybe partial) line excepted: *used is
 * where the unread rest begins. */
static long logged_writes(const char *buf, size_t len, size_t *used)
{
    long sum = 0;
    size_t at = 0;
    for (;;) {
        const char *nl = memchr(buf + at, '\n', len - at);
        if (!nl)
            break;
        size_t end = (size_t)(nl - buf);
        const char *ev = memmem(buf + at, end - at, "event=batch_written n=", 22);
        if (ev)
            sum += strtol(ev + 22, NULL, 10);
        at = end + 1;
    }
    *used = at;
    return sum;
}

/* Waits until the recorder's log says n more documents were written.
 * 0 with *end_wall, or -1 (message on stderr). */
static int wait_log(const char *path, long n, double timeout_s, double stall_s, int64_t *end_wall,
                    int *polls)
{
    FILE *f = fopen(path, "r");
    if (!f || fseek(f, 0, SEEK_END)) {
        fprintf(stderr, "mongo_raw: cannot read %s\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    static char buf[1 << 16];
    size_t have = 0;
    long written = 0;
    int64_t t0 = bench_now_ns(), progress_ns = t0;
    for (;;) {
        size_t got = fread(buf + have, 1, sizeof buf - 1 - have, f), used;
        clearerr(f); /* at EOF: read on next time */
        have += got;
        long more = logged_writes(buf, have, &used);
        memmove(buf, buf + used, have - used);
        have -= used;
        if (have == sizeof buf - 1)
            have = 0; /* a line longer than the buffer: not ours */
        written += more;
        (*polls)++;
        int64_t now = bench_now_ns();
        if (written >= n) {
            *end_wall = bench_wall_ms();
            fclose(f);
            return 0;
        }
        if (more)
            progress_ns = now;
        if ((double)(now - t0) / 1e9 > timeout_s || (double)(now - progress_ns) / 1e9 > stall_s) {
            fprintf(stderr, "mongo_raw: the recorder logged %ld of %ld documents written\n", written, n);
            fclose(f);
            return -1;
        }
        usleep(5000);
    }
}

static int cmd_wait(const char *url, const char *db, const char *label, const char *tag, long n,
                    const char *rec_log, const char *ready_file, double timeout_s,
                    double stall_s)
{
    mongoc_client_t *cl = mongoc_client_new(url);
    if (!cl) {
        fprintf(stderr, "mongo_raw: bad URL\n");
        return 1;
    }
    mongoc_client_set_appname(cl, "bench-mongo-wait");
    mongoc_collection_t *c = mongoc_client_get_collection(cl, db, "jobs");
    char key[256];
    snprintf(key, sizeof key, "labels.%s", label);
    bson_t *filter = BCON_NEW(key, BCON_UTF8(tag));
    int64_t t0 = bench_now_ns(), seen = -1, best = -1, progress_ns = t0, end_wall = -1;
    int rc = 1, polls = 0;
    bson_error_t e;
    if (rec_log) {
        if (wait_log(rec_log, n, timeout_s, stall_s, &end_wall, &polls))
            goto out;
        if (ready_file) {
            FILE *rf = fopen(ready_file, "w");
            if (!rf) {
                fprintf(stderr, "mongo_raw: cannot create %s\n", ready_file);
                goto out;
            }
            fclose(rf);
            for (int i = 0; i < 10000 && access(ready_file, F_OK) == 0; i++)
                usleep(1000);
        }
    }
    /* counting is slow on FerretDB, so it polls slowly; the end is when
     * the recorder's log, or else the count, first showed them all */
    progress_ns = bench_now_ns();
    for (;;) {
        int64_t now = bench_now_ns();
        seen = mongoc_collection_count_documents(c, filter, NULL, NULL, NULL, &e);
        polls++;
        if (seen < 0)
            goto fail;
        if (seen >= n)
            break;
        end_wall = -1; /* the log was ahead of what a count sees */
        if (seen > best) {
            best = seen;
            progress_ns = now;
        }
        if ((double)(now - t0) / 1e9 > timeout_s) {
            fprintf(stderr, "mongo_raw: only %lld of %ld documents after %.0f s\n",
                    (long long)seen, n, timeout_s);
            goto out;
        }
        if ((double)(now - progress_ns) / 1e9 > stall_s) {
            fprintf(stderr, "mongo_raw: stuck at %lld of %ld documents for %.0f s\n",
                    (long long)seen, n, stall_s);
            goto out;
        }
        usleep(rec_log ? 200000 : 20000);
    }
    if (end_wall < 0)
        end_wall = bench_wall_ms();
    bson_t *ok = BCON_NEW(key, BCON_UTF8(tag), "state", BCON_UTF8("succeeded"));
    int64_t nok = mongoc_collection_count_documents(c, ok, NULL, NULL, NULL, &e);
    bson_destroy(ok);
    printf("{\"seen\":%lld,\"succeeded\":%lld,\"end_wall_ms\":%lld,\"polls\":%d}\n",
           (long long)seen, (long long)nok, (long long)end_wall, polls);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "mongo_raw: %s\n", e.message);
out:
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    mongoc_client_destroy(cl);
    return rc;
}

static int cmd_dropdb(const char *url, const char *db)
{
    mongoc_client_t *cl = mongoc_client_new(url);
    if (!cl) {
        fprintf(stderr, "mongo_raw: bad URL\n");
        return 1;
    }
    mongoc_database_t *d = mongoc_client_get_database(cl, db);
    bson_error_t e;
    int rc = 0;
    if (!mongoc_database_drop(d, &e)) {
        fprintf(stderr, "mongo_raw: drop database %s: %s\n", db, e.message);
        rc = 1;
    }
    mongoc_database_destroy(d);
    mongoc_client_destroy(cl);
    return rc;
}

/* libmongoc warns at every shutdown that FerretDB lacks endSessions */
static void log_quiet(mongoc_log_level_t level, const char *domain, const char *msg, void *ud)
{
    (void)ud;
    if (level <= MONGOC_LOG_LEVEL_WARNING && !strstr(msg, "endSessions"))
        fprintf(stderr, "mongo_raw: %s: %s\n", domain, msg);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        goto usage;
    const char *mode = argv[1], *url = "mongodb://127.0.0.1:27017/", *db = NULL, *tag = NULL,
               *file = NULL;
    const char *label = "bench_tag", *rec_log = NULL,
               *ready_file = NULL;
    long n = 5000, batch = 500;
    double timeout_s = 60, stall_s = 15;
    int o;
    optind = 2;
    while ((o = getopt(argc, argv, "m:d:n:t:o:f:b:s:k:L:R:S:")) != -1) {
        switch (o) {
        case 'm': url = optarg; break;
        case 'd': db = optarg; break;
        case 'n': n = strtol(optarg, NULL, 10); break;
        case 't': tag = optarg; break;
        case 'o':
        case 'f': file = optarg; break;
        case 'b': batch = strtol(optarg, NULL, 10); break;
        case 's': timeout_s = strtod(optarg, NULL); break;
        case 'k': label = optarg; break;
        case 'L': rec_log = optarg; break;
        case 'R': ready_file = optarg; break;
        case 'S': stall_s = strtod(optarg, NULL); break;
        default: goto usage;
        }
    }
    if (n < 1 || batch < 1)
        goto usage;
    int rc;
    if (!strcmp(mode, "gen") && tag && file)
        return cmd_gen(n, tag, file);
    mongoc_init();
    mongoc_log_set_handler(log_quiet, NULL);
    if (!strcmp(mode, "raw") && db && file)
        rc = cmd_raw(url, db, file, batch);
    else if (!strcmp(mode, "wait") && db && tag)
        rc = cmd_wait(url, db, label, tag, n, rec_log, ready_file, timeout_s, stall_s);
    else if (!strcmp(mode, "dropdb") && db)
        rc = cmd_dropdb(url, db);
    else {
        mongoc_cleanup();
        goto usage;
    }
    mongoc_cleanup();
    return rc;
usage:
    fprintf(stderr, "usage: mongo_raw gen -n N -t TAG -o FILE\n"
                    "       mongo_raw raw -m URL -d DB -f FILE [-b BATCH]\n"
                    "       mongo_raw wait -m URL -d DB [-k LABEL] -t VALUE -n N "
                    "[-L RECORDER_LOG [-R READY_FILE]] [-s TIMEOUT_S] [-S STALL_S]\n"
                    "       mongo_raw dropdb -m URL -d DB\n");
    return 2;
}
