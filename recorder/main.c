/* bx-recorder — writes every result event into MongoDB (see rec.h). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "rec.h"
#include "store.h"

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

int main(int argc, char **argv)
{
    bx_cfg cfg;
    char err[512];
    bx_store *store;
    struct sigaction sa;

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

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    store = store_new(cfg.mongo_url, cfg.ns, err, sizeof err);
    if (!store) {
        LOGE("event=exit err=%s", log_q(err));
        log_close();
        cfg_release(&cfg);
        return 2;
    }
    int rc = rec_run(&cfg, store, &stop_flag);
    store_free(store);
    log_close();
    cfg_release(&cfg);
    return rc == 0 ? 0 : 1;
}
