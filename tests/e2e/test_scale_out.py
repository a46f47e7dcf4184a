"""End to end on Airflow's distributed deployment: the CeleryExecutor with two Celery workers on the
local Redis server, two schedulers, two triggerers, a dag-processor and an api-server, all on one
PostgreSQL database. The provider's guarantees must hold there unchanged: a 14-day, 3-report backfill
lands the same bytes with the same cap and one submission a window; and a triggerer killed -9 while it
waits for reports hands its triggers to the other one, which completes them without a new submission."""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
from collections import Counter
from typing import Any

import pytest

from devtools.checks import (
    assert_cap_held,
    assert_landed_byte_identical,
    assert_no_open_uploads,
    assert_one_submission_per_window,
    assert_runs_succeeded,
    windows,
)
from devtools.environment import DAILY_DAG, DEFAULT_REPORTS, Echo360Environment
from devtools.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
# A triggerer whose heartbeat is older than this (seconds; default 30) is dead: the other one
# takes its triggers. Heartbeats come every 2 s (AirflowStack's settings).
TRIGGERER_HEALTH_CHECK_THRESHOLD = 10
# The API's 120 calls a minute are per institution, the hook's limiter per process: with two
# triggerers and tasks on two workers, the calls of all of them together exceed it and the API answers
# 429. The hook then waits what Retry-After says (1-2 s): the default 6 retries give up within ~15 s,
# shorter than the API's one-minute window, so they get enough to outlast it (see the README).
MAX_RETRIES = 40
TRIGGER_LOG = re.compile(r"task_id=(?P<task>[^/]+)/attempt=\d+\.log\.trigger\.(?P<job>\d+)\.log$")


@pytest.fixture(scope="module")
def env_options():
    threshold = {
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_CHECK_THRESHOLD)
    }
    return {
        "sandbox_options": {"processing_seconds": 5},
        "connection_extra": {"max_retries": MAX_RETRIES},
        "stack_options": {
            "executor": "CeleryExecutor",
            "schedulers": 2,
            "triggerers": 2,
            "celery_workers": 2,
            "env": threshold,
        },
    }


@pytest.fixture(scope="module")
def backfill_days() -> int:
    """Two weeks: triggers come about 3 at a time (the cap) and the first triggerer to look takes them;
    14 such batches leave far less to chance than a week's 7 that both triggerers get some."""
    return 14


def trigger_log_jobs(env: Echo360Environment, run_id: str | None = None) -> dict[str, set[int]]:
    """Task id -> ids of the triggerer jobs that ran its trigger (``attempt=N.log.trigger.<job>.log``)."""
    found: dict[str, set[int]] = {}
    for path in env.stack.task_log_texts():
        match = TRIGGER_LOG.search(path)
        if match and (run_id is None or f"/run_id={run_id}/" in path):
            found.setdefault(match["task"], set()).add(int(match["job"]))
    return found


def test_every_run_succeeds_and_every_report_lands_byte_identical(env, backfilled):
    assert_runs_succeeded(backfilled.runs, len(backfilled.days))
    failed_tries = env.stack.metadata_db.query(
        "SELECT run_id, task_id, try_number FROM task_instance_history WHERE dag_id = %s", (DAILY_DAG,)
    )
    assert failed_tries == []  # no try failed (e.g. given up on 429s) and was saved by a retry
    assert_landed_byte_identical(env, backfilled.windows, rows=200)
    assert_no_open_uploads(env)


def test_the_cap_held_and_each_window_was_submitted_once(backfilled):
    assert_cap_held(backfilled.stats)
    assert_one_submission_per_window(backfilled.stats, backfilled.windows)


def test_the_work_was_spread_over_both_schedulers_workers_and_triggerers(env, backfilled):
    stack = env.stack
    logs = stack.component_logs()
    for worker in ("celery-worker", "celery-worker-2"):
        assert logs[worker].count("execute_workload") > 0, f"{worker} ran no task"
    triggerer_jobs = {stack.job_id("triggerer"), stack.job_id("triggerer-2")}
    ran = set().union(*trigger_log_jobs(env).values())
    assert ran == triggerer_jobs, (ran, triggerer_jobs)
    scheduler_jobs = {stack.job_id("scheduler"), stack.job_id("scheduler-2")}
    queued_by = stack.metadata_db.query(
        "SELECT DISTINCT queued_by_job_id FROM task_instance WHERE dag_id = %s AND run_id LIKE 'backfill%%'",
        (DAILY_DAG,),
    )
    assert {row["queued_by_job_id"] for row in queued_by} == scheduler_jobs


