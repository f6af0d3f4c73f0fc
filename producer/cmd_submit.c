/* bx submit — one job: the request document from the options, POST
 * /v1/jobs, the id on stdout; with --wait, the job's run as if local. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

#define SUBMIT_STDIN_MAX (64L << 20) /* far above what the API takes: it says 413 */

static void submit_usage(FILE *f)
{
    fprintf(f,
            "usage: bx submit [OPTIONS] [--] COMMAND...\n"
            "\n"
            "Submits COMMAND (its words joined with spaces, run by the worker's\n"
            "'bash -c') as a job and prints the job's id.\n"
            "\n"
            "  -q, --queue Q              queue (default: default)\n"
            "  -p, --priority N           0 (lowest) to 9\n"
            "  -t, --timeout S            kill the job after S seconds\n"
            "  -e, --env K=V              set an environment variable (repeatable);\n"
            "                             --env K passes ours\n"
            "  -C, --cwd DIR              directory to run in, on the worker\n"
            "  -i, --stdin-file F         the job's stdin: file F, or '-' for ours\n"
            "  -l, --label K=V            a label to find the job by (repeatable)\n"
            "      --lock NAME            never run at the same time as another job\n"
            "                             holding lock NAME\n"
            "      --idempotency-key K    submitting K again returns the first job\n"
            "      --retries N            retry a failed run up to N times\n"
            "      --backoff S            first retry after S seconds, doubling\n"
            "      --max-output BYTES     output kept per stream (64k, 16M, ...)\n"
            "  -w, --wait                 wait for the end: print the job's stdout and\n"
            "                             stderr to ours and exit with its exit code\n"
            "                             (128+N killed by signal N, 124 timed out,\n"
            "                             125 cancelled, rejected or lost)\n"
            "      --json                 print the API's JSON answer\n"
            "\n"
            "example: bx submit --timeout 60 --label team=data -- make -C /srv/etl all\n");
}

