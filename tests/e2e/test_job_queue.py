"""queue and priority: a worker consumes only its BX_QUEUES, so a job on a
queue no worker consumes stays queued; within a queue, higher priority
runs first."""

import sys
import time
import traceback

from harness import Stack, ts


def test_unconsumed_queue_stays_queued(s):
    job = s.submit({"command": "echo should-not-run", "queue": "nobody"})
    assert job["state"] == "queued" and job["queue"] == "nobody", job
    # the worker is alive: a job on its queue runs meanwhile
    other = s.submit({"command": "echo ran"})
    assert s.wait(other["id"], timeout=30)["state"] == "succeeded"
    time.sleep(3)
    now = s.job(job["id"])
    assert now["state"] == "queued" and not now.get("started_at") and not now.get("worker"), now
    status, body = s.request("DELETE", "/v1/jobs/" + job["id"])  # tidy up
    assert status in (200, 202), (status, body)


def test_bad_queue_and_priority_refused(s):
    for bad in ({"priority": 10}, {"priority": -1}, {"priority": "9"}, {"queue": ""},
                {"queue": "x" * 65}):
        status, body = s.request("POST", "/v1/jobs", dict({"command": "true"}, **bad))
        assert status == 400, (bad, status, body)
        assert list(bad)[0] in body["error"]["message"], (bad, body)


def test_higher_priority_first(s):
    # One worker with one slot, kept busy; then 3 low and 3 high priority
    # jobs are queued (low first): the high ones must all run before the low.
    blocker = s.submit({"command": "sleep 2", "priority": 0})
    s.wait_state(blocker["id"], {"running"}, 15)
    low = [s.submit({"command": "echo low-%d" % i, "priority": 1})["id"] for i in range(3)]
    high = [s.submit({"command": "echo high-%d" % i, "priority": 9})["id"] for i in range(3)]
    mid = s.submit({"command": "echo mid", "priority": 5})["id"]
    done = {i: s.wait(i, timeout=60) for i in low + high + [mid]}
    assert all(d["state"] == "succeeded" for d in done.values()), done
    order = sorted(done, key=lambda i: ts(done[i]["started_at"]))
    names = [done[i]["stdout"].strip() for i in order]
    assert names == ["high-0", "high-1", "high-2", "mid", "low-0", "low-1", "low-2"], \
        "run order %s (the worker prefetches %s)" % (names, "2 x concurrency")


TESTS = [test_unconsumed_queue_stays_queued, test_bad_queue_and_priority_refused,
         test_higher_priority_first]


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
    with Stack(workers=1, env={"BX_CONCURRENCY": "1", "BX_QUEUES": "default"}) as s:
        run(s, TESTS)
