"""Run the sandbox as a real process on loopback, for tests, benchmarks and demos.

    with SandboxProcess(processing_seconds=1, rate_limit=0) as sandbox:
        requests.post(sandbox.token_url, data={...})
        sandbox.set_faults(fault_rate=1.0, faults=["5xx"])
        assert sandbox.stats()["max_in_flight"] <= 3

Every keyword option becomes the command-line flag of the same name (``processing_seconds=1`` is
``--processing-seconds 1``; lists are comma-separated; booleans are ``--x``/``--no-x``).
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import IO, Any

import requests

API_PREFIX = "/public/api/v1/reporting"  # app.API_PREFIX, repeated: this module needs no FastAPI
_LIVE: weakref.WeakSet[SandboxProcess] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


class SandboxStartError(RuntimeError):
    """The sandbox process died or did not answer in time; the message carries its stderr."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


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


class SandboxProcess:
    """A sandbox server in a child process on a free loopback port.

    :param host: the loopback interface to listen on.
    :param port: the port (default: a free one, picked at start).
    :param startup_timeout: seconds to wait for ``/_sandbox/stats`` to answer.
    :param stop_timeout: grace period between terminate and kill.
    :param env: extra environment variables for the child.
    :param options: sandbox settings, as keyword arguments (see ``python -m ... --help``).
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
        self.host = host
        self.port = port or 0
        self.options = dict(options)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._http = requests.Session()

    # --- addresses and credentials ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def token_url(self) -> str:
        return self.base_url + "/oauth2/access_token"

    @property
    def client_id(self) -> str:
        return str(self.options.get("client_id", "sandbox-client"))

    @property
    def client_secret(self) -> str:
        return str(self.options.get("client_secret", "sandbox-secret"))

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

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # --- life cycle -------------------------------------------------------------------------

    def launch(self, retries: int = 3) -> SandboxProcess:
        """Start the process and wait until it answers; return ``self``.

        :raises SandboxStartError: when it exits early or does not answer within ``startup_timeout``.
        """
        if self.running:
            return self
        fixed_port = bool(self.port)
        for attempt in range(retries):
            if not fixed_port:
                self.port = free_port(self.host)
            try:
                self._spawn()
                self._wait_ready()
                return self
            except SandboxStartError as exc:
                self.stop()
                # Another process may have taken the free port between our probe and its bind.
                if fixed_port or attempt == retries - 1 or "address already in use" not in str(exc).lower():
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self) -> None:
        command = [
            sys.executable,
            "-m",
            "echo360_sandbox",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--parent-pid",
            str(os.getpid()),
            *to_flags({"log_level": "warning", **self.options}),
        ]
        env = {**os.environ, **self.env}
        self._log = tempfile.TemporaryFile(prefix="echo360-sandbox-", suffix=".log")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        with _LIVE_LOCK:
            _LIVE.add(self)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise SandboxStartError(
                    f"sandbox exited with code {self.process.returncode}:\n{self.output()}"
                )
            try:
                if self._http.get(self.base_url + "/_sandbox/stats", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise SandboxStartError(f"sandbox did not answer within {self.startup_timeout} s:\n{self.output()}")

    def output(self) -> str:
        """What the process wrote to stdout and stderr so far."""
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        self._log.seek(0, os.SEEK_END)
        return text

    def stop(self) -> None:
        """Terminate the process, kill it after the grace period; safe to call twice."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._log is not None:
            self._log.close()
            self._log = None
        self._http.close()

    def __enter__(self) -> SandboxProcess:
        return self.launch()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SandboxProcess({self.base_url}, pid={self.pid}, options={self.options})"

    # --- control endpoints ------------------------------------------------------------------

    def _control(self, method: str, path: str, json: Any = None) -> Any:
        response = self._http.request(method, f"{self.base_url}/_sandbox{path}", json=json, timeout=30)
        if not response.ok:
            raise requests.HTTPError(
                f"{method} /_sandbox{path} answered {response.status_code}: {response.text}",
                response=response,
            )
        return response.json()

    def stats(self) -> dict[str, Any]:
        """``GET /_sandbox/stats``: what the sandbox saw."""
        return dict(self._control("GET", "/stats"))

    def faults(self) -> dict[str, Any]:
        """The current fault settings."""
        return dict(self._control("GET", "/faults"))

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Change fault settings at runtime: ``fault_rate``, ``faults``, ``fault_targets``,
        ``fault_budget``, ``failed_rate``, ``missing_rate``, ``slow_seconds``."""
        return dict(self._control("POST", "/faults", settings))

    def config(self) -> dict[str, Any]:
        """The current settings (client secret masked)."""
        return dict(self._control("GET", "/config"))

    def set_config(self, **settings: Any) -> dict[str, Any]:
        """Change settings a running sandbox can change (``processing_seconds``, ``rate_limit``, ...)."""
        return dict(self._control("POST", "/config", settings))

    def reset(self, *, faults: bool = False, config: bool = False) -> None:
        """Forget requests and stats; ``faults``/``config`` also restore the starting settings."""
        self._control("POST", "/reset", {"faults": faults, "config": config})

    def secrets(self) -> dict[str, list[str]]:
        """The client secret and every access token, refresh token and URL signature issued."""
        return dict(self._control("GET", "/secrets"))

    def expire_tokens(self) -> int:
        """Expire every access token issued so far; how many there were."""
        return int(self._control("POST", "/tokens/expire")["expired"])

    def set_status(self, request_id: str, status: str) -> dict[str, Any]:
        """Force a request's status (``Available``, ``Failed``, ``Missing``, ``Expired``, ``Pending``)."""
        return dict(self._control("POST", f"/requests/{request_id}/status", {"status": status}))

    def request_info(self, request_id: str) -> dict[str, Any]:
        """A request as the sandbox knows it (outcome, output options, asset names)."""
        return dict(self._control("GET", f"/requests/{request_id}"))

    def submit_as(
        self, client_id: str, report_name: str, parameters: Mapping[str, Any] | None = None, **output: Any
    ) -> dict[str, Any]:
        """Create a request as if another API client of the institution (``client_id``) had submitted it.

        It counts toward the institution's in-flight limit (without being refused by it), shows in
        ``institution``-scoped listings only, and is counted in the stats as ``injected``.

        :param output: output options (``compression``, ``delimiter``).
        :returns: the request as the API shows it, plus ``clientId``.
        """
        body = {
            "reportName": report_name,
            "parameters": dict(parameters or {}),
            "clientId": client_id,
            "output": output,
        }
        return dict(self._control("POST", "/requests", body))

    def asset_bytes(self, request_id: str, filename: str) -> bytes:
        """The exact bytes the signed link of ``filename`` serves (no faults, no signature)."""
        response = self._http.get(
            f"{self.base_url}/_sandbox/requests/{request_id}/assets/{filename}", timeout=300
        )
        response.raise_for_status()
        return response.content

    # --- API helpers ------------------------------------------------------------------------

    def access_token(self) -> str:
        """A fresh access token from the sandbox's token endpoint, asked the way its ``token_auth``
        dialect reads credentials (a form body, unless it only reads the query or HTTP Basic)."""
        token_auth = self.config()["token_auth"]
        fields = {"grant_type": "client_credentials", "client_id": self.client_id}
        secret = {"client_secret": self.client_secret}
        if token_auth == "query":
            response = self._http.post(self.token_url, params={**fields, **secret}, timeout=30)
        elif token_auth == "basic":
            auth = (self.client_id, self.client_secret)
            response = self._http.post(self.token_url, data=fields, auth=auth, timeout=30)
        else:
            response = self._http.post(self.token_url, data={**fields, **secret}, timeout=30)
        response.raise_for_status()
        return str(response.json()["access_token"])


@atexit.register
def _stop_all() -> None:
    """Never leave a sandbox behind when the interpreter exits (the child also watches its parent)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for sandbox in live:
        sandbox.stop()
