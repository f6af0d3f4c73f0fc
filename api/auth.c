/* auth — tokens file parsing and constant-time token checks. */
#include "auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct auth_entry {
    char name[AUTH_NAME_MAX + 1];
    char token[AUTH_TOKEN_MAX + 1];
    size_t token_len;
    unsigned scopes;
} auth_entry;

struct auth_table {
    auth_entry *e;
    size_t n;
};

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Splits the next whitespace-separated field off [*p, end). */
static size_t field(const char **p, const char *end, const char **start)
{
    while (*p < end && is_space(**p))
        (*p)++;
    *start = *p;
    while (*p < end && !is_space(**p))
        (*p)++;
    return (size_t)(*p - *start);
}

static int parse_scopes(const char *s, size_t n, unsigned *out)
{
    *out = 0;
    while (n) {
        const char *comma = memchr(s, ',', n);
        size_t k = comma ? (size_t)(comma - s) : n;
        if (k == 6 && !memcmp(s, "submit", 6))
            *out |= SCOPE_SUBMIT;
        else if (k == 4 && !memcmp(s, "read", 4))
            *out |= SCOPE_READ;
        else if (k == 6 && !memcmp(s, "cancel", 6))
            *out |= SCOPE_CANCEL;
        else if (k == 5 && !memcmp(s, "admin", 5))
            *out |= SCOPE_ADMIN | SCOPE_SUBMIT | SCOPE_READ | SCOPE_CANCEL;
        else
            return -1;
        s += k + (comma != NULL);
        n -= k + (comma != NULL);
        if (comma && !n)
            return -1; /* trailing comma */
    }
    return *out ? 0 : -1;
}

auth_table *auth_parse(const char *text, size_t len, char *err, size_t errlen)
{
    auth_table *t = calloc(1, sizeof *t);
    size_t cap = 0;
    if (!t)
        goto oom;
    const char *p = text, *end = text + len;
    for (int line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *hash = memchr(p, '#', (size_t)(le - p));
        const char *ce = hash ? hash : le;
        const char *f[4];
        size_t fl[4];
        const char *q = p;
        for (int i = 0; i < 4; i++)
            fl[i] = field(&q, ce, &f[i]);
        p = nl ? nl + 1 : end;
        if (!fl[0])
            continue; /* blank or comment */
        if (memchr(f[0], 0, (size_t)(ce - f[0]))) {
            snprintf(err, errlen, "line %d: NUL byte", line);
            goto fail;
        }
        if (!fl[1] || !fl[2] || fl[3]) {
            snprintf(err, errlen, "line %d: want 'name token scope[,scope...]'", line);
            goto fail;
        }
        if (fl[0] > AUTH_NAME_MAX || fl[1] > AUTH_TOKEN_MAX) {
            snprintf(err, errlen, "line %d: name or token too long (max %d and %d)", line,
                     AUTH_NAME_MAX, AUTH_TOKEN_MAX);
            goto fail;
        }
        unsigned scopes;
        if (parse_scopes(f[2], fl[2], &scopes)) {
            snprintf(err, errlen, "line %d: bad scopes '%.*s' (want submit, read, cancel, admin)",
                     line, (int)(fl[2] > 100 ? 100 : fl[2]), f[2]);
            goto fail;
        }
        for (size_t i = 0; i < t->n; i++)
            if (t->e[i].token_len == fl[1] && !memcmp(t->e[i].token, f[1], fl[1])) {
                snprintf(err, errlen, "line %d: token of '%s' repeated", line, t->e[i].name);
                goto fail;
            }
        if (t->n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            auth_entry *ne = realloc(t->e, nc * sizeof *ne);
            if (!ne)
                goto oom;
            t->e = ne;
            cap = nc;
        }
        auth_entry *e = &t->e[t->n++];
        memset(e, 0, sizeof *e);
        memcpy(e->name, f[0], fl[0]);
        memcpy(e->token, f[1], fl[1]);
        e->token_len = fl[1];
        e->scopes = scopes;
    }
    return t;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    auth_table_free(t);
    return NULL;
}

auth_table *auth_load(const char *path, char *err, size_t errlen)
{
    char msg[256];
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open tokens file '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            if (cap >= (1u << 24)) {
                snprintf(err, errlen, "tokens file '%s' is larger than 16 MiB", path);
                goto fail;
            }
            char *nb = realloc(buf, cap + 65536);
            if (!nb) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
            buf = nb;
            cap += 65536;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read tokens file '%s'", path);
        goto fail;
    }
    fclose(f);
    auth_table *t = auth_parse(buf ? buf : "", len, msg, sizeof msg);
    free(buf);
    if (!t)
        snprintf(err, errlen, "tokens file '%s': %s", path, msg);
    return t;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

void auth_table_free(auth_table *t)
{
    if (!t)
        return;
    /* tokens are secrets: do not leave them in freed memory */
    if (t->e)
        explicit_bzero(t->e, t->n * sizeof *t->e);
    free(t->e);
    free(t);
}

size_t auth_count(const auth_table *t) { return t ? t->n : 0; }

/* 1 when a[0..an) equals b[0..bn), taking time that depends on bn (the
 * stored token's length) only, never on where the first difference is. */
static int ct_equal(const char *a, size_t an, const char *b, size_t bn)
{
    volatile unsigned char d = (unsigned char)(an != bn);
    for (size_t i = 0; i < bn; i++)
        d |= (unsigned char)(b[i] ^ (an ? a[i % an] : 0));
    return d == 0;
}

auth_result auth_check(const auth_table *t, const char *header, unsigned scope, char *name)
{
    static const char bearer[] = "Bearer ";
    if (!header || strncasecmp(header, bearer, sizeof bearer - 1))
        return AUTH_MISSING;
    const char *tok = header + sizeof bearer - 1;
    while (*tok == ' ')
        tok++;
    size_t n = strlen(tok);
    while (n && is_space(tok[n - 1]))
        n--;
    if (!n)
        return AUTH_MISSING;
    const auth_entry *hit = NULL;
    for (size_t i = 0; t && i < t->n; i++)
        if (ct_equal(tok, n, t->e[i].token, t->e[i].token_len))
            hit = &t->e[i];
    if (!hit)
        return AUTH_INVALID;
    if (name)
        snprintf(name, AUTH_NAME_MAX + 1, "%s", hit->name);
    return (hit->scopes & scope) == scope ? AUTH_OK : AUTH_FORBIDDEN;
}

struct auth_store {
    pthread_rwlock_t lock;
    auth_table *t;
};

auth_store *auth_store_new(auth_table *t)
{
    auth_store *s = calloc(1, sizeof *s);
    if (!s) {
        auth_table_free(t);
        return NULL;
    }
    pthread_rwlock_init(&s->lock, NULL);
    s->t = t;
    return s;
}

void auth_store_free(auth_store *s)
{
    if (!s)
        return;
    auth_table_free(s->t);
    pthread_rwlock_destroy(&s->lock);
    free(s);
}

long auth_store_reload(auth_store *s, const char *path, char *err, size_t errlen)
{
    auth_table *t = auth_load(path, err, errlen);
    if (!t)
        return -1;
    pthread_rwlock_wrlock(&s->lock);
    auth_table *old = s->t;
    s->t = t;
    pthread_rwlock_unlock(&s->lock);
    auth_table_free(old);
    return (long)t->n;
}

auth_result auth_store_check(auth_store *s, const char *header, unsigned scope, char *name)
{
    pthread_rwlock_rdlock(&s->lock);
    auth_result r = auth_check(s->t, header, scope, name);
    pthread_rwlock_unlock(&s->lock);
    return r;
}
