"""The sandbox's command line: every option with its default, and no orphan when its parent dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from echo360_sandbox.config import DEFAULT_IN_FLIGHT_MESSAGE

pytestmark = pytest.mark.integration


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def test_help_shows_every_option_with_its_default() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "echo360_sandbox", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "400"},  # one line per option
    )
    lines: dict[str, str] = {}  # option -> its help text (which may continue on the next line)
    option = ""
    for line in result.stdout.splitlines():
        if line.strip().startswith("--"):
            option = line.split()[0].rstrip(",")
            lines[option] = ""
        if option:
            lines[option] += " " + line.strip()

    for option, default in {
        "--host": "127.0.0.1",
        "--client-id": "sandbox-client",
        "--client-secret": "sandbox-secret",
        "--processing-seconds": "5.0",
        "--rows-per-day": "100",
        "--token-seconds": "3600.0",
        "--rate-limit": "120",
        "--retention-seconds": "1209600",
        "--url-seconds": "604800",
        "--max-rows-per-asset": "1000000",
        "--in-flight-status": "429",
        "--request-path": "singular",
        "--reports-shape": "object",
        "--fault-rate": "0.0",
        "--failed-rate": "0.0",
        "--missing-rate": "0.0",
        "--slow-seconds": "2.0",
        "--seed": "0",
        "--history": "0",
        "--history-days": "365",
        "--faults": "5xx,429,drop,slow,truncate,expired-url",
        "--fault-targets": "token,api,download",
        "--log-level": "info",
        # dialects
        "--token-auth": "any",
        "--access-token-in": "header-or-param",
        "--in-flight-message": DEFAULT_IN_FLIGHT_MESSAGE,
        "--requests-scope": "institution",
        "--requests-page-size": "0",
        "--requests-paging": "link",
        "--requests-order": "newest",
        "--early-status": "none: Pending throughout",
        "--early-status-seconds": "half of --processing-seconds",
        "--qanda-name": "qanda2",
        "--show-output": "False",
        "--token-response": "full",
        "--retry-after": "True",
        "--bad-credentials-status": "401",
        # answers
        "--echo-dates": "date",
        "--status-case": "page",
        "--report-name-case": "page",
        "--empty-shape": "header",
        "--header-drift": "none",
        "--empty-every": "0",
        "--stray-rows": "0",
    }.items():
        assert f"(default: {default})" in lines[option], option
    assert "html" in lines["--faults"]  # a kind to choose, not a default
    for option in (
        "--port",
        "--data-dir",
        "--public-url",
        "--max-in-flight",
        "--pregenerate",
        "--parent-pid",
    ):
        assert "(default: " in lines[option], option


def test_the_sandbox_exits_when_its_parent_is_killed() -> None:
    parent_code = textwrap.dedent(
        """
        import os, socket, subprocess, sys, time, urllib.request
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        argv = [sys.executable, "-m", "echo360_sandbox", "--port", str(port)]
        sandbox = subprocess.Popen([*argv, "--parent-pid", str(os.getpid())], stdout=subprocess.DEVNULL)
        for _ in range(300):  # until it answers
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_sandbox/stats", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        print(sandbox.pid, flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)

        os.kill(parent.pid, signal.SIGKILL)  # no atexit, no cleanup: the child must notice alone
        parent.wait(10)

        assert wait_gone(child), "the sandbox outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
