"""End to end: a 3-week backfill of the weekly DAG (7-day requests, a seventh of the daily DAG's)
lands 21 daily partitions per report, each with the same decompressed rows as that day's own
request, under the daily DAG's keys, with a manifest each."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io

import pytest

from devtools.checks import assert_runs_succeeded
from devtools.environment import BUCKET, last_complete_week

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
WEEKLY_DAG = "echo360_weekly_to_s3"
REPORTS = ("videoview", "notes")
WEEKS = 3


@pytest.fixture(scope="module")
def env_options():
    return {"reports": REPORTS}


@pytest.fixture(scope="module")
def weeks(env):
    # The weekly DAG's runs have data intervals (Monday to Monday): a backfill's dates are the
    # intervals' starts.
    last_week = last_complete_week()
    first_week = last_week - dt.timedelta(weeks=WEEKS - 1)
    env.stack.wait_for_dag(WEEKLY_DAG, timeout=180)
    env.stack.create_backfill(WEEKLY_DAG, f"{first_week}T00:00:00Z", f"{last_week}T00:00:00Z")
    env.stack.unpause(WEEKLY_DAG)
    runs = env.stack.wait_for_runs(WEEKLY_DAG, WEEKS, timeout=900, run_type="backfill")
    return runs, [first_week + dt.timedelta(days=n) for n in range(7 * WEEKS)]


def plain_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(gzip.decompress(body).decode())))


def test_three_weeks_land_as_21_daily_partitions_per_report_with_each_days_rows(env, weeks):
    runs, days = weeks
    assert_runs_succeeded(runs, WEEKS)
    assert env.sandbox.stats()["submitted"] == WEEKS * len(REPORTS)  # 7-day requests only
    manifests = env.manifests()
    env.sandbox.set_config(processing_seconds=0)  # each day's own request, ready at once
    client = env.s3.client()
    for report in REPORTS:
        for day in days:
            next_day = day + dt.timedelta(days=1)
            stem = f"echo360/{report}/dt={day}/{report}_{day}_{next_day}"
            own = env.sandbox.submit_as("another-client", report, {"start": str(day), "end": str(next_day)})
            (asset,) = env.sandbox.request_info(own["requestId"])["assets"]
            expected = plain_rows(env.sandbox.asset_bytes(own["requestId"], asset))
            landed = plain_rows(client.get_object(Bucket=BUCKET, Key=f"{stem}_001.csv.gz")["Body"].read())
            assert landed == expected, (report, day)
            manifest = manifests[f"echo360/{report}/dt={day}/_{report}_{day}_{next_day}.manifest.json"]
            assert manifest["rows"] == len(expected) - 1
    assert not [key for key in manifests if "week=" in key or "unassigned" in key]
