"""The spine: a job travels API -> RabbitMQ -> worker -> Redis/recorder -> MongoDB,
against the real services, in a namespace of its own."""

import sys
import threading
import time

from harness import Stack


def wait_recorded(s, want, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        ids = s.history_ids()
        if want <= set(ids) or time.monotonic() > deadline:
            return ids
        time.sleep(0.5)


def test_one_job(s):
    status, _ = s.request("POST", "/v1/jobs", {"command": "true"}, auth=False)
    assert status == 401, status
    status, body = s.request("POST", "/v1/jobs", {"command": "true", "colour": "red"})
    assert status == 400 and "colour" in body["error"]["message"], (status, body)
    status, _ = s.request("GET", "/v1/jobs/00000000-0000-7000-8000-000000000000")
    assert status == 404, status

    job = s.submit({"command": "echo hello; echo oops >&2; exit 3"})
    assert job["state"] == "queued" and len(job["id"]) == 36, job
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "failed", done
    assert done["exit_code"] == 3, done
    assert done["stdout"] == "hello\n" and done["stderr"] == "oops\n", done
    for k in ("submitted_at", "started_at", "finished_at", "duration_ms", "worker", "attempt"):
        assert k in done, (k, done)
    ids = wait_recorded(s, {job["id"]})
    assert ids.count(job["id"]) == 1, ids
    status, rec = s.request("GET", "/v1/jobs?state=failed&limit=5")
    assert status == 200 and any(j["id"] == job["id"] and j["exit_code"] == 3 for j in rec["jobs"]), rec


def test_200_at_once(s):
    jobs, errors = {}, []

    def submit(lo, hi):
        try:
            for i in range(lo, hi):
                jobs[i] = s.submit({"command": "echo job-%d" % i, "labels": {"batch": "b200"}})["id"]
        except Exception as e:  # reported below: a thread's assert would be lost
            errors.append(e)

    threads = [threading.Thread(target=submit, args=(k * 25, k * 25 + 25)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(jobs.values())) == 200
    workers = set()
    for i, jid in jobs.items():
        done = s.wait(jid, timeout=120)
        assert done["state"] == "succeeded" and done["stdout"] == "job-%d\n" % i, done
        workers.add(done["worker"])
    assert len(workers) == 2, workers
    ids = wait_recorded(s, set(jobs.values()), timeout=120)
    batch = s.history_ids(label="batch:b200")
    for jid in jobs.values():
        assert ids.count(jid) == 1 and batch.count(jid) == 1, jid
    assert len(batch) == 200, len(batch)


if __name__ == "__main__":
    with Stack(workers=2, env={"BX_CONCURRENCY": "4"}) as s:
        for t in (test_one_job, test_200_at_once):
            t(s)
            print("ok", t.__name__, file=sys.stderr)
