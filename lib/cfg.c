/* cfg — defaults, then the environment, then flags. One table drives all
 * three so a new setting is one line. */
#include "cfg.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

enum kind { K_STR, K_INT, K_LONG };

typedef struct opt {
    const char *env;
    const char *flag;
    enum kind kind;
    size_t off;
    const char *def; /* NULL: computed in cfg_load */
    long min, max;
    const char *help;
} opt;

#define S(f) K_STR, offsetof(bx_cfg, f)
#define I(f) K_INT, offsetof(bx_cfg, f)
#define L(f) K_LONG, offsetof(bx_cfg, f)

static const opt opts[] = {
    {"BX_AMQP_URL", "amqp-url", S(amqp_url), "amqp://guest:guest@127.0.0.1:5672/", 0, 0, "RabbitMQ"},
    {"BX_REDIS_URL", "redis-url", S(redis_url), "redis://127.0.0.1:6379/0", 0, 0, "Redis"},
    {"BX_MONGO_URL", "mongo-url", S(mongo_url), "mongodb://127.0.0.1:27017/", 0, 0, "MongoDB"},
    {"BX_NAMESPACE", "namespace", S(ns), "bx", 0, 0, "prefix of every name"},
    {"BX_API_LISTEN", "api-listen", S(api_listen), "127.0.0.1:8080", 0, 0, "API address"},
    {"BX_METRICS_LISTEN", "metrics-listen", S(metrics_listen), "", 0, 0, "worker/recorder /metrics address (port 0 = any; empty = off)"},
    {"BX_API_TOKENS_FILE", "api-tokens-file", S(api_tokens_file), NULL, 0, 0, "tokens and scopes"},
    {"BX_TLS_CERT", "tls-cert", S(tls_cert), "", 0, 0, "API's PEM certificate: serve https (empty = http)"},
    {"BX_TLS_KEY", "tls-key", S(tls_key), "", 0, 0, "its private key (mode 0600 or 0640)"},
    {"BX_CA_FILE", "ca-file", S(ca_file), "", 0, 0, "CA file bx verifies an https API with"},
    {"BX_QUEUES", "queues", S(queues), "default", 0, 0, "queues a worker consumes"},
    {"BX_SHELL", "shell", S(shell), "/bin/bash", 0, 0, "shell running each command"},
    {"BX_RUN_DIR", "run-dir", S(run_dir), ".run", 0, 0, "local stack's run dir"},
    {"BX_API_URL", "api-url", S(api_url), "http://127.0.0.1:8080", 0, 0, "where bx sends jobs"},
    {"BX_API_TOKEN", "api-token", S(api_token), NULL, 0, 0, "bx's token, or a file holding it"},
    {"BX_WORKER_ID", "worker-id", S(worker_id), NULL, 0, 0, "worker name (host-pid)"},
    {"BX_RUN_AS", "run-as", S(run_as), "nobody", 0, 0, "user a root worker runs commands as (\"-\" = itself)"},
    {"BX_PROC_TREE", "proc-tree", S(proc_tree), "auto", 0, 0, "job process tracking: scan (subreaper), cgroup, auto"},
    {"BX_JOB_TMPDIR", "job-tmpdir", S(job_tmpdir), "/tmp", 0, 0, "where each job's private cwd is made"},
    {"BX_LIMIT_CPU_S", "limit-cpu-s", L(limit_cpu_s), "0", 0, LONG_MAX, "command CPU seconds (0 = none)"},
    {"BX_LIMIT_AS_MB", "limit-as-mb", L(limit_as_mb), "0", 0, LONG_MAX, "command address space MB (0 = none)"},
    {"BX_LIMIT_NOFILE", "limit-nofile", L(limit_nofile), "1024", 0, LONG_MAX, "command open files"},
    {"BX_LIMIT_NPROC", "limit-nproc", L(limit_nproc), "4096", 0, LONG_MAX, "processes of the run-as user"},
    {"BX_LIMIT_FSIZE_MB", "limit-fsize-mb", L(limit_fsize_mb), "0", 0, LONG_MAX, "command file size MB (0 = none)"},
    {"BX_CONCURRENCY", "concurrency", I(concurrency), NULL, 1, 4096, "jobs one worker runs at once"},
    {"BX_LOG_FACILITY", "log-facility", I(log_facility), NULL, 0, 23, "syslog facility number (LOG_USER=1)"},
    {"BX_FOREGROUND", "foreground", I(foreground), "1", 0, 1, "also log to stderr"},
    {"BX_STATUS_TTL_S", "status-ttl-s", I(status_ttl_s), "86400", 0, INT_MAX, "Redis keeps a terminal status"},
    {"BX_LEASE_MS", "lease-ms", I(lease_ms), "30000", 1000, INT_MAX, "running job's lease"},
    {"BX_MAX_OUTPUT_BYTES", "max-output-bytes", L(max_output_bytes), "1048576", 1, LONG_MAX, "default kept output per stream"},
    {"BX_MAX_OUTPUT_CAP", "max-output-cap", L(max_output_cap), "16777216", 1, LONG_MAX, "ceiling of max_output_bytes"},
    {"BX_DEFAULT_TIMEOUT_S", "default-timeout-s", I(default_timeout_s), "0", 0, INT_MAX, "timeout when a job sets none"},
    {"BX_KILL_GRACE_MS", "kill-grace-ms", I(grace_ms), "2000", 0, INT_MAX, "SIGTERM to SIGKILL"},
    {"BX_SHUTDOWN_GRACE_S", "shutdown-grace-s", I(shutdown_grace_s), "30", 0, INT_MAX, "worker drain on SIGTERM"},
    {"BX_RECORDER_BATCH", "recorder-batch", I(batch_max), "500", 1, 100000, "events per bulk write"},
    {"BX_RECORDER_BATCH_MS", "recorder-batch-ms", I(batch_ms), "20", 0, 60000, "longest wait to fill a batch"},
    {"BX_MAX_QUEUE_DEPTH", "max-queue-depth", I(max_queue_depth), "0", 0, INT_MAX, "429 above this depth (0 = off)"},
    {"BX_LOST_AFTER_S", "lost-after-s", I(lost_after_s), "300", 1, INT_MAX, "running job without a lease this long: lost"},
    {"BX_AMQP_HEARTBEAT_S", "amqp-heartbeat-s", I(amqp_heartbeat_s), "30", 0, 3600, "worker's AMQP heartbeat (0 = off)"},
    {"BX_LOG_FILE", "log-file", S(log_file), "", 0, 0, "append the stderr log here; SIGHUP reopens it"},
    {"BX_API_TIMEOUT_S", "api-timeout-s", I(api_timeout_s), "60", 1, 3600, "API closes idle connections and slow requests"},
};

