/* auth — bearer tokens, their scopes and per-token limits, from the
 * tokens file:
 *
 *     # name  token (its SHA-256)        scopes        options
 *     ci      sha256:3f9c...e1 (64 hex)  submit,read   queues=default,batch rate=30/m
 *     deploy  sha256:a71b...02           submit        command="/srv/bin/deploy *" env=TARGET
 *     ops     sha256:07cd...9f           admin
 *
 * One entry a line, '#' outside double quotes starts a comment. Names are
 * [A-Za-z0-9._@-], unique. Tokens are kept only as "sha256:<hex>" of the
 * token (lib/tokhash.h): a line holding a token in the clear is refused,
 * and with it the whole file, naming the line (bx token new prints a
 * token and its line). Scopes: submit, read, cancel, admin (= all).
 *
 * Options, each key=value; a value may be double-quoted to hold spaces
 * or '#' (\" and \\ inside quotes):
 *   command=GLOB    repeatable: a submitted command must match one of them
 *                   whole (fnmatch(3), no flags: '*' matches any
 *                   character, ';' and '/' too); none = any command
 *   env=NAME,...    with command=: the job env names the token may set
 *                   (none by default); names that change how the shell or
 *                   the loader runs (BASH_*, LD_*, ENV, PATH, IFS, ...)
 *                   are refused here
 *   queues=Q,...    the queues it may submit to; none = any
 *   rate=N/s|m|h    submissions per second, minute or hour (token bucket)
 *   burst=N         with rate=: the bucket's size (default N of rate=)
 * A file with a bad line is refused whole. */
#ifndef BX_API_AUTH_H
#define BX_API_AUTH_H

#include <stddef.h>

#include "route.h"

#define AUTH_NAME_MAX 64
#define AUTH_PATTERN_MAX 4096 /* one command= pattern */
#define AUTH_OPTIONS_MAX 256  /* values of one option kind, per token */

typedef struct auth_table auth_table;

/* Parses the text of a tokens file. New table, or NULL + err naming the
 * line (never quoting a token). An empty table is valid (every request is
 * then refused). */
auth_table *auth_parse(const char *text, size_t len, char *err, size_t errlen);
/* Reads and parses path. */
auth_table *auth_load(const char *path, char *err, size_t errlen);
void auth_table_free(auth_table *t);
size_t auth_count(const auth_table *t);

typedef enum auth_result {
    AUTH_OK,
    AUTH_MISSING,   /* no Authorization header, or not "Bearer ..." */
    AUTH_INVALID,   /* no such token */
    AUTH_FORBIDDEN, /* a known token without the scope */
} auth_result;

/* Checks an Authorization header value (may be NULL) for scope: looks the
 * token's SHA-256 up, then compares the whole digest in constant time.
 * On AUTH_OK and AUTH_FORBIDDEN the token's name is copied to name
 * (AUTH_NAME_MAX + 1 bytes). */
auth_result auth_check(const auth_table *t, const char *header, unsigned scope, char *name);

typedef enum auth_job_result {
    AUTH_JOB_OK,
    AUTH_JOB_COMMAND, /* the command matches none of the token's command= */
    AUTH_JOB_QUEUE,   /* the queue is not in its queues= */
    AUTH_JOB_ENV,     /* an env name not in its env= (command-restricted tokens) */
    AUTH_JOB_UNKNOWN, /* no token of that name (the file was reloaded meanwhile) */
} auth_job_result;

/* The token's submission limit: rate_per_s tokens a second into a bucket
 * of burst; rate_per_s == 0: none. */
typedef struct auth_rate {
    double rate_per_s;
    int burst;
    char text[24]; /* rate= as written, e.g. "30/m" */
} auth_rate;

/* Checks a submission by token name against its options. env_names:
 * the names of the job's env (n of them). On AUTH_JOB_OK *rate is the
 * token's limit; otherwise why says which rule refused it. */
auth_job_result auth_job_check(const auth_table *t, const char *name, const char *command,
                               const char *queue, const char *const *env_names, size_t n,
                               auth_rate *rate, char *why, size_t whylen);

/* The table in use, swapped whole on reload (SIGHUP) while requests
 * read it. */
typedef struct auth_store auth_store;
auth_store *auth_store_new(auth_table *t); /* takes t */
void auth_store_free(auth_store *s);
/* Loads path; on success swaps it in and returns the number of tokens,
 * on failure keeps the old table and returns -1 + err. */
long auth_store_reload(auth_store *s, const char *path, char *err, size_t errlen);
auth_result auth_store_check(auth_store *s, const char *header, unsigned scope, char *name);
auth_job_result auth_store_job_check(auth_store *s, const char *name, const char *command,
                                     const char *queue, const char *const *env_names, size_t n,
                                     auth_rate *rate, char *why, size_t whylen);

#endif
