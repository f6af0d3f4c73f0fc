/* proc — one job's command as a process tree the worker owns whole.
 *
 * Life of a proc:
 *   RUNNING  the root runs; pipes are read into the outbufs, stdin fed.
 *            The root's exit (pidfd) is reaped at once. Then we wait for
 *            EOF on both pipes, at most linger_ms (or, while terminating,
 *            until the SIGKILL deadline).
 *   CLEANUP  leftovers of the tree get SIGKILL (while terminating: only
 *            once the grace is over); we check again after 1, 2, 4 ... 32 ms
 *            until none is left (cgroup "populated 0", or a /proc scan that
 *            finds none), reaping what was reparented to us.
 *   DONE     pipes closed, cgroup back in the pool, results final.
 * The common case (no leftovers, pipes at EOF by the time the root has
 * exited) goes from RUNNING to DONE inside one proc_on_ready call. */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#define BX_CLONE_INTO_CGROUP 0x200000000ULL
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CLONE_STACK_CLEAN(p, n) __asan_unpoison_memory_region((p), (n))
/* The child runs on a small stack of its own that ASan does not know: its
 * noreturn calls would have ASan warn (and unpoison a bogus range). The
 * child only sets itself up and execs: nothing there to check. */
#define CHILD_NO_ASAN __attribute__((no_sanitize_address))
#else
#define CLONE_STACK_CLEAN(p, n) ((void)0)
#define CHILD_NO_ASAN
#endif
#define CLONE_STACK (64 * 1024)

#define DEFAULT_LINGER_MS 100
#define CLEANUP_GIVEUP_MS 5000 /* unkillable leftovers (D state): stop waiting */
#define READ_CHUNK 65536
#define READS_PER_CALL 4      /* fairness: at most 256 KiB per fd per call */
#define ENVIRON_MAX (1 << 20) /* bytes of /proc/<pid>/environ we look at */
#define JOB_MARKER "BX_JOB_ID="

enum { ST_RUNNING, ST_CLEANUP, ST_DONE };

/* A job cgroup. They are reused: the first process to enter a fresh
 * cgroup costs ~0.7 ms of kernel work (mkdir, a new css_set, and its
 * teardown after rmdir), entering a used, empty one ~35 us. So a
 * finished job's cgroup, once empty, goes back to a free list with its
 * files still open. */
typedef struct cgslot {
    struct cgslot *next; /* in the free list */
    char *path;
    int dir_fd;          /* the directory: clone3's CLONE_INTO_CGROUP */
    int procs_fd;        /* cgroup.procs, O_WRONLY: the child writes "0" (no clone3) */
    int events_fd;       /* cgroup.events, read with pread */
    int killed;          /* cgroup.kill was used: never reused (below) */
} cgslot;

#define CG_POOL_MAX 256

struct proc {
    proc *next, *prev;   /* every proc not yet freed (the registry) */
    pid_t pid;           /* the root; also its process group id */
    int pidfd;           /* -1 once the root is reaped, or without pidfds */
    int64_t poll_at_ms;  /* without pidfds: next waitid check of the root */
    int poll_step_ms;
    int reaped;          /* 1 once the root is reaped: pid and pgid may be reused */
    int fd[3];           /* [0] stdin write end, [PROC_STDOUT], [PROC_STDERR]
                            read ends; -1 = closed */
    outbuf ob[3];        /* [PROC_STDOUT], [PROC_STDERR] */
    char *in_buf;        /* stdin not yet written: in_buf[in_off..in_len) */
    size_t in_len, in_off;
    char *marker;        /* "BX_JOB_ID=<id>" */
    cgslot *cg;          /* the job's cgroup; NULL in scan mode */
    proc_tree tree;      /* how the tree is tracked */
    int64_t spawn_ms;
    void (*on_output)(void *, int, const char *, size_t);
    void *ud;
    int linger_ms;
    int state;
    int wcode, wstatus;       /* the root's end, valid once reaped */
    int64_t exit_ms;
    int terminating;     /* proc_terminate or proc_kill(SIGKILL) called */
    int hard_killed;     /* SIGKILL sent to the tree */
    int64_t kill_at_ms;  /* terminating: SIGKILL deadline */
    int64_t hard_ms;
    int64_t cleanup_next_ms;
    int cleanup_round;
    int leftovers;       /* after the root, processes of the tree were left */
    int news;            /* PROC_EV_ bits not yet returned */
};

static struct {
    int inited;
    int cg_probed;
    proc_tree tree;
    pid_t self;
    int devnull;         /* O_RDONLY, for stdin */
    int no_clone3;       /* clone3 with CLONE_INTO_CGROUP is not there (Linux
                            < 5.7, valgrind, not x86-64): vfork instead */
    void *clone_stack;   /* the clone3 child's stack, CLONE_STACK bytes */
    int no_pidfd;        /* pidfd_open is ENOSYS (Linux < 5.3, valgrind < 3.20):
                            the root's exit is polled instead */
    char *cg_base;       /* <own cgroup>/bx-worker.<pid>; NULL = unusable */
    cgslot *cg_free;     /* empty job cgroups, ready for reuse */
    int cg_nfree;
    int procfd;          /* /proc, O_DIRECTORY */
    int last_pid_fd;     /* /proc/sys/kernel/ns_last_pid, or -1 */
    long pid_max;        /* /proc/sys/kernel/pid_max, or 0 */
    char cg_why[300];    /* why not, when cg_base is NULL */
    char desc[PATH_MAX + 64];
    proc *live;
    unsigned long seq;
} G = {.devnull = -1, .procfd = -1, .last_pid_fd = -1};

static char rbuf[READ_CHUNK];

/* snprintf for messages: truncation is fine. */
__attribute__((format(printf, 3, 4))) static void msgf(char *buf, size_t n, const char *fmt,
                                                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* snprintf for paths: 0, or -1 (ENAMETOOLONG) when it does not fit. */
__attribute__((format(printf, 3, 4))) static int pathf(char *buf, size_t n, const char *fmt,
                                                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= n) {
        buf[0] = '\0';
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Moves fd to a number >= 3 (so that the child's dup2 onto 0-2 cannot
 * clobber it), keeping O_CLOEXEC. */
static int fd_above_stdio(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return n;
}

/* For a fresh pipe end: its only status flag is then O_NONBLOCK. */
static int set_nonblock(int fd)
{
    return fcntl(fd, F_SETFL, O_NONBLOCK);
}

static int write_file(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = strlen(s);
    ssize_t w = write(fd, s, n);
    int e = errno;
    close(fd);
    errno = e;
    return w == (ssize_t)n ? 0 : -1;
}

/* Reads a whole small file (at most max bytes) into a new malloc'd
 * NUL-terminated buffer; NULL on error. */
static char *read_file(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap) {
            if (cap >= max)
                break;
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    close(fd);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = n;
    }
    return buf;
}

/* ---- the registry and reaping ---------------------------------------- */

static void registry_add(proc *p)
{
    p->prev = NULL;
    p->next = G.live;
    if (G.live)
        G.live->prev = p;
    G.live = p;
}

static void registry_del(proc *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else if (G.live == p)
        G.live = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
}

/* 1 when pid is the root of a proc that has not reaped it yet. */
static int is_live_root(pid_t pid)
{
    for (proc *q = G.live; q; q = q->next)
        if (!q->reaped && q->pid == pid)
            return 1;
    return 0;
}

static void record_exit(proc *p, const siginfo_t *si)
{
    p->reaped = 1;
    p->wcode = si->si_code;
    p->wstatus = si->si_status;
    p->exit_ms = mono_ms();
    p->news |= PROC_EV_EXIT;
    close_fd(&p->pidfd);
}

/* Reaps p's root if it has exited. (By pid without a pidfd: exact too,
 * since an unreaped child's pid cannot be reused.) */
static void reap_root(proc *p)
{
    if (p->reaped || p->pid <= 0)
        return;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r;
    do
        r = p->pidfd >= 0 ? waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG)
                          : waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0 && si.si_pid != 0)
        record_exit(p, &si);
}

