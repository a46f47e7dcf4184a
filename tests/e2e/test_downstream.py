"""End to end: what downstream of a backfill sees of it, on one Airflow.

- With the OpenLineage provider and a file transport, a run's events name the Echo360 report of the
  window as the transfer's input and each S3 object written as an output.
- From Airflow 3.3, the daily DAG's transfers emit one partition key per landed day, and the example
  consumer (``echo360_videoview_by_day``, a ``PartitionedAssetTimetable`` with ``StartOfDayMapper``)
  runs once per day, reading that day's manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

from devtools.checks import assert_consumer_read_each_day, assert_runs_succeeded
from devtools.environment import BUCKET, Echo360Environment
from devtools.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
CONSUMER = "echo360_videoview_by_day"


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lineage") / "events.jsonl"


@pytest.fixture(scope="module")
def env_options(events_file: Path) -> dict[str, Any]:
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    env = {
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
    }
    return {"reports": ("videoview",), "stack_options": {"env": env}}


@pytest.fixture(scope="module")
def backfill_days() -> int:
    return 2


@pytest.fixture(scope="module")
def env(env: Echo360Environment) -> Echo360Environment:
    """The module's environment, with the consumer DAG unpaused (from 3.3) before the backfill."""
    if AIRFLOW_V_3_3_PLUS:
        env.stack.wait_for_dag(CONSUMER, timeout=180)
        env.stack.unpause(CONSUMER)
    return env


def transfer_completions(events_file: Path) -> list[dict[str, Any]]:
    if not events_file.exists():
        return []
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    return [
        event
        for event in events
        if event.get("eventType") == "COMPLETE" and event["job"]["name"].endswith(".transfer_videoview")
    ]


def test_a_backfill_runs_events_name_the_report_window_and_each_object(env, backfilled, events_file):
    assert_runs_succeeded(backfilled.runs, len(backfilled.days))
    completions = wait_for(
        lambda: (found := transfer_completions(events_file)) and len(found) >= len(backfilled.days) and found,
        120,
        "the transfers' COMPLETE events",
    )
    base_url = env.sandbox.base_url
    seen = set()
    for event in completions:
        (source,) = event["inputs"]
        assert source["namespace"] == base_url
        report, start, end = source["name"].split("_")
        assert report == "videoview"
        objects = [obj for obj in env.landed(f"echo360/videoview/dt={start}/")]
        assert [(o["namespace"], o["name"]) for o in event["outputs"]] == [
            (f"s3://{BUCKET}", obj.key) for obj in objects
        ]
        assert objects and all(obj.key.endswith(f"videoview_{start}_{end}_001.csv.gz") for obj in objects)
        statistics = [o["outputFacets"]["outputStatistics"] for o in event["outputs"]]
        assert [(s["rowCount"], s["size"], s["fileCount"]) for s in statistics] == [
            (obj.rows, obj.size, 1) for obj in objects
        ]
        seen.add(start)
    assert seen == {day.isoformat() for day in backfilled.days}


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="a task emits partition keys from Airflow 3.3 on")
def test_the_consumer_runs_once_per_landed_day_and_reads_its_manifest(env, backfilled):
    consumed = env.stack.wait_for_runs(CONSUMER, len(backfilled.days), timeout=300)
    assert_consumer_read_each_day(env, consumed, backfilled.days)
