"""bashexec end-to-end test harness for Python tests (standard library only;
records() and amqp() import Debian's pymongo and py-amqp when called).

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

A test that breaks a service asks for a private one, started by the stack
in its run dir and stopped with it, never a shared one:

    with Stack(workers=1, private=("redis",)) as s:
        with s.paused("redis"):                          # SIGSTOP .. SIGCONT
            ...
        s.stop("bx-worker-1"); s.start("bx-worker-1")    # any process of the run dir
        wait_for("the queue to drain", lambda: s.queue_depth() == 0, 30)
"""

import contextlib
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK = os.path.join(ROOT, "compose", "stack.sh")
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "rejected", "lost"}
BIN_DIR = os.environ.get("BX_BIN_DIR", os.path.join(ROOT, "bin"))
# What could point a test at the caller's own stack is not passed on.
_PRIVATE = ("BX_METRICS_LISTEN", "BX_RUN_DIR", "BX_NAMESPACE", "BX_API_LISTEN", "BX_API_TOKENS_FILE",
            "BX_API_URL", "BX_API_TOKEN")


def lib_sh(script, *args, env=None, timeout=120):
    """Runs script in bash with compose/lib.sh sourced; CompletedProcess
    (output captured as text)."""
    e = dict(env or os.environ, BX_ROOT=ROOT)
    return subprocess.run(["bash", "-c", '. "$BX_ROOT/compose/lib.sh"; ' + script, "_"] + list(args),
                          env=e, capture_output=True, text=True, timeout=timeout)


