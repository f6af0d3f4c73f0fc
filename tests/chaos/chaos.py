#!/usr/bin/python3
"""bashexec fault suite: nothing accepted is lost, whatever crashes.

Starts a private stack (compose/stack.sh) in a namespace of its own, with
its OWN RabbitMQ, Redis and FerretDB on free ports under a temp dir, and
2+ workers. Submits N jobs of mixed length from a few client threads,
paced over a submission window, counting every 202 and every 503 (a 503'd
job is never sent again as the same job). The jobs: `true`, `echo x`,
`sleep 0.0X`, a few `sleep 0.3` and `sleep 1`, some sharing a lock, some
that fail their first attempt and succeed on the retry, some that time
out. While they run it injects faults, spread over the window:

  kill           SIGKILL a worker (one running a job, if any within 3 s),
                 then start a replacement bx-worker with the stack's env
  rabbitmq       restart the private RabbitMQ node (orderly stop, start on
                 the same data), while a retry's first attempt runs
  redis          SIGSTOP the private Redis for --redis-pause-s (8: longer
                 than our clients' 5 s command timeout), then SIGCONT
  mongo          stop the private FerretDB for --mongo-down-s, then start it
and, on request (--faults): rabbitmq-kill (SIGKILL the node, start it
again), redis-restart (orderly), recorder-kill (SIGKILL, start again), and
stall (SIGSTOP a busy worker for --stall-s, beyond its lease, then SIGCONT).

Then it waits (bounded) and checks, for every job answered 202:

  stuck        its status hash "<ns>:job:<id>" in Redis is not terminal
  lost         no record in MongoDB (db = namespace, collection jobs, _id = id)
  duplicated   more than one record for it in MongoDB
  mismatched   the record's state or attempt differs from Redis's
  ghost        reported succeeded although its command never started
  ran_twice    an attempt of its command started more than once, and an
               earlier start was not on a worker this suite SIGKILLed (a
               rerun after a kill is at-least-once delivery doing its job)
  wrong_state  its terminal state and attempt are not what its command
               implies (succeeded/1, the retry kind succeeded/2, the
               timeout kind timed_out/1; an attempt lost with a killed or
               stalled worker and taken over by another is not counted,
               and its run is one of the reruns)
  crashed      a bx process this suite did not kill exited

and, for every job not answered 202:

  orphaned     its status in Redis is there and not final (a 503'd job
               ends "rejected", or has no status)

Each command first appends "<seq> <worker pid> <attempt>" to a marker file
(bash -c's parent is the worker): that is how starts are counted and
attributed. A queue of ours bound to "<ns>.events" keeps a copy of every
result event. Informational counts: reran (reruns explained by a kill),
ran_after_503 (a 503'd job that ran anyway: its confirm was lost, not the
message, which the contract allows), unknown (no
HTTP answer: outcome unknown), other (answers neither 202 nor 503),
dead_letters, events and nonterminal_events (result events whose state is
not terminal), and the terminal states.

Prints progress on stderr and exactly one line on stdout:

  accepted=N rejected_503=N lost=0 duplicated=0 stuck=0 mismatched=0 ...

and exits 1 when any of stuck, lost, duplicated, mismatched, ghost,
ran_twice, wrong_state or crashed is non-zero, a fault could not be
injected, or the API never accepted a job again after the last fault; 2
when the stack could not be set up; 130 when interrupted. Bounded in time
(--budget-s), talks to 127.0.0.1 only, and stops and deletes everything it
started, also on SIGINT/SIGTERM (and, through a watchdog process, when it
is SIGKILLed).

  /usr/bin/python3 tests/chaos/chaos.py [--jobs 5000] [--short] [--seed S] [...]

Needs bin/* (make all; BX_BIN_DIR for another build), the FerretDB of
make deps, rabbitmq-server, redis-server, and Debian's python3-redis,
python3-pymongo and python3-amqp.
"""

import argparse
import collections
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pymongo
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK = os.path.join(ROOT, "compose", "stack.sh")
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "rejected", "lost"}
T0 = time.monotonic()


