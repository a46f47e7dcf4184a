"""The transport under :class:`~airflow_provider_echo360.hooks.echo360.Echo360Hook`: connection settings,
OAuth2 tokens, the client-side rate limit, retries, and what an answer means.

Sync (workers) and async (triggers) share every rule here: the token flow is one ``httpx.Auth``
generator that httpx drives either way, the retry policy is one pair of functions that tenacity
drives either way, and one function reads every answer. Only the sleeping differs.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import ipaddress
import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import tenacity

from airflow_provider_echo360.exceptions import (
    Echo360ApiError,
    Echo360AuthError,
    Echo360Error,
    Echo360RequestNotFoundError,
    Echo360SubmissionRefusedError,
    Echo360TransientError,
    Echo360ValidationError,
)
from airflow_provider_echo360.hooks.masking import mask

API_PREFIX = "/public/api/v1/reporting"
TOKEN_PATH = "/oauth2/access_token"
REGION_URLS = {
    "us": "https://echo360.org",
    "uk": "https://echo360.org.uk",
    "au": "https://echo360.org.au",
    "ca": "https://echo360.ca",
}
#: The ways a token request may carry the client credentials; the page does not say which the API reads.
TOKEN_WAYS = ("form", "basic", "query")
#: The API counts its rate limit over a rolling minute; a 429 is worth retrying for at least that long.
RATE_WINDOW_SECONDS = 65.0
#: How long the API may stay unreachable before a task gives up: outages of minutes are ridden out.
DEFAULT_OUTAGE_BUDGET = 1800.0
#: Transport failures worth another attempt (connect/read errors, timeouts, resets).
TRANSPORT_ERRORS = (httpx.TransportError,)

log = logging.getLogger(__name__)


class _NoQueryStrings(logging.Filter):
    """httpx logs every URL it requests at INFO: keep the path, drop the query (signatures, secrets)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                httpx.URL(str(arg)).copy_with(query=None) if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_NoQueryStrings())


# -- connection settings ---------------------------------------------------------------------------


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
    :param allow_http_downloads: fetch signed asset URLs over plain ``http`` too (off: ``https``
        only, loopback hosts aside). The vendor's own example URL is ``http``.
    :param outage_budget: how long the API may stay unreachable, once the retries are spent, before
        a task gives up (seconds; see :mod:`airflow_provider_echo360.outages`).
    """

    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    calls_per_minute: int = 120
    timeout: float = 30.0
    max_retries: int = 6
    backoff_seconds: float = 1.0
    allow_http_downloads: bool = False
    outage_budget: float = DEFAULT_OUTAGE_BUDGET

    @classmethod
    def from_connection(cls, conn: Any) -> ConnectionSettings:
        extra = conn.extra_dejson or {}
        client_id, client_secret = (conn.login or "").strip(), conn.password or ""
        if not client_id:
            raise Echo360ValidationError("login", conn.login, "the Echo360 API client id")
        if not client_secret:
            raise Echo360ValidationError("password", "", "the Echo360 API client secret (not shown)")
        mask(client_secret)
        return cls(
            base_url=base_url(
                conn.host or _extra(extra, "base_url"), conn.schema, conn.port, _extra(extra, "region")
            ),
            client_id=client_id,
            client_secret=client_secret,
            calls_per_minute=_number(extra, "calls_per_minute", int, 120, minimum=0),
            timeout=_number(extra, "timeout", float, 30.0, minimum=0.1),
            max_retries=_number(extra, "max_retries", int, 6, minimum=0),
            backoff_seconds=_number(extra, "backoff_seconds", float, 1.0, minimum=0.0),
            allow_http_downloads=_flag(extra, "allow_http_downloads"),
            outage_budget=_number(extra, "outage_budget", float, DEFAULT_OUTAGE_BUDGET, minimum=0.0),
        )

    @property
    def institution(self) -> tuple[str, str]:
        """The API's rate limit is per institution client: one limiter per (API, client id)."""
        return self.base_url, self.client_id

    @property
    def token_key(self) -> tuple[str, str, str]:
        """Tokens are cached per credentials (with a digest of the secret: a wrong one borrows no token)."""
        return self.base_url, self.client_id, hashlib.sha256(self.client_secret.encode()).hexdigest()[:16]

    def api_url(self, path: str) -> str:
        return path if "://" in path else f"{self.base_url}{API_PREFIX}{path}"

    def quick(self) -> ConnectionSettings:
        """These settings for a connection test: a short timeout and a single retry."""
        return dataclasses.replace(self, timeout=min(self.timeout, 5.0), max_retries=1, backoff_seconds=0.5)


