/* fuzz_tokens — the tokens file parser (auth_parse, what auth_load calls
 * on the file's bytes), the Authorization header check and the per-token
 * options check.
 *
 * The input is read twice. As it is: a file of hashed lines, whatever
 * the parser accepts must hold together (every entry counted, refusals
 * explained, no token quoted in an error). And with the second field of
 * each line hashed first (lines "name TOKEN scopes options" become "name
 * sha256:<hex of TOKEN> ..."): then every accepted token must
 * authenticate as its own name with exactly its own scopes, and its own
 * options must let a job through that they name (the literal command=
 * pattern, a queue of queues=). */
/* fuzz-sources: api/auth.c lib/tokhash.c */
/* fuzz-libs: libcrypto */
#include <string.h>

#include "auth.h"
#include "fuzz.h"
#include "tokhash.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* The scopes a comma list grants, as the header documents them. */
static unsigned scopes_of(const char *s, size_t n)
{
    unsigned out = 0;
    while (n) {
        const char *comma = memchr(s, ',', n);
        size_t k = comma ? (size_t)(comma - s) : n;
        if (k == 5 && !memcmp(s, "admin", 5))
            out |= SCOPE_ADMIN | SCOPE_SUBMIT | SCOPE_READ | SCOPE_CANCEL;
        else if (k == 6 && !memcmp(s, "submit", 6))
            out |= SCOPE_SUBMIT;
        else if (k == 4 && !memcmp(s, "read", 4))
            out |= SCOPE_READ;
        else if (k == 6 && !memcmp(s, "cancel", 6))
            out |= SCOPE_CANCEL;
        if (!comma)
            break;
        s += k + 1;
        n -= k + 1;
    }
    return out;
}

/* The fields of a line up to a comment (raw: no quote handling, which the
 * hashed and scope fields never need). Returns how many, up to max. */
static int split(const char *p, const char *le, const char **f, size_t *fl, int max)
{
    const char *hash = memchr(p, '#', (size_t)(le - p));
    const char *ce = hash ? hash : le;
    int n = 0;
    while (n < max) {
        while (p < ce && is_space(*p))
            p++;
        if (p == ce)
            break;
        f[n] = p;
        while (p < ce && !is_space(*p))
            p++;
        fl[n] = (size_t)(p - f[n]);
        n++;
    }
    return n;
}

/* text with each line's second field replaced by its hash (new, malloc'd). */
static char *hash_tokens(const char *text, size_t len, size_t *outlen)
{
    char *out = malloc(len + (len / 2 + 1) * TOKHASH_TEXT_LEN + 1);
    size_t o = 0;
    if (!out)
        abort();
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl + 1 : end;
        const char *f[2];
        size_t fl[2];
        if (split(p, nl ? nl : end, f, fl, 2) == 2 && !memchr(p, '"', (size_t)(f[1] - p)) &&
            !memchr(f[1], 0, fl[1])) {
            char h[TOKHASH_TEXT_LEN + 1];
            FUZZ_CHECK(!tokhash_text(f[1], fl[1], h), "sha256 failed");
            memcpy(out + o, p, (size_t)(f[1] - p));
            o += (size_t)(f[1] - p);
            memcpy(out + o, h, TOKHASH_TEXT_LEN);
            o += TOKHASH_TEXT_LEN;
            p = f[1] + fl[1];
        }
        memcpy(out + o, p, (size_t)(le - p));
        o += (size_t)(le - p);
        p = le;
    }
    out[o] = 0;
    *outlen = o;
    return out;
}

/* The literal value of option key on a line (unquoted, no glob
 * characters), for a job its options must let through. */
static int literal_option(const char **f, const size_t *fl, int n, const char *key, char *out, size_t outn)
{
    size_t kl = strlen(key);
    for (int i = 3; i < n; i++)
        if (fl[i] > kl + 1 && !memcmp(f[i], key, kl) && f[i][kl] == '=' && fl[i] - kl - 1 < outn) {
            size_t vl = fl[i] - kl - 1;
            const char *v = f[i] + kl + 1;
            if (memchr(v, '"', vl) || memchr(v, '*', vl) || memchr(v, '?', vl) || memchr(v, '[', vl) ||
                memchr(v, '\\', vl) || memchr(v, ',', vl))
                return 0;
            memcpy(out, v, vl);
            out[vl] = 0;
            return 1;
        }
    return 0;
}

/* Each entry of the accepted file text (made by hash_tokens from raw):
 * its token (the second field of raw's line) authenticates as its name
 * with exactly its scopes. Returns the number of entries. */
