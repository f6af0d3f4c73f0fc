"""One request id and one W3C traceparent follow a job end to end: the API's
answer and log, the message, the worker's log and the command's
environment, the status in Redis and the record in MongoDB."""

import os
import sys
import time

from harness import Stack

RID = "trace-test-%d" % os.getpid()
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def main():
    with Stack(workers=1) as s:
        status, job = s.request("POST", "/v1/jobs", {"command": "echo $BX_REQUEST_ID $TRACEPARENT $BX_JOB_ID"},
                                headers={"X-Request-Id": RID, "traceparent": TP})
        assert status == 202 and job["request_id"] == RID and job["traceparent"] == TP, job
        done = s.wait(job["id"], timeout=30)
        assert done["stdout"] == "%s %s %s\n" % (RID, TP, job["id"]), done
        assert done["request_id"] == RID and done["traceparent"] == TP, done

        deadline = time.monotonic() + 30
        while True:
            status, body = s.request("GET", "/v1/jobs?limit=5")
            rec = [j for j in body["jobs"] if j["id"] == job["id"]] if status == 200 else []
            if rec or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert rec and rec[0]["request_id"] == RID and rec[0]["traceparent"] == TP, body

        logs = os.path.join(s.run_dir, "logs")
        for name, want in (("bx-api.log", "event=job_submitted"), ("bx-worker-1.log", "event=job_started"),
                           ("bx-worker-1.log", "event=job_finished")):
            lines = [l for l in open(os.path.join(logs, name), errors="replace") if want in l and job["id"] in l]
            assert lines and all(RID in l for l in lines), (name, want, lines)
        started = [l for l in open(os.path.join(logs, "bx-worker-1.log")) if "job_started" in l and job["id"] in l]
        assert TP in started[0], started

        # without a traceparent, the API starts a trace of its own
        other = s.submit({"command": "echo $TRACEPARENT"})
        tp = other["traceparent"]
        assert len(tp) == 55 and tp.startswith("00-") and tp.endswith("-01"), other
        assert s.wait(other["id"], timeout=30)["stdout"] == tp + "\n"
        print("ok trace", file=sys.stderr)


if __name__ == "__main__":
    main()
