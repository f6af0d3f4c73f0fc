#!/usr/bin/env bash
# Installs what building, testing and running bashexec needs: Debian
# packages, and FerretDB (MongoDB is not packaged by Debian) built from the
# Go module proxy into the git-ignored .deps/.
#
#   scripts/deps.sh          install what is missing; silent when nothing is
#   scripts/deps.sh --check  exit 0 when everything is there, 1 otherwise
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS=$ROOT/.deps
FERRETDB_VERSION=v1.24.2   # v1.24.1 is not served by the module proxy
FERRET_BIN=$DEPS/bin/ferretdb
# The binary is rebuilt when the version or our main.go changes.
FERRET_STAMP=$DEPS/bin/ferretdb.stamp

PACKAGES=(
    build-essential pkg-config libssl-dev
    librabbitmq-dev libhiredis-dev libjansson-dev libmongoc-dev
    libmicrohttpd-dev libcurl4-openssl-dev libcmocka-dev libclang-rt-14-dev
    rabbitmq-server redis-server
    curl jq openssl python3 python3-celery python3-redis python3-pymongo valgrind clang rsyslog docker-compose wrk chromium nodejs prometheus
)

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        # Status-Abbrev is "ii " only for a fully installed package.
        [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) == ii* ]] || echo "$p"
    done
}

ferret_stamp() {
    echo "$FERRETDB_VERSION $(sha256sum <"$ROOT/scripts/ferretdb/main.go" | cut -d' ' -f1)"
}

ferret_current() {
    [[ -x $FERRET_BIN && -f $FERRET_STAMP && $(cat "$FERRET_STAMP") == "$(ferret_stamp)" ]]
}

# Go keeps its caches under HOME, which a bare CI environment may not set.
export HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}

find_go() {
    # CI's PATH may lack the Go toolchain's usual home.
    command -v go 2>/dev/null && return 0
    [[ -x /usr/local/go/bin/go ]] && echo /usr/local/go/bin/go && return 0
    return 1
}

# The dashboard test drives Debian's chromium with playwright-core from npm
# (pinned in its package-lock.json; it never downloads a browser).
DASH=$ROOT/tests/e2e/dashboard
dash_current() { [[ -f $DASH/node_modules/.package-lock.json && ! $DASH/package-lock.json -nt $DASH/node_modules/.package-lock.json ]]; }

if [[ ${1:-} == --check ]]; then
    mapfile -t missing < <(missing_packages)
    ok=0
    (( ${#missing[@]} == 0 )) || { echo "missing packages: ${missing[*]}" >&2; ok=1; }
    ferret_current || { echo "missing: $FERRET_BIN" >&2; ok=1; }
    command -v npm >/dev/null || { echo "missing: npm" >&2; ok=1; }
    dash_current || { echo "missing: tests/e2e/dashboard/node_modules" >&2; ok=1; }
    exit "$ok"
fi
[[ $# -eq 0 ]] || { echo "usage: $0 [--check]" >&2; exit 2; }

done_what=()
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

# Prints the log of a failed step, then fails.
fail() { echo "deps: $1 failed:" >&2; tail -n 40 "$LOG" >&2; exit 1; }

mapfile -t missing < <(missing_packages)
# A Node.js that came with its own npm must not get Debian's on top.
command -v npm >/dev/null || missing+=(npm)
if (( ${#missing[@]} )); then
    SUDO=()
    if (( EUID != 0 )); then
        command -v sudo >/dev/null || { echo "deps: need root to install: ${missing[*]}" >&2; exit 1; }
        SUDO=(sudo)
    fi
    apt_install() {
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1
    }
    # The package lists are refreshed only when they turn out to be stale or
    # absent: most runs install nothing, and an update costs time.
    if ! apt_install; then
        "${SUDO[@]}" apt-get update -q >>"$LOG" 2>&1 || fail "apt-get update"
        apt_install || fail "apt-get install ${missing[*]}"
    fi
    done_what+=("installed ${missing[*]}")
fi

if ! ferret_current; then
    GO=$(find_go) || { echo "deps: Go is needed to build FerretDB and was not found (PATH, /usr/local/go/bin)" >&2; exit 1; }
    build=$DEPS/ferretdb-build
    rm -rf "$build"
    mkdir -p "$build" "$DEPS/bin"
    cp "$ROOT/scripts/ferretdb/main.go" "$build/"
    # A throwaway module: the project itself has no Go code to carry. Build
    # stamps of the enclosing git checkout are of no use and can fail there.
    (
        cd "$build"
        export GOFLAGS=-buildvcs=false CGO_ENABLED=0
        "$GO" mod init bashexec.local/ferretdb >>"$LOG" 2>&1 &&
        "$GO" get "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" >>"$LOG" 2>&1 &&
        "$GO" mod tidy >>"$LOG" 2>&1 &&
        "$GO" build -trimpath -o ../bin/ferretdb.new . >>"$LOG" 2>&1
    ) || fail "building FerretDB $FERRETDB_VERSION"
    mv -f "$DEPS/bin/ferretdb.new" "$FERRET_BIN"
    ferret_stamp >"$FERRET_STAMP"
    done_what+=("built FerretDB $FERRETDB_VERSION into .deps/bin/ferretdb")
fi

if ! dash_current; then
    (cd "$DASH" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) >>"$LOG" 2>&1 ||
        fail "npm ci in tests/e2e/dashboard"
    done_what+=("installed the dashboard test's npm packages")
fi

if (( ${#done_what[@]} )); then
    summary=${done_what[0]}
    for d in "${done_what[@]:1}"; do summary+="; $d"; done
    echo "deps: $summary"
fi
