"""max_retries with retry_backoff_s (doubling), optionally only for the
exit codes in retry_on: attempt counts, the final state is the last
attempt's, every attempt is kept in the history record, and a job waiting
for its retry holds no worker slot."""

import os
import sys
import time
import traceback

from harness import Stack, ts


def record(s, job_id, cond, timeout=30):
    """The job's history record (from GET /v1/jobs) once cond(record) holds."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = s.request("GET", "/v1/jobs?limit=100")
        assert status == 200, (status, body)
        recs = [j for j in body["jobs"] if j["id"] == job_id]
        if recs and cond(recs[0]):
            return recs[0]
        if time.monotonic() > deadline:
            raise AssertionError("history record of %s after %ss: %r" % (job_id, timeout, recs))
        time.sleep(0.3)


def test_exit1_retried_twice(s):
    job = s.submit({"command": "echo try; echo oops >&2; exit 1", "max_retries": 2,
                    "retry_backoff_s": 0.2, "labels": {"t": "retry"}})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "failed" and done["exit_code"] == 1, done
    assert done["attempt"] == 3, done
    assert done["stdout"] == "try\n" and done["stderr"] == "oops\n", done
    rec = record(s, job["id"], lambda r: r.get("attempt") == 3 and r["state"] == "failed")
    assert rec["exit_code"] == 1 and rec["max_retries"] == 2, rec
    attempts = rec.get("attempts")
    assert isinstance(attempts, list), "no attempts array in the record: %r" % rec
    # earlier attempts in the array; the last one may be there too, or only at the top
    by_n = {a.get("attempt"): a for a in attempts}
    assert {1, 2} <= set(by_n), attempts
    assert set(by_n) <= {1, 2, 3} and len(attempts) == len(by_n), attempts
    for n in (1, 2):
        a = by_n[n]
        assert a.get("state") == "failed" and a.get("exit_code") == 1, a
        assert a.get("started_at") and a.get("finished_at") and a.get("worker"), a
        assert a.get("stdout") == "try\n", a
    # the delays: >= 0.2 s then >= 0.4 s between attempts (exponential)
    gap1 = ts(by_n[2]["started_at"]) - ts(by_n[1]["finished_at"])
    gap2 = ts(rec["started_at"]) - ts(by_n[2]["finished_at"])
    assert gap1 >= 0.19 and gap2 >= 0.39, (gap1, gap2)
    assert gap1 < 5 and gap2 < 5, (gap1, gap2)
    # the same record through GET /v1/jobs/{id}
    assert s.job(job["id"])["attempt"] == 3


def test_retry_then_success(s):
    counter = os.path.join(s.run_dir, "retry-counter")
    cmd = ('n=$(cat "%s" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "%s"; echo run $n; '
           '[ "$n" -ge 2 ] || exit 9' % (counter, counter))
    job = s.submit({"command": cmd, "max_retries": 3, "retry_backoff_s": 0.1})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "succeeded" and done["attempt"] == 2 and done["exit_code"] == 0, done
    assert done["stdout"] == "run 2\n", done
    rec = record(s, job["id"], lambda r: r["state"] == "succeeded")
    assert [a.get("exit_code") for a in rec.get("attempts", []) if a.get("attempt") == 1] == [9], rec


def test_retry_on_exit_codes(s):
    # 1 is not listed: no retry
    job = s.submit({"command": "exit 1", "max_retries": 2, "retry_backoff_s": 0.1, "retry_on": [3, 4]})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "failed" and done["exit_code"] == 1 and done["attempt"] == 1, done
    # 3 is listed: retried to the end
    job = s.submit({"command": "exit 3", "max_retries": 2, "retry_backoff_s": 0.1, "retry_on": [3, 4]})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "failed" and done["exit_code"] == 3 and done["attempt"] == 3, done
    # a code that changes: 4 (retried), then 5 (not listed): ends at attempt 2
    counter = os.path.join(s.run_dir, "retry-on-counter")
    cmd = 'n=$(cat "%s" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "%s"; exit $((n+3))' % (counter, counter)
    job = s.submit({"command": cmd, "max_retries": 5, "retry_backoff_s": 0.1, "retry_on": [3, 4]})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "failed" and done["exit_code"] == 5 and done["attempt"] == 2, done
    # bad retry_on is refused at submission
    status, body = s.request("POST", "/v1/jobs", {"command": "true", "retry_on": "3"})
    assert status == 400 and "retry_on" in body["error"]["message"], (status, body)


def test_succeeded_not_retried(s):
    job = s.submit({"command": "echo fine", "max_retries": 3, "retry_backoff_s": 0.1})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "succeeded" and done["attempt"] == 1, done


def test_waiting_retry_holds_no_slot(s):
    # One worker, one slot. A's retry waits 3 s; B, submitted meanwhile,
    # runs and finishes before A's second attempt starts.
    a = s.submit({"command": "exit 1", "max_retries": 1, "retry_backoff_s": 3})
    deadline = time.monotonic() + 15
    while True:
        cur = s.job(a["id"])
        if cur.get("attempt") == 2 and cur["state"] == "queued":
            break
        assert time.monotonic() < deadline, "A never went back to queued with attempt 2: %r" % cur
        time.sleep(0.05)
    b = s.submit({"command": "echo b"})
    bdone = s.wait(b["id"], timeout=15)
    adone = s.wait(a["id"], timeout=30)
    assert bdone["state"] == "succeeded", bdone
    assert adone["state"] == "failed" and adone["attempt"] == 2, adone
    assert ts(bdone["finished_at"]) < ts(adone["started_at"]), (bdone, adone)
    assert ts(bdone["finished_at"]) - ts(bdone["submitted_at"]) < 2.0, bdone


TESTS = [test_exit1_retried_twice, test_retry_then_success, test_retry_on_exit_codes,
         test_succeeded_not_retried, test_waiting_retry_holds_no_slot]


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
    with Stack(workers=1, env={"BX_CONCURRENCY": "1"}) as s:
        run(s, TESTS)
