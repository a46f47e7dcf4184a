"""Restarts on a real Airflow (PostgreSQL): a triggerer killed -9 while three requests are deferred,
and a task killed -9 in the middle of a transfer."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

import pytest

from devtools.environment import BUCKET, DAILY_DAG, DEFAULT_REPORTS, Echo360Environment

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def wait_for(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def states(env: Echo360Environment, run_id: str) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in env.stack.task_instances(DAILY_DAG, run_id)}


def test_a_triggerer_killed_while_three_requests_wait_hands_them_to_a_new_one():
    with Echo360Environment(database="postgres", sandbox_options={"processing_seconds": 25}) as env:
        env.backfill_daily(1)
        (run,) = wait_for(lambda: env.stack.dag_runs(DAILY_DAG, "backfill"), 120, "the backfill run")
        submits = [f"submit_{report}" for report in DEFAULT_REPORTS]
        wait_for(
            lambda: all(states(env, run["dag_run_id"]).get(t) == "deferred" for t in submits),
            120,
            "three deferred submit tasks",
        )
        assert env.sandbox.stats()["in_flight"] == 3
        env.stack.kill("triggerer")  # -9, with its trigger runner
        env.stack.restart("triggerer")
        (done,) = env.wait_for_backfill(1, timeout=600)
        stats = env.sandbox.stats()
    assert done["state"] == "success"
    assert stats["submitted"] == 3  # the new triggerer resumed the same requests


def test_a_task_killed_in_the_middle_of_a_transfer_is_retried_and_writes_each_object_once():
    # ~300 MB a report, so that the transfer lasts seconds even on an idle machine.
    sandbox = {"processing_seconds": 1, "rows_per_day": 600_000}
    with Echo360Environment(database="postgres", reports=["viewsessions"], sandbox_options=sandbox) as env:
        client = env.s3.client()
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        env.backfill_daily(1)
        (run,) = wait_for(lambda: env.stack.dag_runs(DAILY_DAG, "backfill"), 120, "the backfill run")

        def running_transfer() -> dict | None:
            tis = env.stack.task_instances(DAILY_DAG, run["dag_run_id"])
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
        wait_for(
            lambda: states(env, run["dag_run_id"])["transfer_viewsessions"] in ("failed", "up_for_retry"),
            180,
            "the killed transfer to be noticed",
        )
        assert env.open_multipart_uploads(), "kill -9 leaves the upload open: the retry must deal with it"
        env.stack.clear_task(DAILY_DAG, run["dag_run_id"], "transfer_viewsessions")
        wait_for(
            lambda: states(env, run["dag_run_id"])["transfer_viewsessions"] == "success", 600, "the retry"
        )
        landed = list(env.landed())
        versions = client.list_object_versions(Bucket=BUCKET, Prefix="echo360/").get("Versions", [])
        uploads = env.open_multipart_uploads()
        served = env.served_bytes(landed[0])
        submitted = env.sandbox.stats()["submitted"]
    assert [obj.report for obj in landed] == ["viewsessions"]
    assert landed[0].body == served
    assert Counter(v["Key"] for v in versions) == {landed[0].key: 1}
    assert uploads == []  # the killed attempt's open upload was aborted by the retry
    assert submitted == 1


def task_pids(ti_id: str) -> list[int]:
    """The task process: the Task SDK titles it ``airflow worker -- <task instance id>``."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines() if f"airflow worker -- {ti_id}" in line]
