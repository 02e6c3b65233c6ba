#!/usr/bin/env bash
# Configure and build one flavour: build.sh [normal|asan|fuzz]
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-normal}
jobs=$(nproc)
case "$flavour" in
  normal) cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
          cmake --build build -j"$jobs" ;;
  asan)   cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNATKIT_SANITIZE=ON >/dev/null
          cmake --build build-asan -j"$jobs" ;;
  fuzz)   CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DNATKIT_FUZZ=ON \
            -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" >/dev/null
          cmake --build build-fuzz -j"$jobs" ;;
  *) echo "usage: build.sh [normal|asan|fuzz]" >&2; exit 2 ;;
esac
