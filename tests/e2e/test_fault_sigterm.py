"""SIGTERM drains a worker: it stops taking jobs, lets the running ones
that end within BX_SHUTDOWN_GRACE_S finish, then kills the rest and gives
them back to RabbitMQ, which hands them to another worker; it exits 0 and
leaves no process of its jobs behind. The job given back runs to its end
on the other worker exactly once: one terminal status, one history record,
no extra attempt (a job given back is not a lost one)."""

import signal
import sys
import time

from harness import Stack, alive, descendants, wait_for


def main():
    with Stack(workers=0) as s:
        a = s.worker("w-old", {"BX_SHUTDOWN_GRACE_S": "4", "BX_CONCURRENCY": "3"})
        a.wait_log("event=amqp_connected")
        short = [s.submit({"command": "sleep 1.5; echo short-$BX_ATTEMPT"})["id"] for _ in range(2)]
        long_ = s.submit({"command": "sleep 9; echo long-$BX_ATTEMPT"})["id"]
        for j in short + [long_]:
            st = s.wait_state(j, "running", 30)
            assert st["worker"] == "w-old", st
        tree = wait_for("the jobs' processes", lambda: len(descendants(a.pid)) >= 3 and descendants(a.pid), 10)

        a.signal(signal.SIGTERM)
        a.wait_log("event=draining")
        # no new job for a draining worker
        late = s.submit({"command": "echo late"})["id"]
        time.sleep(1.5)
        assert s.job(late)["state"] == "queued", s.job(late)

        # the short jobs end within the grace, on the old worker
        for j in short:
            st = s.wait_state(j, "succeeded", 20)
            assert st["worker"] == "w-old" and st["stdout"] == "short-1\n", st

        # the long one outlives the grace: killed, given back
        a.wait_log("event=job_requeued id=%s" % long_, 20)
        rc = a.wait_exit(30)
        assert rc == 0, "worker exited %s" % rc
        left = [p for p in tree if alive(p)]
        assert not left, "processes of the drained worker's jobs still run: %s" % left
        assert "event=stop" in a.log(), a.log()[-2000:]
        st = s.job(long_)
        assert st["state"] == "queued" and st["attempt"] == 1, st

        # another worker runs it, once
        b = s.worker("w-new")
        done = s.wait_state(long_, "succeeded", 40)
        assert done["worker"] == "w-new" and done["attempt"] == 1, done
        assert done["stdout"] == "long-1\n", done
        assert not done.get("attempts"), done
        late_st = s.wait_state(late, "succeeded", 20)
        assert late_st["worker"] == "w-new", late_st
        rec = s.wait_record(long_, lambda r: r["state"] == "succeeded")
        assert rec["worker"] == "w-new" and rec["attempt"] == 1, rec
        time.sleep(1)
        assert len(s.records(long_)) == 1
        assert b.log().count("event=job_started id=%s" % long_) == 1, b.log()
        print("ok drained: 2 finished in the grace, 1 given back and run once elsewhere, exit 0",
              file=sys.stderr)


if __name__ == "__main__":
    main()
