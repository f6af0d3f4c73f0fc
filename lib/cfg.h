/* cfg — configuration shared by every process: environment first, then flags.
 *
 * Every BX_* variable of DESIGN.md is also a flag: BX_AMQP_URL is
 * --amqp-url, BX_CONCURRENCY is --concurrency, and so on. */
#ifndef BX_CFG_H
#define BX_CFG_H

#include <stddef.h>

typedef struct bx_cfg {
    char *amqp_url;        /* BX_AMQP_URL */
    char *redis_url;       /* BX_REDIS_URL */
    char *mongo_url;       /* BX_MONGO_URL; the database is the namespace */
    char *ns;              /* BX_NAMESPACE: prefix of every name we create */
    char *api_listen;      /* BX_API_LISTEN, host:port */
    char *metrics_listen;  /* BX_METRICS_LISTEN: host:port of a worker's or recorder's
                              /metrics, /healthz, /readyz; port 0 = any free; "" = off */
    char *api_tokens_file; /* BX_API_TOKENS_FILE */
    char *tls_cert;        /* BX_TLS_CERT: PEM certificate (chain) of the API; "" = plain HTTP */
    char *tls_key;         /* BX_TLS_KEY: its private key, readable by the service alone */
    char *ca_file;         /* BX_CA_FILE: CA bundle bx verifies an https API with; "" = system's */
    char *queues;          /* BX_QUEUES, comma-separated */
    char *shell;           /* BX_SHELL */
    char *run_dir;         /* BX_RUN_DIR */
    char *api_url;         /* BX_API_URL (bx) */
    char *api_token;       /* BX_API_TOKEN: the token itself, or a file holding it */
    char *worker_id;       /* BX_WORKER_ID: default host-pid */
    char *run_as;          /* BX_RUN_AS: user a root worker runs commands as; "" = itself */
    char *proc_tree;       /* BX_PROC_TREE: how a job's processes are tracked: scan, cgroup, auto */
    char *job_tmpdir;      /* BX_JOB_TMPDIR: where each job's private cwd is made */
    long limit_cpu_s;      /* BX_LIMIT_CPU_S: RLIMIT_CPU of a command; 0 = none. The
                              BX_LIMIT_* are defaults and ceilings: a job may only lower them */
    long limit_as_mb;      /* BX_LIMIT_AS_MB: RLIMIT_AS, 0 = none */
    long limit_nofile;     /* BX_LIMIT_NOFILE: RLIMIT_NOFILE, 0 = none */
    long limit_nproc;      /* BX_LIMIT_NPROC: RLIMIT_NPROC (per user!), 0 = none */
    long limit_fsize_mb;   /* BX_LIMIT_FSIZE_MB: RLIMIT_FSIZE, 0 = none */
    int concurrency;       /* BX_CONCURRENCY: jobs one worker runs at once, >= 1 */
    int log_facility;      /* BX_LOG_FACILITY: syslog facility, default LOG_USER */
    int foreground;        /* BX_FOREGROUND (default 1): also log to stderr */
    int status_ttl_s;      /* BX_STATUS_TTL_S: how long Redis keeps a terminal status */
    int lease_ms;          /* BX_LEASE_MS: a running job's lease, renewed at a third */
    long max_output_bytes; /* BX_MAX_OUTPUT_BYTES: default per stream */
    long max_output_cap;   /* BX_MAX_OUTPUT_CAP: ceiling a job may ask for */
    int default_timeout_s; /* BX_DEFAULT_TIMEOUT_S: 0 = none */
    int grace_ms;          /* BX_KILL_GRACE_MS: SIGTERM to SIGKILL */
    int shutdown_grace_s;  /* BX_SHUTDOWN_GRACE_S: worker drain on SIGTERM */
    int batch_max;         /* BX_RECORDER_BATCH: events per MongoDB bulk write */
    int batch_ms;          /* BX_RECORDER_BATCH_MS: longest wait to fill a batch */
    int max_queue_depth;   /* BX_MAX_QUEUE_DEPTH: API answers 429 above it, 0 = off */
    int lost_after_s;      /* BX_LOST_AFTER_S: a running job whose lease is gone this
                              long, without a result, is marked lost (sweeper) */
    int amqp_heartbeat_s;  /* BX_AMQP_HEARTBEAT_S: worker's AMQP heartbeat, 0 = off; how
                              RabbitMQ learns a frozen worker's jobs must go elsewhere */
    char *log_file;        /* BX_LOG_FILE: "" = stderr as it is; else the stderr log is
                              appended to this file, reopened on SIGHUP */
    int api_timeout_s;     /* BX_API_TIMEOUT_S: an idle connection is closed, and a request
                              must arrive whole (headers and body), within this */
} bx_cfg;

/* Fills c from defaults, the environment and argv (flags win). Unknown
 * flags are an error. Returns 0, or -1 with a message in err. On -1
 * the caller still calls cfg_release. */
int cfg_load(bx_cfg *c, int argc, char **argv, char *err, size_t errlen);
void cfg_release(bx_cfg *c);

/* Prints the flags and their variables, for --help. */
void cfg_usage(const char *prog);

#endif
