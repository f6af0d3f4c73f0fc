"""The dashboard at /: its files are served from the binary without a token,
with a policy that keeps the page to its own scripts and this API; and, in
Debian's headless Chromium driven by playwright-core (dashboard/drive.mjs),
a person can sign in, submit `echo hello-dashboard` from the form, see it
succeed in the list, open its page and see its output, follow another
job's output while it runs, see the workers and queues, and sign out. The
screenshots go to build/ (dashboard.png: the job page)."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

from harness import ROOT, Stack

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER_DIR = os.path.join(HERE, "dashboard")
CHROMIUM = "/usr/bin/chromium"
SHOTS = os.path.join(ROOT, "build")


def get(s, path, method="GET", token=None):
    """(status, headers, body bytes), no token unless given."""
    hdrs = {"Authorization": "Bearer " + token} if token else {}
    req = urllib.request.Request(s.url + path, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_files_served(s):
    status, h, page = get(s, "/")
    assert status == 200, (status, page[:300])
    assert h["Content-Type"].startswith("text/html"), h["Content-Type"]
    csp = h.get("Content-Security-Policy", "")
    for want in ("default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"):
        assert want in csp, (want, csp)
    assert h.get("X-Content-Type-Options") == "nosniff", dict(h)
    assert page.lower().startswith(b"<!doctype html>"), page[:100]
    assert b'src="/ui/app.js"' in page and b'href="/ui/style.css"' in page, page[:800]
    # byte for byte the files of the checkout (what the binary was built from)
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, h, body = get(s, "/ui/" + name)
        assert status == 200 and h["Content-Type"].startswith(ctype), (name, status, h["Content-Type"])
        with open(os.path.join(ROOT, "api", "dashboard", name), "rb") as f:
            assert body == f.read(), name
    with open(os.path.join(ROOT, "api", "dashboard", "index.html"), "rb") as f:
        assert page == f.read()
    # HEAD: the headers and no body
    status, h, body = get(s, "/", method="HEAD")
    assert status == 200 and body == b"" and h["Content-Type"].startswith("text/html"), (status, body)
    # nothing else under /ui/, and no way out of it
    for path in ("/ui/nope.js", "/ui/", "/ui/../main.c", "/ui/dashboard/app.js", "/index.html", "/ui/app.js/"):
        status, h, body = get(s, path)
        assert status == 404, (path, status, body[:200])
        assert json.loads(body)["error"]["code"] == "not_found", (path, body)
    status, h, body = get(s, "/", method="POST")
    assert status == 405 and "GET" in h.get("Allow", ""), (status, dict(h))
    # no framework or font fetched from elsewhere at run time
    for name in ("index.html", "app.js", "style.css"):
        with open(os.path.join(ROOT, "api", "dashboard", name), encoding="utf-8") as f:
            text = f.read()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), "%s names another host" % name


def prerequisites():
    """What the browser test needs, or a message saying what is missing."""
    missing = []
    if not shutil.which("node"):
        missing.append("node (Debian package nodejs)")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(CHROMIUM + " (Debian package chromium)")
    if not os.path.isdir(os.path.join(DRIVER_DIR, "node_modules", "playwright-core")):
        missing.append("tests/e2e/dashboard/node_modules (npm ci)")
    return missing


def test_in_chromium(s):
    missing = prerequisites()
    assert not missing, "missing: %s; `make deps` installs them" % ", ".join(missing)
    os.makedirs(SHOTS, exist_ok=True)
    shot = os.path.join(SHOTS, "dashboard.png")
    if os.path.exists(shot):
        os.unlink(shot)
    base = os.environ.get("BX_TEST_TMPDIR") or tempfile.gettempdir()
    profile = tempfile.mkdtemp(prefix="chromium.", dir=base)
    env = dict(os.environ, BX_DASH_URL=s.url, BX_DASH_TOKEN=s.token, BX_DASH_PROFILE=profile,
               BX_DASH_SHOTS=SHOTS)
    try:
        r = subprocess.run(["node", os.path.join(DRIVER_DIR, "drive.mjs")], cwd=DRIVER_DIR, env=env,
                           capture_output=True, text=True, timeout=240)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    sys.stderr.write(r.stderr)
    assert r.returncode == 0, "the browser run failed (exit %d)" % r.returncode
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    print("seen in the browser: %s" % json.dumps(seen), file=sys.stderr)
    # the page followed the jobs through the event stream, not by polling
    assert seen["transport"] == "sse" and seen["live_transport"] == "sse", seen
    assert "hello-dashboard" in seen["stdout"], seen
    assert "live-1" in seen["live_stdout"] and "live-2" in seen["live_stdout"], seen
    assert seen["workers"] >= 1, seen
    # and what the page showed is what the API says
    done = s.job(seen["job_id"])
    assert done["state"] == "succeeded" and done["exit_code"] == 0, done
    assert done["command"] == "echo hello-dashboard" and done["stdout"] == "hello-dashboard\n", done
    with open(shot, "rb") as f:
        png = f.read()
    assert png.startswith(b"\x89PNG") and len(png) > 5000, len(png)
    print("screenshot: %s" % shot, file=sys.stderr)


TESTS = [test_files_served, test_in_chromium]


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
