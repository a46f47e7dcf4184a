"""Any range, on demand: split ``[start, end)`` into 7-day windows and map over them.

Trigger it from the UI with ``start``, ``end`` and ``reports``: one ``submit`` and one
``transfer`` task instance per (report, window), through dynamic task mapping; the pool keeps
them under the API's 3 reports in flight. Each window lands as daily partitions on the daily DAG's
keys (``split_by_day``): a day that several DAGs ran holds its rows once. Settings: see
``echo360_example_settings.py``.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task
from echo360_example_settings import DAILY_KEY, DEFAULT_ARGS, POOL, S3_BUCKET, TAGS

from airflow_provider_echo360.operators.echo360 import SubmitReportOperator
from airflow_provider_echo360.reports import format_date, split_windows
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator

with DAG(
    dag_id="echo360_range_to_s3",
    description="Echo360 reports for any date range, in 7-day windows",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "start": Param("2025-01-01", type="string", format="date", description="first day (UTC, inclusive)"),
        "end": Param(
            "2025-01-15", type="string", format="date", description="day after the last (exclusive)"
        ),
        "reports": Param(["videoview"], type="array", items={"type": "string"}, description="report names"),
    },
    default_args=DEFAULT_ARGS,
    tags=TAGS,
) as dag:

    @task
    def plan_windows(params: dict | None = None) -> list[dict[str, str]]:
        """One submission per (report, 7-day window) of the requested range."""
        assert params is not None
        windows = split_windows(params["start"], params["end"])
        return [
            {"report_name": report, "start": format_date(start), "end": format_date(end)}
            for report in params["reports"]
            for start, end in windows
        ]

    submitted = SubmitReportOperator.partial(task_id="submit", pool=POOL).expand_kwargs(plan_windows())
    TransferReportToS3Operator.partial(
        task_id="transfer",
        s3_bucket=S3_BUCKET,
        s3_key=DAILY_KEY,
        split_by_day=True,  # each day of the window under its own dt=<day>/
        replace=True,  # a rerun of the window lands its new request in place of the old
    ).expand(request_id=submitted.output)
