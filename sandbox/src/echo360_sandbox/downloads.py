"""Signed downloads, ``GET`` or ``HEAD /_assets/{requestId}/{filename}``: the links
``GET /request/{requestId}`` hands out, checked as S3 checks a presigned URL (one auth mechanism, the
signature, the expiry, an ``Available`` request's asset), then the asset streamed, whole or a byte
range, and counted in ``downloads`` and ``downloaded_bytes``. The S3 side of it, signature and
errors and ranges, is :mod:`echo360_sandbox.s3`.
"""

from __future__ import annotations

import hmac
import time

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from echo360_sandbox.assets import AssetSpec
from echo360_sandbox.s3 import ASSETS_PREFIX, AssetResponse, parse_range, s3_error, sign
from echo360_sandbox.sandbox import Sandbox

#: Set by the gate on a ``truncate`` fault: the download stops about halfway.
TRUNCATE_KEY = "echo360.sandbox.truncate"


def download_router(sandbox: Sandbox) -> APIRouter:
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
        return await serve_asset(sandbox, spec, request, truncate=truncate, count=True)

    return router


async def serve_asset(
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
