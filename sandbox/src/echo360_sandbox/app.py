"""The sandbox's HTTP application: the Echo360 Reporting API, signed downloads and control endpoints.

Layers, outermost first:

- :class:`SandboxApp` hands the server's transport to the layers below (a dropped connection
  and a truncated download need to close the socket themselves);
- :class:`GateMiddleware` counts calls, answers 503 during an outage (:mod:`echo360_sandbox.outage`),
  injects faults *before* any handler runs (so a faulted submission creates nothing, the opt-in
  ``html`` proxy page included; the opt-in ``lost-response`` alone runs the handler and then drops the
  connection) and enforces the rate limit;
- the routes: OAuth2 token, the reporting API (bearer auth), signed downloads (S3-style), and
  ``/_sandbox`` control endpoints (no auth, no faults, not rate limited).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import functools
import hashlib
import hmac
import json
import math
import queue
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode
from xml.sax.saxutils import escape

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from echo360_sandbox.catalog import Report, display_name, find_report, served_names
from echo360_sandbox.config import HTML_FAULT_PAGE, ConfigError, SandboxConfig
from echo360_sandbox.data import AssetFile, AssetSpec, AssetStore
from echo360_sandbox.outage import Outage
from echo360_sandbox.state import (
    InFlightLimitReached,
    ReportRequest,
    SandboxState,
    iso_z,
)
from echo360_sandbox.validation import (
    DELIMITERS,
    SubmissionRefused,
    check_output,
    check_parameters,
    parse_body,
)

API_PREFIX = "/public/api/v1/reporting"
TOKEN_PATH = "/oauth2/access_token"
ASSETS_PREFIX = "/_assets"
CONTROL_PREFIX = "/_sandbox"
TRANSPORT_KEY = "echo360.sandbox.transport"
TRUNCATE_KEY = "echo360.sandbox.truncate"
#: Set by the submission handler on an answer to lose (``lost_submission_answers``).
LOSE_ANSWER_KEY = "echo360.sandbox.lose_answer"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 256 * 1024


class ApiError(Exception):
    """An error answer of the API, rendered as JSON ``{"error": ..., "message": ..., ...}``.

    :param status: the HTTP status.
    :param error: a short machine-readable code.
    :param message: what went wrong, for humans.
    :param headers: extra response headers.
    :param extra: more JSON fields (``field`` for a validation error).
    """

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> JSONResponse:
        body = {"error": self.error, "message": self.message, **self.extra}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class ConnectionDropped(ConnectionResetError):
    """Raised instead of closing the socket when the app runs without a real server (in-process)."""


def s3_error(status: int, code: str, message: str, resource: str = "") -> Response:
    """An error as S3 answers a presigned URL: XML with ``Code`` and ``Message``."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def unavailable(target: str, path: str, cause: str) -> Response:
    """A 503 as the service answers it: S3's XML on a signed download, the API's JSON elsewhere."""
    message = f"Service unavailable ({cause})"
    if target == "download":
        return s3_error(503, "ServiceUnavailable", message, path)
    return ApiError(503, "service_unavailable", message).response()


def cased_status(status: str, status_case: str) -> str:
    """A status as the ``status_case`` dialect spells it: as the page, ``upper`` or ``lower``."""
    if status_case == "upper":
        return status.upper()
    if status_case == "lower":
        return status.lower()
    return status


def echoed_parameters(parameters: dict[str, str], echo_dates: str) -> dict[str, str]:
    """A request's parameters as the ``echo_dates`` dialect echoes them: ``start``/``end`` as
    submitted (``date``) or as midnight UTC timestamps (``timestamp``: ``2026-01-01T00:00:00.000Z``)."""
    if echo_dates != "timestamp":
        return dict(parameters)
    return {
        name: f"{value}T00:00:00.000Z" if name in ("start", "end") else value
        for name, value in parameters.items()
    }


def sign(key: bytes, path: str, expires: int) -> str:
    """The signature of a download link: HMAC-SHA256 over the path and the expiry time."""
    return hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


# --- connection-level faults ---------------------------------------------------------------------


async def close_connection(scope: Scope, receive: Receive, *, abort: bool) -> None:
    """Close the client's TCP connection without (the rest of) a response.

    ``abort`` discards what is still buffered (a drop); otherwise buffered bytes go out first (a
    truncated download). Then wait for the server to notice, so that it does not answer a 500.
    """
    transport = scope.get(TRANSPORT_KEY)
    if transport is None:
        raise ConnectionDropped("sandbox fault: connection closed without a complete response")
    if abort:
        transport.abort()
    else:
        transport.close()
    with anyio.move_on_after(5):
        while (await receive())["type"] != "http.disconnect":
            pass


