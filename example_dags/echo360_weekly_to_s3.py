"""Every week, the week's Echo360 reports in one request each: the cheap way to cover a term.

A weekly run's data interval is 7 days, the API's longest window: the same range costs seven
times fewer requests (and slots, and API calls) than the daily DAG. Backfill a whole term with
``airflow backfill create --dag-id echo360_weekly_to_s3 --from-date <term start> --to-date <term end>``.
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
BUCKET = Variable.get("echo360_s3_bucket", default="echo360-reports")

with DAG(
    dag_id="echo360_weekly_to_s3",
    description="Weekly Echo360 activity reports into S3, one 7-day window per request",
    schedule="0 0 * * 1",  # Mondays 00:00 UTC: windows Monday to Monday
    start_date=pendulum.datetime(2025, 1, 6, tz="UTC"),
    catchup=False,
    max_active_runs=8,
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
            s3_key=f"echo360/{report}/week={{start}}/",
            echo360_conn_id="{{ var.value.get('echo360_conn_id', 'echo360_default') }}",
            aws_conn_id="{{ var.value.get('echo360_aws_conn_id', 'aws_default') }}",
        )
