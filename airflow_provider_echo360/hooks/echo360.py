"""Echo360Hook: every byte this provider exchanges with the Echo360 Reporting API goes through here."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import requests
import tenacity
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_provider_echo360.exceptions import (
    AirflowFailException,
    Echo360ApiError,
    Echo360AuthError,
    Echo360Error,
    Echo360InFlightLimitError,
    Echo360RequestFailedError,
    Echo360ValidationError,
)
from airflow_provider_echo360.reports import validate_output, validate_parameters

__all__ = [
    "Echo360ApiError",
    "Echo360AssetUrlExpiredError",
    "Echo360AuthError",
    "Echo360DownloadError",
    "Echo360Error",
    "Echo360Hook",
    "Echo360InFlightLimitError",
    "Echo360RequestFailedError",
    "Echo360RequestNotFoundError",
    "Echo360TransientError",
    "Echo360ValidationError",
    "ReportRequest",
    "reusable_request",
]

API_PREFIX = "/public/api/v1/reporting"
TOKEN_PATH = "/oauth2/access_token"
REGION_URLS = {
    "us": "https://echo360.org",
    "uk": "https://echo360.org.uk",
    "au": "https://echo360.org.au",
    "ca": "https://echo360.ca",
}
PENDING = "Pending"
AVAILABLE = "Available"
FAILED_STATUSES = ("Failed", "Missing", "Expired")
#: The API counts its rate limit over a rolling minute; a 429 is worth retrying for at least that long.
RATE_WINDOW_SECONDS = 65.0
#: Assets are deleted 14 days after submission; adopt an Available request only well before that.
REUSABLE_AGE = dt.timedelta(days=13)

log = logging.getLogger(__name__)
TokenKey = tuple[str, str, str]


class Echo360TransientError(Echo360Error):
    """The API kept answering 5xx/429, or the network kept failing, through every retry.

    :param http_status: the last answer's status, or ``None`` when the network failed.
    """

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class Echo360RequestNotFoundError(Echo360ApiError, AirflowFailException):
    """The API knows no request with this id (retrying cannot help)."""


class Echo360AssetUrlExpiredError(Echo360Error):
    """A signed asset URL was refused (403): it expired or its signature no longer holds."""


class Echo360DownloadError(Echo360Error):
    """An asset download broke off or delivered fewer bytes than announced."""


class _RetryableResponse(Echo360Error):
    """A 5xx or 429 answer: worth another attempt, after ``retry_after`` seconds when the API said so."""

    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        super().__init__(f"Echo360 API answered {status}: {message}")
        self.http_status = status
        self.api_message = message
        self.retry_after = retry_after


_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, httpx.TransportError)


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, (_RetryableResponse, *_TRANSPORT_ERRORS))


def _is_in_flight_refusal(status: int, message: str) -> bool:
    text = message.lower().replace("-", " ")
    return status == 429 and "in flight" in text or 400 <= status < 500 and "in flight" in text


@dataclass(frozen=True)
class ReportRequest:
    """One report request as the API describes it.

    :param request_id: the API's id of the request.
    :param status: ``Pending``, ``Available``, ``Failed``, ``Missing`` or ``Expired``.
    :param report_name: the report it asks for.
    :param parameters: its parameters (``start``/``end``), as the API echoes them.
    :param created: when it was submitted (UTC), if the API said.
    :param assets: the file names of its assets once ``Available``.
    :param signed_assets: signed download URLs (only from ``GET /request/{id}``). Secret-bearing:
        never logged, never shown by ``repr``.
    """

    request_id: str
    status: str
    report_name: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    created: dt.datetime | None = None
    assets: tuple[str, ...] = ()
    signed_assets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ReportRequest:
        signed = tuple(str(url) for url in data.get("signedAssets") or ())
        for url in signed:
            _mask_url_signature(url)
        assets = tuple(str(a) for a in data.get("assets") or ()) or tuple(asset_file_name(u) for u in signed)
        return cls(
            request_id=str(data.get("requestId") or data.get("id") or ""),
            status=str(data.get("status") or ""),
            report_name=str(data.get("reportName") or ""),
            parameters={str(k): str(v) for k, v in (data.get("parameters") or {}).items()},
            created=_parse_timestamp(data.get("created")),
            assets=assets,
            signed_assets=signed,
        )

    @property
    def is_pending(self) -> bool:
        return self.status == PENDING


def _parse_timestamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def redact_url(url: str) -> str:
    """The URL without its query string: what may appear in logs and errors."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def asset_file_name(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