class SandboxApp(FastAPI):
    """FastAPI that passes the server's transport on in the scope (uvicorn's ``send`` is bound to it)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                scope[TRANSPORT_KEY] = transport
        await super().__call__(scope, receive, send)


def classify(path: str) -> str | None:
    """The fault/rate-limit target of a path: ``token``, ``api``, ``download`` or ``None``."""
    if path == TOKEN_PATH:
        return "token"
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        return "api"
    if path.startswith(ASSETS_PREFIX + "/"):
        return "download"
    return None


def endpoint_key(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """``METHOD /templated/path`` of the route a call matches, without the API prefix."""
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            path = str(getattr(route, "path", scope["path"]))
            return f"{scope['method']} {path.removeprefix(API_PREFIX)}"
    return f"{scope['method']} (no route)"


class GateMiddleware:
    """Counts calls, answers 503 during an outage, injects faults and enforces the rate limit, before
    any handler runs.

    :param app: the next ASGI layer.
    :param state: the sandbox state.
    :param routes: gives the app's routes, to name the endpoint a call is for.
    """

    def __init__(self, app: ASGIApp, state: SandboxState, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self.app = app
        self.state = state
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = classify(scope["path"]) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        self.state.count_call(endpoint_key(scope, self.routes()))
        if self.state.outage_answers(target, time.time()):
            # Before the fault draw and the rate limit: a service that is down spends neither.
            await unavailable(target, scope["path"], "sandbox outage")(scope, receive, send)
            return
        fault = self.state.draw_fault(target)
        if fault == "slow":
            await asyncio.sleep(self.state.config.slow_seconds)
        elif fault not in (None, "lost-response"):
            if await self._inject(str(fault), target, scope, receive, send):
                return
        if target != "download":
            retry_after = self.state.take_rate_slot(time.monotonic())
            if retry_after is not None:
                limit = self.state.config.rate_limit
                error = ApiError(
                    429,
                    "rate_limited",
                    f"Rate limit exceeded: at most {limit} API calls per minute; retry after {retry_after} s",
                    headers={"Retry-After": str(retry_after)} if self.state.config.retry_after else None,
                )
                await error.response()(scope, receive, send)
                return
        if fault == "lost-response":
            await self._lose_response(scope, receive)
            return
        await self.app(scope, receive, self._unless_lost(scope, send))
        if scope.get(LOSE_ANSWER_KEY):
            await close_connection(scope, receive, abort=True)

    @staticmethod
    def _unless_lost(scope: Scope, send: Send) -> Send:
        """``send``, except for an answer the handler marked as lost (``lost_submission_answers``)."""

        async def send_unless_lost(message: Message) -> None:
            if not scope.get(LOSE_ANSWER_KEY):
                await send(message)

        return send_unless_lost

    async def _lose_response(self, scope: Scope, receive: Receive) -> None:
        """Run the handler (a submission is recorded), then drop the connection instead of answering."""

        async def discard(_: Message) -> None:
            pass

        await self.app(scope, receive, discard)
        await close_connection(scope, receive, abort=True)

    async def _inject(self, fault: str, target: str, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer with ``fault``; ``False`` when the call must go on (a truncation happens later)."""
        response: Response
        if fault == "drop":
            await close_connection(scope, receive, abort=True)
            return True
        if fault == "truncate":
            scope[TRUNCATE_KEY] = True
            return False
        if fault == "html":
            # A proxy or load balancer answering for the API: 200 OK, and not the API's JSON.
            response = HTMLResponse(HTML_FAULT_PAGE, status_code=200)
        elif fault == "expired-url":
            response = s3_error(403, "AccessDenied", "Request has expired", scope["path"])
        elif fault == "429":
            message = "Too many requests (sandbox fault)"
            response = (
                s3_error(429, "SlowDown", message, scope["path"])
                if target == "download"
                else ApiError(429, "too_many_requests", message).response()
            )
            if self.state.config.retry_after:
                response.headers["Retry-After"] = "1"
        else:
            response = unavailable(target, scope["path"], "sandbox fault")
        await response(scope, receive, send)
        return True


# --- downloads ------------------------------------------------------------------------------


