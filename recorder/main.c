/* bx-recorder — writes every result event into MongoDB (see rec.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfg.h"
#include "log.h"
#include "memtrim.h"
#include "metrics.h"
#include "rec.h"
#include "statusd.h"
#include "store.h"

static volatile sig_atomic_t stop_flag, reopen_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    reopen_flag = 1;
}

/* /metrics, /healthz and /readyz on BX_METRICS_LISTEN, when set. The
 * address goes to the log and, when the run dir exists, to
 * <run dir>/metrics/bx-recorder.addr: with port 0 that is how the local
 * stack and the tests find it. NULL with err when it cannot listen. */
static statusd *status_start(const bx_cfg *cfg, metrics *reg, rec_obs *obs, char *err,
                             size_t errlen)
{
    struct stat st;
    statusd_opts o = {.listen = cfg->metrics_listen, .reg = reg, .ready = rec_obs_ready, .ud = obs};
    statusd *sd = statusd_start(&o, err, errlen);
    if (!sd)
        return NULL;
    LOGI("event=metrics_listening addr=%s", statusd_addr(sd));
    if (stat(cfg->run_dir, &st) == 0 && S_ISDIR(st.st_mode) &&
        statusd_write_addr(sd, cfg->run_dir, "bx-recorder", err, errlen))
        LOGW("event=metrics_addr_not_written err=%s", log_q(err));
    return sd;
}

int main(int argc, char **argv)
{
    bx_cfg cfg;
    char err[512];
    bx_store *store = NULL;
    metrics *reg = NULL;
    statusd *sd = NULL;
    rec_obs obs;
    struct sigaction sa;
    int rc = 2;

    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cfg_usage("bx-recorder");
            return 0;
        }
    if (cfg_load(&cfg, argc, argv, err, sizeof err) < 0) {
        fprintf(stderr, "bx-recorder: %s\n", err);
        cfg_release(&cfg);
        return 2;
    }
    log_open("bx-recorder", cfg.log_facility, cfg.foreground);
    if (cfg.log_file[0] && log_set_file(cfg.log_file)) {
        fprintf(stderr, "bx-recorder: BX_LOG_FILE '%s': %s\n", cfg.log_file, strerror(errno));
        cfg_release(&cfg);
        return 2;
    }
    memtrim_setup();

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup; /* after a rotation: rec_run reopens the logs */
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    if (!(reg = metrics_new())) {
        snprintf(err, sizeof err, "out of memory");
        goto startup_failed;
    }
    if (rec_obs_init(&obs, reg, err, sizeof err) < 0) {
        rec_obs_release(&obs);
        goto startup_failed;
    }
    if (!(store = store_new(cfg.mongo_url, cfg.ns, err, sizeof err)) ||
        (cfg.metrics_listen[0] && !(sd = status_start(&cfg, reg, &obs, err, sizeof err)))) {
        rec_obs_release(&obs);
        goto startup_failed;
    }
    rc = rec_run(&cfg, store, &obs, &stop_flag, &reopen_flag) == 0 ? 0 : 1;
    statusd_stop(sd); /* before what its thread reads goes */
    rec_obs_release(&obs);
    goto out;
startup_failed:
    LOGE("event=exit err=%s", log_q(err));
    fprintf(stderr, "bx-recorder: %s\n", err);
out:
    store_free(store);
    metrics_free(reg);
    log_close();
    cfg_release(&cfg);
    return rc;
}
