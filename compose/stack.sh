#!/usr/bin/env bash
# The local stack, without containers: RabbitMQ, Redis and a MongoDB server
# (reused where they answer, else started here), then bx-api, bx-recorder and
# BX_WORKERS workers. Everything it starts has a pid file in RUN/pids/, so
# `down` stops exactly that, and several stacks can live side by side when
# BX_NAMESPACE, BX_RUN_DIR and BX_API_LISTEN differ.
#
#   compose/stack.sh up       start in the background, return once the API is healthy
#   compose/stack.sh run      the same in the foreground, tailing the logs; Ctrl-C stops it
#   compose/stack.sh down     stop what `up` or `run` started in this run dir
#   compose/stack.sh status   what runs, and where
#   compose/stack.sh purge    delete the namespace's queues, exchanges and Redis keys
set -euo pipefail

BX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=compose/lib.sh
. "$BX_ROOT/compose/lib.sh"

MODE=${1:-}
# Absolute, since the processes get it and a relative one would depend on
# where each was started from.
BX_RUN_DIR=$(realpath -m "${BX_RUN_DIR:-$BX_ROOT/.run}")
export BX_RUN_DIR
RUN=$BX_RUN_DIR
# `up` records its settings so that status, down and purge, run later from
# another shell, act on that stack and not on the defaults. What the caller's
# environment sets still wins.
STACK_ENV=$RUN/stack.env
if [[ $MODE != up && $MODE != run && -f $STACK_ENV ]]; then
    while IFS='=' read -r key value; do
        if [[ $key =~ ^BX_[A-Z_]+$ && -z ${!key+set} ]]; then eval "export $key=$value"; fi
    done <"$STACK_ENV"
fi

export BX_NAMESPACE=${BX_NAMESPACE:-bx}
export BX_API_LISTEN=${BX_API_LISTEN:-127.0.0.1:8080}
export BX_AMQP_URL=${BX_AMQP_URL:-$BX_DEFAULT_AMQP_URL}
export BX_REDIS_URL=${BX_REDIS_URL:-$BX_DEFAULT_REDIS_URL}
export BX_MONGO_URL=${BX_MONGO_URL:-$BX_DEFAULT_MONGO_URL}
export BX_API_TOKENS_FILE=${BX_API_TOKENS_FILE:-$BX_RUN_DIR/api-tokens}
export BX_FOREGROUND=1    # our processes log to stderr, which is their log file
BX_WORKERS=${BX_WORKERS:-2}
BX_BIN_DIR=${BX_BIN_DIR:-$BX_ROOT/bin}   # e.g. another build's binaries
TOKEN_FILE=$RUN/api-token

[[ $BX_WORKERS =~ ^[0-9]+$ ]] || bx_die "BX_WORKERS must be a number, not '$BX_WORKERS'"

# The address a client uses to reach BX_API_LISTEN (which may be a wildcard);
# https when the API has a certificate (BX_TLS_CERT).
api_url() {
    local host=${BX_API_LISTEN%:*} port=${BX_API_LISTEN##*:}
    case $host in ''|0.0.0.0|'*') host=127.0.0.1 ;; '[::]') host='[::1]' ;; esac
    echo "http${BX_TLS_CERT:+s}://$host:$port"
}

# A self-signed certificate is its own CA; BX_CA_FILE names another.
api_healthy() {
    local -a ca=()
    [[ -n ${BX_TLS_CERT:-} ]] && ca=(--cacert "${BX_CA_FILE:-$BX_TLS_CERT}")
    curl -fsS -o /dev/null --max-time 2 "${ca[@]}" "$(api_url)/healthz" 2>/dev/null
}

bx_names() {   # the bx processes of this stack, in start order
    echo bx-recorder
    local i
    for (( i = 1; i <= BX_WORKERS; i++ )); do echo "bx-worker-$i"; done
    echo bx-api
}

running_bx() {   # names of bx processes of RUN that are alive
    local f n
    for f in "$RUN"/pids/bx-*.pid; do
        [[ -e $f ]] || continue
        n=$(basename "$f" .pid)
        bx_pidfile_pid "$RUN" "$n" >/dev/null && echo "$n"
    done
    return 0
}

