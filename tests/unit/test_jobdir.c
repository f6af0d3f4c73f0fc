/* Unit tests of worker/jobdir: every job gets an empty private directory
 * under a name no job had; what a job left is deleted (never followed
 * through a symlink); a directory the job changed is not reused. As root,
 * the jobs' user is nobody, as the worker's default. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobdir.h"

static char base[PATH_MAX / 2];
static uid_t job_uid = (uid_t)-1;
static gid_t job_gid = (gid_t)-1;

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void touch(const char *dir, const char *name, const char *data)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(data, f);
    fclose(f);
    if (job_uid != (uid_t)-1)
        assert_int_equal(chown(p, job_uid, job_gid), 0);
}

/* An empty directory of the job's user, mode 0700, in the worker's own
 * directory under base. */
static void check_fresh(const char *dir)
{
    struct stat st;
    assert_int_equal(lstat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(st.st_uid, job_uid != (uid_t)-1 ? job_uid : geteuid());
    assert_int_equal(entries(dir), 0);
    assert_int_equal(strncmp(dir, base, strlen(base)), 0);
    assert_non_null(strstr(dir + strlen(base), "/bx-w-"));
    assert_non_null(strstr(dir + strlen(base), "/bx-job-"));
}

static void test_reused_under_a_new_name(void **state)
{
    (void)state;
    char err[256];
    jobdirs *jd = jobdirs_new(base, job_uid, job_gid, 2);
    assert_non_null(jd);
    char *a = jobdir_get(jd, err, sizeof err);
    assert_non_null(a);
    check_fresh(a);
    char *old = strdup(a);
    struct stat st1, st2;
    assert_int_equal(stat(a, &st1), 0);
    touch(a, "f", "x");
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/d", a);
    assert_int_equal(mkdir(sub, 0700), 0);
    touch(sub, "g", "y");
    assert_int_equal(jobdir_put(jd, a, err, sizeof err), 0);
    assert_int_equal(access(old, F_OK), -1); /* the name is gone */
    char *b = jobdir_get(jd, err, sizeof err);
    assert_non_null(b);
    check_fresh(b);
    assert_string_not_equal(b, old);
    assert_int_equal(stat(b, &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino); /* the same directory, emptied */
    assert_int_equal(jobdir_put(jd, b, err, sizeof err), 0);
    assert_int_equal(entries(jobdirs_dir(jd)), 1); /* one idle */
    jobdirs_free(jd);
    assert_int_equal(entries(base), 0); /* the worker's own went too */
    free(old);
}

/* A symlink the job planted is deleted, its target left alone. */
static void test_symlink_not_followed(void **state)
{
    (void)state;
    char err[256], outside[PATH_MAX / 2 + 16], link[PATH_MAX];
    snprintf(outside, sizeof outside, "%s.outside", base);
    assert_int_equal(mkdir(outside, 0755), 0);
    touch(outside, "keep", "k");
    jobdirs *jd = jobdirs_new(base, job_uid, job_gid, 2);
    char *a = jobdir_get(jd, err, sizeof err);
    assert_non_null(a);
    snprintf(link, sizeof link, "%s/l", a);
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(jobdir_put(jd, a, err, sizeof err), 0);
    assert_int_equal(entries(outside), 1);
    char *b = jobdir_get(jd, err, sizeof err);
    check_fresh(b);
    /* the job replaces its directory with a symlink: deleted, not followed */
    char *old = strdup(b);
    assert_int_equal(rmdir(b), 0);
    assert_int_equal(symlink(outside, b), 0);
    assert_int_equal(jobdir_put(jd, b, err, sizeof err), 0);
    assert_int_equal(access(old, F_OK), -1);
    assert_int_equal(entries(outside), 1);
    assert_int_equal(entries(jobdirs_dir(jd)), 0); /* nothing kept */
    jobdirs_free(jd);
    char keep[PATH_MAX];
    snprintf(keep, sizeof keep, "%s/keep", outside);
    unlink(keep);
    rmdir(outside);
    free(old);
}

/* A directory the job opened up is deleted, not handed to the next job. */
static void test_changed_mode_not_reused(void **state)
{
    (void)state;
    char err[256];
    jobdirs *jd = jobdirs_new(base, job_uid, job_gid, 2);
    char *a = jobdir_get(jd, err, sizeof err);
    char *old = strdup(a);
    assert_int_equal(chmod(a, 0777), 0);
    touch(a, "f", "x");
    assert_int_equal(jobdir_put(jd, a, err, sizeof err), 0);
    assert_int_equal(access(old, F_OK), -1);
    assert_int_equal(entries(jobdirs_dir(jd)), 0);
    char *b = jobdir_get(jd, err, sizeof err);
    check_fresh(b);
    assert_int_equal(jobdir_put(jd, b, err, sizeof err), 0);
    jobdirs_free(jd);
    free(old);
}

/* No more than keep idle; the rest deleted. */
static void test_keep_bounded(void **state)
{
    (void)state;
    char err[256], *d[4];
    jobdirs *jd = jobdirs_new(base, job_uid, job_gid, 2);
    for (int i = 0; i < 4; i++) {
        d[i] = jobdir_get(jd, err, sizeof err);
        check_fresh(d[i]);
    }
    assert_int_equal(entries(jobdirs_dir(jd)), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(jobdir_put(jd, d[i], err, sizeof err), 0);
    assert_int_equal(entries(jobdirs_dir(jd)), 2);
    if (job_uid != (uid_t)-1) {
        /* idle ones are the worker's until handed out */
        DIR *dh = opendir(jobdirs_dir(jd));
        struct dirent *e;
        while ((e = readdir(dh))) {
            if (e->d_name[0] == '.')
                continue;
            char p[PATH_MAX];
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", jobdirs_dir(jd), e->d_name);
            assert_int_equal(stat(p, &st), 0);
            assert_int_equal(st.st_uid, geteuid());
        }
        closedir(dh);
    }
    jobdirs_free(jd);
    assert_int_equal(entries(base), 0);
}

/* Field 22 of /proc/PID/stat: the process's start time. */
static unsigned long long proc_start(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    unsigned long long t = 0;
    const char *p = strrchr(buf, ')');
    assert_non_null(p);
    for (int field = 3; field <= 22 && p; field++) /* to the space before it */
        p = strchr(p + 1, ' ');
    assert_non_null(p);
    t = strtoull(p + 1, NULL, 10);
    assert_true(t > 1);
    return t;
}

/* The directory of a worker that was killed (its pid gone, or reused by
 * another process: another start time) is deleted by the next worker's
 * sweep, jobs' files and all; a live worker's, another host's, and
 * anything else under base are left alone. */
static void test_sweep_takes_what_dead_workers_left(void **state)
{
    (void)state;
    char err[256], host[256], p[PATH_MAX], dead[PATH_MAX], reused[PATH_MAX], other[PATH_MAX],
        live[PATH_MAX], own[PATH_MAX], plain[PATH_MAX];
    assert_int_equal(gethostname(host, sizeof host), 0);
    /* pid 1 lives; its start time is not 1 (it started before us) */
    snprintf(dead, sizeof dead, "%s/bx-w-%d-123@%s", base, INT_MAX - 7, host);
    snprintf(reused, sizeof reused, "%s/bx-w-1-1@%s", base, host);
    snprintf(other, sizeof other, "%s/bx-w-%d-123@another-host", base, INT_MAX - 7);
    snprintf(plain, sizeof plain, "%s/bx-job-notours", base);
    char alive[PATH_MAX]; /* pid 1 as it runs: a live worker's, to the sweep */
    snprintf(alive, sizeof alive, "%s/bx-w-1-%llu@%s", base, proc_start(1), host);
    const char *gone[] = {dead, reused}, *kept[] = {other, plain, alive};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(mkdir(gone[i], 0711), 0);
        snprintf(p, sizeof p, "%s/bx-job-x", gone[i]);
        assert_int_equal(mkdir(p, 0700), 0);
        touch(p, "left", "by a job");
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(mkdir(kept[i], 0700), 0);
    /* a live worker: this test process, with a directory of its own */
    jobdirs *jd = jobdirs_new(base, job_uid, job_gid, 2);
    char *a = jobdir_get(jd, err, sizeof err);
    assert_non_null(a);
    snprintf(live, sizeof live, "%s", jobdirs_dir(jd));
    /* another worker starts: it sweeps (it is this process too, so its own
     * directory counts as its own and stays) */
    assert_int_equal(jobdirs_sweep(base, err, sizeof err), 2);
    assert_int_equal(access(dead, F_OK), -1);
    assert_int_equal(access(reused, F_OK), -1);
    assert_int_equal(access(other, F_OK), 0);
    assert_int_equal(access(plain, F_OK), 0);
    assert_int_equal(access(alive, F_OK), 0);
    assert_int_equal(access(live, F_OK), 0);
    assert_int_equal(access(a, F_OK), 0);
    assert_int_equal(jobdirs_sweep(base, err, sizeof err), 0);
    snprintf(own, sizeof own, "%s", live);
    assert_int_equal(jobdir_put(jd, a, err, sizeof err), 0);
    jobdirs_free(jd);
    assert_int_equal(access(own, F_OK), -1);
    rmdir(other);
    rmdir(plain);
    rmdir(alive);
    assert_int_equal(entries(base), 0);
    assert_int_equal(jobdirs_sweep("/nonexistent-bx-dir", err, sizeof err), -1);
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/test_jobdir.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(base))
        return -1;
    if (geteuid() == 0) {
        job_uid = 65534; /* nobody */
        job_gid = 65534;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reused_under_a_new_name),
        cmocka_unit_test(test_symlink_not_followed),
        cmocka_unit_test(test_changed_mode_not_reused),
        cmocka_unit_test(test_keep_bounded),
        cmocka_unit_test(test_sweep_takes_what_dead_workers_left),
    };
    return cmocka_run_group_tests_name("jobdir", tests, setup, teardown);
}
