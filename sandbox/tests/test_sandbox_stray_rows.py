"""``stray_rows``: a dated report's records whose time no day of the window can take (empty, not a date,
past the window), fixed at submission like ``header_drift``.

Each asset is parsed with :mod:`csv` under its delimiter and compared with the asset of the same
request made without strays: the strays must be exactly the rows added, in their three kinds, and every
other row must stay as it was.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import io
from collections.abc import Callable

import pytest
import requests
from devtools.sandbox import SandboxProcess
from sandbox_api import TIMEOUT, Api

from echo360_sandbox.assets import AssetSpec
from echo360_sandbox.catalog import REPORTS

pytestmark = pytest.mark.integration

#: Three days of March 2024: 150 rows in the session sandbox (50 a day).
WINDOW = {"start": "2024-03-04", "end": "2024-03-07"}
DAYS = {dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)}
END = dt.date(2024, 3, 7)
OUTPUTS = [(True, ","), (False, "|"), (True, "\t")]

Table = tuple[list[str], list[list[str]]]


@pytest.fixture
def api(sb: SandboxProcess) -> Api:
    sb.set_config(processing_seconds=0)
    return Api(sb, window=WINDOW)


def served(api: Api, request_id: str) -> list[bytes]:
    urls = api.detail(request_id)["signedAssets"]
    return [requests.get(url, timeout=TIMEOUT).content for url in urls]


def parsed(content: bytes, compression: bool, delimiter: str) -> Table:
    text = (gzip.decompress(content) if compression else content).decode("utf-8")
    header, *rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return header, rows


def submit_with(
    api: Api, sb: SandboxProcess, strays: int, report: str = "videoview", **output: object
) -> str:
    sb.set_config(stray_rows=strays)
    return str(api.submit_ok(report, {} if report == "asset" else None, **output)["requestId"])


def in_window(value: str, days: set[dt.date]) -> bool:
    try:
        return dt.date.fromisoformat(value[:10]) in days
    except ValueError:
        return False


def kind(value: str) -> str:
    """What a stray's time is: ``empty``, ``unreadable``, or the day of a valid timestamp."""
    if value == "":
        return "empty"
    try:
        return dt.datetime.fromisoformat(value).date().isoformat()
    except ValueError:
        return "unreadable" if value == "not a date" else f"unexpected {value!r}"


def strays_of(table: Table, report: str, days: set[dt.date]) -> list[tuple[int, list[str]]]:
    """The rows (with their positions) whose time is not on a day of ``days``."""
    header, rows = table
    column = header.index(str(REPORTS[report].time_column))
    return [(n, row) for n, row in enumerate(rows) if not in_window(row[column], days)]


@pytest.mark.parametrize(("compression", "delimiter"), OUTPUTS)
def test_three_strays_are_one_of_each_kind_among_the_usual_rows(
    api: Api, sb: SandboxProcess, compression: bool, delimiter: str
) -> None:
    output = {"compression": compression, "delimiter": delimiter}
    [plain] = served(api, submit_with(api, sb, 0, **output))
    stray_id = submit_with(api, sb, 3, **output)
    [content] = served(api, stray_id)

    header, rows = parsed(content, compression, delimiter)
    plain_header, plain_rows = parsed(plain, compression, delimiter)
    found = strays_of((header, rows), "videoview", DAYS)
    column = header.index("event_timestamp")
    assert header == plain_header and len(rows) == 150 + 3
    assert [kind(row[column]) for _, row in found] == ["empty", "unreadable", END.isoformat()]
    assert [row for n, row in enumerate(rows) if n not in {n for n, _ in found}] == plain_rows
    assert found[0][0] < len(rows) - 3  # among the usual rows, not all after them
    assert sb.request_info(stray_id)["strayRows"] == 3
    for _, row in found:  # the rest of a stray is as usual: a value wherever usual rows always have one
        assert len(row) == len(header)
        filled = [n for n in range(len(header)) if n != column and all(r[n] for r in plain_rows)]
        assert all(row[n] for n in filled) and filled


