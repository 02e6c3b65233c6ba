#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS: replay each target's corpus, then fuzz it for
# SECONDS (new inputs go to a scratch dir, the committed corpus is not touched).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd); secs=$2
status=0
for t in "$build"/fuzz_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  corpus="$here/corpus/${name#fuzz_}"
  scratch=$(mktemp -d)
  echo "fuzz: $name replay $(ls "$corpus" | wc -l) inputs"
  "$t" -runs=0 "$corpus" >/dev/null 2>"$scratch/replay.log" || { cat "$scratch/replay.log"; status=1; }
  echo "fuzz: $name for ${secs}s"
  (cd "$scratch" && "$t" -max_total_time="$secs" -max_len=2048 "$scratch" "$corpus" >/dev/null 2>fuzz.log) \
    || { tail -40 "$scratch/fuzz.log"; status=1; }
  grep -E "^(#[0-9]+\s+DONE|Done)" "$scratch/fuzz.log" | tail -1 || true
  rm -rf "$scratch"
done
exit $status
