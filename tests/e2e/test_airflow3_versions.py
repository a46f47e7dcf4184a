"""End to end, lean, on the older Airflow 3 releases of the version matrix (3.0, 3.1, 3.2): the daily
example DAG backfilled through ``POST /api/v2/backfills`` over 2 days, its submit tasks deferred and
ended in the triggerer, the days its transfers' asset events name (on 3.2, as the partitions of the
runs, each of which the example consumer DAG runs for), and the connection Test button.

``./scripts/matrix`` runs it in each 3.x entry's environment. On the project's own Airflow (3.3 and
later) it is skipped: the full suite (test_backfill.py, test_ui_browser.py, ...) checks all this there.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow import __version__ as AIRFLOW_VERSION
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_2_PLUS
from packaging.version import Version

from devtools.checks import (
    assert_cap_held,
    assert_consumer_read_each_day,
    assert_landed_byte_identical,
    assert_no_open_uploads,
    assert_one_submission_per_window,
    assert_runs_succeeded,
)
from devtools.environment import DAILY_DAG, DEFAULT_REPORTS

FULL_SUITE_FROM = Version("3.3")  # the project's own Airflow: tests/e2e as a whole runs there
_version = Version(AIRFLOW_VERSION)
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not Version("3") <= _version < FULL_SUITE_FROM,
        reason=f"for Airflow 3 releases before {FULL_SUITE_FROM} (the full e2e suite covers the newest);"
        f" this interpreter has {AIRFLOW_VERSION}",
    ),
]
SUBMITS = [f"submit_{report}" for report in DEFAULT_REPORTS]
CONSUMER = "echo360_videoview_by_day"  # defined from Airflow 3.2 on


@pytest.fixture(scope="module")
def env_options() -> dict[str, Any]:
    return {
        "sandbox_options": {"processing_seconds": 5},
        # The matrix's environments may start cold (no bytecode yet) on a machine shared with others.
        "stack_options": {"env": {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}, "startup_timeout": 300},
    }


@pytest.fixture(scope="module")
def backfill_days() -> int:
    return 2


@pytest.fixture(scope="module")
def env(env):
    """The module's environment, with the consumer DAG unpaused (from 3.2) before the backfill."""
    if AIRFLOW_V_3_2_PLUS:
        env.stack.wait_for_dag(CONSUMER, timeout=180)
        env.stack.unpause(CONSUMER)
    return env


def test_every_run_succeeds_and_every_report_lands_byte_identical(env, backfilled):
    assert_runs_succeeded(backfilled.runs, len(backfilled.days))
    assert_landed_byte_identical(env, backfilled.windows, rows=200)
    assert_no_open_uploads(env)


def test_the_cap_held_and_each_window_was_submitted_once(backfilled):
    # 6 requests for 3 slots: the cap is reached, but 2 days may not keep it full throughout.
    assert_cap_held(backfilled.stats, full=False)
    assert backfilled.stats["refused_in_flight"] == 0
    assert_one_submission_per_window(backfilled.stats, backfilled.windows)


def test_submit_tasks_deferred_and_were_ended_in_the_triggerer(env, backfilled):
    """Each submit deferred, and the triggerer ended it on its trigger's TaskSuccessEvent
    (``Trigger.submit_event`` marks the task instance and logs the success callback it sends): one
    try, success, its trigger log, one such callback."""
    logs = env.stack.task_log_texts()
    callbacks = [
        line for line in env.stack.component_logs()["triggerer"].splitlines() if "Sending callback:" in line
    ]
    for run in backfilled.runs:
        run_id = run["dag_run_id"]
        for task_id in SUBMITS:
            (attempt,) = env.stack.task_tries(DAILY_DAG, run_id, task_id)
            assert (attempt["state"], attempt["try_number"]) == ("success", 1), attempt
            prefix = f"dag_id={DAILY_DAG}/run_id={run_id}/task_id={task_id}/attempt=1.log"
            assert "Pausing task as DEFERRED" in logs[prefix], logs[prefix]
            assert [path for path in logs if path.startswith(prefix + ".trigger.")], sorted(logs)
            ended = [
                line
                for line in callbacks
                if f"task_id='{task_id}', dag_id='{DAILY_DAG}', run_id='{run_id}'" in line
            ]
            assert len(ended) == 1 and "task_callback_type=<TaskInstanceState.SUCCESS" in ended[0], ended


def test_each_transfer_event_names_its_day_and_on_3_2_as_its_runs_partition(env, backfilled):
    """Airflow 3.2 gives an asset event only its run's partition key: the daily DAG's runs there are
    daily partitions (``CronPartitionTimetable``), so that each event carries its day. Before 3.2,
    the day is in the event's extra alone."""
    events = [e for e in env.stack.asset_events(DAILY_DAG) if e["source_task_id"].startswith("transfer_")]
    assert len(events) == len(backfilled.days) * len(DEFAULT_REPORTS), events
    keys = sorted(f"{day}T00:00:00" for day in backfilled.days)
    for event in events:
        assert len(event["extra"]["partitions"]) == 1 and event["extra"]["partitions"][0] in keys, event
        expected = event["extra"]["partitions"][0] if AIRFLOW_V_3_2_PLUS else None
        assert event.get("partition_key") == expected, event
    assert sorted({e["extra"]["partitions"][0] for e in events}) == keys


@pytest.mark.skipif(not AIRFLOW_V_3_2_PLUS, reason="partitioned asset events from Airflow 3.2 on")
def test_on_3_2_the_consumer_runs_once_per_landed_day_and_reads_its_manifest(env, backfilled):
    consumed = env.stack.wait_for_runs(CONSUMER, len(backfilled.days), timeout=300)
    assert_consumer_read_each_day(env, consumed, backfilled.days)


def test_the_connection_test_button_reaches_the_sandbox(env):
    """What the UI's Test button posts: the connection form's fields (``POST /connections/test``)."""
    connection = json.loads(env.sandbox.airflow_connection(extra=json.dumps(env.connection_extra)))
    result = env.stack.connection_test({"connection_id": "echo360_ui", **connection})
    assert result["status"] is True, result
    assert result["message"].startswith(f"Connected to {env.sandbox.base_url}: "), result
