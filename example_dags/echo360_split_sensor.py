"""The split shape: submit without waiting, wait with ``ReportStatusSensor``, then transfer.

Use it when something must happen between submitting and waiting, or when the wait must be a
sensor (its ``timeout``, its modes). Note: between the two tasks the request is in flight without
holding a pool slot; a submission that the API then refuses for its cap waits (rescheduled) until
a request ends. Settings: see ``echo360_example_settings.py``.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG
from echo360_example_settings import DAILY_KEY, DEFAULT_ARGS, POOL, S3_BUCKET, TAGS, landed

from airflow_provider_echo360.operators.echo360 import SubmitReportOperator
from airflow_provider_echo360.sensors.echo360 import ReportStatusSensor
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator

with DAG(
    dag_id="echo360_split_sensor",
    description="Submit, sense, transfer: the Echo360 video views of each day",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=TAGS,
) as dag:
    submit = SubmitReportOperator(
        task_id="submit_videoview", report_name="videoview", wait_for_completion=False, pool=POOL
    )
    ready = ReportStatusSensor(task_id="wait_for_videoview", request_id=submit.output, timeout=12 * 3600)
    transfer = TransferReportToS3Operator(
        task_id="transfer_videoview",
        request_id=submit.output,
        s3_bucket=S3_BUCKET,
        s3_key=DAILY_KEY,
        replace=True,  # a rerun of the window lands its new request in place of the old
        outlets=[landed("videoview")],
    )
    submit >> ready >> transfer
