#!/usr/bin/env bash
# Runs every test. `make test` calls this after building; CI runs `make test`.
#   scripts/test.sh        C++ tests (ctest) + CLI/server tests (pytest) + ASan/UBSan pass
#   scripts/test.sh asan   only the AddressSanitizer/UBSan build of the malformed-input tests
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)

asan() {
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPOOL_SANITIZE=ON >/dev/null
  # Build only what the malformed-input tests need (each test is named after its target).
  local targets
  targets=$(ctest --test-dir build-asan -N -L malformed | sed -n 's/^ *Test *#[0-9]*: *//p' | sort -u)
  # shellcheck disable=SC2086
  cmake --build build-asan -j "$JOBS" --target spool $targets
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan -L malformed --output-on-failure -j "$JOBS"
}

if [ "${1:-}" = asan ]; then asan; exit 0; fi

ctest --test-dir build --output-on-failure -j "$JOBS"
asan
if ls tests/py/test_*.py >/dev/null 2>&1; then
  SPOOL_BIN="$PWD/build/bin/spool" python3 -m pytest -q tests/py
fi
