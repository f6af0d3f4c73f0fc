"""GET /v1/jobs/{id}/events (Server-Sent Events) and GET /v1/workers,
against a real stack in a namespace of its own:

  - a job printing a line a second: its lines arrive as output events
    over time, at contiguous offsets, between a first and a last state
    event, and the stream ends after the last
  - a finished job: one state event, then the end; the same once Redis let
    the job go (from MongoDB); unknown id 404, bad id 400, no token 401
  - bytes that are not UTF-8 come as base64 and decode to what was written
  - output beyond max_output_bytes: a piece says truncated, the last one
    ends where the command's output ended
  - a retry: the state events show attempt 2, output starts again at 0
  - many streams, their clients gone: the API lets go of every one
  - a keep-alive comment after ~15 s of silence
  - /v1/workers lists both workers with the running job; a worker that
    stops heartbeating drops out, and comes back when it resumes

Run by tests/run.sh (standard library and Debian's python3-redis).
"""
import base64
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

import redis

from harness import Stack

TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "rejected"}


def open_events(s, job_id, token=True, timeout=60):
    """(HTTP status, response) for GET /v1/jobs/{id}/events."""
    host, port = s.listen.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {"Authorization": "Bearer " + s.token} if token else {}
    c.request("GET", "/v1/jobs/%s/events" % job_id, headers=headers)
    r = c.getresponse()
    return r.status, r


def read_events(resp):
    """Every event of a stream until it ends: a list of (seconds since the
    first, name, data); comments as name ":"."""
    out, name, data, t0 = [], None, [], time.monotonic()
    while True:
        line = resp.readline()
        if not line:
            return out
        line = line.decode("utf-8").rstrip("\n")
        if line == "":
            if name is not None:
                out.append((time.monotonic() - t0, name, "\n".join(data)))
            name, data = None, []
        elif line.startswith(":"):
            out.append((time.monotonic() - t0, ":", line[1:].strip()))
        elif line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data.append(line[len("data: "):])


def events_of(s, job_id, timeout=60):
    status, resp = open_events(s, job_id, timeout=timeout)
    assert status == 200, (status, resp.read())
    assert resp.getheader("Content-Type") == "text/event-stream", resp.getheaders()
    return [(t, n, json.loads(d) if n != ":" else d) for t, n, d in read_events(resp)]


def output_bytes(evs, stream="stdout"):
    """The bytes of a stream's output events, checked to follow each
    other: exactly until a piece says truncated; after one, offsets are
    lower bounds (the API cannot know how much the worker dropped), so
    they only never go back."""
    out, want, lost = b"", 0, False
    for _, n, d in evs:
        if n == "output" and d["stream"] == stream:
            data = d["data"].encode() if d.get("encoding") != "base64" else base64.b64decode(d["data"])
            lost = lost or d.get("truncated", False)
            if not lost:
                assert d["offset"] == want, (d, want)
            else:
                assert d["offset"] >= want, (d, want)
            out += data
            want = d["offset"] + len(data)
    return out


def states(evs):
    return [(d["state"], d["attempt"]) for _, n, d in evs if n == "state"]


def test_lines_over_time(s):
    job = s.submit({"command": "for i in 1 2 3; do echo line $i; sleep 1; done"})
    evs = events_of(s, job["id"])
    names = [n for _, n, _ in evs]
    assert names[0] == "state" and names[-1] == "state", names
    assert evs[-1][2]["state"] == "succeeded", evs[-1]
    assert evs[0][2]["state"] in ("queued", "running"), evs[0]
    assert output_bytes(evs) == b"line 1\nline 2\nline 3\n", evs
    outs = [(t, d) for t, n, d in evs if n == "output"]
    # produced over ~2 s: the first line long before the end
    assert len(outs) >= 2, outs
    assert evs[-1][0] - outs[0][0] >= 1.2, [(round(t, 2), n) for t, n, _ in evs]
    assert all(d["attempt"] == 1 for _, d in outs), outs
    # the doc of the last state event is the job's status
    assert evs[-1][2]["stdout"] == "line 1\nline 2\nline 3\n", evs[-1]


def test_finished_and_errors(s):
    job = s.submit({"command": "echo done"})
    s.wait(job["id"])
    evs = events_of(s, job["id"], timeout=10)
    assert [n for _, n, _ in evs] == ["state"], evs
    assert evs[0][2]["state"] == "succeeded" and evs[0][2]["stdout"] == "done\n", evs
    status, r = open_events(s, "00000000-0000-7000-8000-000000000000")
    assert status == 404, (status, r.read())
    status, r = open_events(s, "not-an-id")
    assert status == 400, (status, r.read())
    status, r = open_events(s, job["id"], token=False)
    assert status == 401, (status, r.read())

    # Redis lets the job go: the record in MongoDB answers, as one event
    deadline = time.monotonic() + 60
    while True:
        st, body = s.request("GET", "/v1/jobs?limit=100")
        if st == 200 and any(j["id"] == job["id"] for j in body["jobs"]):
            break
        assert time.monotonic() < deadline, "never recorded"
        time.sleep(0.3)
    r = redis.Redis.from_url(os.environ.get("BX_REDIS_URL") or "redis://127.0.0.1:6379/0")
    assert r.delete("%s:job:%s" % (s.namespace, job["id"])) == 1
    evs = events_of(s, job["id"], timeout=10)
    assert [n for _, n, _ in evs] == ["state"], evs
    assert evs[0][2]["state"] == "succeeded" and evs[0][2]["id"] == job["id"], evs


