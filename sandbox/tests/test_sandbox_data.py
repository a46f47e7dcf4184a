"""The sandbox's report files: columns, quoting, determinism, splitting and streaming, over real HTTP."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from devtools.sandbox import SandboxProcess

from echo360_sandbox.catalog import REPORTS

pytestmark = pytest.mark.integration

WEEK = {"start": "2024-01-01", "end": "2024-01-08"}
DELIMITERS = {",": "comma", "\t": "tab", "|": "pipe"}
TIMEOUT = 30


class Reports:
    """Submit a report on the sandbox and fetch its assets through the signed links, with ``requests``."""

    def __init__(self, sandbox: SandboxProcess) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {sandbox.access_token()}"

    def submit(self, report: str, parameters: dict[str, str] | None = None, **output: Any) -> str:
        if parameters is None:
            parameters = {} if report == "asset" else recent_window()
        body = {"parameters": parameters, "output": {"compression": True, "delimiter": ",", **output}}
        response = self.session.post(f"{self.sandbox.api_url}/requests/{report}", json=body, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return str(response.json()["requestId"])

    def signed_assets(self, request_id: str) -> list[str]:
        detail = self.session.get(f"{self.sandbox.api_url}/request/{request_id}", timeout=TIMEOUT).json()
        assert detail["status"] == "Available", detail
        return list(detail["signedAssets"])

    def download(self, url: str) -> bytes:
        response = requests.get(url, timeout=TIMEOUT)  # a plain GET: no Authorization header
        assert response.status_code == 200, response.text
        assert int(response.headers["Content-Length"]) == len(response.content)
        return response.content

    def fetch(self, report: str, parameters: dict[str, str] | None = None, **output: Any) -> list[bytes]:
        """Every asset of a new request for ``report``, in order."""
        return [self.download(url) for url in self.signed_assets(self.submit(report, parameters, **output))]


def recent_window(days: int = 7) -> dict[str, str]:
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
    return {"start": (end - dt.timedelta(days=days)).isoformat(), "end": end.isoformat()}


def text_of(asset: bytes) -> str:
    return (gzip.decompress(asset) if asset[:2] == b"\x1f\x8b" else asset).decode("utf-8")


def parse(asset: bytes, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text_of(asset), newline=""), delimiter=delimiter))


@pytest.fixture
def sb(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The session sandbox, reset; requests are Available at once (never in flight), 5 rows a day."""
    sandbox.reset(faults=True, config=True)
    sandbox.set_config(processing_seconds=0, rows_per_day=5)
    yield sandbox
    sandbox.reset(faults=True, config=True)


@pytest.fixture
def reports(sb: SandboxProcess) -> Reports:
    return Reports(sb)


@pytest.mark.parametrize("compression", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("delimiter", list(DELIMITERS), ids=list(DELIMITERS.values()))
def test_every_report_has_the_catalog_columns_as_its_header(
    reports: Reports, delimiter: str, compression: bool
) -> None:
    for name, definition in REPORTS.items():
        [asset] = reports.fetch(name, compression=compression, delimiter=delimiter)

        assert (asset[:2] == b"\x1f\x8b") is compression
        rows = parse(asset, delimiter)
        assert rows[0] == list(definition.columns), name
        assert text_of(asset).split("\n", 1)[0] == delimiter.join(f'"{c}"' for c in definition.columns)
        assert len(rows) == 1 + (5 if name == "asset" else 5 * 7), name
        assert all(len(row) == len(definition.columns) for row in rows), name


def test_rows_fall_inside_the_window_day_by_day(reports: Reports, sb: SandboxProcess) -> None:
    sb.set_config(rows_per_day=40)
    window = {"start": "2024-02-27", "end": "2024-03-02"}  # across a leap day

    [asset] = reports.fetch("videoview", window)

    rows = parse(asset)[1:]
    stamps = [row[REPORTS["videoview"].columns.index("event_timestamp")] for row in rows]
    assert len(rows) == 40 * 4
    assert stamps == sorted(stamps)
    assert {s[:10] for s in stamps} == {"2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", s) for s in stamps)


@pytest.mark.parametrize("delimiter", list(DELIMITERS), ids=list(DELIMITERS.values()))
def test_delimiters_quotes_and_non_ascii_text_round_trip(
    reports: Reports, sb: SandboxProcess, delimiter: str
) -> None:
    sb.set_config(rows_per_day=60)
    columns = REPORTS["viewsessions"].columns

    [asset] = reports.fetch("viewsessions", compression=False, delimiter=delimiter)

    text = asset.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=csv.QUOTE_NONNUMERIC))
    values = [v for row in rows[1:] for v in row]
    strings = [v for v in values if isinstance(v, str)]
    assert text.count("\n") == len(rows) == 1 + 60 * 7  # one line per row: no embedded newlines
    for needle in (",", "\t", "|", '"', "Zoë", "José", "Müller", "東京"):
        assert any(needle in s for s in strings), needle
    # Numbers are bare (so QUOTE_NONNUMERIC reads them as floats), strings quoted.
    assert isinstance(rows[1][columns.index("mediaDuration")], float)
    assert isinstance(rows[1][columns.index("playbackSpeed")], float)
    assert isinstance(rows[1][columns.index("userId")], str)
    first_line = text.split("\n")[1]
    assert first_line.startswith('"') and delimiter + '"' in first_line


