#!/usr/bin/env bash
# Runs every test: the unit test binaries of BUILD_DIR/tests/, then the
# end-to-end tests tests/e2e/test_*.sh and test_*.py against real RabbitMQ,
# Redis and MongoDB servers (reused where they answer, else started here for
# this run only). Each test is bounded in time; the last line is
# "N passed, N failed", and the exit status is non-zero when any failed.
#
#   tests/run.sh BUILD_DIR [NAME_FILTER]
#
# BX_UNIT_TIMEOUT / BX_E2E_TIMEOUT (seconds, 300 / 300) bound each test.
# BX_UNIT_WRAPPER (e.g. "valgrind --error-exitcode=1") runs each unit test
# under it; BX_UNIT_ONLY=1 skips the end-to-end tests (make valgrind);
# BX_TEST_SKIP="test_a.py test_b.sh" skips those tests by name.
set -euo pipefail

BUILD=${1:?usage: tests/run.sh BUILD_DIR [NAME_FILTER]}
FILTER=${2:-}
BX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=compose/lib.sh
. "$BX_ROOT/compose/lib.sh"
cd "$BX_ROOT"
[[ $BUILD == /* ]] || BUILD=$BX_ROOT/$BUILD

UNIT_TIMEOUT=${BX_UNIT_TIMEOUT:-300}
E2E_TIMEOUT=${BX_E2E_TIMEOUT:-300}
PYTHON=/usr/bin/python3   # Debian's, with Debian's python3-* packages

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bx-test.XXXXXX")
export BX_TEST_TMPDIR=$TMP   # the e2e harness makes its run dirs in here
SERVICES=$TMP/services

# Whatever a test left running (a harness killed before its teardown) is
# found through the run dirs under TMP, then the services started here go.
cleanup() {
    local d
    for d in "$TMP"/stack.*/; do
        [[ -d $d/pids ]] || continue
        BX_RUN_DIR=$d "$BX_ROOT/compose/stack.sh" down >/dev/null 2>&1 || true
        BX_RUN_DIR=$d "$BX_ROOT/compose/stack.sh" purge >/dev/null 2>&1 || true
    done
    [[ -n ${UNIT_NS:-} ]] && bx_purge_namespace "$UNIT_NS" >/dev/null 2>&1
    bx_stop_all "$SERVICES"
    rm -rf "$TMP"
}
# A test runs in the background so that Ctrl-C is handled at once (a
# foreground child would be waited for first): the running test is
# stopped, it tears its stack down, then cleanup runs.
CURRENT=
interrupted() {
    if [[ -n $CURRENT ]]; then kill -TERM "$CURRENT" 2>/dev/null; wait "$CURRENT" || true; fi
    exit "$1"
}
trap cleanup EXIT
trap 'interrupted 130' INT
trap 'interrupted 143' TERM

passed=0 failed=0

# A sanitizer build's processes write their reports into SAN_DIR, one file
# per process: a service stopped at the end of a test (its leaks, say)
# would otherwise report into a log that nobody reads. A report fails the
# test that was running.
SAN_DIR=
if [[ $(basename "$BUILD") == san ]]; then
    SAN_DIR=$TMP/san
    mkdir -p "$SAN_DIR"
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$SAN_DIR/asan"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:log_path=$SAN_DIR/ubsan"
fi

# run_test NAME TIMEOUT CMD...: run one test, its output kept aside and
# shown (the tail) only when it fails.
run_test() {
    local name=$1 limit=$2; shift 2
    local out=$TMP/out.${name//\//_} start=$SECONDS rc=0 r
    timeout -k 20 "$limit" "$@" >"$out" 2>&1 </dev/null &
    CURRENT=$!
    wait "$CURRENT" || rc=$?
    CURRENT=
    if [[ -n $SAN_DIR ]] && compgen -G "$SAN_DIR/*" >/dev/null; then
        for r in "$SAN_DIR"/*; do
            echo "=== sanitizer report $(basename "$r")"
            head -n 40 "$r"
        done >>"$out"
        mkdir -p "$TMP/san.seen"
        mv "$SAN_DIR"/* "$TMP/san.seen/"
        (( rc != 0 )) || rc=99
    fi
    if (( rc == 0 )); then
        echo "PASS $name ($(( SECONDS - start ))s)"
        passed=$(( passed + 1 ))
    else
        if (( rc == 124 || rc == 137 )); then
            echo "FAIL $name (timed out after ${limit}s)"
        elif (( rc == 99 )); then
            echo "FAIL $name (passed, but a sanitizer reported: see below)"
        else
            echo "FAIL $name (exit $rc, $(( SECONDS - start ))s)"
        fi
        tail -n 60 "$out" | sed 's/^/    | /'
        failed=$(( failed + 1 ))
    fi
}

wanted() {
    [[ " ${BX_TEST_SKIP:-} " != *" $1 "* ]] || { echo "SKIP $1 (BX_TEST_SKIP)"; return 1; }
    [[ -z $FILTER || $1 == *"$FILTER"* ]]
}

# -------------------------------------------------------------- services
# Reuse what answers at the configured (or default) URLs; start the rest,
# side by side, on free ports under TMP, so that a test run never takes a
# port a stack would want.
ensure_services() {
    local url host port rc=0 j
    local -a starters=()
    mkdir -p "$SERVICES"

    url=${BX_AMQP_URL:-$BX_DEFAULT_AMQP_URL}
    read -r host port < <(bx_url_hostport "$url" 5672)
    if ! bx_answers "$host" "$port"; then
        url="amqp://guest:guest@127.0.0.1:$(bx_free_port)/"
        bx_ensure_rabbitmq "$SERVICES" "$url" & starters+=($!)
        # The harness cleans up queues with this node's own rabbitmqctl.
        export BX_RABBITMQCTL=$SERVICES/rabbitmq/rabbitmqctl
    fi
    export BX_AMQP_URL=$url

    url=${BX_REDIS_URL:-$BX_DEFAULT_REDIS_URL}
    read -r host port < <(bx_url_hostport "$url" 6379)
    if ! bx_answers "$host" "$port"; then
        url="redis://127.0.0.1:$(bx_free_port)/0"
        bx_ensure_redis "$SERVICES" "$url" & starters+=($!)
    fi
    export BX_REDIS_URL=$url

    url=${BX_MONGO_URL:-$BX_DEFAULT_MONGO_URL}
    read -r host port < <(bx_url_hostport "$url" 27017)
    if ! bx_answers "$host" "$port"; then
        url="mongodb://127.0.0.1:$(bx_free_port)/"
        bx_ensure_mongo "$SERVICES" "$url" & starters+=($!)
    fi
    export BX_MONGO_URL=$url

    for j in "${starters[@]}"; do wait "$j" || rc=1; done
    (( rc == 0 )) || return 1
    echo "services: $(bx_redact_url "$BX_AMQP_URL") $(bx_redact_url "$BX_REDIS_URL") $(bx_redact_url "$BX_MONGO_URL")"
}

shopt -s nullglob
units=()
for f in "$BUILD"/tests/test_*; do
    [[ -f $f && -x $f ]] && wanted "$(basename "$f")" && units+=("$f")
done
e2es=()
for f in "$BX_ROOT"/tests/e2e/test_*.sh "$BX_ROOT"/tests/e2e/test_*.py; do
    [[ ${BX_UNIT_ONLY:-} == 1 ]] && break
    wanted "$(basename "$f")" && e2es+=("$f")
done
read -r -a unit_wrapper <<<"${BX_UNIT_WRAPPER:-}"

services_ok=1
if (( ${#units[@]} + ${#e2es[@]} )); then
    # Unit tests of the service helpers may use them too, in a namespace of
    # their own.
    ensure_services || services_ok=0
    UNIT_NS=t_unit_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
fi

for f in "${units[@]}"; do
    BX_NAMESPACE=$UNIT_NS run_test "$(basename "$f")" "$UNIT_TIMEOUT" "${unit_wrapper[@]}" "$f"
done

for f in "${e2es[@]}"; do
    name=e2e/$(basename "$f")
    if (( !services_ok )); then
        echo "FAIL $name (RabbitMQ, Redis or MongoDB could not be started: see above)"
        failed=$(( failed + 1 ))
        continue
    fi
    case $f in
        *.py) run_test "$name" "$E2E_TIMEOUT" "$PYTHON" "$f" ;;
        *) run_test "$name" "$E2E_TIMEOUT" bash "$f" ;;
    esac
done

echo "$passed passed, $failed failed"
(( failed == 0 ))
