"""Fixtures shared by every test suite (``tests/`` and ``sandbox/tests/``): the Echo360 sandbox as a
real process on loopback (:class:`devtools.sandbox.SandboxProcess`)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

# Before anything imports Airflow: a throwaway AIRFLOW_HOME, never the user's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="echo360-tests-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import pytest  # noqa: E402

from devtools.processes import sigterm_interrupts  # noqa: E402
from devtools.sandbox import SandboxProcess  # noqa: E402


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[None]:
    """SIGTERM ends the run as Ctrl-C does: the fixtures' teardown stops what they started."""
    with sigterm_interrupts():
        return (yield)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    """One sandbox for the whole session: requests Pending for 1 s, no rate limit, small reports.

    Shared: call ``sandbox.reset(faults=True, config=True)`` before relying on its state.
    """
    with SandboxProcess(processing_seconds=1, rate_limit=0, rows_per_day=50) as started:
        yield started


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxProcess]]:
    """A factory of fresh sandboxes, ``make_sandbox(**options)``; each is stopped at teardown."""
    started: list[SandboxProcess] = []

    def make(**options: Any) -> SandboxProcess:
        process = SandboxProcess.start(**options)
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()
