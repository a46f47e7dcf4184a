"""End to end: a rerun of a window replaces its objects, never duplicates them. The daily example DAG
is backfilled, every request then expires (as 14 days later), and the same range is backfilled again
with reprocessing, as the UI's Backfill dialog does with "All Runs"."""

from __future__ import annotations

import datetime as dt

import pytest

from devtools.checks import (
    assert_no_open_uploads,
    assert_one_copy_per_window,
    assert_runs_succeeded,
    window_key,
    windows,
)
from devtools.environment import BUCKET, DAILY_DAG
from devtools.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
REPORTS = ("videoview", "pollingv2")
ROWS = 200  # per day


@pytest.fixture(scope="module")
def env_options():
    # 80 rows a file: 3 assets per window in the first pass.
    return {"reports": REPORTS, "sandbox_options": {"rows_per_day": ROWS, "max_rows_per_asset": 80}}


@pytest.fixture(scope="module")
def backfill_days():
    return 3


def test_a_backfill_rerun_after_the_requests_expired_leaves_one_copy_per_window(env, backfilled):
    expected = windows(backfilled.days, REPORTS)
    assert_runs_succeeded(backfilled.runs, len(backfilled.days))
    first = assert_one_copy_per_window(env, expected, rows=ROWS)
    assert len(list(env.landed())) == 3 * len(expected)

    assert env.sandbox.expire_requests() == len(expected)
    env.sandbox.set_config(max_rows_per_asset=1_000_000)  # one asset per window now: leftovers to remove
    again = env.backfill_daily(
        len(backfilled.days), last_day=backfilled.days[0], reprocess_behavior="completed"
    )
    wait_for(
        lambda: env.stack.backfill(again)["completed_at"], 900, "the second backfill to complete", poll=5
    )

    runs = env.stack.dag_runs(DAILY_DAG, "backfill")
    assert_runs_succeeded(runs, len(backfilled.days))
    submissions = env.sandbox.stats()["submissions"]
    assert {window: submissions.get(window_key(window)) for window in expected} == dict.fromkeys(expected, 2)
    second = assert_one_copy_per_window(env, expected, rows=ROWS)
    assert all(second[window].isdisjoint(first[window]) for window in expected)  # the new requests landed
    assert len(list(env.landed())) == len(expected)
    assert_no_open_uploads(env)
    assert_events_name_the_window_objects(env, expected, second)


def assert_events_name_the_window_objects(env, expected, requests):
    """Two asset events per window (one per pass); the later names the window, its request and each
    object now under its prefix with its size."""
    events = env.stack.asset_events(DAILY_DAG)
    assert len(events) == 2 * len(expected)
    latest = {(event["extra"]["report"], event["extra"]["start"]): event["extra"] for event in events}
    assert set(latest) == expected
    for (report, start), extra in latest.items():
        objects = list(env.landed(f"echo360/{report}/dt={start}/"))
        assert extra["end"] == (dt.date.fromisoformat(start) + dt.timedelta(days=1)).isoformat()
        assert {extra["request_id"]} == requests[(report, start)]
        assert extra["objects"] == [
            {"uri": f"s3://{BUCKET}/{obj.key}", "size": obj.size, "rows": obj.rows} for obj in objects
        ]