def _extra(extra: Mapping[str, Any], name: str) -> Any:
    value = extra.get(name)
    return extra.get(f"extra__echo360__{name}") if value in (None, "") else value


def _number(extra: Mapping[str, Any], name: str, kind: type, default: Any, *, minimum: float) -> Any:
    """An extra as ``kind``; ``null`` or empty takes the default, anything else wrong names the field."""
    value = _extra(extra, name)
    if value in (None, ""):
        return default
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < minimum:
        allowed = f"{'an integer' if kind is int else 'a number'} >= {minimum:g}, or null for {default}"
        raise Echo360ValidationError(f"extra.{name}", value, allowed)
    return number


def _flag(extra: Mapping[str, Any], name: str) -> bool:
    """A yes/no extra: ``true``/``false`` as JSON or text; null or empty is no."""
    value = _extra(extra, name)
    if value in (None, "") or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise Echo360ValidationError(f"extra.{name}", value, "true or false")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url(host: str | None, schema: str | None, port: int | None, region: str | None) -> str:
    """The API's base URL from a connection: its host (a URL or a host name) or else its region.

    A host without a scheme takes the connection's schema (``http``/``https``) when given, else
    ``http`` for a loopback host (a sandbox) and ``https`` for any other.
    """
    if not host:
        region_key = (region or "us").strip().lower()
        if region_key not in REGION_URLS:
            raise Echo360ValidationError(
                "region", region, f"one of {sorted(REGION_URLS)}, or a base URL as host"
            )
        return REGION_URLS[region_key]
    text = host.strip().rstrip("/")
    if "://" not in text:
        hostname = urlsplit(f"//{text}").hostname or ""
        scheme = schema if schema in ("http", "https") else "http" if is_loopback(hostname) else "https"
        text = f"{scheme}://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Echo360ValidationError("host", host, "an https:// base URL such as https://echo360.org")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise Echo360ValidationError(
            "host", host, "https:// for any host other than loopback (http:// only for 127.0.0.1/localhost)"
        )
    netloc = parts.netloc if parts.port or not port else f"{parts.netloc}:{port}"
    path = parts.path.removesuffix(API_PREFIX)
    return urlunsplit((parts.scheme, netloc, path.rstrip("/"), "", ""))


# -- what this process has learned, shared by every hook and trigger in it --------------------------


@dataclass
class _Token:
    value: str
    expires_at: float  # time.monotonic()
    lifetime: float

    def is_fresh(self) -> bool:
        # Renew a little before expiry: a minute for the usual hour, less for short-lived tokens.
        return time.monotonic() < self.expires_at - min(60.0, self.lifetime / 10)


class RateLimiter:
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


class ProcessMemory:
    """Tokens, rate limiters and the API's ways learned per base URL; one per process, locked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._limiters: dict[tuple[str, str], RateLimiter] = {}
        self._facts: dict[tuple[str, str], Any] = {}

    def token(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
        return token.value if token and token.is_fresh() else None

    def keep_token(self, key: tuple[str, str, str], value: str, lifetime: float) -> None:
        with self._lock:
            self._tokens[key] = _Token(value, time.monotonic() + lifetime, lifetime)

    def drop_token(self, key: tuple[str, str, str], value: str) -> None:
        with self._lock:
            if (token := self._tokens.get(key)) is not None and token.value == value:
                del self._tokens[key]

    def limiter(self, settings: ConnectionSettings) -> RateLimiter:
        with self._lock:
            return self._limiters.setdefault(settings.institution, RateLimiter(settings.calls_per_minute))

    def recall(self, base: str, fact: str, default: Any = None) -> Any:
        with self._lock:
            return self._facts.get((base, fact), default)

    def learn(self, base: str, fact: str, value: Any) -> None:
        with self._lock:
            self._facts[(base, fact)] = value

    def forget_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def forget(self) -> None:
        """Forget everything: tokens, limiters, the API's ways (tests)."""
        with self._lock:
            self._tokens.clear()
            self._limiters.clear()
            self._facts.clear()


MEMORY = ProcessMemory()


# -- OAuth2 client credentials, as one flow for both sync and async clients --------------------------


