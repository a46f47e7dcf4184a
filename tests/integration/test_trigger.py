"""ReportStatusTrigger against the sandbox as a real process."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

from airflow_provider_echo360.hooks.echo360 import Echo360Hook
from airflow_provider_echo360.triggers.echo360 import ReportStatusTrigger
from devtools.processes import wait_for
from devtools.sandbox import SandboxProcess

pytestmark = pytest.mark.integration
WINDOW = {"start": "2024-01-01", "end": "2024-01-02"}


@pytest.fixture(scope="module")
def started():
    with SandboxProcess(processing_seconds=1, rate_limit=0) as sandbox, pytest.MonkeyPatch.context() as mp:
        extra = {"backoff_seconds": 0.05, "max_retries": 2}
        mp.setenv("AIRFLOW_CONN_ECHO360_TRIG", sandbox.airflow_connection(extra=extra))
        yield sandbox


@pytest.fixture
def sandbox(started):
    started.reset(faults=True, config=True)
    return started


async def _collect(trigger: ReportStatusTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]


def run(trigger: ReportStatusTrigger) -> list[dict]:
    return [event.payload for event in asyncio.run(_collect(trigger))]


def submit(report: str = "videoview") -> str:
    return Echo360Hook("echo360_trig").submit_request(report, WINDOW).request_id


def trigger_for(request_id: str, **kwargs) -> ReportStatusTrigger:
    return ReportStatusTrigger(
        request_id, "echo360_trig", poll_interval=kwargs.pop("poll_interval", 0.2), **kwargs
    )


def test_available_yields_one_event(sandbox):
    request_id = submit()
    assert run(trigger_for(request_id)) == [
        {"status": "Available", "request_id": request_id, "message": f"request {request_id} is Available"}
    ]


def test_available_can_end_the_task_in_the_triggerer(sandbox):
    request_id = submit()
    events = asyncio.run(_collect(trigger_for(request_id, end_task_when_available=True)))
    assert len(events) == 1 and isinstance(events[0], TaskSuccessEvent)
    assert events[0].xcoms is None  # the task pushed its XCom itself (Airflow 3.3 double-encodes these)


def test_other_statuses_still_resume_the_task_when_it_ends_in_the_triggerer(sandbox):
    sandbox.set_config(processing_seconds=60)
    request_id = submit()
    sandbox.set_status(request_id, "Failed")
    events = asyncio.run(_collect(trigger_for(request_id, end_task_when_available=True)))
    assert [type(event) for event in events] == [TriggerEvent]
    assert events[0].payload["status"] == "Failed"


@pytest.mark.parametrize("status", ["Failed", "Missing", "Expired"])
def test_terminal_statuses_end_the_wait(sandbox, status):
    sandbox.set_config(processing_seconds=60)
    request_id = submit()
    sandbox.set_status(request_id, status)
    (event,) = run(trigger_for(request_id))
    assert (event["status"], event["request_id"]) == (status, request_id)


def test_a_network_blip_in_the_middle_of_a_wait_is_survived(sandbox):
    sandbox.set_config(processing_seconds=3)
    request_id = submit()
    faults_before = sum(sandbox.stats()["faults"].values())

    sandbox.set_faults(fault_rate=1.0, faults=["drop", "5xx"], fault_targets=["api", "token"])

    def blip() -> None:  # ends after three failed calls, however slow the machine
        faulted = lambda: sum(sandbox.stats()["faults"].values()) - faults_before >= 3  # noqa: E731
        wait_for(faulted, 60, "3 faults", poll=0.2)
        sandbox.set_faults(fault_rate=0.0)

    blip_thread = threading.Thread(target=blip, daemon=True)
    blip_thread.start()
    (event,) = run(trigger_for(request_id, max_outage_seconds=60))
    blip_thread.join()
    assert event["status"] == "Available"
    assert sum(sandbox.stats()["faults"].values()) - faults_before >= 3


def test_an_outage_of_503s_then_refused_connections_and_a_proxys_pages_are_polled_through(sandbox):
    """The sandbox's outage switch and HTML answers, while the trigger waits: it outlasts the hook's
    retries (about a second here) and still ends with the request's status."""
    sandbox.set_config(processing_seconds=3)
    request_id = submit()
    sandbox.set_faults(fault_rate=1.0, faults=["html"], fault_targets=["api"], fault_budget=3)
    sandbox.outage(unavailable_seconds=3, refused_seconds=3, after_seconds=1)
    (event,) = run(trigger_for(request_id, max_outage_seconds=60))
    assert event["status"] == "Available"
    stats = sandbox.stats()
    assert stats["faults"] == {"html": 3} and stats["outage_refused_until"], stats


def test_a_sustained_outage_ends_with_an_error_event(sandbox):
    sandbox.set_config(processing_seconds=60)
    request_id = submit()
    sandbox.set_faults(fault_rate=1.0, faults=["5xx"], fault_targets=["api"])
    (event,) = run(trigger_for(request_id, max_outage_seconds=1))
    assert event["status"] == "error" and "unreachable" in event["message"]


def test_the_deadline_ends_with_a_timeout_event(sandbox):
    sandbox.set_config(processing_seconds=60)
    request_id = submit()
    started = time.monotonic()
    (event,) = run(trigger_for(request_id, deadline=time.time() + 1))
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 10


def test_an_unknown_request_ends_with_an_error_event(sandbox):
    (event,) = run(trigger_for("00000000-0000-0000-0000-00000000dead"))
    assert event["status"] == "error"
