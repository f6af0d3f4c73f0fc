#!/usr/bin/env bash
# The Compose deployment, checked without a Docker engine (there is none on
# the machines that run the tests):
#
#   - compose/Dockerfile: multi-stage on debian:bookworm-slim; its build
#     stage installs only packages of scripts/deps.sh and builds with `make
#     all`, the target `make test` builds, not a compiler line of its own;
#     no RUN fetches anything but Debian packages. Its build stage is then
#     replayed here: its COPYs into an empty directory, its make line in a
#     clean environment, and the binaries the runtime stage copies must come
#     out, linking only libraries of the packages the runtime stage installs.
#     The runtime stage runs as a user that is not root.
#   - compose/docker-compose.yml: `docker-compose config` accepts it; every
#     service has a health check, the bx services wait for healthy
#     dependencies, the worker service can be scaled (no container_name,
#     ports, hostname or BX_WORKER_ID), data lives in named volumes, and
#     every BX_* variable it sets is one the processes know.
#
# It needs no services and starts none.
set -euo pipefail

BX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DOCKERFILE=$BX_ROOT/compose/Dockerfile
COMPOSE=$BX_ROOT/compose/docker-compose.yml
ENTRYPOINT=$BX_ROOT/compose/entrypoint.sh
PYTHON=/usr/bin/python3

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
note() { printf '%s\n' "$*" >&2; }