def test_binary(s):
    job = s.submit({"command": r"printf 'caf\303\251\n'; sleep 1.2; printf '\000\001\377 bin\n'; sleep 1.2; echo end"})
    evs = events_of(s, job["id"])
    want = b"caf\xc3\xa9\n\x00\x01\xff bin\nend\n"
    assert output_bytes(evs) == want, evs
    outs = [d for _, n, d in evs if n == "output"]
    assert any(d.get("encoding") == "base64" for d in outs), outs
    assert any(d.get("encoding") is None and "caf\u00e9" in d["data"] for d in outs), outs


def test_truncated(s):
    # 60 lines of 40 bytes a second for 3 s, 400 bytes kept: the kept
    # tail slides further than it holds between two looks
    cmd = ("for s in 1 2 3; do for i in $(seq 1 60); do printf 'second %d line %03d of the output.....\\n' $s $i; "
           "done; sleep 1; done; echo the-end")
    job = s.submit({"command": cmd, "max_output_bytes": 400})
    evs = events_of(s, job["id"])
    last = evs[-1][2]
    assert last["state"] == "succeeded" and last["stdout_truncated"] is True, last
    outs = [d for _, n, d in evs if n == "output"]
    assert any(d.get("truncated") for d in outs), outs
    # the last piece ends where the output ended, and holds its end
    end = outs[-1]
    assert end["offset"] + len(end["data"]) == last["stdout_bytes"], (end, last["stdout_bytes"])
    assert end["data"].endswith("the-end\n"), end
    output_bytes(evs)


def test_retry(s):
    job = s.submit({"command": "echo attempt; sleep 1.2; exit 1", "max_retries": 1, "retry_backoff_s": 1})
    evs = events_of(s, job["id"])
    st = states(evs)
    assert st[-1] == ("failed", 2), st
    assert ("queued", 2) in st or ("running", 2) in st, st
    outs = [d for _, n, d in evs if n == "output"]
    for a in (1, 2):
        mine = [d for d in outs if d["attempt"] == a]
        assert mine and mine[0]["offset"] == 0 and "".join(d["data"] for d in mine) == "attempt\n", outs


def metric(s, name):
    st, text = s.request("GET", "/metrics", auth=False)
    assert st == 200, st
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no metric %s" % name)


def test_clients_leave(s):
    job = s.submit({"command": "sleep 8"})
    host, port = s.listen.rsplit(":", 1)
    socks = []
    for _ in range(50):
        c = socket.create_connection((host, int(port)))
        c.sendall(("GET /v1/jobs/%s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                   % (job["id"], s.token)).encode())
        socks.append(c)
    for c in socks:
        c.settimeout(10)
        got = b""
        while b"event: state" not in got:
            chunk = c.recv(65536)
            assert chunk, got
            got += chunk
    assert metric(s, "bx_api_event_streams") >= 50
    for c in socks:
        c.close()
    deadline = time.monotonic() + 5
    while metric(s, "bx_api_event_streams") > 0:
        assert time.monotonic() < deadline, "streams of gone clients still open"
        time.sleep(0.2)


def test_keepalive(s):
    job = s.submit({"command": "sleep 17"})
    evs = events_of(s, job["id"])
    comments = [t for t, n, _ in evs if n == ":"]
    assert comments and 13 <= comments[0] <= 17.5, [(round(t, 1), n) for t, n, _ in evs]
    assert evs[-1][2]["state"] == "succeeded", evs[-1]


def workers(s):
    st, body = s.request("GET", "/v1/workers")
    assert st == 200, (st, body)
    return body["workers"]


def test_workers(s):
    ws = workers(s)
    assert len(ws) == 2, ws
    for w in ws:
        for k, t in (("id", str), ("host", str), ("pid", int), ("queues", list), ("concurrency", int),
                     ("running", int), ("jobs", list), ("state", str), ("last_seen", str)):
            assert isinstance(w.get(k), t), (k, w)
        assert w["queues"] == ["default"], w
    assert len({w["id"] for w in ws}) == 2, ws
    st, _ = s.request("GET", "/v1/workers", auth=False)
    assert st == 401, st

    # a running job shows on its worker at the next heartbeat (5 s)
    job = s.submit({"command": "sleep 8"})
    deadline = time.monotonic() + 7
    while not any(job["id"] in w["jobs"] for w in workers(s)):
        assert time.monotonic() < deadline, workers(s)
        time.sleep(0.5)
    w = [w for w in workers(s) if job["id"] in w["jobs"]][0]
    assert w["running"] >= 1, w

    # a worker that stops heartbeating drops out (15 s expiry), and is
    # back at its next heartbeat once it resumes
    with open(os.path.join(s.run_dir, "pids", "bx-worker-1.pid")) as f:
        pid = int(f.read().split()[0])
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 20
        while any(w["pid"] == pid for w in workers(s)):
            assert time.monotonic() < deadline, workers(s)
            time.sleep(0.5)
        assert len(workers(s)) == 1
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 7
    while len(workers(s)) != 2:
        assert time.monotonic() < deadline, workers(s)
        time.sleep(0.5)


if __name__ == "__main__":
    with Stack(workers=2, env={"BX_CONCURRENCY": "4"}) as s:
        for t in (test_lines_over_time, test_finished_and_errors, test_binary, test_truncated,
                  test_retry, test_clients_leave, test_workers, test_keepalive):
            t(s)
            print("ok", t.__name__, file=sys.stderr)
