"""lock: jobs with the same lock name never run at the same time on any
worker; a job waiting for its lock holds no worker slot; when the lock
holder's worker dies, its lease expires and the next job runs."""

import os
import secrets
import signal
import sys
import time
import traceback

from harness import Stack, ts

LEASE_MS = 3000


def intervals(jobs):
    return sorted((ts(j["started_at"]), ts(j["finished_at"]), j["id"], j["worker"]) for j in jobs)


def test_same_lock_one_after_another(s):
    lock = "lock-" + secrets.token_hex(4)
    ids = [s.submit({"command": "sleep 0.5", "lock": lock})["id"] for _ in range(3)]
    done = [s.wait(i, timeout=30) for i in ids]
    assert all(d["state"] == "succeeded" for d in done), done
    assert all(d.get("lock") == lock for d in done), done
    iv = intervals(done)
    for (s0, f0, i0, w0), (s1, f1, i1, w1) in zip(iv, iv[1:]):
        assert s1 >= f0, "jobs %s (%s) and %s (%s) under lock %s overlap: %r" % (i0, w0, i1, w1, lock, iv)
    total = iv[-1][1] - iv[0][0]
    assert total >= 1.5, iv
    assert total < 10, "three 0.5 s jobs took %.1fs one after another" % total


def test_no_lock_overlaps(s):
    # the control: without a lock the same three do overlap here (2 slots)
    ids = [s.submit({"command": "sleep 1"})["id"] for _ in range(3)]
    iv = intervals([s.wait(i, timeout=30) for i in ids])
    assert any(s1 < f0 for (s0, f0, _, _), (s1, f1, _, _) in zip(iv, iv[1:])), iv


def test_different_locks_run_together(s):
    ids = [s.submit({"command": "sleep 1", "lock": "lock-" + secrets.token_hex(4)})["id"] for _ in range(2)]
    iv = intervals([s.wait(i, timeout=30) for i in ids])
    assert iv[1][0] < iv[0][1], "jobs with different locks did not run at the same time: %r" % iv


def test_waiting_for_lock_holds_no_slot(s):
    # 2 workers x 1 slot. A holds the lock for 4 s; B waits for it; C (no
    # lock) must get the second slot at once, not wait behind B.
    lock = "lock-" + secrets.token_hex(4)
    a = s.submit({"command": "sleep 4", "lock": lock})
    s.wait_state(a["id"], {"running"}, 15)
    b = s.submit({"command": "echo b", "lock": lock})
    time.sleep(0.5)
    c = s.submit({"command": "echo c"})
    cdone = s.wait(c["id"], timeout=30)
    adone = s.wait(a["id"], timeout=30)
    bdone = s.wait(b["id"], timeout=30)
    assert cdone["state"] == adone["state"] == bdone["state"] == "succeeded", (adone, bdone, cdone)
    assert ts(cdone["finished_at"]) < ts(adone["finished_at"]), \
        "C waited for A: a job waiting for its lock held the other slot (%r, %r)" % (adone, cdone)
    assert ts(bdone["started_at"]) >= ts(adone["finished_at"]), (adone, bdone)
    # ... and it did not wait much longer than needed
    assert ts(bdone["started_at"]) - ts(adone["finished_at"]) < 3.0, (adone, bdone)


def test_lock_freed_when_holder_dies(s):
    # A holds the lock on one worker, which is then killed with SIGKILL:
    # nobody releases the lock, its lease (BX_LEASE_MS) expires, and B runs.
    lock = "lock-" + secrets.token_hex(4)
    a = s.submit({"command": "sleep 4.51", "lock": lock})
    arun = s.wait_state(a["id"], {"running"}, 15)
    b = s.submit({"command": "echo b", "lock": lock})
    holder = arun["worker"]  # "<host>-w<N>" as compose/stack.sh names them
    n = holder.rsplit("-w", 1)[1]
    with open(os.path.join(s.run_dir, "pids", "bx-worker-%s.pid" % n)) as f:
        pid = int(f.read().split()[0])
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    bdone = s.wait(b["id"], timeout=10 + LEASE_MS / 1000)
    assert bdone["state"] == "succeeded", bdone
    waited = ts(bdone["started_at"]) - t_kill
    assert waited <= LEASE_MS / 1000 + 5, "B ran %.1fs after the holder died (lease %d ms)" % (waited, LEASE_MS)
    # A's message is redelivered and runs again, once the lease let it go,
    # never at the same time as B
    adone = s.wait(a["id"], timeout=40)
    assert adone["state"] == "succeeded", adone
    if adone["worker"] != holder:
        (s0, f0, _, _), (s1, f1, _, _) = intervals([adone, bdone])
        assert s1 >= f0, (adone, bdone)


TESTS = [test_same_lock_one_after_another, test_no_lock_overlaps, test_different_locks_run_together,
         test_waiting_for_lock_holds_no_slot, test_lock_freed_when_holder_dies]


def run(s, tests):
    failed = []
    for t in tests:
        t0 = time.monotonic()
        try:
            t(s)
            print("ok %s (%.1fs)" % (t.__name__, time.monotonic() - t0), file=sys.stderr)
        except Exception:
            failed.append(t.__name__)
            print("FAIL %s (%.1fs)\n%s" % (t.__name__, time.monotonic() - t0, traceback.format_exc()),
                  file=sys.stderr)
    if failed:
        raise SystemExit("failed: " + " ".join(failed))


if __name__ == "__main__":
    with Stack(workers=2, env={"BX_CONCURRENCY": "1", "BX_LEASE_MS": str(LEASE_MS)}) as s:
        run(s, TESTS)
