/* fuzz_tokens — the tokens file parser (auth_parse, what auth_load calls
 * on the file's bytes) and the Authorization header check. Every token of
 * an accepted file must then authenticate as its own name, with exactly
 * its own scopes; the input's lines are also tried as headers. */
/* fuzz-sources: api/auth.c */
#include <string.h>

#include "auth.h"
#include "fuzz.h"

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

/* Re-reads each entry of an accepted file and checks its token. Returns
 * the number of entries. */
static size_t check_entries(const auth_table *t, const char *text, size_t len)
{
    static const unsigned scopes[] = {0, SCOPE_SUBMIT, SCOPE_READ, SCOPE_CANCEL, SCOPE_ADMIN,
                                      SCOPE_SUBMIT | SCOPE_READ | SCOPE_CANCEL};
    size_t entries = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *hash = memchr(p, '#', (size_t)(le - p));
        const char *ce = hash ? hash : le, *f[3] = {0};
        size_t fl[3] = {0};
        const char *q = p;
        for (int i = 0; i < 3; i++) {
            while (q < ce && is_space(*q))
                q++;
            f[i] = q;
            while (q < ce && !is_space(*q))
                q++;
            fl[i] = (size_t)(q - f[i]);
        }
        p = nl ? nl + 1 : end;
        if (!fl[0])
            continue;
        entries++;
        FUZZ_CHECK(fl[1] && fl[2], "an entry without a token or scopes was accepted");
        FUZZ_CHECK(fl[0] <= AUTH_NAME_MAX && fl[1] <= AUTH_TOKEN_MAX, "overlong entry accepted");
        unsigned granted = scopes_of(f[2], fl[2]);
        FUZZ_CHECK(granted, "an entry without a known scope was accepted");
        char header[AUTH_TOKEN_MAX + 16], name[AUTH_NAME_MAX + 1], want[AUTH_NAME_MAX + 1];
        snprintf(header, sizeof header, "Bearer %.*s", (int)fl[1], f[1]);
        snprintf(want, sizeof want, "%.*s", (int)fl[0], f[0]);
        for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++) {
            auth_result r = auth_check(t, header, scopes[i], name);
            auth_result expect = (granted & scopes[i]) == scopes[i] ? AUTH_OK : AUTH_FORBIDDEN;
            FUZZ_CHECK(r == expect, "token of '%s' for scope %#x: %d, want %d", want, scopes[i],
                       (int)r, (int)expect);
            FUZZ_CHECK(!strcmp(name, want), "token of '%s' names '%s'", want, name);
        }
    }
    return entries;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "", name[AUTH_NAME_MAX + 1];
    const char *text = (const char *)data;
    auth_table *t = auth_parse(text, size, err, sizeof err);
    if (!t) {
        FUZZ_CHECK(err[0], "refused without a reason");
    } else {
        size_t n = check_entries(t, text, size);
        FUZZ_CHECK(auth_count(t) == n, "%zu tokens for %zu entries", auth_count(t), n);
    }
    /* each line as an Authorization header, against this table or none */
    char *s = fuzz_cstr(data, size);
    for (char *save = NULL, *h = strtok_r(s, "\n", &save); h; h = strtok_r(NULL, "\n", &save)) {
        auth_result r = auth_check(t, h, SCOPE_READ, name);
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
