#!/usr/bin/env bash
# `tripwire report` beside `tripwire backtest --json` on the same archive, in one run:
# what the page costs on top of the replay it is drawn from (target: at most 10% more).
#   SIZE_MB  uncompressed archive size (default 1024: 259 files, 83 MB gzipped on disk)
#   ARCHIVE  where to keep it (default .work/bench-archive, shared with bench-backtest)
#   RUNS     timed runs of each, interleaved (default 5; the median is compared)
#   DAYS     with N > 0, N nights of a node autoscaler's routine and EC2's state-change
#            events too (generate --days): a page with incidents, waves and tune's work
#            to draw (default 0; its own archive, .work/bench-history)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
DAYS=${DAYS:-0}
# The plain archive is bench-backtest's, with its completion mark; a history has its own.
if [ "$DAYS" -gt 0 ]; then
  ARCHIVE=${ARCHIVE:-.work/bench-history}
  MARK=".complete-$SIZE_MB-$DAYS"
else
  ARCHIVE=${ARCHIVE:-.work/bench-archive}
  MARK=".complete-$SIZE_MB"
fi
RUNS=${RUNS:-5}
cargo build --release -q -p tripwire-cli
T=target/release/tripwire
if [ ! -f "$ARCHIVE/$MARK" ]; then
  rm -rf "$ARCHIVE"
  $T generate --out "$ARCHIVE" --size-mb "$SIZE_MB" --days "$DAYS"
  touch "$ARCHIVE/$MARK"
fi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
echo "archive: $(du -sm "$ARCHIVE" | cut -f1) MB on disk, $SIZE_MB MB uncompressed; $(nproc) cores"

secs() { # command... -> wall seconds, process start to exit
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'
}
backtest() { $T backtest --policy config/policy.toml --json "$ARCHIVE" > "$OUT/backtest.jsonl"; }
report() { $T report --policy config/policy.toml --out "$OUT/report.html" "$ARCHIVE"; }
backtest; report # warm-up: page cache, lazy binaries
B=(); R=()
for _ in $(seq "$RUNS"); do
  B+=("$(secs backtest)")
  R+=("$(secs report)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
MB=$(median "${B[@]}"); MR=$(median "${R[@]}")
printf '\n| command | median s | runs |\n|---|---:|---|\n'
printf '| tripwire backtest --json | %s | %s |\n' "$MB" "${B[*]}"
printf '| tripwire report | %s | %s |\n' "$MR" "${R[*]}"
echo
echo "report / backtest: $(awk -v r="$MR" -v b="$MB" 'BEGIN { printf "%.3f", r / b }') (target <= 1.10); page $(stat -c %s "$OUT/report.html") bytes"
