"""Baseline for `make bench-backtest`: the short Python a user would write to pull
TerminateInstances calls out of a CloudTrail archive (gzip + json, standard library)."""
import gzip
import json
import sys

records = selected = 0
for path in sys.argv[1:]:
    with gzip.open(path, "rt") as f:
        for rec in json.load(f).get("Records", []):
            records += 1
            if rec.get("eventSource") == "ec2.amazonaws.com" and rec.get("eventName") == "TerminateInstances":
                selected += 1
print(records, selected)
