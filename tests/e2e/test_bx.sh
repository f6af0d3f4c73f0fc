#!/usr/bin/env bash
# bx, the command-line producer, against a private stack, used the way a
# person uses it: the API's URL from BX_API_URL and the token from the run
# dir's api-token file. Covers submit (and --wait's exit codes and
# output), status, wait, output, tail, history, cancel (of a finished job:
# the 409 said clearly), workers, load, and the errors a person meets: a
# bad token, an API that is not there, a bad argument.
. "$(dirname "$0")/harness.sh"

BX=${BX_BIN_DIR:-$BX_ROOT/bin}/bx
[[ -x $BX ]] || bx_fail "no $BX: run make first"
T=$(mktemp -d "${BX_TEST_TMPDIR:-${TMPDIR:-/tmp}}/test_bx.XXXXXX")
bx_defer "rm -rf '$T'"

bx_stack_up
unset BX_API_TOKEN # bx reads $BX_RUN_DIR/api-token, as after `make up`
LABEL=suite=$BX_NAMESPACE

# run_bx ARGS...: runs bx (never longer than 60 s); sets RC, OUT and ERR.
run_bx() {
    set +e
    timeout 60 "$BX" "$@" >"$T/out" 2>"$T/err" <"${BX_STDIN:-/dev/null}"
    RC=$?
    set -e
    OUT=$(cat "$T/out")
    ERR=$(cat "$T/err")
}
# expect_rc N WHAT: the last run_bx exited N.
expect_rc() {
    [[ $RC == "$1" ]] || bx_fail "$2: exit $RC, expected $1 (stdout: $OUT; stderr: $ERR)"
}
expect_out() { [[ $OUT == *"$1"* ]] || bx_fail "$2: stdout lacks '$1': $OUT"; }
expect_err() { [[ $ERR == *"$1"* ]] || bx_fail "$2: stderr lacks '$1': $ERR"; }
UUID_RE='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

# --- usage ---------------------------------------------------------------
run_bx --help
expect_rc 0 "bx --help"
expect_out "submit" "bx --help"
run_bx
expect_rc 1 "bx without a command"
run_bx frobnicate
expect_rc 1 "an unknown command"
run_bx submit --help
expect_rc 0 "bx submit --help"
run_bx submit --priority 12 true
expect_rc 1 "priority 12"
expect_err "--priority" "priority 12"
run_bx status not-an-id
expect_rc 1 "a bad id"

# --- submit prints the id; status, wait and output read the job back ----
run_bx submit --label "$LABEL" -- echo hello world
expect_rc 0 "submit"
[[ $OUT =~ $UUID_RE ]] || bx_fail "submit printed '$OUT', not a job id"
ID=$OUT
job=$(bx_wait "$ID" 60)
[[ $(jq -r .state <<<"$job") == succeeded ]] || bx_fail "echo did not succeed: $job"

run_bx wait --timeout 30 "$ID"
expect_rc 0 "wait of a succeeded job"
expect_out "$ID succeeded exit=0" "wait"

run_bx status "$ID"
expect_rc 0 "status"
expect_out "succeeded" "status"
expect_out "echo hello world" "status"
expect_out "duration" "status"
run_bx status --json "$ID"
expect_rc 0 "status --json"
[[ $(jq -r .state <<<"$OUT") == succeeded ]] || bx_fail "status --json: $OUT"
run_bx --json status "$ID"
[[ $(jq -r .id <<<"$OUT") == "$ID" ]] || bx_fail "bx --json status: $OUT"

run_bx output "$ID"
expect_rc 0 "output"
[[ $OUT == "hello world" ]] || bx_fail "output: '$OUT'"

# --- submit --wait: the job's output is ours, its exit code ours ----------
run_bx submit --wait --label "$LABEL" 'echo out; echo err >&2; exit 4'
expect_rc 4 "submit --wait 'exit 4'"
[[ $OUT == out ]] || bx_fail "submit --wait stdout: '$OUT'"
expect_err "err" "submit --wait stderr"

printf 'from stdin\n' >"$T/in"
BX_STDIN=$T/in run_bx submit --wait --label "$LABEL" --env GREETING=hi --stdin-file - 'cat; echo "$GREETING"'
expect_rc 0 "submit --wait with --env and --stdin-file"
[[ $OUT == $'from stdin\nhi' ]] || bx_fail "--env/--stdin-file: '$OUT'"

