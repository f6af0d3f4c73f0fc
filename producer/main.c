/* bx — the command-line producer: talks to bx-api over HTTP only.
 *
 *   bx [--json] [--api-url URL] [--api-token TOKEN|FILE] [--cacert FILE] [--run-dir DIR] COMMAND [ARGS]
 *
 * The API URL, token, CA file and run dir come from BX_API_URL,
 * BX_API_TOKEN, BX_CA_FILE and BX_RUN_DIR (lib/cfg.h), overridden by the
 * flags. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cfg.h"
#include "cli.h"
#include "cmd.h"
#include "http.h"

typedef struct command {
    const char *name;
    int (*fn)(bx_cli *c, int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"submit", cmd_submit, "submit a shell command as a job, print its id (--wait: run it to the end)"},
    {"status", cmd_status, "show a job's state, exit code, times and duration"},
    {"wait", cmd_wait, "wait until a job ends; exit with its exit code"},
    {"output", cmd_output, "print a job's captured stdout and stderr"},
    {"tail", cmd_tail, "follow a job's output as it is produced, until it ends"},
    {"cancel", cmd_cancel, "cancel a queued or running job"},
    {"history", cmd_history, "list past and current jobs, newest first"},
    {"workers", cmd_workers, "list the live workers"},
    {"load", cmd_load, "submit many jobs at once and measure the rates"},
    {"token", cmd_token, "make an API token and its tokens file line (offline)"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bx [--json] [--api-url URL] [--api-token TOKEN|FILE] [--cacert FILE] [--run-dir DIR]\n"
            "          COMMAND [ARGS]\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "'bx COMMAND --help' shows a command's options.\n"
            "\n"
            "options (each also an environment variable):\n"
            "  --api-url URL        BX_API_URL    the API (default http://127.0.0.1:8080)\n"
            "  --api-token T|FILE   BX_API_TOKEN  the token, or a file holding it\n"
            "                                     (default RUN_DIR/api-token)\n"
            "  --cacert FILE        BX_CA_FILE    CA certificates to verify an https API with\n"
            "                                     (default the system's)\n"
            "  --run-dir DIR        BX_RUN_DIR    the local stack's run dir (default .run)\n"
            "  --json               print the API's JSON instead of a summary\n"
            "\n"
            "exit status: 0 ok, 1 usage, 2 server or connection error; with --wait (and\n"
            "'bx wait', 'bx tail') the job's exit code, 128+N when signal N killed it,\n"
            "124 when it timed out, 125 when it was cancelled, rejected or lost.\n");
}

int cmd_bad_option(const char *cmd, int opt, char **argv)
{
    const char *arg = argv[optind - 1];
    if (opt == ':')
        cli_err("%s: option '%s' needs a value (see bx %s --help)", cmd, arg, cmd);
    else if (optopt && arg[0] == '-' && arg[1] != '-')
        cli_err("%s: unknown option '-%c' (see bx %s --help)", cmd, optopt, cmd);
    else
        cli_err("%s: unknown option '%s' (see bx %s --help)", cmd, arg, cmd);
    return EX_USAGE;
}

int cmd_plain_args(bx_cli *c, int argc, char **argv, void (*usage_fn)(FILE *), int nargs,
                   const char **operand, int *exit)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (o) {
        case 'J': c->json = 1; break;
        case 'h': usage_fn(stdout); *exit = EX_OK; return 0;
        default: *exit = cmd_bad_option(argv[0], o, argv); return 0;
        }
    }
    if (argc - optind != nargs) {
        usage_fn(stderr);
        *exit = EX_USAGE;
        return 0;
    }
    *operand = nargs ? argv[optind] : NULL;
    if (*operand && !cli_check_id(*operand)) {
        *exit = EX_USAGE;
        return 0;
    }
    return 1;
}

/* BX_API_TOKEN is the token itself or a file holding it: a file when one
 * by that name exists, or when it looks like a path. *token is new
 * malloc'd, or NULL with the reason in note. */
