"""The gate every call to the token endpoint, the reporting API and signed downloads passes before any
handler runs (control endpoints pass untouched): it counts the call by endpoint, answers 503 during an
outage (:mod:`echo360_sandbox.outage`), injects faults (so a faulted submission creates nothing, the
opt-in ``html`` proxy page included; the opt-in ``lost-response`` alone runs the handler and then
drops the connection), enforces the rate limit, and drops the connection instead of an answer the
submission handler marked as lost (``lost_submission_answers``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from fastapi.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from echo360_sandbox.config import HTML_FAULT_PAGE
from echo360_sandbox.connection import close_connection
from echo360_sandbox.downloads import TRUNCATE_KEY
from echo360_sandbox.errors import ApiError
from echo360_sandbox.oauth import TOKEN_PATH
from echo360_sandbox.reporting import API_PREFIX, LOSE_ANSWER_KEY
from echo360_sandbox.s3 import ASSETS_PREFIX, s3_error
from echo360_sandbox.state import SandboxState


def unavailable(target: str, path: str, cause: str) -> Response:
    """A 503 as the service answers it: S3's XML on a signed download, the API's JSON elsewhere."""
    message = f"Service unavailable ({cause})"
    if target == "download":
        return s3_error(503, "ServiceUnavailable", message, path)
    return ApiError(503, "service_unavailable", message).response()


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
