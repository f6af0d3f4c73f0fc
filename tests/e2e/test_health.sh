#!/usr/bin/env bash
# Smoke test: a stack comes up, answers /healthz without a token, and
# refuses a job submitted without one.
. "$(dirname "$0")/harness.sh"

bx_stack_up

bx_http GET /healthz --no-auth
bx_expect 200

bx_http POST /v1/jobs '{"command": "true"}' --no-auth
bx_expect 401
jq -e '.error.code and .error.message' <<<"$BX_BODY" >/dev/null ||
    bx_fail "401 without the error object: $BX_BODY"
