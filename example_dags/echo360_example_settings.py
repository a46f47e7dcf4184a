"""Settings shared by the Echo360 example DAGs (this module defines no DAG; ``.airflowignore`` skips it).

Nothing here reads a Variable or the metadata database: a DAG file runs at every parse, in the
dag-processor and in every task's start-up. What a task can read when it runs is an Airflow
Variable, rendered by a template, with a working default:

- ``echo360_s3_bucket``: the destination bucket (default ``echo360-reports``);
- ``echo360_conn_id``, ``echo360_aws_conn_id``: the connections (``echo360_default``, ``aws_default``).

What Airflow needs before a task runs (a task's pool, the tasks themselves, the poll interval) is
fixed when the file is parsed; as Airflow's docs advise for top-level code, it comes from this
module or from the environment of the Airflow processes, set alike for all of them:

- ``ECHO360_REPORTS``: JSON list of the reports the daily and weekly DAGs request, one
  ``submit_<report>`` and one ``transfer_<report>`` task each
  (default ``["videoview", "viewsessions", "pollingv2"]``);
- ``ECHO360_POLL_SECONDS``: seconds between two looks at a pending request (default 60).
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.providers.common.compat.sdk import Asset
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_2_PLUS, AIRFLOW_V_3_3_PLUS

#: The pool of 3 slots counting deferred tasks (see the README); one per Echo360 institution.
POOL = "echo360_reports"
REPORTS: list[str] = json.loads(
    os.environ.get("ECHO360_REPORTS", '["videoview", "viewsessions", "pollingv2"]')
)
if not isinstance(REPORTS, list) or not REPORTS or not all(isinstance(r, str) and r for r in REPORTS):
    raise ValueError(f"ECHO360_REPORTS must be a JSON list of report names, not {REPORTS!r}")
POLL_SECONDS = float(os.environ.get("ECHO360_POLL_SECONDS", "60"))
S3_BUCKET = "{{ var.value.get('echo360_s3_bucket', 'echo360-reports') }}"  # rendered when the task runs
AWS_CONN_ID = "{{ var.value.get('echo360_aws_conn_id', 'aws_default') }}"
#: One layout for every DAG: each day's rows under its own ``dt=<day>/`` (the range DAG splits its
#: windows by day into it).
DAILY_KEY = "echo360/{report}/dt={start}/"
TAGS = ["echo360"]

#: The daily DAG's schedule: every day at 00:00 UTC, for the day before. On Airflow 3.2 its runs are
#: that day's partition (key ``2024-01-01T00:00:00``), which the events of its transfers carry: 3.2
#: gives an event no partition but its run's. From 3.3 the transfer names the days it landed itself
#: (``add_partitions``), so the DAG keeps the cron schedule whose runs ``airflow dags test`` and the
#: Backfill dialog take by date.
if AIRFLOW_V_3_2_PLUS and not AIRFLOW_V_3_3_PLUS:
    from airflow.sdk import CronPartitionTimetable

    DAILY_SCHEDULE: object = CronPartitionTimetable("0 0 * * *", timezone="UTC", run_offset=-1)
else:
    DAILY_SCHEDULE = "@daily"

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": pendulum.duration(minutes=5),
    "echo360_conn_id": "{{ var.value.get('echo360_conn_id', 'echo360_default') }}",
    "aws_conn_id": AWS_CONN_ID,
    # Wait in the triggerer, not in a worker: for the report, and through an outage of the API.
    "deferrable": True,
    "poll_interval": POLL_SECONDS,  # SubmitReportOperator
    "poke_interval": POLL_SECONDS,  # ReportStatusSensor
}


def landed(report: str) -> Asset:
    """The asset a transfer of ``report`` updates (schedule a downstream DAG on it); each event's
    ``extra`` lists the S3 URIs written. Named, not an ``s3://`` URI: the bucket is known at run time.
    Given positionally: Airflow 3 takes it as the name (and URI), Airflow 2's ``Dataset`` as the URI."""
    return Asset(f"echo360_{report}")