TMP=$(mktemp -d "${BX_TEST_TMPDIR:-${TMPDIR:-/tmp}}/compose.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

[[ -f $DOCKERFILE ]] || fail "no $DOCKERFILE"
[[ -f $COMPOSE ]] || fail "no $COMPOSE"

# ------------------------------------------------------------- Dockerfile
# One logical instruction per line, "STAGE<TAB>INSTRUCTION<TAB>ARGUMENTS":
# continuation lines joined, comments and blank lines dropped, STAGE counted
# from 1 at each FROM.
awk '
    /^[[:space:]]*#/ && cont == "" { next }
    {
        line = cont $0
        if (line ~ /\\[[:space:]]*$/) { sub(/\\[[:space:]]*$/, " ", line); cont = line; next }
        cont = ""
        if (line ~ /^[[:space:]]*$/) next
        sub(/^[[:space:]]+/, "", line)
        instr = toupper(line); sub(/[[:space:]].*/, "", instr)
        args = line; sub(/^[^[:space:]]+[[:space:]]*/, "", args)
        gsub(/[[:space:]]+/, " ", args)
        if (instr == "FROM") stage++
        printf "%d\t%s\t%s\n", stage, instr, args
    }' "$DOCKERFILE" >"$TMP/instructions"

stages=$(awk -F'\t' '$2 == "FROM"' "$TMP/instructions" | wc -l)
(( stages >= 2 )) || fail "the Dockerfile is not multi-stage ($stages FROM)"
while IFS=$'\t' read -r _ _ args; do
    image=${args%% *}
    [[ $image == debian:bookworm-slim ]] || fail "FROM $args: every stage must be debian:bookworm-slim"
done < <(awk -F'\t' '$2 == "FROM"' "$TMP/instructions")
build_stage=1
runtime_stage=$stages
stage_name=$(awk -F'\t' -v s="$build_stage" '$1 == s && $2 == "FROM" { n = split($3, w, " "); if (n >= 3 && toupper(w[2]) == "AS") print w[3] }' "$TMP/instructions")
[[ -n $stage_name ]] || fail "the build stage has no name (FROM ... AS NAME) for the runtime stage to copy from"

instr() {   # instr STAGE INSTRUCTION: the arguments of each, one a line
    awk -F'\t' -v s="$1" -v i="$2" '$1 == s && $2 == i { print $3 }' "$TMP/instructions"
}

# Nothing may be downloaded but Debian packages: no ADD (it fetches URLs),
# and no simple command of a RUN is a downloader or another package manager.
[[ -z $(awk -F'\t' '$2 == "ADD"' "$TMP/instructions") ]] || fail "ADD can download: use COPY"
while IFS=$'\t' read -r stage _ cmd; do
    # Split into simple commands; skip leading VAR=value words.
    while IFS= read -r simple; do
        read -r -a words <<<"$simple" || true
        i=0
        while (( i < ${#words[@]} )) && [[ ${words[i]} =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do i=$(( i + 1 )); done
        (( i < ${#words[@]} )) || continue
        case ${words[i]} in
            curl|wget|git|go|pip|pip3|npm|npx|gem|cargo|apk|snap)
                fail "stage $stage runs '${words[i]}': the build may download nothing but Debian packages ($cmd)" ;;
            cc|gcc|clang|c99|ld)
                fail "stage $stage compiles by hand ('${words[i]}'): build with the Makefile's target ($cmd)" ;;
        esac
    done < <(sed -E 's/(&&|\|\||;|\||\(|\))/\n/g' <<<"$cmd")
done < <(awk -F'\t' '$2 == "RUN"' "$TMP/instructions")

# The build stage builds with `make all`, the target `make test` builds.
make_line=$(instr "$build_stage" RUN | grep -E '(^|[;&|] *)make( +[^ ;&|]+)* +all( |$|;|&)' || true)
[[ -n $make_line ]] || fail "the build stage has no RUN line running 'make ... all'"
[[ $(grep -c . <<<"$make_line") == 1 ]] || fail "more than one make line in the build stage: $make_line"
test_recipe=$(awk '/^test:/ { f = 1; next } f && /^\t/ { print; next } f { exit }' "$BX_ROOT/Makefile")
grep -Eq '\$\(MAKE\).* all( |$)' <<<"$test_recipe" ||
    fail "the Makefile's test target does not build 'all' any more: update the Dockerfile to its target"$'\n'"$test_recipe"

# Its packages are build packages of scripts/deps.sh, and no test or server
# package.
packages_of() {   # the package names of the apt-get install lines of a stage
    instr "$1" RUN | grep -E 'apt-get( +-[^ ]+)* +install' |
        sed -E 's/.*apt-get( +-[^ ]+)* +install//; s/(&&|;|\|).*//' |
        tr ' ' '\n' | grep -Ev '^(-.*|)$' || true
}
mapfile -t build_pkgs < <(packages_of "$build_stage")
mapfile -t runtime_pkgs < <(packages_of "$runtime_stage")
(( ${#build_pkgs[@]} )) || fail "the build stage installs no packages"
(( ${#runtime_pkgs[@]} )) || fail "the runtime stage installs no packages"
deps_pkgs=$(sed -n '/^PACKAGES=(/,/^)/p' "$BX_ROOT/scripts/deps.sh" | tr ' ' '\n' | grep -Ev '^(PACKAGES=\(|\)|)$')
for p in "${build_pkgs[@]}"; do
    grep -qxF "$p" <<<"$deps_pkgs" || fail "the build stage installs $p, which scripts/deps.sh does not"
    case $p in
        *cmocka*|rabbitmq-server|redis-server|valgrind) fail "the build stage installs $p, which only the tests need" ;;
    esac
done

# The runtime stage runs as a user that is not root, created in that stage.
user=$(instr "$runtime_stage" USER | tail -n 1)
[[ -n $user ]] || fail "the runtime stage has no USER: it would run as root"
user=${user%%:*}
[[ $user != root && $user != 0 ]] || fail "the runtime stage runs as root (USER $user)"
if [[ ! $user =~ ^[0-9]+$ ]]; then
    instr "$runtime_stage" RUN | grep -Eq "useradd .*[[:space:]]$user( |$)" ||
        fail "USER $user is not created (useradd) in the runtime stage"
fi
[[ $(instr "$runtime_stage" ENTRYPOINT) == *entrypoint* || -n $(instr "$runtime_stage" CMD) ]] ||
    fail "the runtime stage has neither ENTRYPOINT nor CMD"
bash -n "$ENTRYPOINT" || fail "compose/entrypoint.sh does not parse"

# Replay the build stage: its COPYs (from the build context, the checkout)
# into an empty directory standing for its WORKDIR, then its make line, in
# an environment as bare as a docker build's.
workdir=$(instr "$build_stage" WORKDIR | tail -n 1)
[[ $workdir == /* ]] || fail "the build stage has no absolute WORKDIR"
SRC=$TMP/src
mkdir -p "$SRC"
while read -r -a words; do
    [[ ${words[0]} == --* ]] && fail "COPY ${words[*]}: the build stage copies from the context only"
    n=${#words[@]}
    dst=${words[n-1]}
    [[ $dst == /* ]] || dst=$workdir/$dst
    [[ $dst == "$workdir" || $dst == "$workdir"/* ]] || fail "COPY to $dst, outside the WORKDIR $workdir"
    dst=$SRC${dst#"$workdir"}
    for (( i = 0; i < n - 1; i++ )); do
        src=$BX_ROOT/${words[i]%/}
        [[ -e $src ]] || fail "COPY ${words[i]}: not in the checkout"
        if [[ -d $src ]]; then
            mkdir -p "$dst"; cp -a "$src/." "$dst/"
        else
            mkdir -p "$(dirname "$dst/x")"; cp -a "$src" "$dst"
        fi
    done
done < <(instr "$build_stage" COPY)
# Every directory whose sources the Makefile compiles must have been copied.
while read -r dir; do
    [[ $dir == tests ]] && continue
    [[ -d $SRC/$dir ]] || fail "the Makefile compiles $dir/*.c but the build stage does not COPY $dir/"
done < <(grep -oE 'wildcard [a-z_]+/\*\.c' "$BX_ROOT/Makefile" | awk '{ sub(/\/.*/, "", $2); print $2 }' | sort -u)
note "replaying the build stage: $make_line"
if ! (cd "$SRC" && env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$TMP" \
        bash -c "$make_line") >"$TMP/build.log" 2>&1; then
    tail -n 40 "$TMP/build.log" >&2
    fail "the build stage's make line fails on a clean copy of the sources"
fi

# The runtime stage copies the binaries out of the build stage; they exist.
bins=()
while read -r -a words; do
    [[ ${words[0]} == --from=* ]] || continue
    [[ ${words[0]#--from=} == "$stage_name" ]] || fail "COPY ${words[*]}: copies from '${words[0]#--from=}', not from the build stage"
    n=${#words[@]}
    for (( i = 1; i < n - 1; i++ )); do
        src=${words[i]}
        [[ $src == "$workdir"/* ]] || fail "COPY --from: $src is outside the build stage's WORKDIR"
        [[ -e $SRC${src#"$workdir"} ]] || fail "COPY --from: the build stage makes no $src"
        bins+=("$SRC${src#"$workdir"}")
    done
done < <(instr "$runtime_stage" COPY)
for b in bx-api bx-worker bx-recorder bx; do
    printf '%s\n' "${bins[@]}" | grep -q "/$b\$" || fail "the runtime stage does not copy $b"
done
while read -r -a words; do
    [[ ${words[0]} == --* ]] && continue
    [[ -e $BX_ROOT/${words[0]} ]] || fail "the runtime stage copies ${words[0]}, not in the checkout"
done < <(instr "$runtime_stage" COPY)

# Every library the binaries link (DT_NEEDED) belongs to a package the
# runtime stage installs, to one of their direct dependencies, or to libc6.
# The library-to-package map is this machine's, so only on bookworm.
# shellcheck disable=SC1091
if [[ $(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}") == bookworm ]] &&
        command -v readelf >/dev/null && command -v dpkg-query >/dev/null; then
    allowed=$(printf '%s\n' "${runtime_pkgs[@]}" libc6)
    for p in "${runtime_pkgs[@]}"; do
        deps=$(dpkg-query -W -f='${Depends}' "$p" 2>/dev/null) ||
            fail "runtime package $p is not a Debian package installed here (a typo?)"
        allowed+=$'\n'$(tr ',|' '\n' <<<"$deps" | sed -E 's/^ *//; s/[ :(].*//' | grep .)
    done
    for lib in $(readelf -d "${bins[@]}" | awk '/NEEDED/ { gsub(/[][]/, "", $5); print $5 }' | sort -u); do
        # (no early exit in a reader: the writer's SIGPIPE would fail the pipe)
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l && !found { print $NF; found = 1 }')
        [[ -n $path ]] || fail "$lib, linked by the binaries, is not known to ldconfig"
        pkg=
        for cand in "$path" "$(realpath "$path")" "/usr$path" "${path#/usr}" "$(realpath "$path" | sed 's|^/usr||')"; do
            pkg=$(dpkg -S "$cand" 2>/dev/null | awk -F: 'NR == 1 { print $1 }') || true
            [[ -n $pkg ]] && break
        done
        [[ -n $pkg ]] || fail "no Debian package owns $lib ($path)"
        grep -qxF "$pkg" <<<"$allowed" ||
            fail "the binaries link $lib of package $pkg, which the runtime stage does not install"
    done
else
    note "not on Debian bookworm: runtime libraries not checked against the image's packages"
fi

# ----------------------------------------------------------------- Compose
if ! command -v docker-compose >/dev/null; then
    note "SKIP compose checks: docker-compose is not installed (Debian package docker-compose; make deps)"
    echo "Dockerfile checks passed; docker-compose.yml not checked"
    exit 0
fi
# A compose/.env of the operator's must not decide whether the file is valid.
empty_env=$TMP/empty.env
: >"$empty_env"
docker-compose --env-file "$empty_env" -f "$COMPOSE" config -q ||
    fail "docker-compose config rejects compose/docker-compose.yml"
docker-compose --env-file "$empty_env" -f "$COMPOSE" config >"$TMP/config.yml"
if docker compose version >/dev/null 2>&1; then
    docker compose --env-file "$empty_env" -f "$COMPOSE" config -q ||
        fail "docker compose (v2) config rejects compose/docker-compose.yml"
fi
grep -o '"BX_[A-Z_]*"' "$BX_ROOT/lib/cfg.c" | tr -d '"' | sort -u >"$TMP/known_vars"

"$PYTHON" - "$TMP/config.yml" "$BX_ROOT" "$TMP/known_vars" <<'EOF'
import os, sys, yaml

config_path, root, known_path = sys.argv[1:4]
with open(config_path) as f:
    cfg = yaml.safe_load(f)
known = set(open(known_path).read().split())
services = cfg.get("services", {})
volumes = set((cfg.get("volumes") or {}).keys())
bad = []

def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return env

def mounts(svc):
    out = {}
    for v in svc.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            if len(parts) == 1:   # an anonymous volume
                out[parts[0]] = None
            else:
                out[parts[1]] = parts[0]
        else:
            out[v.get("target")] = v.get("source")
    return out

for name in ("rabbitmq", "redis", "mongo", "api", "recorder", "worker"):
    if name not in services:
        bad.append(f"no service '{name}'")
for name, svc in services.items():
    hc = svc.get("healthcheck") or {}
    if not hc.get("test") or hc.get("disable"):
        bad.append(f"service {name} has no health check")

for name in ("api", "recorder", "worker"):
    svc = services.get(name, {})
    build = svc.get("build") or {}
    ctx = build.get("context", "")
    if os.path.realpath(ctx) != os.path.realpath(root) or build.get("dockerfile") != "compose/Dockerfile":
        bad.append(f"{name} is not built from compose/Dockerfile with the checkout as context: {build}")
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list) or not deps:
        bad.append(f"{name} does not wait for healthy dependencies (depends_on with conditions)")
    else:
        for d, how in deps.items():
            if (how or {}).get("condition") != "service_healthy":
                bad.append(f"{name} depends on {d} without condition service_healthy")
    for var in env_of(svc):
        if var.startswith("BX_") and var not in known:
            bad.append(f"{name} sets {var}, which no bx process reads (lib/cfg.c)")
    for url, host in (("BX_AMQP_URL", "rabbitmq"), ("BX_REDIS_URL", "redis"), ("BX_MONGO_URL", "mongo")):
        v = env_of(svc).get(url) or ""
        if f"@{host}:" not in v and f"//{host}:" not in v:
            bad.append(f"{name}: {url}={v!r} does not point at the {host} service")

need = {"rabbitmq": ["api", "recorder", "worker"], "redis": ["api", "worker"], "mongo": ["api", "recorder"]}
for dep, users in need.items():
    for u in users:
        if dep not in (services.get(u, {}).get("depends_on") or {}):
            bad.append(f"{u} does not depend on {dep}")

w = services.get("worker", {})
for key in ("container_name", "ports", "hostname"):
    if key in w:
        bad.append(f"the worker service sets {key}: it could not be scaled (--scale worker=N)")
if "BX_WORKER_ID" in env_of(w):
    bad.append("the worker service sets BX_WORKER_ID: every replica would share it")

api = services.get("api", {})
if env_of(api).get("BX_API_LISTEN", "").split(":")[0] not in ("0.0.0.0", "[::]", ""):
    bad.append("the API does not listen on all addresses in its container (BX_API_LISTEN)")
if not any(str(p.get("target") if isinstance(p, dict) else p).endswith("8080") for p in api.get("ports") or []):
    bad.append("the API's port 8080 is not published")

rmq = services.get("rabbitmq", {})
if "management" not in rmq.get("image", ""):
    bad.append("RabbitMQ's image lacks the management plugin")
# consumer_timeout: in the Erlang arguments, or in a mounted configuration
erl = (env_of(rmq).get("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS") or "").split()
timeout = None
for i, word in enumerate(erl[:-2]):
    if word == "-rabbit" and erl[i + 1] == "consumer_timeout" and erl[i + 2].isdigit():
        timeout = int(erl[i + 2])
if timeout is None and not any(t.startswith("/etc/rabbitmq") for t in mounts(rmq)):
    bad.append("RabbitMQ's consumer_timeout is not set (RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS or a mounted conf)")
elif timeout is not None and timeout < 86400000:
    bad.append(f"RabbitMQ's consumer_timeout ({timeout} ms) is under a day: long jobs would be redelivered")
cmd = services.get("redis", {}).get("command") or ""
cmd = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
if "--appendonly yes" not in cmd:
    bad.append("Redis runs without appendonly yes")
if not services.get("mongo", {}).get("image", "").startswith("mongo:"):
    bad.append("MongoDB is not the official image")

for name, target in (("rabbitmq", "/var/lib/rabbitmq"), ("redis", "/data"), ("mongo", "/data/db"), ("api", "/var/lib/bashexec")):
    src = mounts(services.get(name, {})).get(target)
    if src not in volumes:
        bad.append(f"{name} keeps {target} in no named volume")

if bad:
    print("FAIL: docker-compose.yml:\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
print(f"docker-compose.yml: {len(services)} services checked")
EOF

echo "compose: Dockerfile and docker-compose.yml checked"
