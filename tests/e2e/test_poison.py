"""A job that kills its worker every time is quarantined after 5 begins:
rejected with the reason, its message kept in <ns>.dead, not redelivered
forever."""

import os
import subprocess
import sys
import time

from harness import ROOT, Stack


def main():
    with Stack(workers=0, env={"BX_LEASE_MS": "1000"}) as s:
        job = s.submit({"command": "kill -9 $PPID; sleep 5"})
        env = dict(s.env, BX_FOREGROUND="1")
        deaths = 0
        deadline = time.monotonic() + 90
        log = open(os.path.join(s.run_dir, "logs", "poison-workers.log"), "ab")
        while time.monotonic() < deadline:
            st = s.job(job["id"])
            if st["state"] == "rejected":
                break
            w = subprocess.Popen([os.path.join(os.environ.get("BX_BIN_DIR", os.path.join(ROOT, "bin")), "bx-worker")], env=env,
                                 stdout=log, stderr=log)
            try:
                rc = w.wait(timeout=5)
            except subprocess.TimeoutExpired:
                w.terminate()
                rc = w.wait(timeout=40)
            if rc == -9:
                deaths += 1
        log.close()
        st = s.job(job["id"])
        assert st["state"] == "rejected" and "poison" in st.get("reason", ""), st
        assert deaths == 5, deaths
        out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name", "messages"],
                             capture_output=True, text=True).stdout
        dead = [l for l in out.splitlines() if l.startswith(s.namespace + ".dead")]
        assert dead and dead[0].split()[1] == "1", out
        print("ok poison quarantined after %d worker deaths" % deaths, file=sys.stderr)


if __name__ == "__main__":
    main()
