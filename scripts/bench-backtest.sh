#!/usr/bin/env bash
# Backtest throughput beside its baselines, on one generated archive, in one run.
#   SIZE_MB  uncompressed archive size (default 1024)
#   ARCHIVE  where to keep it (default .work/bench-archive; reused when complete)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
ARCHIVE=${ARCHIVE:-.work/bench-archive}
CORES=$(nproc)
command -v jq >/dev/null || { echo "installing jq (Debian package)"; apt-get install -y -qq jq >/dev/null; }
cargo build --release -q -p tripwire-cli
T=target/release/tripwire
if [ ! -f "$ARCHIVE/.complete-$SIZE_MB" ]; then
  rm -rf "$ARCHIVE"
  $T generate --out "$ARCHIVE" --size-mb "$SIZE_MB"
  touch "$ARCHIVE/.complete-$SIZE_MB"
fi
mapfile -t FILES < <(find "$ARCHIVE" -name '*.json.gz' | sort)
SELECT='.Records[] | select(.eventSource == "ec2.amazonaws.com" and .eventName == "TerminateInstances")'

summary=$($T backtest --policy config/policy.toml --json "$ARCHIVE" 2>/dev/null | tail -n 1)
BYTES=$(jq -r .bytes <<<"$summary")
RECORDS=$(jq -r .records <<<"$summary")
echo "archive: ${#FILES[@]} files, $((BYTES / 1000000)) MB uncompressed, $RECORDS records; $CORES cores"

# Each run is timed whole (process start to exit), reading warm page cache.
declare -A SECS
run() { # name, command...
  local name=$1; shift
  "$@" >/dev/null 2>&1 # warm-up: page cache, lazy binaries
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
  SECS[$name]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
}
par() { printf '%s\0' "${FILES[@]}" | xargs -0 -n 8 -P "$CORES" "$@"; }

run "zcat, 1 core" zcat "${FILES[@]}"
run "zcat, $CORES cores" par zcat
run "tripwire backtest, 1 thread" $T backtest --threads 1 --policy config/policy.toml --json "$ARCHIVE"
run "tripwire backtest, $CORES threads" $T backtest --policy config/policy.toml --json "$ARCHIVE"
run "zcat | jq, 1 core" sh -c "zcat \"\$@\" | jq -c '$SELECT'" _ "${FILES[@]}"
run "zcat | jq, $CORES cores" par sh -c "zcat \"\$@\" | jq -c '$SELECT'" _
run "python gzip+json, 1 core" python3 scripts/baseline_select.py "${FILES[@]}"
run "python gzip+json, $CORES cores" par python3 scripts/baseline_select.py

printf '\n| tool | seconds | MB/s | records/s |\n|---|---:|---:|---:|\n'
for name in "zcat, 1 core" "zcat, $CORES cores" "tripwire backtest, 1 thread" "tripwire backtest, $CORES threads" \
            "zcat | jq, 1 core" "zcat | jq, $CORES cores" "python gzip+json, 1 core" "python gzip+json, $CORES cores"; do
  awk -v n="$name" -v s="${SECS[$name]}" -v b="$BYTES" -v r="$RECORDS" \
    'BEGIN { printf "| %s | %.2f | %.0f | %.0f |\n", n, s, b / 1e6 / s, r / s }'
done
ratio() { awk -v a="${SECS[$1]}" -v b="${SECS[$2]}" 'BEGIN { printf "%.1f", a / b }'; }
echo
echo "tripwire vs zcat|jq (same cores): $(ratio "zcat | jq, 1 core" "tripwire backtest, 1 thread")x at 1, $(ratio "zcat | jq, $CORES cores" "tripwire backtest, $CORES threads")x at $CORES"
echo "tripwire vs python (same cores):  $(ratio "python gzip+json, 1 core" "tripwire backtest, 1 thread")x at 1, $(ratio "python gzip+json, $CORES cores" "tripwire backtest, $CORES threads")x at $CORES"
echo "tripwire rate as a share of zcat's decompression rate: $(awk -v a="${SECS["zcat, 1 core"]}" -v b="${SECS["tripwire backtest, 1 thread"]}" 'BEGIN { printf "%.0f%%", 100 * a / b }') at 1 thread"
