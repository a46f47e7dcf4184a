"""Daily Echo360 reports into S3 the way teams write it without the provider (bench/backfill_bench.py).

One PythonOperator per report does everything with ``requests``: get a token, submit the day's
request, and, when the API refuses it (429: three requests already in flight), raise so that Airflow
retries the task later (``retries=50``, ``retry_delay=30 s``). Once submitted, it sleeps in a loop until
the request is ``Available``, then downloads each signed asset and uploads it with ``S3Hook.load_bytes``.
No pool: nothing in Airflow knows about the API's cap, so the tasks find it by being refused.

Settings (Airflow Variables): ``echo360_reports``, ``echo360_s3_bucket``, ``echo360_poll_seconds``;
the ``echo360_default`` connection gives the base URL, client id and secret.
"""

from __future__ import annotations

import datetime as dt
import time

import pendulum
import requests
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, BaseHook, Variable

API = "/public/api/v1/reporting"
DEFAULT_REPORTS = ["videoview", "viewsessions", "pollingv2"]
REPORTS = Variable.get("echo360_reports", default=DEFAULT_REPORTS, deserialize_json=True)
BUCKET = Variable.get("echo360_s3_bucket", default="echo360-reports")
POLL_SECONDS = float(Variable.get("echo360_poll_seconds", default=60))


def land_report(
    report: str, data_interval_start: pendulum.DateTime, data_interval_end: pendulum.DateTime
) -> str:
    conn = BaseHook.get_connection("echo360_default")
    base = conn.host.rstrip("/")
    token = requests.post(
        f"{base}/oauth2/access_token",
        data={"grant_type": "client_credentials", "client_id": conn.login, "client_secret": conn.password},
        timeout=30,
    )
    token.raise_for_status()
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    start, end = data_interval_start.date(), data_interval_end.date()
    if start >= end:  # Airflow 3's cron schedules give a run an empty interval: take the day before it
        start = end - dt.timedelta(days=1)
    start, end = start.isoformat(), end.isoformat()
    body = {"parameters": {"start": start, "end": end}, "output": {"compression": True, "delimiter": ","}}
    submitted = requests.post(f"{base}{API}/requests/{report}", json=body, headers=headers, timeout=30)
    if submitted.status_code == 429:  # three requests in flight (or the rate limit): let Airflow retry
        raise RuntimeError(f"Echo360 refused the submission: {submitted.text}")
    submitted.raise_for_status()
    request_id = submitted.json()["requestId"]
    print(f"Submitted request {request_id} for {report} {start}..{end}")
    while True:
        time.sleep(POLL_SECONDS)
        answer = requests.get(f"{base}{API}/request/{request_id}", headers=headers, timeout=30)
        if answer.status_code == 429:  # rate limited: look again later
            continue
        answer.raise_for_status()
        request = answer.json()
        if request["status"] == "Available":
            break
        if request["status"] != "Pending":
            raise RuntimeError(f"request {request_id} is {request['status']}")
    s3 = S3Hook(aws_conn_id="aws_default")
    for url in request["signedAssets"]:
        asset = requests.get(url, timeout=300)
        asset.raise_for_status()
        file_name = url.split("?", 1)[0].rsplit("/", 1)[1]
        key = f"echo360/{report}/dt={start}/{file_name}"
        s3.load_bytes(asset.content, key=key, bucket_name=BUCKET, replace=True)
    return request_id


with DAG(
    dag_id="naive_echo360_daily_to_s3",
    description="Daily Echo360 reports into S3, without the provider (benchmark baseline)",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=16,
    default_args={"retries": 50, "retry_delay": pendulum.duration(seconds=30)},
    tags=["echo360", "bench"],
) as dag:
    for report in REPORTS:
        PythonOperator(task_id=f"land_{report}", python_callable=land_report, op_kwargs={"report": report})
