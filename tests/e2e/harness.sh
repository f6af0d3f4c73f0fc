# bashexec end-to-end test harness for bash tests. Source it, then:
#
#   . "$(dirname "$0")/harness.sh"
#   bx_stack_up                      # a private stack (BX_WORKERS=N: its workers)
#   bx_http GET /healthz --no-auth   # sets BX_STATUS and BX_BODY
#   id=$(bx_submit '{"command": "echo hi"}')
#   job=$(bx_wait "$id" 30)          # the job once terminal; fails after 30 s
#   [[ $(jq -r .state <<<"$job") == succeeded ]] || bx_fail "not succeeded: $job"
#
# Each test gets its own namespace (t_<name>_<random>), run dir, API port and
# token, and shares RabbitMQ, Redis and MongoDB with the others (tests/run.sh
# exports their URLs). On exit the stack is stopped, the namespace's queues,
# exchanges and Redis keys deleted, and, when the test failed, the tails of
# the stack's logs printed. Don't set an EXIT trap: use bx_defer CMD.
set -euo pipefail

BX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export BX_ROOT
BX_STACK=$BX_ROOT/compose/stack.sh
# A test never acts on the caller's own stack: what could point at it goes.
unset BX_RUN_DIR BX_NAMESPACE BX_API_LISTEN BX_API_TOKENS_FILE BX_API_URL BX_API_TOKEN
_BX_OWN_RUN_DIR=

bx_fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
bx_note() { printf '%s\n' "$*" >&2; }

BX_DEFERRED=()
bx_defer() { BX_DEFERRED+=("$*"); }

_bx_teardown() {
    local rc=$? cmd f
    trap - EXIT INT TERM
    set +e
    for cmd in "${BX_DEFERRED[@]}"; do eval "$cmd"; done
    if [[ -n $_BX_OWN_RUN_DIR && -d $_BX_OWN_RUN_DIR ]]; then
        export BX_RUN_DIR=$_BX_OWN_RUN_DIR
        if (( rc != 0 )); then
            for f in "$BX_RUN_DIR"/logs/*.log; do
                [[ -e $f ]] || continue
                printf -- '--- last lines of %s\n' "$(basename "$f")" >&2
                tail -n 20 "$f" >&2
            done
        fi
        "$BX_STACK" down >/dev/null
        "$BX_STACK" purge
        rm -rf "$BX_RUN_DIR"
    fi
    exit "$rc"
}
trap _bx_teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A namespace the API, RabbitMQ, Redis and MongoDB all accept: lower-case
# letters, digits and "_", from the test's file name and 8 random hex digits.
_bx_namespace() {
    local name
    name=$(basename "$0"); name=${name%.*}; name=${name#test_}
    name=${name,,}; name=${name//[^a-z0-9]/_}; name=${name:0:24}
    echo "t_${name}_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
}

# bx_stack_up [WORKERS]: start this test's stack (WORKERS, else BX_WORKERS,
# else 2 workers) and wait until its API is healthy. Sets BX_NAMESPACE,
# BX_RUN_DIR, BX_API_URL and BX_TOKEN (exported, so that bin/bx finds the
# stack too).
bx_stack_up() {
    local workers=${1:-${BX_WORKERS:-2}}
    export BX_NAMESPACE BX_RUN_DIR BX_API_LISTEN BX_API_URL BX_TOKEN
    BX_NAMESPACE=$(_bx_namespace)
    BX_RUN_DIR=$(mktemp -d "${BX_TEST_TMPDIR:-${TMPDIR:-/tmp}}/stack.XXXXXX")
    _BX_OWN_RUN_DIR=$BX_RUN_DIR
    BX_API_LISTEN=127.0.0.1:$(
        . "$BX_ROOT/compose/lib.sh"
        bx_free_port
    )
    BX_API_URL=http://$BX_API_LISTEN
    # commands run as the test's user (see harness.py), unless told otherwise
    BX_RUN_AS=${BX_RUN_AS:--} BX_WORKERS=$workers "$BX_STACK" up >"$BX_RUN_DIR/up.out" 2>&1 || {
        cat "$BX_RUN_DIR/up.out" >&2
        bx_fail "the stack did not come up"
    }
    BX_TOKEN=$(tr -d '[:space:]' <"$BX_RUN_DIR/api-token")
    bx_note "stack $BX_NAMESPACE up at $BX_API_URL (run dir $BX_RUN_DIR)"
}

# bx_http METHOD PATH [BODY] [--no-auth | --token TOKEN]: one API call.
# Sets BX_STATUS (the HTTP status) and BX_BODY; fails only when curl cannot
# talk to the API at all.
bx_http() {
    local method=$1 path=$2 body='' token=${BX_TOKEN:-}
    shift 2
    if (( $# )) && [[ $1 != --* ]]; then body=$1; shift; fi
    while (( $# )); do
        case $1 in
            --no-auth) token= ;;
            --token) token=$2; shift ;;
            *) bx_fail "bx_http: unknown option $1" ;;
        esac
        shift
    done
    local -a args=(-sS --max-time 30 -X "$method" -o "$BX_RUN_DIR/body" -w '%{http_code}')
    [[ -n $token ]] && args+=(-H "Authorization: Bearer $token")
    [[ -n $body ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    BX_STATUS=$(curl "${args[@]}" "$BX_API_URL$path") || bx_fail "$method $path: curl failed"
    BX_BODY=$(cat "$BX_RUN_DIR/body")
}

# bx_expect CODE: fail unless the last bx_http answered CODE.
bx_expect() {
    [[ $BX_STATUS == "$1" ]] || bx_fail "expected HTTP $1, got $BX_STATUS: $BX_BODY"
}

# bx_submit JOB_JSON: submit, expect 202, print the job's id.
bx_submit() {
    bx_http POST /v1/jobs "$1"
    bx_expect 202
    jq -er .id <<<"$BX_BODY" || bx_fail "no id in $BX_BODY"
}

# bx_job ID: print the job (status and result).
bx_job() {
    bx_http GET "/v1/jobs/$1"
    bx_expect 200
    printf '%s\n' "$BX_BODY"
}

# bx_wait ID [TIMEOUT_S=60]: poll until the job is in a terminal state;
# print it. Fails when it is not terminal in time.
bx_wait() {
    local id=$1 limit=${2:-60} state
    local deadline=$(( SECONDS + limit ))
    while :; do
        bx_http GET "/v1/jobs/$id"
        if [[ $BX_STATUS == 200 ]]; then
            state=$(jq -r .state <<<"$BX_BODY" 2>/dev/null || true)
            case $state in
                succeeded|failed|timed_out|cancelled|rejected) printf '%s\n' "$BX_BODY"; return 0 ;;
            esac
        fi
        (( SECONDS < deadline )) || bx_fail "job $id not finished after ${limit}s (HTTP $BX_STATUS: $BX_BODY)"
        sleep 0.2
    done
}
