"""MongoDB unreachable for a while (issue 4), with a FerretDB of the
stack's own, stopped and started again by this test:

  - jobs still run, and their status, from Redis, keeps answering
  - history (GET /v1/jobs) answers 503 with a JSON error meanwhile
  - the recorder holds the results it cannot write, unacked (they stay in
    RabbitMQ), and says once that MongoDB is lost
  - once MongoDB is back it catches up: one record per job, with the
    state of its status

(tests/e2e/test_recorder.py checks the recorder alone through longer
outages, and its RabbitMQ connection lost while it holds a batch.)
"""
import sys

from harness import Stack, wait_for


def history(s, label):
    return s.request("GET", "/v1/jobs?label=suite:%s&limit=100" % label)


def main():
    with Stack(workers=1, private=("mongo",)) as s:
        before = s.submit({"command": "echo before", "labels": {"suite": "outage"}})
        s.wait(before["id"])
        wait_for("the first record", lambda: len(history(s, "outage")[1]["jobs"]) == 1, 30)

        s.stop("mongo")
        jobs = [s.submit({"command": "echo %d" % i, "labels": {"suite": "outage"}}) for i in range(20)]
        for j in jobs:
            done = s.wait(j["id"], 60)
            assert done["state"] == "succeeded", done
        assert s.job(before["id"])["state"] == "succeeded"

        status, body = history(s, "outage")
        assert status == 503, (status, body)
        assert body["error"]["code"] == "unavailable" and "mongodb" in body["error"]["message"], body
        wait_for("the recorder to notice", lambda: "event=mongo_lost" in s.log("bx-recorder"), 30)
        # what it holds is unacked: in RabbitMQ still, not written anywhere
        assert "event=batch_written" not in s.log("bx-recorder").split("event=mongo_lost")[1]
        status, body = s.request("GET", "/readyz", auth=False)
        assert status == 503, (status, body)
        print("MongoDB down: 20 jobs ran, status answers, history 503: %s" % body, file=sys.stderr)

        s.start("mongo")
        ids = {before["id"]} | {j["id"] for j in jobs}

        def caught_up():
            status, body = history(s, "outage")
            return status == 200 and {d["id"] for d in body["jobs"]} == ids and body["jobs"]
        recs = wait_for("the recorder to catch up", caught_up, 60, 0.5)
        assert len(recs) == len(ids), "%d records of %d jobs" % (len(recs), len(ids))
        for r in recs:
            assert r["state"] == s.job(r["id"])["state"] == "succeeded", r
        log = s.log("bx-recorder")
        assert log.count("event=mongo_lost") == 1 and log.count("event=mongo_regained") == 1, \
            "lost %d, regained %d" % (log.count("event=mongo_lost"), log.count("event=mongo_regained"))
        print("ok: MongoDB back, %d records, one per job" % len(recs), file=sys.stderr)


if __name__ == "__main__":
    main()