class AssetResponse(Response):
    """Streams (a byte range of) an asset file with an exact ``Content-Length``, never all in memory.

    :param asset: the file.
    :param start: first byte to send.
    :param length: how many bytes to send.
    :param status_code: 200, or 206 for a range.
    :param headers: response headers (``Content-Length`` is added).
    :param truncate: stop about halfway and close the connection (the ``truncate`` fault).
    :param on_sent: called with the number of bytes sent once the body went out whole.
    """

    def __init__(
        self,
        asset: AssetFile,
        start: int,
        length: int,
        status_code: int,
        headers: dict[str, str],
        truncate: bool = False,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, headers={**headers, "content-length": str(length)})
        self.asset, self.start, self.length = asset, start, length
        self.truncate = truncate
        self.on_sent = on_sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        remaining = self.length // 2 if self.truncate else self.length
        with self.asset.path.open("rb") as f:
            f.seek(self.start)
            while remaining > 0:
                chunk = await anyio.to_thread.run_sync(f.read, min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if self.truncate:
            await close_connection(scope, receive, abort=False)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.on_sent is not None:
            self.on_sent(self.length)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, length)`` of a single ``bytes=`` range, ``None`` for the whole file.

    :raises ValueError: for a range that cannot be satisfied.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None  # S3 ignores a range it cannot parse (and multiple ranges)
    first, last = match.group(1), match.group(2)
    if first == "":
        length = min(int(last), size)
        if length == 0:
            raise ValueError(header)
        return size - length, length
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError(header)
    return start, end - start + 1


# --- the application ------------------------------------------------------------------------


@functools.cache
def _pregenerator() -> queue.Queue[tuple[AssetStore, AssetSpec]]:
    """The queue of one background thread per process that builds assets ahead of their download."""
    jobs: queue.Queue[tuple[AssetStore, AssetSpec]] = queue.Queue()

    def work() -> None:
        while True:
            store, spec = jobs.get()
            try:
                store.get(spec)
            except Exception:  # noqa: BLE001 - the download will try again and report it
                pass

    # A daemon thread: an interrupted generation must not hold up the server's exit.
    threading.Thread(target=work, name="sandbox-assets", daemon=True).start()
    return jobs


class Sandbox:
    """The app's collaborators: settings and state, asset store, and the pre-generation worker.

    :param config: the settings.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.state = SandboxState(config)
        if config.data_dir:
            data_dir = Path(config.data_dir)
        else:
            data_dir = Path(tempfile.mkdtemp(prefix="echo360-sandbox-"))
            weakref.finalize(self, shutil.rmtree, data_dir, True)
        self.store = AssetStore(data_dir)

    @property
    def config(self) -> SandboxConfig:
        return self.state.config

    def pregenerate(self, request: ReportRequest) -> None:
        """Build an ``Available`` request's assets while it is ``Pending``, as the real service does."""
        if request.outcome == "Available" and self.config.pregenerate:
            for _, spec in request.asset_specs():
                _pregenerator().put((self.store, spec))

    def request_json(self, request: ReportRequest, now: float, base_url: str | None = None) -> dict[str, Any]:
        """A request as the API shows it; ``base_url`` adds ``signedAssets`` (the detail view)."""
        cfg = self.config
        status = self.state.status_shown(request, now)
        shown_name = display_name(request.report_name, cfg.qanda_name)
        body: dict[str, Any] = {
            "requestId": request.request_id,
            "status": cased_status(status, cfg.status_case),
            "reportName": shown_name.upper() if cfg.report_name_case == "upper" else shown_name,
            "parameters": echoed_parameters(request.parameters, cfg.echo_dates),
            "created": iso_z(request.created),
        }
        if cfg.show_output:
            body["output"] = {"compression": request.compression, "delimiter": request.delimiter}
        if status == "Available" and request.empty_shape != "no-key":
            names = [name for name, _ in request.asset_specs()]
            if base_url is None:
                body["assets"] = names
            else:
                body["signedAssets"] = [self.signed_url(base_url, request.request_id, n, now) for n in names]
        return body

    def signed_url(self, base_url: str, request_id: str, filename: str, now: float) -> str:
        path = f"{ASSETS_PREFIX}/{request_id}/{filename}"
        expires = int(now + self.config.url_seconds)
        signature = sign(self.state.signing_key, path, expires)
        with self.state.lock:
            self.state.signatures.add(signature)
        base = (self.config.public_url or base_url).rstrip("/")
        return f"{base}{path}?Expires={expires}&Signature={signature}"

    def asset(self, request: ReportRequest, filename: str) -> AssetSpec | None:
        return dict(request.asset_specs()).get(filename)

    def served_report(self, name: str) -> Report | None:
        """The report ``POST /requests/{name}`` submits, if this sandbox serves one under ``name``."""
        return find_report(name) if name in served_names(self.config.qanda_name) else None

    def visible(self, request: ReportRequest, client_id: str) -> bool:
        """Whether ``client_id`` may see ``request`` (``requests_scope``)."""
        return self.config.requests_scope == "institution" or request.client_id == client_id