def test_same_parameters_give_the_same_bytes(reports: Reports) -> None:
    first_id, second_id = reports.submit("videoview", WEEK), reports.submit("videoview", WEEK)

    [first] = [reports.download(u) for u in reports.signed_assets(first_id)]
    [second] = [reports.download(u) for u in reports.signed_assets(second_id)]
    [tab] = reports.fetch("videoview", WEEK, delimiter="\t")
    [plain] = reports.fetch("videoview", WEEK, compression=False)

    assert first_id != second_id
    assert first == second
    assert tab != first and parse(tab, "\t") == parse(first)
    assert plain == gzip.decompress(first)
    assert first[3] & 0x08 == 0 and first[4:8] == b"\0\0\0\0"  # gzip: no file name, mtime 0


def test_each_day_is_seeded_on_its_own(reports: Reports) -> None:
    [both] = reports.fetch("liveviews", {"start": "2024-05-01", "end": "2024-05-03"})
    [day1] = reports.fetch("liveviews", {"start": "2024-05-01", "end": "2024-05-02"})
    [day2] = reports.fetch("liveviews", {"start": "2024-05-02", "end": "2024-05-03"})
    [other] = reports.fetch("videoview", {"start": "2024-05-01", "end": "2024-05-02"})

    assert parse(both) == parse(day1) + parse(day2)[1:]  # adjacent windows concatenate
    assert parse(day1)[1:] != parse(day2)[1:]
    assert parse(other)[1][0] != parse(day1)[1][0]


def test_the_seed_changes_the_data(make_sandbox: Any, reports: Reports) -> None:
    [default_seed] = reports.fetch("videoview", WEEK)
    other = Reports(make_sandbox(seed=7, rows_per_day=5, processing_seconds=0))

    [seeded] = other.fetch("videoview", WEEK)

    assert parse(seeded)[0] == parse(default_seed)[0]
    assert parse(seeded)[1:] != parse(default_seed)[1:]


@pytest.mark.parametrize("compression", [True, False], ids=["gzip", "plain"])
def test_large_reports_are_split_into_assets_each_with_a_header(
    reports: Reports, sb: SandboxProcess, compression: bool
) -> None:
    sb.set_config(rows_per_day=10)
    [whole] = reports.fetch("qanda2", WEEK, compression=compression)
    sb.set_config(max_rows_per_asset=25)
    request_id = reports.submit("qanda2", WEEK, compression=compression)

    urls = reports.signed_assets(request_id)
    parts = [parse(reports.download(url)) for url in urls]

    suffix = ".csv.gz" if compression else ".csv"
    assert [u.split("?")[0].rsplit("/", 1)[1] for u in urls] == [
        f"{request_id}_{n}{suffix}" for n in (1, 2, 3)
    ]
    assert [len(p) - 1 for p in parts] == [25, 25, 20]
    assert all(p[0] == list(REPORTS["qanda2"].columns) for p in parts)
    assert [row for p in parts for row in p[1:]] == parse(whole)[1:]
    listed = reports.session.get(f"{sb.api_url}/requests", timeout=TIMEOUT).json()["requests"][0]
    assert listed["assets"] == [f"{request_id}_{n}{suffix}" for n in (1, 2, 3)]


def test_a_million_row_report_streams_out_with_its_length(reports: Reports, sb: SandboxProcess) -> None:
    # bench/sandbox_rss.py measures the sandbox's peak memory meanwhile; here, only the behaviour.
    sb.set_config(rows_per_day=1_000_000)
    request_id = reports.submit("liveviews", {"start": "2024-01-01", "end": "2024-01-02"}, compression=False)
    [url] = reports.signed_assets(request_id)

    with requests.get(url, stream=True, timeout=300) as response:
        assert response.status_code == 200
        length = int(response.headers["Content-Length"])
        received = lines = 0
        for chunk in response.iter_content(1 << 20):
            received += len(chunk)
            lines += chunk.count(b"\n")

    assert received == length > 100_000_000
    assert lines == 1 + 1_000_000
    assert url.split("?")[0].endswith(f"/{request_id}.csv")  # 1,000,000 rows still fit one asset
    assert sb.stats()["downloaded_bytes"] == length
