from __future__ import annotations

import json

import pytest

from airflow_provider_echo360.exceptions import Echo360ValidationError
from airflow_provider_echo360.hooks.echo360 import Echo360Hook
from airflow_provider_echo360.hooks.transport import (
    RATE_WINDOW_SECONDS,
    ConnectionSettings,
    RateLimiter,
    RetryableAnswer,
    _stop_retrying,
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
    limiter = RateLimiter(3)
    delays = [limiter.reserve() for _ in range(5)]
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert 59.0 < delays[3] <= 60.0
    assert 59.0 < delays[4] <= 60.0
    assert RateLimiter(0).reserve() == 0.0


@pytest.mark.parametrize("name", ["calls_per_minute", "timeout", "max_retries", "backoff_seconds"])
def test_a_null_extra_takes_its_default(monkeypatch, name):
    defaults = ConnectionSettings("https://x", "id", "pw")
    settings = settings_for(monkeypatch, login="id", password="pw", extra={name: None})
    assert getattr(settings, name) == getattr(defaults, name)


@pytest.mark.parametrize(
    ("name", "value"), [("calls_per_minute", "many"), ("timeout", -1), ("max_retries", [])]
)
def test_a_wrong_extra_is_refused_naming_it(monkeypatch, name, value):
    with pytest.raises(Echo360ValidationError, match=rf"extra\.{name}=.*allowed is") as err:
        settings_for(monkeypatch, login="id", password="pw", extra={name: value})
    assert err.value.field == f"extra.{name}"


@pytest.mark.parametrize(
    ("host", "schema", "port", "base"),
    [
        ("127.0.0.1", None, 8360, "http://127.0.0.1:8360"),
        ("127.0.0.1", "https", 8360, "https://127.0.0.1:8360"),
        ("echo360.example.edu", None, None, "https://echo360.example.edu"),
    ],
)
def test_uri_style_connections_choose_their_scheme(monkeypatch, host, schema, port, base):
    fields = {"login": "id", "password": "pw", "host": host, "port": port, "schema": schema}
    assert settings_for(monkeypatch, **{k: v for k, v in fields.items() if v}).base_url == base


def test_a_429_is_retried_until_the_rate_window_has_passed():
    from concurrent.futures import Future
    from unittest import mock

    def state(error: Exception, attempt: int, elapsed: float):
        outcome: Future = Future()
        outcome.set_exception(error)
        return mock.Mock(outcome=outcome, attempt_number=attempt, seconds_since_start=elapsed)

    too_many, unavailable = RetryableAnswer(429, "slow down", 1.0), RetryableAnswer(503, "down", None)
    assert not _stop_retrying(state(too_many, 3, 1.0), attempts=7)
    assert not _stop_retrying(state(too_many, 7, RATE_WINDOW_SECONDS - 5), attempts=7)
    assert _stop_retrying(state(too_many, 7, RATE_WINDOW_SECONDS + 1), attempts=7)
    assert _stop_retrying(state(unavailable, 7, 1.0), attempts=7)


@pytest.mark.parametrize(
    ("uri", "base"),
    [
        ("echo360://sandbox-client:sandbox-secret@127.0.0.1:8360", "http://127.0.0.1:8360"),
        ("echo360://id:secret@echo360.org.uk", "https://echo360.org.uk"),
        ("echo360://id:secret@?region=au", "https://echo360.org.au"),
        ("echo360://id:secret@127.0.0.1:8443/https", "https://127.0.0.1:8443"),
    ],
)
def test_uri_connections_as_the_readme_shows_them(monkeypatch, uri, base):
    monkeypatch.setenv("AIRFLOW_CONN_ECHO360_URI", uri)
    assert Echo360Hook("echo360_uri").settings.base_url == base
