"""Fixtures of the end-to-end tests: PostgreSQL and Redis (found running, or throwaway ones for the
session: devtools.services), the whole environment (sandbox, S3 server, Airflow on that PostgreSQL),
which must leave nothing running, and the daily DAG's backfill over it.

The e2e modules need Airflow 3 (its backfill API, ``/jobs``, the task SDK), except those marked
``airflow2``, which need Airflow 2: on each major version the others are skipped, saying why."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("devtools.checks")

from devtools import services  # noqa: E402
from devtools.airflow_stack import AIRFLOW_MAJOR  # noqa: E402
from devtools.checks import days_ending, windows  # noqa: E402
from devtools.environment import Echo360Environment, last_complete_day  # noqa: E402
from devtools.processes import wait_for  # noqa: E402

USED_SERVICES: list[str] = []  # what the session's fixtures found or started, for the summary
HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "airflow2: an e2e test of Airflow 2 (the other e2e tests need 3)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the e2e tests that do not apply to this interpreter's Airflow, with the reason."""
    for item in items:
        if HERE not in item.path.parents:
            continue
        wants = 2 if item.get_closest_marker("airflow2") else 3
        if wants != AIRFLOW_MAJOR:
            reason = f"needs Airflow {wants}; this interpreter has Airflow {AIRFLOW_MAJOR}"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[services.Postgres]:
    """The local PostgreSQL (127.0.0.1:5432) if it answers, else a throwaway one for the session."""
    with services.postgres() as server:
        USED_SERVICES.append(str(server))
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[services.Redis]:
    """The local Redis (127.0.0.1:6379) if it answers, else a throwaway one for the session."""
    with services.redis() as server:
        USED_SERVICES.append(str(server))
        yield server


@pytest.fixture(scope="session")
def service_options(postgres_server: services.Postgres, redis_server: services.Redis) -> dict[str, Any]:
    """:class:`AirflowStack`'s options for the session's PostgreSQL and Redis."""
    return {**postgres_server.stack_options(), **redis_server.stack_options()}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if USED_SERVICES:
        terminalreporter.write_line("e2e services: " + "; ".join(USED_SERVICES))


@contextmanager
def environment(service_options: dict[str, Any], **options: Any) -> Iterator[Echo360Environment]:
    options["stack_options"] = {**service_options, **options.get("stack_options", {})}
    with Echo360Environment(database="postgres", **options) as env:
        yield env
    # Every process it started is gone: components, Celery pools, task processes.
    assert env.stack.leftover_processes() == []


@pytest.fixture(scope="module")
def env_options() -> dict[str, Any]:
    """Options of the module's environment (a module overrides this fixture to set them)."""
    return {}


@pytest.fixture(scope="module")
def env(env_options: dict[str, Any], service_options: dict[str, Any]) -> Iterator[Echo360Environment]:
    """One environment for the module."""
    with environment(service_options, **env_options) as started:
        yield started


@pytest.fixture
def make_env(service_options: dict[str, Any]) -> Iterator[Callable[..., Echo360Environment]]:
    """A factory of environments of the test's own, ``make_env(**options)``, stopped at teardown."""
    with ExitStack() as stack:
        yield lambda **options: stack.enter_context(environment(service_options, **options))


@dataclass(frozen=True)
class Backfill:
    id: int
    runs: list[dict[str, Any]]
    days: list[dt.date]  # latest first
    stats: dict[str, Any]  # the sandbox's, as the backfill ended

    @property
    def windows(self) -> set[tuple[str, str]]:
        return windows(self.days)


@pytest.fixture(scope="module")
def backfill_days() -> int:
    """A week: 21 requests of 3 reports for 3 slots, so that the cap holds requests back all along."""
    return 7


@pytest.fixture(scope="module")
def backfilled(env: Echo360Environment, backfill_days: int) -> Backfill:
    """The daily DAG backfilled over ``backfill_days`` days ending with the last complete day, through
    ``POST /api/v2/backfills`` with max_active_runs 16, over (marked completed, so that the DAG can
    take another backfill)."""
    last_day = last_complete_day()
    started = time.monotonic()
    backfill_id = env.backfill_daily(backfill_days, last_day=last_day, max_active_runs=16)
    runs = env.wait_for_backfill(backfill_days, timeout=1200)
    stats = env.sandbox.stats()
    took = time.monotonic() - started
    sys.stderr.write(
        f"\nAirflow ready in {env.stack.ready_after:.0f} s; the backfill took {took:.0f} s;"
        f" calls refused for the rate limit: {stats['refused_rate_limited']}\n"
    )
    wait_for(lambda: env.stack.backfill(backfill_id)["completed_at"], 60, "the backfill to be completed")
    return Backfill(backfill_id, runs, days_ending(last_day, backfill_days), stats)