run_bx submit --wait --label "$LABEL" 'kill -9 $$'
expect_rc 137 "a job killed by SIGKILL"
expect_err "SIGKILL" "a job killed by SIGKILL"

run_bx submit --wait --timeout 1 --label "$LABEL" 'sleep 30'
expect_rc 124 "a job over its timeout"

run_bx submit --json --label "$LABEL" true
expect_rc 0 "submit --json"
[[ $(jq -r .state <<<"$OUT") == queued ]] || bx_fail "submit --json: $OUT"
bx_wait "$(jq -r .id <<<"$OUT")" 60 >/dev/null

# --- tail follows the output until the end -------------------------------
run_bx submit --label "$LABEL" 'for i in 1 2 3; do echo line $i; sleep 0.2; done; exit 3'
TAIL_ID=$OUT
run_bx tail "$TAIL_ID"
expect_rc 3 "tail of a job that exits 3"
[[ $OUT == $'line 1\nline 2\nline 3' ]] || bx_fail "tail: '$OUT'"

# --- cancel ---------------------------------------------------------------
run_bx cancel "$ID"
expect_rc 2 "cancel of a finished job"
expect_err "already" "cancel of a finished job"
expect_err "succeeded" "cancel of a finished job"

run_bx submit --label "$LABEL" 'sleep 60'
SLEEP_ID=$OUT
for _ in $(seq 100); do
    [[ $(jq -r .state <<<"$(bx_job "$SLEEP_ID")") == running ]] && break
    sleep 0.1
done
run_bx cancel "$SLEEP_ID"
expect_rc 0 "cancel of a running job"
run_bx wait --timeout 30 "$SLEEP_ID"
expect_rc 125 "wait of a cancelled job"
expect_out "cancelled" "wait of a cancelled job"

# --- history: the recorder has the jobs in MongoDB -------------------------
found=
for _ in $(seq 100); do
    run_bx history --label "$LABEL"
    if [[ $RC == 0 && $OUT == *"$ID"* ]]; then found=1; break; fi
    sleep 0.2
done
[[ -n $found ]] || bx_fail "history never listed $ID (exit $RC: $OUT $ERR)"
grep -q "^$ID  succeeded  0 .*echo hello world" <<<"$OUT" || bx_fail "history row of $ID: $OUT"
head -n1 <<<"$OUT" | grep -q '^ID .*STATE .*EXIT .*DURATION .*COMMAND' || bx_fail "history header: $OUT"

# every page, one job a page, is every job
run_bx history --label "$LABEL" --limit 1 --all --json
expect_rc 0 "history --all --json"
all=$(jq '.jobs | length' <<<"$OUT")
run_bx history --label "$LABEL" --limit 1000 --json
[[ $all == "$(jq '.jobs | length' <<<"$OUT")" && $all -ge 5 ]] ||
    bx_fail "history --all found $all jobs, one page $(jq '.jobs | length' <<<"$OUT")"
run_bx history --label "$LABEL" --state failed --json
[[ $(jq '[.jobs[] | select(.state != "failed")] | length' <<<"$OUT") == 0 ]] ||
    bx_fail "history --state failed: $OUT"

# --- load ---------------------------------------------------------------
run_bx load -n 20 -c 4 --wait --json true
expect_rc 0 "load"
jq -e '.submitted == 20 and .errors == 0 and .finished == 20 and .states.succeeded == 20
       and .latency_ms.p50 >= 0 and .submit_per_s > 0' <<<"$OUT" >/dev/null || bx_fail "load: $OUT"

# --- the errors a person meets ----------------------------------------------
BX_API_TOKEN=not-the-token run_bx status "$ID"
expect_rc 2 "a wrong token"
expect_err "unauthorized: check BX_API_TOKEN" "a wrong token"

BX_API_URL=http://127.0.0.1:1 run_bx status "$ID"
expect_rc 2 "no API"
expect_err "cannot reach http://127.0.0.1:1: Connection refused" "no API"

run_bx status 00000000-0000-7000-8000-000000000000
expect_rc 2 "an unknown job"
expect_err "404" "an unknown job"

bx_note "test_bx: ok"
