"""End to end, as after years of daily runs: the institution's listing holds 5,000 earlier submissions,
oldest first, 50 a page (the worst order: the recent ones are on its last page). A backfill costs each
window what it costs a fresh institution, and a submit task killed while it waits in the worker is
retried without submitting again (its record is in the task state store; XCom was cleared).

The long version, with fresh and aged institutions side by side on Airflow 3.3 and 2.11, is
``bench/history_bench.py`` (results in ``bench/RESULTS.md``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import textwrap

import pytest

from devtools.airflow_stack import task_pids
from devtools.checks import assert_one_submission_per_window, assert_runs_succeeded, window_key
from devtools.environment import EXAMPLE_DAGS
from devtools.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
HISTORY = 5000
WAIT_DAG = "echo360_wait_in_worker"
#: The window of the worker-waiting DAG: a day long complete, that no backfill here asks for.
WAIT_DAY = dt.date.today() - dt.timedelta(days=30)
WAIT_DAG_SOURCE = f'''
"""A submit task that waits for its report in the worker (deferrable=False), for the restart test."""
import datetime as dt

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_echo360.operators.echo360 import SubmitReportOperator

with DAG("{WAIT_DAG}", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False):
    SubmitReportOperator(
        task_id="submit",
        report_name="notes",
        start="{WAIT_DAY}",
        end="{WAIT_DAY + dt.timedelta(days=1)}",
        deferrable=False,
        poll_interval=1,
        data_lag=0,
        retries=2,
        retry_delay=dt.timedelta(seconds=1),
    )
'''


@pytest.fixture(scope="module")
def env_options(tmp_path_factory):
    dags = tmp_path_factory.mktemp("dags")
    shutil.copytree(EXAMPLE_DAGS, dags, dirs_exist_ok=True)
    (dags / f"{WAIT_DAG}.py").write_text(textwrap.dedent(WAIT_DAG_SOURCE))
    listing = {"history": HISTORY, "requests_order": "oldest", "requests_page_size": 50}
    return {"dags_folder": dags, "sandbox_options": {"processing_seconds": 10, **listing}}


@pytest.fixture(scope="module")
def backfill_days():
    return 2


def test_a_backfill_with_5000_listed_reads_one_listing_page_a_window_at_most(env, backfilled):
    assert_runs_succeeded(backfilled.runs, len(backfilled.days))
    assert_one_submission_per_window(backfilled.stats, backfilled.windows)
    calls = backfilled.stats["calls"]
    count = len(backfilled.windows)
    # Read whole, the listing is 101 pages: a window's first try reads one (oldest first, it stops).
    assert calls.get("GET /requests", 0) <= count, calls
    api_calls = sum(n for endpoint, n in calls.items() if "token" not in endpoint)
    print(f"\n{api_calls / count:.1f} API calls per window with {HISTORY} listed: {calls}")
    assert backfilled.stats["refused_rate_limited"] == 0
    # Each window's request is recorded where another run or DAG of this Airflow finds it.
    records = [json.loads(value) for value in env.stack.variables("echo360_submission_").values()]
    assert len(records) == count and {record["outcome"] for record in records} == {"submitted"}


def test_a_submit_task_killed_while_it_waits_in_the_worker_is_retried_and_submits_nothing(env):
    env.sandbox.set_config(processing_seconds=90)  # Pending long after the kill
    env.stack.wait_for_dag(WAIT_DAG, timeout=180)
    env.stack.unpause(WAIT_DAG)
    run_id = env.stack.api("POST", f"/dags/{WAIT_DAG}/dagRuns", json={"logical_date": None})["dag_run_id"]
    key = window_key(("notes", WAIT_DAY.isoformat()))

    def waiting_ti() -> dict | None:
        submitted = env.sandbox.stats()["submissions"].get(key)
        (ti,) = env.stack.task_instances(WAIT_DAG, run_id)
        return ti if submitted and ti["state"] == "running" else None

    ti = wait_for(waiting_ti, 300, "the submit task to wait for its request", poll=0.5)
    pids = wait_for(lambda: task_pids(ti["id"]), 60, "the submit task's process", poll=0.2)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    def over() -> str | None:
        (ti,) = env.stack.task_instances(WAIT_DAG, run_id)
        return ti["state"] if ti["state"] in ("success", "failed") else None

    assert wait_for(over, 600, "the retry to end", poll=2) == "success"
    tries = env.stack.task_tries(WAIT_DAG, run_id, "submit")
    assert len(tries) >= 2, tries
    assert env.sandbox.stats()["submissions"][key] == 1  # the retry waited on the same request
