#!/usr/bin/env bash
# Builds and runs the libFuzzer targets tests/fuzz/fuzz_*.c, each for
# FUZZ_SECONDS, and fails when one of them finds a crash, a leak, a
# timeout or a broken invariant. The input that did it is saved under
# tests/fuzz/regressions/TARGET/, which every later run replays first.
#
#   tests/fuzz/run.sh [TARGET...]      (default: every target)
#
#   FUZZ_SECONDS  seconds per target (60)
#   FUZZ_JOBS     targets run at once (1)
#   FUZZ_BUILD    binaries, logs and the growing corpus (build/fuzz)
#   FUZZ_CC       the compiler (clang); libFuzzer needs clang's runtime,
#                 Debian's libclang-rt-dev
#
# A target names the sources it links on a "fuzz-sources:" line (and the
# pkg-config packages beyond jansson on a "fuzz-libs:" line). It runs
# on three corpus directories: FUZZ_BUILD/corpus/TARGET (new inputs go
# there, kept between runs, not in git), tests/fuzz/corpus/TARGET (the
# seeds) and tests/fuzz/regressions/TARGET (every past finding).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
FUZZ=tests/fuzz
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
OUT=${FUZZ_BUILD:-build/fuzz}
CC=${FUZZ_CC:-clang}

[[ $SECONDS_EACH =~ ^[0-9]+$ && $SECONDS_EACH -ge 1 ]] || { echo "FUZZ_SECONDS must be a positive integer" >&2; exit 2; }
[[ $JOBS =~ ^[0-9]+$ && $JOBS -ge 1 ]] || { echo "FUZZ_JOBS must be a positive integer" >&2; exit 2; }

