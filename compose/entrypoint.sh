#!/usr/bin/env bash
# Entrypoint of the bashexec image: prepares what a process needs in a
# container, then execs it. The command chooses the process:
#
#   bx-api | bx-worker | bx-recorder | bx [ARGS...]
#   health api|worker|recorder     the Compose health check of that process
#
# bx-api: when the tokens file (BX_API_TOKENS_FILE, default
#   $BX_RUN_DIR/api-tokens) does not exist, writes one with a generated
#   admin token, also kept alone in $BX_RUN_DIR/api-token, where `bx` run in
#   the same container finds it. An existing tokens file is the operator's
#   and is never touched.
# bx-worker: BX_WORKER_ID defaults to the container's host name, unique per
#   replica and stable for its life, so that the health check can find the
#   worker's heartbeat in Redis.
# Anything else is run as it is.
set -euo pipefail

die() { echo "bx-entrypoint: $*" >&2; exit 1; }

RUN_DIR=${BX_RUN_DIR:-/var/lib/bashexec}

ensure_tokens() {
    local tokens=${BX_API_TOKENS_FILE:-$RUN_DIR/api-tokens} token
    [[ -e $tokens ]] && return 0
    mkdir -p "$(dirname "$tokens")" "$RUN_DIR" ||
        die "cannot create the directory of $tokens"
    (
        umask 077
        token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
        printf '%s\n' "$token" >"$RUN_DIR/api-token"
        {
            echo "# name sha256:<hex of the token> scopes [options]; bx token new NAME SCOPES"
            echo "# makes a token and its line; send SIGHUP to reload"
            echo "admin sha256:$(printf '%s' "$token" | sha256sum | cut -d' ' -f1) admin"
        } >"$tokens.new"
        mv -f "$tokens.new" "$tokens"
    ) || die "cannot write the tokens file $tokens (a read-only mount? then provide it)"
    echo "bx-entrypoint: generated an admin token in $RUN_DIR/api-token (tokens file $tokens)" >&2
}

# ---- health checks: bash only, the image has no redis-cli or pgrep --------

# Is a process of this name (comm) alive in the container?
process_alive() {
    local f comm
    for f in /proc/[0-9]*/comm; do
        read -r comm <"$f" 2>/dev/null || continue
        [[ $comm == "$1" ]] && return 0
    done
    return 1
}

# Does the worker's heartbeat key exist in Redis? It expires 15 s after the
# last beat, so it exists only while the worker's loop runs and reaches
# Redis. Speaks RESP over bash's /dev/tcp, parsing BX_REDIS_URL as rds.c
# does: redis://[[user]:password@]host[:port][/db].
worker_heartbeat() {
    local url=${BX_REDIS_URL:-redis://127.0.0.1:6379/0} ns=${BX_NAMESPACE:-bx}
    local id=${BX_WORKER_ID:-$(uname -n)} rest password='' host port=6379 db=0 line
    [[ $url == redis://* ]] || die "BX_REDIS_URL must start with redis://"
    rest=${url#redis://}
    if [[ $rest == *@* ]]; then
        password=${rest%%@*}
        [[ $password == *:* ]] && password=${password#*:}
        rest=${rest#*@}
    fi
    host=${rest%%[:/]*}
    rest=${rest#"$host"}
    if [[ $rest == :* ]]; then port=${rest#:}; port=${port%%/*}; rest=${rest#:"$port"}; fi
    [[ $rest == /?* ]] && db=${rest#/}
    local LC_ALL=C   # ${#x} must count bytes for RESP
    resp() {
        local a
        printf '*%d\r\n' $#
        for a in "$@"; do printf '$%d\r\n%s\r\n' "${#a}" "$a"; done
    }
    exec 3<>"/dev/tcp/$host/$port" || die "cannot connect to redis at $host:$port"
    {
        [[ -n $password ]] && resp AUTH "$password"
        resp SELECT "$db"
        resp EXISTS "$ns:worker:$id"
    } >&3
    local n=2
    [[ -n $password ]] && n=3
    while (( n-- )); do
        IFS= read -r -t 3 line <&3 || die "no answer from redis at $host:$port"
        line=${line%$'\r'}
        [[ $line == -* ]] && die "redis: ${line#-}"
        (( n == 0 )) || continue
        [[ $line == ':1' ]] || die "no heartbeat of worker $id ($ns:worker:$id) in redis"
    done
    exec 3>&-
}

# Has the recorder a connection to RabbitMQ? (ESTABLISHED, state 01, to the
# port of BX_AMQP_URL, in this container's /proc/net/tcp or tcp6.)
amqp_connected() {
    local url=${BX_AMQP_URL:-amqp://127.0.0.1:5672/} hostport port
    port=5672
    [[ $url == amqps://* ]] && port=5671
    hostport=${url#*://}; hostport=${hostport#*@}; hostport=${hostport%%/*}
    [[ $hostport =~ :([0-9]+)$ ]] && port=${BASH_REMATCH[1]}
    local want f rem st _
    want=$(printf '%04X' "$port")
    for f in /proc/net/tcp /proc/net/tcp6; do
        [[ -r $f ]] || continue
        while read -r _ _ rem st _; do
            [[ $st == 01 && ${rem##*:} == "$want" ]] && return 0
        done <"$f"
    done
    die "bx-recorder has no connection to RabbitMQ (port $port)"
}

health() {
    case ${1:-} in
        api)
            local listen=${BX_API_LISTEN:-127.0.0.1:8080}
            curl -fsS -o /dev/null --max-time 3 "http://127.0.0.1:${listen##*:}/healthz"
            ;;
        worker)
            process_alive bx-worker || die "bx-worker is not running"
            worker_heartbeat
            ;;
        recorder)
            process_alive bx-recorder || die "bx-recorder is not running"
            amqp_connected
            ;;
        *) die "usage: bx-entrypoint health api|worker|recorder" ;;
    esac
}

# ---- main ----------------------------------------------------------------

(( $# )) || set -- bx-api
case $1 in
    bx-api) ensure_tokens ;;
    bx-worker) export BX_WORKER_ID=${BX_WORKER_ID:-$(uname -n)} ;;
    health) shift; health "$@"; exit 0 ;;
esac
exec "$@"
