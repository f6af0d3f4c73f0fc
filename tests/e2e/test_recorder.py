"""End-to-end test of bx-recorder against real RabbitMQ and a FerretDB of
its own (started here, because one check kills it), in a namespace of its
own. Publishes result events to <ns>.events as the worker does and checks
what lands in MongoDB and in <ns>.dead:

  - 1000 events are recorded, once each
  - a repeated event makes no second record
  - a lower attempt never overwrites a higher one; a higher one does
  - a malformed body goes to <ns>.dead with x-reason; so does an event
    MongoDB cannot store, without holding up the rest of its batch
  - a backlog is written in full batches, even when each batch is due at
    once (BX_RECORDER_BATCH_MS=0): the deliveries already there go in first
  - FerretDB killed for 10 s and restarted: nothing is lost, and the
    outage is logged once when lost and once when regained
  - its RabbitMQ connection closed by the server while it holds a batch
    it cannot write (FerretDB down): once FerretDB is back it writes the
    batch, finds the connection gone when it acks, reconnects, and
    nothing is lost (needs rabbitmqctl: skipped without it)
  - SIGHUP: it reopens its logs and goes on
  - SIGTERM while events stream in: exit 0; each event is either in
    MongoDB and acked, or back in the queue and not in MongoDB
  - SIGTERM: exit 0, everything acked

Run by tests/run.sh with Debian's python3 (py-amqp and pymongo). Needs
bin/bx-recorder and the FerretDB of `make deps` (.deps/bin/ferretdb).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

import amqp
import pymongo

from harness import amqp_connect, free_port, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("BX_BIN_DIR", os.path.join(ROOT, "bin"))
FERRET = os.path.join(ROOT, ".deps", "bin", "ferretdb")
AMQP_URL = os.environ.get("BX_AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/"
NS = "t_recorder_" + uuid.uuid4().hex[:8]
EVENTS = NS + ".events"

results = []


class Ferret:
    def __init__(self, tmp):
        self.port = free_port()
        self.dir = os.path.join(tmp, "ferret")
        self.log = open(os.path.join(tmp, "ferret.log"), "ab")
        self.proc = None
        self.url = "mongodb://127.0.0.1:%d/" % self.port

    def start(self):
        env = dict(os.environ, FERRETDB_TELEMETRY="disable")
        self.proc = subprocess.Popen([FERRET, "-listen-addr", "127.0.0.1:%d" % self.port,
                                      "-sqlite-dir", self.dir], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_for("FerretDB to listen", up, 30)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class Recorder:
    def __init__(self, tmp, mongo_url):
        self.logpath = os.path.join(tmp, "recorder.log")
        self.mongo_url = mongo_url
        self.proc = None

    def start(self, **extra_env):
        env = dict(os.environ, BX_NAMESPACE=NS, BX_MONGO_URL=self.mongo_url,
                   BX_AMQP_URL=AMQP_URL, BX_FOREGROUND="1", **extra_env)
        self.proc = subprocess.Popen([os.path.join(BIN, "bx-recorder")], env=env,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.logpath, "ab"))

    def stop(self, timeout=20):
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        self.proc = None
        return rc

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()


def event(job_id, attempt=1, state="succeeded", **extra):
    ev = {"id": job_id, "command": "echo hi", "queue": "default", "priority": 0,
          "labels": {"suite": "recorder"}, "attempt": attempt, "state": state,
          "submitted_at": "2026-11-23T11:46:35.123Z", "started_at": "2026-11-23T11:46:35.200Z",
          "finished_at": "2026-11-23T11:46:35.250Z", "duration_ms": 50, "worker": "test-1",
          "exit_code": 0, "stdout": "hi\n", "stdout_encoding": "utf-8", "stdout_bytes": 3,
          "stdout_truncated": False, "stderr": "", "stderr_encoding": "utf-8",
          "stderr_bytes": 0, "stderr_truncated": False}
    ev.update(extra)
    return ev


class World:
    def __init__(self, tmp):
        self.ferret = Ferret(tmp)
        self.ferret.start()
        self.rec = Recorder(tmp, self.ferret.url)
        self.rec.start()
        self.conn = amqp_connect(AMQP_URL)
        self.ch = self.conn.channel()
        self.ch.confirm_select()
        self.mongo = pymongo.MongoClient(self.ferret.url, serverSelectionTimeoutMS=20000)
        self.jobs = self.mongo[NS]["jobs"]
        # the recorder declares the topology when it connects
        wait_for("the recorder to consume", lambda: "event=amqp_connected" in self.rec.log(), 20)

    def publish(self, body):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        self.ch.basic_publish(amqp.Message(body, delivery_mode=2, content_type="application/json"),
                              exchange=EVENTS, routing_key="")

    def stored(self, job_id):
        return self.jobs.find_one({"_id": job_id})

    def sync(self, timeout=30):
        """Waits until everything published so far has been handled. The
        queue is FIFO, but within one batch new ids become visible before
        the replaced ones, so one sentinel only shows that its batch has
        started; a second one, published after the first is visible, lands
        in a later batch, which the recorder writes only once the first
        one's write returned."""
        for _ in range(2):
            sid = str(uuid.uuid4())
            self.publish(event(sid, labels={"suite": "sentinel"}))
            wait_for("sentinel %s" % sid, lambda: self.stored(sid), timeout)

    def dead(self, n, timeout=15):
        got = []
        end = time.time() + timeout
        while len(got) < n and time.time() < end:
            m = self.ch.basic_get(NS + ".dead", no_ack=True)
            if m is None:
                time.sleep(0.1)
                continue
            got.append(m)
        return got

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass
        self.rec.stop()
        self.ferret.kill()
        self.mongo.close()


