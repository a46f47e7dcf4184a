"""A real Airflow 3 (dag-processor, scheduler, triggerer, api-server) for e2e tests, the demo and benchmarks.

Each component is an ``airflow`` CLI process supervised by :class:`devtools.processes.Process` (its own
session, its log in ``<home>/logs-components/<name>.log``); ``stop()`` ends them all together with
everything they started (task processes included), so nothing outlives the stack. The metadata
database is an SQLite file in ``home`` or a fresh, uniquely named PostgreSQL database on the local
server (dropped at ``stop()``). The stack is driven through Airflow's REST API: the SimpleAuthManager
runs with ``simple_auth_manager_all_admins``, so every call is an admin's without a token.

Distributed deployment (PostgreSQL only): ``schedulers=2, triggerers=2`` run several schedulers and
triggerers (``scheduler``, ``scheduler-2``, ``triggerer``, ``triggerer-2``, ...), and
``executor="CeleryExecutor", celery_workers=2`` runs Celery workers (``celery-worker``,
``celery-worker-2``, ...) on the local Redis server; the stack's tasks go to a queue of its own (Airflow's
``[operators] default_queue``), so stacks can share one Redis. Each scheduler, triggerer and
dag-processor is matched to its row of Airflow's jobs (``job_id(name)``): a second instance of a kind
starts once the first one has its job, so that the match is certain.

Usage::

    with airflow_stack(home=tmp / "home", dags_folder=tmp / "dags", database="postgres") as stack:
        stack.create_pool("echo360_reports", 3)
        stack.wait_for_dag("my_dag")
        stack.unpause("my_dag")
        stack.create_backfill("my_dag", "2024-01-01", "2024-01-03")
        runs = stack.wait_for_runs("my_dag", 3, timeout=120)
"""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import requests

from devtools import services
from devtools.airflow_api import AirflowApi, quietly
from devtools.metadata_db import MetadataDatabase
from devtools.processes import Process, Watchdog, free_port, stop_all, wait_for

# component kind -> its job_type in Airflow's jobs
_JOB_TYPES = {"scheduler": "SchedulerJob", "triggerer": "TriggererJob", "dag-processor": "DagProcessorJob"}
# The major version of the Airflow installed beside this interpreter (read from its package metadata,
# which gives airflow.__version__ without importing Airflow into the harness): it picks the stack.
AIRFLOW_MAJOR = int(version("apache-airflow").split(".")[0])


def component_kind(name: str) -> tuple[str, int]:
    """``"triggerer-2"`` -> ``("triggerer", 2)``; ``"api-server"`` -> ``("api-server", 1)``."""
    kind, _, index = name.rpartition("-")
    if kind and index.isdigit():
        return kind, int(index)
    return name, 1


