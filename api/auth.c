/* auth — tokens file parsing, hashed token lookup, per-token options. */
#include "auth.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tokhash.h"

typedef struct str_list {
    char **v;
    size_t n;
} str_list;

typedef struct auth_entry {
    char name[AUTH_NAME_MAX + 1];
    unsigned char digest[TOKHASH_LEN];
    unsigned scopes;
    str_list commands; /* fnmatch patterns; none = any command */
    str_list queues;   /* none = any queue */
    str_list env;      /* env names a command-restricted token may set */
    auth_rate rate;
    int line;
} auth_entry;

struct auth_table {
    auth_entry *e;
    size_t n;
    auth_entry **by_digest; /* sorted by digest */
    auth_entry **by_name;   /* sorted by name */
};

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Decodes the next field of [*p, end) into out (room for its raw length
 * + 1): whitespace ends it, '#' outside quotes ends the line, "..." keeps
 * spaces and '#' (\" and \\ escaped inside). 1 with *n bytes (*quoted
 * when it held quotes), 0 at the end of the line, -1 on an unterminated
 * quote. */
static int next_field(const char **p, const char *end, char *out, size_t *n, int *quoted)
{
    const char *s = *p;
    size_t o = 0;
    int q = 0;
    *quoted = 0;
    while (s < end && is_space(*s))
        s++;
    if (s == end || *s == '#') {
        *p = end;
        return 0;
    }
    while (s < end) {
        char c = *s;
        if (q) {
            if (c == '\\' && s + 1 < end && (s[1] == '"' || s[1] == '\\')) {
                out[o++] = s[1];
                s += 2;
                continue;
            }
            if (c == '"')
                q = 0;
            else
                out[o++] = c;
            s++;
            continue;
        }
        if (is_space(c) || c == '#')
            break;
        if (c == '"')
            q = *quoted = 1;
        else
            out[o++] = c;
        s++;
    }
    if (q)
        return -1;
    out[o] = 0;
    *n = o;
    *p = s;
    return 1;
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

static int name_ok(const char *s, size_t n)
{
    if (!n || n > AUTH_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '-'))
            return 0;
    }
    return 1;
}

static int env_name_ok(const char *s, size_t n)
{
    if (!n || n > 128 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* Names through which a job's env would decide what the shell or the
 * dynamic loader runs, defeating a command= allowlist. */
static int env_name_dangerous(const char *s)
{
    static const char *const names[] = {"ENV", "PATH", "IFS", "SHELLOPTS", "BASHOPTS", "PS4",
                                         "GLOBIGNORE", "CDPATH", "PROMPT_COMMAND", "GCONV_PATH",
                                         "HOSTALIASES", "LOCPATH", "NLSPATH"};
    if (!strncmp(s, "BASH", 4) || !strncmp(s, "LD_", 3))
        return 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i]))
            return 1;
    return 0;
}

static int list_add(str_list *l, const char *s, size_t n)
{
    if (l->n >= AUTH_OPTIONS_MAX)
        return -1;
    char **nv = realloc(l->v, (l->n + 1) * sizeof *nv);
    if (!nv)
        return -1;
    l->v = nv;
    if (!(l->v[l->n] = strndup(s, n)))
        return -1;
    l->n++;
    return 0;
}

static void list_free(str_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int list_has(const str_list *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s))
            return 1;
    return 0;
}