static size_t check_entries(const auth_table *t, const char *raw, size_t len)
{
    static const unsigned scopes[] = {0, SCOPE_SUBMIT, SCOPE_READ, SCOPE_CANCEL, SCOPE_ADMIN,
                                      SCOPE_SUBMIT | SCOPE_READ | SCOPE_CANCEL};
    size_t entries = 0;
    const char *p = raw, *end = raw + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *f[16];
        size_t fl[16];
        int n = split(p, nl ? nl : end, f, fl, 16);
        p = nl ? nl + 1 : end;
        if (!n)
            continue;
        entries++;
        FUZZ_CHECK(n >= 3, "an entry without a token or scopes was accepted");
        FUZZ_CHECK(fl[0] <= AUTH_NAME_MAX, "overlong name accepted");
        unsigned granted = scopes_of(f[2], fl[2]);
        FUZZ_CHECK(granted, "an entry without a known scope was accepted");
        char *header = malloc(fl[1] + 16), name[AUTH_NAME_MAX + 1], want[AUTH_NAME_MAX + 1];
        if (!header)
            abort();
        snprintf(header, fl[1] + 16, "Bearer %.*s", (int)fl[1], f[1]);
        snprintf(want, sizeof want, "%.*s", (int)fl[0], f[0]);
        for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++) {
            auth_result r = auth_check(t, header, scopes[i], name);
            auth_result expect = (granted & scopes[i]) == scopes[i] ? AUTH_OK : AUTH_FORBIDDEN;
            FUZZ_CHECK(r == expect, "token of '%s' for scope %#x: %d, want %d", want, scopes[i],
                       (int)r, (int)expect);
            FUZZ_CHECK(!strcmp(name, want), "token of '%s' names '%s'", want, name);
        }
        free(header);
        /* the job its own options name is let through */
        char cmd[256], queue[80], why[512];
        auth_rate rate;
        if (n < 16 && literal_option(f, fl, n, "command", cmd, sizeof cmd) &&
            literal_option(f, fl, n, "queues", queue, sizeof queue)) {
            auth_job_result r = auth_job_check(t, want, cmd, queue, NULL, 0, &rate, why, sizeof why);
            FUZZ_CHECK(r == AUTH_JOB_OK, "'%s' may not run its own command '%s' on '%s': %s", want, cmd,
                       queue, why);
        }
        auth_job_check(t, want, "x", "default", NULL, 0, &rate, why, sizeof why);
    }
    return entries;
}

/* An error never quotes the second field of the line it names (a token,
 * maybe). */
static void check_err_quiet(const char *err, const char *text, size_t len)
{
    int line = 0;
    FUZZ_CHECK(sscanf(err, "line %d:", &line) == 1 || !strcmp(err, "out of memory"),
               "error '%s' names no line", err);
    const char *p = text, *end = text + len;
    for (int i = 1; p < end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *f[2];
        size_t fl[2];
        /* (quotes before it make the parser's fields differ from ours) */
        if (i == line && split(p, nl ? nl : end, f, fl, 2) == 2 && fl[1] >= 8 && fl[1] < 256 &&
            !memchr(f[1], 0, fl[1]) && !memchr(p, '"', (size_t)(f[1] + fl[1] - p))) {
            char tok[256];
            memcpy(tok, f[1], fl[1]);
            tok[fl[1]] = 0;
            /* (unless the line holds the same text elsewhere too) */
            const char *le = nl ? nl : end, *q = p;
            int seen = 0;
            while (q < le && (q = memmem(q, (size_t)(le - q), tok, fl[1]))) {
                seen++;
                q++;
            }
            /* the error may name the line's name, and a token field such
             * as 'abcdefgh may match the quote and start of that name */
            char rest[512], nm[256];
            snprintf(rest, sizeof rest, "%s", err);
            size_t nl_ = fl[0] < sizeof nm - 1 ? fl[0] : sizeof nm - 1;
            memcpy(nm, f[0], nl_);
            nm[nl_] = 0;
            for (char *x; nl_ && !memchr(nm, 0, nl_) && (x = strstr(rest, nm));)
                memmove(x, x + nl_, strlen(x + nl_) + 1);
            FUZZ_CHECK(seen > 1 || !strstr(rest, tok), "error '%s' quotes the token field of its line", err);
        }
        p = nl ? nl + 1 : end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "", name[AUTH_NAME_MAX + 1];
    const char *text = (const char *)data;
    auth_table *t = auth_parse(text, size, err, sizeof err);
    if (!t) {
        FUZZ_CHECK(err[0], "refused without a reason");
        check_err_quiet(err, text, size);
    }
    auth_table_free(t);

    size_t hlen;
    char *h = hash_tokens(text, size, &hlen);
    err[0] = 0;
    t = auth_parse(h, hlen, err, sizeof err);
    if (!t) {
        FUZZ_CHECK(err[0], "refused without a reason");
    } else {
        size_t n = check_entries(t, text, size);
        FUZZ_CHECK(auth_count(t) == n, "%zu tokens for %zu entries", auth_count(t), n);
    }
    free(h);
    /* each line as an Authorization header, against this table or none */
    char *s = fuzz_cstr(data, size);
    for (char *save = NULL, *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        auth_result r = auth_check(t, l, SCOPE_READ, name);
        FUZZ_CHECK(r >= AUTH_OK && r <= AUTH_FORBIDDEN, "result %d", (int)r);
        FUZZ_CHECK(t || r == AUTH_MISSING || r == AUTH_INVALID, "no table, yet %d", (int)r);
    }
    auth_check(t, NULL, SCOPE_READ, name);
    free(s);
    /* and through the store bx-api swaps on SIGHUP */
    auth_store *st = auth_store_new(t);
    FUZZ_CHECK(st, "auth_store_new failed");
    auth_store_check(st, "Bearer x", SCOPE_READ, name);
    auth_store_free(st);
    return 0;
}
