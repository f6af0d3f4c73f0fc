/* jobdir — the private directories jobs run in (their cwd and HOME).
 *
 * A job gets a directory of its own, named bx-job-XXXXXX, mode 0700,
 * owned by the user it runs as, empty; when the job is over its contents
 * are deleted and the name is gone. The job directories of a worker are
 * in a directory of that worker process, bx-w-<pid>-<start time>@<host>,
 * under the configured base (BX_JOB_TMPDIR): what a worker killed with
 * SIGKILL leaves, the next worker on the host deletes (jobdirs_sweep).
 *
 * Why a pool: making a directory and deleting it was the largest kernel
 * cost of a short job in the worker (on ext4 a new inode scans for
 * recently deleted ones, and freeing one truncates and discards its
 * block: ~0.25 ms a job). So a finished job's directory that is still
 * what we made (a directory, not a symlink, mode 0700, owned by the job's
 * user) is taken back by the worker (chown to the worker's own user, so
 * that the job's user, when it is another, cannot touch it while it
 * waits), emptied, renamed
 * to a new random name and kept for a next job, which gets it chowned
 * back. Anything else is deleted as before. Not thread-safe. */
#ifndef BX_JOBDIR_H
#define BX_JOBDIR_H

#include <stddef.h>
#include <sys/types.h>

typedef struct jobdirs jobdirs;

/* Directories under base (in this process's own directory there) for
 * commands run as uid/gid ((uid_t)-1: the worker's own), keeping at most
 * keep emptied ones for reuse. New, or NULL on OOM. base is copied. */
jobdirs *jobdirs_new(const char *base, uid_t uid, gid_t gid, int keep);
/* A fresh empty directory: new malloc'd path, or NULL with errno and a
 * message in err. */
char *jobdir_get(jobdirs *jd, char *err, size_t errlen);
/* The job in path is over (its processes are gone): deletes what is in
 * it, then keeps or deletes the directory. Frees path; NULL is fine.
 * 0, or -1 with a message in err when something could not be deleted. */
int jobdir_put(jobdirs *jd, char *path, char *err, size_t errlen);
/* Deletes the kept directories and frees jd (NULL is fine). */
void jobdirs_free(jobdirs *jd);
/* The worker's own directory, where the job directories are (made with
 * the first one). */
const char *jobdirs_dir(const jobdirs *jd);

/* Deletes what workers of this host that no longer run left under base
 * (their bx-w-* directories, when owned by this user). The number
 * deleted, or -1 + err when base cannot be read. */
int jobdirs_sweep(const char *base, char *err, size_t errlen);

#endif