def _mask_url_signature(url: str) -> None:
    query = urlsplit(url).query
    if query:
        mask_secret(query)
        for pair in query.split("&"):
            key, _, value = pair.partition("=")
            if value and key.lower() in {"signature", "x-amz-signature", "x-amz-security-token", "sig"}:
                mask_secret(value)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ConnectionSettings:
    """What the hook needs from an ``echo360`` connection, checked.

    :param base_url: scheme and host (and port) of the API, without the reporting prefix.
    :param client_id: the API client id (the connection's login).
    :param client_secret: the API client secret (the connection's password); never in ``repr``.
    :param calls_per_minute: the client-side rate limit for this process.
    :param timeout: seconds to wait for an API answer.
    :param max_retries: attempts after the first on transient failures.
    :param backoff_seconds: the first retry's wait; each later one doubles it (up to a minute).
    """

    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    calls_per_minute: int = 120
    timeout: float = 30.0
    max_retries: int = 6
    backoff_seconds: float = 1.0

    @classmethod
    def from_connection(cls, conn: Any) -> ConnectionSettings:
        extra = conn.extra_dejson or {}

        def option(name: str, default: Any) -> Any:
            return extra.get(name, extra.get(f"extra__echo360__{name}", default))

        client_id, client_secret = (conn.login or "").strip(), conn.password or ""
        if not client_id:
            raise Echo360ValidationError("login", conn.login, "the Echo360 API client id")
        if not client_secret:
            raise Echo360ValidationError("password", "", "the Echo360 API client secret (not shown)")
        mask_secret(client_secret)
        return cls(
            base_url=_base_url(
                conn.host or option("base_url", None), conn.schema, conn.port, option("region", None)
            ),
            client_id=client_id,
            client_secret=client_secret,
            calls_per_minute=int(option("calls_per_minute", 120)),
            timeout=float(option("timeout", 30.0)),
            max_retries=int(option("max_retries", 6)),
            backoff_seconds=float(option("backoff_seconds", 1.0)),
        )

    @property
    def institution(self) -> tuple[str, str]:
        """The API's rate limit is per institution client: one limiter per (API, client id)."""
        return self.base_url, self.client_id

    @property
    def key(self) -> TokenKey:
        """Tokens are cached per credentials (with a digest of the secret: a wrong one borrows no token)."""
        return self.base_url, self.client_id, hashlib.sha256(self.client_secret.encode()).hexdigest()[:16]


def _base_url(host: str | None, schema: str | None, port: int | None, region: str | None) -> str:
    if not host:
        region_key = (region or "us").strip().lower()
        if region_key not in REGION_URLS:
            raise Echo360ValidationError(
                "region", region, f"one of {sorted(REGION_URLS)}, or a base URL as host"
            )
        return REGION_URLS[region_key]
    text = host.strip().rstrip("/")
    if "://" not in text:
        scheme = schema if schema in ("http", "https") else "https"
        text = f"{scheme}://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Echo360ValidationError("host", host, "an https:// base URL such as https://echo360.org")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise Echo360ValidationError(
            "host", host, "https:// for any host other than loopback (http:// only for 127.0.0.1/localhost)"
        )
    netloc = parts.netloc if parts.port or not port else f"{parts.netloc}:{port}"
    path = parts.path[: -len(API_PREFIX)] if parts.path.endswith(API_PREFIX) else parts.path
    return urlunsplit((parts.scheme, netloc, path.rstrip("/"), "", ""))


@dataclass
class _Token:
    value: str
    expires_at: float  # time.monotonic()
    lifetime: float

    def is_fresh(self) -> bool:
        # Renew a little before expiry: a minute for the usual hour, less for short-lived tokens.
        return time.monotonic() < self.expires_at - min(60.0, self.lifetime / 10)


