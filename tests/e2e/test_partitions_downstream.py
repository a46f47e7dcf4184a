"""End to end on Airflow 3.3: the daily DAG's backfill emits one partition key per landed day, and
the example consumer (``echo360_videoview_by_day``, a ``PartitionedAssetTimetable`` with
``StartOfDayMapper``) runs once per day, reading that day's manifest."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

from devtools.checks import assert_consumer_read_each_day, assert_runs_succeeded, days_ending
from devtools.environment import last_complete_day

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(1500),
    pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="a task emits partition keys from Airflow 3.3 on"),
]
CONSUMER = "echo360_videoview_by_day"
DAYS = 2


@pytest.fixture(scope="module")
def env_options():
    return {"reports": ("videoview",)}


@pytest.fixture(scope="module")
def consumed(env):
    env.stack.wait_for_dag(CONSUMER, timeout=180)
    env.stack.unpause(CONSUMER)
    env.backfill_daily(DAYS)
    assert_runs_succeeded(env.wait_for_backfill(DAYS, timeout=900), DAYS)
    return env.stack.wait_for_runs(CONSUMER, DAYS, timeout=300)


def test_the_consumer_runs_once_per_landed_day_and_reads_its_manifest(env, consumed):
    assert_consumer_read_each_day(env, consumed, days_ending(last_complete_day(), DAYS))
