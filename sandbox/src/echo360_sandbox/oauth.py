"""The OAuth2 surface of the API: the token endpoint ``POST /oauth2/access_token`` (client
credentials, read where the ``token_auth`` dialect reads them, and ``refresh_token``; a refusal is
counted in ``tokens_refused``), and the dependency by which the reporting API requires an access
token (``Authorization: Bearer``, or also a query or body field in the ``access_token_in`` dialect
``header-or-param``; a refusal is a 401 counted in ``refused_unauthorized``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from echo360_sandbox.errors import ApiError
from echo360_sandbox.sandbox import Sandbox

TOKEN_PATH = "/oauth2/access_token"


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


def token_router(sandbox: Sandbox) -> APIRouter:
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


def auth_dependency(sandbox: Sandbox) -> Callable[..., Any]:
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
