/* Unit tests of worker/proc: real commands under bash, driven by a small
 * epoll loop like the worker's. Tree tests run in both tree modes (cgroup
 * is skipped where cgroup v2 is not usable). PROC_BENCH=1 adds the spawn
 * benchmark. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

extern char **environ;

#define SHELL "/bin/bash"

static proc_tree mode_cgroup = PROC_TREE_CGROUP;
static proc_tree mode_scan = PROC_TREE_SCAN;

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Markers: every "30." in s becomes "30.<run id>", so that the sleeps of
 * this run are told apart from another run's (tests may run at the same
 * time), and a prefix like "sleep 30.10" still matches within one run.
 * Returns one of 16 rotating static buffers. */
static const char *U(const char *s)
{
    static char bufs[16][1024];
    static int next;
    char *out = bufs[next++ % 16], *w = out;
    char id[16];
    snprintf(id, sizeof id, "%07ld", (long)getpid() % 10000000);
    for (const char *r = s; *r && w < out + sizeof bufs[0] - 16; r++) {
        *w++ = *r;
        if (r[0] == '3' && r[1] == '0' && r[2] == '.') {
            *w++ = '0';
            *w++ = '.';
            r += 2;
            for (const char *i = id; *i; i++)
                *w++ = *i;
        }
    }
    *w = '\0';
    return out;
}

/* Selects the tree mode of a test (state points at a proc_tree); skips
 * the test when that mode is not available here. */
static void use_mode(void **state)
{
    proc_tree want = state && *state ? *(proc_tree *)*state : PROC_TREE_AUTO;
    char err[512];
    if (proc_global_setup(want, err, sizeof err) < 0) {
        print_message("skipped: %s\n", err);
        skip();
    }
}

static void watch(int ep, proc *p, uint32_t idx)
{
    proc_watch w[PROC_MAX_FDS];
    int n = proc_fds(p, w);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = w[i].events,
                                 .data.u64 = ((uint64_t)idx << 32) | (uint32_t)w[i].fd};
        assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, w[i].fd, &ev), 0);
    }
}

/* The worker's loop in small: wait until the nearest deadline, dispatch,
 * tick. Runs until every proc is done; returns the ms it took, or fails
 * the test after timeout_ms. ep: an epoll fd the procs were watched in. */
static int64_t drive(int ep, proc **ps, int n, int timeout_ms)
{
    int64_t start = now_ms(), end = start + timeout_ms;
    for (;;) {
        int64_t now = now_ms(), dl = end;
        int busy = 0;
        for (int i = 0; i < n; i++) {
            if (proc_done(ps[i]))
                continue;
            busy = 1;
            int64_t d = proc_next_deadline_ms(ps[i]);
            if (d >= 0 && d < dl)
                dl = d;
        }
        if (!busy)
            return now - start;
        if (now > end)
            fail_msg("procs not done after %d ms", timeout_ms);
        struct epoll_event evs[64];
        int k = epoll_wait(ep, evs, 64, dl > now ? (int)(dl - now) : 0);
        for (int i = 0; i < k; i++) {
            uint32_t idx = (uint32_t)(evs[i].data.u64 >> 32);
            int fd = (int)(evs[i].data.u64 & 0xffffffffu);
            if (!proc_done(ps[idx]))
                proc_on_ready(ps[idx], fd, evs[i].events);
        }
        now = now_ms();
        for (int i = 0; i < n; i++) {
            int64_t d = proc_next_deadline_ms(ps[i]);
            if (!proc_done(ps[i]) && d >= 0 && d <= now)
                proc_tick(ps[i], now);
        }
    }
}

static int64_t run1(proc *p, int timeout_ms)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    watch(ep, p, 0);
    int64_t ms = drive(ep, &p, 1, timeout_ms);
    close(ep);
    return ms;
}

static proc *spawn_spec(const proc_spec *s)
{
    char err[512];
    proc *p = proc_spawn(s, err, sizeof err);
    if (!p)
        fail_msg("spawn: %s", err);
    return p;
}

static proc *spawn_cmd(const char *cmd, size_t max_output)
{
    proc_spec s = PROC_SPEC_INIT;
    s.shell = SHELL;
    s.command = cmd;
    s.max_output = max_output;
    return spawn_spec(&s);
}

static char *out_of(proc *p, int stream, size_t *len)
{
    char *kept;
    size_t l;
    assert_int_equal(proc_output(p, stream, &kept, &l, NULL, NULL), 0);
    if (len)
        *len = l;
    return kept;
}

