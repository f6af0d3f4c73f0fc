"""The Celery baseline of `make bench`: the same jobs as bashexec's, the way
a careful Celery user would run them.

Debian's python3-celery (run it with /usr/bin/python3), RabbitMQ as the
broker, Redis as the result backend, task_acks_late=True,
worker_prefetch_multiplier=1, a prefork worker of concurrency 2, and a task
that runs the command as bashexec does: `bash -c COMMAND`, output captured.

This file is both the Celery app and its driver:

    python3 -m celery -A celery_bench worker ...   the worker (run.sh starts it)
    python3 celery_bench.py drive -n 2000 -l 200   measure; one JSON line
    python3 celery_bench.py cleanup                 delete the queue and exchange

Settings come from the environment: BENCH_CELERY_QUEUE (a queue name of
this run alone), BENCH_AMQP_URL, BENCH_CELERY_REDIS_URL (a Redis database
of its own), BENCH_CELERY_IDS (a file where the driver notes the ids of
the tasks it submits, so that `cleanup` can delete their results even
after an interrupted run; they also expire after an hour).
"""
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

from celery import Celery
from kombu import Exchange, Queue

QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "bench_celery")
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/14")
IDS_FILE = os.environ.get("BENCH_CELERY_IDS")

app = Celery("celery_bench", broker=AMQP_URL, backend=REDIS_URL)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_queues=[Queue(QUEUE, Exchange(QUEUE, type="direct"), routing_key=QUEUE)],
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,           # a crashed run's keys go by themselves
    worker_send_task_events=False,
    task_send_sent_event=False,
    worker_enable_remote_control=False,  # no pidbox queues left behind
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.run")
def run(cmd):
    p = subprocess.run(cmd, shell=True, executable="/bin/bash", capture_output=True)
    return {
        "exit_code": p.returncode,
        "stdout": p.stdout.decode("utf-8", "replace"),
        "stderr": p.stderr.decode("utf-8", "replace"),
    }


def delete_results(ids):
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    for i in range(0, len(ids), 500):
        r.delete(*["celery-task-meta-" + t for t in ids[i:i + 500]])
    r.close()


def new_ids(n):
    """n task ids, noted in IDS_FILE (for cleanup) before the clock starts."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    if IDS_FILE:
        with open(IDS_FILE, "a") as f:
            f.write("".join(i + "\n" for i in ids))
    return ids


def forget(results):
    """Deletes the result keys of these tasks from Redis."""
    delete_results([res.id for res in results])


def wait_ready(timeout_s):
    deadline = time.monotonic() + timeout_s
    while True:
        res = run.apply_async(("true",), task_id=new_ids(1)[0])
        try:
            res.get(timeout=max(1.0, deadline - time.monotonic()))
            forget([res])
            return
        except Exception:  # noqa: BLE001 - the worker may still be starting
            if time.monotonic() > deadline:
                raise SystemExit("celery_bench: the worker did not answer in %ds" % timeout_s)


def drive(n, nlat, timeout_s):
    wait_ready(60)
    # warm up: the pool's children, the connections and the result
    # subscriptions, so that the first repetition is not the odd one out
    warm = [run.apply_async(("true",), task_id=i) for i in new_ids(min(n, 200))]
    for res in warm:
        res.get(timeout=timeout_s)
    forget(warm)
    # end to end: submit all, then wait for every result
    ids = new_ids(n)
    t0 = time.perf_counter()
    results = [run.apply_async(("true",), task_id=i) for i in ids]
    submitted = time.perf_counter()
    bad = 0
    for res in results:
        v = res.get(timeout=timeout_s)
        if v.get("exit_code") != 0:
            bad += 1
    t1 = time.perf_counter()
    forget(results)
    # one at a time: submit, wait for the result, next
    lat = []
    ids = new_ids(nlat + 1)
    first = run.apply_async(("true",), task_id=ids[0])
    first.get(timeout=timeout_s)
    one = [first]
    for i in ids[1:]:
        s = time.perf_counter()
        res = run.apply_async(("true",), task_id=i)
        res.get(timeout=timeout_s)
        lat.append((time.perf_counter() - s) * 1000.0)
        one.append(res)
    forget(one)
    lat.sort()
    print(json.dumps({
        "jobs": n,
        "failed": bad,
        "submit_per_s": round(n / (submitted - t0), 1),
        "e2e_per_s": round(n / (t1 - t0), 1),
        "latency_n": nlat,
        "latency_p50_ms": round(statistics.median(lat), 4),
        "latency_p99_ms": round(lat[int(len(lat) * 0.99) - 1], 4),
    }), flush=True)


def cleanup():
    if IDS_FILE and os.path.exists(IDS_FILE):
        with open(IDS_FILE) as f:
            delete_results([line.strip() for line in f if line.strip()])
        os.unlink(IDS_FILE)
    with app.connection_for_write() as conn:
        ch = conn.default_channel
        try:
            ch.queue_delete(QUEUE)
        except Exception as e:  # noqa: BLE001
            print("celery_bench: deleting queue %s: %s" % (QUEUE, e), file=sys.stderr)
        try:
            ch.exchange_delete(QUEUE)
        except Exception as e:  # noqa: BLE001
            print("celery_bench: deleting exchange %s: %s" % (QUEUE, e), file=sys.stderr)


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(prog="celery_bench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drive")
    d.add_argument("-n", type=int, default=2000, help="jobs submitted at once")
    d.add_argument("-l", type=int, default=200, help="jobs one at a time")
    d.add_argument("-t", type=float, default=120, help="seconds to wait for a result")
    sub.add_parser("cleanup")
    a = ap.parse_args(argv)
    if a.cmd == "drive":
        drive(a.n, a.l, a.t)
    else:
        cleanup()


if __name__ == "__main__":
    main(sys.argv[1:])
