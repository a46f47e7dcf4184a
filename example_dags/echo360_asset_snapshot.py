"""Every day, a snapshot of the Echo360 ``asset`` report (all-time engagement per video) into S3.

The ``asset`` report takes no dates: each run requests a fresh snapshot (a retry adopts its own
request rather than submitting twice) and lands it at ``s3://<bucket>/echo360/asset/snapshot=<day>/``.
A snapshot is of the moment it was requested and cannot be taken again for a past day: a rerun of a
day that already has one keeps it (``replace=False``); a day without one gets the current snapshot.
Settings: see ``echo360_example_settings.py``.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG
from echo360_example_settings import DEFAULT_ARGS, POOL, S3_BUCKET, TAGS, landed

from airflow_provider_echo360.operators.echo360 import SubmitReportOperator
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator

with DAG(
    dag_id="echo360_asset_snapshot",
    description="Daily snapshot of the Echo360 asset report",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=TAGS,
) as dag:
    snapshot = SubmitReportOperator(task_id="submit_asset", report_name="asset", pool=POOL)
    TransferReportToS3Operator(
        task_id="transfer_asset",
        request_id=snapshot.output,
        s3_bucket=S3_BUCKET,
        s3_key="echo360/asset/snapshot={{ ds }}/",
        replace=False,  # a rerun (a backfill weeks later) keeps the snapshot taken that day
        outlets=[landed("asset")],
    )
