"""Fenced takeover. Worker A is frozen (SIGSTOP) in the middle of a job
for longer than its lease and than RabbitMQ's heartbeat timeout: RabbitMQ
drops its connection and gives the job to worker B, which takes it over as
the next attempt (the lost one recorded in `attempts`, "lease expired").
When A wakes up (SIGCONT) and finishes its old run, its writes are fenced
out: the final status and the single history record stay B's attempt."""

import signal
import sys
import time

from harness import Stack

ENV = {"BX_LEASE_MS": "2000", "BX_AMQP_HEARTBEAT_S": "2"}


def main():
    with Stack(workers=0) as s:
        a = s.worker("w-a", ENV)
        a.wait_log("event=amqp_connected")
        job = s.submit({"command": "sleep 5; echo ran attempt $BX_ATTEMPT", "max_retries": 0})["id"]
        st = s.wait_state(job, "running", 20)
        assert st["worker"] == "w-a" and st["attempt"] == 1, st

        a.signal(signal.SIGSTOP)
        b = s.worker("w-b", ENV)
        done = s.wait_state(job, {"succeeded", "failed", "lost", "rejected"}, 60)
        assert done["state"] == "succeeded", done
        assert done["worker"] == "w-b" and done["attempt"] == 2, done
        assert done["stdout"] == "ran attempt 2\n", done
        lost = done.get("attempts") or []
        assert len(lost) == 1 and lost[0]["state"] == "lost" and lost[0]["attempt"] == 1, done
        assert lost[0]["worker"] == "w-a" and "lease expired" in lost[0]["reason"], lost
        assert "event=job_taken_over id=%s attempt=2" % job in b.log(), b.log()[-3000:]
        rec = s.wait_record(job, lambda r: r["state"] == "succeeded")
        assert rec["attempt"] == 2 and rec["worker"] == "w-b", rec

        # A wakes up: its run of attempt 1 ended while it was frozen
        a.signal(signal.SIGCONT)
        a.wait_log("event=result_fenced_out id=%s attempt=1" % job, 30)
        time.sleep(3)   # whatever A could still send would reach the recorder by now
        st = s.job(job)
        assert (st["state"], st["attempt"], st["worker"]) == ("succeeded", 2, "w-b"), st
        recs = s.records(job)
        assert len(recs) == 1, recs
        assert (recs[0]["state"], recs[0]["attempt"], recs[0]["worker"]) == ("succeeded", 2, "w-b"), recs
        assert b.log().count("event=job_started id=%s" % job) == 1
        print("ok takeover: attempt 2 on w-b wins; frozen w-a's attempt 1 fenced out", file=sys.stderr)


if __name__ == "__main__":
    main()