def test_a_triggerer_killed_midway_hands_its_triggers_to_the_other_without_a_new_submission(env, backfilled):
    stack = env.stack
    # Long enough for the kill and the hand-over to happen while all three requests are Pending.
    env.sandbox.set_config(processing_seconds=20)
    day = backfilled.days[-1] - dt.timedelta(days=1)  # the day before the first backfill's range
    before = env.sandbox.stats()
    env.backfill_daily(1, last_day=day)
    known = {run["dag_run_id"] for run in backfilled.runs}
    (run,) = wait_for(
        lambda: [r for r in stack.dag_runs(DAILY_DAG, "backfill") if r["dag_run_id"] not in known],
        120,
        "the new backfill run",
    )
    run_id = run["dag_run_id"]

    def running_triggers() -> list[dict[str, Any]]:
        """The three deferred submits, once each trigger runs (it has logged) on its triggerer."""
        rows = stack.metadata_db.query(
            "SELECT ti.task_id, t.id AS trigger_id, t.triggerer_id FROM task_instance ti"
            " JOIN trigger t ON t.id = ti.trigger_id"
            " WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.state = 'deferred'",
            (DAILY_DAG, run_id),
        )
        ran = trigger_log_jobs(env, run_id)
        running = [r for r in rows if r["triggerer_id"] and r["triggerer_id"] in ran.get(r["task_id"], ())]
        return rows if len(running) == 3 else []

    rows = wait_for(running_triggers, 180, "three deferred submits, each trigger running on a triggerer")
    assert env.sandbox.stats()["in_flight"] == 3
    jobs = {name: stack.job_id(name) for name in ("triggerer", "triggerer-2")}
    held = Counter(row["triggerer_id"] for row in rows)
    victim = max(jobs, key=lambda name: held[jobs[name]])  # the one running the most of them
    survivor = next(name for name in jobs if name != victim)
    moved = {row["trigger_id"]: row["task_id"] for row in rows if row["triggerer_id"] == jobs[victim]}
    assert moved and set(held) <= set(jobs.values())

    killed_at = time.monotonic()
    stack.kill(victim)  # SIGKILL to its process group: the triggerer and its trigger runner
    assert not stack.is_alive(victim)

    def reassigned() -> bool:
        now = {
            r["id"]: r["triggerer_id"]
            for r in stack.metadata_db.query("SELECT id, triggerer_id FROM trigger")
        }
        return all(now.get(trigger_id) == jobs[survivor] for trigger_id in moved)

    wait_for(reassigned, 120, f"the triggers of {victim} to move to {survivor}", poll=0.25)
    took = time.monotonic() - killed_at
    sys.stderr.write(f"\n{len(moved)} trigger(s) of {victim} moved to {survivor} {took:.1f} s after kill\n")
    assert took < TRIGGERER_HEALTH_CHECK_THRESHOLD + 30

    done = stack.wait_for_runs(DAILY_DAG, len(backfilled.days) + 1, timeout=600, run_type="backfill")
    assert {r["dag_run_id"]: r["state"] for r in done}[run_id] == "success"
    after = env.sandbox.stats()
    assert after["submitted"] == before["submitted"] + len(DEFAULT_REPORTS)  # none resubmitted
    assert_one_submission_per_window(after, windows([day]), only=False)
    assert_cap_held(after)
    for report in DEFAULT_REPORTS:
        assert_landed_byte_identical(env, windows([day], [report]), prefix=f"echo360/{report}/dt={day}/")
    # Each moved trigger ran on both triggerers: a trigger log file per triggerer job.
    ran = trigger_log_jobs(env, run_id)
    for task_id in moved.values():
        assert ran.get(task_id) == {jobs[victim], jobs[survivor]}, (task_id, ran)
