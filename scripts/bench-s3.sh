#!/usr/bin/env bash
# The backtest from S3 beside the same archive on disk, in one run: moto server on
# loopback stands in for S3 (a Python server, so the ratio shows what S3's path costs
# here, not AWS's throughput).
#   SIZE_MB  uncompressed archive size (default 256)
#   ARCHIVE  where to keep it (default .work/bench-s3-archive; reused when complete)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-256}
ARCHIVE=${ARCHIVE:-.work/bench-s3-archive}
cargo build --release -q -p tripwire-cli
T=target/release/tripwire
if [ ! -f "$ARCHIVE/.complete-$SIZE_MB" ]; then
  rm -rf "$ARCHIVE"
  $T generate --out "$ARCHIVE" --size-mb "$SIZE_MB"
  touch "$ARCHIVE/.complete-$SIZE_MB"
fi
PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LOGS=$(mktemp -d)
.venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$PORT" >"$LOGS/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null; rm -rf "$LOGS"' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
.venv/bin/python - "$ARCHIVE" <<'PY'
import os, pathlib, sys, boto3
root = pathlib.Path(sys.argv[1])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
s3.create_bucket(Bucket="bench-trail")
for p in root.rglob("*.json.gz"):
    s3.upload_file(str(p), "bench-trail", "logs/" + str(p.relative_to(root)))
PY
secs() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
$T backtest --policy config/policy.toml --json "$ARCHIVE" >/dev/null 2>&1 # warm the page cache
DISK=$(secs $T backtest --policy config/policy.toml --json "$ARCHIVE")
S3=$(secs $T backtest --policy config/policy.toml --json s3://bench-trail/logs/)
diff <($T backtest --policy config/policy.toml --json "$ARCHIVE" 2>/dev/null) \
     <($T backtest --policy config/policy.toml --json s3://bench-trail/logs/ 2>/dev/null) >/dev/null \
  && SAME=yes || SAME=NO
FILES=$(find "$ARCHIVE" -name '*.json.gz' | wc -l)
printf 'archive: %s files, %s MB uncompressed; %s cores\n' "$FILES" "$SIZE_MB" "$(nproc)"
printf '%-34s %8ss\n' "backtest, local files" "$DISK" "backtest, s3:// on moto (loopback)" "$S3"
awk -v d="$DISK" -v s="$S3" 'BEGIN { printf "s3 / disk: %.1fx; ", s / d }'
echo "same JSON lines: $SAME"
