-- wrk: POST /v1/jobs, a small job on a queue no worker consumes
-- (tests/bench/run.sh declares <ns>.jobs.bench_sink and deletes it after).
local token = os.getenv("BENCH_TOKEN") or ""
wrk.method = "POST"
wrk.body = '{"command":"true","queue":"bench_sink"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
