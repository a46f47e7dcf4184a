"""The outage switch: every call answers 503, then connections are refused, then the sandbox serves
again by itself with its state; a real process on loopback, its socket really closed."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from devtools.sandbox import SandboxProcess
from sandbox_api import TIMEOUT, Api, day

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_sandbox() -> Iterator[SandboxProcess]:
    """A sandbox of this module's own: an outage must never reach the session's shared one."""
    with SandboxProcess(processing_seconds=0, rate_limit=0, rows_per_day=5) as started:
        yield started


@pytest.fixture
def down(own_sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The module's sandbox, listening (a failed test may have left it in a refused phase) and reset."""
    wait_until(lambda: not refused(own_sandbox), timeout=10)
    own_sandbox.reset(faults=True, config=True)
    yield own_sandbox
    wait_until(lambda: not refused(own_sandbox), timeout=10)
    own_sandbox.reset(faults=True, config=True)


def connect(sb: SandboxProcess) -> None:
    """Open and close a TCP connection to the sandbox's port (raises what the connect raises)."""
    socket.create_connection((sb.host, sb.port), timeout=TIMEOUT).close()


def refused(sb: SandboxProcess) -> bool:
    """Whether a connection to the sandbox is refused now (any other failure propagates)."""
    try:
        connect(sb)
    except ConnectionRefusedError:
        return True
    return False


def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition`` held, polled every 10 ms; fails after ``timeout``."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"not within {timeout} s"
        time.sleep(0.01)
    return time.monotonic() - start


def token_call(sb: SandboxProcess) -> requests.Response:
    fields = {"grant_type": "client_credentials", "client_id": sb.client_id}
    fields["client_secret"] = sb.client_secret
    return requests.post(sb.token_url, data=fields, timeout=TIMEOUT)


def seconds_between(first: str, last: str) -> float:
    return (dt.datetime.fromisoformat(last) - dt.datetime.fromisoformat(first)).total_seconds()


def about(seconds: float) -> Any:
    """``seconds``, give or take the millisecond that ISO times round away."""
    return pytest.approx(seconds, abs=0.002)


def outage_stats(sb: SandboxProcess) -> dict[str, Any]:
    return {key: value for key, value in sb.stats().items() if key.startswith("outage_")}


def test_an_outage_answers_503_then_refuses_connections_then_serves_again_with_its_state(
    down: SandboxProcess,
) -> None:
    api = Api(down)
    ready = api.submit_ok("videoview", day(1))["requestId"]
    [url] = api.detail(ready)["signedAssets"]
    content = requests.get(url, timeout=TIMEOUT).content
    down.set_config(processing_seconds=2.5)  # Pending into the refused phase
    pending = api.submit_ok("videoview", day(2))

    schedule = down.outage(unavailable_seconds=1.5, refused_seconds=1.5)

    assert schedule["phase"] == "unavailable"
    assert seconds_between(schedule["refused_from"], schedule["back_at"]) == about(1.5)
    api_answer, token_answer = api.get("/reports"), token_call(down)
    download = requests.get(url, timeout=TIMEOUT)
    assert api_answer.status_code == token_answer.status_code == download.status_code == 503
    assert api_answer.json()["error"] == token_answer.json()["error"] == "service_unavailable"
    assert download.headers["Content-Type"] == "application/xml"
    assert "<Code>ServiceUnavailable</Code>" in download.text
    assert down.outage_status()["phase"] == "unavailable"  # the control endpoints still answer
    assert down.request_info(pending["requestId"])["status"] == "Pending"

    wait_until(lambda: refused(down), timeout=3)
    with pytest.raises(requests.ConnectionError):
        api.get("/reports")  # its kept-alive connection was closed: it connects anew, and is refused
    with pytest.raises(ConnectionRefusedError):
        connect(down)

    wait_until(lambda: not refused(down), timeout=3)
    after = api.detail(pending["requestId"])  # the token issued before the outage still serves
    assert after["status"] == "Available"  # processing went on through the outage
    assert after["created"] == pending["created"]
    assert requests.get(url, timeout=TIMEOUT).content == content
    assert set(api.listed_ids()) == {ready, pending["requestId"]}
    assert down.outage_status()["phase"] == "over"
    stats = outage_stats(down)
    assert stats["outage_unavailable"] == {"api": 1, "token": 1, "download": 1}
    # Closed no earlier than scheduled and open again no earlier than the end, once (a second,
    # empty refusal would show here); late by at most a second, on a busy machine.
    late_close = seconds_between(schedule["refused_from"], stats["outage_refused_from"])
    late_open = seconds_between(schedule["back_at"], stats["outage_refused_until"])
    assert 0 <= late_close < 1 and 0 <= late_open < 1, (schedule, stats)
    assert down.stats()["calls"]["GET /reports"] == 1


