"""Every day, request yesterday's Echo360 activity reports and land them in S3.

One ``submit`` task per report requests the day (the run's data interval) and waits, deferred, in
the ``echo360_reports`` pool until the report is ready; ``transfer`` streams it to
``s3://<bucket>/echo360/<report>/dt=<start>/``. Backfill any past range from the UI (or
``airflow backfill create``): the pool keeps every run and backfill under the API's 3 reports in
flight, and a window whose data is not yet complete (48 h) waits without holding a slot.

Settings (the reports, the bucket, the connections, ...): ``echo360_example_settings.py``.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG
from echo360_example_settings import (
    DAILY_KEY,
    DAILY_SCHEDULE,
    DEFAULT_ARGS,
    POOL,
    REPORTS,
    S3_BUCKET,
    TAGS,
    landed,
)

from airflow_provider_echo360.operators.echo360 import SubmitReportOperator
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator

with DAG(
    dag_id="echo360_daily_to_s3",
    description="Daily Echo360 activity reports into S3",
    schedule=DAILY_SCHEDULE,  # on Airflow 3.2, runs of daily partitions
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,  # backfills fill the past on demand; see the README
    max_active_runs=16,
    default_args=DEFAULT_ARGS,
    tags=TAGS,
) as dag:
    for report in REPORTS:
        submit = SubmitReportOperator(task_id=f"submit_{report}", report_name=report, pool=POOL)
        TransferReportToS3Operator(
            task_id=f"transfer_{report}",
            request_id=submit.output,
            s3_bucket=S3_BUCKET,
            s3_key=DAILY_KEY,
            replace=True,  # a rerun of the window lands its new request in place of the old
            outlets=[landed(report)],
        )
