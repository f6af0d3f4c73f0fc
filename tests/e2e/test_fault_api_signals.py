"""bx-api's signals (issue 4).

SIGTERM: a POST whose body is still arriving when the signal comes gets
its 202 and its job runs; new connections are refused from the signal on;
the API exits 0 once the request is done.
SIGHUP: the tokens file is read again (a token added to it works without
a restart), and the log file of BX_LOG_FILE, moved away, is opened anew.

The API under test is a second bx-api of the stack, a child of this test
(for its exit status), beside the stack's own.
"""
import hashlib
import json
import os
import signal
import socket
import sys
import time

from harness import Stack, free_port, wait_for


def raw_post_start(port, token, job):
    """A connection that sent the headers and half of the body of a POST."""
    body = json.dumps(job).encode()
    c = socket.create_connection(("127.0.0.1", port), 10)
    c.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    c.sendall(body[:len(body) // 2])
    return c, body[len(body) // 2:]


def read_response(c):
    c.settimeout(30)
    raw = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        raw += chunk
        head, _, rest = raw.partition(b"\r\n\r\n")
        n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
        if n and len(rest) >= n[0]:
            break
    head, _, rest = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(rest), head.decode()


def refused(port):
    """How a new connection fares: "refused", or the status it was
    answered, or "no answer"."""
    try:
        c = socket.create_connection(("127.0.0.1", port), 2)
    except ConnectionRefusedError:
        return "refused"
    try:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        c.settimeout(2)
        return c.recv(100).split(b" ")[1].decode()
    except socket.timeout:
        return "no answer"
    finally:
        c.close()


def test_sigterm(s):
    port = free_port()
    api = s.spawn("bx-api-term", "bx-api", {"BX_API_LISTEN": "127.0.0.1:%d" % port})
    wait_for("the second API", lambda: "event=api_started" in s.log("bx-api-term"), 30)
    c, rest = raw_post_start(port, s.token, {"command": "echo drained"})
    time.sleep(0.5)  # the headers are in: the request is in flight
    api.send_signal(signal.SIGTERM)
    wait_for("the API to stop accepting", lambda: "event=api_stopping" in s.log("bx-api-term"), 10)
    assert "inflight=1" in s.log("bx-api-term"), "the POST was not counted in flight"
    fate = refused(port)
    assert fate in ("refused", "503"), "a new connection after SIGTERM: %s" % fate
    assert api.poll() is None, "exited with a request in flight"
    c.sendall(rest)
    status, body, head = read_response(c)
    c.close()
    assert status == 202, (status, body)
    assert "connection: close" in head.lower(), head
    rc = api.wait(20)
    assert rc == 0, "exit status %s" % rc
    assert "event=api_stopped" in s.log("bx-api-term")
    done = s.wait(body["id"], 30)
    assert done["state"] == "succeeded" and done["stdout"] == "drained\n", done
    print("ok SIGTERM: the POST in flight got 202 and ran, new connections refused, exit 0",
          file=sys.stderr)


def test_sighup(s):
    """The tokens file and, with BX_LOG_FILE, the log file after a rotation."""
    port = free_port()
    log = os.path.join(s.run_dir, "logs", "api-hup.log")
    api = s.spawn("bx-api-hup", "bx-api", {"BX_API_LISTEN": "127.0.0.1:%d" % port,
                                           "BX_LOG_FILE": log})
    url = "http://127.0.0.1:%d" % port

    def read(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
    wait_for("the API to start", lambda: "event=api_started" in read(log), 30)
    tokens = os.path.join(s.run_dir, "api-tokens")
    new = "f" * 40
    status, _ = s.request("GET", "/v1/workers", token=new, base=url)
    assert status == 401, status
    with open(tokens, "a") as f:
        f.write("ops sha256:%s read\n" % hashlib.sha256(new.encode()).hexdigest())
    os.rename(log, log + ".1")  # logrotate's move
    api.send_signal(signal.SIGHUP)
    wait_for("the reload logged in a new log file", lambda: "event=tokens_reloaded" in read(log), 10)
    assert "event=tokens_reloaded" not in read(log + ".1")
    status, body = s.request("GET", "/v1/workers", token=new, base=url)
    assert status == 200, (status, body)
    assert api.poll() is None, "bx-api exited on SIGHUP"
    api.send_signal(signal.SIGTERM)
    assert api.wait(20) == 0
    print("ok SIGHUP: tokens file reloaded, log file reopened", file=sys.stderr)


def main():
    with Stack(workers=1) as s:
        test_sigterm(s)
        test_sighup(s)


if __name__ == "__main__":
    main()