static void assert_output(proc *p, int stream, const char *want)
{
    char *got = out_of(p, stream, NULL);
    assert_string_equal(got, want);
    free(got);
}

/* Processes whose command line (arguments joined by spaces) is needle
 * (exact) or contains it. Zombies have none, so this counts live ones. */
static int count_procs(const char *needle, int exact)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    char path[300], buf[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%.20s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r <= 0)
            continue;
        if (buf[r - 1] == '\0')
            r--;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[r] = '\0';
        if (exact ? strcmp(buf, needle) == 0 : strstr(buf, needle) != NULL)
            n++;
    }
    closedir(d);
    return n;
}

/* Children of this process: zombies (*zombies) and all (return). */
static int my_children(int *zombies)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *e;
    int n = 0, z = 0;
    char path[300], buf[1024];
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%.20s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r <= 0)
            continue;
        buf[r] = '\0';
        char *rp = strrchr(buf, ')'), st;
        int ppid;
        if (rp && sscanf(rp + 1, " %c %d", &st, &ppid) == 2 && ppid == getpid()) {
            n++;
            z += st == 'Z';
        }
    }
    closedir(d);
    if (zombies)
        *zombies = z;
    return n;
}

static void wait_procs(const char *needle, int min, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    while (count_procs(needle, 1) < min) {
        if (now_ms() > end)
            fail_msg("'%s' did not start", needle);
        sleep_ms(5);
    }
}

/* Prints the processes with marker in their command line, and our
 * children: what a failing assert_gone found. */
static void dump_procs(const char *marker)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    char path[300], cmd[512], st[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%.20s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t r = fd < 0 ? -1 : read(fd, st, sizeof st - 1);
        if (fd >= 0)
            close(fd);
        if (r <= 0)
            continue;
        st[r] = '\0';
        snprintf(path, sizeof path, "/proc/%.20s/cmdline", e->d_name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        r = fd < 0 ? 0 : read(fd, cmd, sizeof cmd - 1);
        if (fd >= 0)
            close(fd);
        r = r < 0 ? 0 : r;
        for (ssize_t i = 0; i < r; i++)
            if (cmd[i] == '\0')
                cmd[i] = ' ';
        cmd[r] = '\0';
        char *rp = strrchr(st, ')'), state;
        int ppid, pgid;
        if (!rp || sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgid) != 3)
            continue;
        if (strstr(cmd, marker) || ppid == getpid())
            print_message("  pid %s state %c ppid %d pgid %d: %s\n", e->d_name, state, ppid,
                          pgid, cmd);
    }
    if (d)
        closedir(d);
}

/* Nothing of a tree is left: no process with the marker, no child of ours. */
static void assert_gone(const char *marker)
{
    int z, n = count_procs(marker, 0), c = my_children(&z);
    if (n || c)
        dump_procs(marker);
    assert_int_equal(n, 0);
    assert_int_equal(c, 0);
    assert_int_equal(z, 0);
}

/* ---- basics ---------------------------------------------------------- */

static void test_exit_code_and_streams(void **state)
{
    use_mode(state);
    proc *p = spawn_cmd("echo out; echo err >&2; exit 3", 4096);
    run1(p, 5000);
    int code, sig, core;
    assert_int_equal(proc_status(p, &code, &sig, &core), 0);
    assert_int_equal(code, 3);
    assert_int_equal(sig, 0);
    assert_output(p, PROC_STDOUT, "out\n");
    assert_output(p, PROC_STDERR, "err\n");
    assert_false(proc_had_leftovers(p));
    proc_free(p);
    int z;
    assert_int_equal(my_children(&z), 0);
}

static void test_killed_by_signal(void **state)
{
    use_mode(state);
    proc *p = spawn_cmd("kill -SEGV $$", 4096);
    run1(p, 5000);
    int code, sig, core;
    assert_int_equal(proc_status(p, &code, &sig, &core), 0);
    assert_int_equal(sig, SIGSEGV);
    assert_int_equal(code, -1);
    proc_free(p);
}

static void test_stdin_to_cat(void **state)
{
    use_mode(state);
    proc_spec s = PROC_SPEC_INIT;
    s.shell = SHELL;
    s.command = "cat";
    s.stdin_data = "hello\nworld";
    s.stdin_len = 11;
    s.max_output = 100;
    proc *p = spawn_spec(&s);
    run1(p, 5000);
    assert_output(p, PROC_STDOUT, "hello\nworld");
    proc_free(p);
}

/* 4 MiB through cat: stdin written as the pipe takes it while stdout is
 * read, neither side blocks. */
