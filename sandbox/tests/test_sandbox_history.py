"""A long listing history (``history``, ``history_days``) and the listing order (``requests_order``).

The history is what ``GET /requests`` shows of an institution that ran its reports daily for a year
before the sandbox started: thousands of ``Expired`` requests around the few a test submits. Most
tests set it at runtime on the session's sandbox (``POST /_sandbox/config``); some start a sandbox
with it as command-line flags.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from devtools.sandbox import SandboxProcess
from sandbox_api import Api, day

from echo360_sandbox.catalog import REPORTS
from echo360_sandbox.config import DAY_SECONDS
from echo360_sandbox.validation import one_year_before

pytestmark = pytest.mark.integration

OTHER = "another-client"
RETENTION = 14 * DAY_SECONDS
DATED = [name for name, report in REPORTS.items() if report.is_dated]
PAGINGS = ["link", "cursor", "header"]


def created_at(entry: dict[str, Any]) -> float:
    """A listed request's ``created`` as a Unix time."""
    return dt.datetime.strptime(entry["created"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def history_of(sb: SandboxProcess, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of a listing that belong to the history."""
    return [r for r in listed if sb.request_info(r["requestId"])["history"]]


# --- the history ----------------------------------------------------------------------------------


def test_history_is_a_year_of_expired_daily_runs(sb: SandboxProcess) -> None:
    before = time.time()
    sb.set_config(history=365)
    after = time.time()
    api = Api(sb)

    listed = api.listing()

    assert len(listed) == 365
    assert len({r["requestId"] for r in listed}) == 365
    assert {r["status"] for r in listed} == {"Expired"}
    assert all(set(r) == {"requestId", "status", "reportName", "parameters", "created"} for r in listed)
    # created: spread evenly from history_days (365) to retention_seconds (14 days) before now
    oldest_first = sorted(listed, key=created_at)
    times = [created_at(r) for r in oldest_first]
    assert before - 365 * DAY_SECONDS - 1 <= times[0] <= after - 365 * DAY_SECONDS + 1
    assert before - RETENTION - 1 <= times[-1] <= after - RETENTION + 1
    step = (times[-1] - times[0]) / 364
    assert all(abs(b - a - step) < 0.01 for a, b in zip(times, times[1:], strict=False))
    # names rotate over the 12 dated reports, oldest first; never the undated asset report
    assert [r["reportName"] for r in oldest_first] == [DATED[i % len(DATED)] for i in range(365)]
    # a one-day window starting 366 days before the created date: older than a year before today
    today = dt.datetime.now(dt.UTC).date()
    for entry in listed:
        created_day = dt.datetime.fromtimestamp(created_at(entry), dt.UTC).date()
        start = created_day - dt.timedelta(days=366)
        assert entry["parameters"] == {"start": str(start), "end": str(start + dt.timedelta(days=1))}
        assert start < one_year_before(today) - dt.timedelta(days=13)


def test_history_does_not_count_as_submitted_nor_in_flight(sb: SandboxProcess) -> None:
    sb.set_config(history=100, processing_seconds=30)
    api = Api(sb)

    stats = sb.stats()
    assert (stats["history"], stats["requests"], stats["in_flight"], stats["submitted"]) == (100, 0, 0, 0)
    assert (stats["submissions"], stats["clients"], stats["statuses"]) == ({}, {}, {})

    # the whole in-flight limit is still free
    mine = [api.submit_ok(parameters=day(n))["requestId"] for n in (1, 2, 3)]
    refused = api.submit(parameters=day(4))

    assert refused.status_code == 429 and refused.json()["error"] == "limit_exceeded"
    stats = sb.stats()
    assert (stats["in_flight"], stats["submitted"], stats["requests"], stats["history"]) == (3, 3, 3, 100)
    assert stats["clients"] == {sb.client_id: 3}
    assert stats["statuses"] == {"Pending": 3}
    assert [r["requestId"] for r in api.listing()[:3]] == mine[::-1]


def test_detail_of_a_history_entry(sb: SandboxProcess) -> None:
    sb.set_config(history=12, processing_seconds=0, rows_per_day=2)
    api = Api(sb)
    entry = api.listing()[0]
    request_id = entry["requestId"]

    detail = api.get(f"/request/{request_id}")
    info = sb.request_info(request_id)

    assert detail.status_code == 200, detail.text
    assert detail.json() == entry  # Expired: no signedAssets
    assert "signedAssets" not in detail.json() and "assets" not in detail.json()
    assert info["history"] is True and info["clientId"] == sb.client_id
    assert info["status"] == "Expired" and info["forcedStatus"] is None
    sb.set_config(request_path="plural")
    assert api.get(f"/requests/{request_id}").json() == entry
    submitted = api.submit_ok(parameters=day(1))["requestId"]
    assert sb.request_info(submitted)["history"] is False


def test_both_scopes_list_the_history_it_belongs_to_the_configured_client(sb: SandboxProcess) -> None:
    sb.set_config(history=5, processing_seconds=30)
    api = Api(sb)
    mine = api.submit_ok(parameters=day(1))["requestId"]
    other = sb.submit_as(OTHER, "videoview", day(2))["requestId"]
    institution = api.listed_ids()

    sb.set_config(requests_scope="client")
    client = api.listed_ids()

    assert len(institution) == 7 and institution[:2] == [other, mine]
    assert client == [mine, *institution[2:]]
    assert api.get(f"/request/{institution[-1]}").status_code == 200
    assert api.get(f"/request/{other}").status_code == 404


def test_history_shows_the_configured_name_of_the_qanda_report(sb: SandboxProcess) -> None:
    sb.set_config(history=24, qanda_name="qandav2")

    names = {r["reportName"] for r in Api(sb).listing()}

    assert "qandav2" in names and "qanda2" not in names and len(names) == 12


def test_changing_history_at_runtime_makes_it_again_and_keeps_submissions(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0)
    api = Api(sb)
    mine = [api.submit_ok(parameters=day(n))["requestId"] for n in (1, 2)]

    sb.set_config(history=10)
    ten = api.listed_ids()
    sb.set_config(history=3)
    three = api.listing()
    sb.set_config(history=10)
    again = api.listed_ids()
    sb.set_config(history_days=30)
    shorter = api.listing()
    sb.set_config(history=0)
    none = api.listed_ids()

    assert ten[:2] == mine[::-1] and len(ten) == 12
    assert [r["requestId"] for r in three][:2] == mine[::-1] and len(three) == 5
    assert again == ten  # ids come from the seed alone
    assert [r["requestId"] for r in shorter] == ten
    oldest = min(created_at(r) for r in shorter[2:])
    assert time.time() - 31 * DAY_SECONDS < oldest < time.time() - 29 * DAY_SECONDS
    assert none == mine[::-1]
    stats = sb.stats()
    assert (stats["submitted"], stats["requests"], stats["history"]) == (2, 2, 0)


def test_a_runtime_retention_change_moves_the_history(sb: SandboxProcess) -> None:
    sb.set_config(history=4)
    api = Api(sb)

    sb.set_config(retention_seconds=2 * DAY_SECONDS)
    newest = max(created_at(r) for r in api.listing())

    assert time.time() - 2 * DAY_SECONDS - 5 < newest < time.time() - 2 * DAY_SECONDS + 5
    assert {r["status"] for r in api.listing()} == {"Expired"}


def test_reset_keeps_the_history_as_configured(sb: SandboxProcess) -> None:
    sb.set_config(history=6, processing_seconds=0)
    api = Api(sb)
    history = api.listed_ids()
    sb.set_status(history[0], "Failed")
    api.submit_ok(parameters=day(1))

    sb.reset()
    after_reset = api.listing()
    sb.reset(config=True)  # the starting settings: no history

    assert [r["requestId"] for r in after_reset] == history
    assert {r["status"] for r in after_reset} == {"Expired"}  # made again: nothing forced
    assert sb.stats()["history"] == 0 and api.listing() == []


def test_history_from_the_command_line(make_sandbox: Callable[..., SandboxProcess]) -> None:
    sb = make_sandbox(history=30, history_days=60, seed=7, requests_order="oldest", requests_page_size=8)
    other = make_sandbox(history=30, seed=8)
    api = Api(sb)

    config = sb.config()
    listed = [r for page in api.pages("link") for r in page]
    other_ids = {r["requestId"] for r in Api(other).listing()}

    assert (config["history"], config["history_days"], config["requests_order"]) == (30, 60, "oldest")
    assert len(listed) == 30 and sb.stats()["history"] == 30
    times = [created_at(r) for r in listed]
    assert times == sorted(times)  # oldest first
    assert time.time() - 61 * DAY_SECONDS < times[0] < time.time() - 59 * DAY_SECONDS
    assert not other_ids & {r["requestId"] for r in listed}  # another seed, other ids
    assert sb.stats()["calls"]["GET /requests"] == 4  # pages of 8: every page counts


# --- requests_order -------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["newest", "oldest"])
@pytest.mark.parametrize("paging", [None, *PAGINGS])
def test_order_across_every_paging_dialect(sb: SandboxProcess, order: str, paging: str | None) -> None:
    sb.set_config(processing_seconds=0, history=7)
    api = Api(sb)
    mine = [api.submit_ok(parameters=day(n))["requestId"] for n in (1, 2, 3)]
    other = sb.submit_as(OTHER, "notes", day(4))["requestId"]
    newest_first = api.listed_ids()
    sb.set_config(requests_order=order)
    if paging is not None:
        sb.set_config(requests_page_size=4, requests_paging=paging)

    pages = [api.listing()] if paging is None else api.pages(paging)

    listed = [r["requestId"] for page in pages for r in page]
    expected = newest_first if order == "newest" else newest_first[::-1]
    assert listed == expected and len(set(listed)) == 11
    assert newest_first[:4] == [other, *mine[::-1]]  # submissions are newer than any history entry
    times = [created_at(r) for page in pages for r in page]
    assert times == sorted(times, reverse=order == "newest")
    if paging is not None:
        assert [len(p) for p in pages] == [4, 4, 3]


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_requests_made_in_the_same_instant_come_by_id_in_both_orders(sb: SandboxProcess, order: str) -> None:
    # history_days shorter than the retention: every entry is made retention_seconds before now
    sb.set_config(
        history=9, history_days=1, requests_order=order, requests_page_size=2, requests_paging="cursor"
    )
    api = Api(sb)

    pages = api.pages("cursor")

    listed = [r["requestId"] for page in pages for r in page]
    assert len({r["created"] for page in pages for r in page}) == 1
    assert listed == sorted(listed)


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_pages_stay_complete_while_requests_arrive(sb: SandboxProcess, order: str) -> None:
    sb.set_config(processing_seconds=0, history=5, requests_order=order)
    api = Api(sb)
    before = api.listed_ids()
    sb.set_config(requests_page_size=2, requests_paging="cursor")

    first = api.get("/requests").json()
    newer = api.submit_ok(parameters=day(20))["requestId"]
    rest: list[str] = []
    cursor = first["nextCursor"]
    while cursor is not None:
        page = api.get("/requests", params={"cursor": cursor}).json()
        rest += [r["requestId"] for r in page["requests"]]
        cursor = page["nextCursor"]

    # newest first: the new request lands on the page already read; oldest first: on the last one
    expected = before if order == "newest" else [*before, newer]
    assert [r["requestId"] for r in first["requests"]] + rest == expected


def test_a_long_history_pages_fast_and_whole(sb: SandboxProcess) -> None:
    sb.set_config(history=5000, requests_page_size=50, requests_paging="cursor", requests_order="oldest")
    api = Api(sb)
    api.submit_ok(parameters=day(1))  # a change of the requests: the listing is sorted again once

    seconds: list[float] = []
    seen: list[str] = []
    cursor = None
    while True:
        started = time.perf_counter()
        response = api.get("/requests", params={"cursor": cursor} if cursor else None)
        seconds.append(time.perf_counter() - started)
        body = response.json()
        seen += [r["requestId"] for r in body["requests"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)) == 5001 and len(seconds) == 101
    assert statistics.median(seconds) < 0.25, seconds  # a few ms on a laptop; generous for busy CI


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [("requests_order", "random"), ("history", -1), ("history", 1.5), ("history_days", 0)],
)
def test_history_and_order_settings_are_validated(sb: SandboxProcess, setting: str, value: Any) -> None:
    with pytest.raises(requests.HTTPError, match=setting):
        sb.set_config(**{setting: value})