def log(fmt, *args):
    msg = fmt % args if args else fmt
    sys.stderr.write("[chaos %6.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


class Interrupted(BaseException):
    """SIGTERM/SIGINT: not an Exception, so that no handler swallows it."""


# ------------------------------------------------------------------ helpers
def lib_sh(script, *args, env=None, timeout=None):
    """Runs script in bash with compose/lib.sh sourced; CompletedProcess."""
    e = dict(env or os.environ, BX_ROOT=ROOT)
    return subprocess.run(["bash", "-c", '. "$BX_ROOT/compose/lib.sh"; ' + script, "_"] + list(args),
                          env=e, capture_output=True, text=True, timeout=timeout)


def port_free(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def free_ports(n):
    """n distinct ports nothing answers on; for RabbitMQ's, its
    distribution port (port +/- 20000, see lib.sh) must be free too."""
    ports = set()
    while len(ports) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        dist = p + 20000 if p + 20000 <= 65535 else p - 20000
        if p not in ports and 20000 <= p and port_free(dist):
            ports.add(p)
    return sorted(ports, key=lambda _: random.random())


def children(pid):
    """pids of pid's children (all its threads'), [] when unknown."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += f.read().split()
    except OSError:
        pass
    return out


def proc_stat(pid):
    """(state, starttime) of pid, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return rest[0], rest[19]
    except (OSError, IndexError):
        return None


class Stack:
    """The private stack: services, API, recorder and workers, all with pid
    files under run_dir/pids (so compose/stack.sh down stops them all)."""

    def __init__(self, args, base):
        self.args = args
        self.base = base
        self.marks_dir = None
        self.run_dir = tempfile.mkdtemp(prefix="stack.chaos.", dir=base)
        self.ns = "chaos_" + secrets.token_hex(4)
        api, amqp_p, redis_p, mongo_p = free_ports(4)
        self.api_url = "127.0.0.1:%d" % api
        self.amqp_url = "amqp://guest:guest@127.0.0.1:%d/" % amqp_p
        self.redis_port = redis_p
        self.redis_url = "redis://127.0.0.1:%d/0" % redis_p
        self.mongo_url = "mongodb://127.0.0.1:%d/" % mongo_p
        self.amqp_port = amqp_p
        # Nothing of the caller's BX_* may point us at shared services.
        env = {k: v for k, v in os.environ.items() if not k.startswith("BX_")}
        for k in ("BX_BIN_DIR", "BX_READY_TIMEOUT"):
            if k in os.environ:
                env[k] = os.environ[k]
        env.update(BX_NAMESPACE=self.ns, BX_RUN_DIR=self.run_dir, BX_API_LISTEN=self.api_url,
                   BX_AMQP_URL=self.amqp_url, BX_REDIS_URL=self.redis_url,
                   BX_MONGO_URL=self.mongo_url, BX_WORKERS=str(args.workers),
                   BX_API_TOKENS_FILE=os.path.join(self.run_dir, "api-tokens"),
                   BX_FOREGROUND="1", BX_STOP_TIMEOUT="45")
        if args.concurrency:
            env["BX_CONCURRENCY"] = str(args.concurrency)
        if args.lease_ms:
            env["BX_LEASE_MS"] = str(args.lease_ms)
        if args.heartbeat_s is not None:
            env["BX_AMQP_HEARTBEAT_S"] = str(args.heartbeat_s)
        self.env = env
        self.bin_dir = env.get("BX_BIN_DIR", os.path.join(ROOT, "bin"))
        self.token = None
        self.killed = {}        # pid -> pid file name, of the workers we SIGKILLed
        self.replacements = 0
        self.paused = False
        self.stalled = None     # pid of a SIGSTOPped worker
        self.stalled_pids = set()  # every worker we SIGSTOPped
        self.lock = threading.Lock()

    def marks_file(self):
        """The file every command appends its start to. Commands may run as
        another user (BX_RUN_AS, "nobody" for a root worker), and the run
        dir is private: a directory of its own, writable by all."""
        def reachable(d):   # every ancestor searchable by others
            d = os.path.realpath(d)
            while True:
                try:
                    if not os.stat(d).st_mode & 0o001:
                        return False
                except OSError:
                    return False
                if d == "/":
                    return True
                d = os.path.dirname(d)
        where = next((d for d in (self.base, tempfile.gettempdir(), "/tmp", "/dev/shm")
                      if reachable(d)), self.base)
        self.marks_dir = tempfile.mkdtemp(prefix="chaos-marks.", dir=where)
        os.chmod(self.marks_dir, 0o755)
        path = os.path.join(self.marks_dir, "starts")
        with open(path, "w"):
            pass
        os.chmod(path, 0o666)
        return path

    def start_watchdog(self):
        """A detached shell that stops the stack and deletes its dirs if
        this process dies without doing so itself (SIGKILL from a test
        runner's timeout, a crash): nothing may outlive the suite."""
        me = os.getpid()
        script = r"""
            me=$1 start=$2 run=$3 marks=$4 stack=$5
            alive() { [ "$(sed 's/.*) //' /proc/$me/stat 2>/dev/null | cut -d' ' -f20)" = "$start" ]; }
            trap '' HUP INT
            trap 'exit 0' TERM
            while alive; do sleep 1; done
            trap '' TERM
            p=$(cat "$run/pids/redis.pid" 2>/dev/null) && kill -CONT "$p" 2>/dev/null
            BX_RUN_DIR=$run "$stack" down >/dev/null 2>&1
            rm -rf "$run" ${marks:+"$marks"}
        """
        self.watchdog = subprocess.Popen(
            ["bash", "-c", script, "chaos-watchdog", str(me), proc_stat(me)[1], self.run_dir,
             self.marks_dir or "", STACK],
            env=dict(self.env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)

    def stop_watchdog(self):
        if getattr(self, "watchdog", None) and self.watchdog.poll() is None:
            self.watchdog.terminate()
            try:
                self.watchdog.wait(5)
            except subprocess.TimeoutExpired:
                self.watchdog.kill()
                self.watchdog.wait()

    # -------------------------------------------------------- pid files
    def pid(self, name):
        """pid of pid file name when it is ours (start time) and alive."""
        try:
            with open(os.path.join(self.run_dir, "pids", name + ".pid")) as f:
                pid = int(f.read().strip())
            with open(os.path.join(self.run_dir, "pids", "." + name + ".start")) as f:
                start = f.read().strip()
        except (OSError, ValueError):
            return None
        st = proc_stat(pid)
        if not st or st[1] != start or st[0] == "Z":
            return None
        return pid

    def names(self, prefix=""):
        d = os.path.join(self.run_dir, "pids")
        return sorted(f[:-4] for f in os.listdir(d) if f.endswith(".pid") and f.startswith(prefix)) \
            if os.path.isdir(d) else []

    # -------------------------------------------------------- lifecycle
    def up(self):
        r = subprocess.run([STACK, "up"], env=self.env, capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            sys.stderr.write(r.stdout + r.stderr)
            raise RuntimeError("the stack did not come up")
        with open(os.path.join(self.run_dir, "api-token")) as f:
            self.token = f.read().strip()
        log("stack %s up: api %s, amqp %s, redis %s, mongo %s, run dir %s", self.ns, self.api_url,
            self.amqp_url, self.redis_url, self.mongo_url, self.run_dir)

    def down(self, keep=False):
        self.stop_watchdog()
        if not os.path.isdir(self.run_dir):
            return
        if self.paused:
            self.cont_redis()
        if self.stalled:
            try:
                os.kill(self.stalled, signal.SIGCONT)
            except OSError:
                pass
        # stack.sh stops the API, the workers (a drain), the recorder, then
        # the services: everything that has a pid file, replacements too.
        try:
            subprocess.run([STACK, "down"], env=self.env, capture_output=True, timeout=240)
        except subprocess.TimeoutExpired:
            log("stack.sh down timed out: killing what is left")
        for n in self.names():
            pid = self.pid(n)
            if pid:
                log("%s (pid %d) still runs after down: SIGKILL to its group", n, pid)
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        if keep:
            log("kept the run dir %s (and %s)", self.run_dir, self.marks_dir)
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            if self.marks_dir:
                shutil.rmtree(self.marks_dir, ignore_errors=True)

    def print_logs(self, lines=30):
        logs = os.path.join(self.run_dir, "logs")
        for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
            with open(os.path.join(logs, name), errors="replace") as f:
                tail = f.readlines()[-lines:]
            sys.stderr.write("--- last lines of %s\n%s" % (name, "".join(tail)))

    # ----------------------------------------------------------- faults
    def workers(self):
        """{pid file name: pid} of the live workers."""
        out = {}
        for n in self.names("bx-worker"):
            pid = self.pid(n)
            if pid:
                out[n] = pid
        return out

    def kill_worker(self):
        """SIGKILLs a worker, preferably one that runs a job right now (has
        a child process: its commands are its children), waiting a little
        for one; then starts a replacement. Returns a description."""
        live, busy = {}, []
        until = time.monotonic() + 3
        while True:
            live = self.workers()
            busy = [n for n, pid in live.items() if children(pid)]
            if busy or time.monotonic() >= until:
                break
            time.sleep(0.02)
        if not live:
            return "no live worker to kill"
        name = random.choice(busy or sorted(live))
        pid = live[name]
        nkids = len(children(pid))
        with self.lock:
            self.killed[pid] = name
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError as e:
            return "kill %s (pid %d) failed: %s" % (name, pid, e)
        time.sleep(self.args.replace_after_s)
        self.replacements += 1
        new = "bx-worker-r%d" % self.replacements
        wid = "%s-r%d" % (socket.gethostname(), self.replacements)
        r = lib_sh('BX_WORKER_ID=$3 bx_start "$1" "$2" "$4"', self.run_dir, new, wid,
                   os.path.join(self.bin_dir, "bx-worker"), env=self.env, timeout=30)
        if r.returncode != 0:
            return "killed %s (pid %d, %s); replacement failed: %s" % (
                name, pid, "busy" if name in busy else "idle", r.stderr.strip())
        return "killed %s (pid %d, %s); started %s (pid %s)" % (
            name, pid, "running %d jobs" % nkids if nkids else "idle", new, self.pid(new))

    def stall_worker(self, seconds, stop_event):
        """SIGSTOPs a busy worker (its commands go on) for longer than its
        lease, then SIGCONTs it: a worker that was paused, then woke up."""
        until = time.monotonic() + 3
        while True:
            live = self.workers()
            busy = [n for n, pid in live.items() if children(pid)]
            if busy or time.monotonic() >= until:
                break
            time.sleep(0.02)
        if not live:
            return "no live worker to stall"
        name = random.choice(busy or sorted(live))
        pid = live[name]
        with self.lock:
            self.stalled = pid
            self.stalled_pids.add(pid)
        os.kill(pid, signal.SIGSTOP)
        try:
            stop_event.wait(seconds)
        finally:
            with self.lock:
                os.kill(pid, signal.SIGCONT)
                self.stalled = None
        return "stalled %s (pid %d, %s) for %.0fs" % (name, pid, "busy" if busy else "idle", seconds)

    def wait_for_command(self, text, timeout_s):
        """Waits (at most timeout_s) until some worker runs a command that
        contains text; True when one does. An outage then catches a job
        in the middle, as it would at scale."""
        if text == RETRY_MARK and self.args.kinds and "retry" not in self.args.kinds:
            return False
        until = time.monotonic() + timeout_s
        while time.monotonic() < until:
            for pid in self.workers().values():
                for child in children(pid):
                    try:
                        with open("/proc/%s/cmdline" % child, "rb") as f:
                            if text.encode() in f.read():
                                return True
                    except OSError:
                        pass
            time.sleep(0.01)
        return False

    def restart_rabbitmq(self):
        # a retry's first attempt that ends while RabbitMQ is away must
        # still be retried
        self.wait_for_command(RETRY_MARK, 10)
        t = time.monotonic()
        r = lib_sh('bx_stop "$1" rabbitmq && bx_ensure_rabbitmq "$1" "$2"', self.run_dir,
                   self.amqp_url, env=self.env, timeout=180)
        if r.returncode != 0:
            raise RuntimeError("RabbitMQ did not come back: " + r.stderr.strip()[-2000:])
        return "restarted RabbitMQ in %.1fs (pid %s)" % (time.monotonic() - t, self.pid("rabbitmq"))

    def kill_rabbitmq(self):
        """SIGKILL to the node's whole process group (a crash, not a stop:
        only what RabbitMQ confirmed is on disk), then start it again."""
        self.wait_for_command(RETRY_MARK, 10)
        pid = self.pid("rabbitmq")
        if not pid:
            raise RuntimeError("our RabbitMQ is not running")
        t = time.monotonic()
        os.killpg(pid, signal.SIGKILL)
        while proc_stat(pid) and proc_stat(pid)[0] != "Z" and time.monotonic() - t < 10:
            time.sleep(0.05)
        r = lib_sh('bx_ensure_rabbitmq "$1" "$2"', self.run_dir, self.amqp_url, env=self.env,
                   timeout=180)
        if r.returncode != 0:
            raise RuntimeError("RabbitMQ did not come back: " + r.stderr.strip()[-2000:])
        return "killed RabbitMQ (SIGKILL), up again in %.1fs (pid %s)" % (
            time.monotonic() - t, self.pid("rabbitmq"))

    def restart_redis(self):
        """An orderly restart (TERM: Redis saves its data first)."""
        t = time.monotonic()
        r = lib_sh('bx_stop "$1" redis && bx_ensure_redis "$1" "$2"', self.run_dir,
                   self.redis_url, env=self.env, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("Redis did not come back: " + r.stderr.strip())
        return "restarted Redis in %.1fs (pid %s)" % (time.monotonic() - t, self.pid("redis"))

    def kill_recorder(self):
        pid = self.pid("bx-recorder")
        if not pid:
            raise RuntimeError("our recorder is not running")
        with self.lock:
            self.killed[pid] = "bx-recorder"
        os.kill(pid, signal.SIGKILL)
        time.sleep(self.args.replace_after_s)
        r = lib_sh('bx_start "$1" bx-recorder "$2"', self.run_dir,
                   os.path.join(self.bin_dir, "bx-recorder"), env=self.env, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("the recorder did not start again: " + r.stderr.strip())
        return "killed bx-recorder (pid %d); started it again (pid %s)" % (pid, self.pid("bx-recorder"))

    def stop_redis(self):
        pid = self.pid("redis")
        if not pid:
            raise RuntimeError("our Redis is not running")
        with self.lock:
            os.kill(pid, signal.SIGSTOP)
            self.paused = True

    def cont_redis(self):
        pid = self.pid("redis")
        with self.lock:
            if pid and self.paused:
                os.kill(pid, signal.SIGCONT)
            self.paused = False

    def pause_redis(self, seconds, stop_event):
        self.stop_redis()
        try:
            stop_event.wait(seconds)
        finally:
            self.cont_redis()
        return "paused Redis for %.1fs" % seconds

    def bounce_mongo(self, seconds, stop_event):
        r = lib_sh('bx_stop "$1" mongo', self.run_dir, env=self.env, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("could not stop FerretDB: " + r.stderr.strip())
        stop_event.wait(seconds)
        r = lib_sh('bx_ensure_mongo "$1" "$2"', self.run_dir, self.mongo_url, env=self.env,
                   timeout=120)
        if r.returncode != 0:
            raise RuntimeError("FerretDB did not come back: " + r.stderr.strip())
        return "FerretDB down for %.1fs, started again (pid %s)" % (seconds, self.pid("mongo"))


# -------------------------------------------------------------------- load
RETRY_MARK = "sleep 1; exit 3"

# (weight, name, command body, extra job fields, expected (state, attempt))
KINDS = [
    (36, "true", lambda rnd: "true", {}, ("succeeded", 1)),
    (24, "echo", lambda rnd: "echo x", {}, ("succeeded", 1)),
    (28, "sleep_short", lambda rnd: "sleep 0.0%d" % rnd.randint(1, 9), {}, ("succeeded", 1)),
    (2, "sleep_mid", lambda rnd: "sleep 0.3", {}, ("succeeded", 1)),
    (3, "sleep_1", lambda rnd: "sleep 1", {}, ("succeeded", 1)),
    # jobs sharing a lock never run at once; a dead worker's lock expires
    (2, "locked", lambda rnd: "sleep 0.05", "lock", ("succeeded", 1)),
    # fails its first attempt (after a while, so that some fail while
    # RabbitMQ is away), succeeds on the retry (via a delay queue)
    (4, "retry", lambda rnd: '[ "${BX_ATTEMPT:-1}" -ge 2 ] || { %s; }' % RETRY_MARK,
     {"max_retries": 2, "retry_backoff_s": 0.2}, ("succeeded", 2)),
    (1, "timeout", lambda rnd: "sleep 5", {"timeout_s": 1}, ("timed_out", 1)),
]


def make_jobs(n, marks, run_id, rnd, kinds=None):
    """[(job, (expected state, expected attempt))] in submission order;
    kinds: the names of KINDS to use (all when empty)."""
    use = [k for k in KINDS if not kinds or k[1] in kinds]
    total = sum(k[0] for k in use)
    jobs = []
    for seq in range(n):
        x = rnd.uniform(0, total)
        for w, name, body, extra, expect in use:
            x -= w
            if x <= 0:
                break
        # bash -c's parent is the worker: $PPID says which one started it
        # (a marker that cannot be written fails the job: exit 97)
        cmd = 'echo "%d $PPID ${BX_ATTEMPT:-?}" >> %s || exit 97; %s' % (seq, marks, body(rnd))
        job = {"command": cmd, "labels": {"chaos": run_id, "seq": str(seq), "kind": name}}
        if extra == "lock":
            job["lock"] = "%s_lock_%d" % (run_id, seq % 3)
        else:
            job.update(extra)
        jobs.append((job, expect))
    return jobs


class Load:
    """Client threads submitting the jobs, paced over the window."""

    def __init__(self, stack, jobs, window_s, threads):
        self.stack = stack
        self.jobs = jobs
        self.window = window_s
        self.threads = threads
        host, port = stack.api_url.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.lock = threading.Lock()
        self.next = 0
        self.accepted = {}          # seq -> job id
        self.rejected_503 = set()   # seqs
        self.other = collections.Counter()   # "429", "refused", ...
        self.unknown = set()        # seqs sent without an answer
        self.timeline = []          # (t, seq, outcome)
        self.start = None
        self.stop = threading.Event()

    def post(self, job):
        body = json.dumps(job).encode()
        c = http.client.HTTPConnection(self.host, self.port, timeout=self.stack.args.http_timeout_s)
        try:
            try:
                c.connect()
            except OSError as e:
                return "refused", None, str(e)
            try:
                c.request("POST", "/v1/jobs", body, {"Authorization": "Bearer " + self.stack.token,
                                                     "Content-Type": "application/json"})
                r = c.getresponse()
                raw = r.read()
            except (OSError, http.client.HTTPException) as e:
                return "unknown", None, str(e)
            try:
                doc = json.loads(raw) if raw else None
            except ValueError:
                doc = None
            return str(r.status), doc, raw[:200]
        finally:
            c.close()

    def worker(self):
        while not self.stop.is_set():
            with self.lock:
                seq = self.next
                if seq >= len(self.jobs):
                    return
                self.next += 1
            due = self.start + seq * self.window / len(self.jobs)
            delay = due - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                return
            outcome, doc, raw = self.post(self.jobs[seq][0])
            now = time.monotonic() - self.start
            with self.lock:
                self.timeline.append((now, seq, outcome))
                if outcome == "202" and isinstance(doc, dict) and isinstance(doc.get("id"), str):
                    self.accepted[seq] = doc["id"]
                elif outcome == "202":
                    self.other["202_without_id"] += 1
                    log("202 without an id: %r", raw)
                elif outcome == "503":
                    self.rejected_503.add(seq)
                elif outcome == "unknown":
                    self.unknown.add(seq)
                else:
                    self.other[outcome] += 1
                    if self.other[outcome] <= 3:
                        log("POST /v1/jobs answered %s: %r", outcome, raw)

    def run(self):
        self.start = time.monotonic()
        ts = [threading.Thread(target=self.worker, daemon=True) for _ in range(self.threads)]
        for t in ts:
            t.start()
        return ts


# ------------------------------------------------------------------ faults
def schedule(args):
    """[(fraction of the window, fault)], faults spread over 8%..80% of it."""
    if args.faults:
        plan = [f for f in args.faults.split(",") if f]
    elif args.short:
        plan = ["kill", "rabbitmq", "kill", "redis", "mongo", "kill"]
    else:
        plan = ["kill", "rabbitmq", "kill", "redis", "kill", "mongo", "kill", "rabbitmq",
                "kill", "redis", "kill"]
    for f in plan:
        if f not in FAULTS:
            raise SystemExit("unknown fault '%s' (%s)" % (f, ", ".join(sorted(FAULTS))))
    n = len(plan)
    return [(0.08 + 0.72 * i / max(n - 1, 1), f) for i, f in enumerate(plan)]


FAULTS = {
    "kill": lambda f: f.stack.kill_worker(),
    "rabbitmq": lambda f: f.stack.restart_rabbitmq(),
    "rabbitmq-kill": lambda f: f.stack.kill_rabbitmq(),
    "redis": lambda f: f.stack.pause_redis(f.stack.args.redis_pause_s, f.stop),
    "redis-restart": lambda f: f.stack.restart_redis(),
    "mongo": lambda f: f.stack.bounce_mongo(f.stack.args.mongo_down_s, f.stop),
    "recorder-kill": lambda f: f.stack.kill_recorder(),
    "stall": lambda f: f.stack.stall_worker(f.stack.args.stall_s, f.stop),
}


class Faults(threading.Thread):
    def __init__(self, stack, plan, window_s, start):
        super().__init__(daemon=True)
        self.stack, self.plan, self.window, self.start_t = stack, plan, window_s, start
        self.stop = threading.Event()
        self.done = []      # (t0, t1, fault, description)
        self.error = None
        self.kills = 0

    def run(self):
        try:
            for frac, fault in self.plan:
                wait = self.start_t + frac * self.window - time.monotonic()
                if wait > 0 and self.stop.wait(wait):
                    return
                if self.stop.is_set():
                    return
                t0 = time.monotonic() - self.start_t
                log("fault: %s ...", fault)
                what = FAULTS[fault](self)
                if fault == "kill":
                    self.kills += 1
                t1 = time.monotonic() - self.start_t
                self.done.append((t0, t1, fault, what))
                log("fault: %s (%.1fs..%.1fs)", what, t0, t1)
        except Exception as e:  # reported by the main thread
            self.error = "%s: %s" % (type(e).__name__, e)
            log("fault injection failed: %s", self.error)


# ------------------------------------------------------------------ checks
def read_marks(path):
    """{seq: [(worker pid, attempt), ...]} in the order the starts happened."""
    runs = collections.defaultdict(list)
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) == 3 and p[0].isdigit():
                    runs[int(p[0])].append((int(p[1]) if p[1].isdigit() else -1, p[2]))
    except FileNotFoundError:
        pass
    return runs


def redis_states(rds, ns, ids):
    """{id: (state or None, attempt or None)} from the status hashes."""
    out = {}
    ids = list(ids)
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        pipe = rds.pipeline(transaction=False)
        for jid in part:
            pipe.hmget("%s:job:%s" % (ns, jid), "state", "attempt")
        for jid, (st, at) in zip(part, pipe.execute()):
            out[jid] = (st.decode() if st else None, at.decode() if at else None)
    return out


def lost_attempts(rds, ns, ids):
    """{id: {attempt, ...}} of the attempts each job lost with its worker
    (state "lost" in its status's `attempts`): another worker took the job
    over as the next attempt, which uses none of its retries."""
    out = {}
    ids = list(ids)
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        pipe = rds.pipeline(transaction=False)
        for jid in part:
            pipe.hget("%s:job:%s" % (ns, jid), "doc")
        for jid, doc in zip(part, pipe.execute()):
            try:
                atts = json.loads(doc).get("attempts") or [] if doc else []
            except ValueError:
                atts = []
            lost = {str(a.get("attempt")) for a in atts if a.get("state") == "lost"}
            if lost:
                out[jid] = lost
    return out


def mongo_records(coll):
    """{_id: [(state, attempt), ...]} of every record (the namespace is ours)."""
    recs = collections.defaultdict(list)
    for d in coll.find({}, {"state": 1, "attempt": 1}):
        recs[str(d["_id"])].append((d.get("state"), None if d.get("attempt") is None
                                    else str(d.get("attempt"))))
    return recs


def classify(accepted, rstates, recs):
    c = collections.Counter()
    bad = collections.defaultdict(list)
    for seq, jid in accepted.items():
        st, at = rstates.get(jid, (None, None))
        rec = recs.get(jid, [])
        if st not in TERMINAL:
            c["stuck"] += 1
            bad["stuck"].append((seq, jid, st))
        if not rec:
            c["lost"] += 1
            bad["lost"].append((seq, jid, st))
        elif len(rec) > 1:
            c["duplicated"] += 1
            bad["duplicated"].append((seq, jid, rec))
        if rec and st is not None and (rec[0][0] != st or (at is not None and rec[0][1] != at)):
            c["mismatched"] += 1
            bad["mismatched"].append((seq, jid, (st, at), rec[0]))
    return c, bad


def settle(stack, accepted, rds, coll, deadline):
    """Polls until every accepted job is terminal in Redis with a matching
    record in MongoDB, or deadline. Returns the last classification."""
    last_note = 0
    while True:
        try:
            rstates = redis_states(rds, stack.ns, accepted.values())
            recs = mongo_records(coll)
            c, bad = classify(accepted, rstates, recs)
        except (redis.RedisError, pymongo.errors.PyMongoError) as e:
            log("check failed (%s): again", e)
            c, bad, rstates, recs = None, None, {}, {}
        if c is not None and not c:
            return c, bad, rstates, recs
        now = time.monotonic()
        if now >= deadline:
            if c is None:
                raise RuntimeError("Redis or MongoDB did not answer the final check")
            return c, bad, rstates, recs
        if now - last_note >= 10 and c is not None:
            log("waiting for the jobs to settle: %s", " ".join("%s=%d" % kv for kv in sorted(c.items())))
            last_note = now
        time.sleep(2)


def orphaned_statuses(rds, ns, accepted_ids):
    """[(id, state)] of the non-terminal statuses in Redis of jobs that
    were not accepted (a 503'd job must leave no live status behind)."""
    out = []
    for key in rds.scan_iter("%s:job:*" % ns, count=1000):
        jid = key.decode().rsplit(":", 1)[1]
        if jid in accepted_ids:
            continue
        st = rds.hget(key, "state")
        st = st.decode() if st else None
        if st not in TERMINAL:
            out.append((jid, st))
    return out


class Tap:
    """A copy of every result event: a queue of ours bound to the fanout
    exchange "<ns>.events" (durable, so that it survives the restarts).
    Tells how many events each job produced and whether any was not
    terminal (a worker republishing a status that is not a result)."""

    def __init__(self, stack):
        import amqp
        self.stack = stack
        self.queue = "%s.chaos-tap" % stack.ns
        conn = self.connect()
        ch = conn.channel()
        ch.queue_declare(self.queue, durable=True, auto_delete=False)
        ch.queue_bind(self.queue, "%s.events" % stack.ns, "")
        conn.close()

    def connect(self):
        import amqp
        conn = amqp.Connection(host="127.0.0.1:%d" % self.stack.amqp_port, userid="guest",
                               password="guest", virtual_host="/", connect_timeout=5)
        conn.connect()
        return conn

    def drain(self, timeout_s=60):
        """{job id: [state, ...]} of the events in the tap queue."""
        events = collections.defaultdict(list)
        conn = self.connect()
        ch = conn.channel()
        ch.basic_qos(0, 1000, False)
        got = []
        ch.basic_consume(self.queue, callback=got.append, no_ack=True)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                conn.drain_events(timeout=1)
            except socket.timeout:
                break
        conn.close()
        for m in got:
            try:
                ev = json.loads(m.body)
                events[ev.get("id")].append((ev.get("state"), ev.get("attempt")))
            except (ValueError, AttributeError):
                events[None].append(("undecodable", None))
        return events


def queue_depths(stack):
    """{queue: messages} of the namespace's queues (py-amqp, passive declares)."""
    import amqp
    out = {}
    try:
        conn = amqp.Connection(host="127.0.0.1:%d" % stack.amqp_port, userid="guest",
                               password="guest", virtual_host="/", connect_timeout=5)
        conn.connect()
        for q in ("%s.dead" % stack.ns, "%s.results" % stack.ns, "%s.jobs.default" % stack.ns):
            ch = conn.channel()
            try:
                out[q] = ch.queue_declare(q, passive=True).message_count
            except amqp.exceptions.NotFound:
                out[q] = 0
        conn.close()
    except Exception as e:
        log("could not read the queue depths: %s", e)
    return out


# -------------------------------------------------------------------- main
def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=None, help="jobs to submit (5000; 300 with --short)")
    p.add_argument("--short", action="store_true", help="the short run of make test")
    p.add_argument("--window-s", type=float, default=None,
                   help="submissions are spread over this long (240; 70 with --short)")
    p.add_argument("--threads", type=int, default=4, help="client threads")
    p.add_argument("--workers", type=int, default=2, help="workers of the stack (>= 2)")
    p.add_argument("--concurrency", type=int, default=4, help="BX_CONCURRENCY of each worker")
    p.add_argument("--lease-ms", type=int, default=0, help="BX_LEASE_MS (0: the default)")
    p.add_argument("--heartbeat-s", type=int, default=None,
                   help="the workers' BX_AMQP_HEARTBEAT_S (default: theirs); with --lease-ms "
                        "below --stall-s, a stalled worker's jobs are taken over")
    p.add_argument("--faults", default="",
                   help="comma-separated plan, e.g. kill,rabbitmq,redis,mongo (default: by mode)")
    p.add_argument("--kinds", default="",
                   help="comma-separated kinds of job to submit (default all: %s)"
                   % ",".join(k[1] for k in KINDS))
    p.add_argument("--redis-pause-s", type=float, default=8,
                   help="longer than the 5 s command timeout of our Redis clients")
    p.add_argument("--mongo-down-s", type=float, default=10)
    p.add_argument("--stall-s", type=float, default=40,
                   help="how long the stall fault SIGSTOPs a worker (beyond its lease)")
    p.add_argument("--replace-after-s", type=float, default=1,
                   help="a killed worker's replacement starts after this")
    p.add_argument("--settle-s", type=float, default=None,
                   help="longest wait for the jobs to settle after the load (240; 60 with --short)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="the whole run, teardown excepted (840; 160 with --short)")
    p.add_argument("--http-timeout-s", type=float, default=30)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the run dir (logs, data)")
    a = p.parse_args(argv)
    a.jobs = a.jobs if a.jobs is not None else (300 if a.short else 5000)
    a.window_s = a.window_s if a.window_s is not None else (70 if a.short else 240)
    a.settle_s = a.settle_s if a.settle_s is not None else (60 if a.short else 240)
    a.budget_s = a.budget_s if a.budget_s is not None else (160 if a.short else 840)
    a.kinds = [k for k in a.kinds.split(",") if k]
    unknown = set(a.kinds) - {k[1] for k in KINDS}
    if unknown:
        p.error("unknown kinds: %s" % ", ".join(sorted(unknown)))
    if a.workers < 2:
        p.error("--workers must be at least 2")
    if a.jobs < 1:
        p.error("--jobs must be at least 1")
    return a


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    random.seed(seed)
    rnd = random.Random(seed)
    deadline = time.monotonic() + args.budget_s

    def on_term(signum, frame):
        raise Interrupted("signal %d" % signum)
    old = {s: signal.signal(s, on_term) for s in (signal.SIGTERM, signal.SIGINT)}

    base = os.environ.get("BX_TEST_TMPDIR") or tempfile.gettempdir()
    stack = Stack(args, base)
    load = faults = None
    failed, keep = True, args.keep
    summary = None
    try:
        log("seed %d, %d jobs over %.0fs, %d workers x %d, faults %s", seed, args.jobs,
            args.window_s, args.workers, args.concurrency,
            " ".join("%s@%.0fs" % (f, fr * args.window_s) for fr, f in schedule(args)))
        marks = stack.marks_file()
        stack.start_watchdog()
        try:
            stack.up()
        except Exception as e:
            log("setup failed: %s", e)
            stack.print_logs()
            return 2
        rds = redis.Redis(host="127.0.0.1", port=stack.redis_port, socket_timeout=10,
                          socket_connect_timeout=5)
        mongo = pymongo.MongoClient(stack.mongo_url, serverSelectionTimeoutMS=5000,
                                    connectTimeoutMS=5000, socketTimeoutMS=30000)
        coll = mongo[stack.ns]["jobs"]
        run_id = stack.ns
        jobs = make_jobs(args.jobs, marks, run_id, rnd, args.kinds)

        tap = Tap(stack)
        load = Load(stack, jobs, args.window_s, args.threads)
        threads = load.run()
        faults = Faults(stack, schedule(args), args.window_s, load.start)
        faults.start()
        load_deadline = deadline - args.settle_s
        for t in threads:
            t.join(max(0, load_deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            log("the load did not finish in time: stopping it")
            load.stop.set()
            for t in threads:
                t.join(args.http_timeout_s + 5)
        log("load done: %d accepted, %d 503, %d unknown, other %s", len(load.accepted),
            len(load.rejected_503), len(load.unknown), dict(load.other))
        faults.join(max(0, deadline - time.monotonic() - 30))
        if faults.is_alive():
            log("fault injection overran: stopping it")
            faults.stop.set()
            faults.join(60)
        if stack.paused:
            stack.cont_redis()

        for t0, t1, fault, what in faults.done:
            seen = collections.Counter(o for t, s, o in load.timeline if t0 <= t < t1 + 5)
            log("during %s (%.1fs..%.1fs, +5s): %s", fault, t0, t1,
                " ".join("%s=%d" % kv for kv in sorted(seen.items())) or "no submissions")
        # The API must have taken jobs again once the last fault was over.
        last_fault_end = max((d[1] for d in faults.done), default=0)
        after = [o for t, s, o in load.timeline if t > last_fault_end]
        recovered = not after or "202" in after or not faults.done
        settle_deadline = min(deadline, time.monotonic() + args.settle_s)
        c, bad, rstates, recs = settle(stack, load.accepted, rds, coll, settle_deadline)
        if not c:
            # a late event (a redelivered copy's) must not change anything
            time.sleep(3)
            c, bad, rstates, recs = settle(stack, load.accepted, rds, coll, time.monotonic())

        # Every bx process we did not kill must still run, settled or not.
        crashed = []
        for n in stack.names("bx-"):
            if stack.pid(n) is None:
                try:
                    with open(os.path.join(stack.run_dir, "pids", n + ".pid")) as f:
                        pid = int(f.read().strip())
                except (OSError, ValueError):
                    pid = None
                if pid not in stack.killed:
                    crashed.append(n)
        # The findings are told last, after the logs of a failed run, so
        # that a runner showing the tail of the output shows them.
        notes = []

        def note(fmt, *a):
            notes.append(fmt % a)
        for n in crashed:
            note("CRASHED: %s is gone (see the tail of its log above)", n)

        runs = read_marks(marks)
        killed = set(stack.killed)
        try:
            taken_over = lost_attempts(rds, stack.ns, load.accepted.values())
        except redis.RedisError as e:
            log("could not read the lost attempts (%s)", e)
            taken_over = {}
        ghost, ran_twice, wrong_state, reran = [], [], [], 0
        for seq, jid in load.accepted.items():
            r = runs.get(seq, [])
            st, at = rstates.get(jid, (None, None))
            if st == "succeeded" and not r:
                ghost.append((seq, jid))
            # Starts of the same attempt: all but the last must have been
            # on a worker we killed. (A retry is a new attempt.)
            by_attempt = collections.defaultdict(list)
            for pid, a in r:
                by_attempt[a].append(pid)
            for a, pids in by_attempt.items():
                if len(pids) > 1:
                    if all(pid in killed for pid in pids[:-1]):
                        reran += len(pids) - 1
                    else:
                        ran_twice.append((seq, jid, a, pids))
            # An attempt lost with its worker and taken over by another
            # ran again as the next attempt: its worker must have been
            # killed or stalled by us.
            lost = taken_over.get(jid, set())
            for a in lost:
                pids = by_attempt.get(a, [])
                if all(pid in killed or pid in stack.stalled_pids for pid in pids):
                    reran += len(pids)
                else:
                    ran_twice.append((seq, jid, a, pids))
            want = jobs[seq][1]
            # Takeovers are not retries: the attempt that counts leaves
            # them out; but $BX_ATTEMPT (what the retry kind's command
            # tests) is the raw number.
            ok_at = {at}
            if at and at.isdigit() and lost:
                ok_at.add(str(int(at) - len(lost)))
            if st in TERMINAL and (st != want[0] or str(want[1]) not in ok_at):
                wrong_state.append((seq, jobs[seq][0]["labels"]["kind"], jid, (st, at), want))
        ran_after_503 = sum(1 for s in load.rejected_503 if runs.get(s))
        states = collections.Counter(rstates.get(j, (None,))[0] or "none" for j in load.accepted.values())
        orphans = orphaned_statuses(rds, stack.ns, set(load.accepted.values()))
        for jid, st in orphans[:10]:
            note("orphaned status (a job not accepted, %s in Redis): %s", st, jid)
        depths = queue_depths(stack)
        try:
            events = tap.drain()
        except Exception as e:
            log("could not read the events tap: %s", e)
            events = {}
        nonterminal = [(jid, evs) for jid, evs in events.items()
                       if any(st not in TERMINAL for st, _ in evs)]
        for jid, evs in nonterminal[:10]:
            note("non-terminal result event(s) for %s: %r", jid, evs)
        no_event = [jid for jid in load.accepted.values()
                    if events and not any(st in TERMINAL for st, _ in events.get(jid, []))]
        for jid in no_event[:10]:
            note("no terminal result event seen for accepted job %s: %r", jid, events.get(jid))

        fatal = {"lost": c["lost"], "duplicated": c["duplicated"], "stuck": c["stuck"],
                 "mismatched": c["mismatched"], "ghost": len(ghost), "ran_twice": len(ran_twice),
                 "wrong_state": len(wrong_state), "crashed": len(crashed),
                 "orphaned": len(orphans)}
        for item in wrong_state[:10]:
            note("wrong state (seq, kind, id, (state, attempt), expected): %r", item)
        for kind in ("stuck", "lost", "duplicated", "mismatched"):
            for item in bad[kind][:10]:
                note("%s: %r", kind, item)
        for item in ghost[:10]:
            note("ghost (succeeded, never started): %r", item)
        for item in ran_twice[:10]:
            note("ran twice (seq, id, attempt, worker pids of its starts; killed: %s): %r",
                sorted(killed), item)
        failed = any(fatal.values()) or not recovered or faults.error is not None
        parts = ["accepted=%d" % len(load.accepted), "rejected_503=%d" % len(load.rejected_503)]
        parts += ["%s=%d" % kv for kv in fatal.items()]
        parts += ["reran=%d" % reran, "ran_after_503=%d" % ran_after_503]
        parts += [
                  "unknown=%d" % len(load.unknown),
                  "other=%d" % sum(load.other.values()),
                  "dead_letters=%d" % depths.get("%s.dead" % stack.ns, -1),
                  "events=%d" % sum(len(v) for v in events.values()),
                  "nonterminal_events=%d" % len(nonterminal),
                  "kills=%d" % faults.kills,
                  "faults=%d/%d" % (len(faults.done), len(schedule(args))),
                  "api_recovered=%s" % ("yes" if recovered else "no"),
                  "states=%s" % ",".join("%s:%d" % kv for kv in sorted(states.items())),
                  "elapsed_s=%d" % (time.monotonic() - T0),
                  "seed=%d" % seed,
                  "result=%s" % ("FAIL" if failed else "PASS")]
        summary = " ".join(parts)
        if faults.error:
            note("fault injection error: %s", faults.error)
        if not recovered:
            note("the API accepted no job after the last fault")
        if failed:
            stack.print_logs(20)
            keep = keep or bool(os.environ.get("BX_CHAOS_KEEP_ON_FAIL"))
        for n in notes:
            log("%s", n)
        return 1 if failed else 0
    except Interrupted as e:
        log("interrupted (%s): cleaning up", e)
        summary = "accepted=%d rejected_503=%d result=INTERRUPTED" % (
            len(load.accepted) if load else 0, len(load.rejected_503) if load else 0)
        return 130
    except Exception as e:
        import traceback
        traceback.print_exc()
        log("the suite itself failed: %s", e)
        stack.print_logs()
        summary = "accepted=%d rejected_503=%d result=ERROR error=%s" % (
            len(load.accepted) if load else 0, len(load.rejected_503) if load else 0,
            json.dumps(str(e)))
        return 1
    finally:
        for s, h in old.items():
            signal.signal(s, signal.SIG_IGN)   # the teardown itself is not interrupted
        if load:
            load.stop.set()
        if faults:
            faults.stop.set()
            faults.join(30)
        t = time.monotonic()
        stack.down(keep=keep)
        log("teardown took %.1fs", time.monotonic() - t)
        for s, h in old.items():
            signal.signal(s, h)
        if summary:
            print(summary, flush=True)


if __name__ == "__main__":
    sys.exit(main())