static void test_big_stdin_roundtrip(void **state)
{
    use_mode(state);
    const size_t N = 4u << 20;
    char *in = malloc(N);
    assert_non_null(in);
    for (size_t i = 0; i < N; i++)
        in[i] = (char)(i * 7 + (i >> 12));
    proc_spec s = PROC_SPEC_INIT;
    s.shell = SHELL;
    s.command = "cat";
    s.stdin_data = in;
    s.stdin_len = N;
    s.max_output = N;
    proc *p = spawn_spec(&s);
    run1(p, 20000);
    size_t len;
    char *out = out_of(p, PROC_STDOUT, &len);
    assert_int_equal(len, N);
    assert_memory_equal(out, in, N);
    free(out);
    free(in);
    proc_free(p);
}

/* A command that never reads its 1 MiB of stdin must not block us. */
static void test_stdin_not_read(void **state)
{
    use_mode(state);
    const size_t N = 1u << 20;
    char *in = calloc(1, N);
    proc_spec s = PROC_SPEC_INIT;
    s.shell = SHELL;
    s.command = "echo done";
    s.stdin_data = in;
    s.stdin_len = N;
    s.max_output = 100;
    proc *p = spawn_spec(&s);
    run1(p, 5000);
    int code;
    assert_int_equal(proc_status(p, &code, NULL, NULL), 0);
    assert_int_equal(code, 0);
    assert_output(p, PROC_STDOUT, "done\n");
    proc_free(p);
    free(in);
}

static void test_spawn_errors(void **state)
{
    use_mode(state);
    char err[512];
    proc_fail why;
    proc_spec s = PROC_SPEC_INIT;
    s.shell = SHELL;
    s.command = "pwd";
    s.cwd = "/nonexistent/bx-test-dir";
    assert_null(proc_spawn_ex(&s, &why, err, sizeof err));
    assert_int_equal(why, PROC_FAIL_CWD);
    assert_int_equal(errno, ENOENT);
    assert_non_null(strstr(err, "cwd '/nonexistent/bx-test-dir'"));

    s.cwd = "/etc/passwd";
    assert_null(proc_spawn_ex(&s, &why, err, sizeof err));
    assert_int_equal(why, PROC_FAIL_CWD);
    assert_int_equal(errno, ENOTDIR);

    s.cwd = NULL;
    s.shell = "/nonexistent/bash";
    assert_null(proc_spawn_ex(&s, &why, err, sizeof err));
    assert_int_equal(why, PROC_FAIL_EXEC);
    assert_non_null(strstr(err, "cannot run shell '/nonexistent/bash'"));

    s.shell = "/etc"; /* a directory: EACCES from execve */
    assert_null(proc_spawn_ex(&s, &why, err, sizeof err));
    assert_int_equal(why, PROC_FAIL_EXEC);

    s.shell = NULL;
    assert_null(proc_spawn_ex(&s, &why, err, sizeof err));
    assert_int_equal(why, PROC_FAIL_SPEC);

    s.shell = SHELL;
    s.uid = 65534;
    assert_null(proc_spawn_ex(&s, &why, err, sizeof err));
    assert_int_equal(why, PROC_FAIL_SPEC);
    /* Nothing leaked: no child, no zombie. */
    int z;
    assert_int_equal(my_children(&z), 0);
}

static void test_cwd(void **state)
{
    use_mode(state);
    proc_spec s = PROC_SPEC_INIT;
    s.shell = SHELL;
    s.command = "pwd";
    s.cwd = "/tmp";
    s.max_output = 100;
    proc *p = spawn_spec(&s);
    run1(p, 5000);
    assert_output(p, PROC_STDOUT, "/tmp\n");
    proc_free(p);
}

/* 3 MB with max 1000: exactly 1000 kept, head and tail right. */
static void test_big_output_truncated(void **state)
{
    use_mode(state);
    const size_t N = 3000000, MID = N - 10;
    proc *p = spawn_cmd("printf BEGIN; yes 0123456789abcde | head -c 2999990; printf 'END!!'",
                        1000);
    run1(p, 20000);
    char *kept;
    size_t len;
    uint64_t total;
    long cut;
    assert_int_equal(proc_output(p, PROC_STDOUT, &kept, &len, &total, &cut), 0);
    assert_int_equal(len, 1000);
    assert_int_equal(total, N);
    assert_int_equal(cut, 500);
    assert_true(outbuf_truncated(proc_outbuf(p, PROC_STDOUT)));
    /* The whole stream, to compare against. */
    char *all = malloc(N);
    memcpy(all, "BEGIN", 5);
    for (size_t i = 0; i < MID; i++)
        all[5 + i] = "0123456789abcde\n"[i % 16];
    memcpy(all + 5 + MID, "END!!", 5);
    assert_memory_equal(kept, all, 500);
    assert_memory_equal(kept + 500, all + N - 500, 500);
    assert_memory_equal(kept + 995, "END!!", 5);
    free(all);
    free(kept);
    proc_free(p);
}

