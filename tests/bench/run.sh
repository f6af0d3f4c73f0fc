#!/usr/bin/env bash
# make bench — bashexec's performance, each figure beside a baseline measured
# in the same run on the same machine (issue 6):
#
#   1. spawn ceiling  posix_spawn of `bash -c true`, stdout through a pipe
#                     (spawn_ceiling.c), 1 and 2 in flight; `sh` for information
#   2. Celery         Debian's python3-celery, same RabbitMQ and Redis,
#                     acks_late, prefetch 1, prefork x2 (celery_bench.py)
#   3. RabbitMQ raw   rabbitmq-c: confirm each, 1000 in flight, consume+ack (amqp_raw.c)
#   4. end to end     3000 `true` jobs through the HTTP API on one worker x2
#                     until all are recorded, and the CPU per job of every
#                     process (cpu_account.py); one job at a time (latency.c)
#   5. API            wrk on POST /v1/jobs and GET /v1/jobs/{id}
#   6. recorder       a backlog of result events -> MongoDB vs a raw libmongoc
#                     bulk insert (mongo_raw.c); and fed while it writes (info)
#   7. scale          `sleep 0.1` jobs on 1, 2, 4 workers x4
#   8. memory         idle RSS of each process; a worker under endless output
#
# Each figure is the median of BENCH_REPS (3) repetitions, with min and max.
# Every step runs under `timeout --foreground`, so that Ctrl-C reaches it.
# The table goes to stdout and build/bench/results.txt, the same as JSON to
# build/bench/results.json. A part that cannot run says "n/a (why)"; the
# others go on. Everything talks to 127.0.0.1 only, runs in a namespace of
# its own, is bounded in time and is stopped and purged at the end.
#
# Environment: BENCH_PARTS (which parts; default all), BENCH_REPS (3), BENCH_BUDGET_S (480: no part starts after
# that), BENCH_STRICT=1 (exit 1 when a target is missed or n/a),
# BX_AMQP_URL / BX_REDIS_URL (the servers to use; defaults as the stack's),
# BENCH_MONGO_URL (a MongoDB server to use; default: a FerretDB of our own,
# so that the recorder and the raw insert share a server that nothing else
# loads), BX_BIN_DIR (the binaries, default bin/).
set -uo pipefail

BX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=compose/lib.sh
. "$BX_ROOT/compose/lib.sh"
HERE=$BX_ROOT/tests/bench
OUT=$BX_ROOT/build/bench
RUN=$OUT/run
PY=/usr/bin/python3   # Debian's, with Debian's celery, amqp and redis
REPS=${BENCH_REPS:-3}
BUDGET_S=${BENCH_BUDGET_S:-480}
BIN=${BX_BIN_DIR:-$BX_ROOT/bin}
SPAWN_N=${BENCH_SPAWN_N:-2000}
E2E_N=${BENCH_E2E_N:-3000}
CELERY_N=${BENCH_CELERY_N:-2000}
LAT_N=${BENCH_LATENCY_N:-200}
REC_N=${BENCH_RECORDER_N:-5000}
MONGO_BATCH=${BENCH_MONGO_BATCH:-500}
WRK_S=${BENCH_WRK_S:-5}
SCALE_CONC=4
SCALE_PER_SLOT=40