def _instances(kind: str, count: int) -> list[str]:
    return [kind if i == 1 else f"{kind}-{i}" for i in range(1, count + 1)]


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class AirflowStack(AirflowApi):
    """A real Airflow 3 made of separate component processes, driven through its REST API.

    :func:`devtools.stacks.airflow_stack` makes one, or under Airflow 2 (:data:`AIRFLOW_MAJOR`) an
    :class:`devtools.airflow2_stack.Airflow2Stack`: same calls, Airflow 2's components and API.

    :param home: AIRFLOW_HOME (created if missing; should be fresh and empty).
    :param dags_folder: the DAGs folder (the default ``dags-folder`` bundle).
    :param database: ``"sqlite"`` (file ``home/airflow.db``) or ``"postgres"`` (a fresh database
        ``airflow_e2e_<random>`` on ``pg_host:pg_port`` as ``pg_user``, trust auth, migrated or
        copied from a migrated template: :mod:`devtools.metadata_db`).
    :param executor: ``"LocalExecutor"`` or ``"CeleryExecutor"`` (PostgreSQL only; needs
        ``apache-airflow-providers-celery`` and a Redis server; its result backend is the
        metadata database).
    :param env: extra environment for every component, applied last (so it can override any
        setting made here): ``AIRFLOW_CONN_*`` JSON connections, ``AWS_*``, ``AIRFLOW__X__Y``...
    :param api_port: api-server port (a free one by default).
    :param parallelism: ``[core] parallelism`` (LocalExecutor worker processes at most).
    :param startup_timeout: seconds ``start()`` waits for all components to be healthy.
    :param schedulers: how many schedulers (``scheduler``, ``scheduler-2``, ...); > 1 needs PostgreSQL.
    :param triggerers: how many triggerers (``triggerer``, ``triggerer-2``, ...); > 1 needs PostgreSQL.
    :param celery_workers: how many Celery workers (``celery-worker``, ``celery-worker-2``, ...);
        default 1 with the CeleryExecutor, 0 otherwise.
    :param worker_concurrency: task slots of each Celery worker (``--concurrency``).
    :param broker_url: Celery's broker (default: the usual local Redis).
    :param pg_host: PostgreSQL's address (default: the usual local server; the tests pass the one
        :mod:`devtools.services` found or started, and its ``broker_url``).
    :param pg_port: its port.
    :param pg_user: its superuser (trust auth).
    """

    API_COMPONENT = "api-server"  # the component serving the REST API (not restarted: see ``watch``)
    API_PATH = "/api/v2"

    def __init__(
        self,
        home: str | os.PathLike[str],
        dags_folder: str | os.PathLike[str],
        *,
        database: str = "postgres",
        executor: str = "LocalExecutor",
        env: Mapping[str, str] | None = None,
        api_port: int | None = None,
        parallelism: int = 8,
        startup_timeout: float = 110.0,
        pg_host: str = services.HOST,
        pg_port: int = services.PG_PORT,
        pg_user: str = services.PG_USER,
        schedulers: int = 1,
        triggerers: int = 1,
        celery_workers: int | None = None,
        worker_concurrency: int = 4,
        broker_url: str = services.REDIS_URL,
    ) -> None:
        if database not in ("sqlite", "postgres"):
            raise ValueError(f"database must be 'sqlite' or 'postgres', not {database!r}")
        if executor not in ("LocalExecutor", "CeleryExecutor"):
            raise ValueError(f"executor must be LocalExecutor or CeleryExecutor, not {executor!r}")
        if executor == "CeleryExecutor" and database != "postgres":
            raise ValueError("CeleryExecutor needs database='postgres' (it is also its result backend)")
        if celery_workers is None:
            celery_workers = 1 if executor == "CeleryExecutor" else 0
        if (executor == "CeleryExecutor") != (celery_workers > 0):
            raise ValueError("the CeleryExecutor needs Celery workers, and Celery workers need it")
        if schedulers < 1 or triggerers < 1:
            raise ValueError("a stack needs at least one scheduler and one triggerer")
        if (schedulers > 1 or triggerers > 1) and database != "postgres":
            raise ValueError("several schedulers or triggerers need database='postgres'")
        self.home = Path(home).resolve()
        self.dags_folder = Path(dags_folder).resolve()
        self.database = database
        self.executor = executor
        self.extra_env = dict(env or {})
        self.api_port = api_port or free_port()
        self.parallelism = parallelism
        self.startup_timeout = startup_timeout
        self.worker_concurrency = worker_concurrency
        self.broker_url = broker_url
        self.component_names: list[str] = [
            "dag-processor",
            *_instances("scheduler", schedulers),
            *_instances("triggerer", triggerers),
            self.API_COMPONENT,
            *_instances("celery-worker", celery_workers),
        ]
        self._token = uuid.uuid4().hex[:8]  # names this stack's Celery queue and workers
        self._job_ids: dict[str, int | None] = {}  # component -> its job (current instance)
        self._claimed_jobs: set[int] = set()  # job ids matched to a component (current or past)
        self.airflow_bin = str(Path(sys.executable).parent / "airflow")
        self.components_log_dir = self.home / "logs-components"
        self.task_log_dir = self.home / "logs"
        self.metadata_db = MetadataDatabase(pg_host, pg_port, pg_user)
        self.env: dict[str, str] = {}
        self.components: dict[str, Process] = {}
        self.ready_after: float | None = None  # seconds start() took
        self.stop_took: float | None = None  # seconds stop() took to end the processes
        self._http = requests.Session()
        # Restarts a scheduler, triggerer, dag-processor or Celery worker that exits, as a service
        # manager would; the api-server's exit ends every wait (see ``watch``).
        self.watchdog = Watchdog(say=lambda line: print(f"[airflow] {line}", flush=True))

    @property
    def base_url(self) -> str:
        return f"http://localhost:{self.api_port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}{self.API_PATH}"

    def celery_hostname(self, component: str) -> str:
        """The ``--celery-hostname`` of a worker component (its Celery node is ``celery@<this>``)."""
        return f"{component}-{self._token}"

    @property
    def sql_alchemy_conn(self) -> str:
        if self.database == "sqlite":
            return f"sqlite:///{self.home / 'airflow.db'}"
        return self.metadata_db.url

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> AirflowStack:
        """Create the database, migrate it, start every component and wait until all are healthy."""
        t0 = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(parents=True, exist_ok=True)

        def left() -> float:
            return max(1.0, t0 + self.startup_timeout - time.monotonic())

        try:
            migrated = self.database == "postgres" and self.metadata_db.create()
            self.env = self._build_env()
            self._prepare_database(migrated)
            self.components = {name: self._process(name, self._argv(name)) for name in self.component_names}
            later = [
                n
                for n in self.component_names
                if component_kind(n)[1] > 1 and component_kind(n)[0] in _JOB_TYPES
            ]
            for name in self.component_names:
                if name not in later:
                    self._start(name)
            for name in later:  # once the previous instance of its kind has its job
                kind, index = component_kind(name)
                elder = kind if index == 2 else f"{kind}-{index - 1}"
                wait_for(
                    lambda e=elder: quietly(self.job_id, e),
                    left(),
                    f"{elder}'s job",
                    watch=self._running(),
                )
                self._start(name)
            self.wait_healthy(timeout=left())
        except BaseException:
            self.stop()
            raise
        self.ready_after = time.monotonic() - t0
        for name, process in self.components.items():
            restartable = component_kind(name)[0] != self.API_COMPONENT
            self.watchdog.watch(name, process, functools.partial(self.restart, name) if restartable else None)
        self.watchdog.start()
        return self

    def _prepare_database(self, migrated: bool) -> None:
        """Migrate the database unless it is a copy of a migrated one (see :mod:`devtools.metadata_db`)."""
        if migrated:
            return
        self._process("db-migrate", ["db", "migrate"]).run(timeout=300)
        if self.database == "postgres":
            self.metadata_db.save_as_template()

    def stop(self) -> None:
        """Stop every component and all they started (see :func:`devtools.processes.stop_all`);
        drop the database."""
        t0 = time.monotonic()
        self.watchdog.stop()  # what is stopped now is not to be restarted
        stop_all(self.components.values())
        self.stop_took = time.monotonic() - t0
        self._http.close()
        self.metadata_db.drop()

    def leftover_processes(self) -> list[int]:
        """Pids still running in any session this stack started (empty after ``stop()``)."""
        return sorted({pid for process in self.components.values() for pid in process.leftovers()})

    def _process(self, name: str, args: list[str]) -> Process:
        return Process(
            [self.airflow_bin, *args],
            name=name,
            log_path=self.components_log_dir / f"{name}.log",
            env=self.env,
            cwd=self.home,
            # The components are stopped together, and nothing waits on a graceful exit: the triggerer
            # alone would take 10 s to end its trigger runner.
            stop_timeout=5,
        )

    def _argv(self, name: str) -> list[str]:
        kind, index = component_kind(name)
        # Second and later instances serve no logs: the ports are taken by the first one, and the
        # api-server reads the task and trigger logs from the shared log folder anyway.
        skip_serve_logs = ["--skip-serve-logs"] if index > 1 else []
        if kind == "api-server":
            return ["api-server", "--port", str(self.api_port), "--host", "127.0.0.1"]
        if kind == "dag-processor":
            return [kind]
        if kind in ("scheduler", "triggerer"):
            return [kind, *skip_serve_logs]
        worker = ["celery", "worker", "--concurrency", str(self.worker_concurrency)]
        return [*worker, "--celery-hostname", self.celery_hostname(name), *skip_serve_logs]

    def _start(self, name: str) -> None:
        self._job_ids[name] = None
        self.components[name].start()

    def _running(self) -> list[Process]:
        return [process for process in self.components.values() if process.popen is not None]

    def pid(self, component: str) -> int | None:
        return self.components[component].pid

    def is_alive(self, component: str) -> bool:
        return self.components[component].alive

    def kill(
        self, component: str, sig: int = signal.SIGKILL, *, scope: str = "group", wait: float = 30
    ) -> None:
        """Send ``sig`` to a component and wait up to ``wait`` s for its main process to exit.

        ``scope``: ``"process"`` (the main process only), ``"group"`` (its process group: e.g. the
        triggerer and its trigger runner, the scheduler and its LocalExecutor workers with the
        task supervisors, a Celery worker and its pool processes with the task supervisors, but
        not the task processes, which have their own groups) or ``"session"`` (everything it
        started, task processes included). The watchdog leaves it down until ``restart()``.
        """
        self.watchdog.hold(component)
        self.components[component].kill(sig, scope, wait)

    def restart(self, component: str) -> None:
        """Start the component again, after stopping it (SIGTERM, then SIGKILL) if it still runs.

        Processes the old instance left behind (e.g. task processes after a kill -9) are left as a
        real crash would leave them; ``stop()`` sweeps them.
        """
        self._job_ids[component] = None
        self.components[component].restart()
        self.watchdog.release(component)

    # ------------------------------------------------------------------ configuration
    def _base_env(self) -> dict[str, str]:
        """This environment without Airflow settings, and the settings of every Airflow version."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AIRFLOW__") and k not in ("AIRFLOW_HOME", "AIRFLOW_CONFIG")
        }
        fernet_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__FERNET_KEY": fernet_key,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                # Log servers of the scheduler (LocalExecutor workers) and triggerer: free ports so
                # that several stacks can run side by side.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.task_log_dir),
                # Short heartbeats, polls and intervals, suited to tests (the same names on 2 and 3).
                "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__SCHEDULER__POOL_METRICS_INTERVAL": "60",
                "AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5",
                # The tasks of a scheduler that died are reset for another one within seconds of its
                # death being noticed (30 s without a heartbeat), not up to 5 minutes later.
                "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            }
        )
        return env

    def _build_env(self) -> dict[str, str]:
        env = self._base_env()
        env.update(
            {
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                # No login: every request is an admin (SimpleAllAdminMiddleware adds the JWT).
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__EXPOSE_STACKTRACE": "True",
                # The same secrets for every component (JWTs for the Execution API, sessions).
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(64),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                # dag-processor: notice new files within seconds, re-parse often.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "300",
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
                # A task killed with its worker is noticed in ~1 minute, not 5.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                # The task supervisor sleeps in select() up to this long after its task process
                # has closed its sockets: with the default 5 s it reports a defer() exit late,
                # which delays every hand-off and opens Airflow's "stale executor success after
                # resume" race (apache/airflow#66374, #71580, #72716) for short deferrals.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            }
        )
        if self.executor == "CeleryExecutor":
            env.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.sql_alchemy_conn}",
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                    # Tasks go to (and workers serve) this stack's queue only.
                    "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"airflow-stack-{self._token}",
                }
            )
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ jobs and health
    def job_id(self, component: str) -> int | None:
        """Id of Airflow's job of the component's current instance (None until it has one)."""
        if self._job_ids.get(component) is None:
            self._match_jobs()
        return self._job_ids.get(component)

    def _match_jobs(self) -> dict[int, dict[str, Any]]:
        """Airflow's jobs (``GET /jobs``) by id, once each unmatched running job is given to the
        component of its kind started before it and still without a job. Instances of one kind
        start one after the other, so at most one candidate waits, except after simultaneous
        restarts of one kind (then the earliest-started one gets the oldest job)."""
        rows = {row["id"]: row for row in self._paged("/jobs", "jobs")}
        for job_id, row in sorted(rows.items()):
            kind = next((k for k, t in _JOB_TYPES.items() if t == row["job_type"]), None)
            started = _time(row["start_date"])
            if kind is None or job_id in self._claimed_jobs or row["end_date"] or started is None:
                continue
            candidates = [
                name
                for name, process in self.components.items()
                if component_kind(name)[0] == kind
                and self._job_ids.get(name) is None
                and process.started_at is not None
                and started >= process.started_at
            ]
            if candidates:
                name = min(candidates, key=lambda n: self.components[n].started_at or started)
                self._job_ids[name] = job_id
                self._claimed_jobs.add(job_id)
        return rows

    def _unhealthy(self) -> list[str]:
        """Components not healthy yet: a job whose heartbeat is older than the latest (re)start, a
        Celery worker that has not logged ``celery@<hostname> ready.`` since then; all of them
        while the api-server does not answer."""
        jobs = quietly(self._match_jobs)
        if jobs is None:
            return list(self.components)
        waiting = []
        for name, process in self.components.items():
            kind = component_kind(name)[0]
            if kind in _JOB_TYPES:
                job = jobs.get(self._job_ids.get(name) or -1) or {}
                beat = _time(job.get("latest_heartbeat"))
                if job.get("state") != "running" or beat is None or beat < (process.started_at or beat):
                    waiting.append(name)
            elif kind == "celery-worker":
                if f"celery@{self.celery_hostname(name)} ready." not in process.output(since_start=True):
                    waiting.append(name)
        return waiting

    def wait_healthy(self, timeout: float = 90) -> None:
        """Wait until every component runs and is healthy (see ``_unhealthy``); raise at once if a
        component exits."""
        wait_for(
            lambda: not self._unhealthy(), timeout, "every component to be healthy", watch=self._running()
        )

    def stuck_report(self) -> str:
        return "\n".join(process.tail(30) for process in self.components.values())

    # ------------------------------------------------------------------ logs
    def component_logs(self) -> dict[str, str]:
        """Text of every component log (``home/logs-components/*.log``) by component name."""
        return {
            p.stem: p.read_text("utf-8", "replace") for p in sorted(self.components_log_dir.glob("*.log"))
        }

    def task_log_texts(self) -> dict[str, str]:
        """Text of every task log file under ``home/logs`` (dag-processor logs excluded), by path."""
        if not self.task_log_dir.is_dir():
            return {}
        return {
            str(p.relative_to(self.task_log_dir)): p.read_text("utf-8", "replace")
            for p in sorted(self.task_log_dir.rglob("*"))
            if p.is_file() and p.relative_to(self.task_log_dir).parts[0].startswith("dag_id=")
        }


def dump_json(obj: Any) -> str:
    """Pretty JSON for assertion messages."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str)


def task_pids(ti_id: str) -> list[int]:
    """The processes of a running task instance: the Task SDK titles them ``airflow worker -- <ti id>``."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines() if f"airflow worker -- {ti_id}" in line]
