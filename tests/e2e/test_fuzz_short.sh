#!/usr/bin/env bash
# Every fuzz target, briefly (FUZZ_SECONDS, 10 by default), with its seeds
# and every past finding replayed: a crash, a leak or a broken invariant
# fails the test, and the input that did it is kept under
# tests/fuzz/regressions/. `make fuzz` runs them longer.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# Binaries and the corpus they grow go to a directory of this run's own:
# a test run beside a `make fuzz` must not rebuild its binaries under it.
TMP=$(mktemp -d "${BX_TEST_TMPDIR:-${TMPDIR:-/tmp}}/fuzz.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
FUZZ_SECONDS=${FUZZ_SECONDS:-10} FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)} FUZZ_BUILD=$TMP \
    "$ROOT/tests/fuzz/run.sh"
