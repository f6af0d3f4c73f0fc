"""Output: cut at max_output_bytes per stream keeping head and tail, with
the total and the cut said in fields of their own; bytes that are not
UTF-8 (or are NUL) kept exactly; GET /v1/jobs/{id}/output returns the raw
bytes, and while the job runs, what it has produced so far; the worker's
memory stays bounded however much a command writes; /events streams the
job as Server-Sent Events until it ends."""

import base64
import os
import sys
import time
import traceback
import urllib.error
import urllib.request

from harness import Stack


def raw(s, path, timeout=30):
    """(status, headers, body bytes) of a GET."""
    req = urllib.request.Request(s.url + path, headers={"Authorization": "Bearer " + s.token})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def kept(done, stream):
    """The kept bytes of a stream, decoded per <stream>_encoding."""
    text = done.get(stream)
    enc = done.get(stream + "_encoding")
    assert text is not None, (stream, done)
    if enc == "base64":
        return base64.b64decode(text)
    assert enc in ("utf-8", None), (stream, enc)
    return text.encode("utf-8")


def test_truncated_keeps_head_and_tail(s):
    # 3,000,000 bytes: HEAD, x..., TAIL; and 3,000,000 on stderr: hd, y..., tl
    cmd = ("{ printf HEAD; head -c 2999992 /dev/zero | tr '\\0' x; printf TAIL; }; "
           "{ printf hd; head -c 2999996 /dev/zero | tr '\\0' y; printf tl; } >&2")
    job = s.submit({"command": cmd, "max_output_bytes": 1000, "timeout_s": 60})
    done = s.wait(job["id"], timeout=60)
    assert done["state"] == "succeeded", done
    out = kept(done, "stdout")
    assert len(out) == 1000, len(out)
    assert done["stdout_truncated"] is True and done["stdout_bytes"] == 3000000, \
        {k: v for k, v in done.items() if k not in ("stdout", "stderr")}
    assert out.startswith(b"HEAD") and out.endswith(b"TAIL"), (out[:10], out[-10:])
    assert out[4:-4] == b"x" * 992, out
    cut = done.get("stdout_cut_at")
    assert isinstance(cut, int) and 4 <= cut <= 996, cut
    err = kept(done, "stderr")
    assert len(err) == 1000 and err.startswith(b"hd") and err.endswith(b"tl"), (err[:4], err[-4:])
    assert done["stderr_truncated"] is True and done["stderr_bytes"] == 3000000, done["stderr_bytes"]
    # the cut is said in a field, not inside the output
    assert set(out[4:-4]) == {ord("x")}, "marker inside the output"
    status, hdrs, body = raw(s, "/v1/jobs/%s/output?stream=stdout" % job["id"])
    assert status == 200 and body == out, (status, len(body))
    status, hdrs, body = raw(s, "/v1/jobs/%s/output?stream=stderr" % job["id"])
    assert status == 200 and body == err, (status, len(body))


def test_not_truncated(s):
    job = s.submit({"command": "printf 'abc'", "max_output_bytes": 3})
    done = s.wait(job["id"], timeout=30)
    assert kept(done, "stdout") == b"abc" and done["stdout_truncated"] is False, done
    assert done["stdout_bytes"] == 3 and done.get("stdout_cut_at") is None, done
    assert done["stderr_bytes"] == 0 and kept(done, "stderr") == b"", done


def test_binary_output_kept_exactly(s):
    data = bytes(range(256)) * 3 + b"\xc3\x28 \xe2\x82 \xf0\x9f\x98 end\x00"
    path = os.path.join(s.run_dir, "binary-input")
    with open(path, "wb") as f:
        f.write(data)
    job = s.submit({"command": "cat '%s'; printf 'e\\000\\377' >&2" % path})
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "succeeded", done
    assert done["stdout_encoding"] == "base64", done.get("stdout_encoding")
    assert kept(done, "stdout") == data
    assert done["stdout_bytes"] == len(data) and done["stdout_truncated"] is False, done
    assert kept(done, "stderr") == b"e\x00\xff", done
    status, hdrs, body = raw(s, "/v1/jobs/%s/output" % job["id"])
    assert status == 200 and body == data, (status, body[:64])
    status, hdrs, body = raw(s, "/v1/jobs/%s/output?stream=stderr" % job["id"])
    assert status == 200 and body == b"e\x00\xff", (status, body)

    # valid UTF-8 stays text
    job = s.submit({"command": "printf 'h\\303\\251llo \\342\\234\\223\\n'"})
    done = s.wait(job["id"], timeout=30)
    assert done["stdout"] == "h\u00e9llo \u2713\n" and done["stdout_encoding"] == "utf-8", done