/* Reaps exited children of the worker that are not a live proc's root:
 * processes of job trees that were reparented to us (the subreaper). It
 * peeks first, and stops at a live root, which only its proc reaps (so no
 * proc ever takes another's exit status); that proc's own call resumes. */
static void sweep_strays(void)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
            if (errno == EINTR)
                continue;
            return; /* ECHILD: no children at all */
        }
        if (si.si_pid == 0 || is_live_root(si.si_pid))
            return;
        siginfo_t si2;
        if (waitid(P_PID, (id_t)si.si_pid, &si2, WEXITED | WNOHANG) < 0 && errno != EINTR)
            return;
    }
}

void proc_global_reap(void)
{
    sweep_strays();
}

/* ---- cgroup v2 ------------------------------------------------------- */

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_mount(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* The directory of the worker's own cgroup v2, or -1 + why. */
static int cg_own_dir(char *out, size_t outlen, char *why, size_t whylen)
{
    char mnt[PATH_MAX] = "", root[PATH_MAX] = "";
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f) {
        msgf(why, whylen, "cannot read /proc/self/mountinfo: %s", strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        /* id parent maj:min root mountpoint options [optional...] - fstype source opts */
        char *sep = strstr(line, " - ");
        if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
            continue;
        char r[PATH_MAX], m[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2)
            continue;
        unescape_mount(r);
        unescape_mount(m);
        snprintf(root, sizeof root, "%s", r);
        snprintf(mnt, sizeof mnt, "%s", m);
        break;
    }
    free(line);
    fclose(f);
    if (!mnt[0]) {
        msgf(why, whylen, "cgroup v2 is not mounted");
        return -1;
    }
    size_t len;
    char *cg = read_file("/proc/self/cgroup", 65536, &len);
    char *path = NULL;
    for (char *l = cg; l && *l;) {
        char *nl = strchr(l, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(l, "0::", 3) == 0)
            path = l + 3;
        l = nl ? nl + 1 : l + strlen(l);
    }
    if (!path) {
        free(cg);
        msgf(why, whylen, "the worker is in no cgroup v2 (/proc/self/cgroup)");
        return -1;
    }
    const char *rel = path;
    if (strcmp(root, "/") != 0) {
        size_t rl = strlen(root);
        if (strncmp(path, root, rl) != 0 || (path[rl] != '/' && path[rl] != '\0')) {
            msgf(why, whylen, "own cgroup '%s' is not under the mount's root '%s'", path,
                     root);
            free(cg);
            return -1;
        }
        rel = path + rl;
    }
    int n = snprintf(out, outlen, "%s%s", mnt, strcmp(rel, "/") == 0 ? "" : rel);
    free(cg);
    if (n < 0 || (size_t)n >= outlen) {
        msgf(why, whylen, "cgroup path too long");
        return -1;
    }
    return 0;
}

/* 1 populated, 0 empty, -1 cannot tell. */
static int cg_dir_populated(const char *dir)
{
    char path[PATH_MAX];
    pathf(path, sizeof path, "%s/cgroup.events", dir);
    char *ev = read_file(path, 4096, NULL);
    if (!ev)
        return -1;
    char *s = strstr(ev, "populated ");
    int r = s ? s[10] == '1' : -1;
    free(ev);
    return r;
}

static int cg_dir_kill(const char *dir)
{
    char path[PATH_MAX];
    pathf(path, sizeof path, "%s/cgroup.kill", dir);
    return write_file(path, "1");
}

static void cg_slot_free(cgslot *c)
{
    close_fd(&c->dir_fd);
    close_fd(&c->procs_fd);
    close_fd(&c->events_fd);
    free(c->path);
    free(c);
}

/* An empty job cgroup: from the free list, or a new one. NULL + errno. */
static cgslot *cg_slot_get(void)
{
    cgslot *c = G.cg_free;
    if (c) {
        G.cg_free = c->next;
        G.cg_nfree--;
        c->next = NULL;
        return c;
    }
    char dir[PATH_MAX], file[PATH_MAX + 16];
    if (pathf(dir, sizeof dir, "%s/j%lu", G.cg_base, ++G.seq) < 0)
        return NULL;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return NULL;
    c = calloc(1, sizeof *c);
    if (!c)
        goto fail;
    c->dir_fd = c->procs_fd = c->events_fd = -1;
    c->path = strdup(dir);
    if (!c->path || pathf(file, sizeof file, "%s/cgroup.procs", dir) < 0)
        goto fail;
    c->dir_fd = fd_above_stdio(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (c->dir_fd < 0)
        goto fail;
    c->procs_fd = fd_above_stdio(open(file, O_WRONLY | O_CLOEXEC));
    if (c->procs_fd < 0 || pathf(file, sizeof file, "%s/cgroup.events", dir) < 0)
        goto fail;
    c->events_fd = fd_above_stdio(open(file, O_RDONLY | O_CLOEXEC));
    if (c->events_fd < 0)
        goto fail;
    return c;
fail:
    if (c)
        cg_slot_free(c);
    rmdir(dir);
    return NULL;
}

/* 1 populated, 0 empty, -1 cannot tell. */
static int cg_slot_populated(const cgslot *c)
{
    char buf[256];
    ssize_t r = pread(c->events_fd, buf, sizeof buf - 1, 0);
    if (r <= 0)
        return -1;
    buf[r] = '\0';
    char *s = strstr(buf, "populated ");
    return s ? s[10] == '1' : -1;
}

/* Gives a job cgroup back: to the free list when it is empty, else
 * (unkillable leftovers) it stays until proc_global_release. One that
 * was killed through cgroup.kill is removed instead: Linux (seen on 6.18)
 * SIGKILLs every process later cloned into it with CLONE_INTO_CGROUP, as
 * the child is checked against the kill count of its parent's cgroup,
 * not of the one it enters. */
static void cg_slot_put(cgslot *c)
{
    if (!c->killed && cg_slot_populated(c) == 0 && G.cg_nfree < CG_POOL_MAX && G.cg_base) {
        c->next = G.cg_free;
        G.cg_free = c;
        G.cg_nfree++;
        return;
    }
    if (cg_slot_populated(c) == 0)
        rmdir(c->path);
    cg_slot_free(c);
}

/* Kills what runs in dir and removes it, waiting at most wait_ms. */
static void cg_dir_destroy(const char *dir, int wait_ms)
{
    if (cg_dir_populated(dir) == 1) {
        cg_dir_kill(dir);
        for (int i = 0; i < wait_ms && cg_dir_populated(dir) == 1; i++) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    rmdir(dir);
}

/* Removes dir/j* and dir (a worker's cgroup directory). */
static void cg_base_destroy(const char *dir, int wait_ms)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char sub[PATH_MAX];
        while ((e = readdir(d))) {
            if (e->d_type != DT_DIR || e->d_name[0] != 'j')
                continue;
            pathf(sub, sizeof sub, "%s/%s", dir, e->d_name);
            cg_dir_destroy(sub, wait_ms);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Directories bx-worker.<pid> of workers that no longer run: kill what
 * their jobs left running, remove them. */
static void cg_remove_stale(const char *own)
{
    DIR *d = opendir(own);
    if (!d)
        return;
    struct dirent *e;
    char dir[PATH_MAX];
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "bx-worker.", 10) != 0)
            continue;
        long pid = strtol(e->d_name + 10, &end, 10);
        if (*end || pid <= 0 || pid == G.self)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        pathf(dir, sizeof dir, "%s/%s", own, e->d_name);
        cg_base_destroy(dir, 1000);
    }
    closedir(d);
}

/* Can a process be moved into a child cgroup of base? Tries it. */
static int cg_probe(const char *base, char *why, size_t whylen)
{
    char dir[PATH_MAX], procs[PATH_MAX + 16];
    if (pathf(dir, sizeof dir, "%s/probe", base) < 0 ||
        (mkdir(dir, 0755) < 0 && errno != EEXIST)) {
        msgf(why, whylen, "cannot create '%s': %s", dir, strerror(errno));
        return -1;
    }
    pathf(procs, sizeof procs, "%s/cgroup.procs", dir);
    pid_t pid = fork();
    if (pid < 0) {
        msgf(why, whylen, "fork: %s", strerror(errno));
        rmdir(dir);
        return -1;
    }
    if (pid == 0)
        _exit(write_file(procs, "0") == 0 ? 0 : (errno & 0x7f) + 1);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    rmdir(dir);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        int e = WIFEXITED(st) ? WEXITSTATUS(st) - 1 : EIO;
        msgf(why, whylen, "cannot move a process into '%s': %s", dir, strerror(e));
        return -1;
    }
    return 0;
}