def check(name, fn, w):
    t0 = time.time()
    try:
        fn(w)
        results.append(True)
        print("PASS %s (%.1fs)" % (name, time.time() - t0))
    except Skip as e:
        results.append(None)
        print("SKIP %s: %s" % (name, e))
    except Exception as e:  # a failed check reports and the others go on
        results.append(False)
        print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
    sys.stdout.flush()


def t_thousand(w):
    ids = [str(uuid.uuid4()) for _ in range(1000)]
    for i in ids:
        w.publish(event(i, labels={"suite": "thousand"}))
    wait_for("1000 records", lambda: w.jobs.count_documents({"labels.suite": "thousand"}) == 1000, 60)
    doc = w.stored(ids[0])
    assert doc["state"] == "succeeded" and doc["attempt"] == 1, doc
    w.thousand = ids


def t_duplicates(w):
    for i in w.thousand[:100]:
        w.publish(event(i, labels={"suite": "thousand"}))
    w.sync()
    n = w.jobs.count_documents({"labels.suite": "thousand"})
    assert n == 1000, "%d records after repeats" % n


def t_fence(w):
    x, y, z = (str(uuid.uuid4()) for _ in range(3))
    # separate batches
    w.publish(event(x, 2, "succeeded"))
    w.sync()
    w.publish(event(x, 1, "failed", exit_code=1))
    # one batch: 1, 3, 2
    w.publish(event(y, 1, "failed", exit_code=1))
    w.publish(event(y, 3, "succeeded"))
    w.publish(event(y, 2, "timed_out"))
    # higher after lower, separate
    w.publish(event(z, 1, "failed", exit_code=1))
    w.sync()
    w.publish(event(z, 2, "succeeded"))
    w.sync()
    for job, att, st in ((x, 2, "succeeded"), (y, 3, "succeeded"), (z, 2, "succeeded")):
        d = w.stored(job)
        assert d["attempt"] == att and d["state"] == st, "%s: %s" % (job, d)


def t_malformed(w):
    w.publish(b"this is not json {")
    w.publish({"id": "not-a-uuid", "state": "succeeded", "attempt": 1})
    msgs = w.dead(2)
    assert len(msgs) == 2, "%d dead letters" % len(msgs)
    bodies = sorted(m.body if isinstance(m.body, bytes) else m.body.encode() for m in msgs)
    assert b"this is not json {" in bodies, bodies
    for m in msgs:
        reason = m.headers.get("x-reason", "")
        assert reason.startswith("invalid event"), m.headers
    assert "event=dead_lettered" in w.rec.log()
    w.sync()  # and it goes on


