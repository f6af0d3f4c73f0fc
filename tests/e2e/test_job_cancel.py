"""DELETE /v1/jobs/{id}: a queued job never starts, even when no worker
consumes its queue at the moment of the cancel (a worker that comes later
drops it at dequeue); a running one is killed within a second or two,
its whole tree included; a finished one is a 409."""

import os
import signal
import subprocess
import sys
import time
import traceback

from harness import ROOT, Stack, kill_leftovers, sleeps


def history(s, **filters):
    q = "".join("&%s=%s" % kv for kv in filters.items())
    status, body = s.request("GET", "/v1/jobs?limit=100" + q)
    assert status == 200, (status, body)
    return body["jobs"]


def wait_recorded(s, job_id, state, timeout=30, **filters):
    deadline = time.monotonic() + timeout
    while True:
        recs = [j for j in history(s, **filters) if j["id"] == job_id]
        if recs and recs[0]["state"] == state:
            return recs[0]
        if time.monotonic() > deadline:
            raise AssertionError("job %s not in history %r as %s after %ss: %r"
                                 % (job_id, filters, state, timeout, recs))
        time.sleep(0.3)


class ExtraWorker:
    """One more bx-worker of the stack, consuming only `queues`: started
    here, stopped here by its pid."""

    def __init__(self, s, queues, name):
        self.s, self.queues, self.name = s, queues, name
        self.proc = None

    def __enter__(self):
        env = dict(self.s.env, BX_QUEUES=self.queues, BX_WORKER_ID=self.name, BX_FOREGROUND="1",
                   BX_CONCURRENCY="2")
        log = open(os.path.join(self.s.run_dir, "logs", "%s.log" % self.name), "ab")
        self.proc = subprocess.Popen([os.path.join(ROOT, "bin", "bx-worker")], env=env,
                                     stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return False


def test_cancel_queued_never_starts(s):
    marker = os.path.join(s.run_dir, "cancelled-job-ran")
    job = s.submit({"command": "touch '%s'; echo ran" % marker, "queue": "nobody",
                    "labels": {"t": "cancel-queued"}})
    time.sleep(1)
    assert s.job(job["id"])["state"] == "queued", s.job(job["id"])
    status, body = s.request("DELETE", "/v1/jobs/" + job["id"])
    assert status in (200, 202), (status, body)
    assert body["state"] == "cancelled", body
    now = s.job(job["id"])
    assert now["state"] == "cancelled" and not now.get("started_at"), now
    assert now.get("finished_at"), now

    # A worker for that queue comes along: it must drop the job, not run it.
    # A second job on the same queue proves the worker is consuming.
    with ExtraWorker(s, "nobody", "extra-nobody"):
        probe = s.submit({"command": "echo probe", "queue": "nobody"})
        pdone = s.wait(probe["id"], timeout=30)
        assert pdone["state"] == "succeeded" and pdone["worker"] == "extra-nobody", pdone
        time.sleep(1)
    after = s.job(job["id"])
    assert after["state"] == "cancelled" and not after.get("started_at"), after
    assert not os.path.exists(marker), "the cancelled job ran: %s exists" % marker
    rec = wait_recorded(s, job["id"], "cancelled", label="t:cancel-queued")
    assert rec["queue"] == "nobody" and not rec.get("started_at"), rec
    status, body = s.request("GET", "/v1/jobs?state=cancelled&queue=nobody")
    assert status == 200 and [j["id"] for j in body["jobs"]] == [job["id"]], body


def test_cancel_running_kills_tree(s):
    job = s.submit({"command": "sleep 30.8 & sleep 30; wait", "timeout_s": 60})
    try:
        s.wait_state(job["id"], {"running"}, 15)
        deadline = time.monotonic() + 5
        while not sleeps("30.8") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sleeps("30.8"), "the job's `sleep 30.8` never ran"
        t0 = time.monotonic()
        status, body = s.request("DELETE", "/v1/jobs/" + job["id"])
        assert status in (200, 202), (status, body)
        done = s.wait_state(job["id"], {"cancelled", "failed", "succeeded", "timed_out", "rejected"}, 10)
        took = time.monotonic() - t0
        assert done["state"] == "cancelled", done
        assert took <= 2.0, "cancelled after %.2fs, not within ~1-2 s" % took
        deadline = time.monotonic() + 1
        while sleeps("30.8") and time.monotonic() < deadline:
            time.sleep(0.05)
        left = kill_leftovers("30.8")
        assert not left, "`sleep 30.8` still running (pids %s) 1 s after the job was cancelled" % left
        rec = wait_recorded(s, job["id"], "cancelled")
        assert rec.get("started_at") and rec.get("finished_at"), rec
    finally:
        kill_leftovers("30.8")


def test_cancel_finished_is_409(s):
    job = s.submit({"command": "true"})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "succeeded", done
    status, body = s.request("DELETE", "/v1/jobs/" + job["id"])
    assert status == 409, (status, body)
    assert body["error"]["code"] == "conflict" and "succeeded" in body["error"]["message"], body
    assert s.job(job["id"])["state"] == "succeeded"
    # a second cancel of a cancelled job is a 409 too
    q = s.submit({"command": "true", "queue": "nobody"})
    status, _ = s.request("DELETE", "/v1/jobs/" + q["id"])
    assert status in (200, 202), status
    status, body = s.request("DELETE", "/v1/jobs/" + q["id"])
    assert status == 409, (status, body)
    status, body = s.request("DELETE", "/v1/jobs/00000000-0000-7000-8000-000000000000")
    assert status == 404, (status, body)


TESTS = [test_cancel_queued_never_starts, test_cancel_running_kills_tree, test_cancel_finished_is_409]


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
