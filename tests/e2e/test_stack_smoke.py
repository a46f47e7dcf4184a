"""Smoke test of the real-Airflow harness (devtools.airflow_stack).

A DAG whose only task defers for a few seconds, in a 1-slot pool that counts deferred tasks, is
backfilled over 3 days the way the UI does it. The runs must succeed one task at a time, and the
triggerer must really have run the trigger.
"""

from __future__ import annotations

import contextlib
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from devtools import services
from devtools.airflow_stack import dump_json
from devtools.metadata_db import TEMPLATE_PREFIX, MetadataDatabase
from devtools.stacks import airflow_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DAG_ID = "stack_smoke"
POOL = "smoke_pool"
DEFER_SECONDS = 5

DAG_FILE = '''
from datetime import timedelta

import pendulum

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import DAG, BaseOperator


class DeferFor(BaseOperator):
    """Defers on a TimeDeltaTrigger, then resumes on a worker and returns the trigger's event."""

    def __init__(self, seconds: float, **kwargs):
        super().__init__(**kwargs)
        self.seconds = seconds

    def execute(self, context):
        self.log.info("deferring for %s s", self.seconds)
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=self.seconds)), method_name="resume")

    def resume(self, context, event=None):
        self.log.info("resumed after trigger event %r", event)
        return {{"resumed": True, "event": str(event)}}


with DAG(
    dag_id="{dag_id}",
    schedule="@daily",
    catchup=False,
    start_date=pendulum.parse("{start}"),
    end_date=pendulum.parse("{end}"),
):
    DeferFor(task_id="wait", seconds={seconds}, pool="{pool}")
'''


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_backfill_of_deferring_task_in_one_slot_pool(
    tmp_path: Path, database: str, service_options: dict[str, Any]
) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=6)
    # end_date in the past: unpausing creates no scheduled run, only the backfill's three.
    end = today - timedelta(days=3)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "stack_smoke.py").write_text(
        textwrap.dedent(DAG_FILE).format(
            dag_id=DAG_ID, start=start.isoformat(), end=end.isoformat(), seconds=DEFER_SECONDS, pool=POOL
        )
    )

    stack = airflow_stack(home=tmp_path / "home", dags_folder=dags, database=database, **service_options)
    with stack:
        pool = stack.create_pool(POOL, 1, include_deferred=True)
        assert pool["include_deferred"] is True and pool["slots"] == 1
        stack.wait_for_dag(DAG_ID, timeout=60)
        stack.unpause(DAG_ID)
        backfill_id = stack.create_backfill(
            DAG_ID, start, start + timedelta(days=2), max_active_runs=3, reprocess_behavior="none"
        )
        t_backfill = time.monotonic()
        runs = stack.wait_for_runs(DAG_ID, 3, timeout=150)
        backfill_took = time.monotonic() - t_backfill

        assert len(runs) == 3, dump_json(runs)
        assert {r["state"] for r in runs} == {"success"}, dump_json(runs)
        assert {r["run_type"] for r in runs} == {"backfill"}, dump_json(runs)
        assert sorted(_parse(r["logical_date"]) for r in runs) == [
            start + timedelta(days=i) for i in range(3)
        ]
        assert stack.backfill(backfill_id)["dag_id"] == DAG_ID

        tis = [ti for r in runs for ti in stack.task_instances(DAG_ID, r["dag_run_id"])]
        assert len(tis) == 3 and {ti["state"] for ti in tis} == {"success"}, dump_json(tis)
        assert {ti["pool"] for ti in tis} == {POOL}
        # A resumed task keeps the start_date of its first execution: [start, end] spans the deferral.
        spans = sorted((_parse(ti["start_date"]), _parse(ti["end_date"])) for ti in tis)
        for (_, prev_end), (next_start, _) in pairwise(spans):
            assert next_start >= prev_end, f"task instances overlapped in a 1-slot pool: {spans}"
        for s, e in spans:
            assert e - s >= timedelta(seconds=DEFER_SECONDS), spans

        # The triggerer ran each trigger: it writes a "<task log>.trigger.<job id>.log" file next to
        # the task's log, and the task resumed with the trigger's event.
        logs = stack.task_log_texts()
        for r in runs:
            prefix = f"dag_id={DAG_ID}/run_id={r['dag_run_id']}/task_id=wait/attempt=1.log"
            trigger_logs = [text for path, text in logs.items() if path.startswith(prefix + ".trigger.")]
            assert trigger_logs and "Trigger fired event" in trigger_logs[0], sorted(logs)
            assert "Pausing task as DEFERRED" in logs[prefix]
            assert "resumed after trigger event" in logs[prefix]
            result = stack.xcom(DAG_ID, r["dag_run_id"], "wait")
            assert result["resumed"] is True, result

    print(
        f"[{database}] start-up {stack.ready_after:.1f}s, 3 backfill runs {backfill_took:.1f}s, "
        f"stop {stack.stop_took:.1f}s"
    )
    assert stack.leftover_processes() == []
    if database == "postgres":  # its database was dropped
        with contextlib.closing(stack.metadata_db.connect("postgres")) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (stack.metadata_db.name,))
            assert cur.fetchall() == []


def test_a_stack_database_is_a_copy_of_the_template_once_one_is_saved(
    postgres_server: services.Postgres,
) -> None:
    template = f"{TEMPLATE_PREFIX}smoke_{uuid.uuid4().hex[:8]}"
    server = (postgres_server.host, postgres_server.port, postgres_server.user)
    first, second = MetadataDatabase(*server, template=template), MetadataDatabase(*server, template=template)
    try:
        assert first.create() is False  # no template yet: an empty database, to migrate
        first.query("CREATE TABLE migrated (version text)")
        first.query("INSERT INTO migrated VALUES ('head')")
        first.save_as_template()
        first.save_as_template()  # a stack beside it saved it first: kept, no error
        assert second.create() is True
        assert second.query("SELECT version FROM migrated") == [{"version": "head"}]
        assert second.name != first.name
    finally:
        first.drop()
        second.drop()
        with contextlib.closing(first.connect("postgres")) as conn, conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{template}"')