def t_unstorable(w):
    bad, good = str(uuid.uuid4()), str(uuid.uuid4())
    w.publish(event(bad, labels={"a.b": "dotted key"}))
    w.publish(event(good))
    msgs = w.dead(1)
    assert len(msgs) == 1, "no dead letter"
    assert msgs[0].headers.get("x-reason", "").startswith("unstorable event"), msgs[0].headers
    assert json.loads(msgs[0].body)["id"] == bad
    wait_for("the good event of the batch", lambda: w.stored(good), 20)
    assert w.stored(bad) is None


def restart_recorder(w, **extra_env):
    assert w.rec.stop() == 0
    started = w.rec.log().count("event=amqp_connected")
    w.rec.start(**extra_env)
    wait_for("the recorder to consume again",
             lambda: w.rec.log().count("event=amqp_connected") > started, 20)


def t_backlog_batches(w):
    w.sync()
    assert w.rec.stop() == 0
    ids = [str(uuid.uuid4()) for _ in range(1200)]
    for i in ids:
        w.publish(event(i, labels={"suite": "backlog"}))
    w.ch.queue_declare(NS + ".results", passive=True)  # a round trip: all published
    mark = len(w.rec.log())
    try:
        w.rec.start(BX_RECORDER_BATCH_MS="0")
        wait_for("1200 backlog records",
                 lambda: w.jobs.count_documents({"labels.suite": "backlog"}) == 1200, 60)
        sizes = [int(line.split("event=batch_written n=")[1].split()[0])
                 for line in w.rec.log()[mark:].splitlines() if "event=batch_written n=" in line]
        # prefetch is twice the batch (500): a backlog fills whole batches
        assert len(sizes) <= 12, "1200 events in %d batches: %s" % (len(sizes), sizes[:20])
    finally:
        restart_recorder(w)


def t_mongo_outage(w):
    ids = [str(uuid.uuid4()) for _ in range(300)]
    for i in ids[:100]:
        w.publish(event(i, labels={"suite": "outage"}))
    w.ferret.kill()
    t_kill = time.time()
    for i in ids[100:]:
        w.publish(event(i, labels={"suite": "outage"}))
    time.sleep(max(0, 10 - (time.time() - t_kill)))
    w.ferret.start()
    wait_for("300 records after the outage",
             lambda: w.jobs.count_documents({"labels.suite": "outage"}) == 300, 60)
    log = w.rec.log()
    assert log.count("event=mongo_lost") == 1, log.count("event=mongo_lost")
    assert log.count("event=mongo_regained") == 1, log.count("event=mongo_regained")
    assert "event=batch_written" in log


def rabbitmqctl():
    ctl = os.environ.get("BX_RABBITMQCTL") or shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    return ctl if os.access(ctl, os.X_OK) else None


class Skip(Exception):
    pass


