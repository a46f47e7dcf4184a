"""Bad input, table-driven, across every operator, the sensor and the connection.

Each case must fail with an error that names the field and what is allowed, fail without retries
(``AirflowFailException``), and make no call to the API, which the sandbox's stats prove. Two kinds
of input can only be refused by asking: a report name the catalog does not know (the live
``GET /reports`` listing is the authority) and a request id that does not exist; they may make
that one look-up and nothing else.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_echo360.operators.echo360 import SubmitReportOperator
from airflow_provider_echo360.sensors.echo360 import ReportStatusSensor
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator
from devtools.sandbox import SandboxProcess

pytestmark = pytest.mark.integration
CONTEXT = {
    "data_interval_start": dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
    "data_interval_end": dt.datetime(2024, 3, 2, tzinfo=dt.UTC),
}
UNKNOWN_ID = "00000000-0000-0000-0000-0000000000ff"


@dataclass
class Case:
    name: str
    build: Callable[[], Any]
    field: str
    allowed: str  # a piece of the message that says what is allowed
    allowed_calls: set[str] = field(default_factory=set)


def submit(**kwargs: Any) -> SubmitReportOperator:
    kwargs.setdefault("report_name", "videoview")
    return SubmitReportOperator(
        task_id="submit", echo360_conn_id=kwargs.pop("conn", "echo360_bad_input"), **kwargs
    )


def sensor(request_id: Any, conn: str = "echo360_bad_input") -> ReportStatusSensor:
    return ReportStatusSensor(task_id="sense", request_id=request_id, deferrable=False, echo360_conn_id=conn)


def transfer(**kwargs: Any) -> TransferReportToS3Operator:
    kwargs.setdefault("request_id", UNKNOWN_ID)
    kwargs.setdefault("s3_bucket", "bucket")
    kwargs.setdefault("s3_key", "echo360/")
    return TransferReportToS3Operator(task_id="transfer", echo360_conn_id="echo360_bad_input", **kwargs)


LOOKUP = {"POST /oauth2/access_token"}
CASES = [
    Case(
        "unknown report",
        lambda: submit(report_name="videoviews"),
        "report_name",
        "from GET /reports",
        LOOKUP | {"GET /reports"},
    ),
    Case("empty report name", lambda: submit(report_name=""), "report_name", "a report name such as"),
    Case("unparsable start", lambda: submit(start="yesterday", end="2024-03-02"), "start", "YYYY-MM-DD"),
    Case("start as a number", lambda: submit(start=20240301, end="2024-03-02"), "start", "YYYY-MM-DD"),
    Case(
        "naive datetime not at midnight",
        lambda: submit(start=dt.datetime(2024, 3, 1, 14), end="2024-03-02"),
        "start",
        "naive datetime at midnight UTC",
    ),
    Case(
        "start equal to end",
        lambda: submit(start="2024-03-02", end="2024-03-02"),
        "end",
        "a date after start",
    ),
    Case(
        "start after end", lambda: submit(start="2024-03-05", end="2024-03-02"), "end", "a date after start"
    ),
    Case("range over 7 days", lambda: submit(start="2024-03-01", end="2024-03-09"), "end", "at most 7 days"),
    Case(
        "assetbydate older than a year",
        lambda: submit(report_name="assetbydate", start="2020-01-01", end="2020-01-02"),
        "start",
        "one year",
    ),
    Case(
        "dates for asset",
        lambda: submit(report_name="asset", start="2024-03-01", end="2024-03-02"),
        "parameters",
        "no parameters for report 'asset'",
    ),
    Case(
        "unknown parameter", lambda: submit(parameters={"course": "x"}), "parameters", "only ['end', 'start']"
    ),
    Case("bad delimiter", lambda: submit(delimiter=";"), "delimiter", "'|' (PSV)"),
    Case("compression not a boolean", lambda: submit(compression="yes"), "compression", "True or False"),
    Case("missing client secret", lambda: submit(conn="echo360_no_secret"), "password", "client secret"),
    Case("missing client id", lambda: submit(conn="echo360_no_id"), "login", "client id"),
    Case(
        "wrong credentials", lambda: submit(conn="echo360_wrong_secret"), "credentials", "client id", LOOKUP
    ),
    Case("non-loopback http host", lambda: submit(conn="echo360_http"), "host", "https://"),
    Case("unknown region", lambda: submit(conn="echo360_mars"), "region", "['au', 'ca', 'uk', 'us']"),
    Case("sensor: empty request id", lambda: sensor(""), "request_id", "the id of a submitted request"),
    Case("sensor: missing request id", lambda: sensor(None), "request_id", "the id of a submitted request"),
    Case("sensor: request id with a slash", lambda: sensor("../reports"), "request_id", "the id of a"),
    Case(
        "sensor: request id that does not exist",
        lambda: sensor(UNKNOWN_ID),
        "request",
        "404",
        LOOKUP | {"GET /request/{requestId}", "GET /requests/{requestId}"},
    ),
    Case("transfer: missing bucket", lambda: transfer(s3_bucket=""), "s3_bucket", "an existing S3 bucket"),
    Case("transfer: key from the root", lambda: transfer(s3_key="/abs/"), "s3_key", "a key such as"),
    Case("transfer: missing request id", lambda: transfer(request_id=None), "request_id", "the id of a"),
    Case(
        "transfer: request id that does not exist",
        lambda: transfer(),
        "request",
        "404",
        LOOKUP | {"GET /request/{requestId}", "GET /requests/{requestId}"},
    ),
]


@pytest.fixture(scope="module")
def sandbox():
    with SandboxProcess(processing_seconds=1, rate_limit=0) as server, pytest.MonkeyPatch.context() as mp:

        def conn(conn_id: str, **fields: Any) -> None:
            mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", server.airflow_connection(**fields))

        conn("echo360_bad_input")
        conn("echo360_no_secret", password="")
        conn("echo360_no_id", login="")
        conn("echo360_wrong_secret", password="not-the-secret")
        conn("echo360_http", host="http://echo360.example.edu")
        conn("echo360_mars", host="", extra={"region": "mars"})
        yield server


def test_there_are_at_least_20_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_fails_clearly_without_retries_and_without_api_calls(sandbox, case):
    before = Counter(sandbox.stats()["calls"])
    with pytest.raises(AirflowFailException) as err:
        case.build().execute(CONTEXT)
    message = str(err.value)
    assert case.field in message, message
    assert case.allowed in message, message
    assert "not-the-secret" not in message and sandbox.client_secret not in message
    calls = Counter(sandbox.stats()["calls"]) - before
    assert set(calls) <= case.allowed_calls, calls
    assert not any(key.startswith("POST /requests") for key in calls)
