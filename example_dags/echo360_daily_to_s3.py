"""Every day, request yesterday's Echo360 activity reports and land them in S3.

One ``submit`` task per report requests the day (the run's data interval) and waits, deferred, in
the ``echo360_reports`` pool until the report is ready; ``transfer`` streams it to
``s3://<bucket>/echo360/<report>/dt=<start>/``. Backfill any past range from the UI (or
``airflow backfill create``): the pool keeps every run and backfill under the API's 3 reports in
flight, and a window whose data is not yet complete (48 h) waits without holding a slot.

Settings (Airflow Variables, each with a working default):
``echo360_reports`` (JSON list of report names), ``echo360_pool``, ``echo360_s3_bucket``,
``echo360_poll_seconds``, ``echo360_conn_id``, ``echo360_aws_conn_id``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Variable

from airflow_provider_echo360.operators.echo360 import SubmitReportOperator
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator

DEFAULT_REPORTS = ["videoview", "viewsessions", "pollingv2"]
REPORTS = Variable.get("echo360_reports", default=DEFAULT_REPORTS, deserialize_json=True)
POOL = Variable.get("echo360_pool", default="echo360_reports")
POLL_SECONDS = float(
    Variable.get("echo360_poll_seconds", default=60)
)  # how often a pending request is looked at
BUCKET = Variable.get("echo360_s3_bucket", default="echo360-reports")  # known at parse: the S3 assets name it

with DAG(
    dag_id="echo360_daily_to_s3",
    description="Daily Echo360 activity reports into S3",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,  # backfills fill the past on demand; see the README
    max_active_runs=16,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["echo360"],
) as dag:
    for report in REPORTS:
        submit = SubmitReportOperator(
            task_id=f"submit_{report}",
            report_name=report,
            pool=POOL,
            deferrable=True,
            poll_interval=POLL_SECONDS,
            echo360_conn_id="{{ var.value.get('echo360_conn_id', 'echo360_default') }}",
        )
        TransferReportToS3Operator(
            task_id=f"transfer_{report}",
            request_id=submit.output,
            s3_bucket=BUCKET,
            s3_key=f"echo360/{report}/dt={{start}}/",
            echo360_conn_id="{{ var.value.get('echo360_conn_id', 'echo360_default') }}",
            aws_conn_id="{{ var.value.get('echo360_aws_conn_id', 'aws_default') }}",
        )