class _SlidingWindowLimiter:
    """At most ``limit`` calls in any 60-second window, for every caller in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Book the next call; return how many seconds the caller must wait before making it."""
        if self.limit <= 0:
            return 0.0
        with self._lock:
            now = time.monotonic()
            while self._calls and self._calls[0] <= now - 60.0:
                self._calls.popleft()
            at = now if len(self._calls) < self.limit else self._calls[-self.limit] + 60.0
            self._calls.append(at)
            return max(0.0, at - now)


class _SharedState:
    """Tokens and limiters shared by every hook instance (and every trigger) in the process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[TokenKey, _Token] = {}
        self.fetch_locks: dict[TokenKey, threading.Lock] = {}
        self.async_fetch_locks: dict[tuple[TokenKey, int], asyncio.Lock] = {}
        self.limiters: dict[tuple[str, str], _SlidingWindowLimiter] = {}
        self.plural_request_path: dict[str, bool] = {}

    def limiter(self, settings: ConnectionSettings) -> _SlidingWindowLimiter:
        with self.lock:
            return self.limiters.setdefault(
                settings.institution, _SlidingWindowLimiter(settings.calls_per_minute)
            )

    def fetch_lock(self, key: TokenKey) -> threading.Lock:
        with self.lock:
            return self.fetch_locks.setdefault(key, threading.Lock())

    def async_fetch_lock(self, key: TokenKey) -> asyncio.Lock:
        with self.lock:
            return self.async_fetch_locks.setdefault((key, id(asyncio.get_running_loop())), asyncio.Lock())

    def fresh_token(self, key: TokenKey) -> str | None:
        token = self.tokens.get(key)
        return token.value if token and token.is_fresh() else None

    def drop_token(self, key: TokenKey, value: str) -> None:
        with self.lock:
            if (token := self.tokens.get(key)) is not None and token.value == value:
                del self.tokens[key]


_SHARED = _SharedState()


@dataclass(frozen=True)
class _Answer:
    """An HTTP answer reduced to what the hook interprets, from requests or httpx alike."""

    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text) if self.text else None


def _api_message(answer: _Answer) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:300] or f"HTTP {answer.status}"
    if isinstance(body, Mapping):
        for key in ("message", "error_description", "error", "detail"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:300]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class Echo360Hook(BaseHook):
    """Talk to the Echo360 Reporting API with an ``echo360`` connection.

    The connection holds the API client id (login) and secret (password), and either a region
    (extra ``region``: ``us``, ``uk``, ``au`` or ``ca``) or a base URL (host). Optional extras:
    ``calls_per_minute`` (client-side rate limit, default 120), ``timeout`` (seconds, default 30),
    ``max_retries`` (default 6).

    Tokens are fetched with OAuth2 client credentials, cached per connection and shared by every
    hook instance in the process, renewed before expiry and once on a 401. Transient failures
    (network errors, timeouts, 5xx, 429) are retried with exponential backoff and jitter,
    honouring ``Retry-After``; other 4xx answers fail at once with the API's message.

    :param echo360_conn_id: the Airflow connection to use.
    """

    conn_name_attr = "echo360_conn_id"
    default_conn_name = "echo360_default"
    conn_type = "echo360"
    hook_name = "Echo360"

    def __init__(self, echo360_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.echo360_conn_id = echo360_conn_id
        self._settings: ConnectionSettings | None = None

    # -- connection -------------------------------------------------------------------------

    @property
    def settings(self) -> ConnectionSettings:
        if self._settings is None:
            self._settings = ConnectionSettings.from_connection(self.get_connection(self.echo360_conn_id))
        return self._settings

    async def _asettings(self) -> ConnectionSettings:
        if self._settings is None:
            conn = await self.aget_connection(self.echo360_conn_id)
            self._settings = ConnectionSettings.from_connection(conn)
        return self._settings

    @cached_property
    def _session(self) -> requests.Session:
        return requests.Session()

    def _api_url(self, path: str) -> str:
        return f"{self.settings.base_url}{API_PREFIX}{path}"

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a token and list the reports; say why not on failure."""
        try:
            reports = self.get_reports()
        except Exception as error:  # the UI shows the reason
            return False, f"{type(error).__name__}: {error}"
        return True, f"Connected to {self.settings.base_url}: {len(reports)} reports available."

    # -- public API, sync -------------------------------------------------------------------

    def get_reports(self) -> list[dict[str, Any]]:
        """``GET /reports``: the report definitions (as a bare list or under ``reports``)."""
        return _report_list(self._call("GET", "/reports"))

    def get_requests(self) -> list[ReportRequest]:
        """``GET /requests``: every request of the institution."""
        return _request_list(self._call("GET", "/requests"))

    def get_request(self, request_id: str) -> ReportRequest:
        """``GET /request/{id}``: one request, with signed asset URLs once ``Available``."""
        check_request_id(request_id)
        base = self.settings.base_url
        plural = _SHARED.plural_request_path.get(base, False)
        try:
            data = self._call("GET", f"/{'requests' if plural else 'request'}/{request_id}")
        except Echo360RequestNotFoundError:
            if plural:
                raise
            data = self._call("GET", f"/requests/{request_id}")
            _SHARED.plural_request_path[base] = True
        return ReportRequest.from_api(data)

    def count_in_flight(self) -> int:
        """How many of the institution's requests are ``Pending`` (the API allows 3)."""
        return in_flight(self.get_requests())

    def submit_request(
        self,
        report_name: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        compression: bool = True,
        delimiter: str = ",",
    ) -> ReportRequest:
        """``POST /requests/{report_name}``: submit a request; return it (status ``Pending``).

        The parameters and output options are validated first. A submission whose answer was lost
        (connection reset, timeout) is looked up in ``/requests`` before it is sent again, so that
        a network failure does not create a second request.

        :raises Echo360InFlightLimitError: the API refused it because 3 requests are in flight.
        """
        params = validate_parameters(report_name, parameters)
        compression, delimiter = validate_output(compression, delimiter)
        body = {"parameters": params, "output": {"compression": compression, "delimiter": delimiter}}
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        lost_answer = False

        def attempt() -> ReportRequest:
            nonlocal lost_answer
            if lost_answer and (found := self._find_lost_submission(report_name, params, since)) is not None:
                return found
            try:
                return ReportRequest.from_api(self._send_api("POST", f"/requests/{report_name}", body))
            except _TRANSPORT_ERRORS:
                lost_answer = True
                raise

        try:
            return self._retrying()(attempt)
        except Echo360TransientError as error:
            if error.http_status == 429:  # the contract: a lasting 429 on submit means "wait for a slot"
                raise Echo360InFlightLimitError(f"Echo360 kept refusing the submission: {error}") from None
            raise

    def _find_lost_submission(
        self, report_name: str, params: Mapping[str, str], since: dt.datetime
    ) -> ReportRequest | None:
        for request in _request_list(self._send_api("GET", "/requests")):
            if (
                request.report_name == report_name
                and dict(request.parameters) == dict(params)
                and request.is_pending
                and (request.created is None or request.created >= since)
            ):
                log.info(
                    "Adopting request %s: its submission went through before the answer was lost.",
                    request.request_id,
                )
                return request
        return None

    @contextmanager
    def open_asset(self, signed_url: str, *, chunk_size: int = 8 * 1024 * 1024) -> Iterator[AssetStream]:
        """Open a signed asset URL for streaming; the body is never loaded into memory.

        The URL is fetched exactly as given and without an ``Authorization`` header (a presigned
        URL refuses a second auth mechanism). Errors name the URL without its signature.

        :raises Echo360AssetUrlExpiredError: the URL was refused (403): get a fresh one.
        """
        _mask_url_signature(signed_url)
        safe = redact_url(signed_url)

        def connect() -> requests.Response:
            # A bare request, outside the API session: nothing of ours rides along.
            response = requests.get(
                signed_url, stream=True, timeout=(10, 300), headers={"Accept-Encoding": "identity"}
            )
            if response.status_code >= 500 or response.status_code == 429:
                response.close()
                raise _RetryableResponse(
                    response.status_code, f"download of {safe}", _retry_after(response.headers)
                )
            return response

        try:
            response = self._retrying()(connect)
        except _TRANSPORT_ERRORS as error:
            raise Echo360DownloadError(f"Could not download {safe}: {type(error).__name__}") from None
        try:
            if response.status_code == 403:
                raise Echo360AssetUrlExpiredError(
                    f"The signed URL for {safe} was refused (403): it has expired."
                )
            if response.status_code != 200:
                raise Echo360DownloadError(f"Download of {safe} answered {response.status_code}.")
            yield AssetStream(response, asset_file_name(signed_url), safe, chunk_size)
        finally:
            response.close()

    # -- public API, async (for triggers) -----------------------------------------------------

    async def aget_request(self, request_id: str) -> ReportRequest:
        """Async ``GET /request/{id}`` (with the same plural fallback as :meth:`get_request`)."""
        check_request_id(request_id)
        base = (await self._asettings()).base_url
        plural = _SHARED.plural_request_path.get(base, False)
        try:
            data = await self._acall("GET", f"/{'requests' if plural else 'request'}/{request_id}")
        except Echo360RequestNotFoundError:
            if plural:
                raise
            data = await self._acall("GET", f"/requests/{request_id}")
            _SHARED.plural_request_path[base] = True
        return ReportRequest.from_api(data)

    async def aget_requests(self) -> list[ReportRequest]:
        """Async ``GET /requests``."""
        return _request_list(await self._acall("GET", "/requests"))

    async def acount_in_flight(self) -> int:
        """Async :meth:`count_in_flight`."""
        return in_flight(await self.aget_requests())

    # -- retries ---------------------------------------------------------------------------------

    def _retrying(self, *, is_async: bool = False) -> Any:
        attempts = self.settings.max_retries + 1  # the async path loads settings before it gets here
        retry_class = tenacity.AsyncRetrying if is_async else tenacity.Retrying
        return retry_class(
            retry=tenacity.retry_if_exception(_is_transient),
            wait=partial(_wait_for_retry, initial=self.settings.backoff_seconds),
            stop=partial(_stop_retrying, attempts=attempts),
            before_sleep=_log_retry,
            retry_error_callback=_give_up,
        )

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return self._retrying()(self._send_api, method, path, body)

    async def _acall(self, method: str, path: str, body: Any = None) -> Any:
        await self._asettings()
        return await self._retrying(is_async=True)(self._asend_api, method, path, body)

    # -- one attempt, sync -----------------------------------------------------------------------

    def _send_api(self, method: str, path: str, body: Any = None) -> Any:
        settings = self.settings
        answer = self._send_authorized(method, self._api_url(path), body, self._token())
        if answer.status == 401:  # the token died early (revoked, clock skew): renew once
            answer = self._send_authorized(method, self._api_url(path), body, self._token(renew=True))
        return _interpret(answer, f"{method} {path}", settings)

    def _send_authorized(self, method: str, url: str, body: Any, token: str) -> _Answer:
        self._throttle()
        response = self._session.request(
            method,
            url,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=self.settings.timeout,
        )
        return _Answer(response.status_code, response.headers, response.text)

    def _throttle(self) -> None:
        delay = _SHARED.limiter(self.settings).reserve()
        if delay:
            time.sleep(delay)

    def _token(self, *, renew: bool = False) -> str:
        settings = self.settings
        if renew:
            self._drop_cached_token()
        if (token := _SHARED.fresh_token(settings.key)) is not None:
            return token
        with _SHARED.fetch_lock(settings.key):
            if (token := _SHARED.fresh_token(settings.key)) is not None:  # another thread just did it
                return token
            self._throttle()
            response = self._session.post(
                f"{settings.base_url}{TOKEN_PATH}", data=_token_form(settings), timeout=settings.timeout
            )
            return _store_token(settings, _Answer(response.status_code, response.headers, response.text))

    def _drop_cached_token(self) -> None:
        key = self.settings.key
        if (token := _SHARED.tokens.get(key)) is not None:
            _SHARED.drop_token(key, token.value)

    # -- one attempt, async ------------------------------------------------------------------------

    async def _asend_api(self, method: str, path: str, body: Any = None) -> Any:
        settings = await self._asettings()
        url = f"{settings.base_url}{API_PREFIX}{path}"
        async with httpx.AsyncClient(timeout=settings.timeout) as client:
            answer = await self._asend_authorized(client, method, url, body, await self._atoken(client))
            if answer.status == 401:
                self._drop_cached_token()
                answer = await self._asend_authorized(client, method, url, body, await self._atoken(client))
        return _interpret(answer, f"{method} {path}", settings)

    async def _asend_authorized(
        self, client: httpx.AsyncClient, method: str, url: str, body: Any, token: str
    ) -> _Answer:
        await self._athrottle()
        response = await client.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"})
        return _Answer(response.status_code, response.headers, response.text)

    async def _athrottle(self) -> None:
        delay = _SHARED.limiter(self.settings).reserve()
        if delay:
            await asyncio.sleep(delay)

    async def _atoken(self, client: httpx.AsyncClient) -> str:
        settings = self.settings
        if (token := _SHARED.fresh_token(settings.key)) is not None:
            return token
        async with _SHARED.async_fetch_lock(settings.key):
            if (token := _SHARED.fresh_token(settings.key)) is not None:
                return token
            await self._athrottle()
            response = await client.post(f"{settings.base_url}{TOKEN_PATH}", data=_token_form(settings))
            return _store_token(settings, _Answer(response.status_code, response.headers, response.text))


