#!/usr/bin/env bash
# Runs the cargo-fuzz targets for SECONDS each (default 600), seeded with the real
# CloudTrail fixtures, and prints executions and time per target. Needs the nightly
# toolchain: where it is missing, says so and exits 0, so `make test` still runs.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-600}
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: SKIPPED - no nightly toolchain on this machine (rustup toolchain install nightly)"
  exit 0
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in parse decide; do
  corpus=.work/fuzz-corpus/$target
  mkdir -p "$corpus"
  # Seed with every fixture, whole, plus each JSON line on its own.
  find tests/fixtures/cloudtrail-corpus -name '*.json' -o -name '*.jsonl' | while read -r f; do
    cp "$f" "$corpus/$(echo "$f" | tr '/' '_')"
  done
  split -l 1 -a 4 tests/fixtures/cloudtrail-corpus/mixed/panther_analysis_rule_tests.jsonl "$corpus/line-" 2>/dev/null || true
  log=.work/fuzz-$target.log
  (cd fuzz && cargo +nightly fuzz run "$target" "../$corpus" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -max_len=262144) 2>&1 | tee "$log" | grep -E '^(Done|INFO: seed corpus|==[0-9]+==ERROR|SUMMARY)' || true
  if ! grep -q '^Done ' "$log"; then
    echo "fuzz: target $target FAILED; artifacts in fuzz/artifacts/$target, log in $log"
    exit 1
  fi
  echo "fuzz: $target $(grep '^Done ' "$log" | tail -n 1)"
done