/* Reads all of path ("-" = stdin) into a new malloc'd buffer. */
static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    size_t cap = 0, n = 0;
    char *buf = NULL;
    if (!f) {
        cli_err("submit: cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (n + 65536 > cap) {
            cap = cap ? cap * 2 : 65536 * 2;
            char *b = realloc(buf, cap);
            if (!b) {
                cli_err("submit: out of memory reading '%s'", path);
                goto fail;
            }
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > (size_t)SUBMIT_STDIN_MAX) {
            cli_err("submit: '%s' is larger than %ld bytes", path, SUBMIT_STDIN_MAX);
            goto fail;
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        cli_err("submit: cannot read '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (f != stdin)
        fclose(f);
    *out = buf;
    *len = n;
    return 0;
fail:
    if (f != stdin)
        fclose(f);
    free(buf);
    return -1;
}

/* Sets o[key] = a string from our bytes. -1 (said) when not UTF-8,
 * which a JSON string cannot carry. */
static int set_str(json_t *o, const char *key, const char *what, const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    if (!v) {
        cli_err("submit: %s is not valid UTF-8 text", what);
        return -1;
    }
    json_object_set_new(o, key, v);
    return 0;
}

/* Adds K=V (or K, taken from our environment when env_ok) to object key
 * of req. */
static int add_kv(json_t *req, const char *key, const char *opt, const char *arg, int env_ok)
{
    char k[256];
    const char *v;
    if (env_ok && !strchr(arg, '=')) {
        if (!(v = getenv(arg))) {
            cli_err("submit: --env %s: no such variable here to pass on", arg);
            return -1;
        }
        snprintf(k, sizeof k, "%s", arg);
    } else if (cli_parse_kv(opt, arg, k, sizeof k, &v)) {
        return -1;
    }
    json_t *obj = json_object_get(req, key);
    if (!obj) {
        obj = json_object();
        json_object_set_new(req, key, obj);
    }
    return set_str(obj, k, opt, v, strlen(v));
}

int cmd_submit(bx_cli *c, int argc, char **argv)
{
    enum { O_LOCK = 256, O_IDEM, O_RETRIES, O_BACKOFF, O_MAXOUT, O_JSON };
    static const struct option opts[] = {
        {"queue", required_argument, NULL, 'q'},
        {"priority", required_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 't'},
        {"env", required_argument, NULL, 'e'},
        {"cwd", required_argument, NULL, 'C'},
        {"stdin-file", required_argument, NULL, 'i'},
        {"label", required_argument, NULL, 'l'},
        {"lock", required_argument, NULL, O_LOCK},
        {"idempotency-key", required_argument, NULL, O_IDEM},
        {"retries", required_argument, NULL, O_RETRIES},
        {"backoff", required_argument, NULL, O_BACKOFF},
        {"max-output", required_argument, NULL, O_MAXOUT},
        {"wait", no_argument, NULL, 'w'},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    json_t *req = json_object(), *ans = NULL, *final = NULL;
    char *stdin_buf = NULL, *body = NULL, *cmdline = NULL;
    size_t stdin_len = 0;
    int o, wait = 0, rc = EX_USAGE;
    long n;
    double d;

    if (!req) {
        cli_err("out of memory");
        return EX_SERVER;
    }
    opterr = 0;
    /* '+': the first word of COMMAND ends our options, so that
     * 'bx submit ls -l' runs 'ls -l' */
    while ((o = getopt_long(argc, argv, "+:q:p:t:e:C:i:l:wh", opts, NULL)) != -1) {
        switch (o) {
        case 'q':
            if (set_str(req, "queue", "--queue", optarg, strlen(optarg)))
                goto out;
            break;
        case 'p':
            if (cli_parse_long("--priority", optarg, 0, 9, &n))
                goto out;
            json_object_set_new(req, "priority", json_integer(n));
            break;
        case 't':
            if (cli_parse_long("--timeout", optarg, 1, 100L * 365 * 86400, &n))
                goto out;
            json_object_set_new(req, "timeout_s", json_integer(n));
            break;
        case 'e':
            if (add_kv(req, "env", "--env", optarg, 1))
                goto out;
            break;
        case 'C':
            if (set_str(req, "cwd", "--cwd", optarg, strlen(optarg)))
                goto out;
            break;
        case 'i':
            free(stdin_buf);
            stdin_buf = NULL;
            if (read_file(optarg, &stdin_buf, &stdin_len) ||
                set_str(req, "stdin", "--stdin-file", stdin_buf, stdin_len))
                goto out;
            break;
        case 'l':
            if (add_kv(req, "labels", "--label", optarg, 0))
                goto out;
            break;
        case O_LOCK:
            if (set_str(req, "lock", "--lock", optarg, strlen(optarg)))
                goto out;
            break;
        case O_IDEM:
            if (set_str(req, "idempotency_key", "--idempotency-key", optarg, strlen(optarg)))
                goto out;
            break;
        case O_RETRIES:
            if (cli_parse_long("--retries", optarg, 0, 1000, &n))
                goto out;
            json_object_set_new(req, "max_retries", json_integer(n));
            break;
        case O_BACKOFF:
            if (cli_parse_double("--backoff", optarg, 0, 86400, &d))
                goto out;
            json_object_set_new(req, "retry_backoff_s", json_real(d));
            break;
        case O_MAXOUT:
            if (cli_parse_size("--max-output", optarg, &n))
                goto out;
            json_object_set_new(req, "max_output_bytes", json_integer(n));
            break;
        case 'w': wait = 1; break;
        case O_JSON: c->json = 1; break;
        case 'h': submit_usage(stdout); rc = EX_OK; goto out;
        default: rc = cmd_bad_option("submit", o, argv); goto out;
        }
    }
    if (optind >= argc) {
        cli_err("submit: no command given");
        submit_usage(stderr);
        goto out;
    }
    size_t clen = 0;
    for (int i = optind; i < argc; i++)
        clen += strlen(argv[i]) + 1;
    if (!(cmdline = malloc(clen))) {
        cli_err("out of memory");
        rc = EX_SERVER;
        goto out;
    }
    cmdline[0] = 0;
    for (int i = optind; i < argc; i++) {
        if (i > optind)
            strcat(cmdline, " ");
        strcat(cmdline, argv[i]);
    }
    if (!cmdline[strspn(cmdline, " \t\n")]) {
        cli_err("submit: the command is empty");
        goto out;
    }
    if (set_str(req, "command", "the command", cmdline, strlen(cmdline)))
        goto out;
    if (!(body = json_dumps(req, JSON_COMPACT))) {
        cli_err("out of memory");
        rc = EX_SERVER;
        goto out;
    }
    if ((rc = cli_call(c, "POST", "/v1/jobs", body, strlen(body), "cannot submit", !wait, &ans)))
        goto out;
    const char *id = cli_str(ans, "id");
    if (!id) {
        cli_err("submit: the API's answer holds no job id");
        rc = EX_SERVER;
        goto out;
    }
    if (!wait) {
        if (!c->json)
            printf("%s\n", id);
        rc = EX_OK;
        goto out;
    }
    rc = wait_job(c, id, 0, &final);
    if (rc == EX_OK)
        rc = wait_report(c, final, 1);
out:
    json_decref(req);
    json_decref(ans);
    json_decref(final);
    free(stdin_buf);
    free(body);
    free(cmdline);
    return rc;
}
