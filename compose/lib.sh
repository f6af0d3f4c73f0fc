# bashexec — shell functions shared by compose/stack.sh, tests/run.sh and the
# e2e harness. Sourced, never run. Everything here works on a "run dir": a
# folder that holds pids/, logs/ and each self-started service's data, so a
# run dir is the whole record of what was started and `bx_stop_all` can stop
# exactly that and nothing else.
#
# Callers set BX_ROOT (the checkout) before sourcing.

: "${BX_ROOT:?BX_ROOT must be set before sourcing compose/lib.sh}"

BX_DEFAULT_AMQP_URL='amqp://guest:guest@127.0.0.1:5672/'
BX_DEFAULT_REDIS_URL='redis://127.0.0.1:6379/0'
BX_DEFAULT_MONGO_URL='mongodb://127.0.0.1:27017/'
BX_RABBITMQ_LIB=/usr/lib/rabbitmq/bin   # Debian's; /usr/sbin's wrappers `su rabbitmq`
BX_READY_TIMEOUT=${BX_READY_TIMEOUT:-60}

bx_log() { printf '%s\n' "$*" >&2; }
bx_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# bx_redact_url URL -> URL with its userinfo (a password) as "***", as
# lib/log.c's log_redact_url does, for what the scripts print.
bx_redact_url() {
    local url=$1 scheme=
    [[ $url == *@* ]] || { printf '%s\n' "$url"; return; }
    [[ $url == *://* && ${url%%://*} != *@* ]] && scheme=${url%%://*}://
    printf '%s***@%s\n' "$scheme" "${url##*@}"
}

# bx_url_hostport URL DEFAULT_PORT -> "host port" of the first host in URL
# (userinfo, path, query and further hosts of a Mongo seed list dropped).
bx_url_hostport() {
    local rest=${1#*://} dport=$2 host port
    rest=${rest%%/*}; rest=${rest%%\?*}; rest=${rest##*@}; rest=${rest%%,*}
    if [[ $rest == \[* ]]; then              # [v6]:port
        host=${rest%%]*}; host=${host#[}
        port=${rest#*]}; port=${port#:}
    elif [[ $rest == *:* ]]; then
        host=${rest%:*}; port=${rest##*:}
    else
        host=$rest; port=
    fi
    printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$dport}"
}

# Only a service on this machine can be started here; anything else must
# already be running.
bx_is_local() { [[ $1 == 127.* || $1 == localhost || $1 == ::1 ]]; }

# bx_answers HOST PORT: does something accept TCP connections there?
bx_answers() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# A port that nothing answers on now. Random rather than bind-to-0 so that no
# extra tool is needed; the window until the server binds it is accepted.
bx_free_port() {
    # Below the kernel's ephemeral range: a port there can be taken at any
    # moment by the local end of an outgoing connection, which no probe sees.
    local p lo
    lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    (( lo > 11000 )) || lo=32768
    for _ in $(seq 1 200); do
        p=$(( 10000 + (RANDOM * 32768 + RANDOM) % (lo - 10000) ))
        bx_answers 127.0.0.1 "$p" || { echo "$p"; return 0; }
    done
    bx_die "no free TCP port found"
}

# A zombie counts as gone: our processes are reparented to init, which may
# take its time to reap them.
bx_pid_alive() {
    [[ -n $1 ]] && kill -0 "$1" 2>/dev/null || return 1
    [[ $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) != Z ]]
}

# A process is known by its pid and its start time (field 22 of
# /proc/PID/stat), kept beside the pid file in .NAME.start: a pid reused by
# an unrelated process is then never taken for ours, and never signalled.
bx_starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

bx_pidfile_pid() {   # RUN NAME -> prints the pid when it is ours and alive
    local run=$1 name=$2 pid start
    pid=$(cat "$run/pids/$name.pid" 2>/dev/null) || return 1
    start=$(cat "$run/pids/.$name.start" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ && -n $start && $(bx_starttime "$pid") == "$start" ]] || return 1
    bx_pid_alive "$pid" || return 1
    echo "$pid"
}

# bx_start RUN NAME CMD...: start CMD detached in a session of its own (so a
# terminal's Ctrl-C or hang-up reaches only us, and the whole tree can be
# killed as a group), output to RUN/logs/NAME.log, pid in RUN/pids/NAME.pid.
bx_start() {
    local run=$1 name=$2 pid; shift 2
    mkdir -p "$run/pids" "$run/logs"
    printf '=== %s start %s\n' "$(date -u +%FT%TZ)" "$name" >>"$run/logs/$name.log"
    # A background job of a non-interactive shell is not a group leader, so
    # setsid(1) calls setsid() in place instead of forking: $! is the process.
    setsid "$@" >>"$run/logs/$name.log" 2>&1 </dev/null &
    pid=$!
    bx_starttime "$pid" >"$run/pids/.$name.start"
    echo "$pid" >"$run/pids/$name.pid"
}

# bx_wait_ready RUN NAME TIMEOUT CHECK...: poll CHECK until it succeeds; fail
# early, with the log's tail, when the process has died.
bx_wait_ready() {
    local run=$1 name=$2 t=$3; shift 3
    local deadline=$(( SECONDS + t ))
    until "$@"; do
        if ! bx_pidfile_pid "$run" "$name" >/dev/null; then
            bx_log "error: $name exited while starting; last lines of $run/logs/$name.log:"
            tail -n 25 "$run/logs/$name.log" >&2 || true
            return 1
        fi
        if (( SECONDS >= deadline )); then
            bx_log "error: $name not ready after ${t}s; last lines of $run/logs/$name.log:"
            tail -n 25 "$run/logs/$name.log" >&2 || true
            return 1
        fi
        sleep 0.3
    done
}

# bx_stop RUN NAME...: TERM the named processes together, wait up to
# BX_STOP_TIMEOUT (40 s: more than a worker's 30 s drain) for them, then KILL their whole process groups.
bx_stop() {
    local run=$1; shift
    local n pid deadline
    local -A pids=()
    for n in "$@"; do
        if pid=$(bx_pidfile_pid "$run" "$n"); then
            pids[$n]=$pid
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    deadline=$(( SECONDS + ${BX_STOP_TIMEOUT:-40} ))
    while (( ${#pids[@]} )) && (( SECONDS < deadline )); do
        sleep 0.2
        for n in "${!pids[@]}"; do
            bx_pid_alive "${pids[$n]}" || unset "pids[$n]"
        done
    done
    for n in "${!pids[@]}"; do
        bx_log "$n (pid ${pids[$n]}) did not stop in ${BX_STOP_TIMEOUT:-40}s: killing it"
        kill -KILL -- "-${pids[$n]}" 2>/dev/null || kill -KILL "${pids[$n]}" 2>/dev/null || true
    done
    for n in "$@"; do rm -f "$run/pids/$n.pid" "$run/pids/.$n.start"; done
}

# bx_stop_all RUN: stop everything RUN's pid files name, in stages: the API
# first (no job is accepted that no worker is left to run), then the
# workers, then the recorder (so it still records their last results), then
# the services they all use.
bx_stop_all() {
    local run=$1 f n
    local -a api=() wrk=() rec=() svc=()
    for f in "$run"/pids/*.pid; do
        [[ -e $f ]] || continue
        n=$(basename "$f" .pid)
        case $n in
            bx-api*) api+=("$n") ;;
            bx-recorder*) rec+=("$n") ;;
            rabbitmq|redis|mongo) svc+=("$n") ;;
            *) wrk+=("$n") ;;
        esac
    done
    (( ${#api[@]} )) && bx_stop "$run" "${api[@]}"
    (( ${#wrk[@]} )) && bx_stop "$run" "${wrk[@]}"
    (( ${#rec[@]} )) && bx_stop "$run" "${rec[@]}"
    (( ${#svc[@]} )) && bx_stop "$run" "${svc[@]}"
    return 0
}

# ---------------------------------------------------------------- services
# bx_ensure_SERVICE RUN URL: reuse whatever answers at URL's host:port, else
# start our own there (127.0.0.1 only, data under RUN) and wait until it
# answers. Returns non-zero, having said why, when it cannot.

bx_ensure_rabbitmq() {
    local run=$1 url=$2 host port
    read -r host port < <(bx_url_hostport "$url" 5672)
    bx_answers "$host" "$port" && return 0
    bx_is_local "$host" || { bx_log "error: nothing answers at $host:$port (BX_AMQP_URL) and it is not on this machine"; return 1; }
    [[ -x $BX_RABBITMQ_LIB/rabbitmq-server ]] || { bx_log "error: rabbitmq-server is not installed: run make deps"; return 1; }
    local dir=$run/rabbitmq node="bx-$port@localhost" dist=$(( port + 20000 ))
    (( dist <= 65535 )) || dist=$(( port - 20000 ))
    mkdir -p "$dir/mnesia" "$dir/log"
    : >"$dir/rabbitmq-env.conf"   # keeps /etc/rabbitmq's env file (node name, port) out
    echo '[].' >"$dir/enabled_plugins"
    # Jobs may run for hours with their message unacked; RabbitMQ's default
    # 30 min consumer_timeout would close the worker's channel under them.
    # BX_RABBITMQ_CONSUMER_TIMEOUT_MS (7 days) lets a test make it short.
    local ct=${BX_RABBITMQ_CONSUMER_TIMEOUT_MS:-604800000}
    [[ $ct =~ ^[0-9]+$ ]] || { bx_log "error: BX_RABBITMQ_CONSUMER_TIMEOUT_MS must be a number of ms, not '$ct'"; return 1; }
    printf 'consumer_timeout = %s\n' "$ct" >"$dir/rabbitmq.conf"
    # The Erlang cookie lives in HOME: the node gets one of its own, and
    # RUN/rabbitmq/rabbitmqctl reaches it with the same environment.
    {
        printf 'export HOME=%q\n' "$dir"
        printf 'export RABBITMQ_NODENAME=%q RABBITMQ_USE_LONGNAME=false\n' "$node"
        printf 'export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=%q RABBITMQ_DIST_PORT=%q\n' "$port" "$dist"
        printf 'export ERL_EPMD_ADDRESS=127.0.0.1\n'
        printf 'export RABBITMQ_CONF_ENV_FILE=%q\n' "$dir/rabbitmq-env.conf"
        printf 'export RABBITMQ_CONFIG_FILE=%q\n' "$dir/rabbitmq.conf"
        printf 'export RABBITMQ_ADVANCED_CONFIG_FILE=%q\n' "$dir/advanced.config"
        printf 'export RABBITMQ_ENABLED_PLUGINS_FILE=%q\n' "$dir/enabled_plugins"
        printf 'export RABBITMQ_MNESIA_BASE=%q RABBITMQ_LOG_BASE=%q\n' "$dir/mnesia" "$dir/log"
        printf 'export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=%q\n' '-kernel inet_dist_use_interface {127,0,0,1}'
    } >"$dir/env.sh"
    printf '#!/bin/sh\n. %q\nexec %q/rabbitmqctl -n %q "$@"\n' \
        "$dir/env.sh" "$BX_RABBITMQ_LIB" "$node" >"$dir/rabbitmqctl"
    chmod +x "$dir/rabbitmqctl"
    # Not -detached: the rabbitmq-server script stays the process we signal,
    # and it turns TERM into an orderly broker stop.
    bx_start "$run" rabbitmq sh -c '. "$1" && exec "$2/rabbitmq-server"' _ "$dir/env.sh" "$BX_RABBITMQ_LIB"
    bx_log "starting RabbitMQ on 127.0.0.1:$port (data and logs in $dir)"
    bx_wait_ready "$run" rabbitmq "$BX_READY_TIMEOUT" bx_answers "$host" "$port"
}

bx_redis_ping() { [[ $(redis-cli -h "$1" -p "$2" ping 2>/dev/null) == PONG ]]; }

bx_ensure_redis() {
    local run=$1 url=$2 host port
    read -r host port < <(bx_url_hostport "$url" 6379)
    bx_answers "$host" "$port" && return 0
    bx_is_local "$host" || { bx_log "error: nothing answers at $host:$port (BX_REDIS_URL) and it is not on this machine"; return 1; }
    command -v redis-server >/dev/null || { bx_log "error: redis-server is not installed: run make deps"; return 1; }
    mkdir -p "$run/redis"
    bx_start "$run" redis redis-server --bind 127.0.0.1 --port "$port" \
        --dir "$run/redis" --daemonize no --logfile ''
    bx_log "starting Redis on 127.0.0.1:$port (data in $run/redis)"
    bx_wait_ready "$run" redis "$BX_READY_TIMEOUT" bx_redis_ping 127.0.0.1 "$port"
}

bx_ensure_mongo() {
    local run=$1 url=$2 host port ferret=$BX_ROOT/.deps/bin/ferretdb
    read -r host port < <(bx_url_hostport "$url" 27017)
    bx_answers "$host" "$port" && return 0
    bx_is_local "$host" || { bx_log "error: nothing answers at $host:$port (BX_MONGO_URL) and it is not on this machine"; return 1; }
    [[ -x $ferret ]] || { bx_log "error: $ferret is missing: run make deps"; return 1; }
    mkdir -p "$run/mongo"
    FERRETDB_TELEMETRY=disable bx_start "$run" mongo "$ferret" \
        -listen-addr "127.0.0.1:$port" -sqlite-dir "$run/mongo"
    bx_log "starting FerretDB (MongoDB) on 127.0.0.1:$port (data in $run/mongo)"
    bx_wait_ready "$run" mongo "$BX_READY_TIMEOUT" bx_answers "$host" "$port"
}

# ---------------------------------------------------------------- cleanup
# bx_purge_namespace NS [RUN]: delete NS's RabbitMQ queues and exchanges and
# its Redis keys (what a test leaves in shared servers). Best effort: warns
# and goes on. Names match NS followed by a non-alphanumeric separator, so
# namespace "bx" never touches "bx2.jobs". MongoDB databases are left alone.
bx_purge_namespace() {
    local ns=$1 run=${2:-} amqp=${BX_AMQP_URL:-$BX_DEFAULT_AMQP_URL} redis=${BX_REDIS_URL:-$BX_DEFAULT_REDIS_URL}
    [[ $ns =~ ^[A-Za-z0-9_.-]+$ ]] || { bx_log "purge: refusing odd namespace '$ns'"; return 1; }
    local re="^${ns//./\\.}([^A-Za-z0-9]|\$)"

    # Redis first: it answers fast and holds the most. One started for RUN
    # holds nothing else, and its data goes with RUN.
    if [[ -n $run && -d $run/redis ]]; then
        :
    elif command -v redis-cli >/dev/null; then
        redis-cli -u "$redis" --scan --pattern "${ns}[^a-zA-Z0-9]*" 2>/dev/null |
            xargs -r -d '\n' -n 200 redis-cli -u "$redis" DEL >/dev/null 2>&1 ||
            bx_log "purge: could not delete Redis keys of $ns"
    fi

    # RabbitMQ: rabbitmqctl lists (the AMQP protocol cannot), Debian's py-amqp
    # (a dependency of python3-celery) deletes, exchanges included, which
    # rabbitmqctl cannot.
    local ctl=${BX_RABBITMQCTL:-}
    if [[ -z $ctl && -n $run && -x $run/rabbitmq/rabbitmqctl ]]; then
        bx_pidfile_pid "$run" rabbitmq >/dev/null || return 0   # its data goes with RUN
        ctl=$run/rabbitmq/rabbitmqctl
    fi
    [[ -n $ctl ]] || ctl=$(command -v rabbitmqctl || echo /usr/sbin/rabbitmqctl)
    local vhost
    vhost=$(/usr/bin/python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]).path; print(u.unquote(p[1:]) or "/")' "$amqp" 2>/dev/null) || vhost=/
    local -a queues exchanges
    mapfile -t queues < <(timeout 60 "$ctl" -q list_queues -p "$vhost" --no-table-headers name 2>/dev/null | grep -E "$re")
    mapfile -t exchanges < <(timeout 60 "$ctl" -q list_exchanges -p "$vhost" --no-table-headers name 2>/dev/null | grep -E "$re")
    (( ${#queues[@]} + ${#exchanges[@]} )) || return 0
    if ! /usr/bin/python3 - "$amqp" "${#queues[@]}" "${queues[@]}" "${exchanges[@]}" <<'EOF' 2>/dev/null; then
import sys, urllib.parse as u
import amqp
url = u.urlsplit(sys.argv[1]); nq = int(sys.argv[2]); names = sys.argv[3:]
conn = amqp.Connection(host="%s:%d" % (url.hostname or "127.0.0.1", url.port or 5672),
                       userid=u.unquote(url.username or "guest"),
                       password=u.unquote(url.password or "guest"),
                       virtual_host=u.unquote(url.path[1:]) or "/")
conn.connect()
ch = conn.channel()
for q in names[:nq]:
    ch.queue_delete(q)
for x in names[nq:]:
    ch.exchange_delete(x)
conn.close()
EOF
        local q
        for q in "${queues[@]}"; do timeout 60 "$ctl" -q delete_queue -p "$vhost" "$q" >/dev/null 2>&1 || true; done
        (( ${#exchanges[@]} )) && bx_log "purge: left RabbitMQ exchanges of $ns (no py-amqp)"
    fi
    return 0
}
