"""The reporting API under :data:`API_PREFIX`, each call behind an access token: ``GET /reports``,
``GET /requests`` (in the ``requests_order``, ``requests_scope`` and ``requests_paging`` dialects),
a submission ``POST /requests/{reportName}`` (checked against the rules of
:mod:`echo360_sandbox.validation`, within the in-flight limit; its answer maybe lost, as
``lost_submission_answers`` asks) and one request with its signed links, ``GET /request/{requestId}``
(or the plural path of the ``request_path`` dialect).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from echo360_sandbox.catalog import find_report, served_names
from echo360_sandbox.errors import ApiError
from echo360_sandbox.oauth import auth_dependency
from echo360_sandbox.report_requests import InFlightLimitReached, ReportRequest
from echo360_sandbox.sandbox import Sandbox
from echo360_sandbox.validation import DELIMITERS, SubmissionRefused, parse_submission

API_PREFIX = "/public/api/v1/reporting"
#: Set by the submission handler on an answer to lose (``lost_submission_answers``).
LOSE_ANSWER_KEY = "echo360.sandbox.lose_answer"


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


def reporting_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(
        prefix=API_PREFIX, tags=["Reporting"], dependencies=[Depends(auth_dependency(sandbox))]
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
            parameters, compression, delimiter = parse_submission(report, await request.body())
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