static void test_binary_output(void **state)
{
    use_mode(state);
    proc *p = spawn_cmd("printf 'a\\000\\377\\376b\\000\\303(\\n'; printf '\\000x' >&2", 100);
    run1(p, 5000);
    size_t len;
    char *o = out_of(p, PROC_STDOUT, &len);
    const char want[] = {'a', 0, (char)0xff, (char)0xfe, 'b', 0, (char)0xc3, '(', '\n'};
    assert_int_equal(len, sizeof want);
    assert_memory_equal(o, want, sizeof want);
    free(o);
    o = out_of(p, PROC_STDERR, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(o, "\0x", 2);
    free(o);
    proc_free(p);
}

/* The child has 0, 1, 2 and nothing else of ours, not even an fd some
 * library opened without O_CLOEXEC. (3 is ls's own directory.) */
static void test_no_fd_leak(void **state)
{
    use_mode(state);
    int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
    assert_true(leak >= 0);
    proc *p = spawn_cmd("ls /proc/self/fd", 4096);
    run1(p, 5000);
    assert_output(p, PROC_STDOUT, "0\n1\n2\n3\n");
    proc_free(p);
    close(leak);
}

static void test_environment(void **state)
{
    use_mode(state);
    proc_spec s = PROC_SPEC_INIT;
    s.shell = SHELL;
    s.command = "env | grep -v '^_=\\|^PWD=\\|^SHLVL=' | sort";
    s.max_output = 4096;
    s.job_id = "job-42";
    proc *p = spawn_spec(&s);
    run1(p, 5000);
    char *o = out_of(p, PROC_STDOUT, NULL);
    assert_non_null(strstr(o, "BX_JOB_ID=job-42\n"));
    assert_non_null(strstr(o, "PATH=/usr/local/bin:/usr/bin:/bin\n"));
    assert_non_null(strstr(o, "LANG=C.UTF-8\n"));
    assert_non_null(strstr(o, "HOME="));
    free(o);
    assert_string_equal(proc_job_id(p), "job-42");
    proc_free(p);

    char *envp[] = {"FOO=bar baz", "BX_JOB_ID=forged", "PATH=/usr/bin:/bin", NULL};
    s.envp = envp;
    s.command = "echo \"$FOO|$BX_JOB_ID\"";
    p = spawn_spec(&s);
    run1(p, 5000);
    assert_output(p, PROC_STDOUT, "bar baz|job-42\n");
    proc_free(p);
}

static void test_signals_reset(void **state)
{
    use_mode(state);
    /* The worker ignores SIGPIPE; the job must not inherit that. */
    proc *p = spawn_cmd("yes | head -c 10 >/dev/null; echo \"${PIPESTATUS[0]}\"; "
                        "grep -E '^Sig(Ign|Blk)' /proc/self/status",
                        4096);
    run1(p, 5000);
    /* glibc's own signals 32 and 33 (bits 0x180000000) may come ignored
     * from whoever started the test (posix_spawn sets them so): ours is to
     * ignore nothing else */
    char *o = out_of(p, PROC_STDOUT, NULL);
    unsigned long long blk = 1, ign = 1;
    assert_int_equal(sscanf(o, "141\nSigBlk:\t%llx\nSigIgn:\t%llx", &blk, &ign), 2);
    assert_true(blk == 0 && (ign & ~0x180000000ULL) == 0);
    free(o);
    proc_free(p);
}

static void test_run_as_user(void **state)
{
    use_mode(state);
    if (geteuid() != 0)
        skip();
    proc_spec s = PROC_SPEC_INIT;
    s.shell = SHELL;
    s.command = "id -u; id -g; id -G; echo $HOME";
    s.uid = 65534;
    s.gid = 65534;
    s.max_output = 4096;
    proc *p = spawn_spec(&s);
    run1(p, 5000);
    char *o = out_of(p, PROC_STDOUT, NULL);
    assert_true(strncmp(o, "65534\n65534\n65534\n", 18) == 0);
    free(o);
    proc_free(p);
}

static size_t cb_bytes[3];
static void on_output(void *ud, int stream, const char *data, size_t len)
{
    (void)data;
    assert_ptr_equal(ud, cb_bytes);
    cb_bytes[stream] += len;
}

static void test_output_callback(void **state)
{
    use_mode(state);
    memset(cb_bytes, 0, sizeof cb_bytes);
    proc_spec s = PROC_SPEC_INIT;
    s.shell = SHELL;
    s.command = "head -c 200000 /dev/zero; echo e >&2";
    s.max_output = 10;
    s.on_output = on_output;
    s.ud = cb_bytes;
    proc *p = spawn_spec(&s);
    run1(p, 5000);
    assert_int_equal(cb_bytes[PROC_STDOUT], 200000);
    assert_int_equal(cb_bytes[PROC_STDERR], 2);
    assert_int_equal(proc_outbuf(p, PROC_STDOUT)->total, 200000);
    proc_free(p);
}

/* Output so far is readable while the command runs. */
static void test_peek_while_running(void **state)
{
    use_mode(state);
    proc *p = spawn_cmd(U("echo first; sleep 30.801"), 100);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    watch(ep, p, 0);
    int64_t end = now_ms() + 5000;
    while (proc_outbuf(p, PROC_STDOUT)->total < 6 && now_ms() < end) {
        struct epoll_event ev;
        if (epoll_wait(ep, &ev, 1, 100) == 1)
            proc_on_ready(p, (int)(ev.data.u64 & 0xffffffffu), ev.events);
    }
    assert_int_equal(proc_done(p), 0);
    assert_int_equal(proc_status(p, NULL, NULL, NULL), -1);
    assert_output(p, PROC_STDOUT, "first\n");
    proc_terminate(p, 1000);
    drive(ep, &p, 1, 5000);
    close(ep);
    int sig;
    assert_int_equal(proc_status(p, NULL, &sig, NULL), 0);
    assert_int_equal(sig, SIGTERM);
    proc_free(p);
    assert_gone(U("sleep 30.801"));
}

/* Many at once in one loop, each with its own result. */
static void test_concurrent(void **state)
{
    use_mode(state);
    enum { N = 24 };
    proc *ps[N];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    char cmd[128];
    for (int i = 0; i < N; i++) {
        snprintf(cmd, sizeof cmd, "sleep 0.0%d; echo job%d; echo e%d >&2; exit %d", i % 10, i,
                 i, i);
        ps[i] = spawn_cmd(cmd, 100);
        watch(ep, ps[i], (uint32_t)i);
    }
    drive(ep, ps, N, 10000);
    close(ep);
    for (int i = 0; i < N; i++) {
        int code;
        char want[32];
        assert_int_equal(proc_status(ps[i], &code, NULL, NULL), 0);
        assert_int_equal(code, i);
        snprintf(want, sizeof want, "job%d\n", i);
        assert_output(ps[i], PROC_STDOUT, want);
        snprintf(want, sizeof want, "e%d\n", i);
        assert_output(ps[i], PROC_STDERR, want);
        proc_free(ps[i]);
    }
    int z;
    assert_int_equal(my_children(&z), 0);
}

/* ---- trees ----------------------------------------------------------- */

/* Terminates cmd once `marker` runs; nothing of the tree may be left. */
static int64_t terminate_case(const char *cmd, const char *marker, int grace_ms)
{
    proc *p = spawn_cmd(cmd, 4096);
    wait_procs(marker, 1, 5000);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    watch(ep, p, 0);
    int64_t t0 = now_ms();
    proc_terminate(p, grace_ms);
    assert_true(proc_terminated(p));
    drive(ep, &p, 1, 10000);
    int64_t ms = now_ms() - t0;
    close(ep);
    assert_int_equal(proc_status(p, NULL, NULL, NULL), 0);
    proc_free(p);
    return ms;
}

static void test_terminate_setsid(void **state)
{
    use_mode(state);
    int64_t ms =
        terminate_case(U("setsid sleep 30.101 & sleep 30.102"), U("sleep 30.101"), 300);
    assert_gone(U("sleep 30.10"));
    assert_in_range(ms, 0, 1999);
}

static void test_terminate_background_wait(void **state)
{
    use_mode(state);
    int64_t ms =
        terminate_case(U("sleep 30.201 & sleep 30.202; wait"), U("sleep 30.202"), 300);
    assert_gone(U("sleep 30.20"));
    assert_in_range(ms, 0, 299); /* all die of SIGTERM: no need for the grace */
}

static void test_terminate_ignores_term(void **state)
{
    use_mode(state);
    int64_t ms = terminate_case(U("trap '' TERM; sleep 30.301"), U("sleep 30.301"), 300);
    assert_gone(U("sleep 30.301"));
    assert_in_range(ms, 290, 1999);
}

/* The root dies of SIGTERM at once, a child that ignores it (and holds
 * no pipe) is waited for until the grace ends, then killed. */
static void test_terminate_grace_for_leftover(void **state)
{
    use_mode(state);
    proc *p = spawn_cmd(U("(trap '' TERM; exec sleep 30.341 >/dev/null 2>&1 </dev/null) & "
                        "sleep 30.342"),
                        4096);
    wait_procs(U("sleep 30.341"), 1, 5000);
    wait_procs(U("sleep 30.342"), 1, 5000);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    watch(ep, p, 0);
    int64_t t0 = now_ms();
    proc_terminate(p, 600);
    drive(ep, &p, 1, 5000);
    int64_t ms = now_ms() - t0;
    close(ep);
    int sig;
    assert_int_equal(proc_status(p, NULL, &sig, NULL), 0);
    assert_int_equal(sig, SIGTERM);
    assert_true(proc_had_leftovers(p));
    assert_in_range(ms, 590, 1999);
    proc_free(p);
    assert_gone(U("sleep 30.34"));
}

/* The double-forked daemon that also left the session, with its own
 * children. */
static void test_terminate_double_fork(void **state)
{
    use_mode(state);
    int64_t ms = terminate_case(
        U("(setsid bash -c 'sleep 30.311 & sleep 30.312' &); sleep 30.313"), U("sleep 30.312"),
        300);
    assert_gone(U("sleep 30.31"));
    assert_in_range(ms, 0, 1999);
}

static void test_terminate_stopped(void **state)
{
    use_mode(state);
    int64_t ms = terminate_case(U("sleep 30.321 & sleep 0.1; kill -STOP $!; sleep 30.322"),
                                U("sleep 30.322"), 300);
    assert_gone(U("sleep 30.32"));
    assert_in_range(ms, 0, 1999);
}

/* A backgrounded process keeps stdout open after the root exits 0: the
 * job ends after the linger with exit 0, and the process is killed. */
static void test_background_holding_stdout(void **state)
{
    use_mode(state);
    proc *p = spawn_cmd(U("sleep 30.5 & echo started"), 4096);
    int64_t ms = run1(p, 5000);
    int code, sig;
    assert_int_equal(proc_status(p, &code, &sig, NULL), 0);
    assert_int_equal(code, 0);
    assert_int_equal(sig, 0);
    assert_output(p, PROC_STDOUT, "started\n");
    assert_in_range(ms, 90, 999);
    assert_true(proc_had_leftovers(p));
    proc_free(p);
    assert_gone(U("sleep 30.5"));
}

/* Leftovers that closed the pipes and left the group end with the job. */
static void test_daemon_leftover(void **state)
{
    use_mode(state);
    proc *p = spawn_cmd(U("setsid sleep 30.401 >/dev/null 2>&1 </dev/null & "
                        "(setsid sleep 30.402 >/dev/null 2>&1 </dev/null &); "
                        "sleep 0.05; exit 0"),
                        4096);
    int64_t ms = run1(p, 5000);
    int code;
    assert_int_equal(proc_status(p, &code, NULL, NULL), 0);
    assert_int_equal(code, 0);
    assert_in_range(ms, 0, 999);
    proc_free(p);
    assert_gone(U("sleep 30.40"));
}

/* Cleared environment + new session + parent gone: only the cgroup finds
 * it (the documented limit of the scan mode). */
static void test_cgroup_catches_env_cleared(void **state)
{
    use_mode(state);
    proc *p = spawn_cmd(
        U("(env -i setsid sleep 30.403 >/dev/null 2>&1 </dev/null &); sleep 0.05"), 4096);
    run1(p, 5000);
    assert_int_equal(proc_tree_mode(p), PROC_TREE_CGROUP);
    proc_free(p);
    assert_gone(U("sleep 30.403"));
}

/* A leftover found after a longer run (scan mode: past the pid window's
 * validity where pid_max is small, so every process is looked at). */
static void test_leftover_after_long_run(void **state)
{
    use_mode(state);
    proc *p = spawn_cmd(U("setsid sleep 30.451 >/dev/null 2>&1 </dev/null & sleep 0.8"), 4096);
    int64_t ms = run1(p, 5000);
    assert_in_range(ms, 700, 1999);
    proc_free(p);
    assert_gone(U("sleep 30.451"));
}

/* A worker that died left a job cgroup with a process in it: the next
 * worker's startup kills it and removes the directory. (Another test run
 * starting at the same time may be the one that cleans it: same result.) */
static void test_stale_cgroup_cleanup(void **state)
{
    use_mode(state);
    const char *desc = proc_global_describe(), *dir = strstr(desc, "dir=");
    assert_non_null(dir);
    char own[1024], stale[1100], job[1200], procs[1300];
    snprintf(own, sizeof own, "%s", dir + 4);
    *strrchr(own, '/') = '\0';
    /* Above PID_MAX_LIMIT (4194304), so dead; unique to this run. */
    snprintf(stale, sizeof stale, "%s/bx-worker.%ld", own, 4194304L + (long)getpid());
    snprintf(job, sizeof job, "%s/j1", stale);
    assert_int_equal(mkdir(stale, 0755), 0);
    assert_int_equal(mkdir(job, 0755), 0);
    snprintf(procs, sizeof procs, "%s/cgroup.procs", job);
    int ready[2];
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(procs, O_WRONLY);
        if (fd < 0 || write(fd, "0", 1) != 1 || write(ready[1], "r", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    ssize_t r = read(ready[0], &c, 1);
    close(ready[0]);
    if (r != 1) { /* the directory went before the child got in */
        waitpid(pid, NULL, 0);
        rmdir(job);
        rmdir(stale);
        skip();
    }
    proc_global_release();
    char err[256];
    assert_int_equal(proc_global_setup(PROC_TREE_CGROUP, err, sizeof err), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    struct stat sb;
    assert_int_equal(stat(stale, &sb), -1);
}

static void test_kill_sigkill(void **state)
{
    use_mode(state);
    proc *p = spawn_cmd(U("trap '' TERM; sleep 30.601 & sleep 30.602"), 4096);
    wait_procs(U("sleep 30.602"), 1, 5000);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    watch(ep, p, 0);
    assert_int_equal(proc_kill(p, SIGKILL), 0);
    int64_t ms = drive(ep, &p, 1, 5000);
    close(ep);
    int sig;
    assert_int_equal(proc_status(p, NULL, &sig, NULL), 0);
    assert_int_equal(sig, SIGKILL);
    assert_in_range(ms, 0, 999);
    proc_free(p);
    assert_gone(U("sleep 30.60"));
}

/* proc_free on a running proc kills and reaps the whole tree. */
static void test_free_running(void **state)
{
    use_mode(state);
    proc *p = spawn_cmd(U("setsid sleep 30.701 & sleep 30.702 & sleep 30.703"), 4096);
    wait_procs(U("sleep 30.701"), 1, 5000);
    wait_procs(U("sleep 30.703"), 1, 5000);
    int64_t t0 = now_ms();
    proc_free(p);
    assert_in_range(now_ms() - t0, 0, 999);
    assert_gone(U("sleep 30.70"));
}

/* A fork loop that is killed while it forks. */
static void test_fork_storm(void **state)
{
    use_mode(state);
    proc *p = spawn_cmd(U("for i in $(seq 200); do (sleep 30.901 &); done; sleep 30.902"), 4096);
    wait_procs(U("sleep 30.902"), 1, 10000);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    watch(ep, p, 0);
    proc_terminate(p, 100);
    drive(ep, &p, 1, 10000);
    close(ep);
    proc_free(p);
    assert_gone(U("sleep 30.90"));
}

/* ---- benchmark (PROC_BENCH=N) ---------------------------------------- */

/* N x `bash -c true` spawned and collected one after the other, by a
 * minimal posix_spawn + pipe + waitpid loop and by proc (each tree mode),
 * in interleaved rounds so that background load hits all alike. Both get
 * the same small environment. Reports wall time per job and CPU time per
 * job (ours + the children's), which background load does not inflate. */

static char *bench_env[] = {"BX_JOB_ID=bench", "PATH=/usr/local/bin:/usr/bin:/bin",
                            "HOME=/", "LANG=C.UTF-8", NULL};

static int64_t cpu_us(void)
{
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    getrusage(RUSAGE_CHILDREN, &b);
    return (int64_t)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec +
                     b.ru_stime.tv_sec) * 1000000 +
           a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec + b.ru_stime.tv_usec;
}

static void bench_baseline(int n)
{
    char *argv[] = {SHELL, "-c", "true", NULL};
    for (int i = 0; i < n; i++) {
        int fds[2];
        assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
        pid_t pid;
        assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, argv, bench_env), 0);
        posix_spawn_file_actions_destroy(&fa);
        close(fds[1]);
        char buf[4096];
        while (read(fds[0], buf, sizeof buf) > 0)
            ;
        close(fds[0]);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
    }
}

static void bench_proc(int ep, int n)
{
    proc_spec s = PROC_SPEC_INIT;
    s.shell = SHELL;
    s.command = "true";
    s.envp = bench_env;
    s.max_output = 1 << 20;
    for (int i = 0; i < n; i++) {
        proc *p = spawn_spec(&s);
        watch(ep, p, 0);
        drive(ep, &p, 1, 5000);
        int code;
        assert_int_equal(proc_status(p, &code, NULL, NULL), 0);
        assert_int_equal(code, 0);
        proc_free(p);
    }
}

static void test_bench(void **state)
{
    (void)state;
    const char *env = getenv("PROC_BENCH");
    if (!env)
        skip();
    int n = atoi(env) > 1 ? atoi(env) : 2000, rounds = 20, batch = n / rounds;
    char err[256];
    int have_cg = proc_global_setup(PROC_TREE_CGROUP, err, sizeof err) == 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int64_t wall[3] = {0}, cpu[3] = {0};
    bench_baseline(20); /* warm the page cache */
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 3; k++) {
            int v = (r + k) % 3; /* 0 baseline, 1 proc cgroup, 2 proc scan */
            if (v == 1 && !have_cg)
                continue;
            int64_t w0 = now_ms(), c0 = cpu_us();
            if (v == 0) {
                bench_baseline(batch);
            } else {
                proc_global_setup(v == 1 ? PROC_TREE_CGROUP : PROC_TREE_SCAN, err, sizeof err);
                bench_proc(ep, batch);
            }
            wall[v] += now_ms() - w0;
            cpu[v] += cpu_us() - c0;
        }
    }
    close(ep);
    const char *name[3] = {"posix_spawn+pipe+waitpid", "proc, cgroup tree", "proc, scan tree"};
    int total = batch * rounds;
    for (int v = 0; v < 3; v++) {
        if (v == 1 && !have_cg)
            continue;
        print_message("bench: %-25s %d x bash -c true: %4.0f/s wall (%4.0f us/job), "
                      "cpu %4.0f us/job (%+.0f us vs baseline)\n",
                      name[v], total, total * 1000.0 / (double)wall[v],
                      wall[v] * 1000.0 / total, (double)cpu[v] / total,
                      (double)(cpu[v] - cpu[0]) / total);
    }
}