[[ $REPS =~ ^[1-9][0-9]*$ ]] || bx_die "BENCH_REPS must be a positive number"
mkdir -p "$OUT"
rm -f "$OUT"/*.err "$OUT"/*.wrk "$OUT"/*.json "$OUT"/*.txt
SAMPLES=$OUT/samples.txt NOTES=$OUT/notes.txt META=$OUT/meta.txt
: >"$SAMPLES"; : >"$NOTES"; : >"$META"

say() { printf 'bench: %s\n' "$*" >&2; }
sample() { echo "$1 $2" >>"$SAMPLES"; }
meta() { echo "$1 $2" >>"$META"; }
# na PART REASON: why PART has no figures (the first reason given wins)
na() {
    grep -q "^$1 " "$NOTES" 2>/dev/null || echo "$1 $2" >>"$NOTES"
    say "$1: n/a ($2)"
}
# a number out of a JSON document, or empty
jnum() { jq -er "$1 // empty | numbers" <<<"$2" 2>/dev/null; }
budget_ok() {
    (( SECONDS < BUDGET_S )) && return 0
    na "$1" "the time budget of ${BUDGET_S}s was used up"
    return 1
}
now_ms() { date +%s%3N; }
# the last lines of a log, on one line, for an n/a reason
why() { tail -n "${2:-2}" "$1" 2>/dev/null | tr -s '\n\t' '  ' | cut -c1-200; }

# ------------------------------------------------------------- setup
# A previous run killed before its cleanup: stop what it left, by pid file.
if [[ -d $RUN/pids ]]; then
    say "stopping what a previous run left in $RUN"
    bx_stop_all "$RUN"
fi
rm -rf "$RUN"
mkdir -p "$RUN/pids" "$RUN/logs"

NS=bench_$(date +%H%M%S)_$$
export BX_NAMESPACE=$NS BX_RUN_DIR=$RUN
export BX_AMQP_URL=${BX_AMQP_URL:-$BX_DEFAULT_AMQP_URL}
export BX_REDIS_URL=${BX_REDIS_URL:-$BX_DEFAULT_REDIS_URL}
OWN_MONGO=1
if [[ -n ${BENCH_MONGO_URL:-} ]]; then
    export BX_MONGO_URL=$BENCH_MONGO_URL
    OWN_MONGO=0
else
    BX_MONGO_URL=mongodb://127.0.0.1:$(bx_free_port)/
    export BX_MONGO_URL
fi
API_PORT=$(bx_free_port)
export BX_API_LISTEN=127.0.0.1:$API_PORT
export BX_API_TOKENS_FILE=$RUN/api-tokens
export BX_API_URL=http://127.0.0.1:$API_PORT BX_API_TOKEN=$RUN/api-token
export BX_FOREGROUND=1 BX_BIN_DIR=$BIN
unset BX_QUEUES BX_SHELL
for u in "$BX_AMQP_URL" "$BX_REDIS_URL" "$BX_MONGO_URL"; do
    read -r h _ < <(bx_url_hostport "$u" 0)
    bx_is_local "$h" || bx_die "bench talks to 127.0.0.1 only, not $u"
done
SINK_QUEUE="$NS.jobs.bench_sink"
RMQ_QUEUE="$NS.rawbench"
CELERY_QUEUE="$NS.celery"
CELERY_IDS=$OUT/celery_ids.txt   # the tasks submitted, for cleanup
rm -f "$CELERY_IDS"
# a Redis database of its own for Celery's results (deleted by task id at the end)
read -r _redis_host _redis_port < <(bx_url_hostport "$BX_REDIS_URL" 6379)
export BENCH_CELERY_REDIS_URL=redis://$_redis_host:$_redis_port/${BENCH_CELERY_REDIS_DB:-14}
STACK_UP=0

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    trap - EXIT INT TERM
    say "cleaning up (namespace $NS)"
    local n
    local -a bx=()
    for n in "$RUN"/pids/*.pid; do
        [[ -e $n ]] || continue
        n=$(basename "$n" .pid)
        [[ $n == bx-* || $n == celery* ]] && bx+=("$n")
    done
    # the API first, so that nothing new comes in, then the rest
    bx_stop "$RUN" bx-api
    (( ${#bx[@]} )) && bx_stop "$RUN" "${bx[@]}"
    "$PY" "$HERE/amqp_admin.py" "$BX_AMQP_URL" delete "$SINK_QUEUE" "$RMQ_QUEUE" >/dev/null 2>&1 || true
    BENCH_CELERY_QUEUE=$CELERY_QUEUE BENCH_AMQP_URL=$(celery_amqp_url) BENCH_CELERY_IDS=$CELERY_IDS \
        timeout --foreground 30 "$PY" "$HERE/celery_bench.py" cleanup >/dev/null 2>&1 || true
    # shellcheck disable=SC2016  # expanded by the inner shell
    timeout --foreground 120 bash -c 'BX_ROOT=$1; . "$1/compose/lib.sh"; bx_purge_namespace "$2" "$3"' _ \
        "$BX_ROOT" "$NS" "$RUN" >/dev/null 2>&1 || say "purging $NS did not finish"
    if (( !OWN_MONGO )) && [[ -x $OUT/mongo_raw ]]; then
        timeout --foreground 30 "$OUT/mongo_raw" dropdb -m "$BX_MONGO_URL" -d "$NS" >/dev/null 2>&1 || true
    fi
    # then the servers this run started (none when they were already up)
    bx_stop_all "$RUN"
    rm -rf "$RUN/mongo" "$RUN/redis" "$RUN/rabbitmq" "$OUT"/docs.*.jsonl
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# kombu writes the default vhost "/" as a path of "//"
celery_amqp_url() {
    local u=$BX_AMQP_URL
    [[ $u =~ ^amqp://[^/]+/?$ ]] && u=${u%/}//
    echo "$u"
}

# ------------------------------------------------------------- build
# The programs of the baselines are built here, not by the Makefile: they
# are not part of bashexec, and one that cannot build takes only its part.
CFLAGS_BENCH="-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes"
build() {   # build NAME PKG...
    local name=$1; shift
    local flags=
    if (( $# )) && ! flags=$(pkg-config --cflags --libs "$@" 2>&1); then
        echo "pkg-config: $flags" >"$OUT/$name.build.log"
        return 1
    fi
    # shellcheck disable=SC2086
    ${CC:-cc} $CFLAGS_BENCH -o "$OUT/$name" "$HERE/$name.c" $flags >"$OUT/$name.build.log" 2>&1
}
for p in "spawn_ceiling" "amqp_raw librabbitmq" "mongo_raw libmongoc-1.0" "latency libcurl jansson"; do
    # shellcheck disable=SC2086
    set -- $p
    rm -f "$OUT/$1"
    build "$@" || say "cannot build $1: $(why "$OUT/$1.build.log" 3)"
done

meta date "$(date -u +%FT%TZ)"
meta host_cpus "$(nproc)"
meta cpu_model "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
meta kernel "$(uname -r)"
meta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta namespace "$NS"
meta reps "$REPS"
meta rabbitmq "$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null)"
meta redis "$(dpkg-query -W -f='${Version}' redis-server 2>/dev/null)"
meta celery "$(dpkg-query -W -f='${Version}' python3-celery 2>/dev/null)"
read -r load1 _ </proc/loadavg
if awk -v l="$load1" -v c="$(nproc)" 'BEGIN { exit !(l > c / 2) }'; then
    say "warning: load average $load1 on $(nproc) CPUs: other work on this machine skews every figure"
fi

# ------------------------------------------------------------- services
say "services: RabbitMQ $BX_AMQP_URL, Redis $BX_REDIS_URL, MongoDB $BX_MONGO_URL"
SERVICES_OK=1
bx_ensure_rabbitmq "$RUN" "$BX_AMQP_URL" || { SERVICES_OK=0; na rabbitmq "RabbitMQ does not answer at $BX_AMQP_URL"; }
bx_ensure_redis "$RUN" "$BX_REDIS_URL" || { SERVICES_OK=0; na celery "Redis does not answer at $BX_REDIS_URL"; }
MONGO_OK=1
bx_ensure_mongo "$RUN" "$BX_MONGO_URL" || { MONGO_OK=0; na mongo_raw "no MongoDB server at $BX_MONGO_URL"; }

# ------------------------------------------------------------- 1. spawn ceiling
part_spawn() {
    [[ -x $OUT/spawn_ceiling ]] || { na spawn "spawn_ceiling did not build"; return; }
    local r sh j out
    for (( r = 1; r <= REPS; r++ )); do
        budget_ok spawn || return
        for sh in bash sh; do
            for j in 1 2; do
                if ! out=$(timeout --foreground 120 "$OUT/spawn_ceiling" -s "/bin/$sh" -j "$j" -n "$SPAWN_N" 2>"$OUT/spawn.err"); then
                    na spawn "spawn_ceiling failed: $(why "$OUT/spawn.err")"
                    continue
                fi
                sample "spawn.$sh.$j.rate" "$(jnum .jobs_per_s "$out")"
                [[ $j == 1 ]] && sample "spawn.$sh.1.p50_ms" "$(jnum .latency_ms.p50 "$out")"
            done
        done
        say "spawn ceiling, rep $r: done"
    done
}

# ------------------------------------------------------------- 3. RabbitMQ raw
part_rabbitmq() {
    [[ -x $OUT/amqp_raw ]] || { na rabbitmq "amqp_raw did not build (librabbitmq-dev?)"; return; }
    local r out
    for (( r = 1; r <= REPS; r++ )); do
        budget_ok rabbitmq || return
        if ! out=$(timeout --foreground 180 "$OUT/amqp_raw" -u "$BX_AMQP_URL" -q "$RMQ_QUEUE" -n 3000 -N 20000 \
                -w 1000 -p 100 -s 300 2>"$OUT/amqp_raw.err"); then
            na rabbitmq "amqp_raw failed: $(why "$OUT/amqp_raw.err")"
            return
        fi
        sample rmq.confirm_each "$(jnum .confirm_each.per_s "$out")"
        sample rmq.confirm_window "$(jnum .confirm_window.per_s "$out")"
        sample rmq.consume "$(jnum .consume_ack.per_s "$out")"
        say "RabbitMQ raw, rep $r: $out"
        # wrk keeps 64 requests in flight: at most 64 confirms outstanding
        if out=$(timeout --foreground 180 "$OUT/amqp_raw" -u "$BX_AMQP_URL" -q "$RMQ_QUEUE" -n 1 -N 20000 \
                -w 64 -p 100 -s 300 2>"$OUT/amqp_raw.err"); then
            sample rmq.confirm_window64 "$(jnum .confirm_window.per_s "$out")"
        fi
    done
}

# ------------------------------------------------------------- 2. Celery
part_celery() {
    if ! "$PY" -c 'import celery, redis, amqp' 2>/dev/null; then
        na celery "python3-celery or python3-redis is not installed (make deps)"
        return
    fi
    budget_ok celery || return
    export BENCH_CELERY_QUEUE=$CELERY_QUEUE BENCH_AMQP_URL BENCH_CELERY_IDS=$CELERY_IDS
    BENCH_AMQP_URL=$(celery_amqp_url)
    PYTHONPATH=$HERE bx_start "$RUN" celery-worker "$PY" -m celery -A celery_bench worker \
        --pool prefork --concurrency 2 --without-gossip --without-mingle --without-heartbeat \
        --loglevel WARNING
    local r out
    for (( r = 1; r <= REPS; r++ )); do
        budget_ok celery || break
        if ! out=$(cd "$HERE" && timeout --foreground 300 "$PY" celery_bench.py drive -n "$CELERY_N" -l "$LAT_N" 2>"$OUT/celery.err"); then
            na celery "the Celery driver failed: $(why "$OUT/celery.err")"
            break
        fi
        sample celery.e2e_rate "$(jnum .e2e_per_s "$out")"
        sample celery.p50_ms "$(jnum .latency_p50_ms "$out")"
        say "Celery, rep $r: $out"
    done
    bx_stop "$RUN" celery-worker
    (cd "$HERE" && timeout --foreground 30 "$PY" celery_bench.py cleanup) || say "could not delete Celery's queue $CELERY_QUEUE"
}

# ------------------------------------------------------------- the stack
STACK_WHY=
stack_up() {
    local n
    for n in bx-api bx-worker bx-recorder bx; do
        [[ -x $BIN/$n ]] || { STACK_WHY="$BIN/$n is not built"; return 1; }
    done
    (( SERVICES_OK && MONGO_OK )) || { STACK_WHY="a service is missing"; return 1; }
    say "starting the stack: namespace $NS, API $BX_API_URL, 1 worker x2"
    if ! BX_WORKERS=1 BX_CONCURRENCY=2 timeout --foreground 120 "$BX_ROOT/compose/stack.sh" up \
            >"$OUT/stack-up.log" 2>&1; then
        STACK_WHY="compose/stack.sh up failed: $(why "$OUT/stack-up.log" 3)"
        return 1
    fi
    STACK_UP=1
}
need_stack() {   # need_stack PART
    (( STACK_UP )) && return 0
    na "$1" "${STACK_WHY:-the stack is not up}"
    return 1
}
pidof_bx() { bx_pidfile_pid "$RUN" "$1"; }
# the pid listening on 127.0.0.1's port of URL (RabbitMQ, Redis, MongoDB), or nothing
pidof_listener() {
    local host port
    read -r host port < <(bx_url_hostport "$1" "$2")
    ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}
# cpu_snap FILE: CPU used so far by each process of the pipeline and the machine
cpu_snap() {
    local n args=()
    for n in bx-api bx-worker-1 bx-recorder; do args+=("$n=$(pidof_bx "$n")"); done
    args+=("rabbitmq=$(pidof_listener "$BX_AMQP_URL" 5672)" "redis=$(pidof_listener "$BX_REDIS_URL" 6379)"
           "mongodb=$(pidof_listener "$BX_MONGO_URL" 27017)")
    $PY "$HERE/cpu_account.py" snap "$1" "${args[@]}"
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# POST one job (JSON body) and print its id
submit_job() {
    curl -fsS --max-time 10 -H "Authorization: Bearer $(cat "$RUN/api-token")" \
        -H 'Content-Type: application/json' -d "$1" "$BX_API_URL/v1/jobs" | jq -er .id
}
# the state of a job, or empty
job_state() {
    curl -fsS --max-time 10 -H "Authorization: Bearer $(cat "$RUN/api-token")" \
        "$BX_API_URL/v1/jobs/$1" 2>/dev/null | jq -r '.state // empty'
}

# ------------------------------------------------------------- 6. recorder
part_recorder() {
    [[ -x $OUT/mongo_raw ]] || { na mongo_raw "mongo_raw did not build (libmongoc-dev?)"; na recorder "mongo_raw did not build"; return; }
    (( MONGO_OK )) || { na recorder "no MongoDB server"; return; }
    local r tag docs out feed start end rec_ok=1
    need_stack recorder || rec_ok=0
    [[ -x $OUT/amqp_raw ]] || { (( rec_ok )) && na recorder "amqp_raw did not build"; rec_ok=0; }
    for (( r = 1; r <= REPS; r++ )); do
        budget_ok mongo_raw || return
        tag=${NS}_rec$r
        docs=$OUT/docs.$r.jsonl
        "$OUT/mongo_raw" gen -n "$REC_N" -t "$tag" -o "$docs" >/dev/null || { na mongo_raw "cannot write $docs"; return; }
        if out=$(timeout --foreground 120 "$OUT/mongo_raw" raw -m "$BX_MONGO_URL" -d "$NS" -f "$docs" -b "$MONGO_BATCH" 2>"$OUT/mongo_raw.err"); then
            sample mongo.raw_rate "$(jnum .per_s "$out")"
            say "MongoDB raw insert, rep $r: $out"
        else
            na mongo_raw "the raw insert failed: $(why "$OUT/mongo_raw.err")"
        fi
        (( rec_ok )) || continue
        # The waiter asks MongoDB nothing while the recorder writes (even a
        # find by _id every 5 ms made FerretDB several times slower): it
        # reads the recorder's log until the batches written add up, then
        # counts them all once in MongoDB.
        timeout --foreground 150 "$OUT/mongo_raw" wait -m "$BX_MONGO_URL" -d "$NS" -t "$tag" \
            -L "$RUN/logs/bx-recorder.log" -n "$REC_N" -s 120 -S 15 >"$OUT/rec_wait.json" 2>"$OUT/rec_wait.err" &
        local waiter=$!
        if ! feed=$(timeout --foreground 120 "$OUT/amqp_raw" -u "$BX_AMQP_URL" -x "$NS.events" -f "$docs" -w 1000 2>"$OUT/feed.err"); then
            na recorder "publishing the events failed: $(why "$OUT/feed.err")"
            kill "$waiter" 2>/dev/null; wait "$waiter" 2>/dev/null
            rec_ok=0
            continue
        fi
        if ! wait "$waiter"; then
            na recorder "not all $REC_N events reached MongoDB: $(why "$OUT/rec_wait.err")"
            rec_ok=0
            continue
        fi
        start=$(jnum .start_wall_ms "$feed")
        end=$(jnum .end_wall_ms "$(cat "$OUT/rec_wait.json")")
        if [[ -n $start && -n $end ]] && (( end > start )); then
            sample rec.live_rate "$(awk -v n="$REC_N" -v ms=$(( end - start )) 'BEGIN { printf "%.1f", n * 1000 / ms }')"
            say "recorder fed while it writes, rep $r: $REC_N events in $(( end - start )) ms"
        fi
        recorder_drain "$r" || rec_ok=0
    done
}

# The figure beside the raw insert: the raw insert has its documents ready
# in memory, so the recorder gets its events ready in its queue. They are
# published while it is stopped; the clock runs from its connecting to
# RabbitMQ (its log says when) until its log says it wrote them all. Fed
# while it writes (above), the publisher and RabbitMQ's side of the
# publishing take their share of the same two cores.
recorder_drain() {
    local r=$1 tag=${NS}_drain$1 docs=$OUT/docs.drain.jsonl log=$RUN/logs/bx-recorder.log waiter line start end
    "$OUT/mongo_raw" gen -n "$REC_N" -t "$tag" -o "$docs" >/dev/null || { na recorder "cannot write $docs"; return 1; }
    bx_stop "$RUN" bx-recorder
    if ! timeout --foreground 120 "$OUT/amqp_raw" -u "$BX_AMQP_URL" -x "$NS.events" -f "$docs" -w 1000 \
            >/dev/null 2>"$OUT/feed.err"; then
        na recorder "publishing the backlog failed: $(why "$OUT/feed.err")"
        bx_start "$RUN" bx-recorder "$BIN/bx-recorder"
        return 1
    fi
    timeout --foreground 150 "$OUT/mongo_raw" wait -m "$BX_MONGO_URL" -d "$NS" -t "$tag" \
        -L "$log" -n "$REC_N" -s 120 -S 15 >"$OUT/rec_drain.json" 2>"$OUT/rec_drain.err" &
    waiter=$!
    sleep 0.2   # the waiter is at the end of the log
    bx_start "$RUN" bx-recorder "$BIN/bx-recorder"
    if ! wait "$waiter"; then
        na recorder "the backlog did not reach MongoDB: $(why "$OUT/rec_drain.err")"
        return 1
    fi
    # "2026-11-23T18:12:23.453Z bx-recorder[16095] level=info event=amqp_connected ..."
    line=$(grep 'event=amqp_connected' "$log" | tail -n 1)
    start=$(date -d "${line%% *}" +%s%3N 2>/dev/null)
    end=$(jnum .end_wall_ms "$(cat "$OUT/rec_drain.json")")
    if [[ -z $start || -z $end ]] || (( end <= start )); then
        na recorder "no start or end time in the recorder's log"
        return 1
    fi
    sample rec.rate "$(awk -v n="$REC_N" -v ms=$(( end - start )) 'BEGIN { printf "%.1f", n * 1000 / ms }')"
    say "recorder draining a backlog, rep $r: $REC_N events in $(( end - start )) ms"
}

# ------------------------------------------------------------- 4. end to end
part_e2e() {
    need_stack e2e || return
    [[ -x $OUT/mongo_raw ]] || { na e2e "mongo_raw did not build"; return; }
    local r out t0 run_id done_json end ok waiter
    # A fresh stack, right after the Celery part: the first run was up to
    # 40% slower (its submissions at a fifth of the rate), so some jobs go
    # through first, unmeasured, as Celery's driver does too.
    timeout --foreground 60 "$BIN/bx" load -n 300 -c 32 --wait --wait-timeout 50 true >/dev/null 2>&1 ||
        say "e2e: the warm-up load failed"
    for (( r = 1; r <= REPS; r++ )); do
        budget_ok e2e || return
        # Nothing polls while the jobs run (a client asking for the status
        # of each job took more CPU than the pipeline it watched): the
        # waiter reads the recorder's log until it wrote every job's one
        # result, then counts them once in MongoDB.
        run_id=${NS}_e2e$r
        rm -f "$OUT/e2e.ready"
        timeout --foreground 150 "$OUT/mongo_raw" wait -m "$BX_MONGO_URL" -d "$NS" -k bx_load -t "$run_id" \
            -L "$RUN/logs/bx-recorder.log" -R "$OUT/e2e.ready" -n "$E2E_N" -s 120 -S 15 \
            >"$OUT/e2e_wait.json" 2>"$OUT/e2e_wait.err" &
        waiter=$!
        sleep 0.2   # the waiter is at the end of the log before the first job ends
        cpu_snap "$OUT/cpu.before.json"
        t0=$(now_ms)
        if ! out=$(timeout --foreground 130 "$BIN/bx" load -n "$E2E_N" -c 32 --run-id "$run_id" --json true 2>"$OUT/e2e.err"); then
            na e2e "bx load failed: $(why "$OUT/e2e.err")"
            kill "$waiter" 2>/dev/null; wait "$waiter" 2>/dev/null
            return
        fi
        # the CPU is counted until the recorder wrote the last job, before
        # the waiter counts them in MongoDB (a scan of the whole database)
        while [[ ! -e $OUT/e2e.ready ]] && kill -0 "$waiter" 2>/dev/null; do sleep 0.01; done
        cpu_snap "$OUT/cpu.after.json"
        rm -f "$OUT/e2e.ready"
        if ! wait "$waiter"; then
            na e2e "not every job was recorded in MongoDB: $(why "$OUT/e2e_wait.err")"
            return
        fi
        done_json=$(cat "$OUT/e2e_wait.json")
        end=$(jnum .end_wall_ms "$done_json")
        ok=$(jnum .succeeded "$done_json")
        if [[ $ok != "$E2E_N" ]]; then
            na e2e "only $ok of $E2E_N jobs succeeded"
            return
        fi
        sample bx.e2e_rate "$(awk -v n="$E2E_N" -v ms=$(( end - t0 )) 'BEGIN { printf "%.1f", n * 1000 / ms }')"
        say "end to end, rep $r: $E2E_N jobs recorded in $(( end - t0 )) ms; bx load: $out"
        # where the CPU went
        $PY "$HERE/cpu_account.py" diff "$OUT/cpu.before.json" "$OUT/cpu.after.json" "$E2E_N" \
            >"$OUT/cpu_per_job.txt" 2>/dev/null && sed "s/^/bench: cpu, rep $r: /" "$OUT/cpu_per_job.txt" >&2
    done
}

part_latency() {
    need_stack latency || return
    [[ -x $OUT/latency ]] || { na latency "latency did not build (libcurl, jansson)"; return; }
    # The figure polls GET /v1/jobs/{id} every 200 us: it depends on nothing
    # but the pipeline. Following the job over SSE is what a client would
    # do, and is shown beside it, on fewer jobs.
    local r out sse_ok=1
    for (( r = 1; r <= REPS; r++ )); do
        budget_ok latency || return
        if ! out=$(timeout --foreground 120 "$OUT/latency" -u "$BX_API_URL" -T "$RUN/api-token" -m poll -n "$LAT_N" -w 10 2>"$OUT/latency.err"); then
            na latency "the latency client failed: $(why "$OUT/latency.err")"
            return
        fi
        sample bx.p50_ms "$(jnum .p50_ms "$out")"
        [[ -n $(jnum .server_p50_ms "$out") ]] && sample bx.server_p50_ms "$(jnum .server_p50_ms "$out")"
        say "one at a time, rep $r: $out"
        (( sse_ok )) || continue
        if out=$(timeout --foreground 60 "$OUT/latency" -u "$BX_API_URL" -T "$RUN/api-token" -m sse -n 50 -w 3 2>"$OUT/latency_sse.err"); then
            sample bx.sse_p50_ms "$(jnum .p50_ms "$out")"
            say "one at a time over SSE, rep $r: $out"
        else
            na sse "following a job over SSE failed: $(why "$OUT/latency_sse.err")"
            sse_ok=0
        fi
    done
}

# ------------------------------------------------------------- 5. API under wrk
wrk_rate() {   # wrk_rate NAME SCRIPT URL: prints requests/s, or fails with the reason in OUT/NAME.wrk
    local name=$1 script=$2 url=$3 log=$OUT/$1.wrk
    BENCH_TOKEN=$(cat "$RUN/api-token") timeout --foreground $(( WRK_S + 30 )) \
        wrk -t 2 -c 64 -d "${WRK_S}s" --timeout 5s -s "$script" "$url" >"$log" 2>&1 || return 1
    local total bad errs rate
    total=$(awk '/requests in/ { print $1 }' "$log")
    bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$log")
    # "Socket errors: connect 0, read 0, write 0, timeout --foreground 12"
    errs=$(awk -F'[ ,]+' '/Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) n += $i; print n }' "$log")
    rate=$(awk '/^Requests\/sec:/ { print $2 }' "$log")
    [[ -n $rate && -n $total ]] || return 1
    if (( ${bad:-0} * 100 > total )); then
        echo "${bad} of ${total} answers were not 2xx" >>"$log"
        return 1
    fi
    if (( ${errs:-0} * 100 > total )); then
        echo "${errs} socket errors or timeouts in ${total} requests" >>"$log"
        return 1
    fi
    echo "$rate"
}
part_api() {
    need_stack api || return
    command -v wrk >/dev/null || { na api "wrk is not installed (apt-get install wrk)"; return; }
    local id r rate depth
    if ! id=$(submit_job '{"command":"true"}' 2>"$OUT/api.err"); then
        na api "cannot submit a job: $(why "$OUT/api.err")"
        return
    fi
    for (( r = 1; r <= REPS; r++ )); do
        budget_ok api || break
        if rate=$(wrk_rate post "$HERE/wrk_post.lua" "$BX_API_URL/v1/jobs"); then
            sample api.post_rate "$rate"
            # the API declares the queue of a job; every 202 must be a message in it
            depth=$("$PY" "$HERE/amqp_admin.py" "$BX_AMQP_URL" depth "$SINK_QUEUE" 2>/dev/null)
            meta "api_post_rep$r" "$(awk '/requests in/ { print $1 }' "$OUT/post.wrk") requests, $SINK_QUEUE holds ${depth:-?}"
            # emptied, not deleted: the API declared it once and publishes on
            "$PY" "$HERE/amqp_admin.py" "$BX_AMQP_URL" purge "$SINK_QUEUE" >/dev/null 2>&1
        else
            na api "wrk POST: $(why "$OUT/post.wrk" 1)"
        fi
        if rate=$(wrk_rate get "$HERE/wrk_get.lua" "$BX_API_URL/v1/jobs/$id"); then
            sample api.get_rate "$rate"
        else
            na api "wrk GET: $(why "$OUT/get.wrk" 1)"
        fi
        say "API, rep $r: POST $(awk '/^Requests\/sec:/ { print $2 }' "$OUT/post.wrk")/s, GET $(awk '/^Requests\/sec:/ { print $2 }' "$OUT/get.wrk")/s"
    done
    "$PY" "$HERE/amqp_admin.py" "$BX_AMQP_URL" delete "$SINK_QUEUE" >/dev/null 2>&1 ||
        say "could not delete $SINK_QUEUE"
}

# ------------------------------------------------------------- 8. memory
part_memory() {
    need_stack memory || return
    budget_ok memory || return
    local n pid r kb
    sleep 2   # idle: whatever the earlier parts started has settled
    for (( r = 1; r <= REPS; r++ )); do
        for n in bx-api bx-recorder bx-worker-1; do
            pid=$(pidof_bx "$n") || { na memory "$n is not running"; return; }
            kb=$(rss_kb "$pid")
            sample "mem.${n%-1}" "$(awk -v k="$kb" 'BEGIN { printf "%.2f", k / 1024 }')"
        done
        sleep 0.5
    done
    # A worker under a command that prints without end (`yes`, ended by the
    # job's own 4 s timeout): its RSS from 1 s into the job (the output
    # buffers are full by then) until 3.5 s must stay flat. The peak while
    # the result is built and the RSS after are kept in the meta data.
    local wpid id t0 start_kb max_kb peak_kb kb state
    wpid=$(pidof_bx bx-worker-1) || { na memory "bx-worker-1 is not running"; return; }
    for (( r = 1; r <= REPS; r++ )); do
        budget_ok memory || return
        meta "mem_worker_idle_kb_rep$r" "$(rss_kb "$wpid")"
        t0=$(now_ms)
        if ! id=$(submit_job '{"command":"yes","timeout_s":4}' 2>"$OUT/mem.err"); then
            na memory "cannot submit the job: $(why "$OUT/mem.err")"
            return
        fi
        sleep 1
        start_kb=$(rss_kb "$wpid"); max_kb=$start_kb
        while (( $(now_ms) - t0 < 3500 )); do
            kb=$(rss_kb "$wpid")
            (( kb > max_kb )) && max_kb=$kb
            sleep 0.1
        done
        if [[ $(job_state "$id") != running ]]; then
            na memory "the yes job was not running 3.5 s after it was submitted"
            return
        fi
        peak_kb=$max_kb
        for (( t = 0; t < 100; t++ )); do
            kb=$(rss_kb "$wpid")
            (( kb > peak_kb )) && peak_kb=$kb
            state=$(job_state "$id")
            [[ -n $state && $state != queued && $state != running ]] && break
            sleep 0.1
        done
        [[ -n $state && $state != queued && $state != running ]] || { na memory "the yes job did not end (state ${state:-unknown})"; return; }
        sample mem.yes_start "$(awk -v k="$start_kb" 'BEGIN { printf "%.2f", k / 1024 }')"
        sample mem.yes_growth "$(awk -v a="$start_kb" -v b="$max_kb" 'BEGIN { printf "%.3f", (b - a) / 1024 }')"
        sleep 0.5
        meta "mem_worker_yes_rep$r" "RSS kB: ${start_kb} at 1 s, ${max_kb} max until 3.5 s, ${peak_kb} peak until the end ($state), $(rss_kb "$wpid") after"
        say "memory, rep $r: worker RSS ${start_kb} kB at 1 s, max ${max_kb} kB until 3.5 s, peak ${peak_kb} kB; the job ended $state"
    done
}

# ------------------------------------------------------------- 7. scale
part_scale() {
    need_stack scale || return
    budget_ok scale || return
    bx_stop "$RUN" bx-worker-1
    local w i r out n
    for w in 1 2 4; do
        budget_ok scale || return
        for (( i = 1; i <= w; i++ )); do
            BX_CONCURRENCY=$SCALE_CONC BX_WORKER_ID=$(uname -n)-s$w-$i \
                bx_start "$RUN" "bx-worker-$i" "$BIN/bx-worker"
        done
        # connected and consuming; the first jobs of a fresh worker are not measured
        sleep 1
        timeout --foreground 60 "$BIN/bx" load -n $(( 2 * SCALE_CONC * w )) -c 32 --wait --wait-timeout 30 true \
            >/dev/null 2>&1 || say "scale: the warm-up load failed"
        n=$(( SCALE_PER_SLOT * SCALE_CONC * w ))
        for (( r = 1; r <= REPS; r++ )); do
            if ! out=$(timeout --foreground 120 "$BIN/bx" load -n "$n" -c 32 --wait --wait-timeout 90 --json 'sleep 0.1' 2>"$OUT/scale.err"); then
                na scale "bx load failed with $w worker(s): $(why "$OUT/scale.err")"
                break
            fi
            if [[ $(jq -r '.states.succeeded // 0' <<<"$out") != "$n" ]]; then
                na scale "not all jobs succeeded with $w worker(s): $out"
                break
            fi
            sample "scale.$w" "$(jnum .e2e_per_s "$out")"
            say "scale, $w worker(s) x$SCALE_CONC, rep $r: $(jnum .e2e_per_s "$out") jobs/s"
        done
        local -a names=()
        for (( i = 1; i <= w; i++ )); do names+=("bx-worker-$i"); done
        bx_stop "$RUN" "${names[@]}"
    done
}

# ------------------------------------------------------------- run
# BENCH_PARTS: the parts to run (default all), e.g. "rabbitmq recorder api memory"
PARTS=" ${BENCH_PARTS:-spawn rabbitmq celery e2e latency recorder api memory scale} "
want() { [[ $PARTS == *" $1 "* ]]; }
want spawn && part_spawn
(( SERVICES_OK )) && want rabbitmq && part_rabbitmq
(( SERVICES_OK )) && want celery && part_celery
stack_up || say "the stack is not up: $STACK_WHY"
if (( STACK_UP )); then
    for n in bx-api bx-recorder bx-worker-1; do
        pid=$(pidof_bx "$n") &&
            sample "mem.fresh.${n%-1}" "$(awk -v k="$(rss_kb "$pid")" 'BEGIN { printf "%.2f", k / 1024 }')"
    done
fi
want e2e && part_e2e
want latency && part_latency
want recorder && part_recorder
want api && part_api
want memory && part_memory
want scale && part_scale
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta seconds "$SECONDS"

# ------------------------------------------------------------- report
"$PY" "$HERE/report.py" "$SAMPLES" "$NOTES" "$META" "$OUT/results.json" | tee "$OUT/results.txt"
if [[ -s $OUT/cpu_per_job.txt ]]; then
    { echo; echo "where the CPU of the last end-to-end run went (cpu_account.py):"; cat "$OUT/cpu_per_job.txt"; } |
        tee -a "$OUT/results.txt"
fi
say "done in ${SECONDS}s"
if [[ ${BENCH_STRICT:-0} == 1 ]] && jq -e '[.results[] | select(.target != null and .pass != true)] | length > 0' \
        "$OUT/results.json" >/dev/null; then
    exit 1
fi
exit 0
