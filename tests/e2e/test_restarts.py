"""Restarts on a real Airflow (PostgreSQL): a triggerer killed -9 while three requests are deferred,
and a task killed -9 in the middle of a transfer."""

from __future__ import annotations

import os
import signal

import pytest

from devtools.airflow_stack import task_pids
from devtools.checks import (
    assert_landed_byte_identical,
    assert_no_open_uploads,
    assert_one_submission_per_window,
    assert_written_once,
    days_ending,
    windows,
)
from devtools.environment import BUCKET, DAILY_DAG, DEFAULT_REPORTS, last_complete_day
from devtools.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def test_a_triggerer_killed_while_three_requests_wait_hands_them_to_a_new_one(make_env):
    env = make_env(sandbox_options={"processing_seconds": 25})
    env.backfill_daily(1)
    (run,) = wait_for(lambda: env.stack.dag_runs(DAILY_DAG, "backfill"), 120, "the backfill run")
    submits = [f"submit_{report}" for report in DEFAULT_REPORTS]

    def deferred() -> bool:
        states = env.stack.task_states(DAILY_DAG, run["dag_run_id"])
        return all(states.get(task) == "deferred" for task in submits)

    wait_for(deferred, 120, "three deferred submit tasks")
    assert env.sandbox.stats()["in_flight"] == 3
    env.stack.kill("triggerer")  # -9, with its trigger runner
    env.stack.restart("triggerer")
    (done,) = env.wait_for_backfill(1, timeout=600)
    assert done["state"] == "success"
    # The new triggerer resumed the same requests.
    expected = windows(days_ending(last_complete_day(), 1))
    assert_one_submission_per_window(env.sandbox.stats(), expected)


def test_a_task_killed_in_the_middle_of_a_transfer_is_retried_and_writes_each_object_once(make_env):
    # ~300 MB a report, so that the transfer lasts seconds even on an idle machine.
    sandbox = {"processing_seconds": 1, "rows_per_day": 600_000}
    env = make_env(reports=["viewsessions"], sandbox_options=sandbox)
    client = env.s3.client()
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    env.backfill_daily(1)
    (run,) = wait_for(lambda: env.stack.dag_runs(DAILY_DAG, "backfill"), 120, "the backfill run")
    run_id = run["dag_run_id"]

    def running_transfer() -> dict | None:
        tis = env.stack.task_instances(DAILY_DAG, run_id)
        return next(
            (t for t in tis if t["task_id"] == "transfer_viewsessions" and t["state"] == "running"), None
        )

    ti = wait_for(running_transfer, 600, "the transfer to run", poll=0.2)
    # Kill the moment an upload is open: the task process is then in the middle of the transfer.
    pids = wait_for(
        lambda: client.list_multipart_uploads(Bucket=BUCKET).get("Uploads") and task_pids(ti["id"]),
        600,
        "an upload under way in the task's process",
        poll=0.1,
    )
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    def transfer_state() -> str | None:
        return env.stack.task_states(DAILY_DAG, run_id)["transfer_viewsessions"]

    wait_for(lambda: transfer_state() in ("failed", "up_for_retry"), 180, "the killed transfer to be noticed")
    assert env.open_multipart_uploads(), "kill -9 leaves the upload open: the retry must deal with it"
    env.stack.clear_task(DAILY_DAG, run_id, "transfer_viewsessions")
    wait_for(lambda: transfer_state() == "success", 600, "the retry")
    expected = windows(days_ending(last_complete_day(), 1), ["viewsessions"])
    landed = assert_landed_byte_identical(env, expected)
    assert_written_once(env, landed)
    assert_no_open_uploads(env)  # the killed attempt's open upload was aborted by the retry
    assert_one_submission_per_window(env.sandbox.stats(), expected)