def t_amqp_loss(w):
    ctl = rabbitmqctl()
    if not ctl:
        raise Skip("no rabbitmqctl")
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(AMQP_URL).path[1:]) or "/"
    out = subprocess.run([ctl, "-q", "list_connections", "-p", vhost, "pid", "client_properties",
                          "--no-table-headers"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise Skip("rabbitmqctl list_connections failed: %s" % out.stderr.strip()[:200])
    mine = '"connection_name","bx-recorder %s %d"' % (NS, w.rec.proc.pid)
    pids = [line.split("\t")[0] for line in out.stdout.splitlines() if mine in line]
    assert len(pids) == 1, "the recorder's connection not found once: %r" % pids
    ids = [str(uuid.uuid4()) for _ in range(100)]
    w.ferret.kill()
    for i in ids:
        w.publish(event(i, labels={"suite": "amqp_loss"}))
    time.sleep(1)  # it holds them now, unable to write
    subprocess.run([ctl, "-q", "close_connection", pids[0], "test: connection lost"], check=True,
                   capture_output=True, timeout=60)
    time.sleep(1)
    # It notices when it acks, once MongoDB took the batch: until then it
    # waits on MongoDB and the batch is safe in RabbitMQ either way.
    w.ferret.start()
    wait_for("the recorder to reconnect", lambda: "event=amqp_regained" in w.rec.log(), 60)
    wait_for("100 records after the reconnection",
             lambda: w.jobs.count_documents({"labels.suite": "amqp_loss"}) == 100, 60)
    w.sync()
    log = w.rec.log()
    assert log.count("event=amqp_lost") == 1, log.count("event=amqp_lost")


def t_sighup(w):
    w.rec.proc.send_signal(signal.SIGHUP)
    wait_for("the reload", lambda: "event=reload" in w.rec.log(), 10)
    assert w.rec.proc.poll() is None, "exited on SIGHUP: %s" % w.rec.proc.returncode
    w.sync()


def t_shutdown_busy(w):
    w.sync()
    assert w.rec.stop() == 0
    # a backlog, so that the signal comes while it is busy with it
    n = 10000
    ids = [str(uuid.uuid4()) for _ in range(n)]
    for i in ids:
        w.publish(event(i, labels={"suite": "busy"}))
    before = w.rec.log().count("event=batch_written")
    w.rec.start()
    # the log, not MongoDB: a query would be slower than the recorder
    wait_for("the first batch", lambda: w.rec.log().count("event=batch_written") > before, 30)
    rc = w.rec.stop()
    assert rc == 0, "exit %s" % rc
    stored = {d["_id"] for d in w.jobs.find({"labels.suite": "busy"}, {"_id": 1})}
    left = set()
    while True:
        m = w.ch.basic_get(NS + ".results", no_ack=True)
        if m is None:
            break
        left.add(json.loads(m.body)["id"])
    print("    SIGTERM with %d events published: %d recorded, %d back in the queue"
          % (n, len(stored), len(left)))
    both = stored & left
    assert not both, "%d events written but not acked, e.g. %s" % (len(both), next(iter(both)))
    assert stored | left == set(ids), "%d events lost" % len(set(ids) - stored - left)
    assert left, "the recorder had written the whole backlog before the signal: nothing tested"
    connected = w.rec.log().count("event=amqp_connected")
    w.rec.start()
    wait_for("the recorder to consume again",
             lambda: w.rec.log().count("event=amqp_connected") > connected, 20)
    w.sync()


def t_shutdown(w):
    w.sync()
    rc = w.rec.stop()
    assert rc == 0, "exit %s" % rc
    log = w.rec.log()
    assert "event=stop" in log
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error"):
        assert bad not in log, "sanitizer report in the log: %s" % bad
    # nothing left unacked: it would be back in the queue now
    _, ready, _ = w.ch.queue_declare(NS + ".results", passive=True)
    assert ready == 0, "%d messages back in the queue" % ready


def cleanup():
    try:
        c = amqp_connect(AMQP_URL)
        ch = c.channel()
        for q in (NS + ".results", NS + ".dead"):
            ch.queue_delete(q)
        for x in ("jobs", "events", "dlx", "retry"):
            ch.exchange_delete(NS + "." + x)
        c.close()
    except Exception as e:
        print("cleanup: %s" % e)


def main():
    for path in (os.path.join(BIN, "bx-recorder"), FERRET):
        if not os.access(path, os.X_OK):
            print("FAIL setup: %s is missing (make all; make deps)" % path)
            return 1
    tmp = tempfile.mkdtemp(prefix="bx-rec-test.")
    w = None
    try:
        w = World(tmp)
        for name, fn in (("1000 events recorded once each", t_thousand),
                         ("repeated events make no second record", t_duplicates),
                         ("attempt fencing", t_fence),
                         ("malformed bodies dead-lettered", t_malformed),
                         ("unstorable event dead-lettered, batch goes on", t_unstorable),
                         ("a backlog is written in full batches", t_backlog_batches),
                         ("FerretDB down 10 s loses nothing", t_mongo_outage),
                         ("RabbitMQ connection lost while holding a batch", t_amqp_loss),
                         ("SIGHUP reopens the logs", t_sighup),
                         ("SIGTERM mid-stream: written means acked", t_shutdown_busy),
                         ("SIGTERM: exit 0, all acked", t_shutdown)):
            if name.startswith("repeated") and not hasattr(w, "thousand"):
                continue
            check(name, fn, w)
    except Exception as e:
        results.append(False)
        print("FAIL setup: %s: %s" % (type(e).__name__, e))
    finally:
        if w:
            if False in results:
                print("--- recorder log (tail)")
                print("\n".join(w.rec.log().splitlines()[-40:]))
            w.close()
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed, %d skipped"
          % (results.count(True), results.count(False), results.count(None)))
    return 0 if results and False not in results else 1


if __name__ == "__main__":
    sys.exit(main())
