"""bx submit --wait runs a job to its end and exits with the job's exit
code (the stack's URL and token from BX_API_URL and BX_API_TOKEN)."""

import os
import subprocess
import sys
import time
import traceback

from harness import ROOT, Stack

BX = os.path.join(os.environ.get("BX_BIN_DIR") or os.path.join(ROOT, "bin"), "bx")


def bx(s, *args, timeout=60):
    env = dict(os.environ, BX_API_URL=s.url, BX_API_TOKEN=s.token)
    env.pop("BX_RUN_DIR", None)
    return subprocess.run([BX] + list(args), env=env, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_wait_exit_4(s):
    r = bx(s, "submit", "--wait", "exit 4")
    assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)


def test_wait_output_and_exit_0(s):
    r = bx(s, "submit", "--wait", "--", "echo out-line; echo err-line >&2")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert b"out-line\n" in r.stdout and b"err-line\n" in r.stderr, (r.stdout, r.stderr)
    assert b"err-line" not in r.stdout, r.stdout


def test_wait_timeout_and_signal(s):
    r = bx(s, "submit", "--wait", "--timeout", "1", "sleep 30")
    assert r.returncode == 124, (r.returncode, r.stdout, r.stderr)
    r = bx(s, "submit", "--wait", "kill -TERM $$")
    assert r.returncode == 128 + 15, (r.returncode, r.stdout, r.stderr)


def test_submit_then_wait(s):
    r = bx(s, "submit", "exit 6")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    job_id = r.stdout.decode().strip()
    assert len(job_id) == 36, r.stdout
    r = bx(s, "wait", job_id)
    assert r.returncode == 6, (r.returncode, r.stdout, r.stderr)
    assert s.job(job_id)["exit_code"] == 6


TESTS = [test_wait_exit_4, test_wait_output_and_exit_0, test_wait_timeout_and_signal, test_submit_then_wait]


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
    with Stack(workers=1, env={"BX_CONCURRENCY": "2"}) as s:
        run(s, TESTS)
