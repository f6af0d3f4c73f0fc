"""bashexec end-to-end test harness for Python tests (standard library only).

    from harness import Stack

    with Stack(workers=2) as s:
        status, body = s.request("GET", "/healthz", auth=False)
        job = s.submit({"command": "echo hi"})          # expects 202
        done = s.wait(job["id"], timeout=30)             # terminal state
        assert done["state"] == "succeeded", done

Each Stack has its own namespace (t_<name>_<random>), run dir, API port and
token, and shares RabbitMQ, Redis and MongoDB with the other tests
(tests/run.sh exports their URLs). Leaving the `with` block stops the stack,
deletes the namespace's queues, exchanges and Redis keys, and, when the
block raised, prints the tails of the stack's logs. A SIGTERM (the test
runner's timeout) leaves the block the same way.
"""

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK = os.path.join(ROOT, "compose", "stack.sh")
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "rejected"}
# What could point a test at the caller's own stack is not passed on.
_PRIVATE = ("BX_METRICS_LISTEN", "BX_RUN_DIR", "BX_NAMESPACE", "BX_API_LISTEN", "BX_API_TOKENS_FILE",
            "BX_API_URL", "BX_API_TOKEN")


def _free_port():
    out = subprocess.run(["bash", "-c", '. "$1/compose/lib.sh"; bx_free_port', "_", ROOT],
                         env=dict(os.environ, BX_ROOT=ROOT), check=True,
                         capture_output=True, text=True)
    return int(out.stdout.strip())


def _namespace():
    name = os.path.splitext(os.path.basename(sys.argv[0] or "py"))[0]
    if name.startswith("test_"):
        name = name[5:]
    name = "".join(c if c.isalnum() else "_" for c in name.lower())[:24]
    return "t_%s_%s" % (name, secrets.token_hex(4))


class Stack:
    def __init__(self, workers=2, env=None):
        self.workers = workers
        self.namespace = _namespace()
        base = os.environ.get("BX_TEST_TMPDIR") or tempfile.gettempdir()
        self.run_dir = tempfile.mkdtemp(prefix="stack.", dir=base)
        self.listen = "127.0.0.1:%d" % _free_port()
        self.url = "http://" + self.listen
        self.env = {k: v for k, v in os.environ.items() if k not in _PRIVATE}
        self.env.update(BX_NAMESPACE=self.namespace, BX_RUN_DIR=self.run_dir,
                        BX_API_LISTEN=self.listen, BX_WORKERS=str(workers),
                        BX_API_URL=self.url)
        # Tests share files with their commands through their own private
        # temp dirs, so commands run as the test's user here;
        # test_security.py checks the default (a root worker runs them as
        # nobody) with env={"BX_RUN_AS": "nobody"}.
        self.env.setdefault("BX_RUN_AS", "-")
        self.env.update(env or {})
        self.token = None
        self._old_term = None

    # ------------------------------------------------------------ lifecycle
    def __enter__(self):
        # The runner's timeout sends SIGTERM: turn it into an exception so
        # that __exit__ still stops the stack.
        def on_term(signum, frame):
            raise SystemExit(128 + signum)
        self._old_term = signal.signal(signal.SIGTERM, on_term)
        try:
            self.up()
        except BaseException:
            self.down(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.down(failed=exc_type is not None)
        signal.signal(signal.SIGTERM, self._old_term or signal.SIG_DFL)
        return False

    def up(self):
        r = subprocess.run([STACK, "up"], env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stdout + r.stderr)
            raise RuntimeError("the stack did not come up")
        with open(os.path.join(self.run_dir, "api-token")) as f:
            self.token = f.read().strip()
        print("stack %s up at %s (run dir %s)" % (self.namespace, self.url, self.run_dir),
              file=sys.stderr)

    def down(self, failed=False):
        if not os.path.isdir(self.run_dir):
            return
        if failed:
            self.print_logs()
        subprocess.run([STACK, "down"], env=self.env, stdout=subprocess.DEVNULL)
        subprocess.run([STACK, "purge"], env=self.env)
        subprocess.run(["rm", "-rf", self.run_dir])

    def print_logs(self, lines=20):
        logs = os.path.join(self.run_dir, "logs")
        for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
            with open(os.path.join(logs, name), errors="replace") as f:
                tail = f.readlines()[-lines:]
            sys.stderr.write("--- last lines of %s\n%s" % (name, "".join(tail)))

    # ------------------------------------------------------------------ API
    def request(self, method, path, body=None, auth=True, token=None, headers=None):
        """One API call: (HTTP status, parsed JSON body or raw text)."""
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        tok = token if token is not None else (self.token if auth else None)
        if tok:
            hdrs["Authorization"] = "Bearer " + tok
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        text = raw.decode("utf-8", "replace")
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def submit(self, job, expect=202):
        status, body = self.request("POST", "/v1/jobs", job)
        assert status == expect, "POST /v1/jobs: expected %d, got %d: %r" % (expect, status, body)
        return body

    def job(self, job_id):
        status, body = self.request("GET", "/v1/jobs/" + job_id)
        assert status == 200, "GET /v1/jobs/%s: %d %r" % (job_id, status, body)
        return body

    def wait(self, job_id, timeout=60):
        """The job once it is in a terminal state; AssertionError after timeout s."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.request("GET", "/v1/jobs/" + job_id)
            if status == 200 and isinstance(body, dict) and body.get("state") in TERMINAL:
                return body
            if time.monotonic() >= deadline:
                raise AssertionError("job %s not finished after %ss: %d %r"
                                     % (job_id, timeout, status, body))
            time.sleep(0.2)

    def wait_state(self, job_id, states, timeout):
        """The job once its state is one of states; AssertionError after timeout s."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.job(job_id)
            if body["state"] in states:
                return body
            if time.monotonic() > deadline:
                raise AssertionError("job %s not in %s after %ss: %r" % (job_id, states, timeout, body))
            time.sleep(0.05)

    def history_ids(self, **filters):
        """Every id in the history matching filters, following `next` page by page."""
        ids, before = [], None
        q = "".join("&%s=%s" % kv for kv in filters.items())
        while True:
            status, body = self.request("GET", "/v1/jobs?limit=100" + q + ("&before=" + before if before else ""))
            assert status == 200, (status, body)
            ids += [j["id"] for j in body["jobs"]]
            before = body["next"]
            if not before:
                return ids


def wait_for(what, cond, timeout):
    """cond()'s first true value, polled; AssertionError naming what after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("%s: not after %ss" % (what, timeout))
        time.sleep(0.1)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    return _free_port()


def ts(s):
    """RFC 3339 UTC with milliseconds (as the API writes times) -> seconds since the epoch."""
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def sleeps(number):
    """Pids of the `sleep NUMBER` processes running now (a job's, by its unique number)."""
    r = subprocess.run(["pgrep", "-f", r"^(/usr)?(/bin/)?sleep %s$" % number.replace(".", r"\.")],
                       capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def kill_leftovers(number):
    """Kills a job's leftover `sleep NUMBER` processes, so that a failed test
    does not leave them behind; returns the pids found."""
    found = sleeps(number)
    for p in found:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found
