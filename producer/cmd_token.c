/* bx token — makes API tokens and their tokens file lines, offline. The
 * API keeps only a token's SHA-256 (api/auth.h), so the token itself is
 * shown once, here, and nowhere else. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "tokhash.h"

static void token_usage(FILE *f)
{
    fprintf(f,
            "usage: bx token new [--json] NAME SCOPES [OPTION=VALUE...]\n"
            "       bx token hash            (reads a token on stdin)\n"
            "\n"
            "new: makes a random token for NAME and prints it (first line: shown only\n"
            "now, give it to NAME's client) and the line for the tokens file\n"
            "(BX_API_TOKENS_FILE; second line: add it, then send bx-api SIGHUP).\n"
            "SCOPES: a comma list of submit, read, cancel, admin. OPTIONs:\n"
            "  command=GLOB   (repeatable) the commands it may submit, fnmatch(3)\n"
            "  env=NAME,...   with command=: the job env names it may set\n"
            "  queues=Q,...   the queues it may submit to\n"
            "  rate=N/s|m|h   submissions per second, minute or hour; burst=N\n"
            "hash: prints the 'sha256:<hex>' of a token you already have, for its line.\n");
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 64)
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-") == n;
}

static int scopes_ok(const char *s)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    if (!*s || strlen(s) >= sizeof buf || s[strlen(s) - 1] == ',')
        return 0;
    for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save))
        if (strcmp(w, "submit") && strcmp(w, "read") && strcmp(w, "cancel") && strcmp(w, "admin"))
            return 0;
    return !strstr(s, ",,") && s[0] != ',';
}

/* Appends option o (key=value) to the line, the value double-quoted when
 * it holds what would split or end the line. -1 when o is not key=value. */
static int add_option(char *line, size_t n, const char *o)
{
    static const char *const keys[] = {"command", "env", "queues", "rate", "burst"};
    const char *eq = strchr(o, '=');
    size_t kl = eq ? (size_t)(eq - o) : 0, i;
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strlen(keys[i]) == kl && !strncmp(o, keys[i], kl))
            break;
    if (!eq || i == sizeof keys / sizeof keys[0] || !eq[1] || strchr(o, '\n'))
        return -1;
    size_t len = strlen(line);
    if (!strpbrk(eq + 1, " \t\r\"\\#")) {
        snprintf(line + len, n - len, " %s", o);
        return 0;
    }
    len += (size_t)snprintf(line + len, n - len, " %.*s=\"", (int)kl, o);
    for (const char *s = eq + 1; *s && len + 3 < n; s++) {
        if (*s == '"' || *s == '\\')
            line[len++] = '\\';
        line[len++] = *s;
    }
    snprintf(line + len, n - len, "\"");
    return 0;
}

static int token_new(bx_cli *c, int argc, char **argv)
{
    if (argc < 2) {
        token_usage(stderr);
        return EX_USAGE;
    }
    if (!name_ok(argv[0])) {
        cli_err("token new: a name is 1 to 64 of A-Z a-z 0-9 . _ @ -, not '%s'", argv[0]);
        return EX_USAGE;
    }
    if (!scopes_ok(argv[1])) {
        cli_err("token new: bad scopes '%s' (a comma list of submit, read, cancel, admin)", argv[1]);
        return EX_USAGE;
    }
    char tok[TOKHASH_TOKEN_LEN + 1], hash[TOKHASH_TEXT_LEN + 1], line[16384];
    if (tokhash_new(tok) || tokhash_text(tok, strlen(tok), hash)) {
        cli_err("token new: cannot make a random token");
        return EX_SERVER;
    }
    snprintf(line, sizeof line, "%s %s %s", argv[0], hash, argv[1]);
    for (int i = 2; i < argc; i++)
        if (add_option(line, sizeof line, argv[i])) {
            cli_err("token new: '%s' is not an option (command=, env=, queues=, rate=, burst=)", argv[i]);
            explicit_bzero(tok, sizeof tok);
            return EX_USAGE;
        }
    if (c->json) {
        json_t *j = json_pack("{s:s,s:s,s:s}", "name", argv[0], "token", tok, "line", line);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("%s\n%s\n", tok, line);
        fprintf(stderr, "bx: the first line is %s's token, shown only now; add the second line to the "
                        "tokens file (BX_API_TOKENS_FILE) and send bx-api SIGHUP\n", argv[0]);
    }
    explicit_bzero(tok, sizeof tok);
    return EX_OK;
}

static int token_hash(void)
{
    char buf[4096], hash[TOKHASH_TEXT_LEN + 1];
    if (!fgets(buf, sizeof buf, stdin)) {
        cli_err("token hash: no token on stdin");
        return EX_USAGE;
    }
    size_t n = strlen(buf);
    while (n && strchr(" \t\r\n", buf[n - 1]))
        n--;
    char *s = buf;
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    int rc = EX_OK;
    if (!n) {
        cli_err("token hash: no token on stdin");
        rc = EX_USAGE;
    } else if (tokhash_text(s, n, hash)) {
        cli_err("token hash: sha256 failed");
        rc = EX_SERVER;
    } else {
        printf("%s\n", hash);
    }
    explicit_bzero(buf, sizeof buf);
    return rc;
}

int cmd_token(bx_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    opterr = 0;
    /* '+': options end at the first word, so that option=value pass */
    while ((o = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        switch (o) {
        case 'J': c->json = 1; break;
        case 'h': token_usage(stdout); return EX_OK;
        default: return cmd_bad_option("token", o, argv);
        }
    }
    if (optind < argc && !strcmp(argv[optind], "new")) {
        optind++;
        /* new's own --json, after the word */
        if (optind < argc && !strcmp(argv[optind], "--json")) {
            c->json = 1;
            optind++;
        }
        return token_new(c, argc - optind, argv + optind);
    }
    if (optind == argc - 1 && !strcmp(argv[optind], "hash"))
        return token_hash();
    token_usage(stderr);
    return EX_USAGE;
}
