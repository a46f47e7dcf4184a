"""End to end on a real Airflow 2.11 (PostgreSQL, LocalExecutor, scheduler, triggerer, standalone
dag-processor, webserver) against the sandbox and a moto S3 server: the daily example DAG backfilled
with ``airflow dags backfill``, the pool counting deferred tasks, submit tasks ended in the triggerer,
the connection form and its Test button.

Run with an interpreter that has Airflow 2 (it is skipped on Airflow 3), e.g.
``python -m pytest tests/e2e/test_airflow2.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from devtools import services
from devtools.checks import (
    assert_cap_held,
    assert_landed_byte_identical,
    assert_no_open_uploads,
    assert_one_submission_per_window,
    assert_runs_succeeded,
    days_ending,
    windows,
)
from devtools.environment import DAILY_DAG, DEFAULT_REPORTS, POOL, Echo360Environment, last_complete_day
from devtools.processes import Process

pytestmark = [pytest.mark.e2e, pytest.mark.airflow2, pytest.mark.timeout(900)]
DAYS = 4
SUBMITS = [f"submit_{report}" for report in DEFAULT_REPORTS]


@pytest.fixture(scope="module")
def service_options(postgres_server: services.Postgres) -> dict[str, Any]:
    """PostgreSQL only: the Airflow 2 stack runs no Celery (so needs no Redis)."""
    return postgres_server.stack_options()


@dataclass(frozen=True)
class CliBackfill:
    runs: list[dict[str, Any]]
    days: list[dt.date]  # latest first
    stats: dict[str, Any]  # the sandbox's, as the backfill ended
    pool_samples: list[dict[str, Any]]  # GET /pools/echo360_reports while it ran


@pytest.fixture(scope="module")
def backfilled(env: Echo360Environment) -> CliBackfill:
    """``airflow dags backfill`` of the daily DAG over DAYS days, the pool sampled as it runs."""
    last_day = last_complete_day()
    started = time.monotonic()
    env.backfill_daily(DAYS, last_day=last_day)
    assert env.cli_backfill is not None
    samples = list(sample_pool(env, env.cli_backfill, deadline=started + 600))
    runs = env.wait_for_backfill(DAYS, timeout=60)
    sys.stderr.write(
        f"\nAirflow 2 ready in {env.stack.ready_after:.0f} s;"
        f" the CLI backfill took {time.monotonic() - started:.0f} s\n"
    )
    return CliBackfill(runs, days_ending(last_day, DAYS), env.sandbox.stats(), samples)


def sample_pool(env: Echo360Environment, backfill: Process, *, deadline: float) -> Iterator[dict[str, Any]]:
    """The pool's slots every 0.3 s while the backfill runs (up to ``deadline``)."""
    while backfill.alive and time.monotonic() < deadline:
        yield env.stack.pool(POOL)
        time.sleep(0.3)


def test_the_cli_backfill_runs_the_data_days_and_lands_every_report_byte_identical(env, backfilled):
    assert_runs_succeeded(backfilled.runs, DAYS)
    # The CLI's -s/-e are logical dates: each run covers its own data day.
    assert sorted(run["run_type"] for run in backfilled.runs) == ["backfill"] * DAYS
    intervals = sorted((r["data_interval_start"][:10], r["data_interval_end"][:10]) for r in backfilled.runs)
    assert intervals == sorted((str(d), str(d + dt.timedelta(days=1))) for d in backfilled.days)
    assert_landed_byte_identical(env, windows(backfilled.days), rows=200)
    assert_no_open_uploads(env)


def test_the_cap_held_and_each_window_was_submitted_once(backfilled):
    assert_cap_held(backfilled.stats)
    assert_one_submission_per_window(backfilled.stats, windows(backfilled.days))


def test_each_submission_is_recorded_in_a_variable_where_a_retry_finds_it(env, backfilled):
    """Airflow 2 has no task state store: each submit task records its request in a Variable named
    after its window, the record a retry, a clear or another run reads instead of the listing."""
    records = [json.loads(value) for value in env.stack.variables("echo360_submission_").values()]
    submitted = {
        env.stack.xcom(DAILY_DAG, run["dag_run_id"], task_id)
        for run in backfilled.runs
        for task_id in SUBMITS
    }
    assert {record["request_id"] for record in records} == submitted
    assert {record["outcome"] for record in records} == {"submitted"}
    assert len(records) == len(submitted) == DAYS * len(SUBMITS)


