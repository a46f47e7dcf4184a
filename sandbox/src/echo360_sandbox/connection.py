"""The client's TCP connection, for the faults that end it without (the rest of) an answer: a dropped
connection and a truncated download. :class:`SandboxApp` puts the server's transport in each call's
scope (uvicorn's ``send`` is bound to it); :func:`close_connection` aborts or closes it, or raises
:class:`ConnectionDropped` when the app runs in-process, without a real server.
"""

from __future__ import annotations

import anyio
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

TRANSPORT_KEY = "echo360.sandbox.transport"


class ConnectionDropped(ConnectionResetError):
    """Raised instead of closing the socket when the app runs without a real server (in-process)."""


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
