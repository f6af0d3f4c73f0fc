-- wrk: GET /v1/jobs/{id} (the URL given to wrk names the job)
local token = os.getenv("BENCH_TOKEN") or ""
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. token