/* Appends "'a', 'b'" (what l holds) to why, cut to fit. */
static void list_say(const str_list *l, char *why, size_t whylen)
{
    size_t o = strlen(why);
    for (size_t i = 0; i < l->n && o + 1 < whylen; i++) {
        int w = snprintf(why + o, whylen - o, "%s'%s'", i ? ", " : "", l->v[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (o >= whylen && whylen > 4)
        memcpy(why + whylen - 4, "...", 4);
}

static int fail(char *err, size_t errlen, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int line, const char *fmt, ...)
{
    int o = snprintf(err, errlen, "line %d: ", line);
    va_list ap;
    va_start(ap, fmt);
    if (o >= 0 && (size_t)o < errlen)
        vsnprintf(err + o, errlen - (size_t)o, fmt, ap);
    va_end(ap);
    return -1;
}

/* A comma list value (queues=, env=) into l. */
static int add_comma_list(auth_entry *e, str_list *l, const char *key, const char *v, int line,
                          char *err, size_t errlen)
{
    const char *s = v;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t k = comma ? (size_t)(comma - s) : strlen(s);
        if (!k)
            return fail(err, errlen, line, "empty item in %s= of '%s'", key, e->name);
        if (l == &e->env) {
            if (!env_name_ok(s, k))
                return fail(err, errlen, line, "env= of '%s': '%.*s' is not a variable name", e->name,
                            (int)(k > 64 ? 64 : k), s);
            char nm[129];
            snprintf(nm, sizeof nm, "%.*s", (int)k, s);
            if (env_name_dangerous(nm))
                return fail(err, errlen, line,
                            "env= of '%s': '%s' would let a job change what the shell runs", e->name, nm);
        } else if (k > 64) {
            return fail(err, errlen, line, "queues= of '%s': a queue name is at most 64 bytes", e->name);
        }
        if (list_add(l, s, k))
            return fail(err, errlen, line, "too many %s= values for '%s', or out of memory", key, e->name);
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

static int parse_rate(auth_entry *e, const char *v, int line, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    double per = 0;
    if (*end == '/') {
        if (!strcmp(end + 1, "s"))
            per = 1;
        else if (!strcmp(end + 1, "m") || !strcmp(end + 1, "min"))
            per = 60;
        else if (!strcmp(end + 1, "h"))
            per = 3600;
    }
    if (end == v || errno || n < 1 || n > 1000000 || !per)
        return fail(err, errlen, line, "rate= of '%s' must be N/s, N/m or N/h (N from 1 to 1000000)",
                    e->name);
    e->rate.rate_per_s = (double)n / per;
    snprintf(e->rate.text, sizeof e->rate.text, "%s", v);
    if (!e->rate.burst)
        e->rate.burst = (int)n;
    return 0;
}

static int parse_option(auth_entry *e, const char *f, int line, char *err, size_t errlen,
                        int *burst_set)
{
    const char *eq = strchr(f, '=');
    if (!eq || eq == f)
        return fail(err, errlen, line, "want options as key=value after the scopes of '%s'", e->name);
    size_t kl = (size_t)(eq - f);
    const char *v = eq + 1;
    if (!*v)
        return fail(err, errlen, line, "option '%.*s' of '%s' has no value", (int)(kl > 32 ? 32 : kl), f,
                    e->name);
    if (kl == 7 && !memcmp(f, "command", 7)) {
        size_t n = strlen(v);
        if (n > AUTH_PATTERN_MAX)
            return fail(err, errlen, line, "command= of '%s' is longer than %d bytes", e->name,
                        AUTH_PATTERN_MAX);
        if (list_add(&e->commands, v, n))
            return fail(err, errlen, line, "too many command= for '%s', or out of memory", e->name);
        return 0;
    }
    if (kl == 6 && !memcmp(f, "queues", 6))
        return add_comma_list(e, &e->queues, "queues", v, line, err, errlen);
    if (kl == 3 && !memcmp(f, "env", 3))
        return add_comma_list(e, &e->env, "env", v, line, err, errlen);
    if (kl == 4 && !memcmp(f, "rate", 4)) {
        if (e->rate.rate_per_s > 0)
            return fail(err, errlen, line, "rate= of '%s' given twice", e->name);
        return parse_rate(e, v, line, err, errlen);
    }
    if (kl == 5 && !memcmp(f, "burst", 5)) {
        char *end;
        errno = 0;
        long b = strtol(v, &end, 10);
        if (end == v || *end || errno || b < 1 || b > 1000000)
            return fail(err, errlen, line, "burst= of '%s' must be a number from 1 to 1000000", e->name);
        e->rate.burst = (int)b;
        *burst_set = 1;
        return 0;
    }
    return fail(err, errlen, line, "unknown option '%.*s' for '%s' (want command, env, queues, rate, burst)",
                (int)(kl > 32 ? 32 : kl), f, e->name);
}

/* One entry from the line [p, le); 0 with *e filled, 1 for a blank or
 * comment line, -1 + err. buf: room for the line + 2. */
static int parse_line(const char *p, const char *le, char *buf, int line, auth_entry *e,
                      char *err, size_t errlen)
{
    char *f[3];
    size_t fl[3], off = 0;
    int r, quoted;
    memset(e, 0, sizeof *e);
    e->line = line;
    if (memchr(p, 0, (size_t)(le - p)))
        return fail(err, errlen, line, "NUL byte");
    for (int i = 0; i < 3; i++) {
        f[i] = buf + off;
        if ((r = next_field(&p, le, f[i], &fl[i], &quoted)) < 0)
            return fail(err, errlen, line, "unterminated quote");
        if (!r) {
            if (!i)
                return 1;
            return fail(err, errlen, line, "want 'name sha256:<hex> scope[,scope...] [option=value...]'");
        }
        if (quoted)
            return fail(err, errlen, line, "quotes are for option values only, not the %s",
                        i == 0 ? "name" : i == 1 ? "token's hash" : "scopes");
        off += fl[i] + 1;
    }
    if (!name_ok(f[0], fl[0]))
        return fail(err, errlen, line, "a name is 1 to %d of A-Z a-z 0-9 . _ @ -", AUTH_NAME_MAX);
    memcpy(e->name, f[0], fl[0]);
    if (tokhash_parse(f[1], fl[1], e->digest)) {
        /* never quote the field: it may be a token in the clear */
        if (fl[1] >= 7 && !memcmp(f[1], TOKHASH_PREFIX, 7))
            return fail(err, errlen, line, "the hash of '%s' must be sha256: and 64 hex digits", e->name);
        return fail(err, errlen, line,
                    "the token of '%s' is not hashed: the file keeps 'sha256:<hex>' of each token, never "
                    "the token (bx token new NAME SCOPES makes a token and its line; bx token hash "
                    "hashes one you have)",
                    e->name);
    }
    if (parse_scopes(f[2], fl[2], &e->scopes))
        return fail(err, errlen, line, "bad scopes '%.*s' of '%s' (want submit, read, cancel, admin)",
                    (int)(fl[2] > 100 ? 100 : fl[2]), f[2], e->name);
    int burst_set = 0;
    for (;;) {
        char *o = buf + off;
        size_t ol;
        if ((r = next_field(&p, le, o, &ol, &quoted)) < 0)
            return fail(err, errlen, line, "unterminated quote");
        if (!r)
            break;
        off += ol + 1;
        if (parse_option(e, o, line, err, errlen, &burst_set))
            return -1;
    }
    if (burst_set && e->rate.rate_per_s <= 0)
        return fail(err, errlen, line, "burst= of '%s' needs rate=", e->name);
    if (e->env.n && !e->commands.n)
        return fail(err, errlen, line, "env= of '%s' limits nothing without command= (any command may set "
                    "any variable)", e->name);
    return 0;
}

static void entry_release(auth_entry *e)
{
    list_free(&e->commands);
    list_free(&e->queues);
    list_free(&e->env);
}

static int cmp_digest(const void *a, const void *b)
{
    return memcmp((*(auth_entry *const *)a)->digest, (*(auth_entry *const *)b)->digest, TOKHASH_LEN);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(auth_entry *const *)a)->name, (*(auth_entry *const *)b)->name);
}

/* Builds the lookup indexes; -1 + err on a repeated name or token. */
static int index_table(auth_table *t, char *err, size_t errlen)
{
    if (!t->n)
        return 0;
    t->by_digest = malloc(t->n * sizeof *t->by_digest);
    t->by_name = malloc(t->n * sizeof *t->by_name);
    if (!t->by_digest || !t->by_name) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < t->n; i++)
        t->by_digest[i] = t->by_name[i] = &t->e[i];
    qsort(t->by_digest, t->n, sizeof *t->by_digest, cmp_digest);
    qsort(t->by_name, t->n, sizeof *t->by_name, cmp_name);
    for (size_t i = 1; i < t->n; i++) {
        const auth_entry *a = t->by_digest[i - 1], *b = t->by_digest[i];
        if (!memcmp(a->digest, b->digest, TOKHASH_LEN)) {
            int first = a->line < b->line ? a->line : b->line, second = a->line ^ b->line ^ first;
            snprintf(err, errlen, "line %d: the token of line %d repeated", second, first);
            return -1;
        }
        a = t->by_name[i - 1];
        b = t->by_name[i];
        if (!strcmp(a->name, b->name)) {
            int first = a->line < b->line ? a->line : b->line, second = a->line ^ b->line ^ first;
            snprintf(err, errlen, "line %d: name '%s' repeated (first on line %d)", second, a->name, first);
            return -1;
        }
    }
    return 0;
}

auth_table *auth_parse(const char *text, size_t len, char *err, size_t errlen)
{
    auth_table *t = calloc(1, sizeof *t);
    char *buf = malloc(len + 2);
    size_t cap = 0;
    if (!t || !buf)
        goto oom;
    const char *p = text, *end = text + len;
    for (int line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        auth_entry e;
        int r = parse_line(p, le, buf, line, &e, err, errlen);
        p = nl ? nl + 1 : end;
        if (r < 0) {
            entry_release(&e);
            goto fail;
        }
        if (r > 0)
            continue;
        if (t->n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            auth_entry *ne = realloc(t->e, nc * sizeof *ne);
            if (!ne) {
                entry_release(&e);
                goto oom;
            }
            t->e = ne;
            cap = nc;
        }
        t->e[t->n++] = e;
    }
    if (index_table(t, err, errlen))
        goto fail;
    free(buf);
    return t;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    free(buf);
    auth_table_free(t);
    return NULL;
}

auth_table *auth_load(const char *path, char *err, size_t errlen)
{
    char msg[512];
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
    if (buf)
        explicit_bzero(buf, len);
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
    for (size_t i = 0; i < t->n; i++)
        entry_release(&t->e[i]);
    free(t->e);
    free(t->by_digest);
    free(t->by_name);
    free(t);
}

size_t auth_count(const auth_table *t) { return t ? t->n : 0; }

/* The entry whose digest is d, or NULL. The search narrows by the first 8
 * bytes (which tells a guesser nothing about any token: they are bytes of
 * a hash); the whole digest is then compared in constant time. */
static const auth_entry *find_digest(const auth_table *t, const unsigned char d[TOKHASH_LEN])
{
    size_t lo = 0, hi = t ? t->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(t->by_digest[mid]->digest, d, 8) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    const auth_entry *hit = NULL;
    for (size_t i = lo; t && i < t->n && !memcmp(t->by_digest[i]->digest, d, 8); i++)
        if (tokhash_equal(t->by_digest[i]->digest, d))
            hit = t->by_digest[i];
    return hit;
}

static const auth_entry *find_name(const auth_table *t, const char *name)
{
    size_t lo = 0, hi = t ? t->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->by_name[mid]->name, name);
        if (!c)
            return t->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
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
    unsigned char d[TOKHASH_LEN];
    if (tokhash_digest(tok, n, d))
        return AUTH_INVALID;
    const auth_entry *hit = find_digest(t, d);
    if (!hit)
        return AUTH_INVALID;
    if (name)
        snprintf(name, AUTH_NAME_MAX + 1, "%s", hit->name);
    return (hit->scopes & scope) == scope ? AUTH_OK : AUTH_FORBIDDEN;
}