def test_a_refused_only_outage_may_begin_later(down: SandboxProcess) -> None:
    api = Api(down)
    scheduled = time.monotonic()

    schedule = down.outage(refused_seconds=1, after_seconds=1)

    assert schedule["phase"] == "scheduled"
    assert schedule["unavailable_from"] == schedule["refused_from"]
    assert api.get("/reports").status_code == 200
    wait_until(lambda: refused(down), timeout=3)
    assert time.monotonic() - scheduled >= 0.95
    wait_until(lambda: not refused(down), timeout=3)
    assert api.get("/reports").status_code == 200
    stats = outage_stats(down)
    assert stats["outage_unavailable"] == {}
    assert stats["outage_refused_from"] is not None and stats["outage_refused_until"] is not None


def test_an_unavailable_only_outage_never_refuses_a_connection(down: SandboxProcess) -> None:
    api = Api(down)
    down.outage(unavailable_seconds=1)

    assert api.get("/reports").status_code == 503
    deadline = time.monotonic() + 1.3
    while time.monotonic() < deadline:
        connect(down)  # raises if refused
        time.sleep(0.02)

    assert api.get("/reports").status_code == 200
    stats = outage_stats(down)
    assert stats["outage_unavailable"] == {"api": 1}
    assert stats["outage_refused_from"] is None and stats["outage_refused_until"] is None


def test_a_reset_cancels_an_outage_scheduled_or_under_way(down: SandboxProcess) -> None:
    api = Api(down)
    down.outage(unavailable_seconds=30, refused_seconds=30)
    assert api.get("/reports").status_code == 503

    down.reset()

    assert api.get("/reports").status_code == 200
    down.outage(refused_seconds=1, after_seconds=0.5)
    down.reset()
    assert down.outage_status() == {"phase": "none", "unavailable_seconds": 0.0, "refused_seconds": 0.0}
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        connect(down)
        time.sleep(0.02)
    assert outage_stats(down) == {
        "outage_unavailable": {},
        "outage_refused_from": None,
        "outage_refused_until": None,
    }


def test_a_new_schedule_replaces_the_one_under_way(down: SandboxProcess) -> None:
    api = Api(down)
    down.outage(unavailable_seconds=30)
    assert api.get("/reports").status_code == 503

    assert down.outage()["phase"] == "over"  # nothing to do: over at once

    assert api.get("/reports").status_code == 200


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('{"unavailable_seconds": -1}', "unavailable_seconds"),
        ('{"refused_seconds": -0.5}', "refused_seconds"),
        ('{"after_seconds": -1}', "after_seconds"),
        ('{"refused_seconds": "60"}', "refused_seconds"),
        ('{"unavailable_seconds": true}', "unavailable_seconds"),
        ('{"unavailable_seconds": null}', "unavailable_seconds"),
        ('{"refused_seconds": Infinity}', "refused_seconds"),
        ('{"refused_secs": 60}', "refused_secs"),
    ],
)
def test_an_invalid_schedule_is_400_naming_the_field(sb: SandboxProcess, body: str, named: str) -> None:
    sb.outage(refused_seconds=1, after_seconds=600)  # the sb fixture's reset cancels it

    response = requests.post(
        sb.base_url + "/_sandbox/outage",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_setting"
    assert named in response.json()["message"]
    kept = sb.outage_status()  # the previous schedule stays
    assert (kept["phase"], kept["unavailable_seconds"], kept["refused_seconds"]) == ("scheduled", 0, 1)


def test_the_command_line_schedules_an_outage_at_start(make_sandbox: Callable[..., SandboxProcess]) -> None:
    sb = make_sandbox(outage_after_seconds=60, outage_unavailable_seconds=2, outage_refused_seconds=3)

    schedule = sb.outage_status()

    assert schedule["phase"] == "scheduled"
    assert (schedule["unavailable_seconds"], schedule["refused_seconds"]) == (2.0, 3.0)
    assert seconds_between(schedule["unavailable_from"], schedule["back_at"]) == about(5)
    assert "outage_after_seconds" not in sb.config()  # an event, not a setting
    sb.reset(config=True)
    assert sb.outage_status()["phase"] == "none"  # nor does a reset bring it back


def test_negative_seconds_on_the_command_line_are_refused() -> None:
    argv = [sys.executable, "-m", "echo360_sandbox", "--outage-refused-seconds", "-1"]

    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert "--outage-refused-seconds" in result.stderr and "'-1'" in result.stderr


def test_the_schedule_is_json_of_the_documented_shape(sb: SandboxProcess) -> None:
    schedule = sb.outage(unavailable_seconds=20, refused_seconds=10, after_seconds=60)

    assert set(schedule) == {
        "phase",
        "unavailable_seconds",
        "refused_seconds",
        "unavailable_from",
        "refused_from",
        "back_at",
    }
    assert schedule == sb.outage_status() and schedule["phase"] == "scheduled"
    assert seconds_between(schedule["unavailable_from"], schedule["refused_from"]) == about(20)