def wait_for(what, cond, timeout, interval=0.1):
    """cond()'s first true value, polled every interval s; AssertionError
    naming what after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("%s: not after %ss" % (what, timeout))
        time.sleep(interval)


def _free_port():
    out = lib_sh("bx_free_port", env=os.environ)
    out.check_returncode()
    return int(out.stdout.strip())


def descendants(pid):
    """Pids of every live descendant of pid (from /proc)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def alive(pid):
    """Whether pid runs (a zombie does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Worker:
    """A bx-worker of a Stack's namespace that a test starts, signals and
    kills itself (Stack.worker), logging to <run dir>/logs/<name>.log."""

    def __init__(self, stack, name, env=None):
        self.name = name
        self.log_path = os.path.join(stack.run_dir, "logs", name + ".log")
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        e = dict(stack.env, BX_WORKER_ID=name, BX_FOREGROUND="1")
        e.update(env or {})
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([os.path.join(BIN_DIR, "bx-worker")], env=e,
                                         stdout=log, stderr=log)
        self.pid = self.proc.pid

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, text, timeout=30):
        """Waits until the log holds text."""
        return wait_for("%s logs %r" % (self.name, text), lambda: text in self.log(), timeout)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=60):
        """The exit status (negative: killed by that signal)."""
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    self.proc.send_signal(sig)
                except OSError:
                    pass
            self.proc.wait(timeout=30)


# A private service: the URL variable that points at it, and its URL.
_SERVICES = {"rabbitmq": ("BX_AMQP_URL", "amqp://guest:guest@127.0.0.1:%d/"),
             "redis": ("BX_REDIS_URL", "redis://127.0.0.1:%d/0"),
             "mongo": ("BX_MONGO_URL", "mongodb://127.0.0.1:%d/")}


def _namespace():
    name = os.path.splitext(os.path.basename(sys.argv[0] or "py"))[0]
    if name.startswith("test_"):
        name = name[5:]
    name = "".join(c if c.isalnum() else "_" for c in name.lower())[:24]
    return "t_%s_%s" % (name, secrets.token_hex(4))


class Stack:
    def __init__(self, workers=2, env=None, private=()):
        """private: services ("rabbitmq", "redis", "mongo") this stack starts
        for itself on free ports, so that the test may stop or pause them."""
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
        self.ports = {}
        for svc in private:
            var, url = _SERVICES[svc]
            self.ports[svc] = _free_port()
            # RabbitMQ's Erlang distribution listens on port + 20000
            # (compose/lib.sh): that one must be free too.
            while svc == "rabbitmq" and lib_sh("bx_answers 127.0.0.1 $1", str(self.ports[svc] + 20000),
                                               env=os.environ).returncode == 0:
                self.ports[svc] = _free_port()
            self.env[var] = url % self.ports[svc]
        self.env.update(env or {})
        # With a certificate (BX_TLS_CERT) the API speaks https only; the
        # tests trust that certificate (self-signed: its own CA).
        self.ssl = None
        if self.env.get("BX_TLS_CERT"):
            self.url = "https://" + self.listen
            self.env["BX_API_URL"] = self.url
            self.ssl = ssl.create_default_context(
                cafile=self.env.get("BX_CA_FILE") or self.env["BX_TLS_CERT"])
        self.token = None
        self._old_term = None
        self._workers = []
        self._children = []

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
        for w in self._workers:
            w.stop()
        for p in self._children:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run([STACK, "down"], env=self.env, stdout=subprocess.DEVNULL)
        subprocess.run([STACK, "purge"], env=self.env)
        subprocess.run(["rm", "-rf", self.run_dir])

    def print_logs(self, lines=20):
        logs = os.path.join(self.run_dir, "logs")
        for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
            with open(os.path.join(logs, name), errors="replace") as f:
                tail = f.readlines()[-lines:]
            sys.stderr.write("--- last lines of %s\n%s" % (name, "".join(tail)))

    def worker(self, name, env=None):
        """Starts a worker of this stack's namespace named name (its
        BX_WORKER_ID), with env added; stopped (SIGKILL) at down()."""
        w = Worker(self, name, env)
        self._workers.append(w)
        return w

    # ----------------------------------------------------- MongoDB, RabbitMQ
    def records(self, job_id):
        """The job's history records in MongoDB (a list: one, or none)."""
        import pymongo
        c = pymongo.MongoClient(self.env.get("BX_MONGO_URL", "mongodb://127.0.0.1:27017/"),
                                serverSelectionTimeoutMS=20000)
        try:
            return list(c[self.namespace]["jobs"].find({"_id": job_id}))
        finally:
            c.close()

    def amqp(self):
        """A py-amqp connection to the stack's RabbitMQ (close it)."""
        return amqp_connect(self.env.get("BX_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))

    def wait_record(self, job_id, cond=lambda r: True, timeout=30):
        """The job's one history record once cond(record) holds."""
        last = {}

        def look():
            recs = self.records(job_id)
            assert len(recs) <= 1, recs
            last["v"] = recs
            return recs[0] if recs and cond(recs[0]) else None
        try:
            return wait_for("record of %s" % job_id, look, timeout)
        except AssertionError as e:
            raise AssertionError("%s; last %r" % (e, last.get("v")))

    # ------------------------------------------------------------ processes
    # A name is a pid file's: bx-api, bx-recorder, bx-worker-N, rabbitmq,
    # redis, mongo, or one a test started with start().
    def pid(self, name):
        """The pid of the stack's process name while it runs, else None."""
        r = lib_sh('bx_pidfile_pid "$1" "$2"', self.run_dir, name, env=self.env)
        return int(r.stdout) if r.returncode == 0 else None

    def kill(self, name, sig):
        pid = self.pid(name)
        assert pid, "%s is not running" % name
        os.kill(pid, sig)
        return pid

    @contextlib.contextmanager
    def paused(self, name):
        """name stopped with SIGSTOP for the block, continued after it."""
        self.kill(name, signal.SIGSTOP)
        try:
            yield
        finally:
            self.kill(name, signal.SIGCONT)

    def stop(self, *names):
        """SIGTERM, and SIGKILL after BX_STOP_TIMEOUT s (40) as compose/stack.sh does."""
        lib_sh('run=$1; shift; bx_stop "$run" "$@"', self.run_dir, *names, env=self.env)

    def start(self, name, binary=None, env=None):
        """Starts a private service again (rabbitmq, redis, mongo) and
        waits until it answers, or starts a bx binary (bx-worker, ...; by
        default the one name begins with) as name. Returns its pid."""
        if name in _SERVICES:
            var = _SERVICES[name][0]
            r = lib_sh('bx_ensure_%s "$1" "$2"' % name, self.run_dir, self.env[var],
                       env=dict(self.env, **(env or {})))
        else:
            binary = binary or "-".join(name.split("-")[:2])
            wid = "BX_WORKER_ID=%s " % name if binary == "bx-worker" else ""
            r = lib_sh(wid + 'BX_FOREGROUND=1 bx_start "$1" "$2" "$3"', self.run_dir, name,
                       os.path.join(BIN_DIR, binary), env=dict(self.env, **(env or {})))
        assert r.returncode == 0, "could not start %s: %s" % (name, r.stderr)
        return self.pid(name)

    def spawn(self, name, binary, env=None):
        """binary (bx-api, ...) as a child of the test, for its exit status:
        a subprocess.Popen logging to the run dir's logs/name.log, with the
        stack's environment and env; killed, if still running, when the
        stack goes down."""
        e = dict(self.env, BX_FOREGROUND="1",
                 BX_API_TOKENS_FILE=os.path.join(self.run_dir, "api-tokens"))
        e.update(env or {})
        os.makedirs(os.path.join(self.run_dir, "logs"), exist_ok=True)
        with open(os.path.join(self.run_dir, "logs", name + ".log"), "ab") as log:
            p = subprocess.Popen([os.path.join(BIN_DIR, binary)], env=e, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=log)
        self._children.append(p)
        return p

    def rabbitmqctl(self, *args):
        """rabbitmqctl args on the stack's private RabbitMQ; its output."""
        ctl = os.path.join(self.run_dir, "rabbitmq", "rabbitmqctl")
        r = subprocess.run([ctl, "-q"] + list(args), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, "rabbitmqctl %s: %s" % (" ".join(args), r.stderr)
        return r.stdout

    def log(self, name):
        """The log of the stack's process name so far ("" when none)."""
        try:
            with open(os.path.join(self.run_dir, "logs", name + ".log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def queue_depth(self, queue="default", field="messages_ready"):
        """Messages ready (or field: messages, messages_unacknowledged) in
        the namespace's jobs queue, by rabbitmqctl; None when it cannot tell."""
        ctl = os.path.join(self.run_dir, "rabbitmq", "rabbitmqctl")
        if not os.access(ctl, os.X_OK):
            ctl = os.environ.get("BX_RABBITMQCTL") or "rabbitmqctl"
        name = "%s.jobs.%s" % (self.namespace, queue)
        out = subprocess.run([ctl, "-q", "list_queues", "--no-table-headers", "name", field],
                             capture_output=True, text=True, timeout=60).stdout
        for line in out.splitlines():
            f = line.split()
            if len(f) == 2 and f[0] == name:
                return int(f[1])
        return None

    # ------------------------------------------------------------------ API
    def request(self, method, path, body=None, auth=True, token=None, headers=None, base=None):
        """One API call: (HTTP status, parsed JSON body or raw text)."""
        return self.request_full(method, path, body, auth, token, headers, base)[:2]

    def request_full(self, method, path, body=None, auth=True, token=None, headers=None, base=None):
        """One API call: (HTTP status, parsed JSON body or raw text, the
        response's headers, an email.message.Message). base: another API
        than the stack's (http://host:port)."""
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        tok = token if token is not None else (self.token if auth else None)
        if tok:
            hdrs["Authorization"] = "Bearer " + tok
        req = urllib.request.Request((base or self.url) + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ssl) as resp:
                status, raw, got = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            status, raw, got = e.code, e.read(), e.headers
        text = raw.decode("utf-8", "replace")
        try:
            return status, json.loads(text) if text else None, got
        except ValueError:
            return status, text, got

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
        """The job once its state is one of states (a set, or one state's
        name); AssertionError after timeout s."""
        states = {states} if isinstance(states, str) else states
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


def amqp_connect(url):
    """A py-amqp connection to the RabbitMQ at an amqp:// URL (close it)."""
    import urllib.parse
    import amqp
    p = urllib.parse.urlsplit(url)
    c = amqp.Connection(host="%s:%d" % (p.hostname or "127.0.0.1", p.port or 5672),
                        userid=urllib.parse.unquote(p.username or "guest"),
                        password=urllib.parse.unquote(p.password or "guest"),
                        virtual_host=urllib.parse.unquote(p.path[1:]) or "/")
    c.connect()
    return c


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
