"""Run the sandbox: ``python -m echo360_sandbox --port 8360`` (``--help``: all options, parsed by
:mod:`echo360_sandbox.cli`). The process around the server: the settings from the command line, an
outage scheduled at start, exiting with the parent process when one is named, and serving until
stopped.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

from echo360_sandbox.cli import build_parser, config_from_args, outage_from_args
from echo360_sandbox.config import ConfigError


def _exit_with_parent(parent_pid: int) -> None:
    """Stop this server when the process that started it is gone: no orphans, even after a SIGKILL."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down gracefully
        time.sleep(10)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        parser.error(str(exc))
    # Imported here, so that --help answers without loading the server.
    from echo360_sandbox.app import create_app
    from echo360_sandbox.server import serve

    app = create_app(config)
    state = app.state.sandbox.state
    outage = outage_from_args(args, time.time())
    if outage is not None:
        state.schedule_outage(outage)
    if args.parent_pid:
        _exit_with_parent(args.parent_pid)
    serve(app, config, state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
