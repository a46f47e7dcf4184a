"""The demo (and the test stack) never hang: a component that dies is restarted or reported, and
SIGTERM stops everything they started, as Ctrl-C does. Each test runs the real thing as a user
would, in a subprocess, and kills a piece of it from outside."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devtools.environment import DEFAULT_REPORTS
from devtools.processes import descendants, free_port, live_pids

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DAYS = 2


class Watched:
    """A command run from the repository, its output read line by line as it comes.

    :param argv: the command.
    """

    def __init__(self, argv: list[str]) -> None:
        self.popen = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)
            self._new.put(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float) -> str:
        """The first new line matching ``pattern``; fails with the output so far after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._new.get(timeout=1)
            except queue.Empty:
                assert self.popen.poll() is None, f"exited with {self.popen.returncode}:\n{self.output}"
                continue
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} after {timeout:.0f} s:\n{self.output}")

    def finish(self, timeout: float) -> int:
        """Its exit code; fails, killing it, if it runs longer than ``timeout`` s (it hangs)."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise AssertionError(f"still running after {timeout:.0f} s:\n{self.output}") from None


def command_lines(pid: int) -> dict[int, str]:
    """Pid -> command line of every process below ``pid``."""
    lines: dict[int, str] = {}
    for child in descendants(pid):
        with contextlib.suppress(OSError):  # it may have ended meanwhile
            lines[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return lines


def component_pid(process: Watched, pattern: str, timeout: float = 60) -> int:
    """The pid of the process below ``process`` whose command line matches ``pattern``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        below = command_lines(process.popen.pid)
        if pids := [pid for pid, cmdline in below.items() if re.search(pattern, cmdline)]:
            return min(pids)  # the component itself, not its children (started after it)
        time.sleep(0.5)
    raise AssertionError(f"no process matching {pattern!r} below {process.popen.args}:\n{process.output}")


def demo(*args: str) -> Watched:
    return Watched([sys.executable, "-m", "devtools.demo", "--days", str(DAYS), *args])


def test_a_scheduler_killed_with_kill_9_mid_backfill_is_restarted_and_the_demo_lands_everything() -> None:
    run = demo()
    run.wait_for_line(r"Backfill \d+ of", timeout=300)
    scheduler = component_pid(run, "airflow scheduler")
    time.sleep(5)  # a few tasks under way
    os.kill(scheduler, signal.SIGKILL)

    assert run.finish(timeout=600) == 0, run.output
    assert "scheduler exited with -9: starting it again (restart 1 of at most 3)." in run.output
    objects = DAYS * len(DEFAULT_REPORTS)
    assert f"\n{objects} objects, " in run.output, run.output
    assert f"Runs: {', '.join(['success'] * DAYS)}." in run.output, run.output
    assert int(re.findall(r"at most (\d+) in flight at once", run.output)[0]) <= 3


def test_a_dead_sandbox_ends_the_demo_within_a_minute_naming_it_and_stopping_everything() -> None:
    run = demo()
    run.wait_for_line(r"Backfill \d+ of", timeout=300)
    started = descendants(run.popen.pid)
    os.kill(component_pid(run, "echo360_sandbox"), signal.SIGKILL)

    assert run.finish(timeout=60) == 1
    assert "sandbox exited with -9 and is needed: stopping everything." in run.output
    assert re.search(r"FAILED: sandbox exited with -9 and is needed: giving up\.\n----- sandbox", run.output)
    assert started & live_pids() == set()


def test_a_backfill_past_its_deadline_ends_the_demo_listing_each_run_and_its_tasks() -> None:
    run = demo("--backfill-timeout", "1")

    assert run.finish(timeout=300) == 1
    assert "FAILED: timed out after 1 s waiting for 2 terminal runs of echo360_daily_to_s3" in run.output
    stuck = re.findall(r"^  (backfill__\S+): (\w+)$", run.output, re.MULTILINE)
    assert len(stuck) == DAYS, run.output
    for report in DEFAULT_REPORTS:  # the tasks of each run not over, with their states
        assert re.search(rf"^    submit_{report}: \w+$", run.output, re.MULTILINE), run.output


SMOKE_TEST = "tests/e2e/test_stack_smoke.py::test_backfill_of_deferring_task_in_one_slot_pool"
# Airflow renames its processes (setproctitle): "airflow api_server -- host:...".
COMPONENTS = (r"airflow[ _]api[-_]server", "airflow scheduler", "airflow triggerer", "airflow dag-processor")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["devtools.demo", "--keep-running", "--port", "PORT"], id="demo --keep-running"),
        pytest.param(["pytest", "-p", "no:cacheprovider", "-q", SMOKE_TEST], id="an e2e test's stack"),
    ],
)
def test_sigterm_stops_everything_that_was_started(argv: list[str]) -> None:
    run = Watched([sys.executable, "-m", *(str(free_port()) if arg == "PORT" else arg for arg in argv)])
    for pattern in COMPONENTS:
        component_pid(run, pattern, timeout=300)
    started = command_lines(run.popen.pid)
    run.popen.send_signal(signal.SIGTERM)

    assert run.finish(timeout=120) != 0
    left = set(started) & live_pids()
    assert not left, {pid: started[pid] for pid in left}
