/* jobdir — the private directories jobs run in; see jobdir.h. */
#include "jobdir.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define NAME_PREFIX "bx-job-"
#define OWN_PREFIX "bx-w-" /* bx-w-<pid>-<start time>@<host>: one worker's */

struct jobdirs {
    char *base;  /* the worker's own directory, under the configured one */
    int made;    /* base exists (made by us) */
    uid_t uid;   /* (uid_t)-1: the worker's own, no chown */
    gid_t gid;
    uid_t euid;  /* the worker's, who owns the idle ones */
    gid_t egid;
    int keep;    /* at most this many idle directories */
    int n;
    char **idle; /* [0..n): empty, ours (see jobdir_put) */
};

__attribute__((format(printf, 3, 4))) static void msgf(char *buf, size_t n, const char *fmt,
                                                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* The start time of process pid (clock ticks since boot), or 0. With
 * the pid it names a process: a pid is reused, the pair is not. */
static unsigned long long start_time(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the name may hold spaces and ')' */
    unsigned long long t = 0;
    /* after ")": state, then 18 fields, then the start time (field 22) */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                            "%*d %*d %llu", &t) != 1)
        return 0;
    return t;
}

static void host_name(char *out, size_t n)
{
    if (gethostname(out, n) < 0 || !out[0] || strchr(out, '/'))
        snprintf(out, n, "localhost");
    out[n - 1] = 0;
}

jobdirs *jobdirs_new(const char *base, uid_t uid, gid_t gid, int keep)
{
    jobdirs *jd = calloc(1, sizeof *jd);
    if (!jd)
        return NULL;
    char host[256], own[4096];
    host_name(host, sizeof host);
    long pid = (long)getpid();
    snprintf(own, sizeof own, "%s/" OWN_PREFIX "%ld-%llu@%s", base, pid, start_time(pid), host);
    jd->base = strdup(own);
    jd->idle = calloc(keep > 0 ? (size_t)keep : 1, sizeof *jd->idle);
    if (!jd->base || !jd->idle) {
        jobdirs_free(jd);
        return NULL;
    }
    jd->uid = uid;
    jd->gid = gid;
    jd->euid = geteuid();
    jd->egid = getegid();
    jd->keep = keep > 0 ? keep : 0;
    return jd;
}

/* nftw has no user pointer: what the callbacks report. One thread. */
static int rm_errno;

/* Deletes everything nftw visits below its root (level 0 is kept);
 * FTW_PHYS, so a symlink planted by the command is deleted, never
 * followed. Goes on after an error, remembering the first. */
static int rm_below(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    if (ftw->level == 0)
        return 0;
    int r = flag == FTW_DP || flag == FTW_DNR ? rmdir(path) : unlink(path);
    if (r < 0 && !rm_errno)
        rm_errno = errno;
    return 0;
}

static int rm_all(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int r = flag == FTW_DP || flag == FTW_DNR ? rmdir(path) : unlink(path);
    if (r < 0 && !rm_errno)
        rm_errno = errno;
    return 0;
}

/* Deletes path and what is in it. 0 / -1 + errno. */
static int remove_tree(const char *path)
{
    rm_errno = 0;
    if (nftw(path, rm_all, 16, FTW_DEPTH | FTW_PHYS) < 0)
        return -1;
    errno = rm_errno;
    return rm_errno ? -1 : 0;
}

/* 1 when the directory open at fd has nothing but . and .., 0 when it has
 * more, -1 when it cannot be read. */
