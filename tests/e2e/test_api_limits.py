"""Input limits of the API (issue 5): an enormous body gets 413 without
being read and the API answers the next request at once; oversized headers,
URLs, fields and nesting get a 4xx naming the problem; a client sending its
request slowly, or nothing at all, is cut off after BX_API_TIMEOUT_S while
other clients are served as usual."""

import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time

from harness import Stack

TIMEOUT_S = 3  # BX_API_TIMEOUT_S of this stack
BODY_MAX = 1024 * 1024
FAST_MS = 200  # "at once"


def host_port(s):
    host, port = s.listen.rsplit(":", 1)
    return host, int(port)


def timed_get(s, path="/healthz"):
    t0 = time.monotonic()
    status, body = s.request("GET", path, auth=False)
    return status, (time.monotonic() - t0) * 1000


def read_reply(sock):
    """Status and JSON body of the one reply on sock (the server closes or
    sends Content-Length)."""
    f = sock.makefile("rb")
    line = f.readline()
    status = int(line.split()[1])
    length = None
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, _, v = h.decode().partition(":")
        if k.lower() == "content-length":
            length = int(v)
    body = f.read(length) if length is not None else f.read()
    return status, body


def open_conn(s):
    c = socket.create_connection(host_port(s), timeout=15)
    return c


def check_big_bodies(s):
    tok = s.token.encode()
    # 10 MB announced: the 413 comes before a byte of it is sent
    c = open_conn(s)
    t0 = time.monotonic()
    c.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
              b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (10 << 20))
    status, body = read_reply(c)
    ms = (time.monotonic() - t0) * 1000
    assert status == 413 and json.loads(body)["error"]["code"] == "too_large", (status, body)
    c.close()
    status, next_ms = timed_get(s)
    assert status == 200, status
    print("10 MB announced: 413 after %.1f ms; next GET %.1f ms" % (ms, next_ms), file=sys.stderr)
    assert next_ms < FAST_MS, next_ms

    # 10 MB sent by a real client (curl: Expect: 100-continue)
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(b'{"command":"' + b"a" * (10 << 20) + b'"}')
        f.flush()
        t0 = time.monotonic()
        r = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20",
                            "-H", "Authorization: Bearer " + s.token, "-H", "Content-Type: application/json",
                            "--data-binary", "@" + f.name, s.url + "/v1/jobs"],
                           capture_output=True, text=True)
        ms = (time.monotonic() - t0) * 1000
    assert r.stdout.rstrip().endswith("413"), (r.stdout[-300:], r.stderr)
    assert "too_large" in r.stdout and "1048576" in r.stdout, r.stdout[-300:]
    status, next_ms = timed_get(s)
    assert status == 200, status
    print("10 MB by curl: 413 after %.1f ms; next GET %.1f ms" % (ms, next_ms), file=sys.stderr)
    assert next_ms < FAST_MS, next_ms
    # each refusal is in the audit trail (the token is not read yet: "-")
    n413 = [l for l in s.log("bx-api").splitlines() if "audit=submit outcome=refused status=413" in l]
    assert len(n413) == 2 and all("token=-" in l for l in n413), n413

    # no length announced (chunked): cut off once past the limit, not read for ever
    c = open_conn(s)
    c.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
              b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % 65536 + b"a" * 65536 + b"\r\n"
    sent = 0
    cut = False
    try:
        for _ in range(10 << 4):  # 10 MB
            c.sendall(chunk)
            sent += 65536
    except OSError:
        cut = True
    if not cut:
        c.settimeout(5)
        try:
            cut = c.recv(100) == b""
        except socket.timeout:
            cut = False  # still reading: waiting for more chunks
        except OSError:
            cut = True
    c.close()
    assert cut, "a 10 MB chunked body was read whole"
    print("chunked: cut off after %d KiB sent" % (sent >> 10), file=sys.stderr)
    status, next_ms = timed_get(s)
    assert status == 200 and next_ms < FAST_MS, (status, next_ms)

    # just under the limit is read and judged by its fields
    status, body = s.request("POST", "/v1/jobs", {"command": "a" * (BODY_MAX - 100)})
    assert status == 400 and "'command'" in body["error"]["message"], (status, body)