def test_binary_truncated(s):
    # 2000 bytes \377 then text: cut to 100, kept exactly (base64), head and tail
    job = s.submit({"command": "head -c 2000 /dev/zero | tr '\\0' '\\377'; printf 'the end'",
                    "max_output_bytes": 100})
    done = s.wait(job["id"], timeout=30)
    out = kept(done, "stdout")
    assert len(out) == 100 and out.endswith(b"the end") and out.startswith(b"\xff" * 10), out
    assert done["stdout_bytes"] == 2007 and done["stdout_truncated"] is True, done


def test_output_while_running(s):
    job = s.submit({"command": "echo first-line; echo err-line >&2; sleep 6; echo second-line",
                    "timeout_s": 30})
    s.wait_state(job["id"], {"running"}, 15)
    deadline = time.monotonic() + 4
    got = b""
    while time.monotonic() < deadline:
        status, hdrs, got = raw(s, "/v1/jobs/%s/output" % job["id"])
        assert status == 200, (status, got)
        if got == b"first-line\n":
            break
        time.sleep(0.2)
    assert got == b"first-line\n", "partial stdout while running: %r" % got
    assert s.job(job["id"])["state"] == "running"
    status, hdrs, err = raw(s, "/v1/jobs/%s/output?stream=stderr" % job["id"])
    assert status == 200 and err == b"err-line\n", (status, err)
    done = s.wait(job["id"], timeout=30)
    status, hdrs, got = raw(s, "/v1/jobs/%s/output" % job["id"])
    assert got == b"first-line\nsecond-line\n", got
    status, hdrs, body = raw(s, "/v1/jobs/%s/output?stream=nope" % job["id"])
    assert status == 400, (status, body)
    assert done["state"] == "succeeded"


def test_memory_bounded(s):
    with open(os.path.join(s.run_dir, "pids", "bx-worker-1.pid")) as f:
        pid = int(f.read().split()[0])

    def hwm_kb():
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])

    before = hwm_kb()
    job = s.submit({"command": "head -c 300000000 /dev/zero; head -c 100000000 /dev/zero >&2",
                    "max_output_bytes": 4096, "timeout_s": 120})
    done = s.wait(job["id"], timeout=120)
    after = hwm_kb()
    assert done["state"] == "succeeded", {k: v for k, v in done.items() if k not in ("stdout", "stderr")}
    assert done["stdout_bytes"] == 300000000 and done["stderr_bytes"] == 100000000, done["stdout_bytes"]
    assert len(kept(done, "stdout")) == 4096 and kept(done, "stdout") == b"\0" * 4096
    grew = after - before
    assert grew < 64 * 1024, "worker peak RSS grew by %d kB for 400 MB of output" % grew


def test_events_stream(s):
    job = s.submit({"command": "echo sse-one; sleep 1.5; echo sse-two >&2; sleep 0.5; exit 5",
                    "timeout_s": 30})
    req = urllib.request.Request(s.url + "/v1/jobs/%s/events" % job["id"],
                                 headers={"Authorization": "Bearer " + s.token,
                                          "Accept": "text/event-stream"})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            ctype = resp.headers.get("Content-Type", "")
            status = resp.status
            body = resp.read()  # ends when the job has ended
    except urllib.error.HTTPError as e:
        raise AssertionError("GET /events: %d %r" % (e.code, e.read()[:300]))
    took = time.monotonic() - t0
    assert status == 200 and ctype.startswith("text/event-stream"), (status, ctype)
    text = body.decode("utf-8", "replace")
    assert took < 15, "the stream did not end with the job (%.1fs)" % took
    for want in ("running", "failed", "sse-one", "sse-two"):
        assert want in text, "%r not in the event stream: %s" % (want, text[:2000])
    assert "data:" in text, text[:500]


TESTS = [test_truncated_keeps_head_and_tail, test_not_truncated, test_binary_output_kept_exactly,
         test_binary_truncated, test_output_while_running, test_memory_bounded, test_events_stream]


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
