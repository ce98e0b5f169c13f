"""The deploy scripts as a user runs them, against moto on loopback with the real AWS CLI:
the dry run covers every region enabled in the account and the management account, and
refuses rather than guess when the regions cannot be read."""

import os
import subprocess

import boto3
import pytest

from test_templates import BIN, ROOT, TARGET, moto  # noqa: F401  (the fixture)


def _run(moto, **env):  # noqa: F811
    tripwire = TARGET / "debug" / "tripwire"
    if not tripwire.exists():
        pytest.skip("no tripwire binary; `make test` builds it first")
    if not (BIN / "aws").exists():
        pytest.skip("no AWS CLI in the virtualenv; `make setup` installs it")
    base = {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ENDPOINT_URL": moto["endpoint_url"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "TRIPWIRE": str(tripwire),
    }
    return subprocess.run(["scripts/deploy-members.sh"], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


def test_the_dry_run_covers_every_enabled_region_and_the_management_account(moto):  # noqa: F811
    enabled = sorted(r["RegionName"] for r in boto3.client("ec2", **moto).describe_regions()["Regions"])
    assert len(enabled) > 10 and "us-east-1" in enabled
    out = _run(moto)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    [instances] = [line for line in lines if "create-stack-instances" in line]
    order = instances.split("RegionOrder=")[1].split(",FailureTolerance")[0].split(",")
    assert order[0] == "us-east-1", "the primary region creates the roles first"
    assert sorted(order) == enabled
    assert sorted(instances.split("--regions ")[1].split(" --operation-preferences")[0].split()) == enabled
    management = [line.rsplit("region ", 1)[1].rstrip(":") for line in lines if line.startswith("# in the MANAGEMENT account")]
    assert sorted(management) == enabled
    # The central stack's ExpectedRegions: the same list.
    regions = _run(moto, PRINT_REGIONS="1")
    assert regions.returncode == 0 and sorted(regions.stdout.strip().split(",")) == enabled


def test_without_the_regions_or_the_management_accounts_credentials_it_refuses(moto):  # noqa: F811
    unreadable = _run(moto, AWS_ENDPOINT_URL="http://127.0.0.1:9")
    assert unreadable.returncode == 1 and "cannot read the enabled regions" in unreadable.stderr
    assert unreadable.stdout == ""
    named = _run(moto, AWS_ENDPOINT_URL="http://127.0.0.1:9", REGIONS="eu-west-1 us-west-2")
    assert named.returncode == 0, named.stderr
    assert "RegionOrder=eu-west-1,us-west-2," in named.stdout
    run = _run(moto, REGIONS="us-east-1", RUN="1")
    assert run.returncode == 1 and "MANAGEMENT_PROFILE" in run.stderr and run.stdout == ""
