/* bx-worker — consumes jobs and runs each as `$BX_SHELL -c COMMAND`, up to
 * BX_CONCURRENCY at once, in one thread: epoll waits until the next
 * deadline, dispatches, ticks. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "proc.h"
#include "runner.h"
#include "statusd.h"
#include "wmetrics.h"

typedef struct sigwatch {
    runner_watch w;
    int fd;
    int stop;   /* SIGTERM/SIGINT seen: drain */
    int hurry;  /* a second one: stop now */
    int reload; /* SIGHUP seen: reopen the logs */
} sigwatch;

static void on_signal(runner_watch *w, uint32_t events)
{
    sigwatch *s = (sigwatch *)w;
    struct signalfd_siginfo si;
    (void)events;
    while (read(s->fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            s->hurry = s->stop;
            s->stop = 1;
        } else if (si.ssi_signo == SIGHUP) {
            s->reload = 1;
        }
        /* SIGCHLD only wakes us: exits are seen through pidfds */
    }
}

/* /metrics, /healthz and /readyz on BX_METRICS_LISTEN. The address goes
 * to the log and, when the run dir exists, to <run dir>/metrics/<worker
 * id>.addr: with port 0 (several workers, one host) that is how the
 * local stack and the tests find each. NULL + err when it cannot listen. */
static statusd *status_start(const bx_cfg *cfg, metrics *reg, wmetrics *wm, char *err,
                             size_t errlen)
{
    struct stat st;
    statusd_opts o = {.listen = cfg->metrics_listen, .reg = reg, .ready = wmetrics_ready, .ud = wm};
    statusd *sd = statusd_start(&o, err, errlen);
    if (!sd)
        return NULL;
    LOGI("event=metrics_listening addr=%s", statusd_addr(sd));
    if (stat(cfg->run_dir, &st) == 0 && S_ISDIR(st.st_mode) &&
        statusd_write_addr(sd, cfg->run_dir, cfg->worker_id, err, errlen))
        LOGW("event=metrics_addr_not_written err=%s", log_q(err));
    return sd;
}

int main(int argc, char **argv)
{
    bx_cfg cfg;
    char err[512];
    int rc = 1, epfd = -1;
    runner *r = NULL;
    metrics *reg = NULL;
    statusd *sd = NULL;
    wmetrics wm;
    sigwatch sw = {{on_signal}, -1, 0, 0, 0};

    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        cfg_usage("bx-worker");
        return 0;
    }
    if (cfg_load(&cfg, argc, argv, err, sizeof err)) {
        fprintf(stderr, "bx-worker: %s\n", err);
        cfg_release(&cfg);
        return 2;
    }
    log_open("bx-worker", cfg.log_facility, cfg.foreground);
    if (cfg.log_file[0] && log_set_file(cfg.log_file)) {
        fprintf(stderr, "bx-worker: BX_LOG_FILE '%s': %s\n", cfg.log_file, strerror(errno));
        cfg_release(&cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    if ((sw.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
        (epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        fprintf(stderr, "bx-worker: %s\n", strerror(errno));
        rc = 3;
        goto out;
    }
    proc_tree tree = !strcmp(cfg.proc_tree, "cgroup") ? PROC_TREE_CGROUP
                   : !strcmp(cfg.proc_tree, "auto")   ? PROC_TREE_AUTO
                                                      : PROC_TREE_SCAN;
    if (proc_global_init() || proc_global_setup(tree, err, sizeof err)) {
        fprintf(stderr, "bx-worker: cannot set up process tracking (%s): %s\n", cfg.proc_tree,
                tree == PROC_TREE_CGROUP ? err : strerror(errno));
        rc = 3;
        goto out;
    }
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &sw.w};
    epoll_ctl(epfd, EPOLL_CTL_ADD, sw.fd, &sev);
    if (!(r = runner_new(&cfg, epfd, err, sizeof err))) {
        fprintf(stderr, "bx-worker: %s\n", err);
        rc = 2;
        goto out;
    }
    if (!(reg = metrics_new()) || wmetrics_init(&wm, reg, &cfg, err, sizeof err)) {
        fprintf(stderr, "bx-worker: metrics: %s\n", reg ? err : "out of memory");
        rc = 3;
        goto out;
    }
    runner_set_metrics(r, &wm);
    if (cfg.metrics_listen[0] && !(sd = status_start(&cfg, reg, &wm, err, sizeof err))) {
        fprintf(stderr, "bx-worker: BX_METRICS_LISTEN: %s\n", err);
        rc = 2;
        goto out;
    }
    LOGI("event=start worker=%s queues=%s concurrency=%d shell=%s namespace=%s tree=%s",
         cfg.worker_id, cfg.queues, cfg.concurrency, cfg.shell, cfg.ns,
         log_q(proc_global_describe()));

    int64_t next = clock_mono_ms();
    for (;;) {
        struct epoll_event evs[64];
        int64_t wait = next - clock_mono_ms();
        int n = epoll_wait(epfd, evs, 64, wait < 0 ? 0 : (int)wait);
        for (int i = 0; i < n; i++) {
            runner_watch *w = evs[i].data.ptr;
            w->fn(w, evs[i].events);
        }
        if (sw.stop)
            runner_drain(r);
        if (sw.reload) {
            /* SIGHUP: what a running worker can take anew without
             * disturbing its jobs is its logs (after a rotation); every
             * other setting needs a restart, which SIGTERM makes graceful */
            sw.reload = 0;
            int lrc = log_reopen();
            int e = errno;
            if (lrc)
                LOGE("event=reload_failed what=log_file path=%s error=%s", log_q(cfg.log_file),
                     log_q(strerror(e)));
            LOGI("event=reload worker=%s log_file=%s running=%d", cfg.worker_id,
                 cfg.log_file[0] ? log_q(cfg.log_file) : "-", runner_running(r));
        }
        next = runner_tick(r, clock_mono_ms());
        if (runner_drained(r) || sw.hurry)
            break;
    }
    LOGI("event=stop worker=%s", cfg.worker_id);
    rc = 0;
out:
    statusd_stop(sd); /* first: its thread reads the registry */
    runner_free(r);
    metrics_free(reg);
    proc_global_release();
    if (epfd >= 0)
        close(epfd);
    if (sw.fd >= 0)
        close(sw.fd);
    log_close();
    cfg_release(&cfg);
    return rc;
}
