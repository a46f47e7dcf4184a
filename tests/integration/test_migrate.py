"""The one-off move of a bucket to the one layout (``python -m airflow_provider_echo360.migrate``):
windows of several days landed whole by earlier versions become daily partitions, against a moto S3
server and with the sandbox's bytes."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import time

import pytest

from airflow_provider_echo360.migrate import Migration, main
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator
from devtools.moto_server import MotoServer
from devtools.outlet_events import OutletEvents

pytestmark = pytest.mark.integration
BUCKET = "migrate"
WEEK = {"start": "2024-05-06", "end": "2024-05-13"}
RANGE = {"start": "2024-05-06", "end": "2024-05-09"}


@pytest.fixture
def env(transfer_setup):
    with MotoServer() as s3, transfer_setup(s3, "mig", BUCKET, rows_per_day=20) as setup:
        yield setup


def ready(env, report: str, window: dict[str, str]) -> str:
    request = env.hook.submit_request(report, window)
    while env.hook.get_request(request.request_id).in_progress:
        time.sleep(0.1)
    return request.request_id


def land(request_id: str, key: str) -> list[str]:
    op = TransferReportToS3Operator(
        task_id="t",
        request_id=request_id,
        s3_bucket=BUCKET,
        s3_key=key,
        aws_conn_id="aws_mig",
        echo360_conn_id="echo360_mig",
    )
    return op.execute({"outlet_events": OutletEvents()})


def rows(env, key: str) -> list[list[str]]:
    body = env.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return list(csv.reader(io.StringIO(gzip.decompress(body).decode())))[1:]


def keys(env) -> list[str]:
    return [item["Key"] for item in env.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_weekly_and_range_windows_become_the_daily_partitions_and_a_second_run_moves_nothing(env, capsys):
    week = ready(env, "videoview", WEEK)
    land(week, "echo360/{report}/week={start}/")  # the weekly DAG's layout
    ranged = ready(env, "notes", RANGE)
    land(ranged, "echo360/{report}/dt={start}/")  # the range DAG's: 3 days under dt=<start>/
    daily = ready(env, "notes", {"start": "2024-05-07", "end": "2024-05-08"})
    land(daily, "echo360/{report}/dt={start}/")  # a daily run of one of those days
    assert main(["--bucket", BUCKET, "--aws-conn-id", "aws_mig"]) == 0  # a dry run
    before = keys(env)
    assert "Would move" in capsys.readouterr().out and keys(env) == before

    moved = Migration(env.client, BUCKET, say=lambda _: None).run("echo360/", apply=True)
    assert len(moved) == 2
    left = keys(env)
    old = ("week=", "videoview_2024-05-06_2024-05-13", "notes_2024-05-06_2024-05-09")
    assert not [key for key in left if any(part in key for part in old)]
    for n in range(7):
        day, next_day = dt.date(2024, 5, 6) + dt.timedelta(days=n), dt.date(2024, 5, 7) + dt.timedelta(days=n)
        stem = f"echo360/videoview/dt={day}/videoview_{day}_{next_day}"
        one_day = ready(env, "videoview", {"start": str(day), "end": str(next_day)})
        served = gzip.decompress(env.sandbox.asset_bytes(one_day, f"{one_day}.csv.gz")).decode()
        assert rows(env, f"{stem}_001.csv.gz") == list(csv.reader(io.StringIO(served)))[1:]
        assert f"echo360/videoview/dt={day}/_videoview_{day}_{next_day}.manifest.json" in left
    notes = sorted(key for key in left if key.startswith("echo360/notes/") and key.endswith(".csv.gz"))
    assert [key.split("/")[2] for key in notes] == ["dt=2024-05-06", "dt=2024-05-07", "dt=2024-05-08"]
    kept = env.client.head_object(Bucket=BUCKET, Key=notes[1])["Metadata"]["echo360-request-id"]
    assert kept == daily  # the day a daily run had landed keeps that run's objects
    assert Migration(env.client, BUCKET, say=lambda _: None).run("echo360/", apply=True) == []
    assert keys(env) == left


def test_a_window_of_a_report_without_event_time_moves_whole_out_of_the_days_folder(env):
    """``assetbydate`` sums its window: the range DAG once landed 3 days of it under ``dt=<start>/``,
    beside the day's own sums; it moves whole to ``dt=<start>_<end>/``, where the transfer lands it now."""
    window = {
        "start": str(dt.date.today() - dt.timedelta(days=20)),
        "end": str(dt.date.today() - dt.timedelta(days=17)),
    }
    stem = f"assetbydate_{window['start']}_{window['end']}"
    ranged = ready(env, "assetbydate", window)
    (old,) = land(ranged, "echo360/{report}/dt={start}/")
    assert old == f"s3://{BUCKET}/echo360/assetbydate/dt={window['start']}/{stem}_001.csv.gz"
    served = rows(env, old.removeprefix(f"s3://{BUCKET}/"))
    moved = Migration(env.client, BUCKET, say=lambda _: None).run("echo360/", apply=True)
    assert [w.splittable for w in moved] == [False]
    folder = f"echo360/assetbydate/dt={window['start']}_{window['end']}/"
    assert sorted(keys(env)) == [f"{folder}_{stem}.manifest.json", f"{folder}{stem}_001.csv.gz"]
    assert rows(env, f"{folder}{stem}_001.csv.gz") == served
    manifest = json.loads(
        env.client.get_object(Bucket=BUCKET, Key=f"{folder}_{stem}.manifest.json")["Body"].read()
    )
    assert (manifest["rows"], manifest["request_id"]) == (len(served), ranged)
    assert Migration(env.client, BUCKET, say=lambda _: None).run("echo360/", apply=True) == []
    # The transfer lands such a window there too when asked to split it by day.
    op = TransferReportToS3Operator(
        task_id="t",
        request_id=ranged,
        s3_bucket=BUCKET,
        s3_key="echo360/{report}/dt={start}/",
        split_by_day=True,
        aws_conn_id="aws_mig",
        echo360_conn_id="echo360_mig",
    )
    assert op.execute({"outlet_events": OutletEvents()}) == [f"s3://{BUCKET}/{folder}{stem}_001.csv.gz"]
