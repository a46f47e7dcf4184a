"""The sandbox's HTTP server: uvicorn, which stops listening during the refused phase of an outage.

A service that is down refuses connections (``ECONNREFUSED``) rather than accepting and resetting
them, so for the refused phase the listening socket itself is closed (idle keep-alive connections
too), and afterwards a new one is bound to the same address (``SO_REUSEADDR``) and served by the same
uvicorn server, app and state. The listening socket is made here and handed to uvicorn so that its
address is known even when port 0 was asked for.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import uvicorn
from fastapi import FastAPI

from echo360_sandbox.config import SandboxConfig
from echo360_sandbox.report_requests import iso_z
from echo360_sandbox.state import SandboxState

logger = logging.getLogger("uvicorn.error")
#: How often the server looks at the outage schedule: the refused phase begins at most this late.
_TICK_SECONDS = 0.02
#: uvicorn's exit status when it cannot start (its ``STARTUP_FAILURE``).
_STARTUP_FAILURE = 3


class SandboxServer(uvicorn.Server):
    """A uvicorn server that closes its listening socket while ``state``'s outage refuses connections.

    :param config: uvicorn's settings (``lifespan="off"``: a restart of the listener must not run the
        app's startup again).
    :param state: the app's state, whose outage schedule it follows.
    """

    def __init__(self, config: uvicorn.Config, state: SandboxState) -> None:
        super().__init__(config)
        self.state = state

    async def main_loop(self) -> None:
        follower = asyncio.create_task(self._follow_outages())
        try:
            await super().main_loop()
        finally:
            follower.cancel()

    async def _follow_outages(self) -> None:
        while True:
            until = self.state.refused_until(time.time())
            if until is None:
                await asyncio.sleep(_TICK_SECONDS)
            else:
                await self._refuse_connections(until)

    async def _refuse_connections(self, until: float) -> None:
        """Stop listening until ``until`` (Unix time), then listen again on the same address."""
        for listener in self.servers:
            listener.close()
        # Idle keep-alive connections close now, busy ones after their answer: a pooled client
        # then has to connect, and is refused, as after a real service went away.
        for connection in list(self.server_state.connections):
            connection.shutdown()
        self.state.note_listening(False, time.time())
        logger.warning("Sandbox outage: connections refused until %s", iso_z(until))
        # A timer may fire a little early (uvloop counts from the time its loop cached): listening
        # again before ``until`` would let the phase, still ``refused``, close the socket once more.
        while (left := until - time.time()) > 0:
            await asyncio.sleep(left)
        # uvicorn's own startup serves the new socket: the same protocol, app and server state.
        await self.startup(sockets=[self.config.bind_socket()])
        self.state.note_listening(True, time.time())
        logger.warning("Sandbox outage over: listening again")


def serve(app: FastAPI, config: SandboxConfig, state: SandboxState) -> None:
    """Serve ``app`` on ``config.host``/``config.port`` until SIGINT or SIGTERM.

    No access log: query strings carry signatures and may carry access tokens.
    """
    server_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        access_log=False,
        timeout_graceful_shutdown=3,
        lifespan="off",  # the app has no startup or shutdown of its own
    )
    listening = server_config.bind_socket()  # logs the address; exits 3 if it is taken
    server_config.port = listening.getsockname()[1]  # to bind the same port again after an outage
    server = SandboxServer(server_config, state)
    server.run(sockets=[listening])
    if not server.started:
        sys.exit(_STARTUP_FAILURE)
