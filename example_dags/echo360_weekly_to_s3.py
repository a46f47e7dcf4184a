"""Every week, the week's Echo360 reports in one request each: the cheap way to cover a term.

A weekly run's data interval is 7 days, the API's longest window: the same range costs seven
times fewer requests (and slots, and API calls) than the daily DAG, and each week lands as 7 daily
partitions on the daily DAG's keys (``split_by_day``): one layout, whichever DAG landed a day.
Backfill a year from the UI (Trigger → Backfill) or with ``airflow backfill create --dag-id
echo360_weekly_to_s3 --from-date <first day> --to-date <last day>``.
Settings: ``echo360_example_settings.py``.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable
from echo360_example_settings import DAILY_KEY, DEFAULT_ARGS, POOL, REPORTS, S3_BUCKET, TAGS, landed

from airflow_provider_echo360.operators.echo360 import SubmitReportOperator
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator

with DAG(
    dag_id="echo360_weekly_to_s3",
    description="Weekly Echo360 activity reports into S3, one 7-day window per request",
    # Mondays 00:00 UTC, each run's data interval the week before: Monday to Monday. A timetable of
    # data intervals: on Airflow 3 a cron string's runs have none (a run would ask for one day).
    schedule=CronDataIntervalTimetable("0 0 * * 1", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 6, tz="UTC"),
    catchup=False,
    max_active_runs=8,
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
            split_by_day=True,  # each day of the week under its own dt=<day>/
            replace=True,  # a rerun of the window lands its new request in place of the old
            outlets=[landed(report)],
        )
