"""End to end on Airflow's distributed deployment: the CeleryExecutor with two Celery workers on the
local Redis server, two schedulers, two triggerers, a dag-processor and an api-server, all on one
PostgreSQL database. The provider's guarantees must hold there unchanged: the 14-day, 3-report
backfill of tests/e2e/test_backfill.py lands the same bytes with the same cap and one submission a
window; and a triggerer killed -9 while it waits for reports hands its triggers to the other one,
which completes them without a new submission."""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
from collections import Counter
from typing import Any

import pytest
from echo360_sandbox.state import submission_key

from devtools.environment import DAILY_DAG, DEFAULT_REPORTS, Echo360Environment

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
DAYS = 14
# A triggerer whose heartbeat is older than this (seconds; default 30) is dead: the other one
# takes its triggers. Heartbeats come every 2 s (AirflowStack's fast settings).
TRIGGERER_HEALTH_CHECK_THRESHOLD = 10
STACK = {
    "executor": "CeleryExecutor",
    "schedulers": 2,
    "triggerers": 2,
    "celery_workers": 2,
    "env": {"AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_CHECK_THRESHOLD)},
}
# The API's 120 calls a minute are per institution, the hook's limiter per process: with two
# triggerers and tasks on two workers, the calls of all of them together exceed it and the API answers
# 429. The hook then waits what Retry-After says (1-2 s): the default 6 retries give up within ~15 s,
# shorter than the API's one-minute window, so they get enough to outlast it (see the README).
MAX_RETRIES = 40
TRIGGER_LOG = re.compile(r"task_id=(?P<task>[^/]+)/attempt=\d+\.log\.trigger\.(?P<job>\d+)\.log$")


class ScaleOutEnvironment(Echo360Environment):
    def airflow_env(self) -> dict[str, str]:
        env = super().airflow_env()
        extra = {"backoff_seconds": 0.5, "max_retries": MAX_RETRIES}
        env["AIRFLOW_CONN_ECHO360_DEFAULT"] = self.sandbox.airflow_connection(extra=extra)
        return env


@pytest.fixture(scope="module")
def env():
    with ScaleOutEnvironment(
        database="postgres", sandbox_options={"processing_seconds": 5}, stack_options=STACK
    ) as env:
        yield env
    # Every component, Celery's pool processes and task processes included, is gone.
    assert env.stack.leftover_processes() == []


@pytest.fixture(scope="module")
def backfilled(env):
    """The 14-day backfill of 3 reports, created through POST /api/v2/backfills, max_active_runs 16;
    the sandbox's stats are taken as it ends (later tests submit more)."""
    last_day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
    started = time.monotonic()
    backfill_id = env.backfill_daily(DAYS, last_day=last_day, max_active_runs=16)
    runs = env.wait_for_backfill(DAYS, timeout=1200)
    stats = env.sandbox.stats()
    took = time.monotonic() - started
    sys.stderr.write(
        f"\nAirflow ready in {env.stack.ready_after:.0f} s; the backfill took {took:.0f} s;"
        f" calls refused for the rate limit: {stats['refused_rate_limited']}\n"
    )
    # A DAG has one backfill at a time: the next one can start once this one is marked complete.
    wait_for(lambda: env.stack.backfill(backfill_id)["completed_at"], 60, "the backfill to be completed")
    return runs, last_day, stats


def windows(days: list[dt.date]) -> set[tuple[str, str]]:
    return {(report, day.isoformat()) for report in DEFAULT_REPORTS for day in days}


def submission_keys(expected: set[tuple[str, str]]) -> set[str]:
    return {
        submission_key(
            report, {"start": start, "end": (dt.date.fromisoformat(start) + dt.timedelta(days=1)).isoformat()}
        )
        for report, start in expected
    }


def wait_for(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def trigger_log_jobs(env: Echo360Environment, run_id: str | None = None) -> dict[str, set[int]]:
    """Task id -> ids of the triggerer jobs that ran its trigger (``attempt=N.log.trigger.<job>.log``)."""
    found: dict[str, set[int]] = {}
    for path in env.stack.task_log_texts():
        match = TRIGGER_LOG.search(path)
        if match and (run_id is None or f"/run_id={run_id}/" in path):
            found.setdefault(match["task"], set()).add(int(match["job"]))
    return found


def test_every_run_succeeds_and_every_report_lands_byte_identical(env, backfilled):
    runs, last_day, _ = backfilled
    assert sorted(run["state"] for run in runs) == ["success"] * DAYS
    failed_tries = env.stack.db_query(
        "SELECT run_id, task_id, try_number FROM task_instance_history WHERE dag_id = %s", (DAILY_DAG,)
    )
    assert failed_tries == []  # no try failed (e.g. given up on 429s) and was saved by a retry
    landed = list(env.landed())
    days = [last_day - dt.timedelta(days=n) for n in range(DAYS)]
    assert {(obj.report, obj.start) for obj in landed} == windows(days)
    assert len(landed) == DAYS * len(DEFAULT_REPORTS)
    for obj in landed:
        assert obj.body == env.served_bytes(obj), obj.key
        assert obj.rows == 200
    assert env.open_multipart_uploads() == []


def test_the_cap_held_and_each_window_was_submitted_once(backfilled):
    _, last_day, stats = backfilled
    assert stats["max_in_flight"] == 3
    assert stats["refused_in_flight"] == 0
    days = [last_day - dt.timedelta(days=n) for n in range(DAYS)]
    assert stats["submissions"] == dict.fromkeys(submission_keys(windows(days)), 1)


def test_the_work_was_spread_over_both_schedulers_workers_and_triggerers(env, backfilled):
    stack = env.stack
    logs = stack.component_logs()
    for worker in ("celery-worker", "celery-worker-2"):
        assert logs[worker].count("execute_workload") > 0, f"{worker} ran no task"
    triggerer_jobs = {stack.job_id("triggerer"), stack.job_id("triggerer-2")}
    ran = set().union(*trigger_log_jobs(env).values())
    assert ran == triggerer_jobs, (ran, triggerer_jobs)
    scheduler_jobs = {stack.job_id("scheduler"), stack.job_id("scheduler-2")}
    queued_by = stack.db_query(
        "SELECT DISTINCT queued_by_job_id FROM task_instance WHERE dag_id = %s AND run_id LIKE 'backfill%%'",
        (DAILY_DAG,),
    )
    assert {row["queued_by_job_id"] for row in queued_by} == scheduler_jobs


def test_a_triggerer_killed_midway_hands_its_triggers_to_the_other_without_a_new_submission(env, backfilled):
    runs, last_day, _ = backfilled
    stack = env.stack
    # Long enough for the kill and the hand-over to happen while all three requests are Pending.
    env.sandbox.set_config(processing_seconds=20)
    day = last_day - dt.timedelta(days=DAYS)  # the day before the first backfill's range
    before = env.sandbox.stats()
    env.backfill_daily(1, last_day=day)
    known = {run["dag_run_id"] for run in runs}
    (run,) = wait_for(
        lambda: [r for r in stack.dag_runs(DAILY_DAG, "backfill") if r["dag_run_id"] not in known],
        120,
        "the new backfill run",
    )
    run_id = run["dag_run_id"]

    def running_triggers() -> list[dict[str, Any]]:
        """The three deferred submits, once each trigger runs (it has logged) on its triggerer."""
        rows = stack.db_query(
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
        now = {r["id"]: r["triggerer_id"] for r in stack.db_query("SELECT id, triggerer_id FROM trigger")}
        return all(now.get(trigger_id) == jobs[survivor] for trigger_id in moved)

    wait_for(reassigned, 120, f"the triggers of {victim} to move to {survivor}", poll=0.25)
    took = time.monotonic() - killed_at
    sys.stderr.write(f"\n{len(moved)} trigger(s) of {victim} moved to {survivor} {took:.1f} s after kill\n")
    assert took < TRIGGERER_HEALTH_CHECK_THRESHOLD + 30

    done = stack.wait_for_runs(DAILY_DAG, DAYS + 1, timeout=600, run_type="backfill")
    assert {r["dag_run_id"]: r["state"] for r in done}[run_id] == "success"
    after = env.sandbox.stats()
    expected = submission_keys(windows([day]))
    assert after["submitted"] == before["submitted"] + len(expected)  # none resubmitted
    assert {key: after["submissions"].get(key) for key in expected} == dict.fromkeys(expected, 1)
    assert after["max_in_flight"] == 3 and after["refused_in_flight"] == 0
    landed = [obj for obj in env.landed() if obj.start == day.isoformat()]
    assert sorted(obj.report for obj in landed) == sorted(DEFAULT_REPORTS)
    for obj in landed:
        assert obj.body == env.served_bytes(obj), obj.key
    # Each moved trigger ran on both triggerers: a trigger log file per triggerer job.
    ran = trigger_log_jobs(env, run_id)
    for task_id in moved.values():
        assert ran.get(task_id) == {jobs[victim], jobs[survivor]}, (task_id, ran)
