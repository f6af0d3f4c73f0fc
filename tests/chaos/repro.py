#!/usr/bin/python3
"""Deterministic reproductions of the faults the chaos suite found, one
private stack each (as chaos.py builds it: own RabbitMQ, Redis, FerretDB).
Each scenario prints what it saw and "ok" or "BUG: ..."; the exit status is
the number of scenarios that showed their bug. Not part of make test: these
are for whoever fixes the code, and can become e2e tests once it is fixed.

  /usr/bin/python3 tests/chaos/repro.py [retry-outage] [stale-event]

retry-outage   A job with max_retries whose attempt fails while RabbitMQ is
               away must still be retried (here: succeed on attempt 2).
stale-event    A duplicate delivery of a superseded attempt must not publish
               a non-terminal status as a result event, and a late
               non-terminal event must not overwrite a terminal record.
(orphan-status, a job answered 503 while Redis was paused left "queued",
is tests/e2e/test_fault_orphan_status.py now.)
"""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import amqp  # noqa: E402
import pymongo  # noqa: E402
import redis  # noqa: E402

import chaos  # noqa: E402


class Env:
    def __init__(self):
        self.stack = chaos.Stack(chaos.parse(["--short", "--jobs", "1"]), tempfile.gettempdir())

    def __enter__(self):
        st = self.stack
        st.marks_file()
        st.start_watchdog()
        st.up()
        self.rds = redis.Redis(host="127.0.0.1", port=st.redis_port, socket_timeout=30)
        self.coll = pymongo.MongoClient(st.mongo_url, serverSelectionTimeoutMS=5000)[st.ns]["jobs"]
        self.client = chaos.Load(st, [], 1, 1)
        return self

    def __exit__(self, *exc):
        self.stack.down()
        return False

    def submit(self, job):
        code, doc, raw = self.client.post(job)
        return code, (doc or {}).get("id")

    def status(self, jid):
        h = self.rds.hgetall("%s:job:%s" % (self.stack.ns, jid))
        return h.get(b"state", b"").decode() or None, h.get(b"attempt", b"").decode() or None

    def record(self, jid):
        d = self.coll.find_one({"_id": jid}, {"state": 1, "attempt": 1})
        return (d["state"], str(d["attempt"])) if d else None

    def wait(self, cond, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = cond()
            if v:
                return v
            time.sleep(0.05)
        return None

    def amqp(self):
        conn = amqp.Connection(host="127.0.0.1:%d" % self.stack.amqp_port)
        conn.connect()
        return conn, conn.channel()

    def grep_logs(self, text):
        logs = os.path.join(self.stack.run_dir, "logs")
        for name in sorted(os.listdir(logs)):
            with open(os.path.join(logs, name), errors="replace") as f:
                for line in f:
                    if text in line:
                        print("    %s: %s" % (name, line.rstrip()[:240]))


def retry_outage():
    with Env() as e:
        code, jid = e.submit({"command": '[ "$BX_ATTEMPT" -ge 2 ] || { sleep 3; exit 3; }',
                              "max_retries": 2, "retry_backoff_s": 1})
        e.wait(lambda: e.status(jid)[0] == "running", 20)
        print("  %s running attempt %s: stopping RabbitMQ for 6 s" % (jid, e.status(jid)[1]))
        chaos.lib_sh('bx_stop "$1" rabbitmq', e.stack.run_dir, env=e.stack.env)
        time.sleep(6)
        print("  during the outage: status %s" % (e.status(jid),))
        chaos.lib_sh('bx_ensure_rabbitmq "$1" "$2"', e.stack.run_dir, e.stack.amqp_url, env=e.stack.env)
        final = e.wait(lambda: e.status(jid)[0] in chaos.TERMINAL and e.status(jid), 30)
        e.wait(lambda: e.record(jid) == e.status(jid), 20)
        print("  final: status %s, record %s" % (final, e.record(jid)))
        e.grep_logs(jid)
        if final != ("succeeded", "2"):
            return "the retry was dropped: %s instead of succeeded on attempt 2" % (final,)
    return None


def stale_event():
    bugs = []
    with Env() as e:
        ns = e.stack.ns
        conn, ch = e.amqp()
        for q, ex, rk in ((ns + ".tapjobs", ns + ".jobs", "default"), (ns + ".tapev", ns + ".events", "")):
            ch.queue_declare(q, durable=True, auto_delete=False)
            ch.queue_bind(q, ex, rk)
        code, jid = e.submit({"command": '[ "$BX_ATTEMPT" -ge 2 ] || exit 3', "max_retries": 1,
                              "retry_backoff_s": 15})
        e.wait(lambda: e.status(jid)[1] == "2", 20)
        print("  %s failed attempt 1, waits 15 s for attempt 2: status %s" % (jid, e.status(jid),))
        m = ch.basic_get(ns + ".tapjobs", no_ack=True)
        # RabbitMQ delivers at least once: the attempt-1 message once more
        ch.basic_publish(amqp.Message(m.body, delivery_mode=2, content_type="application/json"),
                         ns + ".jobs", "default")
        time.sleep(3)
        evs = []
        while True:
            x = ch.basic_get(ns + ".tapev", no_ack=True)
            if not x:
                break
            evs.append(json.loads(x.body))
        print("  after a duplicate of attempt 1: result events %s, record %s"
              % ([(v["state"], v["attempt"]) for v in evs], e.record(jid)))
        stale = [v for v in evs if v["state"] not in chaos.TERMINAL]
        if stale:
            bugs.append("a non-terminal status was published as a result event (%s, attempt %s)"
                        % (stale[0]["state"], stale[0]["attempt"]))
        e.wait(lambda: e.status(jid)[0] in chaos.TERMINAL, 30)
        e.wait(lambda: e.record(jid) == e.status(jid), 10)
        print("  attempt 2 done: status %s, record %s" % (e.status(jid), e.record(jid)))
        late = stale[0] if stale else dict(evs[0] if evs else {"id": jid, "attempt": 2},
                                           state="running")
        late["id"], late["attempt"] = jid, 2
        late["state"] = "running" if not stale else late["state"]
        # the same attempt's non-terminal event, arriving late (e.g. parked
        # in a worker while RabbitMQ was away)
        ch.basic_publish(amqp.Message(json.dumps(late).encode(), delivery_mode=2,
                                      content_type="application/json"), ns + ".events", "")
        time.sleep(3)
        rec = e.record(jid)
        print("  after a late '%s' event of attempt 2: status %s, record %s"
              % (late["state"], e.status(jid), rec))
        if rec != e.status(jid):
            bugs.append("a late non-terminal event overwrote the terminal record: %s" % (rec,))
        e.grep_logs(jid)
        conn.close()
    return "; ".join(bugs) or None


SCENARIOS = {"retry-outage": retry_outage, "stale-event": stale_event}


def main(argv):
    names = argv or list(SCENARIOS)
    bugs = 0
    for n in names:
        if n not in SCENARIOS:
            print("unknown scenario %s (%s)" % (n, ", ".join(SCENARIOS)))
            return 2
        print("%s:" % n)
        why = SCENARIOS[n]()
        print("%s: %s" % (n, "BUG: " + why if why else "ok"))
        bugs += bool(why)
    return bugs


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