static void cg_setup(void)
{
    char own[PATH_MAX], base[PATH_MAX + 32], path[PATH_MAX + 64];
    G.cg_probed = 1;
    if (cg_own_dir(own, sizeof own, G.cg_why, sizeof G.cg_why) < 0)
        return;
    cg_remove_stale(own);
    if (pathf(base, sizeof base, "%s/bx-worker.%ld", own, (long)G.self) < 0 ||
        (mkdir(base, 0755) < 0 && errno != EEXIST)) {
        msgf(G.cg_why, sizeof G.cg_why, "cannot create '%s': %s", base, strerror(errno));
        return;
    }
    pathf(path, sizeof path, "%s/cgroup.kill", base);
    if (access(path, W_OK) < 0) {
        msgf(G.cg_why, sizeof G.cg_why, "no writable cgroup.kill in '%s' (Linux < 5.14?)",
                 base);
        rmdir(base);
        return;
    }
    if (cg_probe(base, G.cg_why, sizeof G.cg_why) < 0) {
        rmdir(base);
        return;
    }
    G.cg_base = strdup(base);
    if (!G.cg_base)
        msgf(G.cg_why, sizeof G.cg_why, "out of memory");
}

/* ---- global ---------------------------------------------------------- */

int proc_global_setup(proc_tree want, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!G.inited) {
        G.self = getpid();
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
            msgf(err, errlen, "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
            return -1;
        }
        /* SIG_IGN or SA_NOCLDWAIT on SIGCHLD would auto-reap our roots. */
        struct sigaction sa;
        if (sigaction(SIGCHLD, NULL, &sa) == 0 &&
            (sa.sa_handler == SIG_IGN || (sa.sa_flags & SA_NOCLDWAIT))) {
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = SIG_DFL;
            sigaction(SIGCHLD, &sa, NULL);
        }
        /* A write to a pipe whose reader is gone must be EPIPE, not death. */
        if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = SIG_IGN;
            sigaction(SIGPIPE, &sa, NULL);
        }
        G.devnull = fd_above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
        if (G.devnull < 0) {
            msgf(err, errlen, "open /dev/null: %s", strerror(errno));
            return -1;
        }
        G.procfd = fd_above_stdio(open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (G.procfd < 0) {
            msgf(err, errlen, "open /proc: %s", strerror(errno));
            close_fd(&G.devnull);
            return -1;
        }
        G.last_pid_fd =
            fd_above_stdio(open("/proc/sys/kernel/ns_last_pid", O_RDONLY | O_CLOEXEC));
        char *pm = read_file("/proc/sys/kernel/pid_max", 64, NULL);
        G.pid_max = pm ? atol(pm) : 0;
        free(pm);
        G.inited = 1;
    }
    if (want != PROC_TREE_SCAN && !G.cg_probed)
        cg_setup();
    if (want == PROC_TREE_CGROUP && !G.cg_base) {
        msgf(err, errlen, "cgroup v2 not usable: %s",
                 G.cg_probed ? G.cg_why : "not probed");
        return -1;
    }
    G.tree = want != PROC_TREE_SCAN && G.cg_base ? PROC_TREE_CGROUP : PROC_TREE_SCAN;
    if (G.tree == PROC_TREE_CGROUP)
        msgf(G.desc, sizeof G.desc, "tree=cgroup dir=%s", G.cg_base);
    else if (want == PROC_TREE_SCAN)
        msgf(G.desc, sizeof G.desc, "tree=scan reason=\"asked for\"");
    else
        msgf(G.desc, sizeof G.desc, "tree=scan reason=\"%s\"", G.cg_why);
    return 0;
}

int proc_global_init(void)
{
    return proc_global_setup(PROC_TREE_AUTO, NULL, 0);
}

proc_tree proc_global_tree(void)
{
    return G.tree;
}

const char *proc_global_describe(void)
{
    return G.desc;
}

void proc_global_release(void)
{
    while (G.cg_free) {
        cgslot *c = G.cg_free;
        G.cg_free = c->next;
        cg_slot_free(c);
    }
    G.cg_nfree = 0;
    close_fd(&G.procfd);
    close_fd(&G.last_pid_fd);
    if (G.cg_base) {
        cg_base_destroy(G.cg_base, 100);
        free(G.cg_base);
        G.cg_base = NULL;
    }
    G.cg_probed = 0;
    close_fd(&G.devnull);
    G.inited = 0;
}

/* ---- the /proc scan (scan mode) -------------------------------------- */

typedef struct pent {
    pid_t pid, ppid, pgid;
    unsigned flags; /* PF_* of the task */
    char state;
    signed char v;  /* verdict, below */
} pent;

#define PF_EXITING 0x4 /* in do_exit: its memory (and environ) may be gone */

enum { V_UNK = 0, V_NOTDESC, V_OTHER, V_ORPHAN, V_JOB };

static int pent_cmp(const void *a, const void *b)
{
    pid_t x = ((const pent *)a)->pid, y = ((const pent *)b)->pid;
    return (x > y) - (x < y);
}

/* Which pids a scan for a tree looks at. Pids are allocated cyclically,
 * and every process of a tree is younger than its root: so its pid lies
 * in [root, ns_last_pid] (wrapping at pid_max) -- unless the counter went
 * all the way round since the spawn. We assume fewer than 50,000 forks a
 * second, so that cannot happen within pid_max / 50 ms of the spawn
 * (84 s for the usual pid_max of 4194304); older trees, or no
 * ns_last_pid, get a scan of every process. */
typedef struct pidwin {
    int all;
    long lo[2], hi[2]; /* two ranges, inclusive; hi < lo = empty */
} pidwin;

static void pid_window(const proc *p, pidwin *w)
{
    char buf[32];
    memset(w, 0, sizeof *w);
    w->all = 1;
    if (!p || G.pid_max <= 0 || G.last_pid_fd < 0 || mono_ms() - p->spawn_ms > G.pid_max / 50)
        return;
    ssize_t r = pread(G.last_pid_fd, buf, sizeof buf - 1, 0);
    if (r <= 0)
        return;
    buf[r] = '\0';
    long last = atol(buf);
    if (last <= 0)
        return;
    w->all = 0;
    w->lo[0] = p->pid;
    w->lo[1] = 1;
    if (p->pid <= last) {
        w->hi[0] = last;
        w->hi[1] = 0;
    } else {
        w->hi[0] = G.pid_max - 1;
        w->hi[1] = last;
    }
}

static int in_window(const pidwin *w, long pid)
{
    return w->all || (pid >= w->lo[0] && pid <= w->hi[0]) || (pid >= w->lo[1] && pid <= w->hi[1]);
}