auth_job_result auth_job_check(const auth_table *t, const char *name, const char *command,
                               const char *queue, const char *const *env_names, size_t n,
                               auth_rate *rate, char *why, size_t whylen)
{
    const auth_entry *e = find_name(t, name);
    rate->rate_per_s = 0;
    rate->burst = 0;
    why[0] = 0;
    if (!e) {
        snprintf(why, whylen, "token '%s' is no longer in the tokens file", name);
        return AUTH_JOB_UNKNOWN;
    }
    if (e->commands.n) {
        size_t i = 0;
        while (i < e->commands.n && fnmatch(e->commands.v[i], command, 0))
            i++;
        if (i == e->commands.n) {
            snprintf(why, whylen, "token '%s' may not run this command (its command=: ",
                     e->name);
            list_say(&e->commands, why, whylen);
            size_t o = strlen(why);
            if (o + 1 < whylen)
                snprintf(why + o, whylen - o, ")");
            return AUTH_JOB_COMMAND;
        }
    }
    if (e->queues.n && !list_has(&e->queues, queue)) {
        snprintf(why, whylen, "token '%s' may not submit to queue '%s' (its queues=: ", e->name, queue);
        list_say(&e->queues, why, whylen);
        size_t o = strlen(why);
        if (o + 1 < whylen)
            snprintf(why + o, whylen - o, ")");
        return AUTH_JOB_QUEUE;
    }
    if (e->commands.n)
        for (size_t i = 0; i < n; i++)
            if (!list_has(&e->env, env_names[i])) {
                snprintf(why, whylen, "token '%s' may not set env '%s' (its env=: ", e->name, env_names[i]);
                if (e->env.n)
                    list_say(&e->env, why, whylen);
                else
                    snprintf(why + strlen(why), whylen - strlen(why), "none");
                size_t o = strlen(why);
                if (o + 1 < whylen)
                    snprintf(why + o, whylen - o, ")");
                return AUTH_JOB_ENV;
            }
    *rate = e->rate;
    return AUTH_JOB_OK;
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

auth_job_result auth_store_job_check(auth_store *s, const char *name, const char *command,
                                     const char *queue, const char *const *env_names, size_t n,
                                     auth_rate *rate, char *why, size_t whylen)
{
    pthread_rwlock_rdlock(&s->lock);
    auth_job_result r = auth_job_check(s->t, name, command, queue, env_names, n, rate, why, whylen);
    pthread_rwlock_unlock(&s->lock);
    return r;
}
