"""End to end: the daily example DAG backfilled on a real Airflow (PostgreSQL, LocalExecutor, a
scheduler, triggerer, dag-processor and api-server), against the sandbox and a moto S3 server."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from echo360_sandbox.state import submission_key

from devtools.environment import DAILY_DAG, DEFAULT_REPORTS, Echo360Environment

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
DAYS = 14
SPLIT_DAG = "echo360_split_sensor"


@pytest.fixture(scope="module")
def backfilled():
    """A 14-day backfill of 3 reports, created through POST /api/v2/backfills, max_active_runs 16."""
    with Echo360Environment(database="postgres", sandbox_options={"processing_seconds": 5}) as env:
        last_day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
        env.backfill_daily(DAYS, last_day=last_day, max_active_runs=16)
        runs = env.wait_for_backfill(DAYS, timeout=1200)
        yield env, runs, last_day


def expected_windows(last_day: dt.date) -> set[tuple[str, str]]:
    days = [last_day - dt.timedelta(days=n) for n in range(DAYS)]
    return {(report, day.isoformat()) for report in DEFAULT_REPORTS for day in days}


def test_every_run_succeeds_and_every_report_lands_byte_identical(backfilled):
    env, runs, last_day = backfilled
    assert sorted(run["state"] for run in runs) == ["success"] * DAYS
    landed = list(env.landed())
    assert {(obj.report, obj.start) for obj in landed} == expected_windows(last_day)
    assert len(landed) == DAYS * len(DEFAULT_REPORTS)
    for obj in landed:
        assert obj.body == env.served_bytes(obj), obj.key
        assert obj.rows == 200
    assert env.open_multipart_uploads() == []


def test_the_cap_held_and_each_window_was_submitted_once(backfilled):
    env, _, last_day = backfilled
    stats = env.sandbox.stats()
    assert stats["max_in_flight"] == 3
    assert stats["refused_in_flight"] == 0
    expected = {
        submission_key(
            report, {"start": start, "end": (dt.date.fromisoformat(start) + dt.timedelta(days=1)).isoformat()}
        )
        for report, start in expected_windows(last_day)
    }
    assert stats["submissions"] == dict.fromkeys(expected, 1)


def test_a_cleared_submit_reruns_without_a_new_submission(backfilled):
    env, runs, _ = backfilled
    run_id = runs[0]["dag_run_id"]
    submitted_before = env.sandbox.stats()["submitted"]
    env.stack.clear_task(DAILY_DAG, run_id, "submit_videoview", include_downstream=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        states = {ti["task_id"]: ti["state"] for ti in env.stack.task_instances(DAILY_DAG, run_id)}
        if states["submit_videoview"] == "success" and states["transfer_videoview"] == "success":
            break
        time.sleep(2)
    else:
        raise AssertionError(f"the cleared tasks did not finish: {states}")
    tries = env.stack.task_tries(DAILY_DAG, run_id, "submit_videoview")
    assert len(tries) >= 2  # it really ran again
    assert env.sandbox.stats()["submitted"] == submitted_before


def test_the_split_shape_ends_its_sensor_in_the_triggerer(backfilled):
    """Submit without waiting, then ReportStatusSensor: deferred, ended by its trigger, then the transfer."""
    env, _, last_day = backfilled
    day = last_day - dt.timedelta(days=DAYS + 2)  # a window the daily backfill did not request
    run_date = f"{day + dt.timedelta(days=1)}T00:00:00Z"  # a run is dated at its interval's end
    env.stack.unpause(SPLIT_DAG)
    env.stack.create_backfill(SPLIT_DAG, run_date, run_date, max_active_runs=1)
    (run,) = env.stack.wait_for_runs(SPLIT_DAG, 1, timeout=300, run_type="backfill")
    states = {ti["task_id"]: ti["state"] for ti in env.stack.task_instances(SPLIT_DAG, run["dag_run_id"])}
    tasks = ("submit_videoview", "wait_for_videoview", "transfer_videoview")
    assert states == dict.fromkeys(tasks, "success")
    request_id = env.stack.xcom(SPLIT_DAG, run["dag_run_id"], "submit_videoview")
    # The sensor pushed its result before deferring; the trigger's TaskSuccessEvent carried none.
    assert env.stack.xcom(SPLIT_DAG, run["dag_run_id"], "wait_for_videoview") == request_id
    assert len(env.stack.task_tries(SPLIT_DAG, run["dag_run_id"], "wait_for_videoview")) == 1
    (obj,) = [obj for obj in env.landed("echo360/videoview/") if obj.request_id == request_id]
    assert obj.start == day.isoformat()
    assert obj.body == env.served_bytes(obj)
