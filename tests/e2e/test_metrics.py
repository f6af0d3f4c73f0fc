"""Metrics, liveness and readiness of every process.

A stack with BX_METRICS_LISTEN=127.0.0.1:0 (every worker and the recorder
on a port of its own, found through <run dir>/metrics/<name>.addr) runs a
few jobs: one succeeds, one fails, one fails, is retried, and fails again.
Then for the API, the recorder and each worker:

  - GET /metrics answers the Prometheus text format 0.0.4 and passes
    `promtool check metrics` (Debian's prometheus package)
  - the counters say what happened (jobs by queue and state, retries,
    output bytes, stored events, batches, queue wait and run time)
  - GET /healthz is 200, GET /readyz 200 and ready

and readiness names the dependency that is down: a recorder whose
MongoDB does not answer, and a worker whose Redis does not, answer 503
with "down": ["mongodb"] / ["redis"] while RabbitMQ is fine.

Workers are checked once they serve metrics (their logs say
event=metrics_listening); until then the test says it skipped them.
"""

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

from harness import Stack, wait_for, free_port, ROOT

BIN = os.environ.get("BX_BIN_DIR", os.path.join(ROOT, "bin"))
WORKERS = 2


def get(url, timeout=10):
    """(status, content type, body text) of GET url."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, ((label, value), ...)): float} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    """Sum of the samples of name whose labels include the given ones."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def promtool_check(what, text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    assert r.returncode == 0, "promtool check metrics on %s: %s%s" % (what, r.stdout, r.stderr)


def read_addr(run_dir, name, timeout=20):
    path = os.path.join(run_dir, "metrics", name + ".addr")
    addr = wait_for(path, lambda: os.path.exists(path) and open(path).read().strip(), timeout)
    return "http://" + addr


