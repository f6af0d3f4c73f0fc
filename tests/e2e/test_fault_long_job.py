"""A job that runs longer than RabbitMQ's consumer_timeout completes
exactly once (issue 4).

RabbitMQ closes the channel of a consumer that holds a delivery unacked
longer than consumer_timeout (PRECONDITION_FAILED, "delivery
acknowledgement timed out") and requeues what the channel held. The
stack's RabbitMQ gets 7 days; here a private one gets 2 s
(BX_RABBITMQ_CONSUMER_TIMEOUT_MS). RabbitMQ checks it on each channel's
tick, every 60 s by default (channel_tick_interval): set to 1 s here, so
the closure comes about 3 s into the job, and again for every copy held
that long. The job keeps running under its lease; a copy redelivered to
its own worker becomes the delivery it acks, a copy on another worker
waits on the lease and then finds the final status. Checked: the command
ran once (a line per run in a file), the status is final, one history
record, nothing left in the queue, and the channel was closed for the
timeout at least once.
"""
import os
import re
import sys
import tempfile
import time

from harness import Stack, wait_for

TIMEOUT_MS = 2000
JOB_S = 20


def closures(s):
    return sum(len(re.findall("acknowledgement[^\\n]*timed out", s.log(w)))
               for w in ("bx-worker-1", "bx-worker-2"))


def main():
    runs = os.path.join(tempfile.mkdtemp(prefix="long-job."), "runs")
    with Stack(workers=0, private=("rabbitmq",),
               env={"BX_RABBITMQ_CONSUMER_TIMEOUT_MS": str(TIMEOUT_MS)}) as s:
        # read when a channel opens: before the workers connect
        s.rabbitmqctl("eval", "application:set_env(rabbit, channel_tick_interval, 1000).")
        s.start("bx-worker-1")
        s.start("bx-worker-2")
        job = s.submit({"command": 'echo "$BX_ATTEMPT $$" >> %s; sleep %d; echo finished'
                                   % (runs, JOB_S), "timeout_s": JOB_S + 60})
        wait_for("the job to start", lambda: s.job(job["id"])["state"] == "running", 30)
        t0 = time.monotonic()
        first = wait_for("the channel closed by RabbitMQ", lambda: closures(s), JOB_S)
        print("channel closed for the consumer timeout %.1f s after the job started "
              "(consumer_timeout %d ms, tick 1 s)" % (time.monotonic() - t0, TIMEOUT_MS),
              file=sys.stderr)
        done = s.wait(job["id"], JOB_S + 60)
        assert done["state"] == "succeeded" and done["stdout"] == "finished\n", done
        assert done["attempt"] == 1, done
        # the redelivered copies are settled without a run
        wait_for("the queue to be empty", lambda: s.queue_depth(field="messages") == 0, 60)
        time.sleep(2)
        with open(runs) as f:
            lines = f.read().splitlines()
        assert len(lines) == 1, "the command ran %d times: %s" % (len(lines), lines)

        def recorded():
            status, body = s.request("GET", "/v1/jobs?limit=10")
            return status == 200 and body["jobs"]
        recs = wait_for("the record", recorded, 30)
        assert len(recs) == 1 and recs[0]["id"] == job["id"], recs
        assert recs[0]["state"] == "succeeded", recs[0]
        assert s.job(job["id"])["state"] == "succeeded"
        for w in ("bx-worker-1", "bx-worker-2"):
            for line in s.log(w).splitlines():
                if job["id"] in line or "amqp" in line:
                    print("  %s: %s" % (w, line[:200]), file=sys.stderr)
        print("ok: ran once across %d channel closures (first %d), one record, status %s"
              % (closures(s), first, done["state"]), file=sys.stderr)


if __name__ == "__main__":
    main()