/* Reads /proc/<pid>/stat into x. 0, or -1 when there is no such process. */
static int read_pent(long pid, pent *x)
{
    char path[32], buf[1024];
    snprintf(path, sizeof path, "%ld/stat", pid);
    int fd = openat(G.procfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (r <= 0)
        return -1;
    buf[r] = '\0';
    char *rp = strrchr(buf, ')'); /* comm may hold spaces and parens */
    int ppid, pgid;
    memset(x, 0, sizeof *x);
    /* state ppid pgrp session tty_nr tpgid flags */
    if (!rp || sscanf(rp + 1, " %c %d %d %*d %*d %*d %u", &x->state, &ppid, &pgid, &x->flags) != 4)
        return -1;
    x->pid = (pid_t)pid;
    x->ppid = ppid;
    x->pgid = pgid;
    return 0;
}

static int pent_push(pent **t, size_t *k, size_t *cap, const pent *x)
{
    if (*k == *cap) {
        pent *nt = realloc(*t, *cap * 2 * sizeof **t);
        if (!nt)
            return -1;
        *t = nt;
        *cap *= 2;
    }
    (*t)[(*k)++] = *x;
    return 0;
}

/* The processes of window w: pid, parent, group, state. New malloc'd
 * table sorted by pid, or NULL. A small window is probed pid by pid
 * (a handful of opens for a short job), a large one read from /proc's
 * listing. */
static pent *scan_table(const pidwin *w, size_t *n)
{
    size_t cap = 64, k = 0;
    pent *t = malloc(cap * sizeof *t), x;
    if (!t)
        return NULL;
    long span = LONG_MAX;
    if (!w->all)
        span = (w->hi[0] - w->lo[0] + 1) + (w->hi[1] >= w->lo[1] ? w->hi[1] - w->lo[1] + 1 : 0);
    if (span <= 256) {
        for (int r = 0; r < 2; r++)
            for (long pid = w->lo[r]; pid <= w->hi[r]; pid++)
                if (read_pent(pid, &x) == 0 && pent_push(&t, &k, &cap, &x) < 0)
                    goto fail;
    } else {
        int dfd = dup(G.procfd);
        DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
        if (!d) {
            if (dfd >= 0)
                close(dfd);
            goto fail;
        }
        rewinddir(d);
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9')
                continue;
            long pid = atol(e->d_name);
            if (in_window(w, pid) && read_pent(pid, &x) == 0 && pent_push(&t, &k, &cap, &x) < 0) {
                closedir(d);
                goto fail;
            }
        }
        closedir(d);
    }
    qsort(t, k, sizeof *t, pent_cmp);
    *n = k;
    return t;
fail:
    free(t);
    return NULL;
}

/* 1 when /proc/<pid>/environ holds exactly the entry marker. */
static int environ_has(pid_t pid, const char *marker)
{
    char path[64];
    size_t len, mlen = strlen(marker) + 1; /* with its NUL */
    snprintf(path, sizeof path, "/proc/%ld/environ", (long)pid);
    char *env = read_file(path, ENVIRON_MAX, &len);
    if (!env)
        return 0;
    int found = 0;
    for (size_t i = 0; i < len && !found;) {
        size_t el = strnlen(env + i, len - i) + 1;
        found = el == mlen && memcmp(env + i, marker, mlen - 1) == 0;
        i += el;
    }
    free(env);
    return found;
}

/* Does e, taken alone, carry p's marks: its process group, or its
 * marker? (A group id outlives the root while a member lives; pids are
 * allocated cyclically, so it is not reused within a job's cleanup.) */
static int own_check(const pent *e, const proc *p)
{
    if (e->pgid == p->pid)
        return 1;
    return e->state != 'Z' && environ_has(e->pid, p->marker);
}

static pent *pent_find(pent *t, size_t n, pid_t pid)
{
    pent key = {.pid = pid};
    return bsearch(&key, t, n, sizeof *t, pent_cmp);
}

/* Is t[i] one of p's processes? Walks up the parents to the worker:
 *   under p's root, or a direct child of ours that is p's root -> V_JOB;
 *   under another live proc's root -> V_OTHER (never looked into);
 *   under an orphan we adopted -> V_JOB from the first process on the way
 *   down that carries p's group or marker, else V_ORPHAN;
 *   not ours at all -> V_NOTDESC. */
static int verdict(pent *t, size_t n, size_t i, const proc *p, size_t *stack)
{
    size_t sp = 0, k = i;
    while (t[k].v == V_UNK) {
        pent *e = &t[k];
        if (e->pid == G.self || e->ppid <= 0) {
            e->v = V_NOTDESC;
            break;
        }
        if (e->ppid == G.self) {
            if (e->pid == p->pid && !p->reaped)
                e->v = V_JOB;
            else if (is_live_root(e->pid))
                e->v = V_OTHER;
            else
                e->v = own_check(e, p) ? V_JOB : V_ORPHAN;
            break;
        }
        pent *par = pent_find(t, n, e->ppid);
        if (!par || sp == n) { /* parent gone meanwhile, or a torn snapshot */
            e->v = V_NOTDESC;
            break;
        }
        stack[sp++] = k;
        k = (size_t)(par - t);
    }
    signed char v = t[k].v;
    while (sp > 0) {
        pent *e = &t[stack[--sp]];
        if (v == V_ORPHAN && own_check(e, p))
            v = V_JOB;
        e->v = v;
    }
    return t[i].v;
}

/* Sends sig (0 = none) to each live process of p's tree that the scan
 * finds; returns how many there are (the root included while it runs),
 * or -1 when /proc cannot be read. Also counted: children of the worker
 * that are exiting (once their memory is gone they cannot be attributed,
 * and they are about to become zombies we must reap). */
static int scan_signal(proc *p, int sig)
{
    size_t n;
    pidwin w;
    pid_window(p, &w);
    pent *t = scan_table(&w, &n);
    if (!t)
        return -1;
    size_t *stack = malloc((n ? n : 1) * sizeof *stack);
    if (!stack) {
        free(t);
        return -1;
    }
    int live = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].state == 'Z' || t[i].state == 'X')
            continue;
        if (t[i].flags & PF_EXITING) {
            if (t[i].ppid == G.self && !is_live_root(t[i].pid))
                live++; /* nothing to signal: just wait for it */
            continue;
        }
        if (verdict(t, n, i, p, stack) != V_JOB)
            continue;
        live++;
        if (sig)
            kill(t[i].pid, sig);
    }
    free(stack);
    free(t);
    return live;
}

/* ---- the tree -------------------------------------------------------- */

/* Sends sig to what cgroup.procs lists; returns how many, or -1. */
static int cg_signal(const proc *p, int sig)
{
    char path[PATH_MAX];
    pathf(path, sizeof path, "%s/cgroup.procs", p->cg->path);
    char *list = read_file(path, 1 << 24, NULL);
    if (!list)
        return -1;
    int n = 0;
    for (char *s = list, *end; *s; s = end) {
        long pid = strtol(s, &end, 10);
        if (end == s)
            break;
        if (pid > 0) {
            n++;
            if (sig)
                kill((pid_t)pid, sig);
        }
    }
    free(list);
    return n;
}

/* Sends sig to the whole tree. The group kill is only used while the
 * root is unreaped (the group id is its pid, which is then reserved). */
static void tree_signal(proc *p, int sig)
{
    if (!p->reaped)
        kill(-p->pid, sig);
    if (p->cg) {
        if (sig == SIGKILL) {
            cg_dir_kill(p->cg->path);
            p->cg->killed = 1;
        } else
            cg_signal(p, sig);
    } else {
        scan_signal(p, sig);
    }
}

/* How many processes of the tree still run (0 = none), signalling them
 * with sig on the way (0 = just count). */
