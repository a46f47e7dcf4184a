"""End to end, the service on its hard days all at once (``devtools.hard_days``): an 8-day backfill of
the daily DAG on a real Airflow while every second day is empty, dates come back as timestamps and
statuses in upper case, 5 % of the API's answers are a proxy's HTML page, the answer to each
window's first submission is lost, and the service goes down for 2 minutes (1 of 503s, 1 of refused
connections) once the first reports are submitted. Every window lands once, and no task try fails.

The 5-minute outage is ``bench/outage_bench.py`` (results in ``bench/RESULTS.md``)."""

from __future__ import annotations

import datetime as dt
import json
import sys

import pytest

from devtools.checks import (
    assert_landed_byte_identical,
    assert_one_submission_per_window,
    assert_runs_succeeded,
    days_ending,
    windows,
)
from devtools.environment import last_complete_day
from devtools.hard_days import SANDBOX_OPTIONS, figures, go_down_once_submitting, is_empty

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
DAYS = 8


@pytest.fixture(scope="module")
def env_options():
    return {"sandbox_options": {"processing_seconds": 5, **SANDBOX_OPTIONS, "seed": 27}}


@pytest.fixture(scope="module")
def hard_days(env):
    env.backfill_daily(DAYS)
    go_down_once_submitting(env, unavailable=60, refused=60)
    runs = env.wait_for_backfill(DAYS, timeout=1200)
    result = figures(env, DAYS)
    sys.stderr.write(f"\nhard days: {json.dumps(result)}\n")
    return runs, result


def test_every_window_lands_once_and_no_try_fails(hard_days):
    runs, result = hard_days
    assert_runs_succeeded(runs, DAYS)
    assert result["tries failed"] == 0, result
    assert result["windows landed"] == result["windows"] == 3 * DAYS, result
    assert result["empty windows landed as 0 rows"] == 3 * DAYS // 2, result


def test_the_days_with_rows_land_byte_identical_and_each_window_was_submitted_once(env, hard_days):
    days = days_ending(last_complete_day(), DAYS)
    with_rows = windows([day for day in days if not is_empty(day)])
    assert_landed_byte_identical(env, with_rows)
    assert_one_submission_per_window(env.sandbox.stats(), windows(days))


def test_the_hard_days_were_real(hard_days):
    _, result = hard_days
    assert result["answers lost"] == 3 * DAYS  # every window's first answer
    assert result["html answers"] > 0 and result["503s in the outage"] > 0, result
    assert result["task logs that waited the outage out"] > 0, result  # past the hook's retries
    refused = [dt.datetime.fromisoformat(result[f"refused {edge}"]) for edge in ("from", "until")]
    assert (refused[1] - refused[0]).total_seconds() >= 59, result