class TokenAuth(httpx.Auth):
    """Bearer tokens from ``POST /oauth2/access_token``, cached per credentials, renewed once on a 401.

    The credentials go the way that last worked for this base URL, else form body, HTTP Basic and
    query string in turn (the page does not say which the API reads). A fresh token that the API
    still refuses as a header is sent once more as an ``access_token`` parameter, as a public client
    of the real API does, and that way is remembered.

    :param settings: the connection's settings.
    """

    requires_response_body = True

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        base, key = self.settings.base_url, self.settings.token_key
        token = MEMORY.token(key) or (yield from self._fetch_token())
        as_param = bool(MEMORY.recall(base, "token_as_param"))
        response = yield _authorized(request, token, as_param)
        if response.status_code != 401:
            return
        MEMORY.drop_token(key, token)  # revoked or expired early: renew once
        token = yield from self._fetch_token()
        response = yield _authorized(request, token, as_param)
        if response.status_code == 401 and not as_param:
            response = yield _authorized(request, token, as_param=True)
            if response.status_code != 401:
                log.info("Echo360 at %s takes the access token as a parameter: sending it so.", base)
                MEMORY.learn(base, "token_as_param", True)

    def _fetch_token(self) -> Generator[httpx.Request, httpx.Response, str]:
        settings = self.settings
        learned = MEMORY.recall(settings.base_url, "token_way")
        ways = [learned] + [way for way in TOKEN_WAYS if way != learned] if learned else list(TOKEN_WAYS)
        refusal: httpx.Response | None = None
        for way in ways:
            response = yield token_request(settings, way)
            if response.status_code in (400, 401, 403):
                refusal = response
                continue
            token = _read_token(settings, response)
            if way != learned:
                MEMORY.learn(settings.base_url, "token_way", way)
            return token
        assert refusal is not None
        message = api_message(refusal).replace(settings.client_secret, "***")
        raise Echo360AuthError(
            f"Echo360 refused the client credentials of client id {settings.client_id!r} at "
            f"{settings.base_url} (HTTP {refusal.status_code}: {message}), sent as a form, as HTTP Basic "
            "and in the query string. Check the connection's login (client id) and password (client secret)."
        )


def token_request(settings: ConnectionSettings, way: str) -> httpx.Request:
    """A token request carrying the credentials one ``way``: ``form``, ``basic`` or ``query``."""
    url = f"{settings.base_url}{TOKEN_PATH}"
    grant = {"grant_type": "client_credentials"}
    credentials = {"client_id": settings.client_id, "client_secret": settings.client_secret}
    if way == "query":  # as a public client of the real API does; the masker hides the secret in logs
        return httpx.Request("POST", url, params={**grant, **credentials})
    if way == "basic":
        pair = f"{quote(settings.client_id, safe='')}:{quote(settings.client_secret, safe='')}"
        header = "Basic " + base64.b64encode(pair.encode()).decode()
        return httpx.Request("POST", url, data=grant, headers={"Authorization": header})
    return httpx.Request("POST", url, data={**grant, **credentials})


def _read_token(settings: ConnectionSettings, response: httpx.Response) -> str:
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableAnswer(response.status_code, "token endpoint", retry_after(response.headers))
    if response.status_code != 200:
        raise Echo360ApiError(response.status_code, f"token endpoint: {api_message(response)}")
    data = response.json()
    token = str(data["access_token"])
    mask(token)
    if data.get("refresh_token"):
        mask(str(data["refresh_token"]))
    MEMORY.keep_token(settings.token_key, token, float(data.get("expires_in") or 3600))
    return token


def _authorized(request: httpx.Request, token: str, as_param: bool) -> httpx.Request:
    request.headers["Authorization"] = f"Bearer {token}"
    if not as_param:
        return request
    url = request.url.copy_merge_params({"access_token": token})
    content = request.content
    if content and "json" in request.headers.get("content-type", ""):
        content = json.dumps({**json.loads(content), "access_token": token}).encode()
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    return httpx.Request(request.method, url, headers=headers, content=content)


# -- answers ------------------------------------------------------------------------------------------


class RetryableAnswer(Echo360Error):
    """A 5xx or 429 answer: worth another attempt, after ``retry_after`` seconds when the API said so."""

    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        super().__init__(f"Echo360 API answered {status}: {message}")
        self.http_status = status
        self.retry_after = retry_after