class AssetStream:
    """An open asset download: iterate :meth:`chunks`; a short body raises at the end.

    :param response: the streaming ``requests`` response.
    :param name: the asset's file name (from the URL path).
    :param safe_url: the URL without its signature, for messages.
    :param chunk_size: bytes per chunk.
    """

    def __init__(self, response: requests.Response, name: str, safe_url: str, chunk_size: int) -> None:
        self._response = response
        self.name = name
        self.safe_url = safe_url
        self.chunk_size = chunk_size
        length = response.headers.get("Content-Length")
        self.content_length = int(length) if length and length.isdigit() else None
        self.bytes_read = 0

    def chunks(self) -> Iterator[bytes]:
        try:
            for chunk in self._response.raw.stream(self.chunk_size, decode_content=False):
                self.bytes_read += len(chunk)
                yield chunk
        except Exception as error:  # urllib3 errors carry the signed URL: name it without
            raise Echo360DownloadError(
                f"Download of {self.safe_url} broke off after {self.bytes_read} bytes: {type(error).__name__}"
            ) from None
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise Echo360DownloadError(
                f"Download of {self.safe_url} ended after {self.bytes_read} of {self.content_length} bytes."
            )


# -- helpers shared by the sync and async paths --------------------------------------------------


def _token_form(settings: ConnectionSettings) -> dict[str, str]:
    # In the form body, never in the query string: query strings end up in access logs.
    return {
        "grant_type": "client_credentials",
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
    }


