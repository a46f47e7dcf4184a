from __future__ import annotations

import json

import pytest

from airflow_provider_echo360.exceptions import Echo360ApiError, Echo360InFlightLimitError
from airflow_provider_echo360.hooks.echo360 import (
    ConnectionSettings,
    Echo360Hook,
    Echo360ValidationError,
    ReportRequest,
    _Answer,
    _interpret,
    _report_list,
    _SlidingWindowLimiter,
    redact_url,
)


def settings_for(monkeypatch, **conn) -> ConnectionSettings:
    monkeypatch.setenv("AIRFLOW_CONN_ECHO360_UNIT", json.dumps({"conn_type": "echo360", **conn}))
    return Echo360Hook("echo360_unit").settings


@pytest.mark.parametrize(
    ("region", "base"),
    [
        (None, "https://echo360.org"),
        ("uk", "https://echo360.org.uk"),
        ("AU", "https://echo360.org.au"),
        ("ca", "https://echo360.ca"),
    ],
)
def test_region_gives_base_url(monkeypatch, region, base):
    extra = {"region": region} if region else {}
    assert settings_for(monkeypatch, login="id", password="pw", extra=extra).base_url == base


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("https://echo360.example.edu/", "https://echo360.example.edu"),
        ("echo360.example.edu", "https://echo360.example.edu"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:9/public/api/v1/reporting", "http://localhost:9"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_host_overrides_region(monkeypatch, host, base):
    assert (
        settings_for(monkeypatch, login="id", password="pw", host=host, extra={"region": "uk"}).base_url
        == base
    )


@pytest.mark.parametrize("host", ["http://echo360.org", "http://10.0.0.5:8080", "ftp://127.0.0.1"])
def test_plain_http_only_for_loopback(monkeypatch, host):
    with pytest.raises(Echo360ValidationError, match="host") as err:
        settings_for(monkeypatch, login="id", password="pw", host=host)
    assert "https://" in str(err.value)


def test_unknown_region_is_refused_naming_the_choices(monkeypatch):
    with pytest.raises(Echo360ValidationError, match=r"region='mars'.*\['au', 'ca', 'uk', 'us'\]"):
        settings_for(monkeypatch, login="id", password="pw", extra={"region": "mars"})


@pytest.mark.parametrize(("login", "password", "field"), [("", "pw", "login"), ("id", "", "password")])
def test_missing_credentials_are_refused(monkeypatch, login, password, field):
    with pytest.raises(Echo360ValidationError) as err:
        settings_for(monkeypatch, login=login, password=password)
    assert err.value.field == field


def test_secret_is_not_in_repr(monkeypatch):
    settings = settings_for(monkeypatch, login="id", password="s3cr3t-value")
    assert "s3cr3t-value" not in repr(settings)


def test_limiter_allows_the_limit_then_spaces_calls_a_minute_apart():
    limiter = _SlidingWindowLimiter(3)
    delays = [limiter.reserve() for _ in range(5)]
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert 59.0 < delays[3] <= 60.0
    assert 59.0 < delays[4] <= 60.0
    assert _SlidingWindowLimiter(0).reserve() == 0.0


def test_report_listing_as_bare_list_or_object():
    entry = {"name": "asset", "parameters": []}
    assert _report_list([entry]) == _report_list({"reports": [entry]}) == [entry]


def test_request_parsing_is_tolerant_and_hides_signed_urls():
    request = ReportRequest.from_api(
        {
            "requestId": "r1",
            "status": "Available",
            "reportName": "asset",
            "created": "2020-04-01T20:36:12.000Z",
            "signedAssets": ["http://some.url/x.csv.gz?Signature=topsecret"],
        }
    )
    assert request.assets == ("x.csv.gz",)
    assert request.created is not None and request.created.tzinfo is not None
    assert "topsecret" not in repr(request)
    assert redact_url(request.signed_assets[0]) == "http://some.url/x.csv.gz"


def test_in_flight_refusal_is_recognised_whatever_the_status():
    settings = ConnectionSettings("http://127.0.0.1:1", "id", "pw")
    body = json.dumps({"message": "In-flight report limit reached"})
    for status in (400, 409, 429):
        with pytest.raises(Echo360InFlightLimitError):
            _interpret(_Answer(status, {}, body), "POST /requests/asset", settings)
    with pytest.raises(Echo360ApiError, match="400: POST /requests/x: bad start"):
        _interpret(_Answer(400, {}, json.dumps({"message": "bad start"})), "POST /requests/x", settings)


def test_a_429_is_retried_until_the_rate_window_has_passed():
    from concurrent.futures import Future
    from unittest import mock

    from airflow_provider_echo360.hooks.echo360 import RATE_WINDOW_SECONDS, _RetryableResponse, _stop_retrying

    def state(error: Exception, attempt: int, elapsed: float):
        outcome: Future = Future()
        outcome.set_exception(error)
        return mock.Mock(outcome=outcome, attempt_number=attempt, seconds_since_start=elapsed)

    too_many, unavailable = _RetryableResponse(429, "slow down", 1.0), _RetryableResponse(503, "down", None)
    assert not _stop_retrying(state(too_many, 3, 1.0), attempts=7)
    assert not _stop_retrying(state(too_many, 7, RATE_WINDOW_SECONDS - 5), attempts=7)
    assert _stop_retrying(state(too_many, 7, RATE_WINDOW_SECONDS + 1), attempts=7)
    assert _stop_retrying(state(unavailable, 7, 1.0), attempts=7)
