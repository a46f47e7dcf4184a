"""Outages of the service, from the sandbox's switch (503s, then refused connections): the submit and
the transfer wait them out, in the worker here (deferrable=False; deferred, the same code defers),
and the window lands once. The 5-minute outage in a real Airflow is ``bench/outage_bench.py``."""

from __future__ import annotations

import datetime as dt
import json
import time
from unittest import mock

import pytest

from airflow_provider_echo360.exceptions import Echo360TransientError
from airflow_provider_echo360.hooks.transport import MEMORY
from airflow_provider_echo360.operators.echo360 import SubmitReportOperator
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator
from devtools.moto_server import MotoServer
from devtools.outlet_events import OutletEvents
from devtools.sandbox import SandboxProcess

pytestmark = pytest.mark.integration
BUCKET = "outage"
DAY = dt.date.today() - dt.timedelta(days=10)
#: The hook gives up within a second or two here, so that the operators' own waiting is what rides
#: the outage out (by default the hook's retries alone last about a minute).
QUICK_RETRIES = {"backoff_seconds": 0.2, "max_retries": 2}


@pytest.fixture
def services(monkeypatch):
    with MotoServer() as s3, SandboxProcess(processing_seconds=3, rows_per_day=30, rate_limit=0) as sandbox:
        s3.client().create_bucket(Bucket=BUCKET)
        MEMORY.forget()
        monkeypatch.setenv("AIRFLOW_CONN_AWS_OUTAGE", s3.airflow_connection())

        def connect(**extra):
            connection = sandbox.airflow_connection(extra={**QUICK_RETRIES, **extra})
            monkeypatch.setenv("AIRFLOW_CONN_ECHO360_OUTAGE", connection)

        connect(outage_budget=300)
        yield sandbox, s3, connect


def submit() -> str:
    return SubmitReportOperator(
        task_id="submit",
        report_name="videoview",
        start=DAY.isoformat(),
        end=(DAY + dt.timedelta(days=1)).isoformat(),
        echo360_conn_id="echo360_outage",
        deferrable=False,
        poll_interval=0.5,
        data_lag=0,
    ).execute({"ti": mock.MagicMock()})


def transfer(request_id: str) -> list[str]:
    return TransferReportToS3Operator(
        task_id="transfer",
        request_id=request_id,
        s3_bucket=BUCKET,
        s3_key="outage/",
        aws_conn_id="aws_outage",
        echo360_conn_id="echo360_outage",
        deferrable=False,
    ).execute({"outlet_events": OutletEvents()})


def test_an_outage_during_the_submission_and_another_during_the_transfer_are_ridden_out(services):
    sandbox, s3, _ = services
    sandbox.outage(unavailable_seconds=8, refused_seconds=8)
    started = time.monotonic()
    request_id = submit()
    assert time.monotonic() - started > 16  # it waited the outage out, and then submitted
    sandbox.outage(unavailable_seconds=6, refused_seconds=6)
    written = transfer(request_id)
    stats = sandbox.stats()
    assert stats["submitted"] == 1 and len(written) == 1
    key = f"outage/_videoview_{DAY}_{DAY + dt.timedelta(days=1)}.manifest.json"
    manifest = json.loads(s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert manifest["request_id"] == request_id and manifest["rows"] == 30
    assert sum(stats["outage_unavailable"].values()) > 0 and stats["outage_refused_until"]  # it was real


def test_an_outage_past_the_budget_fails_the_try_naming_the_budget(services):
    sandbox, _, connect = services
    connect(outage_budget=2)
    sandbox.outage(unavailable_seconds=60)
    with pytest.raises(Echo360TransientError, match=r"outage_budget \(2s\).*503"):
        submit()
    sandbox.reset()  # ends the outage
    assert sandbox.stats()["submitted"] == 0
