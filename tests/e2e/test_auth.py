"""Tokens (issue 5): hashed tokens in the tokens file, a token in the clear
refused at startup and on reload, 401/403, a token's command allowlist,
queues and env, its submit rate limit (429 with Retry-After, then accepted
after waiting), one audit line per accepted, refused and cancelled
submission, and no token in any log."""

import glob
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from harness import Stack, ROOT, free_port


def hashed(tok):
    return "sha256:" + hashlib.sha256(tok.encode()).hexdigest()


def api_log(s):
    with open(os.path.join(s.run_dir, "logs", "bx-api.log"), errors="replace") as f:
        return f.read()


def audit_lines(s, rid, want=1, timeout=5):
    """The audit lines of request rid, once there are want of them."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [l for l in api_log(s).splitlines()
                 if "audit=" in l and 'request_id="%s" ' % rid in l]
        if len(lines) >= want or time.monotonic() >= deadline:
            return lines
        time.sleep(0.1)


def expect(s, rid, status, outcome, token, *needles):
    lines = audit_lines(s, rid)
    assert len(lines) == 1, "request %s: want one audit line, got %r" % (rid, lines)
    line = lines[0]
    tok = "token=-" if token == "-" else 'token="%s"' % token
    for want in ("status=%d" % status, "outcome=" + outcome, tok, "addr=127.0.0.1") + needles:
        assert want in line, "request %s: %r lacks %r" % (rid, line, want)
    return line


def post(s, job, token, rid, expect_status, **kw):
    status, body = s.request("POST", "/v1/jobs", job, token=token, headers={"X-Request-Id": rid}, **kw)
    assert status == expect_status, "%s: want %d, got %d %r" % (rid, expect_status, status, body)
    return body


def plaintext_refused_at_start(tmp):
    """bx-api refuses to start on a file with a token in the clear, naming
    the line and never quoting the token."""
    secret = "plain-" + secrets.token_hex(16)
    path = os.path.join(tmp, "plain-tokens")
    with open(path, "w") as f:
        f.write("# tokens\nok %s read\nci %s submit,read\n" % (hashed("x" * 40), secret))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BX_")}
    env.update(BX_API_TOKENS_FILE=path, BX_API_LISTEN="127.0.0.1:%d" % free_port(),
               BX_NAMESPACE="t_auth_plain", BX_FOREGROUND="1")
    binary = os.path.join(os.environ.get("BX_BIN_DIR", os.path.join(ROOT, "bin")), "bx-api")
    r = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=20)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "line 3: the token of 'ci' is not hashed" in r.stderr, r.stderr
    assert secret not in r.stderr + r.stdout, r.stderr


def main():
    s = Stack(workers=1)
    toks = {n: secrets.token_urlsafe(32) for n in ("reader", "ci", "deploy", "limited")}
    with open(os.path.join(s.run_dir, "api-tokens"), "w") as f:
        f.write("# written by test_auth.py\n")
        f.write("reader %s read\n" % hashed(toks["reader"]))
        f.write("ci %s submit,read queues=default,batch\n" % hashed(toks["ci"]))
        f.write('deploy %s submit,read command="echo deploy *" command=uptime env=TARGET\n'
                % hashed(toks["deploy"]))
        f.write("limited %s submit,read rate=6/m burst=2\n" % hashed(toks["limited"]))
    wrong = "wrong-" + secrets.token_hex(16)
    with s:
        plaintext_refused_at_start(s.run_dir)
        toks["admin"] = s.token
        with open(os.path.join(s.run_dir, "api-tokens")) as f:
            text = f.read()
        assert s.token not in text and hashed(s.token) in text, text

        # a hashed token works (the stack's admin, and ci)
        job = post(s, {"command": "echo hashed"}, toks["ci"], "rid-ok", 202)
        assert s.wait(job["id"], timeout=30)["stdout"] == "hashed\n"
        expect(s, "rid-ok", 202, "accepted", "ci", "id=" + job["id"], 'queue="default"')

        # 401: no token, a wrong one; 403: without the scope
        post(s, {"command": "true"}, None, "rid-none", 401, auth=False)
        expect(s, "rid-none", 401, "refused", "-", "no Authorization header")
        post(s, {"command": "true"}, wrong, "rid-wrong", 401)
        expect(s, "rid-wrong", 401, "refused", "-", "unknown token")
        body = post(s, {"command": "true"}, toks["reader"], "rid-scope", 403)
        assert "lacks the 'submit' scope" in body["error"]["message"], body
        expect(s, "rid-scope", 403, "refused", "reader")
        st, _ = s.request("GET", "/v1/jobs/" + job["id"], token=toks["reader"])
        assert st == 200, st

        # the command allowlist, and the env a restricted token may set
        post(s, {"command": "echo deploy web", "env": {"TARGET": "web"}}, toks["deploy"], "rid-allow", 202)
        body = post(s, {"command": "echo hi; id"}, toks["deploy"], "rid-cmd", 403)
        msg = body["error"]["message"]
        assert "may not run this command" in msg and "'echo deploy *', 'uptime'" in msg, body
        expect(s, "rid-cmd", 403, "refused", "deploy", "command=")
        body = post(s, {"command": "uptime", "env": {"BASH_ENV": "/tmp/x"}}, toks["deploy"], "rid-env", 403)
        assert "may not set env 'BASH_ENV'" in body["error"]["message"], body
        expect(s, "rid-env", 403, "refused", "deploy")

        # queues: ci may use default and batch, not gpu
        body = post(s, {"command": "true", "queue": "gpu"}, toks["ci"], "rid-queue", 403)
        assert "queue 'gpu'" in body["error"]["message"], body
        expect(s, "rid-queue", 403, "refused", "ci", 'queue="gpu"')

        # 400 is audited too
        post(s, {"command": "true", "colour": 1}, toks["ci"], "rid-bad", 400)
        expect(s, "rid-bad", 400, "refused", "ci", "colour")

        # cancelled: a job in a queue no worker reads stays queued
        queued = post(s, {"command": "true", "queue": "batch"}, toks["ci"], "rid-batch", 202)
        st, body = s.request("DELETE", "/v1/jobs/" + queued["id"], token=wrong,
                             headers={"X-Request-Id": "rid-cancel-401"})
        assert st == 401, (st, body)
        expect(s, "rid-cancel-401", 401, "refused", "-", "audit=cancel", "id=" + queued["id"])
        st, body = s.request("DELETE", "/v1/jobs/" + queued["id"], headers={"X-Request-Id": "rid-cancel"})
        assert st == 202 and body["state"] == "cancelled", (st, body)
        expect(s, "rid-cancel", 202, "cancelled", "admin", "audit=cancel", "id=" + queued["id"])

        # the rate limit: a bucket of 2, one more every 10 s; a replay of an
        # idempotency key takes nothing from it
        post(s, {"command": "true", "idempotency_key": "k1"}, toks["limited"], "rid-r1", 202)
        st, body = s.request("POST", "/v1/jobs", {"command": "true", "idempotency_key": "k1"},
                             token=toks["limited"], headers={"X-Request-Id": "rid-r1-again"})
        assert st == 200, (st, body)
        expect(s, "rid-r1-again", 200, "replayed", "limited")
        post(s, {"command": "true"}, toks["limited"], "rid-r2", 202)
        status, body = s.request("POST", "/v1/jobs", {"command": "true"}, token=toks["limited"],
                                 headers={"X-Request-Id": "rid-r3"})
        assert status == 429 and body["error"]["code"] == "rate_limited", (status, body)
        assert "rate of 6/m" in body["error"]["message"], body
        expect(s, "rid-r3", 429, "refused", "limited")
        # Retry-After comes with the answer: read it with the raw client
        req = urllib.request.Request(s.url + "/v1/jobs", data=json.dumps({"command": "true"}).encode(),
                                     method="POST", headers={"Authorization": "Bearer " + toks["limited"],
                                                             "X-Request-Id": "rid-r4"})
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("rid-r4 was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 429, e.code
            retry = int(e.headers["Retry-After"])
            t4 = time.monotonic()
        assert 1 <= retry <= 10, retry
        # other tokens are not limited by it
        post(s, {"command": "true"}, toks["ci"], "rid-ci-meanwhile", 202)
        time.sleep(max(0, retry - (time.monotonic() - t4)) + 0.3)
        post(s, {"command": "true"}, toks["limited"], "rid-r5", 202)
        expect(s, "rid-r5", 202, "accepted", "limited")

        # a token in the clear on reload: refused, the old tokens stay
        with open(os.path.join(s.run_dir, "api-tokens"), "a") as f:
            f.write("later %s read\n" % wrong)
        with open(os.path.join(s.run_dir, "pids", "bx-api.pid")) as f:
            os.kill(int(f.read().strip()), signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "tokens_reload_failed" not in api_log(s) and time.monotonic() < deadline:
            time.sleep(0.1)
        log = api_log(s)
        assert re.search(r"tokens_reload_failed .*the token of 'later' is not hashed", log), log[-2000:]
        post(s, {"command": "true"}, toks["ci"], "rid-after-reload", 202)

        # no token ever reaches a log
        for path in glob.glob(os.path.join(s.run_dir, "logs", "*")):
            with open(path, errors="replace") as f:
                text = f.read()
            for name, tok in list(toks.items()) + [("wrong", wrong)]:
                assert tok not in text, "the token of %s is in %s" % (name, path)
        print("ok auth: hashed tokens, 401/403, allowlist, queues, env, rate limit, audit",
              file=sys.stderr)


if __name__ == "__main__":
    main()
