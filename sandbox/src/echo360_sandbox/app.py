"""The sandbox's HTTP application, assembled by :func:`create_app` from one module per surface.

Layers, outermost first:

- :class:`~echo360_sandbox.connection.SandboxApp` hands the server's transport to the layers below (a
  dropped connection and a truncated download need to close the socket themselves);
- :class:`~echo360_sandbox.gate.GateMiddleware` counts calls, answers 503 during an outage, injects
  faults *before* any handler runs and enforces the rate limit;
- the routes, one module per surface: the OAuth2 token (:mod:`echo360_sandbox.oauth`), the reporting
  API, with bearer auth (:mod:`echo360_sandbox.reporting`), signed downloads, S3-style
  (:mod:`echo360_sandbox.downloads`), and the ``/_sandbox`` control endpoints, with no auth, no faults
  and no rate limit (:mod:`echo360_sandbox.control`); they share a
  :class:`~echo360_sandbox.sandbox.Sandbox`, and answer errors as :mod:`echo360_sandbox.errors` renders
  them.
"""

from __future__ import annotations

from fastapi import FastAPI

from echo360_sandbox.config import SandboxConfig
from echo360_sandbox.connection import SandboxApp
from echo360_sandbox.control import control_router
from echo360_sandbox.downloads import download_router
from echo360_sandbox.errors import add_error_handlers
from echo360_sandbox.gate import GateMiddleware
from echo360_sandbox.oauth import TOKEN_PATH, token_router
from echo360_sandbox.reporting import API_PREFIX, reporting_router
from echo360_sandbox.sandbox import Sandbox


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
        token_router(sandbox),
        reporting_router(sandbox),
        download_router(sandbox),
        control_router(sandbox),
    ]
    # The routers' own routes name the endpoints: newer FastAPI releases keep an included router as
    # one opaque entry of ``app.router.routes``, older ones copy its routes there.
    leaves = [route for router in routers for route in router.routes]
    app.add_middleware(GateMiddleware, state=sandbox.state, routes=lambda: leaves)
    add_error_handlers(app)
    for router in routers:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def root() -> dict[str, str]:
        return {"service": "echo360-sandbox", "api": API_PREFIX, "token": TOKEN_PATH, "docs": "/docs"}

    return app
