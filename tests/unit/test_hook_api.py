"""Echo360Hook against the vendor page's own example answers, and against the ways the page leaves open.

The API here is an ``httpx.MockTransport`` (unit tests); the sandbox's dialects cover the same ground
over real HTTP in ``tests/integration/test_contract.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import pathlib
from collections.abc import Callable
from types import SimpleNamespace
from urllib.parse import parse_qs

import httpx
import pytest

from airflow_provider_echo360.exceptions import (
    Echo360AssetUrlExpiredError,
    Echo360AuthError,
    Echo360SubmissionRefusedError,
    Echo360TransientError,
    Echo360ValidationError,
)
from airflow_provider_echo360.hooks.echo360 import Echo360Hook, sniff_output
from airflow_provider_echo360.hooks.model import OutputOptions, ReportRequest
from airflow_provider_echo360.hooks.transport import MEMORY, ConnectionSettings, TokenAuth
from airflow_provider_echo360.operators.echo360 import in_flight

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "vendor_page"
BASE = "https://echo360.example.edu"
API = f"{BASE}/public/api/v1/reporting"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


class FakeApi:
    """A tiny Echo360: tokens read one ``way``; routes answer from ``routes`` (path -> callable)."""

    def __init__(self, token_way: str = "form", token_as: str = "header") -> None:
        self.token_way, self.token_as = token_way, token_as
        self.routes: dict[str, Callable[[httpx.Request], httpx.Response]] = {}
        self.seen: list[httpx.Request] = []
        self.tokens_issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.path == "/oauth2/access_token":
            return self._token(request)
        if not self._authorized(request):
            return httpx.Response(401, json={"message": "unauthorized"})
        route = self.routes.get(
            f"{request.method} {request.url.path.removeprefix('/public/api/v1/reporting')}"
        )
        return route(request) if route else httpx.Response(404, json={"message": "no such path"})

    def _token(self, request: httpx.Request) -> httpx.Response:
        if self.token_way == "query":
            fields = dict(request.url.params)
        elif self.token_way == "basic":
            header = request.headers.get("authorization", "")
            client_id, _, secret = (
                base64.b64decode(header[6:]).decode().partition(":") if header else ("", "", "")
            )
            fields = {"client_id": client_id, "client_secret": secret}
        else:
            fields = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if (fields.get("client_id"), fields.get("client_secret")) != ("id", "s3cret"):
            return httpx.Response(401, json={"error": "invalid_client"})
        self.tokens_issued += 1
        return httpx.Response(200, json={"access_token": f"tok{self.tokens_issued}", "expires_in": 3600})

    def _authorized(self, request: httpx.Request) -> bool:
        if self.token_as == "header":
            return request.headers.get("authorization", "").startswith("Bearer tok")
        return str(request.url.params.get("access_token", "")).startswith("tok")


@pytest.fixture
def api(monkeypatch) -> FakeApi:
    MEMORY.forget()
    return FakeApi()


def hook_on(api: FakeApi, **settings) -> Echo360Hook:
    hook = Echo360Hook("unused")
    hook._settings = ConnectionSettings(BASE, "id", "s3cret", backoff_seconds=0.0, **settings)
    hook._client = httpx.Client(
        base_url=API, auth=TokenAuth(hook._settings), transport=httpx.MockTransport(api)
    )
    return hook


def test_the_vendor_pages_example_answers_parse(api):
    api.routes["GET /reports"] = lambda r: httpx.Response(
        200, json=[fixture("reports_asset.json"), fixture("reports_presentation.json")]
    )
    api.routes["GET /requests"] = lambda r: httpx.Response(200, json=fixture("requests_listing.json"))
    api.routes["GET /request/00000000-0000-0000-0000-000000000123"] = lambda r: httpx.Response(
        200, json=fixture("request_detail.json")
    )
    hook = hook_on(api)
    reports = {entry["name"]: entry for entry in hook.get_reports()}
    assert reports["asset"]["parameters"] == [] and len(reports["presentation"]["parameters"]) == 2
    listed = hook.get_requests()
    assert [(r.report_name, r.status, r.in_progress) for r in listed] == [
        ("asset", "Available", False),
        ("notes", "Pending", True),
    ]
    assert listed[0].assets == ("00000000-0000-0000-0000-000000000456.csv.gz",)
    assert listed[1].parameters == {"start": "2020-02-08", "end": "2020-02-15"}
    assert listed[1].created is not None and listed[1].created.isoformat() == "2020-03-03T17:40:00+00:00"
    assert in_flight(listed) == 1
    detail = hook.get_request("00000000-0000-0000-0000-000000000123")
    assert detail.is_available and detail.assets == listed[0].assets
    assert "Signature=xxx" in detail.signed_assets[0] and "xxx" not in repr(detail)


def test_a_submission_sends_what_the_page_shows_and_reads_its_answer(api):
    sent = []

    def submit(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json=fixture("submission_answer.json"))

    api.routes["POST /requests/presentation"] = submit
    request = hook_on(api).submit_request(
        "presentation", {"start": "2020-01-01", "end": "2020-01-02"}, delimiter="|"
    )
    assert sent == [fixture("submission_body.json")]
    assert (request.request_id, request.status) == ("00000000-0000-0000-0000-000000001234", "Pending")
    assert request.in_progress and request.parameters == {"start": "2020-01-01", "end": "2020-01-02"}


@pytest.mark.parametrize("way", ["form", "basic", "query"])
def test_the_token_is_got_whichever_way_the_api_reads_credentials_and_that_way_is_remembered(api, way):
    api.token_way = way
    api.routes["GET /reports"] = lambda r: httpx.Response(200, json={"reports": []})
    hook_on(api).get_reports()
    first = [r for r in api.seen if r.url.path == "/oauth2/access_token"]
    MEMORY.forget_tokens()
    api.seen.clear()
    hook_on(api).get_reports()
    second = [r for r in api.seen if r.url.path == "/oauth2/access_token"]
    assert len(first) == ["form", "basic", "query"].index(way) + 1
    assert len(second) == 1  # straight to the way that worked
    assert all("s3cret" not in str(r.url) for r in first + second if way != "query")


def test_wrong_credentials_fail_once_every_way_was_refused_without_the_secret(api):
    hook = hook_on(api)
    hook._settings = ConnectionSettings(BASE, "id", "wrong-secret", backoff_seconds=0.0)
    hook._client = httpx.Client(
        base_url=API, auth=TokenAuth(hook._settings), transport=httpx.MockTransport(api)
    )
    with pytest.raises(Echo360AuthError, match="client id 'id'") as error:
        hook.get_reports()
    assert "wrong-secret" not in str(error.value)
    assert len([r for r in api.seen if r.url.path == "/oauth2/access_token"]) == 3


def test_a_token_the_api_takes_only_as_a_parameter_is_sent_so(api):
    api.token_as = "param"
    api.routes["GET /requests"] = lambda r: httpx.Response(200, json={"requests": []})
    hook = hook_on(api)
    assert hook.get_requests() == []
    assert hook.get_requests() == []
    assert api.seen[-1].url.params["access_token"].startswith("tok")
    refused = [r for r in api.seen if r.url.path.endswith("/requests") and "access_token" not in r.url.params]
    assert len(refused) == 2  # the cached token, then a fresh one, as a header; then never again


def page_of(requests: list[dict], start: int, size: int) -> list[dict]:
    return requests[start : start + size]


@pytest.mark.parametrize("style", ["link", "cursor", "header", "links-object"])
def test_every_page_of_requests_is_read_once(api, style):
    every = [
        {"requestId": f"r{i}", "status": "Pending" if i < 3 else "Available", "reportName": "notes"}
        for i in range(7)
    ]

    def listing(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("cursor") or request.url.params.get("page") or 0)
        body: dict = {"requests": page_of(every, start, 3)}
        more = start + 3 < len(every)
        headers = {}
        if more and style == "link":
            body["next"] = f"{API}/requests?page={start + 3}"
        elif more and style == "links-object":
            body["links"] = {"next": f"{API}/requests?page={start + 3}"}
        elif more and style == "cursor":
            body["nextCursor"] = str(start + 3)
        elif more:
            headers["Link"] = f'<{API}/requests?page={start + 3}>; rel="next"'
        return httpx.Response(200, json=body, headers=headers)

    api.routes["GET /requests"] = listing
    requests = hook_on(api).get_requests()
    assert [r.request_id for r in requests] == [f"r{i}" for i in range(7)]
    assert in_flight(requests) == 3


def paged_history(api: FakeApi, *, newest_first: bool, recent: int = 4, old: int = 200, size: int = 10):
    """A listing of ``recent`` requests of the last days and ``old`` from months ago, paged by
    ``next`` URL; returns the pages served."""
    now = dt.datetime.now(dt.UTC)
    every = [
        {
            "requestId": f"new{i}",
            "status": "Pending",
            "reportName": "notes",
            "created": (now - dt.timedelta(days=i + 1)).isoformat(),
        }
        for i in range(recent)
    ] + [
        {
            "requestId": f"old{i}",
            "status": "Expired",
            "reportName": "notes",
            "created": (now - dt.timedelta(days=30 + i)).isoformat(),
        }
        for i in range(old)
    ]
    if not newest_first:
        every.reverse()
    served: list[int] = []

    def listing(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("page") or 0)
        served.append(start)
        body: dict = {"requests": every[start : start + size]}
        if start + size < len(every):
            body["next"] = f"{API}/requests?page={start + size}"
        return httpx.Response(200, json=body)

    api.routes["GET /requests"] = listing
    return served


def test_a_bounded_read_of_a_newest_first_listing_stops_past_its_cutoff(api):
    served = paged_history(api, newest_first=True)
    listing = hook_on(api).find_requests(dt.datetime.now(dt.UTC) - dt.timedelta(days=14))
    assert listing.complete and listing.pages == 1 and served == [0]
    assert in_flight(listing.requests) == 4


def test_a_bounded_read_of_an_oldest_first_listing_stops_after_one_page_and_says_so(api, caplog):
    served = paged_history(api, newest_first=False)
    with caplog.at_level(logging.INFO):
        listing = hook_on(api).find_requests(dt.datetime.now(dt.UTC) - dt.timedelta(days=14))
    assert not listing.complete and served == [0]
    assert any("oldest first" in message for message in caplog.messages)


def test_the_lost_answer_lookup_reads_an_oldest_first_listing_to_its_end(api):
    served = paged_history(api, newest_first=False)
    listing = hook_on(api).find_requests(dt.datetime.now(dt.UTC) - dt.timedelta(days=14), to_the_end=True)
    assert listing.complete and len(served) == 21 and in_flight(listing.requests) == 4


def test_a_listing_cut_short_by_the_page_limit_is_logged(api, caplog, monkeypatch):
    monkeypatch.setattr("airflow_provider_echo360.hooks.echo360.MAX_PAGES", 3)
    paged_history(api, newest_first=True)
    with caplog.at_level(logging.WARNING):
        requests = hook_on(api).get_requests()
    assert len(requests) == 30
    assert any("stopped after 3 pages" in message for message in caplog.messages)


def test_an_unknown_status_is_in_progress_and_warned_about_once(api, caplog):
    api.routes["GET /request/r1"] = lambda r: httpx.Response(
        200, json={"requestId": "r1", "status": "Processing", "reportName": "notes"}
    )
    hook = hook_on(api)
    with caplog.at_level(logging.WARNING):
        requests = [hook.get_request("r1") for _ in range(3)]
    assert all(r.in_progress and not r.is_available for r in requests)
    assert [r.known_status for r in requests] == [None, None, None]
    warnings = [m for m in caplog.messages if "'Processing'" in m]
    assert len(warnings) <= 1  # once per process: an earlier test may already have seen it


def test_a_5xx_after_the_submission_was_recorded_adopts_it_instead_of_submitting_again(api):
    recorded: list[dict] = []

    def submit(request: httpx.Request) -> httpx.Response:
        recorded.append(
            {"requestId": "r1", "status": "Pending", "reportName": "notes", **json.loads(request.content)}
        )
        return httpx.Response(502, json={"message": "bad gateway"})

    api.routes["POST /requests/notes"] = submit
    api.routes["GET /requests"] = lambda r: httpx.Response(200, json={"requests": recorded})
    request = hook_on(api).submit_request("notes", {"start": "2024-01-01", "end": "2024-01-02"})
    assert request.request_id == "r1" and len(recorded) == 1


@pytest.mark.parametrize("status", [400, 403, 409])
def test_a_refused_submission_says_the_apis_own_words(api, status):
    api.routes["POST /requests/notes"] = lambda r: httpx.Response(status, json={"message": "nope, not now"})
    with pytest.raises(Echo360SubmissionRefusedError, match="nope, not now") as error:
        hook_on(api).submit_request("notes", {"start": "2024-01-01", "end": "2024-01-02"})
    assert error.value.http_status == status


def test_qanda_names_stand_for_each_other_when_the_listing_has_only_one(api):
    api.routes["GET /reports"] = lambda r: httpx.Response(200, json={"reports": [{"name": "qandav2"}]})
    hook = hook_on(api)
    assert hook.resolve_report_name("qanda2") == "qandav2"
    assert hook.resolve_report_name("qandav2") == "qandav2"
    assert hook.resolve_report_name("videoview") == "videoview"


@pytest.mark.parametrize(
    "url",
    [
        "http://downloads.example.edu/a.csv.gz?Signature=top",
        "ftp://downloads.example.edu/a.csv.gz?Signature=top",
    ],
)
def test_a_signed_url_that_is_not_https_is_refused_without_its_signature(api, url):
    with pytest.raises(Echo360ValidationError, match="signed URL") as error:
        with hook_on(api).open_asset(url):
            pass
    assert "top" not in str(error.value)


def test_a_redirect_to_plain_http_is_not_followed(api, monkeypatch):
    def downloads(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            302, headers={"Location": "http://elsewhere.example.edu/a.csv.gz?Signature=top"}
        )

    hook = hook_on(api)
    real_client = httpx.Client
    monkeypatch.setattr(
        httpx, "Client", lambda **kwargs: real_client(transport=httpx.MockTransport(downloads), **kwargs)
    )
    with pytest.raises(Echo360ValidationError, match="signed URL") as error:
        with hook.open_asset("https://downloads.example.edu/a.csv.gz?Signature=top"):
            pass
    assert "elsewhere.example.edu" in str(error.value) and "top" not in str(error.value)


def downloads_answering(monkeypatch, answer: Callable[[httpx.Request], httpx.Response]) -> list[str]:
    """Signed-URL downloads answered by ``answer``; returns the URLs fetched."""
    fetched: list[str] = []
    real_client = httpx.Client

    def served(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        return answer(request)

    def client(**kwargs):  # the API's own client (hook_on) keeps its transport
        return real_client(**{"transport": httpx.MockTransport(served), **kwargs})

    monkeypatch.setattr(httpx, "Client", client)
    return fetched


def test_plain_http_signed_urls_are_fetched_where_the_connection_allows_them(api, monkeypatch):
    fetched = downloads_answering(
        monkeypatch, lambda r: httpx.Response(200, stream=httpx.ByteStream(b"a,b\n1,2\n"))
    )
    url = "http://some.url/00000000-0000-0000-0000-000000000456.csv?Signature=xxx"  # the page's own
    with pytest.raises(Echo360ValidationError, match='"allow_http_downloads": true'):
        with hook_on(api).open_asset(url):
            pass
    assert fetched == []
    with hook_on(api, allow_http_downloads=True).open_asset(url) as stream:
        assert b"".join(stream.chunks()) == b"a,b\n1,2\n"
    assert fetched == [url]


@pytest.mark.parametrize(
    ("status", "code"), [(400, "ExpiredToken"), (403, "AccessDenied"), (404, "NoSuchKey")]
)
def test_a_signed_url_that_dies_early_is_to_be_renewed(api, monkeypatch, status, code):
    downloads_answering(
        monkeypatch, lambda r: httpx.Response(status, text=f"<Error><Code>{code}</Code></Error>")
    )
    with pytest.raises(Echo360AssetUrlExpiredError, match=f"refused \\({status}\\)"):
        with hook_on(api).open_asset("https://bucket.example.edu/a.csv.gz?X-Amz-Signature=top"):
            pass


def test_the_allow_http_downloads_extra_is_a_yes_or_no_naming_itself_when_wrong():
    def settings(value):
        conn = SimpleNamespace(
            login="id",
            password="s",
            host=BASE,
            schema=None,
            port=None,
            extra_dejson={"allow_http_downloads": value},
        )
        return ConnectionSettings.from_connection(conn)

    assert settings(True).allow_http_downloads and settings("true").allow_http_downloads
    assert not settings(None).allow_http_downloads and not settings("false").allow_http_downloads
    with pytest.raises(Echo360ValidationError, match="extra.allow_http_downloads"):
        settings("maybe")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'"a","b","c"\n1,2,3\n', OutputOptions(False, ",")),
        (b"a\tb\tc\n", OutputOptions(False, "\t")),
        (b"a|b|c\n", OutputOptions(False, "|")),
        (__import__("gzip").compress(b"a|b|c\n1|2|3\n", mtime=0), OutputOptions(True, "|")),
        (b"single\n", None),
    ],
)
def test_output_options_are_read_off_an_assets_first_bytes(head, expected):
    assert sniff_output(head) == expected


def test_a_listing_that_shows_output_options_is_read():
    request = ReportRequest.from_api(
        {"requestId": "r", "status": "Pending", "output": {"compression": False, "delimiter": "\t"}}
    )
    assert request.output == OutputOptions(False, "\t")
    assert ReportRequest.from_api({"requestId": "r", "status": "Pending"}).output is None


def test_echoes_are_read_as_values_dates_in_any_iso_form_names_and_statuses_in_any_case():
    echoed = ReportRequest.from_api(
        {
            "requestId": "r",
            "status": "AVAILABLE",
            "reportName": "VIDEOVIEW",
            "parameters": {"start": "2026-01-01T00:00:00.000Z", "end": "2026-01-02T00:00:00+00:00"},
        }
    )
    assert echoed.is_for("videoview", {"start": "2026-01-01", "end": "2026-01-02"})
    assert echoed.is_available and not echoed.in_progress
    assert not echoed.is_for("videoview", {"start": "2026-01-01", "end": "2026-01-03"})
    noon = ReportRequest.from_api({"requestId": "r", "parameters": {"start": "2026-01-01T12:00:00Z"}})
    assert noon.parameters == {"start": "2026-01-01T12:00:00Z"}  # not a date: kept as it came
    assert ReportRequest.from_api({"requestId": "r", "status": "pending"}).in_progress


def test_an_unknown_status_is_waited_out_only_until_the_requests_retention_has_passed():
    def made(days_ago):
        created = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)).isoformat()
        return ReportRequest.from_api({"requestId": "r", "status": "Cancelled", "created": created})

    assert made(1).in_progress and not made(1).is_available
    assert not made(15).in_progress


def test_an_answer_that_is_not_json_is_a_transient_failure_that_names_what_came(api):
    answers = iter(
        [
            httpx.Response(
                200,
                text="<html><body><h1>Bad gateway</h1></body></html>",
                headers={"Content-Type": "text/html"},
            ),
            httpx.Response(200, json={"requestId": "r1", "status": "Pending", "reportName": "notes"}),
        ]
    )
    api.routes["GET /request/r1"] = lambda r: next(answers)
    assert hook_on(api).get_request("r1").in_progress  # retried
    api.routes["GET /request/r2"] = lambda r: httpx.Response(
        200, text="<html>proxy</html>", headers={"Content-Type": "text/html"}
    )
    with pytest.raises(Echo360TransientError, match=r"not JSON \(text/html\): '<html>proxy</html>'"):
        hook_on(api, max_retries=1).get_request("r2")
