/* proc — one job's command as a process tree the worker owns whole.
 *
 * proc_spawn runs {shell, "-c", command} (clone3 sharing our memory, as
 * vfork does, or vfork itself; then execve, never a shell string of ours)
 * in a new process group, with stdout and stderr on pipes
 * and stdin fed from memory, and never blocks afterwards: the caller's
 * single-threaded epoll loop watches the fds of proc_fds, calls
 * proc_on_ready when one is ready and proc_tick when the deadline of
 * proc_next_deadline_ms has passed, until proc_done.
 *
 * The tree. The worker is a child subreaper (proc_global_init), so what a
 * job double-forks or setsid()s away is reparented to the worker, never
 * to init. How a tree is found and killed:
 *   cgroup  (PROC_TREE_CGROUP) where cgroup v2 is mounted (also in the
 *           hybrid layout, at /sys/fs/cgroup/unified), the worker's own
 *           cgroup is writable and cgroup.kill exists (Linux >= 5.14):
 *           one cgroup per running job, <own cgroup>/bx-worker.<pid>/j<n>,
 *           entered at birth (clone3 CLONE_INTO_CGROUP, Linux >= 5.7, on
 *           x86-64; else the child joins it before exec, a migration that
 *           waits for an RCU grace period: milliseconds on a busy
 *           machine, while the worker waits). Every descendant stays in it
 *           whatever it does (setsid, double fork, cleared environment);
 *           cgroup.kill kills them all at once, forks included, and
 *           cgroup.events "populated 0" says none is left. Job cgroups are
 *           reused once empty (a fresh one costs ~0.7 ms of kernel time),
 *           except those cgroup.kill was used on.
 *           Directories of a worker that died are emptied (SIGKILL) and
 *           removed by the next proc_global_init in the same cgroup.
 *   scan    (PROC_TREE_SCAN) otherwise (no cgroup v2, read-only cgroupfs as
 *           in most containers, no delegation): the process group, plus a
 *           walk of /proc for the worker's descendants that are under the
 *           job's root, in its process group, or carry its marker
 *           BX_JOB_ID=<job_id> in /proc/<pid>/environ. The walk reads only
 *           the pids allocated since the job started while the pid counter
 *           cannot have wrapped, so a short job costs a few reads.
 *           Limitation: a process that both leaves the group (setsid,
 *           setpgid) and clears or rewrites its environment, and whose
 *           parent in the tree has exited, cannot be attributed and
 *           survives the job.
 * In both modes every job's environment gets BX_JOB_ID=<job_id>, and the
 * root gets PR_SET_PDEATHSIG SIGKILL, so it dies with the worker.
 *
 * When a proc finishes, nothing of its tree runs any more: after the root
 * exits, proc waits for EOF on both pipes at most linger_ms (processes
 * that keep them open are leftovers), then SIGKILLs every leftover, waits
 * until they are gone and reaps the ones reparented to the worker.
 *
 * Reaping. The root is reaped through its pidfd as soon as it exits.
 * Processes reparented to the worker are reaped by a sweep (waitid P_ALL,
 * peeking first) that stops at any live proc's root, so no proc ever
 * takes another one's exit status. So the rest of the worker must not
 * make children of its own outside this module (an exited child of the
 * worker that is not a live proc's root may be reaped here), and must not
 * set SIGCHLD to SIG_IGN (proc_global_init resets it).
 *
 * The root's exit comes through its pidfd (Linux >= 5.3). Where
 * pidfd_open is ENOSYS (older kernels, valgrind < 3.20) the root is polled
 * with waitid every 1..50 ms through proc_tick instead. close_range needs
 * Linux >= 5.11 (before that, only our own O_CLOEXEC protects the child).
 * Not thread-safe: one thread owns every proc. */
#ifndef BX_PROC_H
#define BX_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "outbuf.h"

typedef struct proc proc;

