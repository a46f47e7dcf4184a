"""Echo360Hook against the sandbox as a real process on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time

import pytest
from airflow.providers.common.compat.sdk import redact

from airflow_provider_echo360.exceptions import (
    Echo360AuthError,
    Echo360RequestNotFoundError,
    Echo360SubmissionRefusedError,
)
from airflow_provider_echo360.hooks.echo360 import Echo360Hook
from airflow_provider_echo360.hooks.transport import MEMORY
from airflow_provider_echo360.operators.echo360 import in_flight
from devtools.sandbox import SandboxProcess

pytestmark = pytest.mark.integration


def connect(monkeypatch, sandbox: SandboxProcess, conn_id: str = "echo360_it", **extra) -> Echo360Hook:
    password = extra.pop("password", sandbox.client_secret)
    connection = sandbox.airflow_connection(password=password, extra={"backoff_seconds": 0.05, **extra})
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection)
    return Echo360Hook(conn_id)


@pytest.fixture
def sandbox(sandbox: SandboxProcess) -> SandboxProcess:
    """The session's sandbox, forgotten by both sides: its requests and stats, and the hook's tokens."""
    sandbox.reset(faults=True, config=True)
    MEMORY.forget()
    return sandbox


def wait_available(hook: Echo360Hook, request_id: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = hook.get_request(request_id)
        if not request.in_progress:
            return request
        time.sleep(0.3)
    raise AssertionError(f"{request_id} still Pending")


def test_lists_reports_and_submits(monkeypatch, sandbox):
    hook = connect(monkeypatch, sandbox)
    names = {report["name"] for report in hook.get_reports()}
    assert {"asset", "videoview", "qanda2"} <= names
    request = hook.submit_request("videoview", {"start": "2024-01-01", "end": "2024-01-02"})
    assert request.in_progress and request.parameters == {"start": "2024-01-01", "end": "2024-01-02"}
    assert [r.request_id for r in hook.get_requests()] == [request.request_id]
    assert in_flight(hook.get_requests()) == 1
    assert wait_available(hook, request.request_id).signed_assets


def test_test_connection_reports_success_and_failure(monkeypatch, sandbox):
    ok, message = connect(monkeypatch, sandbox).test_connection()
    assert ok and "reports available" in message
    ok, message = connect(monkeypatch, sandbox, "echo360_bad", password="wrong").test_connection()
    assert not ok and "refused the client credentials" in message and "wrong" not in message


@pytest.mark.parametrize(
    ("host", "cause"),
    [
        ("http://127.0.0.1:{closed}", "Connection refused"),  # a wrong port
        ("https://127.0.0.1:{sandbox}", "SSL"),  # a wrong scheme: https to a plain-http server
        ("https://echo360.nowhere.invalid", "Name or service not known"),  # no such host
    ],
)
def test_a_connection_test_that_cannot_connect_says_where_and_why_after_two_tries(
    monkeypatch, sandbox, caplog, host, cause
):
    from devtools.processes import free_port

    url = host.format(closed=free_port(), sandbox=sandbox.base_url.rsplit(":", 1)[1])
    conn = json.dumps({"conn_type": "echo360", "host": url, "login": "id", "password": "top-secret"})
    monkeypatch.setenv("AIRFLOW_CONN_ECHO360_BROKEN", conn)
    with caplog.at_level(logging.WARNING):
        ok, message = Echo360Hook("echo360_broken").test_connection()
    assert not ok
    assert f"Gave up after 2 attempts at GET {url}/public/api/v1/reporting/reports" in message
    assert cause in message and "top-secret" not in message
    assert len([r for r in caplog.records if "Echo360 call failed" in r.getMessage()]) == 1  # one retry


def test_token_expiry_is_invisible_to_the_caller(monkeypatch):
    # A lifetime of seconds, not one: on a loaded machine (the matrix beside the e2e suite) a call may
    # take a second, and a token that dies between two calls of one step would be renewed once more.
    with SandboxProcess(processing_seconds=1, token_seconds=6, rate_limit=0) as sandbox:
        hook = connect(monkeypatch, sandbox)
        hook.get_requests()
        time.sleep(6.6)  # the cached token is now dead (expires_in may be rounded up): renewed before use
        hook.get_requests()
        sandbox.expire_tokens()  # revoked early: the API answers 401, the hook renews once
        hook.get_requests()
        stats = sandbox.stats()
    assert stats["tokens_issued"] == 3
    assert stats["calls"].get("GET /requests") == 4  # three good calls, one 401


def test_token_is_shared_by_every_hook_in_the_process(monkeypatch, sandbox):
    connect(monkeypatch, sandbox).get_requests()
    connect(monkeypatch, sandbox).get_reports()
    asyncio.run(connect(monkeypatch, sandbox).aget_requests())
    assert sandbox.stats()["tokens_issued"] == 1


def test_5xx_429_drops_and_slow_answers_are_absorbed(monkeypatch, sandbox):
    hook = connect(monkeypatch, sandbox, max_retries=12)
    hook.get_requests()
    sandbox.set_faults(fault_rate=0.5, faults=["5xx", "429", "drop", "slow"], slow_seconds=0.2)
    for _ in range(12):
        assert hook.get_requests() == []
    faults = sandbox.stats()["faults"]
    assert sum(faults.values()) >= 3, faults


def test_async_calls_retry_too(monkeypatch, sandbox):
    hook = connect(monkeypatch, sandbox, max_retries=12)
    request = hook.submit_request("notes", {"start": "2024-01-01", "end": "2024-01-02"})
    sandbox.set_faults(fault_rate=0.5, faults=["5xx", "429", "drop"])

    async def poll():
        return [await hook.aget_request(request.request_id) for _ in range(8)]

    assert {r.request_id for r in asyncio.run(poll())} == {request.request_id}
    assert sum(sandbox.stats()["faults"].values()) >= 1


def test_submission_survives_faults_without_duplicates(monkeypatch, sandbox):
    hook = connect(monkeypatch, sandbox, max_retries=12)
    # Unclear answers only: a 429 on the POST itself is handed to the operator, which judges it
    # (test_in_flight_refusal_is_a_refused_submission); drawn here it failed the test at random.
    sandbox.set_faults(fault_rate=0.6, faults=["5xx", "drop"], fault_targets=["api"])
    request = hook.submit_request("videoview", {"start": "2024-02-01", "end": "2024-02-02"})
    sandbox.set_faults(fault_rate=0)
    stats = sandbox.stats()
    assert stats["submitted"] == 1
    assert [r.request_id for r in hook.get_requests()] == [request.request_id]


def test_in_flight_refusal_is_a_refused_submission(monkeypatch):
    with SandboxProcess(processing_seconds=60, rate_limit=0) as sandbox:
        hook = connect(monkeypatch, sandbox)
        for day in (1, 2, 3):
            hook.submit_request("videoview", {"start": f"2024-01-0{day}", "end": f"2024-01-0{day + 1}"})
        with pytest.raises(Echo360SubmissionRefusedError):
            hook.submit_request("videoview", {"start": "2024-01-05", "end": "2024-01-06"})
        stats = sandbox.stats()
    assert stats["refused_in_flight"] == 1 and stats["max_in_flight"] == 3


def test_bad_credentials_fail_after_one_attempt_each_way(monkeypatch, sandbox):
    hook = connect(monkeypatch, sandbox, password="not-the-secret")
    with pytest.raises(Echo360AuthError, match="client credentials") as err:
        hook.get_reports()
    assert "not-the-secret" not in str(err.value)
    stats = sandbox.stats()
    assert stats["calls"].get("POST /oauth2/access_token") == 3  # form, HTTP Basic, query string
    assert stats["tokens_issued"] == 0


def test_unknown_request_id_fails_at_once(monkeypatch, sandbox):
    hook = connect(monkeypatch, sandbox)
    with pytest.raises(Echo360RequestNotFoundError):
        hook.get_request("00000000-0000-0000-0000-000000000000")


def test_plural_request_path_fallback_is_remembered(monkeypatch):
    with SandboxProcess(
        processing_seconds=0, request_path="plural", reports_shape="list", rate_limit=0
    ) as sandbox:
        hook = connect(monkeypatch, sandbox)
        assert any(r["name"] == "asset" for r in hook.get_reports())  # a bare list
        request = hook.submit_request("asset")
        for _ in range(3):
            hook.get_request(request.request_id)
        asyncio.run(hook.aget_request(request.request_id))
        calls = sandbox.stats()["calls"]
    assert calls.get("GET /request/{requestId}") == 1
    assert calls.get("GET /requests/{requestId}") == 4


def test_download_is_byte_identical(monkeypatch, sandbox):
    hook = connect(monkeypatch, sandbox)
    request = hook.submit_request("viewsessions", {"start": "2024-01-01", "end": "2024-01-03"}, delimiter="|")
    ready = wait_available(hook, request.request_id)
    (url,) = ready.signed_assets
    with hook.open_asset(url, chunk_size=1000) as stream:
        body = b"".join(stream.chunks())
    assert body == sandbox.asset_bytes(request.request_id, stream.name)
    assert len(body) == stream.content_length


DOWNLOAD_SCRIPT = """
import json, os, sys
from airflow_provider_echo360.hooks.echo360 import Echo360Hook
hook = Echo360Hook("echo360_it")
request = hook.get_request(sys.argv[1])
total = 0
for url in request.signed_assets:
    with hook.open_asset(url) as stream:
        for chunk in stream.chunks():
            total += len(chunk)
