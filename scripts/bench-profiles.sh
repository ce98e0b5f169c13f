#!/usr/bin/env bash
# The release profile, chosen with numbers. Each candidate builds the two functions and
# the hello-world baseline into target/<name> (target/release is Cargo.toml's own
# profile); then one interleaved run measures cold start, peak RSS and zip size of all
# of them, each function beside the hello-world built the same way; then the decision
# benchmark per candidate. About 5–10 minutes per candidate on 2 cores.
#   RUNS  cold starts per binary (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-100}

# name: settings on top of [profile.release] in Cargo.toml.
declare -A PROFILES=(
  [release]=""
  [p-thin]='lto="thin"'
  [p-abort]='panic="abort"'
  [p-size]='opt-level="s"'
  [p-no-lto]='lto=false codegen-units=16'
)
ORDER=(release p-thin p-abort p-size p-no-lto)

args_for() { # profile -> cargo arguments
  local p=$1
  if [ "$p" != release ]; then
    printf -- '--config profile.%s.inherits="release" ' "$p"
    for kv in ${PROFILES[$p]}; do printf -- '--config profile.%s.%s ' "$p" "$kv"; done
  fi
  printf -- '--profile %s' "$p"
}

cargo build --release -q -p tripwire-localstack --bin local-bench
for p in "${ORDER[@]}"; do
  start=$(date +%s)
  # shellcheck disable=SC2046
  cargo build $(args_for "$p") -q -p detector -p responder
  # shellcheck disable=SC2046
  cargo build $(args_for "$p") -q -p tripwire-localstack --bin hello-lambda
  echo "build $p (${PROFILES[$p]:-as Cargo.toml}): $(( $(date +%s) - start )) s (after a clean target: a clean build)"
done
echo "cold start, all candidates interleaved, $RUNS runs each:"
COLD_PROFILES=$(IFS=,; echo "${ORDER[*]}") ONLY=cold RUNS=$RUNS ./target/release/local-bench 2>/dev/null | tail -n +3
for p in "${ORDER[@]}"; do
  echo "decision benchmark, $p:"
  # shellcheck disable=SC2046
  cargo bench $(args_for "$p") -q -p tripwire-engine --bench decision -- --noplot 2>/dev/null \
    | grep -E '^decision/|time:' | paste - - | sed -E 's/ +/ /g'
done