typedef enum proc_tree {
    PROC_TREE_AUTO = 0, /* cgroup if usable, else scan */
    PROC_TREE_CGROUP,
    PROC_TREE_SCAN,
} proc_tree;

/* Makes the worker a child subreaper, resets SIGCHLD to SIG_DFL if it was
 * ignored, ignores SIGPIPE if it had its default action, picks
 * the tree mode (PROC_TREE_AUTO) and removes the job cgroups a dead worker
 * left (killing what still ran in them). Call once at startup. 0 / -1. */
int proc_global_init(void);
/* The same with a chosen mode (tests; an operator's override). May be
 * called again to switch: live procs keep the mode they started with.
 * PROC_TREE_CGROUP fails (-1 + err) when cgroups are not usable. */
int proc_global_setup(proc_tree want, char *err, size_t errlen);
proc_tree proc_global_tree(void);
/* One line for the startup log: the mode, where, and why not cgroup. */
const char *proc_global_describe(void);
/* Reaps exited children of the worker that are no live proc's root
 * (stragglers of finished trees). Done already after every root's exit
 * and every proc's end; in an idle worker, calling it every few seconds
 * keeps late stragglers from staying zombies until the next job. */
void proc_global_reap(void);
/* Removes the worker's cgroup directory. Call after freeing every proc. */
void proc_global_release(void);

enum { PROC_STDOUT = 1, PROC_STDERR = 2 };

typedef struct proc_spec {
    const char *shell;       /* e.g. "/bin/bash": runs {shell, "-c", command} */
    const char *command;
    char *const *envp;       /* the child's whole environment; NULL = PATH,
                                HOME and LANG=C.UTF-8 only. BX_JOB_ID is
                                always replaced by ours */
    const char *cwd;         /* NULL = the worker's */
    const char *stdin_data;  /* NULL or stdin_len 0 = /dev/null; copied */
    size_t stdin_len;
    size_t max_output;       /* bytes kept per stream: head + tail (outbuf);
                                0 keeps nothing but still counts */
    uid_t uid;               /* (uid_t)-1 = keep the worker's */
    gid_t gid;               /* (gid_t)-1 = keep; required when uid is set:
                                the child gets exactly this one group */
    /* Resource limits set in the child before exec (setrlimit): soft and
     * hard alike. resource = RLIMIT_*; nlimits 0 = inherit the worker's. */
    int nlimits;
    struct proc_limit { int resource; unsigned long long value; } limits[8];
    const char *job_id;      /* BX_JOB_ID; NULL = a generated unique one.
                                Must be unique among live procs */
    int linger_ms;           /* wait for EOF after the root exits; 0 = 100 */
    /* Called with every chunk read, as it is read (live output); borrowed
     * bytes. NULL = none. Must not call proc_free on this proc. */
    void (*on_output)(void *ud, int stream, const char *data, size_t len);
    void *ud;
} proc_spec;

/* Use as proc_spec s = PROC_SPEC_INIT; then set fields. */
#define PROC_SPEC_INIT {.uid = (uid_t)-1, .gid = (gid_t)-1}

/* Why a spawn failed. All but PROC_FAIL_SYSTEM are the job's (or its
 * configuration's) fault: reject the job with the message. SYSTEM is the
 * worker's (out of fds, memory, processes): try the job again later. */
typedef enum proc_fail {
    PROC_FAIL_NONE = 0,
    PROC_FAIL_SYSTEM,
    PROC_FAIL_SPEC,  /* missing shell or command, uid without gid */
    PROC_FAIL_CWD,   /* cwd missing, not a directory, not accessible */
    PROC_FAIL_CRED,  /* cannot switch to uid/gid, or set a limit */
    PROC_FAIL_EXEC,  /* the shell cannot be executed (not found, E2BIG, ...) */
} proc_fail;

/* Starts the command. New proc (proc_free), or NULL with a message in
 * err (e.g. "cwd '/nope': No such file or directory") and errno set.
 * Blocks only for the fork+exec itself; never waits for the command. */