def test_the_pool_counted_deferred_submit_tasks(backfilled):
    """The pool held at most 3 submit tasks running, queued or deferred, and deferred ones took its
    slots: with 12 submits to run, a pool that left deferred tasks out would have run more."""
    samples = backfilled.pool_samples
    assert samples, "the backfill ended before the pool could be sampled"
    assert all(s["include_deferred"] for s in samples)
    # (running, queued, deferred, open) -> how many samples saw it
    seen = Counter(
        (s["running_slots"], s["queued_slots"], s["deferred_slots"], s["open_slots"]) for s in samples
    )
    # occupied_slots is one query (running, queued and deferred together); the three counts are three
    # queries, and a task moving from running to deferred between them was once counted twice.
    assert max(s["occupied_slots"] for s in samples) <= 3, seen
    # Full with deferred tasks: no slot open while only deferred tasks held them.
    assert seen[(0, 0, 3, 0)] >= 3, seen


def test_submit_tasks_deferred_and_were_ended_by_their_trigger(env, backfilled):
    """Airflow 2.11 ends a task whose trigger yields TaskSuccessEvent in the triggerer
    (BaseTaskEndEvent.handle_submit, which logs the success callback it sends): one try, one task
    process (the one that deferred), no resumption on a worker."""
    logs = env.stack.task_log_texts()
    components = env.stack.component_logs()
    for run in backfilled.runs:
        run_id = run["dag_run_id"]
        for task_id in SUBMITS:
            (attempt,) = env.stack.task_tries(DAILY_DAG, run_id, task_id)
            assert (attempt["state"], attempt["try_number"]) == ("success", 1)
            log = task_log(logs, run_id, task_id)
            assert "Pausing task as DEFERRED" in log
            assert "Task exited with return code 100 (task deferral)" in log
            assert "Resuming after deferral" not in log
            command = str(["airflow", "tasks", "run", DAILY_DAG, task_id, run_id])[:-1]  # then its options
            worker = f"QueuedLocalWorker running {command}"
            assert components["backfill"].count(worker) == 1, (task_id, run_id)
            ended = [
                line
                for line in components["triggerer"].splitlines()
                if "Sending callback:" in line and f"task_id='{task_id}', run_id='{run_id}'" in line
            ]
            assert len(ended) == 1 and "state=<TaskInstanceState.SUCCESS" in ended[0], ended


def task_log(logs: dict[str, str], run_id: str, task_id: str) -> str:
    """The task log of the first try (Airflow 2: ``dag_id=../run_id=../task_id=../attempt=1.log``)."""
    path = f"dag_id={DAILY_DAG}/run_id={run_id}/task_id={task_id}/attempt=1.log"
    assert path in logs, sorted(logs)
    return logs[path]


def ui_test_body(env: Echo360Environment, secret: str) -> dict[str, Any]:
    """What the 2.x UI's Test button posts for an Echo360 connection to the sandbox
    (``getSerializedFormData`` in connection_form.js): the port as a number, and each custom field
    in ``extra`` under both its form name and its plain name, its value as a string."""
    fields = {"region": "us", "calls_per_minute": "120"}
    extra = {}
    for name, value in fields.items():
        extra[f"extra__echo360__{name}"] = value
        extra[name] = value
    return {
        "connection_id": "echo360_ui_test",
        "conn_type": "echo360",
        "host": env.sandbox.base_url,
        "login": env.sandbox.client_id,
        "password": secret,
        "port": env.sandbox.port,
        "extra": json.dumps(extra),
    }


def test_the_test_button_connects_to_the_sandbox(env):
    answer = env.stack.connection_test(ui_test_body(env, env.sandbox.client_secret))
    assert answer["status"] is True, answer
    token = env.sandbox.access_token()
    listing = requests.get(
        f"{env.sandbox.api_url}/reports", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).json()
    count = len(listing["reports"] if isinstance(listing, dict) else listing)
    expected = f"Connected to {env.sandbox.base_url}: {count} reports available."
    assert answer["message"] == expected, answer


def test_the_test_button_refuses_a_wrong_secret_without_echoing_it(env):
    secret = "wrong-" + env.sandbox.client_secret[::-1]
    answer = env.stack.connection_test(ui_test_body(env, secret))
    assert answer["status"] is False, answer
    assert secret not in json.dumps(answer)
    assert env.sandbox.client_secret not in json.dumps(answer)


def test_the_connection_form_offers_echo360_with_its_extra_fields(env):
    session = env.stack.web_login()
    page = session.get(f"{env.stack.base_url}/connection/add", timeout=30)
    assert page.status_code == 200
    assert re.search(r'<option[^>]*value="echo360"', page.text), "no echo360 connection type"
    for field in ("extra__echo360__region", "extra__echo360__calls_per_minute"):
        assert re.search(rf'name="{field}"', page.text), field