def test_the_kinds_take_turns_in_every_asset_of_a_split_report(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(max_rows_per_asset=40)  # 150 rows: four assets
    assets = served(api, submit_with(api, sb, 5, compression=False, delimiter=","))

    assert len(assets) == 4
    kinds = ["empty", "unreadable", END.isoformat(), "empty", "unreadable"]
    total = 0
    for content in assets:
        header, rows = parsed(content, False, ",")
        found = strays_of((header, rows), "videoview", DAYS)
        assert [kind(row[header.index("event_timestamp")]) for _, row in found] == kinds
        total += len(rows) - len(found)
    assert total == 150


@pytest.mark.parametrize("report", sorted(name for name, report in REPORTS.items() if report.is_dated))
def test_every_dated_report_gets_its_strays_in_its_own_time_column(
    api: Api, sb: SandboxProcess, report: str
) -> None:
    start = dt.date.today() - dt.timedelta(days=30)  # recent enough for assetbydate's one-year look-back
    window = {"start": start.isoformat(), "end": (start + dt.timedelta(days=2)).isoformat()}
    sb.set_config(stray_rows=3)
    request_id = api.submit_ok(report, window, compression=False, delimiter="|")["requestId"]
    [content] = served(api, request_id)

    table = parsed(content, False, "|")
    column = table[0].index(str(REPORTS[report].time_column))
    found = strays_of(table, report, {start, start + dt.timedelta(days=1)})
    assert [kind(row[column]) for _, row in found] == ["empty", "unreadable", window["end"]]
    assert len(table[1]) == 100 + 3


def test_the_undated_report_and_an_empty_window_get_none(api: Api, sb: SandboxProcess) -> None:
    undated = submit_with(api, sb, 3, "asset", compression=False, delimiter=",")
    [content] = served(api, undated)
    assert len(parsed(content, False, ",")[1]) == 50
    assert sb.request_info(undated)["strayRows"] == 0

    sb.set_config(empty_every=1)  # every window empty; empty_shape: header
    empty = api.submit_ok()["requestId"]
    [content] = served(api, empty)
    assert parsed(content, True, ",")[1] == []
    assert sb.request_info(empty)["strayRows"] == 0


def test_none_by_default(api: Api, sb: SandboxProcess) -> None:
    assert sb.config()["stray_rows"] == 0
    request_id = api.submit_ok(compression=False, delimiter=",")["requestId"]
    [content] = served(api, request_id)
    table = parsed(content, False, ",")
    assert len(table[1]) == 150 and strays_of(table, "videoview", DAYS) == []
    assert sb.request_info(request_id)["strayRows"] == 0


def test_the_strays_are_fixed_at_submission_and_the_same_for_the_same_request(
    api: Api, sb: SandboxProcess
) -> None:
    first = submit_with(api, sb, 3)
    again = submit_with(api, sb, 3)
    before = served(api, first)
    assert served(api, again) == before

    sb.set_config(stray_rows=0)
    assert served(api, first) == before
    assert served(api, submit_with(api, sb, 0)) != before


def test_assets_with_strays_never_share_a_cached_file() -> None:
    spec = AssetSpec("videoview", tuple(sorted(WINDOW.items())), True, ",", 1, 50, 1_000_000, 0)
    names = {dataclasses.replace(spec, stray_rows=n).cache_name() for n in (0, 1, 3)}
    assert len(names) == 3
    assert dataclasses.replace(spec, stray_rows=0).cache_name() == spec.cache_name()


def test_a_negative_count_is_refused(sb: SandboxProcess) -> None:
    response = requests.post(f"{sb.base_url}/_sandbox/config", json={"stray_rows": -1}, timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_setting"
    assert "stray_rows" in response.json()["message"]
    assert sb.config()["stray_rows"] == 0


def test_the_strays_as_a_command_line_flag(make_sandbox: Callable[..., SandboxProcess]) -> None:
    sb = make_sandbox(processing_seconds=0, rate_limit=0, rows_per_day=5, stray_rows=2)
    assert sb.config()["stray_rows"] == 2
    request_id = Api(sb, window=WINDOW).submit_ok()["requestId"]
    assert sb.request_info(request_id)["strayRows"] == 2
