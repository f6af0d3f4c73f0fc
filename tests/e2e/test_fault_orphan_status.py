"""A job answered 503 while Redis was paused ends with a final status or
none, never "queued" (issue 4; tests/chaos/repro.py orphan-status).

The API writes a job's "queued" status before it publishes; when Redis
stalls, that write times out, the API answers 503 and takes the status
back on another connection. Both commands wait in Redis's socket buffers
and run in either order once it resumes. Rounds of 8 clients submitting
through an 8 s pause of a private Redis; after each: every status of a job
that got no 202 is final ("rejected", with the reason), and every accepted
job finishes.
"""
import sys
import threading

import redis

from harness import Stack, TERMINAL, wait_for

ROUNDS = 4
CLIENTS = 8


def submit_during_pause(s, accepted, codes, lock):
    for _ in range(6):
        status, body = s.request("POST", "/v1/jobs", {"command": "true"})
        with lock:
            codes[status] = codes.get(status, 0) + 1
            if status == 202:
                accepted.add(body["id"])
            elif status == 503:
                assert body["error"]["code"] == "unavailable", body


def statuses(rds, ns):
    """{job id: state} of every status in Redis."""
    out = {}
    for key in rds.scan_iter("%s:job:*" % ns, count=1000):
        st = rds.hget(key, "state")
        out[key.decode().rsplit(":", 1)[1]] = st.decode() if st else None
    return out


def main():
    with Stack(workers=1, private=("redis",)) as s:
        rds = redis.Redis(host="127.0.0.1", port=s.ports["redis"], socket_timeout=30)
        accepted, codes, lock = set(), {}, threading.Lock()
        for rnd in range(ROUNDS):
            with s.paused("redis"):
                ts = [threading.Thread(target=submit_during_pause, args=(s, accepted, codes, lock))
                      for _ in range(CLIENTS)]
                for t in ts:
                    t.start()
                threading.Event().wait(8)
            for t in ts:
                t.join()
            # the late writes run as soon as Redis resumes; the workers'
            # and the API's timeouts (5 s) have passed well before this
            wait_for("the accepted jobs to finish",
                     lambda: all(statuses(rds, s.namespace).get(j) in TERMINAL for j in accepted), 60)
            st = statuses(rds, s.namespace)
            orphans = {j: v for j, v in st.items() if j not in accepted and v not in TERMINAL}
            print("round %d: answers %s, %d accepted, %d statuses of jobs not accepted, "
                  "%d of them not final" % (rnd + 1, codes, len(accepted), len(st) - len(accepted),
                                            len(orphans)), file=sys.stderr)
            assert not orphans, "jobs answered 503 left live statuses: %s" % list(orphans.items())[:5]
        assert codes.get(503), "no submission was answered 503: the pause did not bite (%s)" % codes
        rejected = [j for j, v in statuses(rds, s.namespace).items() if j not in accepted]
        for j in rejected[:20]:
            doc = s.job(j)
            assert doc["state"] == "rejected" and "503" in doc.get("reason", ""), doc
            assert 0 < rds.ttl("%s:job:%s" % (s.namespace, j)) <= 86400, "no TTL on %s" % j
        print("ok: %d answered 503, %d of them with a final status, none queued"
              % (codes[503], len(rejected)), file=sys.stderr)


if __name__ == "__main__":
    main()
