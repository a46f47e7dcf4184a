"""End to end: the daily example DAG backfilled on a real Airflow (PostgreSQL, LocalExecutor, a
scheduler, triggerer, dag-processor and api-server), against the sandbox and a moto S3 server."""

from __future__ import annotations

import datetime as dt

import pytest

from devtools.checks import (
    assert_cap_held,
    assert_landed_byte_identical,
    assert_no_open_uploads,
    assert_one_submission_per_window,
    assert_runs_succeeded,
)
from devtools.environment import DAILY_DAG
from devtools.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
SPLIT_DAG = "echo360_split_sensor"


@pytest.fixture(scope="module")
def env_options():
    return {"sandbox_options": {"processing_seconds": 5}}


def test_every_run_succeeds_and_every_report_lands_byte_identical(env, backfilled):
    assert_runs_succeeded(backfilled.runs, len(backfilled.days))
    assert_landed_byte_identical(env, backfilled.windows, rows=200)
    assert_no_open_uploads(env)


def test_the_cap_held_and_each_window_was_submitted_once(backfilled):
    assert_cap_held(backfilled.stats)
    assert_one_submission_per_window(backfilled.stats, backfilled.windows)


def test_a_cleared_submit_reruns_without_a_new_submission(env, backfilled):
    run_id = backfilled.runs[0]["dag_run_id"]
    submitted_before = env.sandbox.stats()["submitted"]
    env.stack.clear_task(DAILY_DAG, run_id, "submit_videoview", include_downstream=True)

    def rerun() -> bool:
        states = env.stack.task_states(DAILY_DAG, run_id)
        return states["submit_videoview"] == states["transfer_videoview"] == "success"

    wait_for(rerun, 300, "the cleared tasks to finish", poll=2)
    assert len(env.stack.task_tries(DAILY_DAG, run_id, "submit_videoview")) >= 2  # it really ran again
    assert env.sandbox.stats()["submitted"] == submitted_before


def test_the_split_shape_ends_its_sensor_in_the_triggerer(env, backfilled):
    """Submit without waiting, then ReportStatusSensor: deferred, ended by its trigger, then the transfer."""
    day = backfilled.days[-1] - dt.timedelta(days=3)  # a window the daily backfill did not request
    run_date = f"{day + dt.timedelta(days=1)}T00:00:00Z"  # a run is dated at its interval's end
    env.stack.unpause(SPLIT_DAG)
    env.stack.create_backfill(SPLIT_DAG, run_date, run_date, max_active_runs=1)
    (run,) = env.stack.wait_for_runs(SPLIT_DAG, 1, timeout=300, run_type="backfill")
    tasks = ("submit_videoview", "wait_for_videoview", "transfer_videoview")
    assert env.stack.task_states(SPLIT_DAG, run["dag_run_id"]) == dict.fromkeys(tasks, "success")
    request_id = env.stack.xcom(SPLIT_DAG, run["dag_run_id"], "submit_videoview")
    # The sensor pushed its result before deferring; the trigger's TaskSuccessEvent carried none.
    assert env.stack.xcom(SPLIT_DAG, run["dag_run_id"], "wait_for_videoview") == request_id
    assert len(env.stack.task_tries(SPLIT_DAG, run["dag_run_id"], "wait_for_videoview")) == 1
    (obj,) = assert_landed_byte_identical(env, prefix=f"echo360/videoview/dt={day}/")
    assert obj.request_id == request_id
