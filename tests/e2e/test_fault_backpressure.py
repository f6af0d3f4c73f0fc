"""Backpressure (issue 4): with no worker and BX_MAX_QUEUE_DEPTH small,
submissions are accepted until the queue holds that many jobs, then
answered 429 with Retry-After and a JSON error naming the queue; once a
worker drains the queue, submissions are accepted again, and every job
accepted before finishes."""
import sys

from harness import Stack, wait_for

LIMIT = 5


def main():
    with Stack(workers=0, env={"BX_MAX_QUEUE_DEPTH": str(LIMIT)}) as s:
        accepted = []

        def refused():
            status, body, headers = s.request_full("POST", "/v1/jobs", {"command": "true"})
            if status == 202:
                accepted.append(body["id"])
                return None
            assert status == 429, "expected 202 or 429, got %d %r" % (status, body)
            return body, headers
        # the API learns the depth once a second: a few more may get in
        body, headers = wait_for("a 429", refused, 30, interval=0.05)
        assert LIMIT <= len(accepted) <= 100, "%d accepted before the 429" % len(accepted)
        assert headers.get("Retry-After", "").isdigit() and int(headers["Retry-After"]) > 0, \
            dict(headers)
        assert headers.get_content_type() == "application/json", dict(headers)
        err = body["error"]
        assert err["code"] == "too_many_requests" and "'default'" in err["message"], body
        # still full: another queue is not
        status, _ = s.request("POST", "/v1/jobs", {"command": "true"})
        assert status == 429, status
        other = s.submit({"command": "true", "queue": "other"})
        print("%d accepted, then 429: %s (Retry-After: %s)"
              % (len(accepted), err["message"], headers["Retry-After"]), file=sys.stderr)

        s.start("bx-worker-1")
        for jid in accepted:
            assert s.wait(jid, 60)["state"] == "succeeded"
        wait_for("the queue to drain", lambda: s.queue_depth() == 0, 30)
        def again():
            status, body = s.request("POST", "/v1/jobs", {"command": "true"})
            assert status in (202, 429), (status, body)
            return body if status == 202 else None
        late = wait_for("a 202 again", again, 10, 0.2)
        assert s.wait(late["id"], 30)["state"] == "succeeded"
        assert s.request("GET", "/v1/jobs/" + other["id"])[1]["state"] == "queued"
        print("ok: drained by a worker, accepted again", file=sys.stderr)


if __name__ == "__main__":
    main()
