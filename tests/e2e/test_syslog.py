"""Log lines really reach syslog (not only stderr): a job's id shows up in
the system log from bx-api and bx-worker, through rsyslog (started here when
no syslog daemon listens on /dev/log, and stopped again afterwards)."""

import os
import subprocess
import sys
import time

from harness import Stack

SYSLOG = "/var/log/syslog"


def main():
    started = None
    if not os.path.exists("/dev/log"):
        started = subprocess.Popen(["rsyslogd", "-n", "-i", "/run/bx-test-rsyslogd.pid"])
        for _ in range(50):
            if os.path.exists("/dev/log"):
                break
            time.sleep(0.1)
    try:
        with Stack(workers=1) as s:
            job = s.submit({"command": "echo to-syslog"})
            s.wait(job["id"], timeout=30)
            deadline = time.monotonic() + 10
            seen = set()
            while time.monotonic() < deadline and seen != {"bx-api", "bx-worker"}:
                with open(SYSLOG, errors="replace") as f:
                    for line in f:
                        if job["id"] in line:
                            for ident in ("bx-api", "bx-worker"):
                                if ident + "[" in line:
                                    seen.add(ident)
                time.sleep(0.3)
            assert seen == {"bx-api", "bx-worker"}, "job %s in %s from %s only" % (job["id"], SYSLOG, seen)
            print("ok: job id logged to syslog by", sorted(seen), file=sys.stderr)
    finally:
        if started:
            started.terminate()
            started.wait(5)


if __name__ == "__main__":
    main()
