#!/usr/bin/env bash
# The decision cost in instructions under callgrind: deterministic where wall-clock
# microseconds on a shared 2-core machine are not. Each path runs N and 2N times, so
# start-up cancels out: per-iteration = (I(2N) - I(N)) / N.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install valgrind" >&2; exit 1; }
cargo bench -q -p tripwire-engine --bench decision_instructions --no-run
bin=$(cargo bench -q -p tripwire-engine --bench decision_instructions --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys; print([j["executable"] for j in map(json.loads, sys.stdin) if j.get("executable") and "decision_instructions" in j["executable"]][0])')
n=5000
count() { # path iterations -> instructions
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
  awk '/^summary:/ { print $2 }' "$out"; rm -f "$out"
}
per() { echo $(( ($(count "$1" $((2 * n))) - $(count "$1" $n)) / n )); }
d=$(per decision); b=$(per baseline); o=$(per other)
python3 - "$d" "$b" "$o" <<'PY'
import sys
d, b, o = map(int, sys.argv[1:])
print(f"decision (parse+classify+decide+plan): {d:,} instructions")
print(f"baseline (serde_json::Value parse):     {b:,} instructions")
print(f"other call (parse+lookup, not watched): {o:,} instructions")
print(f"ratio: {d / b:.2f}x (target <= 1.5x)")
PY
