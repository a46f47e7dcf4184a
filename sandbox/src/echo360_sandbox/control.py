"""The sandbox's own control endpoints under :data:`CONTROL_PREFIX` (no auth, no faults, not rate
limited), which the real service does not have: statistics, fault settings, settings, outages, reset,
the secrets handed out, expiring tokens and requests, a request injected as if another API client had
submitted it, a request's hidden details, a forced status, and an asset's exact bytes.
:class:`~echo360_sandbox.client.SandboxClient` calls them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from echo360_sandbox.config import ConfigError
from echo360_sandbox.downloads import serve_asset
from echo360_sandbox.errors import ApiError
from echo360_sandbox.outage import Outage
from echo360_sandbox.report_requests import ReportRequest
from echo360_sandbox.sandbox import Sandbox
from echo360_sandbox.validation import SubmissionRefused, parse_submission

CONTROL_PREFIX = "/_sandbox"


async def _json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError:
        raise ApiError(400, "invalid_request", "Request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_request", "Request body must be a JSON object")
    return payload


def control_router(sandbox: Sandbox) -> APIRouter:
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
            parameters, compression, delimiter = parse_submission(report, body.encode())
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
        one of the history, its empty-window shape (``null``: it has rows), its header drift, the stray
        rows each asset holds, output options, asset names."""
        found = _found(requestId)
        return {
            **sandbox.request_json(found, time.time()),
            "clientId": found.client_id,
            "outcome": found.outcome,
            "forcedStatus": found.forced_status,
            "history": found.history,
            "emptyShape": found.empty_shape,
            "headerDrift": found.header_drift,
            "strayRows": found.strays_per_asset,
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
        return await serve_asset(sandbox, spec, request)

    return router