static int tree_left(proc *p, int sig)
{
    int left;
    if (p->cg) {
        left = cg_slot_populated(p->cg);
        if (left < 0) /* cannot read it: fall back to a scan */
            left = scan_signal(p, sig);
        else if (left > 0 && sig)
            tree_signal(p, sig);
        else if (left == 0 && p->leftovers)
            /* "populated 0" comes as the last ones exit, a moment before
             * they are reparented to us: wait until they are zombies. */
            left = scan_signal(p, 0);
    } else {
        if (sig && !p->reaped)
            kill(-p->pid, sig);
        left = scan_signal(p, sig);
    }
    return left < 0 ? 0 : left;
}

/* ---- pipes ----------------------------------------------------------- */

/* Reads what the pipe holds (at most max_reads chunks); closes it at EOF
 * or on error. Returns PROC_EV_OUTPUT when bytes came. */
static int drain(proc *p, int s, int max_reads)
{
    int ev = 0;
    for (int i = 0; i < max_reads && p->fd[s] >= 0; i++) {
        ssize_t r = read(p->fd[s], rbuf, sizeof rbuf);
        if (r > 0) {
            outbuf_append(&p->ob[s], rbuf, (size_t)r);
            if (p->on_output)
                p->on_output(p->ud, s, rbuf, (size_t)r);
            ev = PROC_EV_OUTPUT;
            if ((size_t)r < sizeof rbuf)
                break; /* the pipe was emptied */
            continue;
        }
        if (r < 0 && errno == EINTR) {
            i--;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        close_fd(&p->fd[s]); /* EOF, or an error we cannot do better with */
    }
    return ev;
}

static void stdin_close(proc *p)
{
    close_fd(&p->fd[0]);
    free(p->in_buf);
    p->in_buf = NULL;
    p->in_len = p->in_off = 0;
}

/* Writes what the pipe takes; closes it when all is written or the
 * reader is gone (EPIPE: proc_global_setup ignores SIGPIPE). */
static void feed_stdin(proc *p, const char *data, size_t len, size_t *off)
{
    while (*off < len) {
        ssize_t w = write(p->fd[0], data + *off, len - *off);
        if (w > 0) {
            *off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        break; /* EPIPE and the like: the command does not want it */
    }
    stdin_close(p);
}

/* ---- state machine --------------------------------------------------- */

static void finalize(proc *p)
{
    for (int s = PROC_STDOUT; s <= PROC_STDERR; s++) {
        if (p->fd[s] >= 0)
            drain(p, s, 16); /* writers are dead: what is left, then EOF */
        close_fd(&p->fd[s]);
    }
    stdin_close(p);
    reap_root(p);
    sweep_strays();
    if (p->cg) {
        cg_slot_put(p->cg);
        p->cg = NULL;
    }
    p->state = ST_DONE;
    p->news |= PROC_EV_DONE;
}

static void cleanup_step(proc *p, int64_t now)
{
    /* While terminating within the grace, leftovers are waited for, not
     * killed; after it (or on a normal end), they get SIGKILL. */
    int grace = p->terminating && !p->hard_killed && now < p->kill_at_ms;
    int left = tree_left(p, grace ? 0 : SIGKILL);
    if (left > 0 && !grace && !p->hard_killed) {
        p->hard_killed = 1;
        p->hard_ms = now;
    }
    /* Give up on what SIGKILL cannot end (D state) after a while. */
    if (left > 0 && (grace || now - p->hard_ms < CLEANUP_GIVEUP_MS)) {
        p->leftovers = 1;
        int step = 1 << (p->cleanup_round < 5 ? p->cleanup_round : 5);
        p->cleanup_round++;
        p->cleanup_next_ms = now + step;
        if (grace && p->cleanup_next_ms > p->kill_at_ms)
            p->cleanup_next_ms = p->kill_at_ms;
        return;
    }
    finalize(p);
}

static void start_cleanup(proc *p, int64_t now)
{
    p->state = ST_CLEANUP;
    p->cleanup_round = 0;
    cleanup_step(p, now);
}

static int64_t linger_deadline(const proc *p)
{
    if (p->terminating && !p->hard_killed)
        return p->kill_at_ms;
    int64_t base = p->exit_ms;
    if (p->hard_killed && p->hard_ms > base)
        base = p->hard_ms;
    return base + p->linger_ms;
}

/* Without pidfds: checks the root now and then (1, 2, 4 ... 50 ms). */
static void poll_root(proc *p, int64_t now)
{
    reap_root(p);
    if (p->reaped) {
        sweep_strays();
        return;
    }
    p->poll_step_ms = p->poll_step_ms * 2 > 50 ? 50 : p->poll_step_ms * 2;
    p->poll_at_ms = now + p->poll_step_ms;
}

static void advance(proc *p, int64_t now)
{
    if (p->state == ST_DONE)
        return;
    if (p->pidfd < 0 && !p->reaped && now >= p->poll_at_ms)
        poll_root(p, now);
    if (p->terminating && !p->hard_killed && now >= p->kill_at_ms) {
        tree_signal(p, SIGKILL);
        p->hard_killed = 1;
        p->hard_ms = now;
    }
    if (p->state == ST_RUNNING && p->reaped) {
        if ((p->fd[PROC_STDOUT] < 0 && p->fd[PROC_STDERR] < 0) || now >= linger_deadline(p))
            start_cleanup(p, now);
    } else if (p->state == ST_CLEANUP && now >= p->cleanup_next_ms) {
        cleanup_step(p, now);
    }
}

static int take_news(proc *p)
{
    int ev = p->news;
    p->news = 0;
    return ev;
}

/* ---- spawn ----------------------------------------------------------- */

enum { STAGE_SETUP = 1, STAGE_CGROUP, STAGE_CRED, STAGE_CWD, STAGE_EXEC };

/* What the child needs, all prepared by the parent: between the clone
 * and exec the child only makes system calls. It shares our memory until
 * exec (CLONE_VM, or vfork), and we are suspended until then: so it
 * reports a failure here, and we read it once we run again. */
struct child_ctx {
    const char *shell;
    char *const *argv;
    char *const *envp;
    int in, out, err; /* the child's ends, all >= 3 */
    int cgfd;         /* cgroup.procs to join, or -1 (none, or joined by clone3) */
    const char *cwd;
    uid_t uid;
    gid_t gid;
    pid_t parent;
    int nlimits;
    const struct proc_limit *limits;
    volatile int fail_stage; /* set by a child that could not exec */
    volatile int fail_errno;
    int report;       /* vfork only: write end of a pipe (O_CLOEXEC, >= 3) that
                         says the same, for where vfork is a fork (valgrind) */
};

CHILD_NO_ASAN __attribute__((noreturn)) static void child_fail(struct child_ctx *c, int stage)
{
    c->fail_errno = errno;
    c->fail_stage = stage;
    if (c->report >= 0) {
        int msg[2] = {stage, c->fail_errno};
        ssize_t r = write(c->report, msg, sizeof msg);
        (void)r;
    }
    _exit(127);
}

CHILD_NO_ASAN __attribute__((noreturn, noinline)) static void child_exec(struct child_ctx *c)
{
    /* Signals are all blocked (by the parent). Give every one its default
     * action (handlers are the worker's; SIGPIPE's SIG_IGN would survive
     * exec), then unblock them just before exec. Our sighand is our own:
     * the clone shares memory, not signal dispositions. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &dfl, NULL); /* EINVAL for libc's own: fine */
    if (setpgid(0, 0) < 0)
        child_fail(c, STAGE_SETUP);
    if (c->cgfd >= 0 && write(c->cgfd, "0", 1) != 1)
        child_fail(c, STAGE_CGROUP);
    if (dup2(c->in, 0) < 0 || dup2(c->out, 1) < 0 || dup2(c->err, 2) < 0)
        child_fail(c, STAGE_SETUP);
    /* Raw system calls: libc's set*id would try to sync other threads. */
    if (c->gid != (gid_t)-1) {
        if (syscall(SYS_setgroups, 1, &c->gid) < 0 || syscall(SYS_setgid, c->gid) < 0)
            child_fail(c, STAGE_CRED);
    }
    /* Limits before the uid change: lowering a hard limit needs no
     * privilege, raising one would. */
    for (int i = 0; i < c->nlimits; i++) {
        struct rlimit rl = {(rlim_t)c->limits[i].value, (rlim_t)c->limits[i].value};
        if (syscall(SYS_setrlimit, c->limits[i].resource, &rl) < 0)
            child_fail(c, STAGE_CRED);
    }
    if (c->uid != (uid_t)-1 && syscall(SYS_setuid, c->uid) < 0)
        child_fail(c, STAGE_CRED);
    if (c->cwd && chdir(c->cwd) < 0)
        child_fail(c, STAGE_CWD);
    /* Die with the worker (set after the id change, which clears it). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != c->parent)
        _exit(127);
    /* Closed now, not at exec: exec wakes us (the parent) before it
     * closes the O_CLOEXEC ones, and a pipe or pidfd of another proc still
     * open here for that moment would outlive our close() of it, and with
     * it its registration in the worker's epoll (an event for a freed
     * watch). Also covers fds others opened without O_CLOEXEC. */
    unsigned rep = c->report >= 3 ? (unsigned)c->report : ~0U;
    if ((rep > 3 && syscall(SYS_close_range, 3U, rep - 1, 0U) < 0) ||
        (rep < ~0U && syscall(SYS_close_range, rep + 1, ~0U, 0U) < 0))
        syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(c->shell, c->argv, c->envp);
    child_fail(c, STAGE_EXEC);
}

#if defined(__x86_64__) && defined(SYS_clone3)
/* clone3's arguments, up to the cgroup (CLONE_ARGS_SIZE_VER2), spelled
 * out so that older kernel headers do. */
struct bx_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    uint64_t set_tid, set_tid_size, cgroup;
};

/* clone3 sharing our memory: the child starts on its own stack (args)
 * and runs child_exec(c), which never returns; the parent gets the pid or
 * -errno. libc has no wrapper that takes clone3's arguments and a
 * function, hence the few instructions. */
__attribute__((noinline)) static long clone3_exec(struct bx_clone_args *args, struct child_ctx *c)
{
    long ret;
    register void (*fn)(struct child_ctx *) __asm__("r12") = child_exec;
    register struct child_ctx *arg __asm__("r13") = c;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     /* the child, on the new stack: an outermost frame */
                     "xor %%ebp, %%ebp\n\t"
                     "and $-16, %%rsp\n\t"
                     "mov %%r13, %%rdi\n\t"
                     "call *%%r12\n\t"
                     "ud2\n"
                     "1:"
                     : "=a"(ret)
                     : "0"((long)SYS_clone3), "D"(args), "S"(sizeof *args), "r"(fn), "r"(arg)
                     : "rcx", "r11", "memory");
    return ret;
}

