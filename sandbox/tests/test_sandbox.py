"""Contract tests of the sandbox's API: a real process on loopback, driven with plain ``requests``."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
import requests
from devtools.sandbox import SandboxProcess
from sandbox_api import TIMEOUT, Api

from echo360_sandbox.catalog import REPORTS
from echo360_sandbox.config import DEFAULT_IN_FLIGHT_MESSAGE
from echo360_sandbox.report_requests import submission_key

pytestmark = pytest.mark.integration

WEEK = {"start": "2024-01-01", "end": "2024-01-08"}


def test_expiring_the_requests_ends_the_available_ones_only(api: Api, sb: SandboxProcess) -> None:
    ready = api.submit_ok("videoview")["requestId"]
    time.sleep(1.05)  # the session sandbox processes for 1 s
    pending = api.submit_ok("pollingv2")["requestId"]

    assert sb.expire_requests() == 1

    assert api.detail(ready)["status"] == "Expired"
    assert api.detail(pending)["status"] == "Pending"


def recent_window(days: int = 7, ago: int = 3) -> dict[str, str]:
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=ago)
    return {"start": (end - dt.timedelta(days=days)).isoformat(), "end": end.isoformat()}


@pytest.fixture
def api(sb: SandboxProcess) -> Api:
    return Api(sb, window=WEEK)


def token_call(sb: SandboxProcess, how: str = "form", **fields: str) -> requests.Response:
    values = {
        "grant_type": "client_credentials",
        "client_id": sb.client_id,
        "client_secret": sb.client_secret,
    }
    values.update(fields)
    if how == "form":
        return requests.post(sb.token_url, data=values, timeout=TIMEOUT)
    return requests.post(sb.token_url, params=values, timeout=TIMEOUT)


# --- OAuth2 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["form", "query"])
def test_token_by_form_body_or_query_parameters(sb: SandboxProcess, how: str) -> None:
    response = token_call(sb, how)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"] and body["refresh_token"]
    assert requests.get(
        sb.api_url + "/reports", headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=TIMEOUT
    ).ok
    assert sb.stats()["tokens_issued"] == 1


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
def test_bad_credentials_get_401_json(sb: SandboxProcess, field: str) -> None:
    response = token_call(sb, **{field: "wrong"})

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert sb.stats()["tokens_issued"] == 0


def test_unsupported_grant_type_is_400(sb: SandboxProcess) -> None:
    response = token_call(sb, grant_type="password")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_refresh_token_is_single_use(sb: SandboxProcess) -> None:
    refresh = token_call(sb).json()["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh}

    first = requests.post(sb.token_url, data=form, timeout=TIMEOUT)
    second = requests.post(sb.token_url, data=form, timeout=TIMEOUT)

    assert first.status_code == 200 and first.json()["access_token"]
    assert second.status_code == 400


def test_reporting_calls_need_a_bearer_token(sb: SandboxProcess) -> None:
    token = sb.access_token()

    missing = requests.get(sb.api_url + "/reports", timeout=TIMEOUT)
    wrong = requests.get(sb.api_url + "/reports", headers={"Authorization": "Bearer nope"}, timeout=TIMEOUT)
    by_query = requests.get(sb.api_url + "/reports", params={"access_token": token}, timeout=TIMEOUT)

    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_token"
    assert by_query.status_code == 200


def test_expired_tokens_get_401(sb: SandboxProcess) -> None:
    api = Api(sb)
    assert api.get("/requests").status_code == 200

    assert sb.expire_tokens() >= 1
    response = api.get("/requests")

    assert response.status_code == 401
    assert "expired" in response.json()["message"].lower()


def test_tokens_expire_after_their_lifetime(sb: SandboxProcess) -> None:
    sb.set_config(token_seconds=0.5)
    token = token_call(sb).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert token["expires_in"] == 1  # rounded up to whole seconds
    assert requests.get(sb.api_url + "/reports", headers=headers, timeout=TIMEOUT).status_code == 200

    time.sleep(0.6)

    assert requests.get(sb.api_url + "/reports", headers=headers, timeout=TIMEOUT).status_code == 401


# --- endpoints ----------------------------------------------------------------------------------


def test_reports_lists_the_catalog_with_parameters(api: Api) -> None:
    response = api.get("/reports")

    assert response.status_code == 200
    reports = {r["name"]: r for r in response.json()["reports"]}
    assert set(reports) == set(REPORTS)
    assert reports["asset"]["parameters"] == []
    assert reports["asset"]["description"] == "Asset report"
    for name in set(REPORTS) - {"asset"}:
        assert reports[name]["parameters"] == [
            {"name": "start", "datatype": "date", "required": True},
            {"name": "end", "datatype": "date", "required": True},
        ]
        assert reports[name]["description"] and "note" in reports[name]


def test_submission_answers_a_pending_request_listed_by_requests(api: Api) -> None:
    response = api.submit("videoview", WEEK, compression=False, delimiter="|")

    assert response.status_code == 200, response.text
    created = response.json()
    assert created["status"] == "Pending"
    assert created["reportName"] == "videoview"
    assert created["parameters"] == WEEK
    assert dt.datetime.strptime(created["created"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert "assets" not in created and "signedAssets" not in created
    listed = api.get("/requests").json()["requests"]
    assert [r["requestId"] for r in listed] == [created["requestId"]]
    assert listed[0]["status"] == "Pending" and "assets" not in listed[0]
    assert api.detail(created["requestId"])["status"] == "Pending"


def test_pending_becomes_available_after_the_processing_time(api: Api, sb: SandboxProcess) -> None:
    request_id = api.submit_ok("videoview")["requestId"]
    assert api.detail(request_id)["status"] == "Pending"

    time.sleep(1.05)  # the session sandbox processes for 1 s

    detail = api.detail(request_id)
    assert detail["status"] == "Available"
    assert "assets" not in detail
    [url] = detail["signedAssets"]
    assert url.startswith(f"{sb.base_url}/_assets/{request_id}/{request_id}.csv.gz?Expires=")
    assert "&Signature=" in url
    [listed] = api.get("/requests").json()["requests"]
    assert listed["status"] == "Available"
    assert listed["assets"] == [f"{request_id}.csv.gz"]
    assert "signedAssets" not in listed


def test_unknown_report_and_unknown_request_are_404_json(api: Api, sb: SandboxProcess) -> None:
    unknown_report = api.submit("nosuchreport")
    unknown_request = api.get("/request/00000000-0000-0000-0000-000000000000")

    assert unknown_report.status_code == 404 and "nosuchreport" in unknown_report.json()["message"]
    assert unknown_request.status_code == 404 and unknown_request.json()["error"] == "not_found"
    assert sb.stats()["submitted"] == 0


def test_requests_are_listed_newest_first(api: Api) -> None:
    ids = [
        api.submit_ok("videoview", {"start": f"2024-02-0{d}", "end": f"2024-02-0{d + 1}"})["requestId"]
        for d in (1, 2, 3)
    ]
    assert api.listed_ids() == ids[::-1]


def test_openapi_document_is_served(sb: SandboxProcess) -> None:
    paths = requests.get(sb.base_url + "/openapi.json", timeout=TIMEOUT).json()["paths"]
    prefix = "/public/api/v1/reporting"
    for path in ("/reports", "/requests", "/requests/{reportName}", "/request/{requestId}"):
        assert prefix + path in paths
    assert "/oauth2/access_token" in paths


# --- the API's limits ---------------------------------------------------------------------------


def test_a_fourth_submission_is_refused_while_three_are_in_flight(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=30)
    ids = [
        api.submit_ok("videoview", {"start": f"2024-03-0{d}", "end": f"2024-03-0{d + 1}"})["requestId"]
        for d in (1, 2, 3)
    ]

    refused = api.submit("notes", WEEK)

    assert refused.status_code == 429
    assert refused.json() == {"error": "limit_exceeded", "message": DEFAULT_IN_FLIGHT_MESSAGE}
    assert "flight" not in refused.text.lower()  # clients must recognise it by the state, not words
    stats = sb.stats()
    assert (stats["submitted"], stats["refused_in_flight"]) == (3, 1)
    assert (stats["in_flight"], stats["max_in_flight"]) == (3, 3)
    assert submission_key("notes", WEEK) not in stats["submissions"]

    sb.set_status(ids[0], "Available")  # one finishes: a slot frees up
    assert api.submit("notes", WEEK).status_code == 200
    assert sb.stats()["max_in_flight"] == 3


@pytest.mark.parametrize(
    ("report", "parameters", "output", "field"),
    [
        ("videoview", {"start": "2024-01-01", "end": "2024-01-09"}, {}, "end"),  # 8 days
        ("videoview", {"start": "2024-01-08", "end": "2024-01-01"}, {}, "end"),  # end before start
        ("videoview", {"start": "2024-01-01", "end": "2024-01-01"}, {}, "end"),  # empty window
        ("videoview", {"start": "2024-01-01"}, {}, "end"),
        ("videoview", {}, {}, "start"),
        ("videoview", {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02"}, {}, "start"),
        ("videoview", {"start": "2024-01-01", "end": "2024-01-02", "room": "1"}, {}, "parameters"),
        ("asset", {"start": "2024-01-01", "end": "2024-01-02"}, {}, "parameters"),
        ("videoview", WEEK, {"delimiter": ";"}, "delimiter"),
        ("videoview", WEEK, {"delimiter": "tab"}, "delimiter"),
        ("videoview", WEEK, {"compression": "yes"}, "compression"),
    ],
)
def test_invalid_submissions_get_400_naming_the_field(
    api: Api, sb: SandboxProcess, report: str, parameters: dict[str, str], output: dict[str, Any], field: str
) -> None:
    response = api.submit(report, parameters, **output)

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["field"] == field
    assert field in body["message"]
    assert sb.stats()["submitted"] == 0
    assert api.get("/requests").json()["requests"] == []


def test_assetbydate_reaches_back_one_year_from_the_server_date(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0)
    today = dt.datetime.now(dt.UTC).date()
    try:
        earliest = today.replace(year=today.year - 1)
    except ValueError:  # 29 February
        earliest = today.replace(year=today.year - 1, day=28)

    def window(start: dt.date) -> dict[str, str]:
        return {"start": start.isoformat(), "end": (start + dt.timedelta(days=7)).isoformat()}

    too_old = api.submit("assetbydate", window(earliest - dt.timedelta(days=1)))
    oldest = api.submit("assetbydate", window(earliest))
    same_range_other_report = api.submit("videoview", window(earliest - dt.timedelta(days=1)))

    assert too_old.status_code == 400 and too_old.json()["field"] == "start"
    assert "year" in too_old.json()["message"]
    assert oldest.status_code == 200
    assert same_range_other_report.status_code == 200


def test_asset_takes_no_parameters(api: Api) -> None:
    response = api.submit("asset", {})
    assert response.status_code == 200, response.text
    assert response.json()["parameters"] == {}


def test_rate_limit_answers_429_with_retry_after(sb: SandboxProcess) -> None:
    sb.set_config(rate_limit=3)
    api = Api(sb)  # the token call counts: 1

    answers = [api.get("/reports").status_code for _ in range(3)]
    stats = sb.stats()  # control endpoints are not limited

    assert answers == [200, 200, 429]
    refused = api.get("/requests")
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert refused.json()["error"] == "rate_limited"
    assert token_call(sb).status_code == 429  # the token endpoint is part of the budget
    assert stats["refused_rate_limited"] == 1
    assert sb.stats()["refused_rate_limited"] == 3


def test_downloads_do_not_count_against_the_rate_limit(sb: SandboxProcess) -> None:
    sb.set_config(rate_limit=3, processing_seconds=0)
    api = Api(sb, window=WEEK)
    request_id = api.submit_ok("videoview")["requestId"]
    [url] = api.detail(request_id)["signedAssets"]  # third call: the budget is spent

    downloads = [requests.get(url, timeout=TIMEOUT).status_code for _ in range(3)]

    assert downloads == [200, 200, 200]
    assert api.get("/reports").status_code == 429


# --- statuses -----------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["Failed", "Missing"])
def test_failed_and_missing_outcomes_are_drawn_at_submission(
    api: Api, sb: SandboxProcess, outcome: str
) -> None:
    sb.set_config(processing_seconds=0.3)
    sb.set_faults(**{f"{outcome.lower()}_rate": 1.0})
    request_id = api.submit_ok("videoview")["requestId"]

    detail = api.wait(request_id)

    assert detail["status"] == outcome
    assert "signedAssets" not in detail
    assert "assets" not in api.get("/requests").json()["requests"][0]
    assert sb.stats()["outcomes"] == {submission_key("videoview", WEEK): [outcome]}


def test_available_requests_expire_after_the_retention(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0, retention_seconds=1)
    request_id = api.submit_ok("videoview")["requestId"]
    [url] = api.detail(request_id)["signedAssets"]
    assert requests.get(url, timeout=TIMEOUT).status_code == 200

    time.sleep(1.05)

    detail = api.detail(request_id)
    assert detail["status"] == "Expired" and "signedAssets" not in detail
    assert "assets" not in api.get("/requests").json()["requests"][0]
    gone = requests.get(url, timeout=TIMEOUT)
    assert gone.status_code == 404 and "<Code>NoSuchKey</Code>" in gone.text


@pytest.mark.parametrize("status", ["Failed", "Missing", "Expired", "Available"])
def test_control_endpoint_forces_a_status(api: Api, sb: SandboxProcess, status: str) -> None:
    sb.set_config(processing_seconds=30)
    request_id = api.submit_ok("videoview")["requestId"]

    sb.set_status(request_id, status)

    assert api.detail(request_id)["status"] == status
    assert sb.stats()["in_flight"] == 0


# --- signed downloads ---------------------------------------------------------------------------


@pytest.fixture
def signed_url(api: Api, sb: SandboxProcess) -> str:
    sb.set_config(processing_seconds=0)
    request_id = api.submit_ok("videoview")["requestId"]
    return str(api.detail(request_id)["signedAssets"][0])


def test_signed_download_streams_the_asset_with_its_length(signed_url: str, sb: SandboxProcess) -> None:
    response = requests.get(signed_url, timeout=TIMEOUT)

    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content) > 0
    assert response.headers["Content-Type"] == "application/gzip"
    assert response.content[:2] == b"\x1f\x8b"
    request_id = signed_url.split("/")[4]
    assert response.content == sb.asset_bytes(request_id, f"{request_id}.csv.gz")
    assert sb.stats()["downloads"] == 1


def test_signed_download_serves_byte_ranges(signed_url: str) -> None:
    whole = requests.get(signed_url, timeout=TIMEOUT).content

    part = requests.get(signed_url, headers={"Range": "bytes=10-99"}, timeout=TIMEOUT)
    tail = requests.get(signed_url, headers={"Range": f"bytes={len(whole) - 5}-"}, timeout=TIMEOUT)

    assert part.status_code == 206 and part.content == whole[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(whole)}"
    assert tail.status_code == 206 and tail.content == whole[-5:]


def test_signed_url_refuses_an_authorization_header(signed_url: str) -> None:
    response = requests.get(signed_url, headers={"Authorization": "Bearer whatever"}, timeout=TIMEOUT)

    assert response.status_code == 400
    assert "Only one auth mechanism allowed" in response.text


@pytest.mark.parametrize("tamper", ["signature", "expires", "no-signature"])
def test_signed_url_refuses_a_wrong_or_missing_signature(signed_url: str, tamper: str) -> None:
    base, query = signed_url.split("?")
    expires, signature = (part.split("=")[1] for part in query.split("&"))
    url = {
        "signature": f"{base}?Expires={expires}&Signature={'0' * len(signature)}",
        "expires": f"{base}?Expires={int(expires) + 3600}&Signature={signature}",
        "no-signature": base,
    }[tamper]

    response = requests.get(url, timeout=TIMEOUT)

    assert response.status_code == 403
    assert "AccessDenied" in response.text or "SignatureDoesNotMatch" in response.text


def test_signed_url_expires(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0, url_seconds=1)
    request_id = api.submit_ok("videoview")["requestId"]
    [url] = api.detail(request_id)["signedAssets"]
    assert requests.get(url, timeout=TIMEOUT).status_code == 200

    time.sleep(2.05)  # Expires is whole seconds
    expired = requests.get(url, timeout=TIMEOUT)

    assert expired.status_code == 403 and "Request has expired" in expired.text
    [fresh] = api.detail(request_id)["signedAssets"]
    assert requests.get(fresh, timeout=TIMEOUT).status_code == 200


# --- faults -------------------------------------------------------------------------------------


def test_5xx_fault_happens_before_the_handler(api: Api, sb: SandboxProcess) -> None:
    sb.set_faults(fault_rate=1.0, faults=["5xx"], fault_targets=["api"])

    response = api.submit("videoview")

    assert response.status_code == 503
    assert response.json()["error"] == "service_unavailable"
    sb.set_faults(fault_rate=0.0)
    assert api.get("/requests").json()["requests"] == []  # the faulted submission created nothing
    stats = sb.stats()
    assert stats["submitted"] == 0 and stats["faults"] == {"5xx": 1}
    assert stats["calls"]["POST /requests/{reportName}"] == 1


def test_429_fault_has_retry_after(api: Api, sb: SandboxProcess) -> None:
    sb.set_faults(fault_rate=1.0, faults=["429"], fault_targets=["api"])

    response = api.get("/reports")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"


def test_drop_fault_closes_the_connection_without_an_answer(api: Api, sb: SandboxProcess) -> None:
    sb.set_faults(fault_rate=1.0, faults=["drop"], fault_targets=["api"])

    with pytest.raises(requests.ConnectionError):
        api.submit("videoview")

    sb.set_faults(fault_rate=0.0)
    assert sb.stats()["submitted"] == 0
    assert api.get("/reports").status_code == 200  # the server itself is fine


def test_lost_response_fault_runs_the_handler_then_drops_the_connection(api: Api, sb: SandboxProcess) -> None:
    assert "lost-response" not in sb.faults()["faults"]  # opt-in: it leaves a request behind
    sb.set_faults(fault_rate=1.0, faults=["lost-response"])

    with pytest.raises(requests.ConnectionError):
        api.submit("videoview")

    sb.set_faults(fault_rate=0.0)
    [created] = api.get("/requests").json()["requests"]  # the submission went through unseen
    assert created["parameters"] == WEEK
    assert sb.stats()["submitted"] == 1 and sb.stats()["faults"] == {"lost-response": 1}


def test_the_first_answers_to_each_windows_submissions_are_lost(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(lost_submission_answers=1)
    other_week = {"start": "2024-02-05", "end": "2024-02-12"}
    for window in (WEEK, other_week):
        with pytest.raises(requests.ConnectionError):
            api.submit("videoview", window)
    answered = api.submit_ok("videoview", WEEK)  # the window's second submission is answered
    listed = api.get("/requests").json()["requests"]
    assert [r["parameters"] for r in listed].count(WEEK) == 2  # the lost one went through unseen
    assert len(listed) == 3 and answered["requestId"] in {r["requestId"] for r in listed}
    assert sb.stats()["lost_answers"] == 2 and sb.stats()["submitted"] == 3


def test_a_retired_report_is_still_listed_and_its_submissions_answer_410(
    api: Api, sb: SandboxProcess
) -> None:
    sb.set_config(retired_reports=["videoview"])
    refused = api.submit("videoview")
    assert refused.status_code == 410 and refused.json()["error"] == "gone"
    assert "videoview" in {r["name"] for r in api.get("/reports").json()["reports"]}
    assert api.submit("notes").status_code == 200
    assert sb.stats()["submitted"] == 1
    with pytest.raises(requests.HTTPError, match="400"):
        sb.set_config(retired_reports=["no-such-report"])


def test_slow_fault_delays_the_answer(api: Api, sb: SandboxProcess) -> None:
    sb.set_faults(fault_rate=1.0, faults=["slow"], slow_seconds=0.5, fault_targets=["api"])

    started = time.monotonic()
    response = api.get("/reports")

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.5


def test_token_endpoint_gets_faults_too(sb: SandboxProcess) -> None:
    sb.set_faults(fault_rate=1.0, faults=["5xx"], fault_targets=["token"])
    assert token_call(sb).status_code == 503


def test_truncate_fault_sends_the_length_then_half_the_body(signed_url: str, sb: SandboxProcess) -> None:
    size = len(requests.get(signed_url, timeout=TIMEOUT).content)
    sb.set_faults(fault_rate=1.0, faults=["truncate"], fault_targets=["download"])

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(signed_url, timeout=TIMEOUT)
    response = requests.get(signed_url, stream=True, timeout=TIMEOUT)
    received = b""
    with pytest.raises(Exception, match="IncompleteRead"):
        for chunk in response.raw.stream(8192, decode_content=False):
            received += chunk

    assert int(response.headers["Content-Length"]) == size
    assert 0 < len(received) < size


def test_expired_url_fault_answers_like_an_expired_link(signed_url: str, sb: SandboxProcess) -> None:
    sb.set_faults(fault_rate=1.0, faults=["expired-url"])

    response = requests.get(signed_url, timeout=TIMEOUT)

    assert response.status_code == 403 and "Request has expired" in response.text


def test_faults_draw_only_kinds_that_apply_and_respect_the_budget(api: Api, sb: SandboxProcess) -> None:
    sb.set_faults(fault_rate=1.0, faults=["5xx", "truncate", "expired-url"], fault_budget=3)

    answers = [api.get("/reports").status_code for _ in range(5)]
    stats = sb.stats()  # control endpoints never get faults

    assert answers == [503, 503, 503, 200, 200]
    assert stats["faults"] == {"5xx": 3}
    assert sb.faults()["fault_budget"] == 0


def test_fault_rate_is_a_probability(api: Api, sb: SandboxProcess) -> None:
    sb.set_faults(fault_rate=0.5, faults=["5xx"], fault_targets=["api"])

    answers = [api.get("/reports").status_code for _ in range(60)]

    assert 10 <= answers.count(503) <= 50
    assert set(answers) == {200, 503}


def test_fault_settings_are_validated(sb: SandboxProcess) -> None:
    with pytest.raises(requests.HTTPError, match="400"):
        sb.set_faults(faults=["meteor"])
    with pytest.raises(requests.HTTPError, match="400"):
        sb.set_faults(fault_rate=2)
    assert sb.faults()["fault_rate"] == 0.0


# --- statistics ---------------------------------------------------------------------------------


def test_stats_count_calls_by_endpoint_and_submissions_by_key(api: Api, sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0)
    first = api.submit_ok("videoview")["requestId"]
    api.submit_ok("videoview")
    api.get("/requests")
    url = api.detail(first)["signedAssets"][0]
    requests.get(url, timeout=TIMEOUT)

    stats = sb.stats()

    assert stats["submissions"] == {"videoview|end=2024-01-08&start=2024-01-01": 2}
    assert stats["outcomes"] == {"videoview|end=2024-01-08&start=2024-01-01": ["Available", "Available"]}
    assert stats["calls"] == {
        "POST /oauth2/access_token": 1,
        "POST /requests/{reportName}": 2,
        "GET /requests": 1,
        "GET /request/{requestId}": 1,
        "GET /_assets/{requestId}/{filename}": 1,
    }
    assert (stats["tokens_issued"], stats["downloads"], stats["submitted"]) == (1, 1, 2)
    for key in ("max_in_flight", "in_flight", "refused_in_flight", "refused_rate_limited", "faults"):
        assert key in stats


def test_submission_key_sorts_parameters() -> None:
    assert submission_key("videoview", {"start": "2024-01-01", "end": "2024-01-08"}) == (
        "videoview|end=2024-01-08&start=2024-01-01"
    )
    assert submission_key("asset", {}) == "asset|"


def test_reset_forgets_requests_and_stats(api: Api, sb: SandboxProcess) -> None:
    api.submit_ok("videoview")

    sb.reset()

    assert api.get("/requests").json()["requests"] == []
    stats = sb.stats()
    assert stats["submitted"] == 0 and stats["submissions"] == {}
    assert stats["calls"] == {"GET /requests": 1}


# --- command-line variants ----------------------------------------------------------------------


def test_deployment_variants_by_flag(make_sandbox: Any) -> None:
    sb = make_sandbox(
        request_path="plural",
        reports_shape="list",
        in_flight_status=409,
        processing_seconds=30,
        show_output=True,
        client_id="abc",
        client_secret="xyz",
    )
    assert token_call(sb, client_id="sandbox-client", client_secret="sandbox-secret").status_code == 401
    api = Api(sb, window=WEEK)  # with abc/xyz

    reports = api.get("/reports").json()
    ids = [
        api.submit_ok("videoview", {"start": f"2024-03-0{d}", "end": f"2024-03-0{d + 1}"})["requestId"]
        for d in (1, 2, 3)
    ]
    refused = api.submit("videoview")

    assert isinstance(reports, list) and {r["name"] for r in reports} == set(REPORTS)
    assert api.get(f"/request/{ids[0]}").status_code == 404
    plural = api.get(f"/requests/{ids[0]}")
    assert plural.status_code == 200 and plural.json()["requestId"] == ids[0]
    assert plural.json()["output"] == {"compression": True, "delimiter": ","}
    assert refused.status_code == 409 and refused.json()["error"] == "limit_exceeded"
    assert sb.stats()["calls"]["GET /request/{requestId}"] == 1


def test_rate_limit_and_faults_by_flag(make_sandbox: Any) -> None:
    sb = make_sandbox(rate_limit=3, processing_seconds=0, fault_rate=1.0, faults=["expired-url"])
    api = Api(sb)
    request_id = api.submit_ok("asset", {})["requestId"]
    [url] = api.detail(request_id)["signedAssets"]

    assert api.get("/reports").status_code == 429
    assert requests.get(url, timeout=TIMEOUT).status_code == 403  # the only fault that applies
    assert sb.stats()["faults"] == {"expired-url": 1}
    assert sb.config()["client_secret"] == "***"
