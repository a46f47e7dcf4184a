"""The split shape: submit without waiting, wait with ``ReportStatusSensor``, then transfer.

Use it when something must happen between submitting and waiting, or when the wait must be a
sensor (its ``timeout``, its modes). Note: between the two tasks the request is in flight without
holding a pool slot; ``SubmitReportOperator`` therefore also counts the institution's pending
requests before it submits and waits for a free one.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Variable

from airflow_provider_echo360.operators.echo360 import SubmitReportOperator
from airflow_provider_echo360.sensors.echo360 import ReportStatusSensor
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator

POOL = Variable.get("echo360_pool", default="echo360_reports")
POLL_SECONDS = float(
    Variable.get("echo360_poll_seconds", default=60)
)  # how often a pending request is looked at
BUCKET = Variable.get("echo360_s3_bucket", default="echo360-reports")

with DAG(
    dag_id="echo360_split_sensor",
    description="Submit, sense, transfer: the Echo360 video views of each day",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["echo360"],
) as dag:
    submit = SubmitReportOperator(
        task_id="submit_videoview",
        report_name="videoview",
        wait_for_completion=False,
        pool=POOL,
        echo360_conn_id="{{ var.value.get('echo360_conn_id', 'echo360_default') }}",
    )
    ready = ReportStatusSensor(
        task_id="wait_for_videoview",
        request_id=submit.output,
        poke_interval=POLL_SECONDS,
        timeout=12 * 3600,
        echo360_conn_id="{{ var.value.get('echo360_conn_id', 'echo360_default') }}",
    )
    transfer = TransferReportToS3Operator(
        task_id="transfer_videoview",
        request_id=submit.output,
        s3_bucket=BUCKET,
        s3_key="echo360/videoview/dt={start}/",
        echo360_conn_id="{{ var.value.get('echo360_conn_id', 'echo360_default') }}",
        aws_conn_id="{{ var.value.get('echo360_aws_conn_id', 'aws_default') }}",
    )
    submit >> ready >> transfer