static void load_token(const char *v, char **token, char *note, size_t nn)
{
    *token = NULL;
    struct stat sb;
    int is_path = strchr("/.~", v[0]) != NULL || !stat(v, &sb);
    if (!is_path) {
        *token = strdup(v);
        return;
    }
    FILE *f = fopen(v, "r");
    if (!f) {
        snprintf(note, nn, "cannot read token file '%s': %s", v, strerror(errno));
        return;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* the first line, without the whitespace around it */
    char *s = buf + strspn(buf, " \t\r\n");
    s[strcspn(s, "\r\n")] = 0;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        s[--len] = 0;
    if (!len)
        snprintf(note, nn, "token file '%s' is empty", v);
    else
        *token = strdup(s);
    memset(buf, 0, sizeof buf);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'J'},
        {"api-url", required_argument, NULL, 'u'},
        {"api-token", required_argument, NULL, 't'},
        {"cacert", required_argument, NULL, 'c'},
        {"run-dir", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bx_cli c = {0};
    bx_cfg cfg;
    char *cfg_argv[12] = {"bx"};
    int cfg_argc = 1, o, rc = EX_USAGE;
    char err[512], *token = NULL;

    opterr = 0;
    while ((o = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        switch (o) {
        case 'J': c.json = 1; break;
        case 'u': cfg_argv[cfg_argc++] = "--api-url"; cfg_argv[cfg_argc++] = optarg; break;
        case 't': cfg_argv[cfg_argc++] = "--api-token"; cfg_argv[cfg_argc++] = optarg; break;
        case 'c': cfg_argv[cfg_argc++] = "--ca-file"; cfg_argv[cfg_argc++] = optarg; break;
        case 'r': cfg_argv[cfg_argc++] = "--run-dir"; cfg_argv[cfg_argc++] = optarg; break;
        case 'h': usage(stdout); return EX_OK;
        default:
            if (o == ':')
                cli_err("option '%s' needs a value", argv[optind - 1]);
            else
                cli_err("unknown option '%s' (see bx --help)", argv[optind - 1]);
            return EX_USAGE;
        }
        if (cfg_argc > 9) { /* each of the 4 flags once is enough for anyone */
            cli_err("too many options");
            return EX_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *name = argv[optind];
    const command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, name))
            cmd = &commands[i];
    if (!strcmp(name, "help")) {
        if (optind + 1 >= argc) {
            usage(stdout);
            return EX_OK;
        }
        /* bx help CMD = bx CMD --help */
        name = argv[optind + 1];
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            if (!strcmp(commands[i].name, name))
                cmd = &commands[i];
        if (cmd) {
            char *hargv[] = {(char *)cmd->name, "--help", NULL};
            optind = 0;
            return cmd->fn(&c, 2, hargv);
        }
    }
    if (!cmd) {
        cli_err("'%s' is not a bx command (see bx --help)", name);
        return EX_USAGE;
    }

    if (cfg_load(&cfg, cfg_argc, cfg_argv, err, sizeof err)) {
        cli_err("%s", err);
        cfg_release(&cfg);
        return EX_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        cli_err("cannot start libcurl");
        cfg_release(&cfg);
        return EX_SERVER;
    }
    load_token(cfg.api_token, &token, c.token_note, sizeof c.token_note);
    if (!(c.http = http_new(cfg.api_url, token, 0, err, sizeof err))) {
        cli_err("%s", err);
        goto out;
    }
    if (http_set_ca_file(c.http, cfg.ca_file)) {
        cli_err("out of memory");
        goto out;
    }
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 0; /* the subcommand's getopt_long starts afresh at sub_argv[1] */
    rc = cmd->fn(&c, sub_argc, sub_argv);
out:
    http_free(c.http);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    cfg_release(&cfg);
    curl_global_cleanup();
    return rc;
}