static int dir_empty(int fd)
{
    char buf[1024];
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n < 0)
            return -1;
        if (n == 0)
            return 1;
        for (long off = 0; off < n;) {
            /* struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char *name = buf + off + 19;
            if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
                return 0;
            off += reclen;
        }
    }
}

/* A new unpredictable name under jd->base; 0, or -1 + errno. */
static int fresh_name(const jobdirs *jd, char *out, size_t outlen)
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char rnd[6];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return -1;
    char suffix[sizeof rnd + 1];
    for (size_t i = 0; i < sizeof rnd; i++)
        suffix[i] = abc[rnd[i] % (sizeof abc - 1)];
    suffix[sizeof rnd] = '\0';
    int w = snprintf(out, outlen, "%s/" NAME_PREFIX "%s", jd->base, suffix);
    if (w < 0 || (size_t)w >= outlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Moves *path to a name no job had; *path is replaced. 0 / -1 + errno. */
static int rename_fresh(const jobdirs *jd, char **path)
{
    char to[4096];
    for (int tries = 0; tries < 8; tries++) {
        if (fresh_name(jd, to, sizeof to) < 0)
            return -1;
        if (syscall(SYS_renameat2, AT_FDCWD, *path, AT_FDCWD, to, RENAME_NOREPLACE) == 0) {
            char *p = strdup(to);
            if (!p) {
                remove_tree(to);
                errno = ENOMEM;
                return -1;
            }
            free(*path);
            *path = p;
            return 0;
        }
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

/* Makes the worker's own directory: traversable by the jobs' user (their
 * directories are in it), listable by the worker alone. One left by a
 * process of the same pid and start time (after a reboot) is ours. */
static int make_own(jobdirs *jd, char *err, size_t errlen)
{
    if (mkdir(jd->base, 0711) < 0) {
        struct stat st;
        if (errno != EEXIST || lstat(jd->base, &st) < 0 || !S_ISDIR(st.st_mode) ||
            st.st_uid != jd->euid) {
            msgf(err, errlen, "job directory '%s': %s", jd->base,
                 errno == EEXIST ? "exists and is not ours" : strerror(errno));
            return -1;
        }
        rm_errno = 0;
        nftw(jd->base, rm_below, 16, FTW_DEPTH | FTW_PHYS);
    }
    if (chmod(jd->base, 0711) < 0) {
        msgf(err, errlen, "job directory '%s': %s", jd->base, strerror(errno));
        return -1;
    }
    jd->made = 1;
    return 0;
}

char *jobdir_get(jobdirs *jd, char *err, size_t errlen)
{
    if (!jd->made && make_own(jd, err, errlen) < 0)
        return NULL;
    while (jd->n > 0) {
        char *p = jd->idle[--jd->n];
        /* idle, it was the worker's (see jobdir_put): the job's user
         * could not have touched it */
        if (jd->uid == (uid_t)-1 || chown(p, jd->uid, jd->gid) == 0)
            return p;
        remove_tree(p);
        free(p);
    }
    char path[4096];
    int w = snprintf(path, sizeof path, "%s/" NAME_PREFIX "XXXXXX", jd->base);
    if (w < 0 || (size_t)w >= sizeof path) {
        errno = ENAMETOOLONG;
        msgf(err, errlen, "job directory under '%s': %s", jd->base, strerror(errno));
        return NULL;
    }
    if (!mkdtemp(path)) {
        msgf(err, errlen, "job directory under '%s': %s", jd->base, strerror(errno));
        return NULL;
    }
    if (jd->uid != (uid_t)-1 && chown(path, jd->uid, jd->gid) < 0) {
        int e = errno;
        msgf(err, errlen, "job directory '%s': %s", path, strerror(e));
        rmdir(path);
        errno = e;
        return NULL;
    }
    char *p = strdup(path);
    if (!p) {
        rmdir(path);
        msgf(err, errlen, "job directory: out of memory");
        errno = ENOMEM;
    }
    return p;
}

/* Empties path and takes it back from the job's user; 0 when it can be
 * kept: a directory (not a symlink), mode 0700, owned by that user, now
 * empty, and now the worker's. */
static int reclaim(const jobdirs *jd, const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    uid_t owner = jd->uid != (uid_t)-1 ? jd->uid : jd->euid;
    int ok = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700 &&
             st.st_uid == owner;
    if (ok && jd->uid != (uid_t)-1)
        /* first, so that nothing new can be made in it from now on */
        ok = fchown(fd, jd->euid, jd->egid) == 0;
    int empty = ok ? dir_empty(fd) : -1;
    if (empty == 0) {
        rm_errno = 0;
        if (nftw(path, rm_below, 16, FTW_DEPTH | FTW_PHYS) == 0 && !rm_errno) {
            lseek(fd, 0, SEEK_SET);
            empty = dir_empty(fd);
        }
    }
    close(fd);
    return empty == 1 ? 0 : -1;
}

int jobdir_put(jobdirs *jd, char *path, char *err, size_t errlen)
{
    if (!path)
        return 0;
    if (jd->n < jd->keep && reclaim(jd, path) == 0 && rename_fresh(jd, &path) == 0) {
        jd->idle[jd->n++] = path;
        return 0;
    }
    int r = remove_tree(path);
    if (r < 0)
        msgf(err, errlen, "job directory '%s' not removed: %s", path, strerror(errno));
    free(path);
    return r;
}

void jobdirs_free(jobdirs *jd)
{
    if (!jd)
        return;
    for (int i = 0; i < jd->n; i++) {
        remove_tree(jd->idle[i]);
        free(jd->idle[i]);
    }
    if (jd->made)
        rmdir(jd->base); /* a job's left over stays for the next sweep */
    free(jd->idle);
    free(jd->base);
    free(jd);
}

const char *jobdirs_dir(const jobdirs *jd) { return jd->base; }

int jobdirs_sweep(const char *base, char *err, size_t errlen)
{
    DIR *d = opendir(base);
    if (!d) {
        msgf(err, errlen, "'%s': %s", base, strerror(errno));
        return -1;
    }
    char host[256];
    host_name(host, sizeof host);
    long me = (long)getpid();
    uid_t euid = geteuid();
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid;
        unsigned long long start;
        int at = 0;
        if (sscanf(e->d_name, OWN_PREFIX "%ld-%llu@%n", &pid, &start, &at) != 2 || !at ||
            strcmp(e->d_name + at, host) != 0 || pid <= 0 || pid == me)
            continue;
        /* alive: the same process still runs (a reused pid has another
         * start time); another host's (a shared directory): not ours to judge */
        if (start_time(pid) == start)
            continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", base, e->d_name);
        if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != euid)
            continue;
        if (remove_tree(path) == 0)
            n++;
    }
    closedir(d);
    return n;
}
