"""Every day, a snapshot of the Echo360 ``asset`` report (all-time engagement per video) into S3.

The ``asset`` report takes no dates: each run requests a fresh snapshot (a retry adopts its own
request rather than submitting twice) and lands it at ``s3://<bucket>/echo360/asset/snapshot=<day>/``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Variable

from airflow_provider_echo360.operators.echo360 import SubmitReportOperator
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator

POOL = Variable.get("echo360_pool", default="echo360_reports")
POLL_SECONDS = float(
    Variable.get("echo360_poll_seconds", default=60)
)  # how often a pending request is looked at
BUCKET = Variable.get("echo360_s3_bucket", default="echo360-reports")

with DAG(
    dag_id="echo360_asset_snapshot",
    description="Daily snapshot of the Echo360 asset report",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["echo360"],
) as dag:
    snapshot = SubmitReportOperator(
        task_id="submit_asset",
        report_name="asset",
        pool=POOL,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        echo360_conn_id="{{ var.value.get('echo360_conn_id', 'echo360_default') }}",
    )
    TransferReportToS3Operator(
        task_id="transfer_asset",
        request_id=snapshot.output,
        s3_bucket=BUCKET,
        s3_key="echo360/asset/snapshot={{ ds }}/",
        replace=True,  # a rerun of the day refreshes its snapshot
        echo360_conn_id="{{ var.value.get('echo360_conn_id', 'echo360_default') }}",
        aws_conn_id="{{ var.value.get('echo360_aws_conn_id', 'aws_default') }}",
    )
