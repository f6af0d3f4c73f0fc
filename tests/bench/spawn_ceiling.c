/* spawn_ceiling — the machine's ceiling for running shell commands: how
 * many `SHELL -c true` a program can start, capture and reap per second
 * when it does nothing else. This is the cost no job system can avoid,
 * so bashexec's end-to-end rate is judged against it.
 *
 *   spawn_ceiling [-s SHELL] [-n JOBS] [-j IN_FLIGHT] [-c COMMAND]
 *
 * Each job: a pipe for stdout, posix_spawn (glibc's is a vfork-style
 * clone, the cheapest way to start a process), read the pipe to EOF,
 * waitpid. With -j 2 two jobs run at once, driven by poll(2) over their
 * pipes, the way a worker with BX_CONCURRENCY=2 would. Prints one JSON
 * line: the rate and the per-job latency (spawn to reaped). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_IN_FLIGHT 64

typedef struct slot {
    pid_t pid;      /* 0 = free */
    int fd;         /* read end of the job's stdout; -1 once at EOF */
    int64_t t0_ns;  /* when it was spawned */
} slot;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Starts one job in s; 0 or -1 with errno's message printed. */
static int start(slot *s, const char *shell, const char *cmd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC)) {
        perror("pipe2");
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    /* dup2 clears O_CLOEXEC on the copy, so only fd 1 survives the exec */
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    char *argv[] = {(char *)shell, "-c", (char *)cmd, NULL};
    s->t0_ns = now_ns();
    int rc = posix_spawn(&s->pid, shell, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc) {
        fprintf(stderr, "posix_spawn %s: %s\n", shell, strerror(rc));
        close(p[0]);
        return -1;
    }
    s->fd = p[0];
    return 0;
}

/* Reads what is there; at EOF closes the pipe and reaps the job.
 * Returns 1 when the job is done, 0 if not, -1 on error. */
static int drain(slot *s, int64_t *lat_ns)
{
    char buf[65536];
    ssize_t r = read(s->fd, buf, sizeof buf);
    if (r > 0)
        return 0;
    if (r < 0 && errno == EINTR)
        return 0;
    if (r < 0) {
        perror("read");
        return -1;
    }
    close(s->fd);
    s->fd = -1;
    int st;
    while (waitpid(s->pid, &st, 0) < 0) {
        if (errno != EINTR) {
            perror("waitpid");
            return -1;
        }
    }
    *lat_ns = now_ns() - s->t0_ns;
    s->pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "job failed (status 0x%x)\n", st);
        return -1;
    }
    return 1;
}

int main(int argc, char **argv)
{
    const char *shell = "/bin/bash", *cmd = "true";
    long njobs = 2000, jobs_in_flight = 1;
    int o;
    while ((o = getopt(argc, argv, "s:n:j:c:")) != -1) {
        switch (o) {
        case 's': shell = optarg; break;
        case 'n': njobs = strtol(optarg, NULL, 10); break;
        case 'j': jobs_in_flight = strtol(optarg, NULL, 10); break;
        case 'c': cmd = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-s SHELL] [-n JOBS] [-j IN_FLIGHT] [-c COMMAND]\n",
                    argv[0]);
            return 2;
        }
    }
    if (njobs < 1 || jobs_in_flight < 1 || jobs_in_flight > MAX_IN_FLIGHT) {
        fprintf(stderr, "spawn_ceiling: -n must be >= 1, -j 1..%d\n", MAX_IN_FLIGHT);
        return 2;
    }
    int64_t *lat = malloc((size_t)njobs * sizeof *lat);
    if (!lat) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    slot slots[MAX_IN_FLIGHT];
    memset(slots, 0, sizeof slots);
    long started = 0, done = 0;
    int rc = 1;
    int64_t t0 = now_ns();
    while (done < njobs) {
        for (int i = 0; i < jobs_in_flight && started < njobs; i++) {
            if (slots[i].pid)
                continue;
            if (start(&slots[i], shell, cmd))
                goto out;
            started++;
        }
        struct pollfd pf[MAX_IN_FLIGHT];
        int map[MAX_IN_FLIGHT], n = 0;
        for (int i = 0; i < jobs_in_flight; i++) {
            if (!slots[i].pid)
                continue;
            pf[n].fd = slots[i].fd;
            pf[n].events = POLLIN;
            map[n++] = i;
        }
        if (poll(pf, (nfds_t)n, 10000) < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            goto out;
        }
        for (int k = 0; k < n; k++) {
            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int r = drain(&slots[map[k]], &lat[done]);
            if (r < 0)
                goto out;
            done += r;
        }
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, (size_t)njobs, sizeof *lat, cmp_i64);
    printf("{\"shell\":\"%s\",\"jobs\":%ld,\"in_flight\":%ld,\"seconds\":%.4f,"
           "\"jobs_per_s\":%.1f,\"latency_ms\":{\"p50\":%.4f,\"p99\":%.4f,\"min\":%.4f}}\n",
           shell, njobs, jobs_in_flight, secs, (double)njobs / secs,
           (double)lat[njobs / 2] / 1e6, (double)lat[(njobs * 99) / 100] / 1e6,
           (double)lat[0] / 1e6);
    rc = 0;
out:
    free(lat);
    return rc;
}
