"""Each dialect, each choice: what the sandbox answers, over real HTTP with plain ``requests``.

The dialects are the ways the real service might behave where the vendor's page is silent; a
client must work against every one of them. Most tests switch dialects at runtime on the session's
sandbox (``POST /_sandbox/config``); one starts a sandbox with them as command-line flags.
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from devtools.sandbox import SandboxProcess
from sandbox_api import TIMEOUT, Api, day

from echo360_sandbox.catalog import REPORTS
from echo360_sandbox.config import DEFAULT_IN_FLIGHT_MESSAGE

pytestmark = pytest.mark.integration

OTHER = "another-client"


def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- token_auth -----------------------------------------------------------------------------------


def token_request(sb: SandboxProcess, way: str) -> requests.Response:
    """Ask for a token with the client credentials sent one ``way``."""
    fields = {
        "grant_type": "client_credentials",
        "client_id": sb.client_id,
        "client_secret": sb.client_secret,
    }
    if way == "form":
        return requests.post(sb.token_url, data=fields, timeout=TIMEOUT)
    if way == "query":
        return requests.post(sb.token_url, params=fields, timeout=TIMEOUT)
    if way == "json":
        return requests.post(sb.token_url, json=fields, timeout=TIMEOUT)
    assert way == "basic"
    auth = (sb.client_id, sb.client_secret)
    return requests.post(sb.token_url, data={"grant_type": "client_credentials"}, auth=auth, timeout=TIMEOUT)


ACCEPTED_WAYS = {
    "any": {"form", "query", "json", "basic"},
    "form": {"form"},
    "query": {"query"},
    "basic": {"basic"},
}


@pytest.mark.parametrize("token_auth", list(ACCEPTED_WAYS))
@pytest.mark.parametrize("way", ["form", "query", "json", "basic"])
def test_token_auth_reads_credentials_only_where_its_dialect_says(
    sb: SandboxProcess, token_auth: str, way: str
) -> None:
    sb.set_config(token_auth=token_auth)

    response = token_request(sb, way)

    stats = sb.stats()
    if way in ACCEPTED_WAYS[token_auth]:
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert requests.get(sb.api_url + "/reports", headers=headers, timeout=TIMEOUT).status_code == 200
        assert (stats["tokens_issued"], stats["tokens_refused"]) == (1, 0)
    else:
        # As if nothing had been sent: grant_type unseen -> 400 invalid_request; only the
        # credentials unseen -> 401 invalid_client.
        body = response.json()
        assert (response.status_code, body["error"]) in {(400, "invalid_request"), (401, "invalid_client")}
        assert set(body) == {"error", "message"}
        assert (stats["tokens_issued"], stats["tokens_refused"]) == (0, 1)


@pytest.mark.parametrize(
    ("token_auth", "way", "status", "error"),
    [
        ("form", "query", 400, "invalid_request"),  # grant_type unseen too
        ("query", "form", 400, "invalid_request"),
        ("basic", "form", 401, "invalid_client"),  # grant_type read from the form, credentials not
        ("basic", "query", 401, "invalid_client"),
        ("form", "basic", 401, "invalid_client"),
    ],
)
def test_credentials_sent_another_way_are_refused_like_missing_ones(
    sb: SandboxProcess, token_auth: str, way: str, status: int, error: str
) -> None:
    sb.set_config(token_auth=token_auth)

    response = token_request(sb, way)

    assert (response.status_code, response.json()["error"]) == (status, error)
    if token_auth == "basic":
        assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_basic_dialect_refuses_wrong_basic_credentials(sb: SandboxProcess) -> None:
    sb.set_config(token_auth="basic")
    response = requests.post(
        sb.token_url, data={"grant_type": "client_credentials"}, auth=(sb.client_id, "wrong"), timeout=TIMEOUT
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_the_process_helper_asks_for_tokens_in_every_token_auth_dialect(sb: SandboxProcess) -> None:
    for token_auth in ACCEPTED_WAYS:
        sb.set_config(token_auth=token_auth)
        assert sb.access_token()
    assert sb.stats()["tokens_refused"] == 0


# --- access_token_in ------------------------------------------------------------------------------


def test_header_or_param_takes_the_token_from_the_header_the_query_or_a_json_body(sb: SandboxProcess) -> None:
    token = sb.access_token()

    by_header = requests.get(
        sb.api_url + "/reports", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    by_query = requests.get(sb.api_url + "/reports", params={"access_token": token}, timeout=TIMEOUT)
    body = {"access_token": token, "parameters": day(1)}  # as the public client submits
    by_body = requests.post(sb.api_url + "/requests/videoview", json=body, timeout=TIMEOUT)

    assert (by_header.status_code, by_query.status_code) == (200, 200)
    assert by_body.status_code == 200, by_body.text
    assert by_body.json()["parameters"] == day(1)  # the token field is not a parameter
    assert sb.stats()["submitted"] == 1


def test_header_dialect_answers_a_token_sent_otherwise_as_missing(sb: SandboxProcess) -> None:
    sb.set_config(access_token_in="header")
    token = sb.access_token()

    by_header = requests.get(
        sb.api_url + "/reports", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    by_query = requests.get(sb.api_url + "/reports", params={"access_token": token}, timeout=TIMEOUT)
    body = {"access_token": token, "parameters": day(1)}
    by_body = requests.post(sb.api_url + "/requests/videoview", json=body, timeout=TIMEOUT)

    assert by_header.status_code == 200
    for refused in (by_query, by_body):
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized"
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert sb.stats()["submitted"] == 0


# --- in_flight_status and in_flight_message -------------------------------------------------------


@pytest.mark.parametrize("status", [429, 400, 403, 409])
def test_in_flight_refusal_status(sb: SandboxProcess, status: int) -> None:
    sb.set_config(processing_seconds=30, in_flight_status=status)
    api = Api(sb)
    for n in (1, 2, 3):
        api.submit_ok(parameters=day(n))

    refused = api.submit(parameters=day(4))

    assert refused.status_code == status
    assert refused.json() == {"error": "limit_exceeded", "message": DEFAULT_IN_FLIGHT_MESSAGE}
    assert not re.search(r"in.flight", refused.text, re.IGNORECASE)
    stats = sb.stats()
    assert (stats["submitted"], stats["refused_in_flight"], stats["in_flight"]) == (3, 1, 3)


def test_in_flight_message_is_configurable(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=30, max_in_flight=1, in_flight_message="Too many reports running.")
    api = Api(sb)
    api.submit_ok()

    refused = api.submit(parameters=day(2))

    assert refused.status_code == 429
    assert refused.json() == {"error": "limit_exceeded", "message": "Too many reports running."}


# --- reports_shape --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["object", "list"])
def test_reports_shape(sb: SandboxProcess, shape: str) -> None:
    sb.set_config(reports_shape=shape)

    body = Api(sb).get("/reports").json()

    reports = body if shape == "list" else body["reports"]
    assert isinstance(body, list) is (shape == "list")
    assert {r["name"] for r in reports} == set(REPORTS)


# --- requests_scope -------------------------------------------------------------------------------


def test_institution_scope_lists_every_client_s_requests(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=30)
    api = Api(sb)
    mine = api.submit_ok(parameters=day(1))["requestId"]

    other = sb.submit_as(OTHER, "notes", day(2), compression=False)

    assert other["clientId"] == OTHER and other["status"] == "Pending"
    assert other["reportName"] == "notes" and other["parameters"] == day(2)
    assert set(api.listed_ids()) == {mine, other["requestId"]}
    assert api.get(f"/request/{other['requestId']}").status_code == 200
    assert sb.request_info(other["requestId"])["clientId"] == OTHER
    assert sb.request_info(mine)["clientId"] == sb.client_id
    stats = sb.stats()
    assert (stats["submitted"], stats["injected"]) == (1, 1)
    assert stats["clients"] == {sb.client_id: 1, OTHER: 1}
    assert stats["submissions"] == {"videoview|end=2024-01-02&start=2024-01-01": 1}


def test_client_scope_hides_other_clients_requests_but_the_cap_counts_them(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=30, requests_scope="client")
    api = Api(sb)
    others = [sb.submit_as(OTHER, "videoview", day(n))["requestId"] for n in (1, 2)]
    mine = api.submit_ok(parameters=day(3))["requestId"]

    listed = api.listed_ids()
    hidden = api.get(f"/request/{others[0]}")
    refused = api.submit(parameters=day(4))  # three in progress in the institution, one visible

    assert listed == [mine]
    assert hidden.status_code == 404
    assert refused.status_code == 429 and refused.json()["error"] == "limit_exceeded"
    stats = sb.stats()
    assert (stats["in_flight"], stats["max_in_flight"], stats["refused_in_flight"]) == (3, 3, 1)

    sb.set_config(requests_scope="institution")
    assert set(api.listed_ids()) == {mine, *others}


def test_injected_requests_bypass_the_cap_and_follow_the_submission_rules(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=30, max_in_flight=1)
    Api(sb).submit_ok()

    extra = sb.submit_as(OTHER, "asset", {})

    assert extra["status"] == "Pending"
    assert sb.stats()["in_flight"] == 2  # above the cap: another client submitted it
    with pytest.raises(requests.HTTPError, match="400"):
        sb.submit_as(OTHER, "videoview", {"start": "2024-01-01", "end": "2024-01-20"})
    with pytest.raises(requests.HTTPError, match="404"):
        sb.submit_as(OTHER, "nosuchreport", day(1))


# --- requests_page_size and requests_paging -------------------------------------------------------


@pytest.mark.parametrize("paging", ["link", "cursor", "header"])
def test_paging_returns_every_request_exactly_once_newest_first(sb: SandboxProcess, paging: str) -> None:
    sb.set_config(processing_seconds=0)
    api = Api(sb)
    ids = [api.submit_ok(parameters=day(n))["requestId"] for n in range(1, 8)]
    sb.set_config(requests_page_size=3, requests_paging=paging)

    pages = [[r["requestId"] for r in page] for page in api.pages(paging)]

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == ids[::-1]
    assert sb.stats()["calls"]["GET /requests"] == 3


@pytest.mark.parametrize("paging", ["link", "cursor", "header"])
def test_an_exact_multiple_of_the_page_size_ends_without_an_empty_page(
    sb: SandboxProcess, paging: str
) -> None:
    sb.set_config(processing_seconds=0, requests_page_size=2, requests_paging=paging)
    api = Api(sb)
    ids = [api.submit_ok(parameters=day(n))["requestId"] for n in range(1, 5)]

    pages = [[r["requestId"] for r in page] for page in api.pages(paging)]

    assert pages == [ids[:1:-1], ids[1::-1]]


def test_paging_is_stable_while_new_requests_arrive(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0, requests_page_size=2, requests_paging="cursor")
    api = Api(sb)
    ids = [api.submit_ok(parameters=day(n))["requestId"] for n in range(1, 6)]

    first = api.get("/requests").json()
    newer = api.submit_ok(parameters=day(10))["requestId"]  # lands on page one, already read
    rest: list[str] = []
    cursor = first["nextCursor"]
    while cursor is not None:
        page = api.get("/requests", params={"cursor": cursor}).json()
        rest += [r["requestId"] for r in page["requests"]]
        cursor = page["nextCursor"]

    assert [r["requestId"] for r in first["requests"]] + rest == ids[::-1]
    assert newer not in rest


def test_page_urls_need_the_token_like_the_first_page(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0, requests_page_size=1, requests_paging="link")
    api = Api(sb)
    for n in (1, 2):
        api.submit_ok(parameters=day(n))
    following = api.get("/requests").json()["next"]

    assert "access_token" not in following
    assert requests.get(following, timeout=TIMEOUT).status_code == 401
    by_param = requests.get(following, params={"access_token": api.token}, timeout=TIMEOUT)
    assert by_param.status_code == 200 and len(by_param.json()["requests"]) == 1


def test_each_style_only_reads_its_own_parameter_and_refuses_a_forged_token(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0, requests_page_size=1, requests_paging="cursor")
    api = Api(sb)
    newest_first = [api.submit_ok(parameters=day(n))["requestId"] for n in (1, 2)][::-1]
    cursor = api.get("/requests").json()["nextCursor"]

    assert [r["requestId"] for r in api.get("/requests", params={"cursor": cursor}).json()["requests"]] == [
        newest_first[1]
    ]
    ignored = api.get("/requests", params={"page": cursor}).json()  # not this style's parameter
    assert [r["requestId"] for r in ignored["requests"]] == [newest_first[0]]
    forged = api.get("/requests", params={"cursor": "not-a-cursor"})
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_request"


def test_page_size_zero_answers_everything_without_paging_fields(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0)
    api = Api(sb)
    for n in range(1, 6):
        api.submit_ok(parameters=day(n))

    response = api.get("/requests")

    assert set(response.json()) == {"requests"} and len(response.json()["requests"]) == 5
    assert "Link" not in response.headers


def test_paging_in_client_scope_pages_only_the_caller_s_requests(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0, requests_scope="client", requests_page_size=2)
    api = Api(sb)
    mine = [api.submit_ok(parameters=day(n))["requestId"] for n in (1, 2, 3)]
    sb.submit_as(OTHER, "videoview", day(9))

    pages = [[r["requestId"] for r in page] for page in api.pages("link")]

    assert pages == [mine[:0:-1], mine[:1]]


# --- request_path ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "served", "not_served"), [("singular", "request", "requests"), ("plural", "requests", "request")]
)
def test_request_path(sb: SandboxProcess, path: str, served: str, not_served: str) -> None:
    sb.set_config(request_path=path)
    api = Api(sb)
    request_id = api.submit_ok()["requestId"]

    assert api.get(f"/{served}/{request_id}").json()["requestId"] == request_id
    assert api.get(f"/{not_served}/{request_id}").status_code == 404


# --- early_status ---------------------------------------------------------------------------------


def test_no_early_status_by_default(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=30)
    api = Api(sb)
    assert api.submit_ok()["status"] == "Pending"
    assert api.get("/requests").json()["requests"][0]["status"] == "Pending"


@pytest.mark.parametrize("early", ["Queued", "Processing"])
def test_early_status_shows_first_then_pending_then_the_outcome(sb: SandboxProcess, early: str) -> None:
    sb.set_config(processing_seconds=3, early_status=early, early_status_seconds=1.5)
    api = Api(sb)
    created = api.submit_ok()
    request_id = created["requestId"]

    def status() -> str:
        return str(api.get(f"/request/{request_id}").json()["status"])

    assert created["status"] == early
    assert status() == early
    assert api.get("/requests").json()["requests"][0]["status"] == early
    assert sb.stats()["in_flight"] == 1 and sb.stats()["statuses"] == {early: 1}
    wait_for(lambda: status() != early)
    assert status() == "Pending"
    wait_for(lambda: status() != "Pending")
    assert status() == "Available"


def test_early_status_lasts_half_the_processing_time_by_default(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=2, early_status="Queued")
    api = Api(sb)
    started = time.monotonic()
    request_id = api.submit_ok()["requestId"]

    wait_for(lambda: api.get(f"/request/{request_id}").json()["status"] != "Queued")

    assert 0.9 <= time.monotonic() - started <= 1.9
    assert api.get(f"/request/{request_id}").json()["status"] == "Pending"


def test_early_status_counts_as_in_flight(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=30, early_status="Queued", early_status_seconds=30)
    api = Api(sb)
    statuses = [api.submit_ok(parameters=day(n))["status"] for n in (1, 2, 3)]

    refused = api.submit(parameters=day(4))

    assert statuses == ["Queued"] * 3
    assert refused.status_code == 429
    assert sb.stats()["in_flight"] == 3


@pytest.mark.parametrize("bad", ["Available", "Failed", "Missing", "Expired", ""])
def test_early_status_cannot_be_a_final_status(sb: SandboxProcess, bad: str) -> None:
    with pytest.raises(requests.HTTPError, match="early_status"):
        sb.set_config(early_status=bad)


# --- qanda_name -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "other"), [("qanda2", "qandav2"), ("qandav2", "qanda2")])
def test_qanda_name(sb: SandboxProcess, name: str, other: str) -> None:
    sb.set_config(qanda_name=name, processing_seconds=0, rows_per_day=2)
    api = Api(sb)

    listed = {r["name"] for r in api.get("/reports").json()["reports"]}
    refused = api.submit(other)
    created = api.submit_ok(name)

    assert name in listed and other not in listed and len(listed) == 13
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    assert created["reportName"] == name
    assert api.get("/requests").json()["requests"][0]["reportName"] == name
    detail = api.get(f"/request/{created['requestId']}").json()
    assert detail["reportName"] == name
    [url] = detail["signedAssets"]
    header = gzip.decompress(requests.get(url, timeout=TIMEOUT).content).decode().split("\n", 1)[0]
    assert header == ",".join(f'"{c}"' for c in REPORTS["qanda2"].columns)  # whatever the name
    assert sb.stats()["submissions"] == {f"{name}|end=2024-01-02&start=2024-01-01": 1}


def test_qandav2_serves_the_same_bytes_as_qanda2(sb: SandboxProcess) -> None:
    sb.set_config(processing_seconds=0, rows_per_day=3)
    api = Api(sb)
    first = api.submit_ok("qanda2")["requestId"]
    sb.set_config(qanda_name="qandav2")
    second = api.submit_ok("qandav2")["requestId"]

    [one] = sb.request_info(first)["assetNames"]
    [two] = sb.request_info(second)["assetNames"]

    assert sb.asset_bytes(first, one) == sb.asset_bytes(second, two)
    assert api.get(f"/request/{first}").json()["reportName"] == "qandav2"  # listings use the current name


# --- show_output and the smaller dialects ----------------------------------------------------------


@pytest.mark.parametrize("show", [True, False])
def test_show_output(sb: SandboxProcess, show: bool) -> None:
    sb.set_config(show_output=show)
    api = Api(sb)
    created = api.submit_ok(compression=False, delimiter="|")

    shown = [
        created,
        api.get("/requests").json()["requests"][0],
        api.get(f"/request/{created['requestId']}").json(),
    ]

    for request in shown:
        assert ("output" in request) is show
        if show:
            assert request["output"] == {"compression": False, "delimiter": "|"}


@pytest.mark.parametrize("shape", ["full", "minimal"])
def test_token_response(sb: SandboxProcess, shape: str) -> None:
    sb.set_config(token_response=shape)

    body = token_request(sb, "form").json()

    expected = (
        {"access_token", "token_type", "expires_in", "refresh_token"} if shape == "full" else {"access_token"}
    )
    assert set(body) == expected


@pytest.mark.parametrize("retry_after", [True, False])
def test_retry_after(sb: SandboxProcess, retry_after: bool) -> None:
    sb.set_config(retry_after=retry_after, rate_limit=2)
    api = Api(sb)  # the token call is the first of two

    answers = [api.get("/reports") for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 429]
    assert ("Retry-After" in answers[1].headers) is retry_after


@pytest.mark.parametrize("status", [401, 400])
def test_bad_credentials_status(sb: SandboxProcess, status: int) -> None:
    sb.set_config(bad_credentials_status=status)

    response = requests.post(
        sb.token_url,
        data={"grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": "wrong"},
        timeout=TIMEOUT,
    )

    assert (response.status_code, response.json()["error"]) == (status, "invalid_client")


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("token_auth", "cookie"),
        ("access_token_in", "query"),
        ("in_flight_status", 418),
        ("reports_shape", "dict"),
        ("requests_scope", "user"),
        ("requests_page_size", -1),
        ("requests_paging", "offset"),
        ("request_path", "both"),
        ("qanda_name", "qanda3"),
        ("in_flight_message", " "),
        ("early_status_seconds", -1),
    ],
)
def test_dialect_settings_are_validated(sb: SandboxProcess, setting: str, value: Any) -> None:
    with pytest.raises(requests.HTTPError, match=setting):
        sb.set_config(**{setting: value})


def test_every_dialect_as_a_command_line_flag(make_sandbox: Callable[..., SandboxProcess]) -> None:
    options = {
        "token_auth": "query",
        "access_token_in": "header",
        "in_flight_status": 403,
        "in_flight_message": "Busy: try later.",
        "reports_shape": "list",
        "requests_scope": "client",
        "requests_page_size": 1,
        "requests_paging": "header",
        "request_path": "plural",
        "early_status": "Queued",
        "early_status_seconds": 30,
        "qanda_name": "qandav2",
        "show_output": True,
        "token_response": "minimal",
        "retry_after": False,
        "bad_credentials_status": 400,
    }
    sb = make_sandbox(processing_seconds=60, max_in_flight=2, **options)

    config = sb.config()
    assert {name: config[name] for name in options} == options
    assert token_request(sb, "form").status_code == 400  # query only
    api = Api(sb)  # the helper asks through the query
    assert (
        requests.get(sb.api_url + "/reports", params={"access_token": api.token}, timeout=10).status_code
        == 401
    )
    reports = api.get("/reports").json()
    assert isinstance(reports, list) and "qandav2" in {r["name"] for r in reports}
    created = [api.submit_ok("qandav2", day(n)) for n in (1, 2)]
    assert [c["status"] for c in created] == ["Queued", "Queued"] and "output" in created[0]
    refused = api.submit(parameters=day(3))
    assert refused.json() == {"error": "limit_exceeded", "message": "Busy: try later."}
    assert refused.status_code == 403
    first = api.get("/requests")
    assert len(first.json()["requests"]) == 1 and 'rel="next"' in first.headers["Link"]
    assert api.get(f"/requests/{created[0]['requestId']}").status_code == 200
    assert api.get(f"/request/{created[0]['requestId']}").status_code == 404
