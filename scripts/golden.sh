#!/usr/bin/env bash
# The backtest's JSON lines on the public corpus and on every scenario's records, in one
# stream, for comparing two builds byte for byte:
#   scripts/golden.sh [TRIPWIRE_BIN] > out.jsonl
# The scenario records come from crates/engine/tests/scenarios.rs (TRIPWIRE_SCENARIO_DUMP).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/tripwire}
dump=${TRIPWIRE_SCENARIO_DUMP:-}
if [ -z "$dump" ]; then
  dump=$(mktemp -d)
  trap 'rm -rf "$dump"' EXIT
fi
if [ -z "$(ls -A "$dump" 2>/dev/null)" ]; then
  TRIPWIRE_SCENARIO_DUMP=$dump cargo test -q -p tripwire-engine --test scenarios >/dev/null
fi
echo "# corpus"
"$bin" backtest --json --threads 1 --policy config/policy.toml tests/fixtures/cloudtrail-corpus 2>/dev/null
for d in "$dump"/*/; do
  echo "# scenario $(basename "$d")"
  "$bin" backtest --json --threads 1 --policy "$d/policy.toml" "$d/records.jsonl" 2>/dev/null || echo "# exit $?"
done