def _store_token(settings: ConnectionSettings, answer: _Answer) -> str:
    if answer.status in (400, 401, 403):
        message = _api_message(answer).replace(settings.client_secret, "***")
        raise Echo360AuthError(
            f"Echo360 refused the client credentials of client id {settings.client_id!r} at "
            f"{settings.base_url} (HTTP {answer.status}: {message}). "
            "Check the connection's login (client id) and password (client secret)."
        )
    if answer.status == 429 or answer.status >= 500:
        raise _RetryableResponse(answer.status, "token endpoint", _retry_after(answer.headers))
    if answer.status != 200:
        raise Echo360ApiError(answer.status, f"token endpoint: {_api_message(answer)}")
    data = answer.json()
    token = str(data["access_token"])
    mask_secret(token)
    if data.get("refresh_token"):
        mask_secret(str(data["refresh_token"]))
    lifetime = float(data.get("expires_in") or 3600)
    with _SHARED.lock:
        _SHARED.tokens[settings.key] = _Token(token, time.monotonic() + lifetime, lifetime)
    return token


def _interpret(answer: _Answer, what: str, settings: ConnectionSettings) -> Any:
    if 200 <= answer.status < 300:
        return answer.json()
    message = _api_message(answer)
    if answer.status == 401:
        raise Echo360AuthError(
            f"{what}: Echo360 refused a fresh token for client id {settings.client_id!r}: {message}"
        )
    if _is_in_flight_refusal(answer.status, message):
        raise Echo360InFlightLimitError(f"{what}: {message}")
    if answer.status == 429 or answer.status >= 500:
        raise _RetryableResponse(answer.status, f"{what}: {message}", _retry_after(answer.headers))
    if answer.status == 404 and what.startswith("GET /request"):
        raise Echo360RequestNotFoundError(404, f"{what}: {message}")
    raise Echo360ApiError(answer.status, f"{what}: {message}")