if (( $# )); then
    targets=("$@")
else
    targets=()
    for f in "$FUZZ"/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
for t in "${targets[@]}"; do
    [[ -f $FUZZ/$t.c ]] || { echo "no such target: $t ($FUZZ/$t.c)" >&2; exit 2; }
done

command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (make deps)" >&2; exit 1; }
JANSSON_CFLAGS=$(pkg-config --cflags jansson)
JANSSON_LIBS=$(pkg-config --libs jansson)
# shellcheck disable=SC2054 # the commas belong to the flag
SAN=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
CFLAGS=(-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra "${SAN[@]}" -Ilib -Iapi -I"$FUZZ")
mkdir -p "$OUT"

# A clang without its fuzzer runtime fails at link time with a wall of
# "cannot find libclang_rt..."; say what is missing instead.
probe=$OUT/.probe
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe.c"
if ! "$CC" "${SAN[@]}" "$probe.c" -o "$probe" 2>"$probe.err"; then
    echo "fuzz: $CC cannot link libFuzzer with ASan/UBSan:" >&2
    grep -m3 -E 'cannot find|error' "$probe.err" >&2 || true
    echo "fuzz: install clang's runtime (Debian: libclang-rt-dev), e.g. with make deps" >&2
    exit 1
fi
rm -f "$probe" "$probe.c" "$probe.err"

# build TARGET: our target with -Werror, the sources it tests (owned by
# others, and compiled by gcc elsewhere) with clang's warnings shown only.
build() {
    local t=$1 srcs src objs=()
    srcs=$(sed -n 's|^/\* fuzz-sources: \(.*\) \*/$|\1|p' "$FUZZ/$t.c" | head -n1)
    [[ -n $srcs ]] || { echo "$FUZZ/$t.c has no fuzz-sources line" >&2; return 1; }
    # a "fuzz-libs:" line names pkg-config packages the target links too
    local pkgs libs=
    pkgs=$(sed -n 's|^/\* fuzz-libs: \(.*\) \*/$|\1|p' "$FUZZ/$t.c" | head -n1)
    # shellcheck disable=SC2086
    [[ -z $pkgs ]] || libs=$(pkg-config --libs $pkgs)
    mkdir -p "$OUT/obj/$t"
    # shellcheck disable=SC2086 # word splitting of the flag lists is meant
    "$CC" "${CFLAGS[@]}" -Werror $JANSSON_CFLAGS -c "$FUZZ/$t.c" -o "$OUT/obj/$t/$t.o"
    for src in $srcs; do
        local o
        o=$OUT/obj/$t/$(basename "$src" .c).o
        # shellcheck disable=SC2086
        "$CC" "${CFLAGS[@]}" $JANSSON_CFLAGS -c "$src" -o "$o"
        objs+=("$o")
    done
    # shellcheck disable=SC2086
    "$CC" "${SAN[@]}" "$OUT/obj/$t/$t.o" "${objs[@]}" -o "$OUT/$t" $JANSSON_LIBS $libs -lpthread -lm
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# run TARGET: fuzzes it; the log is OUT/TARGET.log, the outcome one line
# in OUT/TARGET.result.
run() {
    local t=$1
    local log=$OUT/$t.log art=$OUT/artifacts/$t/ rc=0 work=$OUT/corpus/$t seeds=$FUZZ/corpus/$t \
          regs=$FUZZ/regressions/$t
    mkdir -p "$work" "$seeds" "$regs" "$art"
    rm -f "$art"/*
    local -a opts=(-max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=10
                   -rss_limit_mb=2048 -artifact_prefix="$art")
    [[ -f $FUZZ/$t.dict ]] && opts+=(-dict="$FUZZ/$t.dict")
    "$OUT/$t" "${opts[@]}" "$work" "$seeds" "$regs" >"$log" 2>&1 || rc=$?
    local execs cov
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n1 || true)
    local found=() a
    for a in "$art"*; do [[ -f $a ]] && found+=("$a"); done
    if (( rc == 0 && ${#found[@]} == 0 )); then
        echo "ok $t ${execs:-?} executions in ${SECONDS_EACH}s (${cov:-no stats})" >"$OUT/$t.result"
        return 0
    fi
    local saved=()
    local r same
    for a in "${found[@]}"; do
        # a regression replayed: name the input already kept
        same=
        for r in "$regs"/*; do
            [[ -f $r ]] && cmp -s "$a" "$r" && { same=$r; break; }
        done
        if [[ -n $same ]]; then
            saved+=("$same (already kept)")
        else
            cp "$a" "$regs/"
            saved+=("$regs/$(basename "$a")")
        fi
    done
    echo "FAIL $t (exit $rc) after ${execs:-?} executions; input saved: ${saved[*]:-none}" >"$OUT/$t.result"
    return 1
}

for t in "${targets[@]}"; do
    echo "fuzz: building $t"
    build "$t"
done

failed=0
pids=()
for t in "${targets[@]}"; do
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
    echo "fuzz: running $t for ${SECONDS_EACH}s"
    run "$t" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done

for t in "${targets[@]}"; do
    r=$(cat "$OUT/$t.result" 2>/dev/null || echo "FAIL $t (no result)")
    echo "$r"
    if [[ $r != ok* ]]; then
        failed=$((failed + 1))
        # the report, short enough that each target's survives a tail: what
        # broke, and the frames of our code (libFuzzer's and libc's aside)
        {
            grep -m4 -E 'invariant|ERROR:|runtime error:|SUMMARY:|Test unit written' "$OUT/$t.log" || true
            grep -E '^ +#[0-9]+ ' "$OUT/$t.log" | grep -vE 'fuzzer::|libc\.so|libc_start|_start |__sanitizer|sysdeps|/nptl/|/stdlib/| in main ' |
                sed -E 's/ \(BuildId: [0-9a-f]+\)//' | head -n 12 || true
            echo "full log: $OUT/$t.log"
        } | sed 's/^/    | /'
    fi
done
echo "fuzz: $(( ${#targets[@]} - failed )) passed, $failed failed"
(( failed == 0 ))