status = open("/proc/self/status").read()
peak_kib = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1])
print(json.dumps({"bytes": total, "peak_mib": peak_kib / 1024}))
"""


def test_download_memory_does_not_grow_with_the_asset(monkeypatch):
    with SandboxProcess(processing_seconds=0, rows_per_day=60_000, rate_limit=0) as sandbox:
        hook = connect(monkeypatch, sandbox)
        small = hook.submit_request(
            "videoview", {"start": "2024-01-01", "end": "2024-01-02"}, compression=False
        )
        large = hook.submit_request(
            "videoview", {"start": "2024-01-01", "end": "2024-01-08"}, compression=False
        )
        wait_available(hook, small.request_id), wait_available(hook, large.request_id)

        def measure(request_id: str) -> dict:
            out = subprocess.run(
                [sys.executable, "-c", DOWNLOAD_SCRIPT, request_id],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
            return json.loads(out.stdout.strip().splitlines()[-1])

        small_run, large_run = measure(small.request_id), measure(large.request_id)
    assert large_run["bytes"] > 6 * small_run["bytes"] > 6 * 10_000_000
    # Holding the body would add over 100 MiB; allocator noise (up to 24 MiB seen, loaded) stays under 40.
    assert large_run["peak_mib"] - small_run["peak_mib"] < 40, (small_run, large_run)


def test_no_secret_reaches_the_logs(monkeypatch, caplog):
    """Nothing secret is logged at any level once Airflow's masker (which redacts task logs) has seen it;
    at INFO and above nothing secret is logged at all (httpx's request lines lose their query)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # Airflow may keep it at WARNING; a user may not
    with SandboxProcess(processing_seconds=1, rate_limit=0, token_seconds=2) as sandbox:
        sandbox.set_faults(fault_rate=0.3, faults=["5xx", "429", "drop", "truncate", "expired-url"])
        hook = connect(monkeypatch, sandbox, max_retries=12)
        request = hook.submit_request("qanda2", {"start": "2024-01-01", "end": "2024-01-02"})
        ready = wait_available(hook, request.request_id)
        for _ in range(4):
            try:
                with hook.open_asset(ready.signed_assets[0]) as stream:
                    b"".join(stream.chunks())
            except Exception as error:  # a faulted download: its message is logged too
                logging.getLogger("test").warning("download failed: %s", error)
            time.sleep(1)  # let tokens expire and renew
        sandbox.set_faults(fault_rate=0.0)  # and one download that gets through, however the draws fell
        with hook.open_asset(ready.signed_assets[0]) as stream:
            b"".join(stream.chunks())
        asyncio.run(hook.aget_request(request.request_id))
        handed_out = sandbox.secrets()
    tokens = handed_out["access_tokens"] + handed_out["refresh_tokens"]
    signatures = handed_out["signatures"]
    secret = handed_out["client_secrets"][0]
    assert len(handed_out["access_tokens"]) >= 2 and signatures
    assert ready.signed_assets[0].split("Signature=", 1)[1] in signatures
    info_and_above = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "Echo360 call failed" in info_and_above  # the faults were logged
    masked_debug = "\n".join(str(redact(r.getMessage())) for r in caplog.records)
    assert "/_assets/" in info_and_above  # httpx logged the download's URL, without its query
    for needle in (secret, *tokens, *signatures):
        assert needle not in info_and_above
        assert needle not in masked_debug
