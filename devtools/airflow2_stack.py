"""A real Airflow 2 (2.11): what :class:`devtools.airflow_stack.AirflowStack` becomes under Airflow 2.

The same harness (supervised component processes, a fresh PostgreSQL database, the same calls), with
Airflow 2's components and API:

- ``dag-processor`` (standalone: ``[scheduler] standalone_dag_processor``), ``scheduler``,
  ``triggerer`` and ``webserver`` (FAB, gunicorn) in place of the api-server; LocalExecutor;
- the REST API is ``/api/v1``, with basic auth as an ``Admin`` user created after ``db migrate``;
- health is ``GET /api/v1/health`` (the latest scheduler, triggerer and dag-processor heartbeats):
  Airflow 2's API has no ``/jobs``, so job matching (chaos, several schedulers) is Airflow 3 only;
- a backfill is ``airflow dags backfill`` (Airflow 2 has no backfill API): a supervised process
  whose BackfillJob runs the tasks itself with the LocalExecutor, while the triggerer runs the
  deferred waits (:meth:`Airflow2Stack.run_cli_backfill`).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

import requests

from devtools.airflow_api import AirflowStackError, quietly
from devtools.airflow_stack import AirflowStack, component_kind
from devtools.processes import Process, ProcessError, stop_all, wait_for

# component kind -> its entry in GET /api/v1/health
_HEALTH_KEYS = {"scheduler": "scheduler", "triggerer": "triggerer", "dag-processor": "dag_processor"}
ADMIN_USER = "admin"


class Airflow2Stack(AirflowStack):
    """A real Airflow 2 made of separate component processes, driven through its ``/api/v1``.

    Takes :class:`AirflowStack`'s options; PostgreSQL, the LocalExecutor, one scheduler and one
    triggerer only (Airflow 2 runs the LocalExecutor on no SQLite, and the harness matches no jobs).
    """

    API_COMPONENT = "webserver"
    API_PATH = "/api/v1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.database != "postgres" or self.executor != "LocalExecutor":
            raise ValueError("the Airflow 2 stack runs the LocalExecutor on PostgreSQL only")
        if self.component_names != ["dag-processor", "scheduler", "triggerer", "webserver"]:
            raise ValueError("the Airflow 2 stack runs one scheduler and one triggerer, no Celery worker")
        # A throwaway admin of this stack's own database; its password goes nowhere but here.
        self.admin_password = secrets.token_urlsafe(16)
        self._http.auth = (ADMIN_USER, self.admin_password)
        self.cli_backfills: list[Process] = []

    # ------------------------------------------------------------------ lifecycle
    def _prepare_database(self, migrated: bool) -> None:
        super()._prepare_database(migrated)
        admin = ["--username", ADMIN_USER, "--password", self.admin_password, "--role", "Admin"]
        names = ["--firstname", "E2E", "--lastname", "Admin", "--email", "admin@example.org"]
        self._process("users-create", ["users", "create", *admin, *names]).run(timeout=120)

    def stop(self) -> None:
        stop_all(self.cli_backfills)  # first: its tasks would fail as the components go
        super().stop()

    def leftover_processes(self) -> list[int]:
        backfills = {pid for process in self.cli_backfills for pid in process.leftovers()}
        return sorted(backfills.union(super().leftover_processes()))

    def _argv(self, name: str) -> list[str]:
        if name == "webserver":
            return ["webserver", "--port", str(self.api_port), "--hostname", "127.0.0.1", "--workers", "2"]
        return super()._argv(name)

    def _build_env(self) -> dict[str, str]:
        env = self._base_env()
        env.update(
            {
                "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
                # These names (deprecated shims of FAB's) as they are: Airflow 2.11 adds its session
                # backend, with a warning, to a value that does not name it so.
                "AIRFLOW__API__AUTH_BACKENDS": (
                    "airflow.api.auth.backend.basic_auth,airflow.api.auth.backend.session"
                ),
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(self.api_port),
                "AIRFLOW__WEBSERVER__BASE_URL": self.base_url,
                "AIRFLOW__WEBSERVER__EXPOSE_STACKTRACE": "True",
                "AIRFLOW__WEBSERVER__WARN_DEPLOYMENT_EXPOSURE": "False",
                # Signs the webserver's sessions and its requests for logs to the log servers.
                "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_urlsafe(64),
                # Short heartbeats, polls and parse intervals, suited to tests (Airflow 2's names).
                "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "3",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW__SCHEDULER__PRINT_STATS_INTERVAL": "300",
                "AIRFLOW__SCHEDULER__SCHEDULER_ZOMBIE_TASK_THRESHOLD": "60",
                "AIRFLOW__SCHEDULER__ZOMBIE_DETECTION_INTERVAL": "5",
            }
        )
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ health
    def _unhealthy(self) -> list[str]:
        """Components not healthy yet: one whose latest heartbeat (``/health``) is not healthy or
        older than its latest (re)start; all of them while the webserver does not answer."""
        health = quietly(self.api, "GET", "/health")
        if health is None:
            return list(self.components)
        waiting = []
        for name, process in self.components.items():
            key = _HEALTH_KEYS.get(component_kind(name)[0])
            if key is None:
                continue  # the webserver: it answered
            entry = health.get(key) or {}
            beat = next((v for k, v in entry.items() if k.endswith("heartbeat")), None)
            started = process.started_at
            if entry.get("status") != "healthy" or not beat or (started and _utc(beat) < started):
                waiting.append(name)
        return waiting

    def job_id(self, component: str) -> int | None:
        raise AirflowStackError("job_id(): Airflow 2's REST API has no /jobs (an Airflow 3 feature)")

    def _match_jobs(self) -> dict[int, dict[str, Any]]:
        raise AirflowStackError("jobs: Airflow 2's REST API has no /jobs (an Airflow 3 feature)")

    # ------------------------------------------------------------------ REST (v1)
    def dag_runs(self, dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
        """The DAG's runs (of ``run_type``: v1 has no such filter, so it is applied here)."""
        runs = self._paged(f"/dags/{dag_id}/dagRuns", "dag_runs")
        return [run for run in runs if run_type is None or run["run_type"] == run_type]

    def task_tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """Every try of a task instance. v1's ``{map_index}`` is an unsigned int in its routes (-1 is
        a 404): an unmapped task's tries are at ``.../taskInstances/{task_id}/tries``."""
        where = task_id if map_index == -1 else f"{task_id}/{map_index}"
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{where}/tries"
        tries: list[dict[str, Any]] = self.api("GET", path)["task_instances"]
        return tries

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        # v1 turns the value into its Python repr unless told not to (stringify).
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.api("GET", path, params={"stringify": "false"})["value"]

    def asset_events(self, dag_id: str) -> list[dict[str, Any]]:
        """The dataset events (Airflow 2's name for asset events) the DAG's tasks emitted, oldest first."""
        return self._paged(
            "/datasets/events", "dataset_events", {"source_dag_id": dag_id, "order_by": "timestamp"}
        )

    def create_backfill(self, dag_id: str, *args: Any, **kwargs: Any) -> int:
        raise AirflowStackError("Airflow 2 has no backfill API: use run_cli_backfill()")

    def backfill(self, backfill_id: int) -> dict[str, Any]:
        raise AirflowStackError("Airflow 2 has no backfill API: use run_cli_backfill()")

    # ------------------------------------------------------------------ backfill (CLI)
    def run_cli_backfill(
        self, dag_id: str, start: dt.date | str, end: dt.date | str, *extra_args: str
    ) -> Process:
        """Start ``airflow dags backfill -s <start> -e <end> <dag_id>``; return its process.

        ``start`` and ``end`` are logical dates (Airflow 2's: the start of each run's data interval),
        both included. The command runs until every run is over (:meth:`wait_for_cli_backfill`).
        """
        index = len(self.cli_backfills) + 1
        name = "backfill" if index == 1 else f"backfill-{index}"
        argv = ["dags", "backfill", "-s", str(start), "-e", str(end), *extra_args, dag_id]
        process = self._process(name, argv)
        self.cli_backfills.append(process)
        return process.start()

    def wait_for_cli_backfill(self, process: Process, timeout: float = 600) -> None:
        """Wait until a CLI backfill exits; raise unless it exited 0 (with its log's end)."""
        try:
            wait_for(lambda: not process.alive, timeout, f"{process.name} to end", watchdog=self.watchdog)
        except ProcessError as e:
            raise AirflowStackError(f"{e}\n{process.tail(60)}") from None
        if process.exit_code != 0:
            raise AirflowStackError(f"{process.name} exited with {process.exit_code}:\n{process.tail(60)}")

    # ------------------------------------------------------------------ the UI
    def web_login(self) -> requests.Session:
        """A session logged in to the webserver as the admin, through FAB's form at ``/login/``."""
        session = requests.Session()
        page = session.get(f"{self.base_url}/login/", timeout=30)
        page.raise_for_status()
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
        if match is None:
            raise AirflowStackError("no csrf_token in the login form")
        form = {"username": ADMIN_USER, "password": self.admin_password, "csrf_token": match.group(1)}
        answer = session.post(f"{self.base_url}/login/", data=form, timeout=30)
        answer.raise_for_status()
        if "session" not in session.cookies or "/login" in answer.url:
            raise AirflowStackError(f"login refused (ended at {answer.url})")
        return session


def _utc(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
