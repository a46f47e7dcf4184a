"""The whole provider, run as users run it: the Echo360 sandbox, a moto S3 server and a real Airflow.

Used by the demo (``scripts/demo``), the end-to-end tests and the benchmarks, so that all of them
exercise one setup: the example DAGs, an ``echo360_default`` connection to the sandbox, an
``aws_default`` connection to the S3 server, the bucket, and the pool ``echo360_reports`` (3 slots,
counting deferred tasks).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.airflow2_stack import Airflow2Stack
from devtools.airflow_stack import AIRFLOW_MAJOR, AirflowStack
from devtools.moto_server import MotoServer
from devtools.processes import Process
from devtools.sandbox import SandboxProcess
from devtools.stacks import airflow_stack

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DAGS = REPO / "example_dags"
DAILY_DAG = "echo360_daily_to_s3"
POOL = "echo360_reports"
BUCKET = "echo360-reports"
DEFAULT_REPORTS = ("videoview", "viewsessions", "pollingv2")


@dataclass(frozen=True)
class LandedObject:
    """One object the transfer wrote: its key ``echo360/<report>/dt=<start>/<file>``, and the request
    and asset it came from (its metadata)."""

    key: str
    report: str
    start: str
    size: int
    rows: int
    body: bytes
    request_id: str
    asset: str


def last_complete_day() -> dt.date:
    """The latest day whose data is complete (48 h after it ended), as the example DAGs see it."""
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)


def last_complete_week() -> dt.date:
    """The Monday that starts the latest week whose data is complete (a weekly run's interval start)."""
    end = last_complete_day() + dt.timedelta(days=1)
    return end - dt.timedelta(days=end.weekday() + 7)


def count_rows(body: bytes, file_name: str) -> int:
    """Data rows of a CSV/TSV/PSV asset (the header excluded)."""
    text = (gzip.decompress(body) if file_name.endswith(".gz") else body).decode("utf-8")
    return max(0, sum(1 for _ in csv.reader(io.StringIO(text))) - 1)


class Echo360Environment:
    """Sandbox + S3 server + Airflow, wired together; a context manager that stops all three.

    :param database: Airflow's metadata database, ``"sqlite"`` or ``"postgres"``.
    :param reports: the reports the daily DAG requests (``ECHO360_REPORTS``).
    :param poll_seconds: how often the example DAGs look at a pending request (``ECHO360_POLL_SECONDS``).
    :param connection_extra: the ``echo360_default`` connection's extra (hook settings).
    :param dags_folder: the DAGs Airflow runs (default: the example DAGs).
    :param sandbox_options: options for the sandbox (``processing_seconds``, ``fault_rate``, ...).
    :param stack_options: options for :class:`AirflowStack` (``api_port``, ``executor``,
        ``schedulers``, ``triggerers``, ``celery_workers``, ...); its ``env`` adds to (and overrides)
        the connections and Variables set here.
    :param home: where Airflow's home and DAGs go (default: a temporary directory, removed at stop).
    """

    def __init__(
        self,
        *,
        database: str = "postgres",
        reports: Sequence[str] = DEFAULT_REPORTS,
        poll_seconds: float = 2,
        connection_extra: dict[str, Any] | None = None,
        dags_folder: Path = EXAMPLE_DAGS,
        sandbox_options: dict[str, Any] | None = None,
        stack_options: dict[str, Any] | None = None,
        home: Path | None = None,
    ) -> None:
        self.database = database
        self.reports = list(reports)
        self.poll_seconds = poll_seconds
        self.connection_extra = {"backoff_seconds": 0.5, **(connection_extra or {})}
        self.dags_folder = dags_folder
        self.sandbox_options = {"processing_seconds": 5, "rows_per_day": 200, "rate_limit": 120}
        self.sandbox_options.update(sandbox_options or {})
        self.stack_options = stack_options or {}
        self._own_home = home is None
        self.home = home or Path(tempfile.mkdtemp(prefix="echo360-airflow-"))
        self._exit = ExitStack()
        self.sandbox: SandboxProcess
        self.s3: MotoServer
        self.stack: AirflowStack
        self.cli_backfill: Process | None = None  # Airflow 2's backfill (backfill_daily)

    def __enter__(self) -> Echo360Environment:
        try:
            self.sandbox = self._exit.enter_context(SandboxProcess(**self.sandbox_options))
            self.s3 = self._exit.enter_context(MotoServer())
            self.s3.client().create_bucket(Bucket=BUCKET)
            options = dict(self.stack_options)
            env = {**self.airflow_env(), **options.pop("env", {})}  # stack_options["env"] adds to ours
            self.stack = airflow_stack(
                self.home / "home", self.dags_folder, database=self.database, env=env, **options
            )
            self._exit.enter_context(self.stack)
            assert self.sandbox.process is not None
            # Without either, nothing the DAGs do can succeed: their exit ends every wait at once.
            self.stack.watchdog.watch("sandbox", self.sandbox.process)
            self.stack.watchdog.watch("S3 server", self.s3.process)
            self.stack.create_pool(POOL, 3, include_deferred=True, description="Echo360 reports in flight")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._exit.close()
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def airflow_env(self) -> dict[str, str]:
        """Connections and Variables, as Airflow reads them from the environment."""
        return {
            "AIRFLOW_CONN_ECHO360_DEFAULT": self.sandbox.airflow_connection(extra=self.connection_extra),
            "AIRFLOW_CONN_AWS_DEFAULT": self.s3.airflow_connection(),
            "AIRFLOW_VAR_ECHO360_REPORTS": json.dumps(self.reports),
            "AIRFLOW_VAR_ECHO360_S3_BUCKET": BUCKET,
            "AIRFLOW_VAR_ECHO360_POLL_SECONDS": str(self.poll_seconds),
            # The example DAGs read these two where a file is parsed, from the environment (the
            # Variables above are for bench/naive_dags, which reads them there, as such DAGs do).
            "ECHO360_REPORTS": json.dumps(self.reports),
            "ECHO360_POLL_SECONDS": str(self.poll_seconds),
            # Off unless a test gives a transport (stack_options["env"]): the provider is a dev dependency.
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        }

    def backfill_daily(
        self,
        days: int,
        *,
        last_day: dt.date | None = None,
        max_active_runs: int = 16,
        reprocess_behavior: str = "none",
    ) -> int | None:
        """Backfill the daily DAG over ``days`` days ending with ``last_day``; return the backfill id.

        By default the last day is :func:`last_complete_day`. ``reprocess_behavior="completed"`` runs
        the days that already ran again, as the UI's "All Runs".

        On Airflow 2 the backfill is the CLI's (:attr:`cli_backfill`, no id: None), with the DAG's
        own max_active_runs; only ``reprocess_behavior="none"``.
        """
        last_day = last_day or last_complete_day()
        first_day = last_day - dt.timedelta(days=days - 1)
        self.stack.wait_for_dag(DAILY_DAG, timeout=180)
        if AIRFLOW_MAJOR == 2:
            if reprocess_behavior != "none":
                raise ValueError("on Airflow 2 the CLI backfill runs only the days not run yet")
            self.cli_backfill = self._backfill_daily_cli(first_day, last_day)
            return None
        # A backfill's dates are those of the runs, which happen at the end of their data interval.
        first_run, last_run = first_day + dt.timedelta(days=1), last_day + dt.timedelta(days=1)
        # Created before the DAG is unpaused (its runs wait for that): on SQLite, a creation that meets
        # the scheduler writing the DAG's first run fails half-way (503, retried), and the scheduler
        # then dies on the runs that vanished (StaleDataError on dag_run).
        backfill_id = self.stack.create_backfill(
            DAILY_DAG,
            f"{first_run}T00:00:00Z",
            f"{last_run}T00:00:00Z",
            max_active_runs=max_active_runs,
            reprocess_behavior=reprocess_behavior,
        )
        self.stack.unpause(DAILY_DAG)
        return backfill_id

    def _backfill_daily_cli(self, first_day: dt.date, last_day: dt.date) -> Process:
        """Airflow 2: ``airflow dags backfill``, whose dates are logical dates, the first days of the
        runs' data intervals under the daily cron timetable: the data days themselves. The DAG stays
        paused: the CLI runs its runs regardless, and an unpaused DAG would also get the scheduler's
        run of the latest interval."""
        assert isinstance(self.stack, Airflow2Stack)
        return self.stack.run_cli_backfill(DAILY_DAG, first_day.isoformat(), last_day.isoformat())

    def wait_for_backfill(self, days: int, timeout: float = 600) -> list[dict[str, Any]]:
        """The backfill's runs, once ``days`` of them are over (success or failed); on Airflow 2,
        once the CLI backfill exited 0."""
        if self.cli_backfill is not None:
            assert isinstance(self.stack, Airflow2Stack)
            self.stack.wait_for_cli_backfill(self.cli_backfill, timeout)
        return self.stack.wait_for_runs(DAILY_DAG, days, timeout=timeout, run_type="backfill")

    def keys(self, prefix: str = "echo360/") -> Iterator[str]:
        """Every key under ``prefix`` in the bucket, in key order."""
        client = self.s3.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            yield from (item["Key"] for item in page.get("Contents", []))

    def manifests(self, prefix: str = "echo360/") -> dict[str, dict[str, Any]]:
        """Every window's manifest under ``prefix``: key -> its JSON."""
        client = self.s3.client()
        return {
            key: json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            for key in self.keys(prefix)
            if key.endswith(".manifest.json")
        }

    def landed(self, prefix: str = "echo360/") -> Iterator[LandedObject]:
        """Every object of a report under ``prefix`` in the bucket (manifests aside), in key order."""
        client = self.s3.client()
        for key in self.keys(prefix):
            if not key.endswith(".manifest.json"):
                answer = client.get_object(Bucket=BUCKET, Key=key)
                yield self._landed_object(key, answer["Body"].read(), answer["Metadata"])

    @staticmethod
    def _landed_object(key: str, body: bytes, metadata: dict[str, str]) -> LandedObject:
        _, report, folder, file_name = key.split("/", 3)
        return LandedObject(
            key=key,
            report=report,
            start=folder.removeprefix("dt="),
            size=len(body),
            rows=count_rows(body, file_name),
            body=body,
            request_id=metadata["echo360-request-id"],
            asset=metadata["echo360-asset"],
        )

    def served_bytes(self, landed: LandedObject) -> bytes:
        """What the sandbox served for the asset behind ``landed``."""
        return self.sandbox.asset_bytes(landed.request_id, landed.asset)

    def open_multipart_uploads(self) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = (
            self.s3.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        )
        return uploads
