#!/usr/bin/env bash
# Every test: installs what is missing, builds normally and with ASan+UBSan,
# runs the whole ctest suite in both, then replays and briefly runs the fuzzers.
#   FUZZ_SECONDS=30   how long each fuzz target runs after the corpus replay
#   TEST_LABELS=...   a ctest -L regex to run a subset (default: everything)
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (apt-get, network namespaces)" >&2; exit 2; }
scripts/deps.sh || exit 1
fuzz_seconds=${FUZZ_SECONDS:-30}
label_args=()
[ -n "${TEST_LABELS:-}" ] && label_args=(-L "$TEST_LABELS")
ulimit -n 20000 2>/dev/null || true

passed=0; failed=0
step() { # name, command...
  local name=$1; shift
  echo "=== $name"
  if "$@"; then passed=$((passed+1)); echo "=== $name: ok"
  else failed=$((failed+1)); echo "=== $name: FAILED"; fi
}

step "build (normal)" scripts/build.sh normal
step "tests (normal)" ctest --test-dir build --output-on-failure "${label_args[@]}"
step "build (asan+ubsan)" scripts/build.sh asan
step "tests (asan+ubsan)" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure "${label_args[@]}"
step "build (fuzz)" scripts/build.sh fuzz
step "fuzz (corpus replay + ${fuzz_seconds}s each)" tests/fuzz/run.sh build-fuzz "$fuzz_seconds"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
