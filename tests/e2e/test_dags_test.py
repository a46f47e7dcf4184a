"""``airflow dags test <dag> <date>``, as a DAG author runs it: every example DAG to success on the first try,
for the date given, against the sandbox and an S3 server, with the connections stored in the metadata
database or in the environment. No scheduler, no triggerer: ``dags test`` runs tasks and triggers
in-process, on an SQLite Airflow of its own."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from devtools.environment import BUCKET, EXAMPLE_DAGS
from devtools.moto_server import MotoServer
from devtools.sandbox import SandboxProcess

pytestmark = pytest.mark.e2e
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DATE = dt.date.today() - dt.timedelta(days=10)  # complete (48 h) and within assetbydate's year


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """An SQLite Airflow home, the sandbox and S3, and a ``run(*args)`` of the airflow CLI in them."""
    home = tmp_path_factory.mktemp("airflow-home")
    with SandboxProcess(processing_seconds=2, rows_per_day=40, rate_limit=0) as sandbox, MotoServer() as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_AWS_DEFAULT": s3.airflow_connection(),
            "ECHO360_POLL_SECONDS": "2",
            "ECHO360_REPORTS": '["videoview", "qanda2"]',
        }

        def run(*args: str, timeout: float = 600, **extra_env: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [AIRFLOW, *args], env={**env, **extra_env}, capture_output=True, text=True, timeout=timeout
            )

        migrated = run("db", "migrate")
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        yield SimpleNamespace(run=run, sandbox=sandbox, s3=s3)


def keys(s3: MotoServer) -> dict[str, Any]:
    """Each key and when it was last written (a rerun writes the same keys again)."""
    return {
        o["Key"]: o["LastModified"] for o in s3.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])
    }


@pytest.mark.parametrize("stored_in", ["database", "environment"])
def test_the_daily_dag_runs_for_the_date_given(airflow, stored_in):
    connection = airflow.sandbox.airflow_connection()
    extra_env = {}
    if stored_in == "database":
        added = airflow.run("connections", "add", "echo360_default", "--conn-json", connection)
        assert added.returncode == 0, added.stderr[-2000:]
    else:
        extra_env["AIRFLOW_CONN_ECHO360_DEFAULT"] = connection
    airflow.sandbox.reset()
    before = keys(airflow.s3)
    done = airflow.run("dags", "test", "echo360_daily_to_s3", DATE.isoformat(), **extra_env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "UP_FOR_RETRY" not in output.upper().replace(" ", "_")  # first try
    day = (DATE - dt.timedelta(days=1)).isoformat()  # the day before the logical date
    assert f"Window {day} to {DATE.isoformat()}" in output  # and the log says so
    landed = {key for key, written in keys(airflow.s3).items() if before.get(key) != written}
    assert {key.rsplit("/", 1)[0] for key in landed} >= {
        f"echo360/videoview/dt={day}",
        f"echo360/qanda2/dt={day}",
    }
    assert airflow.sandbox.stats()["submitted"] == 2
    if stored_in == "database":
        assert airflow.run("connections", "delete", "echo360_default").returncode == 0


@pytest.mark.parametrize(
    "dag_id",
    ["echo360_weekly_to_s3", "echo360_asset_snapshot", "echo360_split_sensor", "echo360_range_to_s3"],
)
def test_every_other_example_dag_runs(airflow, dag_id):
    done = airflow.run(
        "dags",
        "test",
        dag_id,
        DATE.isoformat(),
        AIRFLOW_CONN_ECHO360_DEFAULT=airflow.sandbox.airflow_connection(),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "UP_FOR_RETRY" not in output.upper().replace(" ", "_")
