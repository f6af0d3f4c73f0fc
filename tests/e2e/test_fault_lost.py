"""Stale state. A worker is killed (SIGKILL) while it runs two jobs;
RabbitMQ requeues their messages, and then they disappear from its reach:
one is taken off the queue and deleted (as a purge or a dead-lettering
would), the other is held, unacked, by a consumer that does nothing. No
result will ever come, and no copy reaches a worker: the sweeper of the
remaining worker marks both `lost` (with the reason, and a history
record) within BX_LOST_AFTER_S of their lease's end. Marked lost is not a
dead end: when the held message comes back, it runs, as the next attempt."""

import glob
import json
import os
import signal
import sys

from harness import Stack

ENV = {"BX_LEASE_MS": "2000", "BX_LOST_AFTER_S": "3", "BX_CONCURRENCY": "2"}


def main():
    with Stack(workers=0) as s:
        a = s.worker("w-dies", ENV)
        a.wait_log("event=amqp_connected")
        cmd = 'if [ "$BX_ATTEMPT" = 1 ]; then sleep 60; fi; echo ran attempt $BX_ATTEMPT'
        held = s.submit({"command": cmd})["id"]
        gone = s.submit({"command": cmd})["id"]
        for j in (held, gone):
            s.wait_state(j, "running", 20)
        tmp = os.environ.get("BX_JOB_TMPDIR") or "/tmp"
        left = glob.glob(os.path.join(tmp, "bx-w-%d-*" % a.pid))
        assert len(left) == 1 and len(os.listdir(left[0])) >= 2, left
        a.signal(signal.SIGKILL)
        a.wait_exit(10)

        conn = s.amqp()
        ch = conn.channel()
        queue = "%s.jobs.default" % s.namespace
        got = {}
        for _ in range(100):
            m = ch.basic_get(queue, no_ack=False)
            if m is None:
                import time
                time.sleep(0.1)
                continue
            got[json.loads(m.body)["id"]] = m
            if len(got) == 2:
                break
        assert set(got) == {held, gone}, got.keys()
        ch.basic_ack(got[gone].delivery_tag)      # deleted: it is gone for good

        b = s.worker("w-sweeps", ENV)
        b.wait_log("event=amqp_connected")
        assert not os.path.exists(left[0]), os.listdir(left[0])
        assert "event=job_dirs_swept" in b.log(), b.log()[-2000:]
        for j in (held, gone):
            st = s.wait_state(j, "lost", 30)
            assert st["attempt"] == 1 and st["worker"] == "w-dies", st
            assert st["reason"].startswith("lost: worker w-dies"), st
            assert "finished_at" in st, st
            rec = s.wait_record(j, lambda r: r["state"] == "lost")
            assert rec["attempt"] == 1, rec
        assert b.log().count("event=job_lost") == 2, b.log()[-3000:]

        # the held copy comes back: it runs, taken over as attempt 2
        conn.close()
        done = s.wait_state(held, "succeeded", 30)
        assert done["attempt"] == 2 and done["worker"] == "w-sweeps", done
        assert done["stdout"] == "ran attempt 2\n", done
        assert [x["state"] for x in done["attempts"]] == ["lost"], done
        rec = s.wait_record(held, lambda r: r["state"] == "succeeded")
        assert rec["attempt"] == 2, rec
        # the deleted one stays lost, with its one record
        st = s.job(gone)
        assert st["state"] == "lost", st
        assert len(s.records(gone)) == 1 and len(s.records(held)) == 1
        # lost is not final to the system: cancelled, it is (a finished one is 409)
        status, body = s.request("DELETE", "/v1/jobs/%s" % gone)
        assert status == 202 and body["state"] == "cancelled", (status, body)
        assert s.job(gone)["state"] == "cancelled"
        rec = s.wait_record(gone, lambda r: r["state"] == "cancelled")
        assert rec["attempt"] == 1, rec
        status, body = s.request("DELETE", "/v1/jobs/%s" % held)
        assert status == 409, (status, body)
        print("ok lost: both marked within the threshold; the copy that came back ran as attempt 2",
              file=sys.stderr)


if __name__ == "__main__":
    main()
