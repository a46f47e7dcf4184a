"""``header_drift``: a report whose columns changed since the vendor's page was written (a column
added at the end, the last one gone, the first one renamed), fixed at submission like ``empty_shape``.

Each drifted asset is compared, parsed with :mod:`csv` under its delimiter, with the undrifted asset of
the same report and window: the drift must touch only the column it names and keep every row.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
from collections.abc import Callable

import pytest
import requests
from devtools.sandbox import SandboxProcess
from sandbox_api import TIMEOUT, Api, day

from echo360_sandbox.assets import AssetSpec

pytestmark = pytest.mark.integration

DRIFTS = ("new", "missing", "renamed")
#: Output options: gzip on and off, and delimiters that the generated values themselves hold.
OUTPUTS = [(True, ","), (False, "|"), (True, "\t")]
#: 2024-01-01 has an even ordinal: with ``empty_every=2`` its window has no rows.
EMPTY_DAY, FULL_DAY = 1, 2

Table = tuple[list[str], list[list[str]]]


@pytest.fixture
def api(sb: SandboxProcess) -> Api:
    sb.set_config(processing_seconds=0)
    return Api(sb, window=day(FULL_DAY))


def served(api: Api, request_id: str) -> list[bytes]:
    """Each asset of an ``Available`` request, as its signed link serves it."""
    urls = api.detail(request_id)["signedAssets"]
    return [requests.get(url, timeout=TIMEOUT).content for url in urls]


def text_of(content: bytes, compression: bool) -> str:
    return (gzip.decompress(content) if compression else content).decode("utf-8")


def parsed(content: bytes, compression: bool, delimiter: str) -> Table:
    """The header and rows of one asset."""
    header, *rows = csv.reader(io.StringIO(text_of(content, compression), newline=""), delimiter=delimiter)
    return header, rows


def expected(drift: str, plain: Table) -> Table:
    """What ``drift`` makes of the undrifted ``plain`` header and rows."""
    header, rows = plain
    if drift == "new":
        return [*header, "newColumn"], [[*row, ""] for row in rows]
    if drift == "missing":
        return header[:-1], [row[:-1] for row in rows]
    assert drift == "renamed"
    return [header[0] + "_renamed", *header[1:]], rows


def submit_under(
    api: Api, sb: SandboxProcess, drift: str, report: str = "videoview", **output: object
) -> str:
    """Submit ``report`` (``asset`` without parameters, the others for the test's day) under ``drift``."""
    sb.set_config(header_drift=drift)
    return str(api.submit_ok(report, {} if report == "asset" else None, **output)["requestId"])


@pytest.mark.parametrize(("compression", "delimiter"), OUTPUTS)
@pytest.mark.parametrize("drift", DRIFTS)
def test_a_drifted_report_differs_only_in_the_drifted_column(
    api: Api, sb: SandboxProcess, drift: str, compression: bool, delimiter: str
) -> None:
    output = {"compression": compression, "delimiter": delimiter}
    plain_id = submit_under(api, sb, "none", **output)
    drifted_id = submit_under(api, sb, drift, **output)

    [plain], [drifted] = served(api, plain_id), served(api, drifted_id)

    plain_table = parsed(plain, compression, delimiter)
    header, rows = parsed(drifted, compression, delimiter)
    assert (header, rows) == expected(drift, plain_table)
    assert len(rows) == len(plain_table[1]) == 50
    assert sb.request_info(drifted_id)["headerDrift"] == drift
    assert sb.request_info(plain_id)["headerDrift"] == "none"


@pytest.mark.parametrize(("compression", "delimiter"), OUTPUTS)
def test_the_new_column_is_an_empty_quoted_string(
    api: Api, sb: SandboxProcess, compression: bool, delimiter: str
) -> None:
    request_id = submit_under(api, sb, "new", compression=compression, delimiter=delimiter)

    [content] = served(api, request_id)

    header, *lines = text_of(content, compression).splitlines()
    assert header.endswith(f'{delimiter}"newColumn"')
    assert len(lines) == 50 and all(line.endswith(f'{delimiter}""') for line in lines)


@pytest.mark.parametrize("drift", DRIFTS)
def test_the_drift_is_fixed_at_submission(api: Api, sb: SandboxProcess, drift: str) -> None:
    output = {"compression": False, "delimiter": "|"}
    plain_id = submit_under(api, sb, "none", **output)
    drifted_id = submit_under(api, sb, drift, **output)
    plain_before, drifted_before = served(api, plain_id), served(api, drifted_id)
    assert plain_before != drifted_before

    sb.set_config(header_drift="none")
    assert served(api, drifted_id) == drifted_before
    sb.set_config(header_drift=drift)
    assert served(api, plain_id) == plain_before


@pytest.mark.parametrize("drift", DRIFTS)
def test_an_empty_window_shows_the_drifted_header(api: Api, sb: SandboxProcess, drift: str) -> None:
    sb.set_config(empty_every=2)  # empty_shape: header by default
    [plain] = served(api, api.submit_ok(parameters=day(EMPTY_DAY))["requestId"])
    sb.set_config(header_drift=drift)
    [drifted] = served(api, api.submit_ok(parameters=day(EMPTY_DAY))["requestId"])

    header, rows = parsed(drifted, True, ",")
    assert (header, rows) == expected(drift, parsed(plain, True, ","))
    assert rows == []


@pytest.mark.parametrize("drift", DRIFTS)
def test_the_undated_report_drifts_in_every_part(api: Api, sb: SandboxProcess, drift: str) -> None:
    sb.set_config(max_rows_per_asset=20)  # 50 rows: three assets, each with its header
    plain = served(api, submit_under(api, sb, "none", "asset", compression=False, delimiter="\t"))
    drifted = served(api, submit_under(api, sb, drift, "asset", compression=False, delimiter="\t"))

    assert len(plain) == len(drifted) == 3
    for before, after in zip(plain, drifted, strict=True):
        assert parsed(after, False, "\t") == expected(drift, parsed(before, False, "\t"))


def test_no_drift_by_default(api: Api, sb: SandboxProcess) -> None:
    assert sb.config()["header_drift"] == "none"
    request_id = api.submit_ok()["requestId"]
    assert sb.request_info(request_id)["headerDrift"] == "none"


def test_drifted_assets_never_share_a_cached_file() -> None:
    spec = AssetSpec("videoview", tuple(sorted(day(1).items())), True, ",", 1, 100, 1_000_000, 0)
    names = {dataclasses.replace(spec, header_drift=drift).cache_name() for drift in ("none", *DRIFTS)}
    assert len(names) == 4
    assert "header_drift" not in repr(spec)  # the repr names the cached file: undrifted names stay
    assert dataclasses.replace(spec, header_drift="none").cache_name() == spec.cache_name()


def test_an_invalid_drift_is_refused(sb: SandboxProcess) -> None:
    url = f"{sb.base_url}/_sandbox/config"
    response = requests.post(url, json={"header_drift": "extra"}, timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_setting"
    assert "header_drift" in response.json()["message"]
    assert sb.config()["header_drift"] == "none"


def test_the_drift_as_a_command_line_flag(make_sandbox: Callable[..., SandboxProcess]) -> None:
    sb = make_sandbox(processing_seconds=0, rate_limit=0, rows_per_day=5, header_drift="missing")
    assert sb.config()["header_drift"] == "missing"
    request_id = Api(sb).submit_ok()["requestId"]
    assert sb.request_info(request_id)["headerDrift"] == "missing"
