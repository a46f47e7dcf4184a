"""The sandbox as a real process on loopback, for tests, benchmarks and the demo.

    with SandboxProcess(processing_seconds=1, rate_limit=0) as sandbox:
        requests.post(sandbox.token_url, data={...})
        sandbox.set_faults(fault_rate=1.0, faults=["5xx"])
        assert sandbox.stats()["max_in_flight"] <= 3

Every keyword option becomes the command-line flag of the same name (``processing_seconds=1`` is
``--processing-seconds 1``; lists are comma-separated; booleans are ``--x``/``--no-x``). The process
is a :class:`~devtools.processes.Process`; its calls are those of ``echo360_sandbox.client.SandboxClient``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from echo360_sandbox.client import SandboxClient

from devtools.processes import Process, ProcessError, free_port, http_ok


def to_flags(options: Mapping[str, Any]) -> list[str]:
    """Command-line flags for keyword options (``None`` values are left out)."""
    flags: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, (list, tuple, set, frozenset)):
            flags += [flag, ",".join(str(v) for v in value) or "none"]
        else:
            flags += [flag, str(value)]
    return flags


class _Start:
    """``SandboxProcess.start(**options)`` builds and starts one; ``instance.start()`` starts it."""

    def __get__(
        self, obj: SandboxProcess | None, owner: type[SandboxProcess]
    ) -> Callable[..., SandboxProcess]:
        if obj is None:
            return lambda **options: owner(**options).launch()
        return obj.launch


class SandboxProcess(SandboxClient):
    """``python -m echo360_sandbox`` on a free loopback port; it exits with this process, even killed -9.

    :param host: the loopback interface to listen on.
    :param port: the port (default: a free one, picked at start).
    :param startup_timeout: seconds to wait for ``/_sandbox/stats`` to answer.
    :param stop_timeout: grace period between SIGTERM and SIGKILL.
    :param env: extra environment variables for the child.
    :param options: sandbox settings, as keyword arguments (see ``python -m echo360_sandbox --help``).
    """

    start = _Start()

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 5.0,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        credentials = {k: str(options[k]) for k in ("client_id", "client_secret") if k in options}
        super().__init__(f"http://{host}:{port or 0}", **credentials)
        self.host = host
        self.port = port or 0
        self.options = dict(options)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.env = dict(env or {})
        self.process: Process | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.alive

    def airflow_connection(self, **fields: Any) -> str:
        """An ``echo360`` connection to this sandbox, as the JSON an ``AIRFLOW_CONN_<ID>`` variable takes.

        :param fields: connection fields to set or override (``password``, ``extra``, ...).
        """
        connection = {
            "conn_type": "echo360",
            "host": self.base_url,
            "login": self.client_id,
            "password": self.client_secret,
            **fields,
        }
        return json.dumps(connection)

    def launch(self, retries: int = 3) -> SandboxProcess:
        """Start the process and wait until it answers; return ``self``.

        :raises ProcessError: when it exits early or does not answer within ``startup_timeout``.
        """
        if self.alive:
            return self
        fixed_port = bool(self.port)
        for attempt in range(retries):
            if not fixed_port:
                self.port = free_port(self.host)
            self.base_url = f"http://{self.host}:{self.port}"
            argv = [sys.executable, "-m", "echo360_sandbox", "--host", self.host, "--port", str(self.port)]
            argv += ["--parent-pid", str(os.getpid()), *to_flags({"log_level": "warning", **self.options})]
            self.process = Process(
                argv,
                name="sandbox",
                env={**os.environ, **self.env},
                ready=lambda: http_ok(self.base_url + "/_sandbox/stats"),
                startup_timeout=self.startup_timeout,
                stop_timeout=self.stop_timeout,
            )
            try:
                self.process.start()
                return self
            except ProcessError as exc:
                # Another process may have taken the free port between our probe and its bind.
                if fixed_port or attempt == retries - 1 or "address already in use" not in str(exc).lower():
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop the process (SIGTERM, SIGKILL after ``stop_timeout``); safe to call twice."""
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> SandboxProcess:
        return self.launch()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SandboxProcess({self.base_url}, pid={self.pid}, options={self.options})"