def create_app(config: SandboxConfig) -> FastAPI:
    """Build the sandbox application for ``config`` (validated here).

    The app keeps its :class:`Sandbox` in ``app.state.sandbox``.
    """
    sandbox = Sandbox(config.validate())
    app = SandboxApp(
        title="Echo360 Reporting API sandbox",
        description="A local emulator of the Echo360 Reporting API, with fault injection and statistics.",
        version="1",
    )
    app.state.sandbox = sandbox
    routers = [
        _token_router(sandbox),
        _api_router(sandbox),
        _download_router(sandbox),
        _control_router(sandbox),
    ]
    # The routers' own routes name the endpoints: newer FastAPI releases keep an included router as
    # one opaque entry of ``app.router.routes``, older ones copy its routes there.
    leaves = [route for router in routers for route in router.routes]
    app.add_middleware(GateMiddleware, state=sandbox.state, routes=lambda: leaves)
    _add_error_handlers(app)
    for router in routers:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def root() -> dict[str, str]:
        return {"service": "echo360-sandbox", "api": API_PREFIX, "token": TOKEN_PATH, "docs": "/docs"}

    return app


def _add_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {})).response()

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return ApiError(
            400, "invalid_request", f"Invalid {field}: {first.get('msg', 'invalid')}", field=field
        ).response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


# --- OAuth2 ---------------------------------------------------------------------------------

_TOKEN_FORM = {
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "properties": {
                    "grant_type": {"type": "string", "enum": ["client_credentials", "refresh_token"]},
                    "client_id": {"type": "string"},
                    "client_secret": {"type": "string"},
                    "refresh_token": {"type": "string"},
                },
                "required": ["grant_type"],
            }
        }
    }
}


