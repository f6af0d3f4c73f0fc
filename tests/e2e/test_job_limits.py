"""timeout_s: at the limit the command's whole tree is killed, including
what left the process group (setsid) or double-forked into the
background, and the state is timed_out with limit saying so. A job that
finishes leaves nothing running either.

Each command sleeps a number of seconds no other process on the machine
uses (30.7, ...), so that `pgrep -f` finds exactly the job's processes."""

import subprocess
import sys
import time
import traceback

from harness import Stack, sleeps, kill_leftovers


def pids(pattern):
    """Pids of processes whose command line matches pattern (a regex)."""
    r = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def wait_seen(number, timeout):
    """True once a `sleep NUMBER` runs (the job really started it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sleeps(number):
            return True
        time.sleep(0.05)
    return False


def assert_none_left(number, what, grace=1.0):
    """No `sleep NUMBER` left within grace s of the job's terminal state."""
    deadline = time.monotonic() + grace
    while sleeps(number) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = kill_leftovers(number)
    assert not left, "%s: `sleep %s` still running (pids %s) %.1fs after the job ended" % (
        what, number, left, grace)


def test_timeout_sleep(s):
    t0 = time.monotonic()
    job = s.submit({"command": "sleep 30", "timeout_s": 1})
    done = s.wait(job["id"], timeout=10)
    took = time.monotonic() - t0
    assert done["state"] == "timed_out", done
    assert took <= 5.0, "timed_out after %.1fs, not within 5 s: %r" % (took, done)
    assert done.get("limit") == "timeout_s", done
    assert done.get("exit_code") is None, done
    assert 900 <= done["duration_ms"] <= 5000, done


def test_timeout_kills_setsid_child(s):
    job = s.submit({"command": "setsid sleep 30.7 & sleep 30", "timeout_s": 2})
    try:
        assert wait_seen("30.7", 5), "the job's `setsid sleep 30.7` never ran"
        done = s.wait(job["id"], timeout=15)
        assert done["state"] == "timed_out" and done.get("limit") == "timeout_s", done
        assert_none_left("30.7", "timed-out job with setsid child")
    finally:
        kill_leftovers("30.7")


def test_timeout_kills_double_fork(s):
    # (cmd &) double-forks: the sleep's parent exits and it is reparented;
    # a TERM-ignoring one must get the SIGKILL after the grace.
    cmd = ("(sleep 30.71 &); (setsid sleep 30.72 &); "
           "(trap '' TERM; exec sleep 30.73) & sleep 30")
    job = s.submit({"command": cmd, "timeout_s": 2})
    try:
        for n in ("30.71", "30.72", "30.73"):
            assert wait_seen(n, 5), "the job's `sleep %s` never ran" % n
        done = s.wait(job["id"], timeout=20)
        assert done["state"] == "timed_out" and done.get("limit") == "timeout_s", done
        for n in ("30.71", "30.72", "30.73"):
            assert_none_left(n, "timed-out job with double-forked/TERM-ignoring children")
    finally:
        for n in ("30.71", "30.72", "30.73"):
            kill_leftovers(n)


def test_finished_job_leaves_nothing(s):
    # The shell exits at once; its background children must not outlive the job.
    job = s.submit({"command": "setsid sleep 30.6 >/dev/null 2>&1 & (sleep 30.61 &); echo done",
                    "timeout_s": 60})
    try:
        done = s.wait(job["id"], timeout=15)
        assert done["state"] == "succeeded" and done["stdout"] == "done\n", done
        for n in ("30.6", "30.61"):
            assert_none_left(n, "finished job with background children")
    finally:
        kill_leftovers("30.6")
        kill_leftovers("30.61")


def test_no_timeout_runs_to_end(s):
    job = s.submit({"command": "sleep 1.5; echo end", "timeout_s": 10})
    done = s.wait(job["id"], timeout=20)
    assert done["state"] == "succeeded" and done["stdout"] == "end\n", done
    assert done.get("limit") is None, done


TESTS = [test_timeout_sleep, test_timeout_kills_setsid_child, test_timeout_kills_double_fork,
         test_finished_job_leaves_nothing, test_no_timeout_runs_to_end]


def run(s, tests):
    failed = []
    for t in tests:
        t0 = time.monotonic()
        try:
            t(s)
            print("ok %s (%.1fs)" % (t.__name__, time.monotonic() - t0), file=sys.stderr)
        except Exception:
            failed.append(t.__name__)
            print("FAIL %s (%.1fs)\n%s" % (t.__name__, time.monotonic() - t0, traceback.format_exc()),
                  file=sys.stderr)
    if failed:
        raise SystemExit("failed: " + " ".join(failed))


if __name__ == "__main__":
    with Stack(workers=1, env={"BX_CONCURRENCY": "4", "BX_KILL_GRACE_MS": "1000"}) as s:
        run(s, TESTS)