def _wait_for_retry(state: tenacity.RetryCallState, *, initial: float) -> float:
    """``Retry-After`` when the API gave one, else exponential backoff with full jitter on top."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, _RetryableResponse) and error.retry_after is not None:
        return min(error.retry_after, 300.0) + random.uniform(0, initial / 2)
    return min(60.0, initial * 2.0 ** (state.attempt_number - 1)) + random.uniform(0, initial)


def _stop_retrying(state: tenacity.RetryCallState, *, attempts: int) -> bool:
    """After ``attempts`` tries; but a 429 is retried until the API's one-minute window has passed.

    The 120 calls a minute are counted per institution, across every process that calls: many
    workers and triggerers together can exceed them however well each process paces itself.
    """
    if state.attempt_number < attempts:
        return False
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, _RetryableResponse) and error.http_status == 429:
        return (state.seconds_since_start or 0.0) >= RATE_WINDOW_SECONDS
    return True


def _log_retry(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0
    log.warning(
        "Echo360 call failed (%s); attempt %d, retrying in %.1fs",
        _describe(error),
        state.attempt_number,
        wait,
    )


def _give_up(state: tenacity.RetryCallState) -> Any:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, (_RetryableResponse, *_TRANSPORT_ERRORS)):
        status = error.http_status if isinstance(error, _RetryableResponse) else None
        raise Echo360TransientError(
            f"Gave up after {state.attempt_number} attempts: {_describe(error)}", http_status=status
        ) from None
    if error is not None:
        raise error
    return state.outcome.result() if state.outcome else None


def _describe(error: BaseException | None) -> str:
    if isinstance(error, _RetryableResponse):
        return str(error)
    return type(error).__name__ if error else "unknown error"  # transport errors may quote URLs


def _report_list(data: Any) -> list[dict[str, Any]]:
    items = data.get("reports", []) if isinstance(data, Mapping) else data
    return [dict(item) for item in items or [] if isinstance(item, Mapping)]


def _request_list(data: Any) -> list[ReportRequest]:
    items = data.get("requests", []) if isinstance(data, Mapping) else data
    return [ReportRequest.from_api(item) for item in items or [] if isinstance(item, Mapping)]


def in_flight(requests: Iterable[ReportRequest]) -> int:
    """How many of these requests are ``Pending``: what counts against the API's cap of 3."""
    return sum(1 for request in requests if request.is_pending)