proc *proc_spawn(const proc_spec *spec, char *err, size_t errlen);
/* The same, and *why (if not NULL) says whose fault a failure is. */
proc *proc_spawn_ex(const proc_spec *spec, proc_fail *why, char *err, size_t errlen);

#define PROC_MAX_FDS 4
typedef struct proc_watch {
    int fd;
    uint32_t events; /* EPOLLIN (pipes, pidfd) or EPOLLOUT (stdin) */
} proc_watch;

/* The fds to watch, level-triggered (not EPOLLET), right after spawn:
 * stdout, stderr, the pidfd, and stdin while input is pending. Register
 * them once. The set only shrinks: proc closes an fd when it is done with
 * it, which takes it out of the epoll set by itself — never EPOLL_CTL_DEL
 * one after a proc call, its number may already be reused. Returns how
 * many were written to out. */
int proc_fds(const proc *p, proc_watch out[PROC_MAX_FDS]);

#define PROC_EV_OUTPUT 1 /* new bytes on stdout or stderr */
#define PROC_EV_EXIT   2 /* the root process exited (proc_status is known) */
#define PROC_EV_DONE   4 /* proc_done became true */
/* fd (one of proc_fds, with the epoll events) is ready: reads the pipes
 * into the outbufs, writes stdin, notices the root's exit. An fd that is
 * not (any more) this proc's is ignored; fd < 0 means "check all". Does
 * a bounded amount of work per call. Returns the PROC_EV_ bits. */
int proc_on_ready(proc *p, int fd, uint32_t events);

/* When proc_tick must next be called, in ms on CLOCK_MONOTONIC (the
 * clock of clock_mono_ms), or -1 for "only when an fd is ready". */
int64_t proc_next_deadline_ms(const proc *p);
/* Acts on passed deadlines (SIGKILL after the grace, end of the linger,
 * the next check for leftovers). Returns the PROC_EV_ bits. */
int proc_tick(proc *p, int64_t now_ms);

/* 1 once the root exited, the pipes are closed and nothing of the tree
 * is left running: the results are final. */
int proc_done(const proc *p);

/* Sends sig to every process of the tree (group and escapees). 0 / -1. */
int proc_kill(proc *p, int sig);
/* SIGTERM (+ SIGCONT) to the tree now, SIGKILL to what is left after
 * grace_ms (<= 0: at once). The loop drives it through proc_tick. */
void proc_terminate(proc *p, int grace_ms);
/* 1 once proc_terminate (or proc_kill SIGKILL) was asked for. */
int proc_terminated(const proc *p);
/* 1 when processes of the tree were still running after the root had
 * exited and the pipes were done with, and had to be waited for or
 * killed (worth a log line: the command left something behind). */
int proc_had_leftovers(const proc *p);

/* The root's end, from waitid: exited with *exit_code (then *signal 0),
 * or killed by *signal (then *exit_code -1, *core_dumped 0/1). 0 once
 * known, -1 while it runs. Out-parameters may be NULL. */
int proc_status(const proc *p, int *exit_code, int *signal, int *core_dumped);

/* A stream's kept bytes: see outbuf_result (new malloc'd *kept). Usable
 * while running: what was produced so far. */
int proc_output(const proc *p, int stream, char **kept, size_t *kept_len, uint64_t *total,
                long *cut_at);
/* The stream's outbuf, borrowed (peek without copying). */
const outbuf *proc_outbuf(const proc *p, int stream);

pid_t proc_pid(const proc *p);           /* the root, also the process group id */
const char *proc_job_id(const proc *p);  /* the BX_JOB_ID value */
proc_tree proc_tree_mode(const proc *p); /* how this proc's tree is tracked */

/* Frees p (NULL is fine). If p is not done, kills the whole tree and
 * waits for it (blocking, bounded: a few ms normally, 5 s at most). */
void proc_free(proc *p);

#endif
