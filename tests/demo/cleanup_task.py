"""The runaway of `make demo`: a vendor's cleanup task that terminates every running
instance it can see, one call per instance, and carries on when a call fails, as the
task in the incident report did. It talks to EC2 with whatever credentials and endpoint
the environment gives it (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), and prints one JSON
line per call, which the demo turns into the CloudTrail record AWS would deliver.

    cleanup_task.py launch COUNT    start COUNT instances tagged env=production (as an
                                    administrator); prints their IDs
    cleanup_task.py run PACE_MS     terminate every running instance, one call every
                                    PACE_MS; prints a line per call
    cleanup_task.py states          prints the number of instances in each state
    cleanup_task.py groups COUNT SIZE
                                    create COUNT Auto Scaling groups of SIZE production
                                    instances (as an administrator); prints their names
    cleanup_task.py delete-groups PACE_MS
                                    force-delete every Auto Scaling group, one call every
                                    PACE_MS, naming the instances each held; a line per call
"""

import json
import platform
import sys
import time

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError


def ec2():
    # One attempt per call: the demo measures the calls the script makes, not retries.
    return boto3.client("ec2", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}))


def now_ms():
    return int(time.time() * 1000)


def launch(count):
    out = ec2().run_instances(
        ImageId="ami-0123456789abcdef0",
        InstanceType="m5.large",
        MinCount=count,
        MaxCount=count,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "env", "Value": "production"}]}],
    )
    print(json.dumps([i["InstanceId"] for i in out["Instances"]]))


def instances(client, states=None):
    filters = [{"Name": "instance-state-name", "Values": states}] if states else []
    pages = client.get_paginator("describe_instances").paginate(Filters=filters)
    return [i for p in pages for r in p["Reservations"] for i in r["Instances"]]


def run(pace_ms):
    client = ec2()
    agent = f"Boto3/{boto3.__version__} Python/{platform.python_version()} Botocore/{botocore.__version__}"
    for instance in instances(client, ["running"]):
        start = now_ms()
        line = {"at_ms": start, "ids": [instance["InstanceId"]], "user_agent": agent}
        try:
            resp = client.terminate_instances(InstanceIds=line["ids"])
            line.update(ok=True, request_id=resp["ResponseMetadata"]["RequestId"])
        except ClientError as e:
            line.update(ok=False, error=e.response["Error"]["Code"])
        line["done_ms"] = now_ms()
        print(json.dumps(line), flush=True)
        time.sleep(max(0.0, (start + pace_ms - now_ms()) / 1000))


def autoscaling():
    return boto3.client("autoscaling", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}))


def groups(count, size):
    client = autoscaling()
    client.create_launch_configuration(
        LaunchConfigurationName="production", ImageId="ami-0123456789abcdef0", InstanceType="m5.large"
    )
    names = [f"production-{k:02d}" for k in range(count)]
    for name in names:
        client.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchConfigurationName="production",
            MinSize=size,
            MaxSize=size,
            DesiredCapacity=size,
            AvailabilityZones=["us-east-1a"],
        )
    print(json.dumps(names))


def delete_groups(pace_ms):
    # What a cleanup script that reaches for the groups does: the instances go with them.
    client = autoscaling()
    agent = f"Boto3/{boto3.__version__} Python/{platform.python_version()} Botocore/{botocore.__version__}"
    pages = client.get_paginator("describe_auto_scaling_groups").paginate()
    for group in [g for p in pages for g in p["AutoScalingGroups"]]:
        start = now_ms()
        line = {
            "at_ms": start,
            "group": group["AutoScalingGroupName"],
            "ids": [i["InstanceId"] for i in group["Instances"]],
            "user_agent": agent,
        }
        try:
            resp = client.delete_auto_scaling_group(AutoScalingGroupName=line["group"], ForceDelete=True)
            line.update(ok=True, request_id=resp["ResponseMetadata"]["RequestId"])
        except ClientError as e:
            line.update(ok=False, error=e.response["Error"]["Code"])
        line["done_ms"] = now_ms()
        print(json.dumps(line), flush=True)
        time.sleep(max(0.0, (start + pace_ms - now_ms()) / 1000))


def states():
    counts = {}
    for i in instances(ec2()):
        counts[i["State"]["Name"]] = counts.get(i["State"]["Name"], 0) + 1
    print(json.dumps(counts))


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["help"]
    if command == "launch" and len(args) == 1:
        launch(int(args[0]))
    elif command == "run" and len(args) == 1:
        run(int(args[0]))
    elif command == "states" and not args:
        states()
    elif command == "groups" and len(args) == 2:
        groups(int(args[0]), int(args[1]))
    elif command == "delete-groups" and len(args) == 1:
        delete_groups(int(args[0]))
    else:
        sys.exit(__doc__)
