"""History: GET /v1/jobs filters by state, queue, label and a time range
(since/until, on submission time), pages newest first with before/limit;
GET /v1/jobs/{id} (and its output) still answers from MongoDB once Redis
has let the status expire (BX_STATUS_TTL_S=2 here)."""

import os
import secrets
import subprocess
import sys
import time
import traceback
import urllib.parse
import urllib.request
from datetime import datetime, timezone

from harness import Stack

TTL_S = 2


def rfc3339(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        "%03dZ" % int((t % 1) * 1000)


def page(s, query):
    status, body = s.request("GET", "/v1/jobs?" + query)
    assert status == 200, (query, status, body)
    assert set(body) >= {"jobs", "next"}, body
    return body


def all_ids(s, query, limit=100):
    ids, before, pages = [], None, 0
    while True:
        q = "&".join(x for x in ("limit=%d" % limit, query, "before=" + before if before else "") if x)
        body = page(s, q)
        ids += [j["id"] for j in body["jobs"]]
        pages += 1
        before = body["next"]
        if not before:
            return ids
        assert pages < 100, "paging does not end: %r" % query


def wait_all_recorded(s, ids, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        have = {j["id"]: j["state"] for j in page(s, "limit=1000")["jobs"]}
        if all(have.get(i) not in (None, "queued", "running") for i in ids):
            return have
        assert time.monotonic() < deadline, "not all recorded after %ss: %r" % (timeout, have)
        time.sleep(0.3)


class Data:
    pass


def make_jobs(s):
    """Two batches, a time apart; the ids of each kind."""
    d = Data()
    d.run = secrets.token_hex(4)
    d.t0 = time.time() - 0.5
    lab = {"run": d.run}
    d.ok1 = [s.submit({"command": "echo ok", "labels": dict(lab, group="a")})["id"] for _ in range(3)]
    d.fail1 = [s.submit({"command": "exit 2", "labels": dict(lab, group="b")})["id"] for _ in range(2)]
    time.sleep(1.0)
    d.t1 = time.time()
    time.sleep(1.0)
    d.ok2 = [s.submit({"command": "echo ok", "labels": dict(lab, group="a")})["id"] for _ in range(2)]
    d.cancelled = s.submit({"command": "true", "queue": "nobody", "labels": dict(lab, group="c")})["id"]
    status, body = s.request("DELETE", "/v1/jobs/" + d.cancelled)
    assert status in (200, 202), (status, body)
    d.t2 = time.time() + 0.5
    d.batch1 = d.ok1 + d.fail1
    d.batch2 = d.ok2 + [d.cancelled]
    d.all = d.batch1 + d.batch2
    for i in d.ok1 + d.fail1 + d.ok2:
        s.wait(i, timeout=30)
    wait_all_recorded(s, d.all)
    return d


def newest_first(ids):
    return sorted(ids, reverse=True)  # UUIDv7: ids sort by submission time


def test_filters(s, d):
    assert all_ids(s, "") == newest_first(d.all), all_ids(s, "")
    assert all_ids(s, "state=failed") == newest_first(d.fail1)
    assert all_ids(s, "state=succeeded") == newest_first(d.ok1 + d.ok2)
    assert all_ids(s, "state=cancelled") == [d.cancelled]
    assert all_ids(s, "state=timed_out") == []
    assert all_ids(s, "queue=nobody") == [d.cancelled]
    assert all_ids(s, "queue=default") == newest_first(d.ok1 + d.fail1 + d.ok2)
    assert all_ids(s, "label=group:a") == newest_first(d.ok1 + d.ok2)
    assert all_ids(s, "label=run:" + d.run) == newest_first(d.all)
    assert all_ids(s, "label=run:nope") == []
    assert all_ids(s, "label=group:a&state=failed") == []
    assert all_ids(s, "label=group:b&state=failed&queue=default") == newest_first(d.fail1)
    for j in page(s, "state=failed")["jobs"]:
        assert j["state"] == "failed" and j["exit_code"] == 2 and j["labels"]["group"] == "b", j


def test_time_range(s, d):
    t0, t1, t2 = rfc3339(d.t0), rfc3339(d.t1), rfc3339(d.t2)
    assert all_ids(s, "since=" + t1) == newest_first(d.batch2), (t1, all_ids(s, "since=" + t1))
    assert all_ids(s, "until=" + t1) == newest_first(d.batch1), (t1, all_ids(s, "until=" + t1))
    assert all_ids(s, "since=%s&until=%s" % (t0, t1)) == newest_first(d.batch1)
    assert all_ids(s, "since=%s&until=%s" % (t0, t2)) == newest_first(d.all)
    assert all_ids(s, "since=" + t2) == []
    assert all_ids(s, "since=%s&state=succeeded" % t1) == newest_first(d.ok2)
    # an offset other than Z means the same instant
    local = datetime.fromtimestamp(d.t1, timezone.utc).astimezone(
        timezone(__import__("datetime").timedelta(hours=2))).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    assert all_ids(s, "since=" + urllib.parse.quote(local)) == newest_first(d.batch2), local


def test_paging(s, d):
    want = newest_first(d.all)  # 8 jobs
    body = page(s, "limit=3")
    assert [j["id"] for j in body["jobs"]] == want[:3] and body["next"] == want[2], body["next"]
    body = page(s, "limit=3&before=" + body["next"])
    assert [j["id"] for j in body["jobs"]] == want[3:6], body
    body = page(s, "limit=3&before=" + body["next"])
    assert [j["id"] for j in body["jobs"]] == want[6:] and body["next"] is None, body
    assert all_ids(s, "", limit=1) == want
    assert all_ids(s, "", limit=4) == want
    assert all_ids(s, "label=group:a", limit=2) == newest_first(d.ok1 + d.ok2)
    body = page(s, "limit=2&before=" + want[-1])
    assert body["jobs"] == [] and body["next"] is None, body


def test_bad_queries(s, d):
    for q in ("state=bogus", "limit=0", "limit=1001", "limit=x", "before=nope", "since=yesterday",
              "label=novalue", "colour=red", "state=failed&state=succeeded"):
        status, body = s.request("GET", "/v1/jobs?" + q)
        assert status == 400 and body["error"]["message"], (q, status, body)


def redis_has(s, job_id):
    url = s.env.get("BX_REDIS_URL", "redis://127.0.0.1:6379/0")
    r = subprocess.run(["redis-cli", "-u", url, "EXISTS", "%s:job:%s" % (s.namespace, job_id)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip() == "1"


def test_status_from_mongodb_after_expiry(s, d):
    job = s.submit({"command": "printf 'kept\\377\\n'; echo e >&2; exit 3", "labels": {"t": "ttl"}})
    live = s.wait(job["id"], timeout=30)
    assert live["state"] == "failed" and live["exit_code"] == 3, live
    wait_all_recorded(s, [job["id"]])
    deadline = time.monotonic() + TTL_S + 10
    while redis_has(s, job["id"]):
        assert time.monotonic() < deadline, "Redis still has the status %ss after the end" % (TTL_S + 10)
        time.sleep(0.3)
    status, rec = s.request("GET", "/v1/jobs/" + job["id"])
    assert status == 200, (status, rec)
    for k in ("id", "state", "exit_code", "attempt", "queue", "labels", "submitted_at", "started_at",
              "finished_at", "duration_ms", "worker", "stdout", "stdout_encoding", "stdout_bytes",
              "stderr", "request_id"):
        assert rec.get(k) == live.get(k), (k, rec.get(k), live.get(k))
    req = urllib.request.Request(s.url + "/v1/jobs/%s/output" % job["id"],
                                 headers={"Authorization": "Bearer " + s.token})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.read() == b"kept\xff\n"
    # the jobs made earlier have expired from Redis too, and still answer
    for i in d.all:
        assert s.job(i)["state"] in ("succeeded", "failed", "cancelled"), i
    status, body = s.request("DELETE", "/v1/jobs/" + job["id"])
    assert status == 409, (status, body)


TESTS = [test_filters, test_time_range, test_paging, test_bad_queries, test_status_from_mongodb_after_expiry]


def run(s, tests):
    failed = []
    t0 = time.monotonic()
    try:
        d = make_jobs(s)
    except Exception:
        print("FAIL make_jobs\n%s" % traceback.format_exc(), file=sys.stderr)
        raise SystemExit("failed: make_jobs")
    print("ok make_jobs (%.1fs)" % (time.monotonic() - t0), file=sys.stderr)
    for t in tests:
        t0 = time.monotonic()
        try:
            t(s, d)
            print("ok %s (%.1fs)" % (t.__name__, time.monotonic() - t0), file=sys.stderr)
        except Exception:
            failed.append(t.__name__)
            print("FAIL %s (%.1fs)\n%s" % (t.__name__, time.monotonic() - t0, traceback.format_exc()),
                  file=sys.stderr)
    if failed:
        raise SystemExit("failed: " + " ".join(failed))


if __name__ == "__main__":
    with Stack(workers=2, env={"BX_CONCURRENCY": "2", "BX_STATUS_TTL_S": str(TTL_S)}) as s:
        run(s, TESTS)