def api_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or f"HTTP {response.status_code}"
    if isinstance(body, Mapping):
        for key in ("message", "error_description", "error", "detail"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:300]


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def json_of(response: httpx.Response, what: str) -> Any:
    """The JSON body of a successful answer. A body that is none (a proxy's HTML page with a 200) is
    taken for a transient failure, named by its content type and first bytes."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        content_type = response.headers.get("Content-Type", "no Content-Type")
        head = " ".join(response.text[:80].split())
        message = f"{what}: the answer is not JSON ({content_type}): {head!r}"
        raise RetryableAnswer(response.status_code, message, None) from None


def read_answer(response: httpx.Response, what: str, settings: ConnectionSettings) -> Any:
    """The JSON of a successful answer; otherwise the error that says what the answer means."""
    status = response.status_code
    if 200 <= status < 300:
        return json_of(response, what)
    message = api_message(response)
    if status == 401:
        raise Echo360AuthError(
            f"{what}: Echo360 refused a fresh token for client id {settings.client_id!r}: {message}"
        )
    if status == 429 or status >= 500:
        raise RetryableAnswer(status, f"{what}: {message}", retry_after(response.headers))
    if status == 404 and what.startswith("GET /request"):
        raise Echo360RequestNotFoundError(404, f"{what}: {message}")
    if what.startswith("POST /requests/") and status != 404:
        raise Echo360SubmissionRefusedError(status, message)
    raise Echo360ApiError(status, f"{what}: {message}")


# -- retries, one policy for both sync and async --------------------------------------------------


def is_transient(error: BaseException) -> bool:
    return isinstance(error, (RetryableAnswer, *TRANSPORT_ERRORS))


def retrying(settings: ConnectionSettings, *, is_async: bool = False, what: str = "") -> Any:
    """Tenacity's ``Retrying`` (or ``AsyncRetrying``) with the hook's policy for ``settings``."""
    retry_class = tenacity.AsyncRetrying if is_async else tenacity.Retrying
    return retry_class(
        retry=tenacity.retry_if_exception(is_transient),
        wait=partial(_wait_for_retry, initial=settings.backoff_seconds),
        stop=partial(_stop_retrying, attempts=settings.max_retries + 1),
        before_sleep=_log_retry,
        retry_error_callback=partial(_give_up, what=what),
    )


def _wait_for_retry(state: tenacity.RetryCallState, *, initial: float) -> float:
    """``Retry-After`` when the API gave one, else exponential backoff with full jitter on top."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RetryableAnswer) and error.retry_after is not None:
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
    if isinstance(error, RetryableAnswer) and error.http_status == 429:
        return (state.seconds_since_start or 0.0) >= RATE_WINDOW_SECONDS
    return True


def _log_retry(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0
    log.warning(
        "Echo360 call failed (%s); attempt %d, retrying in %.1fs", describe(error), state.attempt_number, wait
    )


def _give_up(state: tenacity.RetryCallState, *, what: str) -> Any:
    error = state.outcome.exception() if state.outcome else None
    if is_transient(error):  # type: ignore[arg-type]
        status = error.http_status if isinstance(error, RetryableAnswer) else None
        where = f" at {what}" if what else ""
        raise Echo360TransientError(
            f"Gave up after {state.attempt_number} attempts{where}: {describe(error)}", http_status=status
        ) from None
    if error is not None:
        raise error
    return state.outcome.result() if state.outcome else None


_QUERY = re.compile(r"\?\S*")


def describe(error: BaseException | None) -> str:
    """An error's type and message, with any query string (signatures, credentials) cut out."""
    if error is None:
        return "unknown error"
    if isinstance(error, RetryableAnswer):
        return str(error)
    text = _QUERY.sub("?…", str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# -- clients ------------------------------------------------------------------------------------------


def sync_client(settings: ConnectionSettings) -> httpx.Client:
    """An HTTP client for the API: token auth, the rate limit before every request, no redirects."""
    limiter = MEMORY.limiter(settings)

    def throttle(_: httpx.Request) -> None:
        if delay := limiter.reserve():
            time.sleep(delay)

    return httpx.Client(
        base_url=settings.api_url(""),
        auth=TokenAuth(settings),
        timeout=settings.timeout,
        event_hooks={"request": [throttle]},
    )


def async_client(settings: ConnectionSettings) -> httpx.AsyncClient:
    """:func:`sync_client` for triggers."""
    limiter = MEMORY.limiter(settings)

    async def throttle(_: httpx.Request) -> None:
        if delay := limiter.reserve():
            await asyncio.sleep(delay)

    return httpx.AsyncClient(
        base_url=settings.api_url(""),
        auth=TokenAuth(settings),
        timeout=settings.timeout,
        event_hooks={"request": [throttle]},
    )