def check_process(what, base, deps):
    """/metrics through promtool, /healthz, /readyz (ready, with deps
    checked); returns the parsed samples."""
    status, ctype, text = get(base + "/metrics")
    assert status == 200, (what, status, text)
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, (what, ctype)
    promtool_check(what, text)
    status, _, body = get(base + "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}, (what, status, body)
    status, _, body = get(base + "/readyz")
    doc = json.loads(body)
    assert status == 200, (what, status, body)
    if deps is not None:  # bx-api answers {"status":"ready","checks":...}
        assert doc["ready"] is True and "down" not in doc, (what, doc)
    for d in deps or ():
        assert doc["checks"].get(d) == "ok", (what, d, doc)
    status, _, _ = get(base + "/no-such-path")
    assert status == 404, (what, status)
    print("ok %s at %s" % (what, base), file=sys.stderr)
    return parse(text)


def run_jobs(s):
    ok = s.submit({"command": "echo hello; echo warn >&2"})
    bad = s.submit({"command": "exit 3"})
    again = s.submit({"command": "echo x; exit 4", "max_retries": 1, "retry_backoff_s": 0.2})
    for job, state, attempt in ((ok, "succeeded", 1), (bad, "failed", 1), (again, "failed", 2)):
        done = s.wait(job["id"], timeout=60)
        assert done["state"] == state and done["attempt"] == attempt, done


def test_stack(s):
    if not shutil.which("promtool"):
        raise AssertionError("promtool is missing: install Debian's prometheus package "
                             "(make deps)")
    run_jobs(s)

    # bx-api: its own /metrics
    api = check_process("bx-api", s.url, None)
    assert value(api, "bx_api_jobs_submitted_total") >= 3, api

    # bx-recorder: all three final events stored
    rec_url = read_addr(s.run_dir, "bx-recorder")

    def recorded():
        m = parse(get(rec_url + "/metrics")[2])
        return m if value(m, "bx_recorder_events_total", result="stored") >= 3 else None
    wait_for("recorder stored 3 events", recorded, 30)
    rec = check_process("bx-recorder", rec_url, ["rabbitmq", "mongodb"])
    assert value(rec, "bx_recorder_events_total", result="stored") == 3, rec
    assert value(rec, "bx_recorder_events_total", result="dead_lettered") == 0, rec
    assert ("bx_recorder_events_total", (("result", "stale"),)) in rec, rec
    assert value(rec, "bx_recorder_batches_total") >= 1, rec
    assert value(rec, "bx_recorder_batch_size_count") == value(rec, "bx_recorder_batches_total")
    assert value(rec, "bx_recorder_batch_size_sum") == 3, rec
    assert value(rec, "bx_recorder_write_seconds_count") >= 1, rec
    assert 0 <= value(rec, "bx_recorder_lag_seconds") < 60, rec
    assert value(rec, "bx_recorder_amqp_up") == 1 and value(rec, "bx_recorder_mongo_up") == 1, rec

    # the workers
    logs = [os.path.join(s.run_dir, "logs", "bx-worker-%d.log" % i) for i in range(1, WORKERS + 1)]
    wired = [l for l in logs if "event=metrics_listening" in open(l, errors="replace").read()]
    assert len(wired) == WORKERS, wired
    names = sorted(f[:-5] for f in os.listdir(os.path.join(s.run_dir, "metrics"))
                   if f.endswith(".addr") and f != "bx-recorder.addr")
    assert len(names) == WORKERS, names
    total = {}
    for n in names:
        m = check_process("bx-worker " + n, read_addr(s.run_dir, n), ["rabbitmq", "redis"])
        assert value(m, "bx_worker_amqp_up") == 1 and value(m, "bx_worker_redis_up") == 1, m
        assert value(m, "bx_worker_running_jobs") == 0, m
        for k, v in m.items():
            total[k] = total.get(k, 0) + v

    def w(name, **labels):
        return value(total, name, **labels)
    assert w("bx_worker_jobs_started_total", queue="default") == 4, total
    assert w("bx_worker_jobs_finished_total", queue="default", state="succeeded") == 1, total
    assert w("bx_worker_jobs_finished_total", queue="default", state="failed") == 2, total
    assert w("bx_worker_jobs_finished_total", queue="default", state="timed_out") == 0, total
    assert w("bx_worker_retries_total", queue="default") == 1, total
    assert w("bx_worker_dead_lettered_total") == 0, total
    assert w("bx_worker_run_seconds_count", queue="default") == 4, total
    assert w("bx_worker_queue_wait_seconds_count", queue="default") == 3, total
    assert 0 <= w("bx_worker_queue_wait_seconds_sum", queue="default") < 60, total
    assert w("bx_worker_output_bytes_total", stream="stdout") == len("hello\n") + 2 * len("x\n")
    assert w("bx_worker_output_bytes_total", stream="stderr") == len("warn\n"), total


def test_readiness_names_what_is_down(s):
    """A recorder without MongoDB and a worker without Redis, each next to
    a RabbitMQ that works: 503, and the one dependency named."""
    dead = free_port()  # nothing listens there
    cases = [("bx-recorder", "bx-recorder", {"BX_MONGO_URL": "mongodb://127.0.0.1:%d/" % dead},
              "mongodb", "bx_recorder_mongo_up")]
    if any("event=metrics_listening" in open(os.path.join(s.run_dir, "logs", f), errors="replace").read()
           for f in os.listdir(os.path.join(s.run_dir, "logs")) if f.startswith("bx-worker")):
        cases.append(("bx-worker", "lonely-worker",
                      {"BX_REDIS_URL": "redis://127.0.0.1:%d/0" % dead, "BX_WORKER_ID": "lonely-worker"},
                      "redis", "bx_worker_redis_up"))
    for prog, name, env, down, gauge in cases:
        run_dir = tempfile.mkdtemp(prefix="ready.", dir=s.run_dir)
        # a namespace of their own (the stack's purge takes it too: it
        # deletes "<ns>" followed by any non-alphanumeric), so that they
        # take none of the stack's messages
        e = dict(s.env, BX_RUN_DIR=run_dir, BX_METRICS_LISTEN="127.0.0.1:0",
                 BX_NAMESPACE=s.namespace + "_ready", **env)
        log = open(os.path.join(run_dir, "log"), "w")
        p = subprocess.Popen([os.path.join(BIN, prog)], env=e, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = read_addr(run_dir, name)

            def answer():
                status, _, body = get(base + "/readyz")
                doc = json.loads(body)
                ok = doc["checks"].get("rabbitmq") == "ok" and doc.get("down") == [down]
                return (status, doc) if ok else None
            status, doc = wait_for("%s readyz names %s" % (prog, down), answer, 40)
            assert status == 503 and doc["ready"] is False, doc
            assert down in doc["error"]["message"], doc
            status, _, text = get(base + "/metrics")
            assert value(parse(text), gauge) == 0, text
            promtool_check(prog + " (dependency down)", text)
            assert get(base + "/healthz")[0] == 200  # alive all the same
            print("ok %s without %s: 503 %s" % (prog, down, json.dumps(doc)), file=sys.stderr)
        finally:
            p.terminate()
            rc = p.wait(timeout=30)
            log.close()
        assert rc == 0, "%s exited %d: %s" % (prog, rc, open(os.path.join(run_dir, "log")).read())
        # its address file goes with it
        assert not os.path.exists(os.path.join(run_dir, "metrics", name + ".addr"))


TESTS = [test_stack, test_readiness_names_what_is_down]


def run(s, tests):
    failed = []
    for t in tests:
        t0 = time.monotonic()
        try:
            t(s)
            print("ok %s (%.1fs)" % (t.__name__, time.monotonic() - t0), file=sys.stderr)
        except Exception:
            failed.append(t.__name__)
            print("FAIL %s (%.1fs)\n%s" % (t.__name__, time.monotonic() - t0,
                                            traceback.format_exc()), file=sys.stderr)
    if failed:
        raise SystemExit("failed: " + " ".join(failed))


if __name__ == "__main__":
    with Stack(workers=WORKERS, env={"BX_METRICS_LISTEN": "127.0.0.1:0",
                                     "BX_CONCURRENCY": "2"}) as s:
        run(s, TESTS)
