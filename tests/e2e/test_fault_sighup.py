"""SIGHUP makes a worker reopen its logs (BX_LOG_FILE, after a rotation)
and say so, without disturbing the job it runs: the job ends as it would
have, its output whole, on the same worker, in one attempt."""

import os
import signal
import sys

from harness import Stack, wait_for


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def main():
    with Stack(workers=0) as s:
        path = os.path.join(s.run_dir, "logs", "rotated-worker.log")
        w = s.worker("w-hup", {"BX_LOG_FILE": path})
        wait_for("worker connected", lambda: "event=amqp_connected" in read(path), 30)
        job = s.submit({"command": "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.4; done"})["id"]
        s.wait_state(job, "running", 20)

        os.rename(path, path + ".1")     # what logrotate does
        w.signal(signal.SIGHUP)
        wait_for("the reload logged to the new file", lambda: "event=reload" in read(path), 10)

        done = s.wait(job, 30)
        assert done["state"] == "succeeded" and done["attempt"] == 1, done
        assert done["worker"] == "w-hup", done
        assert done["stdout"] == "".join("line %d\n" % i for i in range(1, 7)), done
        assert w.proc.poll() is None, "the worker exited on SIGHUP"
        new, old = read(path), read(path + ".1")
        assert "event=job_finished id=%s" % job in new, new
        assert "event=job_started id=%s" % job in old and "event=reload" not in old, old

        # and it goes on working
        again = s.submit({"command": "echo after"})["id"]
        assert s.wait(again, 20)["stdout"] == "after\n"
        print("ok SIGHUP reopened the log; the running job was not disturbed", file=sys.stderr)


if __name__ == "__main__":
    main()
