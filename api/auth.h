/* auth — bearer tokens and their scopes, from the tokens file:
 *
 *     # name   token                 scopes
 *     ci       3f9c...e1             submit,read
 *     ops      a71b...02             admin
 *
 * One entry a line, '#' starts a comment. Scopes: submit, read, cancel,
 * admin (= all). A file with a bad line is refused whole. */
#ifndef BX_API_AUTH_H
#define BX_API_AUTH_H

#include <stddef.h>

#include "route.h"

#define AUTH_NAME_MAX 64
#define AUTH_TOKEN_MAX 256

typedef struct auth_table auth_table;

/* Parses the text of a tokens file. New table, or NULL + err naming the
 * line. An empty table is valid (every request is then refused). */
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

/* Checks an Authorization header value (may be NULL) for scope. Every
 * token is compared, each in constant time, so the answer's timing does
 * not tell how much of a guess was right. On AUTH_OK and AUTH_FORBIDDEN
 * the token's name is copied to name (AUTH_NAME_MAX + 1 bytes). */
auth_result auth_check(const auth_table *t, const char *header, unsigned scope, char *name);

/* The table in use, swapped whole on reload (SIGHUP) while requests
 * read it. */
typedef struct auth_store auth_store;
auth_store *auth_store_new(auth_table *t); /* takes t */
void auth_store_free(auth_store *s);
/* Loads path; on success swaps it in and returns the number of tokens,
 * on failure keeps the old table and returns -1 + err. */
long auth_store_reload(auth_store *s, const char *path, char *err, size_t errlen);
auth_result auth_store_check(auth_store *s, const char *header, unsigned scope, char *name);

#endif