def check_fields(s):
    status, body = s.request("POST", "/v1/jobs", {"command": "x" * (64 * 1024 + 1)})
    assert status == 400 and "'command'" in body["error"]["message"], (status, body)
    status, body = s.request("POST", "/v1/jobs", {"command": "true", "queue": "q" * 65})
    assert status == 400 and "'queue'" in body["error"]["message"], (status, body)
    status, body = s.request("POST", "/v1/jobs", {"command": "true", "lock": "l" * 201})
    assert status == 400 and "'lock'" in body["error"]["message"], (status, body)
    status, body = s.request("POST", "/v1/jobs", {"command": "true", "env": {"K": "v" * 65537}})
    assert status == 400 and "'env'" in body["error"]["message"], (status, body)
    deep = b'{"command":"true","retry_on":' + b"[" * 40 + b"]" * 40 + b"}"
    status, body = s.request("POST", "/v1/jobs", deep)
    assert status == 400 and "deeper than 16 levels" in body["error"]["message"], (status, body)
    deep = b"[" * 100000 + b"]" * 100000
    status, body = s.request("POST", "/v1/jobs", deep)
    assert status == 400 and "deeper than" in body["error"]["message"], (status, body)


def check_headers(s):
    # one header of 64 KiB, many small ones, a 100 KB URL: refused, and at once
    for name, req, want in [
        ("big header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n", 431),
        ("many headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
         b"".join(b"X-H%d: abc\r\n" % i for i in range(5000)) + b"\r\n", 431),
        ("long URL", b"GET /healthz?" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ]:
        c = open_conn(s)
        try:
            c.sendall(req)
        except OSError:
            pass  # it may close before reading all: the reply is there already
        status, _ = read_reply(c)
        c.close()
        assert status == want, (name, status)
    # a usual request with a few KiB of headers is fine
    status, body = s.request("GET", "/healthz", auth=False, headers={"X-Pad": "p" * 4096})
    assert status == 200, (status, body)


def slow_sender(s, data, step, delay, out, name):
    """Sends data step bytes at a time, delay s apart, until the server
    closes; out[name] = seconds until it did (None: it never did)."""
    c = open_conn(s)
    t0 = time.monotonic()
    try:
        for i in range(0, len(data), step):
            c.sendall(data[i:i + step])
            time.sleep(delay)
        c.settimeout(TIMEOUT_S * 4)
        r = c.recv(100)
        out[name] = time.monotonic() - t0 if r == b"" else None
    except OSError:
        out[name] = time.monotonic() - t0
    c.close()


def check_slow_clients(s):
    headers = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 300 + b"\r\n\r\n"  # 35 s at 1 B/100 ms
    body = b'{"command":"' + b"a" * 200000 + b'"}'
    post = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + s.token.encode() +
            b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)  # 20 s at 1 KB/100 ms
    out = {}
    threads = [threading.Thread(target=slow_sender, args=(s, headers, 1, 0.1, out, "slow headers")),
               threading.Thread(target=slow_sender, args=(s, post, 1000, 0.1, out, "slow body")),
               threading.Thread(target=slow_sender, args=(s, b"", 1, 0, out, "idle"))]
    for t in threads:
        t.start()
    # meanwhile everybody else is served as usual, a job included
    worst = 0
    job = s.submit({"command": "echo served"})
    for _ in range(10):
        status, ms = timed_get(s)
        assert status == 200, status
        worst = max(worst, ms)
        time.sleep(0.2)
    done = s.wait(job["id"], timeout=30)
    assert done["state"] == "succeeded" and done["stdout"] == "served\n", done
    print("while slow clients send: worst GET %.1f ms" % worst, file=sys.stderr)
    assert worst < FAST_MS, worst
    for t in threads:
        t.join()
    print("closed after: %s" % ", ".join("%s %.1f s" % (k, v) for k, v in sorted(out.items()) if v),
          file=sys.stderr)
    for name in ("slow headers", "slow body", "idle"):
        assert out.get(name) is not None, "%s: never closed" % name
        assert TIMEOUT_S - 0.5 <= out[name] <= TIMEOUT_S + 3, (name, out[name])

    # a keep-alive connection whose requests come in time lives on, well
    # past the timeout
    conn = http.client.HTTPConnection(*host_port(s), timeout=10)
    for _ in range(4):
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        assert r.status == 200
        time.sleep(TIMEOUT_S * 0.6)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()


def main():
    with Stack(workers=1, env={"BX_API_TIMEOUT_S": str(TIMEOUT_S)}) as s:
        check_big_bodies(s)
        check_fields(s)
        check_headers(s)
        check_slow_clients(s)
        with open("%s/logs/bx-api.log" % s.run_dir) as f:
            log = f.read()
        assert "event=slow_requests_closed" in log, log[-2000:]
        print("ok api limits", file=sys.stderr)


if __name__ == "__main__":
    main()
