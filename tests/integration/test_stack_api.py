"""The harness's calls to Airflow's REST API (devtools.airflow_stack.AirflowStack.api) against a real
HTTP server that answers as Airflow on SQLite does under load."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devtools.airflow_api import LOCKED_ATTEMPTS, ApiError
from devtools.airflow_stack import AIRFLOW_MAJOR, AirflowStack
from devtools.stacks import airflow_stack

# The Airflow 3 stack's calls: Airflow 2's runs on PostgreSQL only, where no call meets SQLite's lock.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.one_airflow,  # the harness's own client, against a server of its own
    pytest.mark.skipif(AIRFLOW_MAJOR != 3, reason=f"needs Airflow 3; this interpreter has {AIRFLOW_MAJOR}"),
]


class Answers(BaseHTTPRequestHandler):
    """Answers each GET with the next of ``server.answers`` (status, body), counting the calls."""

    def do_GET(self) -> None:
        status, body = self.server.answers.pop(0)  # type: ignore[attr-defined]
        self.server.calls += 1  # type: ignore[attr-defined]
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    httpd.answers, httpd.calls = [], 0  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()


def stack_on(server: ThreadingHTTPServer, tmp_path: Path) -> AirflowStack:
    return airflow_stack(tmp_path / "home", tmp_path / "dags", database="sqlite", api_port=server.server_port)


LOCKED = (500, {"detail": "(sqlite3.OperationalError) database is locked"})


def test_a_call_that_sqlite_refused_is_tried_again(server: ThreadingHTTPServer, tmp_path: Path) -> None:
    server.answers += [LOCKED, LOCKED, (200, {"pools": []})]  # type: ignore[attr-defined]
    assert stack_on(server, tmp_path).api("GET", "/pools") == {"pools": []}
    assert server.calls == 3  # type: ignore[attr-defined]


def test_a_lock_that_lasts_and_any_other_error_count_at_once(
    server: ThreadingHTTPServer, tmp_path: Path
) -> None:
    stack = stack_on(server, tmp_path)
    server.answers += [LOCKED] * LOCKED_ATTEMPTS  # type: ignore[attr-defined]
    with pytest.raises(ApiError, match="database is locked"):
        stack.api("GET", "/pools")
    assert server.calls == LOCKED_ATTEMPTS  # type: ignore[attr-defined]

    server.answers += [(500, {"detail": "Internal Server Error"})]  # type: ignore[attr-defined]
    with pytest.raises(ApiError, match="500"):
        stack.api("GET", "/pools")
    assert server.calls == LOCKED_ATTEMPTS + 1  # type: ignore[attr-defined]