# A pid file whose process is gone says nothing; drop it so that it cannot
# mislead `status` or be trusted later.
drop_stale_pidfiles() {
    local f n
    for f in "$RUN"/pids/*.pid; do
        [[ -e $f ]] || continue
        n=$(basename "$f" .pid)
        bx_pidfile_pid "$RUN" "$n" >/dev/null || rm -f "$f" "$RUN/pids/.$n.start"
    done
}

# The admin token is generated once per run dir and kept, so clients keep
# working across restarts; the tokens file is the operator's to extend, and
# only its admin line is ours.
ensure_tokens() {
    local token hash
    (
        umask 077
        if [[ ! -s $TOKEN_FILE ]]; then
            head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TOKEN_FILE"
            echo >>"$TOKEN_FILE"
        fi
        # the tokens file keeps only the token's SHA-256 (api/auth.h)
        token=$(tr -d '[:space:]' <"$TOKEN_FILE")
        hash=sha256:$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
        if ! awk -v h="$hash" '$1 == "admin" && $2 == h { found = 1 } END { exit !found }' \
                "$BX_API_TOKENS_FILE" 2>/dev/null; then
            {
                [[ -f $BX_API_TOKENS_FILE ]] && awk '$1 != "admin"' "$BX_API_TOKENS_FILE"
                echo "admin $hash admin"
            } >"$BX_API_TOKENS_FILE.new"
            mv -f "$BX_API_TOKENS_FILE.new" "$BX_API_TOKENS_FILE"
        fi
    )
}

print_access() {
    cat <<EOF
bashexec is up (namespace $BX_NAMESPACE, $BX_WORKERS worker(s)).
  API:    $(api_url)   e.g. curl -H "Authorization: Bearer \$(cat $TOKEN_FILE)" $(api_url)/v1/workers
  token:  $TOKEN_FILE (admin); tokens file $BX_API_TOKENS_FILE
  logs:   $RUN/logs/   pids: $RUN/pids/
  uses:   $(bx_redact_url "$BX_AMQP_URL")  $(bx_redact_url "$BX_REDIS_URL")  $(bx_redact_url "$BX_MONGO_URL")
  stop:   make down   (or BX_RUN_DIR=$RUN compose/stack.sh down)
EOF
}

# Starts services and bx processes; on any failure stops what it started.
start_stack() {
    local n i
    for n in bx-api bx-worker bx-recorder; do
        [[ -x $BX_BIN_DIR/$n ]] || bx_die "$BX_BIN_DIR/$n is missing: run make"
    done
    mkdir -p "$RUN/pids" "$RUN/logs"
    drop_stale_pidfiles

    local -a alive
    mapfile -t alive < <(running_bx)
    if (( ${#alive[@]} )); then
        if [[ $MODE == up ]] && bx_pidfile_pid "$RUN" bx-api >/dev/null && api_healthy; then
            print_access
            exit 0
        fi
        bx_die "a stack is already running from $RUN (${alive[*]}): stop it first (make down)"
    fi
    local host port
    read -r host port < <(bx_url_hostport "$(api_url)" 80)
    bx_answers "$host" "$port" && bx_die "something already listens at $BX_API_LISTEN (BX_API_LISTEN): another stack?"

    # From here on, a failure or an interrupt takes down what was started.
    trap stop_started EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # The services start side by side: RabbitMQ's boot is the slow one.
    bx_ensure_rabbitmq "$RUN" "$BX_AMQP_URL" & STARTERS+=($!)
    bx_ensure_redis "$RUN" "$BX_REDIS_URL" & STARTERS+=($!)
    bx_ensure_mongo "$RUN" "$BX_MONGO_URL" & STARTERS+=($!)
    local failed=0
    for i in "${STARTERS[@]}"; do wait "$i" || failed=1; done
    STARTERS=()
    (( failed == 0 )) || exit 1

    ensure_tokens
    local k
    # its URLs may hold passwords: for this user alone
    (umask 077; rm -f "$STACK_ENV"
     for k in BX_NAMESPACE BX_API_LISTEN BX_AMQP_URL BX_REDIS_URL BX_MONGO_URL BX_API_TOKENS_FILE BX_WORKERS BX_TLS_CERT BX_CA_FILE; do
         printf '%s=%q\n' "$k" "${!k-}"
     done >"$STACK_ENV")
    if [[ $MODE == run ]]; then
        # Followed from their current end, so that this run's lines show
        # and not those of earlier runs.
        local -a logs=()
        for n in $(bx_names); do logs+=("$RUN/logs/$n.log"); done
        touch "${logs[@]}"
        tail -n 0 -F "${logs[@]}" &
        TAILPID=$!
    fi
    for n in $(bx_names); do
        if [[ $n == bx-worker-* ]]; then
            BX_WORKER_ID=$(uname -n)-w${n#bx-worker-} \
                bx_start "$RUN" "$n" "$BX_BIN_DIR/bx-worker"
        else
            bx_start "$RUN" "$n" "$BX_BIN_DIR/$n"
        fi
    done
    bx_wait_ready "$RUN" bx-api "$BX_READY_TIMEOUT" api_healthy || exit 1
    # The others had as long as the API to fall over; say so now, not later.
    for n in $(bx_names); do
        bx_pidfile_pid "$RUN" "$n" >/dev/null || {
            bx_log "error: $n exited; last lines of $RUN/logs/$n.log:"
            tail -n 25 "$RUN/logs/$n.log" >&2
            exit 1
        }
    done
}

# EXIT trap while starting, and for `run` until the end: stops all that
# RUN's pid files name, once the service starters (which may still be
# writing pid files) are done.
STARTERS=() TAILPID=
stop_started() {
    if (( ${#STARTERS[@]} )); then wait "${STARTERS[@]}" || true; fi
    if [[ -n $TAILPID ]]; then kill "$TAILPID" 2>/dev/null || true; fi
    [[ $MODE == run ]] && echo "stopping the stack..." >&2
    bx_stop_all "$RUN"
}

cmd_up() {
    start_stack
    trap - EXIT INT TERM
    print_access
}

cmd_run() {
    start_stack
    print_access
    echo "Ctrl-C stops it."
    # Stop everything however this shell ends: Ctrl-C, TERM (the traps set
    # while starting stay), or a process of the stack dying.
    local n
    while sleep 1; do
        for n in $(bx_names); do
            if ! bx_pidfile_pid "$RUN" "$n" >/dev/null; then
                bx_log "error: $n exited (see $RUN/logs/$n.log): stopping the stack"
                exit 1
            fi
        done
    done
}

cmd_down() {
    if ! compgen -G "$RUN/pids/*.pid" >/dev/null; then
        echo "nothing to stop in $RUN"
        return 0
    fi
    bx_stop_all "$RUN"
    echo "stopped the stack of $RUN"
}

cmd_status() {
    local f n pid rc=0 any=0
    for f in "$RUN"/pids/*.pid; do
        [[ -e $f ]] || continue
        any=1
        n=$(basename "$f" .pid)
        if pid=$(bx_pidfile_pid "$RUN" "$n"); then
            printf '%-14s running  pid %s\n' "$n" "$pid"
        else
            printf '%-14s DEAD     (stale %s)\n' "$n" "$f"
            rc=1
        fi
    done
    if (( !any )); then
        echo "no stack in $RUN"
        return 3
    fi
    if api_healthy; then echo "API $(api_url) healthy"; else echo "API $(api_url) NOT answering"; rc=1; fi
    echo "token: $TOKEN_FILE"
    return "$rc"
}

case $MODE in
    up) cmd_up ;;
    run) cmd_run ;;
    down) cmd_down ;;
    status) cmd_status ;;
    purge) bx_purge_namespace "$BX_NAMESPACE" "$RUN" ;;
    *) echo "usage: $0 up|run|down|status|purge" >&2; exit 2 ;;
esac
