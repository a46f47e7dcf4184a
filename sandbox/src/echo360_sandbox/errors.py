"""The reporting API's error answers: :class:`ApiError`, rendered as JSON ``{"error": ..., "message":
..., ...}``, and the handlers that render FastAPI's own errors (an unknown path, a wrong method, a
call that fails validation) the same way. Signed downloads answer S3's XML instead
(:mod:`echo360_sandbox.s3`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException


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


def add_error_handlers(app: FastAPI) -> None:
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