/* ---- main ------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    if (proc_global_init() < 0)
        return -1;
    print_message("proc: %s\n", proc_global_describe());
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    proc_global_release();
    return 0;
}

#define BOTH(f) cmocka_unit_test_prestate(f, &mode_cgroup), cmocka_unit_test_prestate(f, &mode_scan)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_exit_code_and_streams),
        BOTH(test_killed_by_signal),
        cmocka_unit_test(test_stdin_to_cat),
        cmocka_unit_test(test_big_stdin_roundtrip),
        cmocka_unit_test(test_stdin_not_read),
        cmocka_unit_test(test_spawn_errors),
        cmocka_unit_test(test_cwd),
        cmocka_unit_test(test_big_output_truncated),
        cmocka_unit_test(test_binary_output),
        cmocka_unit_test(test_no_fd_leak),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_signals_reset),
        cmocka_unit_test(test_run_as_user),
        cmocka_unit_test(test_output_callback),
        BOTH(test_peek_while_running),
        BOTH(test_concurrent),
        BOTH(test_terminate_setsid),
        BOTH(test_terminate_background_wait),
        BOTH(test_terminate_ignores_term),
        BOTH(test_terminate_grace_for_leftover),
        BOTH(test_terminate_double_fork),
        BOTH(test_terminate_stopped),
        BOTH(test_background_holding_stdout),
        BOTH(test_daemon_leftover),
        cmocka_unit_test_prestate(test_cgroup_catches_env_cleared, &mode_cgroup),
        BOTH(test_leftover_after_long_run),
        cmocka_unit_test_prestate(test_stale_cgroup_cleanup, &mode_cgroup),
        BOTH(test_kill_sigkill),
        BOTH(test_free_running),
        BOTH(test_fork_storm),
        cmocka_unit_test(test_bench),
    };
    return cmocka_run_group_tests_name("proc", tests, group_setup, group_teardown);
}
