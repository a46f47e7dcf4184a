"""The contract matrix: the hook, and submit → wait → transfer, against every dialect of the sandbox.

Each behaviour that the vendor's page leaves open is a sandbox option (``sandbox/README.md``); we cannot
know which one the real Echo360 speaks, so the provider must hold in each of them alone and in a few
of them together. Each case runs a sandbox of its own as a real process, and a moto S3 server.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from contextlib import contextmanager
from types import SimpleNamespace
from unittest import mock

import pytest
from airflow.exceptions import AirflowRescheduleException
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_echo360.exceptions import Echo360SubmissionRefusedError
from airflow_provider_echo360.hooks.echo360 import Echo360Hook
from airflow_provider_echo360.hooks.transport import MEMORY, TOKEN_WAYS
from airflow_provider_echo360.operators.echo360 import SubmitReportOperator, in_flight
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator
from devtools.moto_server import MotoServer
from devtools.outlet_events import OutletEvents
from devtools.sandbox import SandboxProcess

pytestmark = pytest.mark.integration
# Only the hook reads a dialect, the same on every Airflow: the version matrix runs the default one.
ONE_AIRFLOW = pytest.mark.one_airflow
BUCKET = "contract"
DAY = dt.date.today() - dt.timedelta(days=20)

#: One entry per open behaviour (and a few together): sandbox options.
DIALECTS = {
    "default": {},
    "token from form only": {"token_auth": "form"},
    "token from query only": {"token_auth": "query"},
    "token from Basic only": {"token_auth": "basic"},
    "access token as header only": {"access_token_in": "header"},
    "cap refused with 400": {"in_flight_status": 400},
    "cap refused with 403": {"in_flight_status": 403},
    "cap refused with 409": {"in_flight_status": 409},
    "cap refused with 429": {"in_flight_status": 429},
    "reports as a bare list": {"reports_shape": "list"},
    "requests of this client only": {"requests_scope": "client"},
    "requests paged by link": {"requests_page_size": 2, "requests_paging": "link"},
    "requests paged by cursor": {"requests_page_size": 2, "requests_paging": "cursor"},
    "requests paged by Link header": {"requests_page_size": 2, "requests_paging": "header"},
    "request path plural": {"request_path": "plural"},
    "Queued before Pending": {"early_status": "Queued", "early_status_seconds": 2},
    "Q&A listed as qandav2": {"qanda_name": "qandav2"},
    "listing shows output": {"show_output": True},
    "dates echoed as timestamps": {"echo_dates": "timestamp"},
    "statuses in upper case": {"status_case": "upper"},
    "statuses in lower case": {"status_case": "lower"},
    "report names in upper case": {"report_name_case": "upper"},
    "the public client's guess": {
        "token_auth": "query",
        "qanda_name": "qandav2",
        "requests_page_size": 2,
        "requests_paging": "cursor",
        "request_path": "plural",
        "in_flight_status": 409,
    },
    "strict": {
        "token_auth": "basic",
        "access_token_in": "header",
        "reports_shape": "list",
        "requests_scope": "client",
        "requests_page_size": 1,
        "requests_paging": "header",
        "early_status": "Processing",
        "early_status_seconds": 2,
        "in_flight_status": 403,
    },
}


@pytest.fixture(scope="module")
def s3():
    with MotoServer() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


def meet_as_a_stranger(sandbox, s3, monkeypatch) -> None:
    """Point the two connections at ``sandbox`` and at S3, with nothing learned of an earlier sandbox
    or dialect (tokens, limiters, the API's ways)."""
    MEMORY.forget()
    monkeypatch.setenv("AIRFLOW_CONN_AWS_CONTRACT", s3.airflow_connection())
    monkeypatch.setenv(
        "AIRFLOW_CONN_ECHO360_CONTRACT", sandbox.airflow_connection(extra={"backoff_seconds": 0.05})
    )


#: What every dialect's sandbox starts from.
BASE_OPTIONS = {"processing_seconds": 3, "rows_per_day": 30, "rate_limit": 0}


@pytest.fixture(scope="module")
def dialects_sandbox():
    """One sandbox for the module's dialects: each test makes it speak its own (a running sandbox
    changes any dialect setting, ``POST /_sandbox/config``), rather than start one of its own."""
    with SandboxProcess(**BASE_OPTIONS) as sandbox:
        yield sandbox


@pytest.fixture(params=[n if n == "default" else pytest.param(n, marks=ONE_AIRFLOW) for n in DIALECTS])
def dialect(request, s3, dialects_sandbox, monkeypatch):
    """The sandbox speaking one dialect, as if new (no request, no statistics, the starting settings
    and this dialect's), with the two connections pointing at it and at S3."""
    sandbox = dialects_sandbox
    sandbox.reset(faults=True, config=True)
    sandbox.set_config(**DIALECTS[request.param])
    meet_as_a_stranger(sandbox, s3, monkeypatch)
    options = {**BASE_OPTIONS, **DIALECTS[request.param]}
    yield SimpleNamespace(name=request.param, options=options, sandbox=sandbox, s3=s3)


def window(offset: int) -> dict[str, str]:
    start = DAY + dt.timedelta(days=offset)
    return {"start": start.isoformat(), "end": (start + dt.timedelta(days=1)).isoformat()}


def submit_operator(report: str, offset: int, **kwargs) -> SubmitReportOperator:
    return SubmitReportOperator(
        task_id=f"submit_{report}_{offset}",
        report_name=report,
        start=window(offset)["start"],
        end=window(offset)["end"],
        echo360_conn_id="echo360_contract",
        deferrable=False,
        poll_interval=0.5,
        timeout=120,
        data_lag=0,
        cap_wait=1,
        **kwargs,
    )


def wait_until_done(hook: Echo360Hook, request_ids: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(r.in_progress for r in hook.get_requests() if r.request_id in request_ids):
        assert time.monotonic() < deadline, "requests still in progress"
        time.sleep(0.5)


def test_the_hook_holds(dialect, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # Airflow keeps it at WARNING; a user may not
    hook = Echo360Hook("echo360_contract")
    sandbox = dialect.sandbox
    # The three stay in flight until the test lets them finish (3 s could pass before the 4th, loaded).
    sandbox.set_config(processing_seconds=120)
    names = {entry["name"] for entry in hook.get_reports()}
    assert dialect.options.get("qanda_name", "qanda2") in names and "videoview" in names
    # The token came the way this API reads credentials, after the others were refused once each.
    way = dialect.options.get("token_auth", "any")
    assert sandbox.stats()["tokens_refused"] == (0 if way == "any" else TOKEN_WAYS.index(way))

    # An answer lost after the submission was recorded: looked up in the (paged) listing, not sent twice.
    sandbox.set_faults(fault_rate=1.0, faults=["lost-response"], fault_targets=["api"], fault_budget=1)
    first = hook.submit_request("videoview", window(0))
    sandbox.set_faults(fault_rate=0.0)
    second = hook.submit_request("qanda2", window(0))  # whichever name the API lists
    third = hook.submit_request("notes", window(0), delimiter="|")
    mine = [first.request_id, second.request_id, third.request_id]
    listed = hook.get_requests()
    assert sorted(r.request_id for r in listed) == sorted(mine)  # every page, each request once
    assert in_flight(listed) == 3
    if page_size := dialect.options.get("requests_page_size"):
        calls_before = sandbox.stats()["calls"]["GET /requests"]
        hook.get_requests()
        assert sandbox.stats()["calls"]["GET /requests"] - calls_before == -(-3 // page_size)
    assert sandbox.stats()["submitted"] == 3

    # A 4th is refused with the dialect's status and wording; the operator takes it for the cap and waits.
    with pytest.raises(Echo360SubmissionRefusedError) as refused:
        hook.submit_request("videoview", window(1))
    assert refused.value.http_status == dialect.options.get("in_flight_status", 429)
    with pytest.raises(AirflowRescheduleException):
        submit_operator("videoview", 1).execute({"ti": mock.MagicMock()})

    for request_id in mine:
        sandbox.set_status(request_id, "Available")
    wait_until_done(hook, mine)
    detail = hook.get_request(third.request_id)
    assert detail.is_available and detail.signed_assets
    with hook.open_asset(detail.signed_assets[0]) as stream:
        body = b"".join(stream.chunks())
    assert body == sandbox.asset_bytes(third.request_id, stream.name)
    assert sandbox.stats()["max_in_flight"] == 3

    # Whichever way the credentials and the token travelled, no secret reached a log.
    handed_out = sandbox.secrets()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (*handed_out["client_secrets"], *handed_out["access_tokens"], *handed_out["signatures"]):
        assert secret not in logged


def test_submit_wait_transfer(dialect):
    """The path users run, in the worker: submit (or adopt), wait, transfer; byte-identical in S3."""
    sandbox, client = dialect.sandbox, dialect.s3.client()
    for offset, report in enumerate(["qanda2", "videoview"]):
        request_id = submit_operator(report, offset, delimiter="\t").execute({"ti": mock.MagicMock()})
        prefix = f"{dialect.name}/{report}/"
        outlet_events = OutletEvents()
        written = TransferReportToS3Operator(
            task_id=f"transfer_{report}",
            request_id=request_id,
            s3_bucket=BUCKET,
            s3_key=prefix,
            aws_conn_id="aws_contract",
            echo360_conn_id="echo360_contract",
        ).execute({"outlet_events": outlet_events})
        assert len(written) == 1
        landed = client.get_object(Bucket=BUCKET, Key=written[0].removeprefix(f"s3://{BUCKET}/"))
        assert landed["Body"].read() == sandbox.asset_bytes(request_id, landed["Metadata"]["echo360-asset"])
    # A second run of the same window adopts the finished request: no new submission.
    again = submit_operator("videoview", 1, delimiter="\t").execute({"ti": mock.MagicMock()})
    assert again == request_id
    assert sandbox.stats()["submitted"] == 2


def test_a_refusal_while_another_clients_requests_fill_the_cap_is_a_wait(dialect):
    """Another API client of the institution holds slots the listing may not show: the API refuses
    ours in its own words; with any request in progress in sight, the operator waits."""
    sandbox = dialect.sandbox
    # Nothing may finish while the test looks: on a loaded machine 3 s went by and the cap was free.
    sandbox.set_config(processing_seconds=120)
    for offset in range(2):
        sandbox.submit_as("another-client", "notes", window(offset))
    mine = submit_operator("videoview", 0, wait_for_completion=False).execute({"ti": mock.MagicMock()})
    with pytest.raises(AirflowRescheduleException):
        submit_operator("videoview", 1, wait_for_completion=False).execute({"ti": mock.MagicMock()})
    assert sandbox.stats()["max_in_flight"] == 3
    assert mine


@contextmanager
def one_sandbox(s3, monkeypatch, **options):
    """A sandbox of its own for one test, with the two connections pointing at it and at S3."""
    with SandboxProcess(processing_seconds=2, rows_per_day=30, rate_limit=0, **options) as sandbox:
        meet_as_a_stranger(sandbox, s3, monkeypatch)
        yield sandbox


def transfer_to(request_id: str, s3_key: str) -> list[str]:
    return TransferReportToS3Operator(
        task_id="transfer",
        request_id=request_id,
        s3_bucket=BUCKET,
        s3_key=s3_key,
        aws_conn_id="aws_contract",
        echo360_conn_id="echo360_contract",
    ).execute({"outlet_events": OutletEvents()})


def test_a_retired_report_fails_at_once_even_while_the_cap_is_full(s3, monkeypatch):
    """A 410 cannot be the cap: the task fails with the API's words, and is not rescheduled."""
    with one_sandbox(s3, monkeypatch, retired_reports=["videoview"]) as sandbox:
        sandbox.set_config(processing_seconds=120)
        for offset in range(3):
            sandbox.submit_as("another-client", "notes", window(offset))
        with pytest.raises(AirflowFailException, match="410.*retired"):
            submit_operator("videoview", 5).execute({"ti": mock.MagicMock()})
        assert sandbox.stats()["calls"]["POST /requests/{reportName}"] == 1


def test_a_proxys_html_pages_in_place_of_answers_are_ridden_out(s3, monkeypatch):
    """A proxy answers some calls with its own HTML page and a 200: each is retried as a transient
    failure, and the window lands once."""
    with one_sandbox(s3, monkeypatch) as sandbox:
        sandbox.set_faults(fault_rate=1.0, faults=["html"], fault_targets=["api"], fault_budget=3)
        request_id = submit_operator("videoview", 3).execute({"ti": mock.MagicMock()})
        written = transfer_to(request_id, "html-pages/")
        stats = sandbox.stats()
        assert len(written) == 1 and stats["submitted"] == 1
        assert stats["faults"] == {"html": 3}, stats["faults"]


@pytest.mark.parametrize("shape", ["header", "no-key", "empty-list", "zero-bytes"])
def test_a_window_without_rows_lands_as_0_rows_and_a_rerun_adopts_its_request(s3, monkeypatch, shape):
    """Every way the service may show a day without activity: the transfer succeeds with a manifest
    of 0 rows, and another run of the window (no record of it in this Airflow: the listing is read)
    adopts the request instead of submitting it again."""
    with one_sandbox(s3, monkeypatch, empty_every=1, empty_shape=shape) as sandbox:
        request_id = submit_operator("videoview", 4).execute({"ti": mock.MagicMock()})
        written = transfer_to(request_id, f"no-rows-{shape}/")
        start, end = window(4).values()
        key = f"no-rows-{shape}/_videoview_{start}_{end}.manifest.json"
        manifest = json.loads(s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())
        assert (manifest["rows"], manifest["files"]) == (0, len(written))
        again = submit_operator("videoview", 4).execute({"ti": mock.MagicMock()})
        assert again == request_id and sandbox.stats()["submitted"] == 1