def reusable_request(
    requests_now: Iterable[ReportRequest],
    report_name: str,
    parameters: Mapping[str, str],
    *,
    compression: bool = True,
    max_age: dt.timedelta = REUSABLE_AGE,
    now: dt.datetime | None = None,
) -> ReportRequest | None:
    """The newest request for the same report and parameters that is still worth adopting.

    ``Pending`` requests qualify, and ``Available`` ones younger than ``max_age`` whose assets match
    ``compression``. The listing does not show the delimiter, so it cannot be compared.
    """
    now = now or dt.datetime.now(dt.UTC)

    def fits(request: ReportRequest) -> bool:
        if request.report_name != report_name or dict(request.parameters) != dict(parameters):
            return False
        if request.is_pending:
            return True
        recent = request.created is None or now - request.created < min(max_age, REUSABLE_AGE)
        gzipped = all(name.endswith(".gz") == compression for name in request.assets)
        return request.status == AVAILABLE and recent and gzipped

    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return max(filter(fits, requests_now), key=lambda r: r.created or epoch, default=None)


def check_request_id(request_id: Any) -> None:
    if not isinstance(request_id, str) or not request_id.strip() or "/" in request_id:
        raise Echo360ValidationError(
            "request_id", request_id, "the id of a submitted request, as returned by submit"
        )
