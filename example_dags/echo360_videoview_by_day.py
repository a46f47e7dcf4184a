"""Downstream of the daily DAG, one run per landed day (Airflow 3.2+).

Scheduled on the ``echo360_videoview`` asset's day partitions (``PartitionedAssetTimetable`` with
``StartOfDayMapper``): every day that lands emits one partition key (``2025-03-01T00:00:00``), and
this DAG runs once for it. On Airflow 3.3+ that is every day whatever the request's window (the
daily DAG, a backfill, the weekly and range DAGs); on 3.2, where an event carries only its run's
partition, the days of the daily DAG's runs (daily partitions there). Its task reads the day's
manifest: the rows that landed, 0 for a day without activity. Before 3.2 this file defines no DAG;
the asset events' ``extra`` lists the same days (``partitions``). Settings: see
``echo360_example_settings.py``.
"""

from __future__ import annotations

import datetime as dt
import json

import pendulum
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_2_PLUS
from echo360_example_settings import AWS_CONN_ID, DAILY_KEY, S3_BUCKET, TAGS, landed

from airflow_provider_echo360.layout import window_manifest_key

if AIRFLOW_V_3_2_PLUS:
    from airflow.sdk import DAG, PartitionedAssetTimetable, StartOfDayMapper, task

    with DAG(
        dag_id="echo360_videoview_by_day",
        description="One run per landed day of Echo360 video views",
        schedule=PartitionedAssetTimetable(
            assets=landed("videoview"), default_partition_mapper=StartOfDayMapper()
        ),
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        tags=TAGS,
    ) as dag:

        @task
        def rows_of_the_day(bucket: str, aws_conn_id: str, dag_run=None) -> int:  # noqa: ANN001 - Airflow's
            """The day's manifest, read where the transfer wrote it: its rows."""
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # boto3: not at every parse

            day = dt.date.fromisoformat(dag_run.partition_key)
            key = window_manifest_key(DAILY_KEY, "videoview", day, day + dt.timedelta(days=1))
            manifest = json.loads(S3Hook(aws_conn_id=aws_conn_id).read_key(key, bucket))
            print(f"{day}: {manifest['rows']} rows of video views, landed {manifest['landed_at']}")
            return int(manifest["rows"])

        rows_of_the_day(bucket=S3_BUCKET, aws_conn_id=AWS_CONN_ID)
