"""How answers look: echoed dates, the case of statuses and report names, the ``html`` proxy fault,
statuses the page does not name, and windows without rows. Over real HTTP with plain ``requests``.

Like the dialects, these are ways the real service might answer where the vendor's page is silent;
most tests switch them at runtime on the session's sandbox (``POST /_sandbox/config`` and
``/_sandbox/faults``), one starts a sandbox with all of them as command-line flags.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
from collections.abc import Callable
from typing import Any

import pytest
import requests
from devtools.sandbox import SandboxProcess
from sandbox_api import TIMEOUT, Api, day

from echo360_sandbox.assets import AssetSpec
from echo360_sandbox.catalog import REPORTS
from echo360_sandbox.config import DEFAULT_FAULTS, HTML_FAULT_PAGE

pytestmark = pytest.mark.integration

#: 2024-01-01 has an even ordinal: with ``empty_every=2`` its window has no rows, the 2nd's has.
EMPTY_DAY, FULL_DAY = 1, 2
assert dt.date(2024, 1, EMPTY_DAY).toordinal() % 2 == 0
assert dt.date(2024, 1, FULL_DAY).toordinal() % 2 == 1


@pytest.fixture
def api(sb: SandboxProcess) -> Api:
    return Api(sb, window=day(FULL_DAY))


def three_views(api: Api, request_id: str) -> list[dict[str, Any]]:
    """The request as the listing and ``GET /request/{id}`` show it."""
    return [api.listed(request_id), api.detail(request_id)]


# --- echo_dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("echo_dates", "echoed"),
    [
        ("date", {"start": "2024-01-02", "end": "2024-01-03"}),
        ("timestamp", {"start": "2024-01-02T00:00:00.000Z", "end": "2024-01-03T00:00:00.000Z"}),
    ],
)
def test_echo_dates(api: Api, sb: SandboxProcess, echo_dates: str, echoed: dict[str, str]) -> None:
    sb.set_config(echo_dates=echo_dates)

    created = api.submit_ok(parameters=day(FULL_DAY))

    assert created["parameters"] == echoed
    for view in three_views(api, created["requestId"]):
        assert view["parameters"] == echoed
    # What the sandbox counts is the submission as made, whatever the echo.
    assert sb.stats()["submissions"] == {"videoview|end=2024-01-03&start=2024-01-02": 1}


@pytest.mark.parametrize("echo_dates", ["date", "timestamp"])
def test_submissions_still_take_dates_only(api: Api, sb: SandboxProcess, echo_dates: str) -> None:
    sb.set_config(echo_dates=echo_dates)

    refused = api.submit(parameters={"start": "2024-01-02T00:00:00.000Z", "end": "2024-01-03"})

    assert refused.status_code == 400
    assert (refused.json()["error"], refused.json()["field"]) == ("invalid_parameter", "start")
    assert sb.stats()["submitted"] == 0


def test_the_undated_report_echoes_no_parameters(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(echo_dates="timestamp")
    assert api.submit_ok("asset", {})["parameters"] == {}


# --- status_case ----------------------------------------------------------------------------------

CASES = {"page": str, "upper": str.upper, "lower": str.lower}


@pytest.mark.parametrize("status_case", list(CASES))
def test_status_case_everywhere_a_status_is_shown(api: Api, sb: SandboxProcess, status_case: str) -> None:
    spell = CASES[status_case]
    sb.set_config(status_case=status_case, processing_seconds=60)

    created = api.submit_ok()
    request_id = created["requestId"]
    assert created["status"] == spell("Pending")
    assert [v["status"] for v in three_views(api, request_id)] == [spell("Pending")] * 2

    sb.set_status(request_id, "Available")
    listed, detail = three_views(api, request_id)
    assert (listed["status"], detail["status"]) == (spell("Available"), spell("Available"))
    assert len(listed["assets"]) == 1 and len(detail["signedAssets"]) == 1  # still Available
    assert requests.get(detail["signedAssets"][0], timeout=TIMEOUT).status_code == 200

    sb.set_status(request_id, "Failed")
    assert [v["status"] for v in three_views(api, request_id)] == [spell("Failed")] * 2
    # The statistics keep the page's spelling.
    assert sb.stats()["statuses"] == {"Failed": 1}


@pytest.mark.parametrize("status_case", list(CASES))
def test_status_case_applies_to_the_early_status(api: Api, sb: SandboxProcess, status_case: str) -> None:
    spell = CASES[status_case]
    sb.set_config(status_case=status_case, processing_seconds=60, early_status="Queued")

    created = api.submit_ok()

    assert created["status"] == spell("Queued")
    assert [v["status"] for v in three_views(api, created["requestId"])] == [spell("Queued")] * 2
    assert sb.stats()["in_flight"] == 1


# --- report_name_case -----------------------------------------------------------------------------


@pytest.mark.parametrize(("report_name_case", "shown"), [("page", "videoview"), ("upper", "VIDEOVIEW")])
def test_report_name_case(api: Api, sb: SandboxProcess, report_name_case: str, shown: str) -> None:
    sb.set_config(report_name_case=report_name_case)

    created = api.submit_ok("videoview")

    assert created["reportName"] == shown
    assert [v["reportName"] for v in three_views(api, created["requestId"])] == [shown] * 2
    # The listing of reports and the names a submission takes do not change.
    assert "videoview" in {r["name"] for r in api.get("/reports").json()["reports"]}
    assert api.submit("VIDEOVIEW").status_code == 404


def test_upper_case_report_name_of_the_qanda_report_follows_its_configured_name(
    api: Api, sb: SandboxProcess
) -> None:
    sb.set_config(report_name_case="upper", qanda_name="qandav2")
    assert api.submit_ok("qandav2")["reportName"] == "QANDAV2"


# --- the html fault -------------------------------------------------------------------------------


def test_html_fault_is_opt_in() -> None:
    assert "html" not in DEFAULT_FAULTS


def assert_html_page(response: requests.Response) -> None:
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text == HTML_FAULT_PAGE
    assert "<h1>Service temporarily unavailable</h1>" in response.text


def test_html_fault_answers_a_proxy_page_without_running_the_handler(api: Api, sb: SandboxProcess) -> None:
    assert "html" not in sb.faults()["faults"]
    sb.set_faults(fault_rate=1.0, faults=["html"])

    for response in (api.submit(), api.get("/requests"), api.get("/reports")):
        assert_html_page(response)

    sb.set_faults(fault_rate=0.0)
    stats = sb.stats()
    assert stats["faults"] == {"html": 3}
    assert stats["submitted"] == 0 and stats["requests"] == 0  # nothing was submitted
    assert stats["calls"]["POST /requests/{reportName}"] == 1
    assert stats["calls"]["GET /requests"] == 1 and stats["calls"]["GET /reports"] == 1
    assert api.get("/requests").json() == {"requests": []}


def test_html_fault_hits_the_token_endpoint_too(sb: SandboxProcess) -> None:
    sb.set_faults(fault_rate=1.0, faults=["html"], fault_targets=["token"])
    fields = {"grant_type": "client_credentials", "client_id": sb.client_id}
    fields["client_secret"] = sb.client_secret

    response = requests.post(sb.token_url, data=fields, timeout=TIMEOUT)

    assert_html_page(response)
    stats = sb.stats()
    assert stats["faults"] == {"html": 1} and stats["tokens_issued"] == 0


def test_html_fault_never_hits_a_download(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0)
    [url] = api.detail(api.submit_ok()["requestId"])["signedAssets"]
    sb.set_faults(fault_rate=1.0, faults=["html"])  # every target

    downloaded = requests.get(url, timeout=TIMEOUT)

    assert downloaded.status_code == 200
    assert downloaded.headers["Content-Type"] == "application/gzip"
    assert "html" not in sb.stats()["faults"]


def test_html_fault_through_the_faults_endpoint_and_with_others(sb: SandboxProcess) -> None:
    settings = sb.set_faults(fault_rate=0.5, faults=["5xx", "html"], fault_targets=["api"])
    assert settings["faults"] == ["5xx", "html"]
    with pytest.raises(requests.HTTPError, match="faults"):
        sb.set_faults(faults=["html-page"])


# --- statuses the page does not name --------------------------------------------------------------


def test_a_forced_unknown_status_is_shown_and_ends_the_request(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=60, max_in_flight=1)
    request_id = api.submit_ok(parameters=day(1))["requestId"]
    assert api.submit(parameters=day(2)).status_code == 429  # the one slot is taken

    forced = sb.set_status(request_id, "Cancelled")

    assert forced["status"] == "Cancelled"
    for view in three_views(api, request_id):
        assert view["status"] == "Cancelled"
        assert "assets" not in view and "signedAssets" not in view
    info = sb.request_info(request_id)
    assert info["forcedStatus"] == "Cancelled"
    stats = sb.stats()
    assert stats["in_flight"] == 0 and stats["statuses"] == {"Cancelled": 1}
    api.submit_ok(parameters=day(2))  # the slot is free again


def test_a_forced_unknown_status_follows_the_status_case(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=60, status_case="upper")
    request_id = api.submit_ok()["requestId"]

    assert sb.set_status(request_id, "Cancelled")["status"] == "CANCELLED"
    assert api.detail(request_id)["status"] == "CANCELLED"


def test_a_known_status_in_another_case_is_that_status(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=60)
    request_id = api.submit_ok()["requestId"]

    sb.set_status(request_id, "AVAILABLE")

    detail = api.detail(request_id)
    assert detail["status"] == "Available" and len(detail["signedAssets"]) == 1
    assert sb.request_info(request_id)["forcedStatus"] == "Available"


@pytest.mark.parametrize("bad", ["", "In Progress", "Cancel1ed", "in_progress", 42, None])
def test_a_forced_status_must_be_a_name_of_letters(api: Api, sb: SandboxProcess, bad: object) -> None:
    sb.set_config(processing_seconds=60)
    request_id = api.submit_ok()["requestId"]

    response = requests.post(
        f"{sb.base_url}/_sandbox/requests/{request_id}/status", json={"status": bad}, timeout=TIMEOUT
    )

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_status"
    assert "letters" in body["message"] and repr(bad) in body["message"]
    assert api.detail(request_id)["status"] == "Pending"


def test_a_status_forced_without_a_status_is_refused(api: Api, sb: SandboxProcess) -> None:
    request_id = api.submit_ok()["requestId"]
    response = requests.post(f"{sb.base_url}/_sandbox/requests/{request_id}/status", json={}, timeout=TIMEOUT)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_status")


# --- empty windows --------------------------------------------------------------------------------


def header_of(report: str, delimiter: str = ",") -> bytes:
    return (delimiter.join(f'"{c}"' for c in REPORTS[report].columns) + "\n").encode()


def test_no_empty_windows_by_default(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0)
    created = api.submit_ok(parameters=day(EMPTY_DAY))
    [url] = api.detail(created["requestId"])["signedAssets"]
    assert len(gzip.decompress(requests.get(url, timeout=TIMEOUT).content).splitlines()) == 1 + 50
    assert sb.request_info(created["requestId"])["emptyShape"] is None


@pytest.mark.parametrize("compression", [True, False])
def test_empty_shape_header(api: Api, sb: SandboxProcess, compression: bool) -> None:
    sb.set_config(processing_seconds=0, empty_every=2)  # empty_shape: header by default

    request_id = api.submit_ok(parameters=day(EMPTY_DAY), compression=compression)["requestId"]

    listed, detail = three_views(api, request_id)
    suffix = ".csv.gz" if compression else ".csv"
    assert listed["assets"] == [request_id + suffix]
    [url] = detail["signedAssets"]
    response = requests.get(url, timeout=TIMEOUT)
    assert response.status_code == 200
    content = gzip.decompress(response.content) if compression else response.content
    assert content == header_of("videoview")
    # Deterministic: the same bytes for the same empty window, whatever the request.
    again = api.submit_ok(parameters=day(EMPTY_DAY), compression=compression)["requestId"]
    assert sb.asset_bytes(again, again + suffix) == response.content
    assert sb.request_info(request_id)["emptyShape"] == "header"


@pytest.mark.parametrize("compression", [True, False])
def test_empty_shape_zero_bytes(api: Api, sb: SandboxProcess, compression: bool) -> None:
    sb.set_config(processing_seconds=0, empty_every=2, empty_shape="zero-bytes")

    request_id = api.submit_ok(parameters=day(EMPTY_DAY), compression=compression)["requestId"]

    listed, detail = three_views(api, request_id)
    suffix = ".csv.gz" if compression else ".csv"
    assert listed["assets"] == [request_id + suffix]
    [url] = detail["signedAssets"]
    response = requests.get(url, timeout=TIMEOUT)
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["Content-Length"] == "0"
    assert response.headers["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'  # the MD5 of nothing
    assert sb.asset_bytes(request_id, request_id + suffix) == b""


@pytest.mark.parametrize(("shape", "expected"), [("empty-list", []), ("no-key", None)])
def test_empty_shapes_without_an_asset(
    api: Api, sb: SandboxProcess, shape: str, expected: list[str] | None
) -> None:
    sb.set_config(processing_seconds=0, empty_every=2, empty_shape=shape)

    created = api.submit_ok(parameters=day(EMPTY_DAY))

    request_id = created["requestId"]
    listed, detail = three_views(api, request_id)
    assert listed["status"] == detail["status"] == "Available"
    assert listed.get("assets") == expected and detail.get("signedAssets") == expected
    if expected is None:
        assert "assets" not in listed and "signedAssets" not in detail
    assert sb.request_info(request_id)["assetNames"] == []
    assert sb.request_info(request_id)["emptyShape"] == shape


@pytest.mark.parametrize("shape", ["header", "no-key", "empty-list", "zero-bytes"])
def test_other_windows_keep_their_rows(api: Api, sb: SandboxProcess, shape: str) -> None:
    sb.set_config(processing_seconds=0, empty_every=2, empty_shape=shape)

    full = api.submit_ok(parameters=day(FULL_DAY))["requestId"]
    week = api.submit_ok(parameters={"start": "2024-01-02", "end": "2024-01-09"})["requestId"]
    undated = api.submit_ok("asset", {})["requestId"]

    for request_id, rows in ((full, 50), (week, 7 * 50), (undated, 50)):
        [url] = api.detail(request_id)["signedAssets"]
        assert len(gzip.decompress(requests.get(url, timeout=TIMEOUT).content).splitlines()) == 1 + rows
        assert sb.request_info(request_id)["emptyShape"] is None


def test_a_window_is_empty_by_the_ordinal_of_its_start_day(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0, empty_every=3, empty_shape="empty-list")
    for n in range(1, 8):
        request_id = api.submit_ok(parameters=day(n))["requestId"]
        empty = dt.date(2024, 1, n).toordinal() % 3 == 0
        assert (api.detail(request_id)["signedAssets"] == []) is empty, n


def test_files_with_rows_keep_their_cache_names() -> None:
    spec = AssetSpec("videoview", tuple(sorted(day(1).items())), True, ",", 1, 100, 1_000_000, 0)
    assert "empty_file" not in repr(spec)  # the repr names the cached file, as before
    assert dataclasses.replace(spec, empty_file=True).cache_name() != spec.cache_name()


def test_the_empty_shape_is_fixed_at_submission(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0, empty_every=2, empty_shape="no-key")
    request_id = api.submit_ok(parameters=day(EMPTY_DAY))["requestId"]

    sb.set_config(empty_every=0, empty_shape="header")

    assert "signedAssets" not in api.detail(request_id)


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("echo_dates", "iso"),
        ("status_case", "title"),
        ("report_name_case", "lower"),
        ("empty_every", -1),
        ("empty_shape", "none"),
    ],
)
def test_answer_settings_are_validated(sb: SandboxProcess, setting: str, value: Any) -> None:
    with pytest.raises(requests.HTTPError, match=setting):
        sb.set_config(**{setting: value})


def test_defaults_answer_as_before(sb: SandboxProcess) -> None:
    config = sb.config()
    assert {name: config[name] for name in ("echo_dates", "status_case", "report_name_case")} == {
        "echo_dates": "date",
        "status_case": "page",
        "report_name_case": "page",
    }
    assert (config["empty_every"], config["empty_shape"]) == (0, "header")


def test_every_answer_option_as_a_command_line_flag(make_sandbox: Callable[..., SandboxProcess]) -> None:
    options = {
        "echo_dates": "timestamp",
        "status_case": "lower",
        "report_name_case": "upper",
        "empty_every": 2,
        "empty_shape": "zero-bytes",
        "faults": ["html"],
    }
    sb = make_sandbox(processing_seconds=0, rate_limit=0, rows_per_day=5, **options)

    config = sb.config()
    assert {name: config[name] for name in options} == options
    api = Api(sb)
    created = api.submit_ok(parameters=day(EMPTY_DAY))
    assert (created["status"], created["reportName"]) == ("available", "VIDEOVIEW")
    assert created["parameters"] == {"start": "2024-01-01T00:00:00.000Z", "end": "2024-01-02T00:00:00.000Z"}
    [url] = api.detail(created["requestId"])["signedAssets"]
    assert requests.get(url, timeout=TIMEOUT).content == b""

    sb.set_faults(fault_rate=1.0)
    assert_html_page(api.get("/reports"))