_FORM = "application/x-www-form-urlencoded"
_CREDENTIALS = ("client_id", "client_secret")


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from ``Authorization: Basic``, if the header is there."""
    authorization = request.headers.get("authorization", "")
    if not authorization.lower().startswith("basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
    except (ValueError, binascii.Error):
        raise ApiError(400, "invalid_request", "Malformed Basic authorization header") from None
    return client_id, secret


async def _token_fields(request: Request, token_auth: str) -> dict[str, str]:
    """The token request's fields, read where the ``token_auth`` dialect reads them.

    ``any``: the query, a form or JSON body and HTTP Basic; ``form``: only an
    ``application/x-www-form-urlencoded`` body; ``query``: only the query string; ``basic``: the
    client credentials only from ``Authorization: Basic``, the other fields from the query or a form.
    Whatever is sent elsewhere is not seen at all.
    """
    query = dict(request.query_params)
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if token_auth == "query":
        return query
    form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()} if body else {}
    if token_auth == "form":
        return form if content_type == _FORM else {}
    if token_auth == "basic":
        fields = {**query, **(form if content_type == _FORM else {})}
        fields = {k: v for k, v in fields.items() if k not in _CREDENTIALS}
        basic = _basic_credentials(request)
        if basic is not None:
            fields.update(zip(_CREDENTIALS, basic, strict=True))
        return fields
    fields = query
    if body and "json" in content_type:
        try:
            parsed = json.loads(body)
        except ValueError:
            raise ApiError(400, "invalid_request", "Request body is not valid JSON") from None
        if isinstance(parsed, dict):
            fields.update({str(k): str(v) for k, v in parsed.items()})
    else:
        fields.update(form)
    basic = _basic_credentials(request)
    if basic is not None:
        fields.setdefault("client_id", basic[0])
        fields.setdefault("client_secret", basic[1])
    return fields


def _token_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(tags=["OAuth2"])

    @router.post(TOKEN_PATH, openapi_extra={"requestBody": _TOKEN_FORM})
    async def access_token(request: Request) -> dict[str, Any]:
        """OAuth2 client credentials (where the ``token_auth`` dialect reads them); also ``refresh_token``."""
        state, cfg = sandbox.state, sandbox.config
        try:
            client_id = _grant(sandbox, await _token_fields(request, cfg.token_auth))
        except ApiError:
            state.count("tokens_refused")
            raise
        access, refresh = state.issue_token(time.time(), client_id)
        if cfg.token_response == "minimal":
            return {"access_token": access}
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": math.ceil(cfg.token_seconds),
            "refresh_token": refresh,
        }

    return router


def _grant(sandbox: Sandbox, fields: dict[str, str]) -> str:
    """The API client a token request authenticates, or the :class:`ApiError` refusing it."""
    state, cfg = sandbox.state, sandbox.config
    grant = fields.get("grant_type")
    if not grant:
        raise ApiError(400, "invalid_request", "Missing grant_type (client_credentials or refresh_token)")
    if grant == "refresh_token":
        client_id = state.use_refresh_token(fields.get("refresh_token", ""))
        if client_id is None:
            raise ApiError(400, "invalid_grant", "Invalid or already used refresh token")
        return client_id
    if grant != "client_credentials":
        raise ApiError(
            400, "unsupported_grant_type", "grant_type must be client_credentials or refresh_token"
        )
    given_id, given_secret = fields.get("client_id", ""), fields.get("client_secret", "")
    ok_id = hmac.compare_digest(given_id.encode(), cfg.client_id.encode())
    ok_secret = hmac.compare_digest(given_secret.encode(), cfg.client_secret.encode())
    if not (ok_id and ok_secret):
        headers = {"WWW-Authenticate": 'Basic realm="echo360"'} if cfg.token_auth == "basic" else None
        raise ApiError(
            cfg.bad_credentials_status,
            "invalid_client",
            "Client authentication failed: missing or wrong client_id or client_secret",
            headers=headers,
        )
    return given_id


# --- the reporting API ----------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An access token from POST /oauth2/access_token")


async def _body_token(request: Request) -> str | None:
    """An ``access_token`` field of a JSON body, as the public client sends it with a submission."""
    if "json" not in request.headers.get("content-type", ""):
        return None
    try:
        payload = json.loads(await request.body() or b"null")
    except ValueError:
        return None
    token = payload.get("access_token") if isinstance(payload, dict) else None
    return token if isinstance(token, str) and token else None


def _auth_dependency(sandbox: Sandbox) -> Callable[..., Any]:
    async def require_token(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        access_token: Annotated[
            str | None,
            Query(description="The token, where the access_token_in dialect is header-or-param"),
        ] = None,
    ) -> None:
        token = credentials.credentials if credentials is not None else None
        if token is None and sandbox.config.access_token_in == "header-or-param":
            token = access_token or await _body_token(request)
        if not token:
            sandbox.state.count("refused_unauthorized")
            raise ApiError(
                401,
                "unauthorized",
                "Missing access token: send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        verdict = sandbox.state.check_token(token, time.time())
        if verdict != "valid":
            sandbox.state.count("refused_unauthorized")
            message = "Access token expired" if verdict == "expired" else "Invalid access token"
            raise ApiError(
                401, "invalid_token", message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        request.state.client_id = sandbox.state.token_client(token)

    return require_token


_SUBMIT_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "parameters": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "format": "date"},
                        "example": {"start": "2020-01-01", "end": "2020-01-02"},
                    },
                    "output": {
                        "type": "object",
                        "properties": {
                            "compression": {"type": "boolean", "default": True},
                            "delimiter": {"type": "string", "enum": list(DELIMITERS), "default": ","},
                        },
                    },
                },
            }
        }
    }
}


def _api_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(
        prefix=API_PREFIX, tags=["Reporting"], dependencies=[Depends(_auth_dependency(sandbox))]
    )

    @router.get("/reports")
    async def list_reports() -> Any:
        """The reports and the parameters each requires."""
        names = served_names(sandbox.config.qanda_name)
        reports = [report.listing(name) for name in names if (report := find_report(name)) is not None]
        return reports if sandbox.config.reports_shape == "list" else {"reports": reports}

    @router.get("/requests")
    async def list_requests(
        request: Request,
        page: Annotated[str | None, Query(description="Next page (requests_paging=link or header)")] = None,
        cursor: Annotated[str | None, Query(description="Next page (requests_paging=cursor)")] = None,
    ) -> Response:
        """The institution's requests (or the caller's: ``requests_scope``), in the ``requests_order``
        (newest first by default), maybe paged."""
        cfg, now = sandbox.config, time.time()
        scope = request.state.client_id if cfg.requests_scope == "client" else None
        if cfg.requests_page_size == 0:
            found = sandbox.state.listing(scope, cfg.requests_order)
            return JSONResponse({"requests": [sandbox.request_json(r, now) for r in found]})
        token = cursor if cfg.requests_paging == "cursor" else page
        shown, more = sandbox.state.listing_page(
            scope, cfg.requests_order, _page_key(token) if token else None, cfg.requests_page_size
        )
        next_token = _page_token(shown[-1]) if more and shown else None
        body: dict[str, Any] = {"requests": [sandbox.request_json(r, now) for r in shown]}
        if cfg.requests_paging == "cursor":
            return JSONResponse({**body, "nextCursor": next_token})
        url = None
        if next_token is not None:
            base = str(request.base_url).rstrip("/")  # where the client called (public_url is for downloads)
            url = f"{base}{API_PREFIX}/requests?{urlencode({'page': next_token})}"
        if cfg.requests_paging == "header":
            return JSONResponse(body, headers={"Link": f'<{url}>; rel="next"'} if url else None)
        return JSONResponse({**body, "next": url})

    @router.post("/requests/{reportName}", openapi_extra={"requestBody": _SUBMIT_BODY})
    async def submit(reportName: str, request: Request) -> dict[str, Any]:  # noqa: N803 - the API's name
        """Submit a report request; it starts ``Pending``."""
        report = sandbox.served_report(reportName)
        if report is None:
            raise ApiError(404, "not_found", f"Unknown report {reportName!r}; GET /reports lists the reports")
        if report.name in sandbox.config.retired_reports:
            raise ApiError(
                410, "gone", f"Report {reportName!r} has been retired; GET /reports lists the others"
            )
        try:
            parameters, compression, delimiter = _parse_submission(report, await request.body())
        except SubmissionRefused as exc:
            sandbox.state.count("refused_invalid")
            raise ApiError(400, "invalid_parameter", exc.message, field=exc.field) from None
        now = time.time()
        try:
            created = sandbox.state.submit(
                reportName, parameters, compression, delimiter, now, client_id=request.state.client_id
            )
        except InFlightLimitReached:
            cfg = sandbox.config
            raise ApiError(cfg.in_flight_status, "limit_exceeded", cfg.in_flight_message) from None
        sandbox.pregenerate(created)
        if sandbox.state.submissions_of(created.key) <= sandbox.config.lost_submission_answers:
            request.scope[LOSE_ANSWER_KEY] = True  # the middleware drops the connection instead
            sandbox.state.count("lost_answers")
        return sandbox.request_json(created, now)

    def request_detail(plural: bool) -> Callable[..., Any]:
        async def detail(requestId: str, request: Request) -> dict[str, Any]:  # noqa: N803
            if plural != (sandbox.config.request_path == "plural"):
                raise ApiError(404, "not_found", "Not Found")  # as if this deployment had no such path
            found = sandbox.state.get(requestId)
            if found is None or not sandbox.visible(found, request.state.client_id):
                raise ApiError(404, "not_found", f"Unknown request id {requestId!r}")
            return sandbox.request_json(found, time.time(), base_url=str(request.base_url))

        return detail

    router.add_api_route(
        "/request/{requestId}",
        request_detail(False),
        methods=["GET"],
        summary="One request, with signed links",
    )
    router.add_api_route(
        "/requests/{requestId}",
        request_detail(True),
        methods=["GET"],
        summary="One request (the plural path some deployments use instead)",
    )
    return router


def _page_token(last: ReportRequest) -> str:
    """An opaque page token: the request the previous page ended with (its ``created`` and id)."""
    key = [last.created, last.request_id]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _page_key(token: str) -> tuple[float, str]:
    """``(created, request_id)`` of the request a page token names; a token the sandbox did not make
    is a 400."""
    try:
        created, request_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return float(created), str(request_id)
    except (ValueError, TypeError, binascii.Error):
        raise ApiError(400, "invalid_request", "Invalid page token: pass back the one a page gave") from None


def _parse_submission(report: Report, body: bytes) -> tuple[dict[str, str], bool, str]:
    """Check a submission body against the rules; return the parameters and the output options."""
    parameters, output = parse_body(body)
    checked = check_parameters(report, parameters, dt.datetime.now(dt.UTC).date())
    compression, delimiter = check_output(output)
    return checked, compression, delimiter


# --- signed downloads -------------------------------------------------------------------------


def _download_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(tags=["Signed downloads"])

    @router.api_route(ASSETS_PREFIX + "/{requestId}/{filename}", methods=["GET", "HEAD"])
    async def download(requestId: str, filename: str, request: Request) -> Response:  # noqa: N803
        """A report asset, through the signed link of ``GET /request/{id}`` (S3-style answers)."""
        path = request.url.path
        if "authorization" in request.headers:
            return s3_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
                "string parameter or the Authorization header should be specified",
                path,
            )
        expires, signature = request.query_params.get("Expires"), request.query_params.get("Signature")
        if not expires or not signature or not expires.isdigit():
            return s3_error(
                403,
                "AccessDenied",
                "Query-string authentication requires the Signature and Expires parameters",
                path,
            )
        if not hmac.compare_digest(signature, sign(sandbox.state.signing_key, path, int(expires))):
            return s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
                path,
            )
        if int(expires) < time.time():
            return s3_error(403, "AccessDenied", "Request has expired", path)
        found = sandbox.state.get(requestId)
        spec = sandbox.asset(found, filename) if found is not None else None
        if found is None or spec is None or sandbox.state.status(found, time.time()) != "Available":
            return s3_error(404, "NoSuchKey", "The specified key does not exist.", path)
        truncate = bool(request.scope.get(TRUNCATE_KEY))
        return await _serve_asset(sandbox, spec, request, truncate=truncate, count=True)

    return router


async def _serve_asset(
    sandbox: Sandbox, spec: AssetSpec, request: Request, *, truncate: bool = False, count: bool = False
) -> Response:
    asset = await anyio.to_thread.run_sync(sandbox.store.get, spec)
    try:
        byte_range = parse_range(request.headers.get("range"), asset.size)
    except ValueError:
        response = s3_error(416, "InvalidRange", "The requested range is not satisfiable", request.url.path)
        response.headers["Content-Range"] = f"bytes */{asset.size}"
        return response
    headers = {
        "Content-Type": "application/gzip" if spec.compression else "text/csv; charset=utf-8",
        "ETag": f'"{asset.md5}"',
        "Accept-Ranges": "bytes",
    }
    start, length, status = 0, asset.size, 200
    if byte_range is not None:
        start, length = byte_range
        status = 206
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{asset.size}"

    def on_sent(sent: int) -> None:
        sandbox.state.count("downloaded_bytes", sent)

    if count and request.method == "GET":
        sandbox.state.count("downloads")
    return AssetResponse(
        asset, start, length, status, headers, truncate=truncate, on_sent=on_sent if count else None
    )


# --- control ---------------------------------------------------------------------------------


async def _json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError:
        raise ApiError(400, "invalid_request", "Request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_request", "Request body must be a JSON object")
    return payload


def _control_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(prefix=CONTROL_PREFIX, tags=["Sandbox control (no auth)"])
    state = sandbox.state

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        """What the sandbox saw since start or the last reset."""
        return state.snapshot(time.time())

    @router.get("/faults")
    async def get_faults() -> dict[str, Any]:
        return state.fault_settings()

    @router.post("/faults")
    async def set_faults(request: Request) -> dict[str, Any]:
        """Partial update: ``fault_rate``, ``faults``, ``fault_targets``, ``fault_budget``, ``failed_rate``,
        ``missing_rate``, ``slow_seconds``."""
        try:
            return state.update_faults(await _json_object(request))
        except ValueError as exc:  # ConfigError too
            raise ApiError(400, "invalid_setting", str(exc)) from None

    @router.get("/config")
    async def get_config() -> dict[str, Any]:
        return state.config.to_dict()

    @router.post("/config")
    async def set_config(request: Request) -> dict[str, Any]:
        """Partial update of the settings a running sandbox can change."""
        try:
            return state.update_config(await _json_object(request)).to_dict()
        except ConfigError as exc:
            raise ApiError(400, "invalid_setting", str(exc)) from None

    @router.get("/outage")
    async def get_outage() -> dict[str, Any]:
        """The outage scheduled or under way: its ``phase`` (``none``, ``scheduled``, ``unavailable``,
        ``refused``, ``over``), lengths and times."""
        return state.outage_info(time.time())

    @router.post("/outage")
    async def set_outage(request: Request) -> dict[str, Any]:
        """Schedule an outage, replacing any other: ``{"after_seconds": 0, "unavailable_seconds": 60,
        "refused_seconds": 60}`` (each seconds >= 0, 0 when missing). From ``after_seconds`` on, every
        API, token and download call answers 503 for ``unavailable_seconds``; then connections are
        refused for ``refused_seconds`` (this endpoint too); then the sandbox serves again, its state
        intact."""
        now = time.time()
        try:
            outage = Outage.scheduled(await _json_object(request), now)
        except ConfigError as exc:
            raise ApiError(400, "invalid_setting", str(exc)) from None
        state.schedule_outage(outage)
        return state.outage_info(now)

    @router.post("/reset")
    async def reset(request: Request) -> dict[str, Any]:
        """Forget requests, statistics and the rate window, cancel any outage; ``{"faults": true}`` /
        ``{"config": true}`` also restore the starting fault settings / all starting settings."""
        options = await _json_object(request)
        state.reset(faults=bool(options.get("faults")), config=bool(options.get("config")))
        return {"reset": True}

    @router.get("/secrets")
    async def secrets_handed_out() -> dict[str, list[str]]:
        """The client secret and every token and URL signature issued (a sandbox has nothing to hide)."""
        return state.secrets()

    @router.post("/tokens/expire")
    async def expire_tokens() -> dict[str, int]:
        """Expire every access token issued so far."""
        return {"expired": state.expire_tokens(time.time())}

    @router.post("/requests/expire")
    async def expire_requests() -> dict[str, int]:
        """Expire every ``Available`` request, as the retention does 14 days after submission."""
        return {"expired": state.expire_available(time.time())}

    def _found(request_id: str) -> ReportRequest:
        found = state.get(request_id)
        if found is None:
            raise ApiError(404, "not_found", f"Unknown request id {request_id!r}")
        return found

    @router.post("/requests")
    async def inject_request(request: Request) -> dict[str, Any]:
        """Create a request as if another API client of the institution had submitted it:
        ``{"reportName": ..., "parameters": {...}, "clientId": ..., "output": {...}}``.

        The same rules as a submission apply, except the in-flight limit: it is not checked, but the
        request counts toward it. Stats count it under ``injected``, not ``submitted``.
        """
        payload = await _json_object(request)
        name, client_id = payload.get("reportName"), payload.get("clientId")
        if not isinstance(client_id, str) or not client_id:
            raise ApiError(400, "invalid_request", "clientId (the submitting API client) is required")
        report = sandbox.served_report(name) if isinstance(name, str) else None
        if report is None:
            raise ApiError(404, "not_found", f"Unknown report {name!r}; GET /reports lists the reports")
        body = json.dumps({"parameters": payload.get("parameters"), "output": payload.get("output")})
        try:
            parameters, compression, delimiter = _parse_submission(report, body.encode())
        except SubmissionRefused as exc:
            raise ApiError(400, "invalid_parameter", exc.message, field=exc.field) from None
        now = time.time()
        created = state.submit(
            str(name), parameters, compression, delimiter, now, client_id=client_id, injected=True
        )
        sandbox.pregenerate(created)
        return {**sandbox.request_json(created, now), "clientId": created.client_id}

    @router.get("/requests/{requestId}")
    async def request_info(requestId: str) -> dict[str, Any]:  # noqa: N803
        """A request with what the API does not show: client, outcome, forced status, whether it is
        one of the history, its empty-window shape (``null``: it has rows), output options, asset names."""
        found = _found(requestId)
        return {
            **sandbox.request_json(found, time.time()),
            "clientId": found.client_id,
            "outcome": found.outcome,
            "forcedStatus": found.forced_status,
            "history": found.history,
            "emptyShape": found.empty_shape,
            "output": {"compression": found.compression, "delimiter": found.delimiter},
            "assetNames": [name for name, _ in found.asset_specs()],
        }

    @router.post("/requests/{requestId}/status")
    async def force_status(requestId: str, request: Request) -> dict[str, Any]:  # noqa: N803
        """Force a request's status: ``{"status": "Failed"}`` (or Missing, Expired, Available, Pending, in
        any case), or a status the page does not name, any other name of letters (``Cancelled``): such
        a status ends the request (it is no longer in flight)."""
        _found(requestId)
        try:
            forced = state.force_status(requestId, (await _json_object(request)).get("status"), time.time())
        except ValueError as exc:
            raise ApiError(400, "invalid_status", str(exc)) from None
        assert forced is not None
        return sandbox.request_json(forced, time.time())

    @router.get("/requests/{requestId}/assets/{filename}")
    async def asset_bytes(requestId: str, filename: str, request: Request) -> Response:  # noqa: N803
        """The exact bytes the signed link serves, whatever the status, without faults."""
        spec = sandbox.asset(_found(requestId), filename)
        if spec is None:
            raise ApiError(404, "not_found", f"Request {requestId} has no asset {filename!r}")
        return await _serve_asset(sandbox, spec, request)

    return router
