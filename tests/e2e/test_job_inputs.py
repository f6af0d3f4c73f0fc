"""A job's inputs reach its command (env, cwd, stdin), a cwd that does not
exist ends the job as rejected with the reason, the outcome says how the
command ended (exit code, or signal and core dump), and an idempotency key
returns the first job, never a second one."""

import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback

from harness import Stack


def wait_history(s, cond, timeout=30, **filters):
    """The history ids (with filters) once cond(ids) holds; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        ids = s.history_ids(**filters)
        if cond(ids):
            return ids
        if time.monotonic() > deadline:
            raise AssertionError("history %r after %ss: %r" % (filters, timeout, ids))
        time.sleep(0.3)


def test_env_cwd_stdin(s):
    d = tempfile.mkdtemp(prefix="bx-cwd.", dir=os.environ.get("BX_TEST_TMPDIR"))
    try:
        with open(os.path.join(d, "here.txt"), "w") as f:
            f.write("in the cwd\n")
        job = s.submit({
            "command": 'printf "%s|%s|%s\\n" "$FOO" "$BAR" "$EMPTY"; pwd; cat here.txt; cat',
            "env": {"FOO": "foo bar", "BAR": "x=y 'q' \"dq\" $HOME", "EMPTY": ""},
            "cwd": d,
            "stdin": "line one\nline two\n\xe9t\xe9\n",
            "timeout_s": 20,
        })
        done = s.wait(job["id"], timeout=30)
        assert done["state"] == "succeeded", done
        want = "foo bar|x=y 'q' \"dq\" $HOME|\n%s\nin the cwd\nline one\nline two\n\xe9t\xe9\n" % os.path.realpath(d)
        assert done["stdout"] == want, (done["stdout"], want)
        # env and stdin may hold secrets: they are not part of the status
        assert "env" not in done and "stdin" not in done, done
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_no_stdin_is_empty(s):
    # Without stdin the command reads end-of-file at once, it does not hang.
    job = s.submit({"command": "cat; echo done", "timeout_s": 10})
    done = s.wait(job["id"], timeout=20)
    assert done["state"] == "succeeded" and done["stdout"] == "done\n", done


def test_missing_cwd_rejected(s):
    missing = "/nonexistent-bx-%s/sub" % secrets.token_hex(4)
    job = s.submit({"command": "echo should-not-run", "cwd": missing, "labels": {"t": "cwd"}})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "rejected", done
    reason = done.get("reason")
    assert isinstance(reason, str) and reason, done
    assert missing in reason or "cwd" in reason, done
    assert "should-not-run" not in (done.get("stdout") or ""), done
    ids = wait_history(s, lambda ids: job["id"] in ids, state="rejected", label="t:cwd")
    assert ids == [job["id"]], ids


def test_exit_code_and_signal(s):
    job = s.submit({"command": "exit 7"})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "failed" and done["exit_code"] == 7, done
    assert done.get("signal") is None, done

    job = s.submit({"command": "ulimit -c 0; kill -SEGV $$"})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "failed", done
    assert done.get("signal") == 11, done
    assert done.get("core_dumped") is False, done
    assert done.get("exit_code") is None, done  # a signal, not an exit code of 139

    # as written in the issue: whether a core is dumped depends on the host
    job = s.submit({"command": "kill -SEGV $$"})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "failed" and done.get("signal") == 11, done
    assert isinstance(done.get("core_dumped"), bool) and done.get("exit_code") is None, done

    job = s.submit({"command": "kill -TERM $$"})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "failed" and done.get("signal") == 15, done
    assert done.get("exit_code") is None and done.get("limit") is None, done


def test_idempotency_key(s):
    key = "idem-" + secrets.token_hex(6)
    first = s.submit({"command": "echo once", "idempotency_key": key, "labels": {"idem": key}})
    status, again = s.request("POST", "/v1/jobs",
                              {"command": "echo once", "idempotency_key": key, "labels": {"idem": key}})
    assert status in (200, 202), (status, again)
    assert again["id"] == first["id"], (first, again)
    done = s.wait(first["id"], timeout=30)
    assert done["state"] == "succeeded", done
    # after the job finished, the key still names it
    status, late = s.request("POST", "/v1/jobs", {"command": "echo once", "idempotency_key": key})
    assert status in (200, 202) and late["id"] == first["id"], (status, late)
    assert late["state"] == "succeeded", late

    # many at once with a fresh key: one job, everyone told its id
    key2 = "idem-" + secrets.token_hex(6)
    got, errors = [], []

    def submit():
        try:
            deadline = time.monotonic() + 20
            while True:
                st, body = s.request("POST", "/v1/jobs", {"command": "echo race", "idempotency_key": key2,
                                                          "labels": {"idem": key2}})
                if st in (200, 202):
                    got.append(body["id"])
                    return
                # 409: the first submission is still being written; retry as told
                assert st == 409 and time.monotonic() < deadline, (st, body)
                time.sleep(0.1)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(got) == 8 and len(set(got)) == 1, got
    s.wait(got[0], timeout=30)
    for k in (key, key2):
        ids = wait_history(s, lambda ids: len(ids) >= 1, label="idem:" + k)
        time.sleep(1)  # a second job, if any, would be recorded by now too
        ids = s.history_ids(label="idem:" + k)
        assert len(ids) == 1, (k, ids)


TESTS = [test_env_cwd_stdin, test_no_stdin_is_empty, test_missing_cwd_rejected,
         test_exit_code_and_signal, test_idempotency_key]


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
    with Stack(workers=2, env={"BX_CONCURRENCY": "4"}) as s:
        run(s, TESTS)