/* The child in the job's cgroup from its first instruction (no migration
 * of a running process: that waits for an RCU grace period, milliseconds
 * on a busy machine, while we are suspended) and its pidfd with it.
 * The pid, -1 + errno, or -2 when clone3 cannot do it here. */
static pid_t spawn_clone3(struct child_ctx *c, int cg_dir, int *pidfd)
{
    if (G.no_clone3)
        return -2;
    if (!G.clone_stack) {
        void *st = mmap(NULL, CLONE_STACK, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (st == MAP_FAILED)
            return -2;
        G.clone_stack = st;
    }
    /* a child that _exit()ed left its frames' ASan redzones poisoned */
    CLONE_STACK_CLEAN(G.clone_stack, CLONE_STACK);
    struct bx_clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD;
    a.pidfd = (uint64_t)(uintptr_t)pidfd;
    /* SIGCHLD, or the root would be a "clone child" that waitid without
     * __WALL never sees */
    a.exit_signal = SIGCHLD;
    a.stack = (uint64_t)(uintptr_t)G.clone_stack;
    a.stack_size = CLONE_STACK;
    if (cg_dir >= 0) {
        a.flags |= BX_CLONE_INTO_CGROUP;
        a.cgroup = (uint64_t)cg_dir;
    }
    long r = clone3_exec(&a, c);
    if (r >= 0)
        return (pid_t)r;
    /* ENOSYS: no clone3 (Linux < 5.3, valgrind); E2BIG or EINVAL: no
     * CLONE_INTO_CGROUP (< 5.7). Then never again. */
    if (r == -ENOSYS || r == -E2BIG || r == -EINVAL) {
        G.no_clone3 = 1;
        return -2;
    }
    errno = (int)-r;
    return -1;
}
#else
static pid_t spawn_clone3(struct child_ctx *c, int cg_dir, int *pidfd)
{
    (void)c;
    (void)cg_dir;
    (void)pidfd;
    return -2;
}
#endif

/* vfork + child_exec. Kept apart so that no variable of the caller lives
 * across vfork. Returns the pid or -1 + errno. */
__attribute__((noinline)) static pid_t spawn_vfork(struct child_ctx *c)
{
    pid_t pid = vfork();
    if (pid == 0)
        child_exec(c);
    return pid;
}

/* Starts the child with every signal blocked around it (a handler of the
 * worker must not run in the child): clone3 into the cgroup when it can,
 * else vfork and the child joins the cgroup itself. *pidfd is the root's
 * pidfd, or -1 when the caller must open one. Returns the pid, or -1 +
 * errno. */
static pid_t spawn_child(struct child_ctx *c, const cgslot *cg, int *pidfd)
{
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    *pidfd = -1;
    c->cgfd = -1;
    c->report = -1;
    pid_t pid = spawn_clone3(c, cg ? cg->dir_fd : -1, pidfd);
    if (pid == -2) {
        int rep[2];
        *pidfd = -1;
        c->cgfd = cg ? cg->procs_fd : -1;
        if (pipe2(rep, O_CLOEXEC) < 0)
            goto out;
        rep[1] = fd_above_stdio(rep[1]);
        c->report = rep[1];
        pid = rep[1] < 0 ? -1 : spawn_vfork(c);
        int e = errno;
        close_fd(&rep[1]);
        c->report = -1;
        if (pid > 0) {
            /* EOF once exec succeeded; stage and errno when it did not */
            int msg[2];
            ssize_t r;
            do
                r = read(rep[0], msg, sizeof msg);
            while (r < 0 && errno == EINTR);
            if (r == (ssize_t)sizeof msg) {
                c->fail_errno = msg[1];
                c->fail_stage = msg[0];
            }
        }
        close_fd(&rep[0]);
        errno = e;
    }
out:;
    int e = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return pid;
}

/* The child's environment: marker first, then envp without any other
 * BX_JOB_ID, or the minimal one. One malloc'd block (pointers, then the
 * strings we made); envp's strings are borrowed. */
static char **build_env(const proc_spec *s, const char *marker)
{
    static const char path[] = "PATH=/usr/local/bin:/usr/bin:/bin";
    static const char lang[] = "LANG=C.UTF-8";
    if (s->envp) {
        size_t n = 0;
        while (s->envp[n])
            n++;
        char **env = malloc((n + 2) * sizeof *env);
        if (!env)
            return NULL;
        size_t k = 0;
        env[k++] = (char *)marker;
        for (size_t i = 0; i < n; i++)
            if (strncmp(s->envp[i], JOB_MARKER, sizeof JOB_MARKER - 1) != 0)
                env[k++] = s->envp[i];
        env[k] = NULL;
        return env;
    }
    const char *home = NULL;
    char pwbuf[4096];
    struct passwd pw, *pwp = NULL;
    if (s->uid != (uid_t)-1) {
        if (getpwuid_r(s->uid, &pw, pwbuf, sizeof pwbuf, &pwp) == 0 && pwp)
            home = pw.pw_dir;
    } else {
        home = getenv("HOME");
    }
    if (!home || !*home)
        home = "/";
    size_t hl = strlen(home);
    char **env = malloc(5 * sizeof *env + 5 + hl + 1);
    if (!env)
        return NULL;
    char *h = (char *)(env + 5);
    memcpy(h, "HOME=", 5);
    memcpy(h + 5, home, hl + 1);
    env[0] = (char *)marker;
    env[1] = (char *)path;
    env[2] = h;
    env[3] = (char *)lang;
    env[4] = NULL;
    return env;
}

static void proc_destroy(proc *p)
{
    for (int s = 0; s < 3; s++)
        close_fd(&p->fd[s]);
    close_fd(&p->pidfd);
    outbuf_release(&p->ob[PROC_STDOUT]);
    outbuf_release(&p->ob[PROC_STDERR]);
    free(p->in_buf);
    free(p->marker);
    if (p->cg)
        cg_slot_put(p->cg);
    free(p);
}

proc *proc_spawn_ex(const proc_spec *spec, proc_fail *why, char *err, size_t errlen)
{
    proc_fail fail = PROC_FAIL_SYSTEM;
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    int child_in = -1, pidfd = -1, e = 0;
    char **envp = NULL;
    proc *p = NULL;
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';

    if (!G.inited && proc_global_setup(PROC_TREE_AUTO, err, errlen) < 0)
        goto fail;
    if (!spec || !spec->shell || !spec->command || !*spec->shell) {
        fail = PROC_FAIL_SPEC;
        e = EINVAL;
        msgf(err, errlen, "spawn: no shell or no command");
        goto fail;
    }
    if (spec->uid != (uid_t)-1 && spec->gid == (gid_t)-1) {
        fail = PROC_FAIL_SPEC;
        e = EINVAL;
        msgf(err, errlen, "spawn: uid %ld given without a gid", (long)spec->uid);
        goto fail;
    }
    /* A cwd that is missing, not a directory or not accessible is found
     * by the child's chdir (STAGE_CWD), as its user sees it. */

    p = calloc(1, sizeof *p);
    if (!p)
        goto sysfail;
    p->fd[0] = p->fd[1] = p->fd[2] = p->pidfd = -1;
    p->pid = -1;
    outbuf_init(&p->ob[PROC_STDOUT], spec->max_output);
    outbuf_init(&p->ob[PROC_STDERR], spec->max_output);
    p->on_output = spec->on_output;
    p->ud = spec->ud;
    p->linger_ms = spec->linger_ms > 0 ? spec->linger_ms : DEFAULT_LINGER_MS;
    if (spec->job_id) {
        size_t l = strlen(spec->job_id);
        p->marker = malloc(sizeof JOB_MARKER + l);
        if (p->marker) {
            memcpy(p->marker, JOB_MARKER, sizeof JOB_MARKER - 1);
            memcpy(p->marker + sizeof JOB_MARKER - 1, spec->job_id, l + 1);
        }
    } else if (asprintf(&p->marker, JOB_MARKER "proc-%ld-%lu", (long)G.self, ++G.seq) < 0) {
        p->marker = NULL;
    }
    if (!p->marker)
        goto sysfail;
    envp = build_env(spec, p->marker);
    if (!envp)
        goto sysfail;

    if (pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0)
        goto sysfail;
    if (spec->stdin_data && spec->stdin_len > 0) {
        if (pipe2(pin, O_CLOEXEC) < 0)
            goto sysfail;
        pin[0] = fd_above_stdio(pin[0]);
        child_in = pin[0];
        if (child_in < 0 || set_nonblock(pin[1]) < 0)
            goto sysfail;
    } else {
        child_in = G.devnull;
    }
    pout[1] = fd_above_stdio(pout[1]);
    perr[1] = fd_above_stdio(perr[1]);
    if (pout[1] < 0 || perr[1] < 0)
        goto sysfail;
    if (set_nonblock(pout[0]) < 0 || set_nonblock(perr[0]) < 0)
        goto sysfail;

    p->tree = PROC_TREE_SCAN;
    if (G.tree == PROC_TREE_CGROUP && G.cg_base) {
        p->cg = cg_slot_get(); /* NULL: this proc falls back to scan mode */
        if (p->cg)
            p->tree = PROC_TREE_CGROUP;
    }

    char *argv[] = {(char *)spec->shell, (char *)"-c", (char *)spec->command, NULL};
    struct child_ctx ctx = {
        .shell = spec->shell, .argv = argv, .envp = envp,
        .in = child_in, .out = pout[1], .err = perr[1], .cgfd = -1,
        .cwd = spec->cwd, .uid = spec->uid, .gid = spec->gid,
        .parent = G.self,
        .nlimits = spec->nlimits > 8 ? 8 : spec->nlimits, .limits = spec->limits,
    };
    pid_t pid = spawn_child(&ctx, p->cg, &pidfd);
    if (pid < 0) {
        e = errno;
        msgf(err, errlen, "spawn: %s", strerror(e));
        goto fail;
    }
    close_fd(&pout[1]);
    close_fd(&perr[1]);
    close_fd(&pin[0]);

    /* We run again once the child has exec'd, or exited after saying why
     * it could not. */
    if (ctx.fail_stage) {
        close_fd(&pidfd);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        e = ctx.fail_errno;
        switch (ctx.fail_stage) {
        case STAGE_CWD:
            fail = PROC_FAIL_CWD;
            msgf(err, errlen, "cwd '%s': %s", spec->cwd, strerror(e));
            break;
        case STAGE_CRED:
            fail = PROC_FAIL_CRED;
            msgf(err, errlen, "cannot run as uid %ld gid %ld: %s", (long)spec->uid,
                     (long)spec->gid, strerror(e));
            break;
        case STAGE_EXEC:
            fail = PROC_FAIL_EXEC;
            msgf(err, errlen, "cannot run shell '%s': %s", spec->shell, strerror(e));
            break;
        case STAGE_CGROUP:
            msgf(err, errlen, "cannot join cgroup '%s': %s", p->cg->path, strerror(e));
            break;
        default:
            msgf(err, errlen, "spawn: child setup: %s", strerror(e));
        }
        goto fail;
    }

    /* Our unreaped child: its pid cannot be reused, so this is exact. */
    p->pidfd = pidfd >= 0 ? pidfd : G.no_pidfd ? -1 : (int)syscall(SYS_pidfd_open, pid, 0);
    if (p->pidfd < 0 && (G.no_pidfd || errno == ENOSYS)) {
        G.no_pidfd = 1;
        p->poll_step_ms = 1;
        p->poll_at_ms = mono_ms() + 1;
    } else if (p->pidfd < 0) {
        e = errno;
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        msgf(err, errlen, "spawn: pidfd_open: %s", strerror(e));
        goto fail;
    }
    if (p->pidfd >= 0)
        p->pidfd = fd_above_stdio(p->pidfd);
    p->pid = pid;
    p->fd[PROC_STDOUT] = pout[0];
    p->fd[PROC_STDERR] = perr[0];
    p->fd[0] = pin[1];
    p->state = ST_RUNNING;
    p->spawn_ms = mono_ms();
    registry_add(p);
    free(envp);

    if (p->fd[0] >= 0) {
        size_t off = 0;
        feed_stdin(p, spec->stdin_data, spec->stdin_len, &off);
        if (p->fd[0] >= 0) {
            p->in_len = spec->stdin_len - off;
            p->in_buf = malloc(p->in_len);
            if (!p->in_buf)
                stdin_close(p); /* the command gets a short input */
            else
                memcpy(p->in_buf, spec->stdin_data + off, p->in_len);
        }
    }
    if (why)
        *why = PROC_FAIL_NONE;
    return p;

sysfail:
    e = errno;
    msgf(err, errlen, "spawn: %s", strerror(e));
fail:
    close_fd(&pin[0]);
    close_fd(&pin[1]);
    close_fd(&pout[0]);
    close_fd(&pout[1]);
    close_fd(&perr[0]);
    close_fd(&perr[1]);
    free(envp);
    if (p)
        proc_destroy(p);
    if (why)
        *why = fail;
    errno = e ? e : EINVAL;
    return NULL;
}

proc *proc_spawn(const proc_spec *spec, char *err, size_t errlen)
{
    return proc_spawn_ex(spec, NULL, err, errlen);
}

/* ---- the loop's side ------------------------------------------------- */

int proc_fds(const proc *p, proc_watch out[PROC_MAX_FDS])
{
    int n = 0;
    if (p->fd[PROC_STDOUT] >= 0)
        out[n++] = (proc_watch){p->fd[PROC_STDOUT], EPOLLIN};
    if (p->fd[PROC_STDERR] >= 0)
        out[n++] = (proc_watch){p->fd[PROC_STDERR], EPOLLIN};
    if (p->pidfd >= 0)
        out[n++] = (proc_watch){p->pidfd, EPOLLIN};
    if (p->fd[0] >= 0)
        out[n++] = (proc_watch){p->fd[0], EPOLLOUT};
    return n;
}

int proc_on_ready(proc *p, int fd, uint32_t events)
{
    (void)events; /* read/write tell EOF, errors and EPIPE themselves */
    if (p->state == ST_DONE)
        return take_news(p);
    int all = fd < 0;
    if (p->fd[PROC_STDOUT] >= 0 && (all || fd == p->fd[PROC_STDOUT]))
        p->news |= drain(p, PROC_STDOUT, READS_PER_CALL);
    if (p->fd[PROC_STDERR] >= 0 && (all || fd == p->fd[PROC_STDERR]))
        p->news |= drain(p, PROC_STDERR, READS_PER_CALL);
    if (p->fd[0] >= 0 && (all || fd == p->fd[0]))
        feed_stdin(p, p->in_buf, p->in_len, &p->in_off);
    if (p->pidfd >= 0 && (all || fd == p->pidfd)) {
        reap_root(p);
        if (p->reaped)
            sweep_strays();
    }
    int64_t now = mono_ms();
    if (p->pidfd < 0 && !p->reaped && p->fd[PROC_STDOUT] < 0 && p->fd[PROC_STDERR] < 0 &&
        p->poll_step_ms > 1) {
        /* Without pidfds: both pipes just closed, the exit is near. */
        p->poll_step_ms = 1;
        p->poll_at_ms = now;
    }
    advance(p, now);
    return take_news(p);
}

int64_t proc_next_deadline_ms(const proc *p)
{
    if (p->state == ST_DONE)
        return -1;
    if (p->news)
        return 0;
    int64_t d = -1;
    if (p->terminating && !p->hard_killed)
        d = p->kill_at_ms;
    if (p->pidfd < 0 && !p->reaped && (d < 0 || p->poll_at_ms < d))
        d = p->poll_at_ms;
    if (p->state == ST_RUNNING && p->reaped) {
        int64_t l = linger_deadline(p);
        if (d < 0 || l < d)
            d = l;
    } else if (p->state == ST_CLEANUP) {
        if (d < 0 || p->cleanup_next_ms < d)
            d = p->cleanup_next_ms;
    }
    return d;
}

int proc_tick(proc *p, int64_t now_ms)
{
    advance(p, now_ms);
    return take_news(p);
}

int proc_done(const proc *p)
{
    return p->state == ST_DONE;
}

int proc_kill(proc *p, int sig)
{
    if (p->state == ST_DONE)
        return 0;
    if (sig == SIGKILL) {
        p->terminating = 1;
        if (!p->hard_killed) {
            p->hard_killed = 1;
            p->hard_ms = mono_ms();
        }
    }
    tree_signal(p, sig);
    return 0;
}

void proc_terminate(proc *p, int grace_ms)
{
    if (p->state == ST_DONE || p->terminating)
        return;
    int64_t now = mono_ms();
    p->terminating = 1;
    p->kill_at_ms = now + (grace_ms > 0 ? grace_ms : 0);
    if (grace_ms <= 0) {
        proc_kill(p, SIGKILL);
        return;
    }
    tree_signal(p, SIGTERM);
    tree_signal(p, SIGCONT); /* a stopped process acts on SIGTERM only once continued */
}

int proc_terminated(const proc *p)
{
    return p->terminating;
}

int proc_had_leftovers(const proc *p)
{
    return p->leftovers;
}

int proc_status(const proc *p, int *exit_code, int *signal, int *core_dumped)
{
    if (!p->reaped)
        return -1;
    int code = -1, sig = 0, core = 0;
    if (p->wcode == CLD_EXITED) {
        code = p->wstatus;
    } else {
        sig = p->wstatus;
        core = p->wcode == CLD_DUMPED;
    }
    if (exit_code)
        *exit_code = code;
    if (signal)
        *signal = sig;
    if (core_dumped)
        *core_dumped = core;
    return 0;
}

const outbuf *proc_outbuf(const proc *p, int stream)
{
    return stream == PROC_STDERR ? &p->ob[PROC_STDERR] : &p->ob[PROC_STDOUT];
}

int proc_output(const proc *p, int stream, char **kept, size_t *kept_len, uint64_t *total,
                long *cut_at)
{
    return outbuf_result(proc_outbuf(p, stream), kept, kept_len, total, cut_at);
}

pid_t proc_pid(const proc *p)
{
    return p->pid;
}

const char *proc_job_id(const proc *p)
{
    return p->marker + sizeof JOB_MARKER - 1;
}

proc_tree proc_tree_mode(const proc *p)
{
    return p->tree;
}

/* Ends p now, blocking: SIGKILL to the tree, wait for the root and the
 * leftovers (bounded by CLEANUP_GIVEUP_MS), reap. */
static void finish_sync(proc *p)
{
    if (!p->terminating || !p->hard_killed)
        proc_kill(p, SIGKILL);
    for (int i = 0; i < 5000 && !p->reaped; i++) {
        if (p->pidfd >= 0) {
            struct pollfd pf = {p->pidfd, POLLIN, 0};
            poll(&pf, 1, 100);
            i += 99;
        } else {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        reap_root(p);
    }
    int64_t now = mono_ms();
    if (p->state == ST_RUNNING)
        start_cleanup(p, now);
    while (p->state == ST_CLEANUP) {
        now = mono_ms();
        if (p->cleanup_next_ms > now) {
            int64_t d = p->cleanup_next_ms - now;
            struct timespec ts = {d / 1000, (d % 1000) * 1000000};
            nanosleep(&ts, NULL);
            now = mono_ms();
        }
        cleanup_step(p, now);
    }
}

void proc_free(proc *p)
{
    if (!p)
        return;
    if (p->state != ST_DONE)
        finish_sync(p);
    /* also when we killed the tree: all of it may have been gone at the
     * first look, its members not yet reparented to us */
    int stragglers = p->leftovers || p->hard_killed;
    registry_del(p);
    proc_destroy(p);
    /* An empty cgroup says the tree is dead, not that its members
     * reparented to us are reaped yet: a killed leftover turns zombie a
     * moment after it leaves the cgroup. */
    for (int i = 0; stragglers && i < 5; i++) {
        usleep(1000); /* only when the job left processes behind */
        proc_global_reap();
    }
}