static int set(bx_cfg *c, const opt *o, const char *v, const char *src, char *err, size_t errlen)
{
    char *p = (char *)c + o->off;
    if (o->kind == K_STR) {
        char **s = (char **)p;
        free(*s);
        *s = strdup(v);
        return *s ? 0 : -1;
    }
    errno = 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < o->min || n > o->max) {
        snprintf(err, errlen, "%s: '%s' is not a number in [%ld, %ld]", src, v, o->min, o->max);
        return -1;
    }
    if (o->kind == K_INT)
        *(int *)p = (int)n;
    else
        *(long *)p = n;
    return 0;
}

static int set_default(bx_cfg *c, const opt *o, char *err, size_t errlen)
{
    char buf[512];
    const char *v = o->def;
    if (!v) {
        if (!strcmp(o->env, "BX_CONCURRENCY")) {
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            snprintf(buf, sizeof buf, "%ld", n > 0 ? n : 1);
        } else if (!strcmp(o->env, "BX_LOG_FACILITY")) {
            snprintf(buf, sizeof buf, "%d", LOG_USER >> 3);
        } else {
            return 0; /* derived after everything else is known */
        }
        v = buf;
    }
    return set(c, o, v, o->env, err, errlen);
}

int cfg_load(bx_cfg *c, int argc, char **argv, char *err, size_t errlen)
{
    const size_t n = sizeof opts / sizeof opts[0];
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < n; i++)
        if (set_default(c, &opts[i], err, errlen))
            return -1;
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(opts[i].env);
        if (v && *v && set(c, &opts[i], v, opts[i].env, err, errlen))
            return -1;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2)) {
            snprintf(err, errlen, "unexpected argument '%s'", arg);
            return -1;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const opt *o = NULL;
        for (size_t i = 0; i < n; i++)
            if (strlen(opts[i].flag) == len && !strncmp(opts[i].flag, name, len))
                o = &opts[i];
        if (!o) {
            snprintf(err, errlen, "unknown flag '%s' (see --help)", arg);
            return -1;
        }
        const char *v = eq ? eq + 1 : (a + 1 < argc ? argv[++a] : NULL);
        if (!v) {
            snprintf(err, errlen, "flag '--%s' needs a value", o->flag);
            return -1;
        }
        if (set(c, o, v, arg, err, errlen))
            return -1;
    }
    char buf[1024];
    if (!c->api_tokens_file) {
        snprintf(buf, sizeof buf, "%s/api-tokens", c->run_dir);
        if (!(c->api_tokens_file = strdup(buf)))
            return -1;
    }
    if (!c->api_token) {
        snprintf(buf, sizeof buf, "%s/api-token", c->run_dir);
        if (!(c->api_token = strdup(buf)))
            return -1;
    }
    if (!c->worker_id) {
        char host[256] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(buf, sizeof buf, "%s-%ld", host, (long)getpid());
        if (!(c->worker_id = strdup(buf)))
            return -1;
    }
    c->log_facility <<= 3; /* the number as a LOG_* facility value */
    if (c->max_output_bytes > c->max_output_cap)
        c->max_output_bytes = c->max_output_cap;
    return 0;
}

void cfg_release(bx_cfg *c)
{
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (opts[i].kind == K_STR) {
            char **s = (char **)((char *)c + opts[i].off);
            free(*s);
            *s = NULL;
        }
}

void cfg_usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--flag value]...\n\nEach flag is also an environment variable:\n", prog);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        fprintf(stderr, "  --%-20s %-22s %s%s%s\n", opts[i].flag, opts[i].env, opts[i].help,
                opts[i].def ? "; default " : "", opts[i].def ? opts[i].def : "");
}
