"""Run a real Airflow 3 (dag-processor, scheduler, triggerer, api-server) for e2e tests and demos.

Each component is a separate ``airflow`` CLI process in its own session (and process group),
logging to ``<home>/logs-components/<name>.log``; ``stop()`` ends every process of those sessions
and their descendants, so nothing outlives the stack. The metadata database is either an SQLite
file in ``home`` or a fresh, uniquely named PostgreSQL database on the local server (dropped at
``stop()``).

Distributed deployment (PostgreSQL only): ``schedulers=2, triggerers=2`` run several schedulers and
triggerers (components ``scheduler``, ``scheduler-2``, ``triggerer``, ``triggerer-2``, ...), and
``executor="CeleryExecutor", celery_workers=2`` runs Celery workers (``celery-worker``,
``celery-worker-2``, ...) on the local Redis server, in a Redis database of their own (claimed, and
flushed at start and at stop). Each scheduler/triggerer/dag-processor process is matched to its row
in the ``job`` table (``job_id(name)``): a second instance of a kind is started only once the
first one's job exists, so that the match is certain.

Authentication: the SimpleAuthManager runs with ``[core] simple_auth_manager_all_admins = True``;
in that mode the api-server installs ``SimpleAllAdminMiddleware``, which adds an admin JWT to every
request, so REST calls need no token at all (``GET /auth/token`` would also hand one out).

Usage::

    with AirflowStack(home=tmp / "home", dags_folder=tmp / "dags", database="postgres") as stack:
        stack.create_pool("echo360_reports", 3)
        stack.wait_for_dag("my_dag")
        stack.unpause("my_dag")
        stack.create_backfill("my_dag", "2024-01-01", "2024-01-03")
        runs = stack.wait_for_runs("my_dag", 3, timeout=120)
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

COMPONENTS: tuple[str, ...] = ("dag-processor", "scheduler", "triggerer", "api-server")
# component kind -> its job_type in the `job` table
_JOB_TYPES = {"scheduler": "SchedulerJob", "triggerer": "TriggererJob", "dag-processor": "DagProcessorJob"}
_REDIS_CLAIM_KEY = "airflow-stack:claim:db{}"  # in Redis db 0: which stack uses broker db N
_REDIS_CLAIM_TTL = 6 * 3600  # seconds; a crashed stack's claim lapses after this
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
_PG_ADMIN_DB = "postgres"
# component -> (key in /monitor/health, its heartbeat field)
_HEALTH_KEYS = {
    "scheduler": ("scheduler", "latest_scheduler_heartbeat"),
    "triggerer": ("triggerer", "latest_triggerer_heartbeat"),
    "dag-processor": ("dag_processor", "latest_dag_processor_heartbeat"),
}


class AirflowStackError(RuntimeError):
    """Raised when the stack cannot start, a REST call fails or a wait times out."""


class ApiError(AirflowStackError):
    """A non-2xx answer of the REST API (status and body kept)."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:4000]}")
        self.method = method
        self.url = url
        self.status = status
        self.body = body


@dataclass
class _Component:
    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: datetime | None = None
    log_offset: int = 0  # size of the log file when the latest instance started
    job_id: int | None = None  # its row in the `job` table (PostgreSQL stacks)


def component_kind(name: str) -> tuple[str, int]:
    """``"triggerer-2"`` -> ``("triggerer", 2)``; ``"api-server"`` -> ``("api-server", 1)``."""
    kind, _, index = name.rpartition("-")
    if kind and index.isdigit():
        return kind, int(index)
    return name, 1


def _instances(kind: str, count: int) -> list[str]:
    return [kind if i == 1 else f"{kind}-{i}" for i in range(1, count + 1)]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (the usual bind-to-0 trick; racy but fine locally)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _iso(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


class AirflowStack:
    """A real Airflow 3 made of separate component processes, driven through its REST API.

    :param home: AIRFLOW_HOME (created if missing; should be fresh and empty).
    :param dags_folder: the DAGs folder (the default ``dags-folder`` bundle).
    :param database: ``"sqlite"`` (file ``home/airflow.db``) or ``"postgres"`` (a fresh database
        ``airflow_e2e_<random>`` on ``pg_host:pg_port`` as ``pg_user``, trust auth).
    :param executor: ``"LocalExecutor"`` or ``"CeleryExecutor"`` (PostgreSQL only; needs
        ``apache-airflow-providers-celery`` and a Redis server; its result backend is the
        metadata database).
    :param env: extra environment for every component, applied last (so it can override any
        setting made here): ``AIRFLOW_CONN_*`` JSON connections, ``AWS_*``, ``AIRFLOW__X__Y``...
    :param api_port: api-server port (a free one by default).
    :param parallelism: ``[core] parallelism`` (LocalExecutor worker processes at most).
    :param keep: keep the PostgreSQL database (and print its name) at ``stop()``.
    :param fast: small heartbeat/poll/parse intervals suited to tests.
    :param startup_timeout: seconds ``start()`` waits for all components to be healthy.
    :param schedulers: how many schedulers (``scheduler``, ``scheduler-2``, ...); > 1 needs PostgreSQL.
    :param triggerers: how many triggerers (``triggerer``, ``triggerer-2``, ...); > 1 needs PostgreSQL.
    :param celery_workers: how many Celery workers (``celery-worker``, ``celery-worker-2``, ...);
        default 1 with the CeleryExecutor, 0 otherwise.
    :param worker_concurrency: task slots of each Celery worker (``--concurrency``).
    :param redis_url: the Redis server of Celery's broker, without a database number.
    :param redis_db: Redis database number of the broker; by default the first of 1..15 that no
        other stack has claimed. It is claimed (a key in db 0) and flushed at start and at stop.
    """

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
        keep: bool = False,
        fast: bool = True,
        startup_timeout: float = 110.0,
        pg_host: str = "127.0.0.1",
        pg_port: int = 5432,
        pg_user: str = "postgres",
        schedulers: int = 1,
        triggerers: int = 1,
        celery_workers: int | None = None,
        worker_concurrency: int = 4,
        redis_url: str = "redis://127.0.0.1:6379",
        redis_db: int | None = None,
    ) -> None:
        if database not in ("sqlite", "postgres"):
            raise ValueError(f"database must be 'sqlite' or 'postgres', not {database!r}")
        if executor not in ("LocalExecutor", "CeleryExecutor"):
            raise ValueError(f"executor must be LocalExecutor or CeleryExecutor, not {executor!r}")
        if executor == "CeleryExecutor" and database != "postgres":
            raise ValueError("CeleryExecutor needs database='postgres' (it is also its result backend)")
        if celery_workers is None:
            celery_workers = 1 if executor == "CeleryExecutor" else 0
        if executor == "CeleryExecutor" and celery_workers < 1:
            raise ValueError("CeleryExecutor needs at least one Celery worker")
        if executor != "CeleryExecutor" and celery_workers:
            raise ValueError("celery_workers needs executor='CeleryExecutor'")
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
        self.keep = keep
        self.fast = fast
        self.startup_timeout = startup_timeout
        self.pg_host, self.pg_port, self.pg_user = pg_host, pg_port, pg_user
        self.redis_url = redis_url.rstrip("/")
        self.redis_db = redis_db
        self.worker_concurrency = worker_concurrency
        self.component_names: list[str] = [
            "dag-processor",
            *_instances("scheduler", schedulers),
            *_instances("triggerer", triggerers),
            "api-server",
            *_instances("celery-worker", celery_workers),
        ]
        self._token = uuid.uuid4().hex[:8]  # names this stack's Celery workers
        self._redis_claim: str | None = None  # the claim key in Redis db 0, once claimed
        self._claimed_jobs: set[int] = set()  # job ids matched to a component (current or past)
        self._pending: list[str] = []  # second and later instances waiting for the previous one's job
        self._db_conn: Any = None
        self.airflow_bin = str(Path(sys.executable).parent / "airflow")
        self.components_log_dir = self.home / "logs-components"
        self.task_log_dir = self.home / "logs"
        self.db_name: str | None = None
        self.env: dict[str, str] = {}
        self.components: dict[str, _Component] = {}
        self.ready_after: float | None = None  # seconds start() took
        self.stop_took: float | None = None  # seconds stop() took to end the processes
        self._db_created = False
        self._sessions: set[int] = set()  # every component session ever started, for cleanup
        self._http = requests.Session()

    # ------------------------------------------------------------------ properties
    @property
    def base_url(self) -> str:
        return f"http://localhost:{self.api_port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v2"

    @property
    def broker_url(self) -> str:
        if self.redis_db is None:
            raise AirflowStackError("no Redis database claimed yet (start() the stack first)")
        return f"{self.redis_url}/{self.redis_db}"

    def celery_hostname(self, component: str) -> str:
        """The ``--celery-hostname`` of a worker component (its Celery node is ``celery@<this>``)."""
        return f"{component}-{self._token}"

    @property
    def sql_alchemy_conn(self) -> str:
        if self.database == "sqlite":
            return f"sqlite:///{self.home / 'airflow.db'}"
        assert self.db_name, "database not created yet"
        return f"postgresql+psycopg2://{self.pg_user}@{self.pg_host}:{self.pg_port}/{self.db_name}"

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> AirflowStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> AirflowStack:
        """Create the database, migrate it, start every component and wait until all are healthy."""
        t0 = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        self.components_log_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.database == "postgres":
                self._create_database()
            if self.executor == "CeleryExecutor":
                self._claim_redis_db()
            self.env = self._build_env()
            self._run_logged(["db", "migrate"], "db-migrate", timeout=300)
            for name in self.component_names:
                kind, index = component_kind(name)
                if index > 1 and kind in _JOB_TYPES:
                    self._pending.append(name)  # started by wait_healthy() once its elder has a job
                else:
                    self._start_component(name)
            self.wait_healthy(timeout=max(1.0, t0 + self.startup_timeout - time.monotonic()))
        except AirflowStackError:
            self.stop()
            raise
        except BaseException:
            sys.stderr.write(f"AirflowStack failed to start; component logs:\n{self._log_tails()}\n")
            self.stop()
            raise
        self.ready_after = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """SIGTERM every component's process group, wait, SIGKILL leftovers, drop the database.

        Leftovers are found by session: each component is a session leader, and everything it
        starts (LocalExecutor workers, task supervisors, task processes in their own process
        groups, log servers) stays in its session, or is a descendant of such a process.
        """
        t0 = time.monotonic()
        snapshot = _session_processes(self._sessions)
        for sid in self._sessions:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(sid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for comp in self.components.values():
            if comp.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    comp.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        # Processes outside the components' own groups (task processes, possibly orphaned by a
        # kill -9 of their supervisor) get their own SIGTERM, then a few seconds.
        left = _still_running(snapshot) | _session_processes(self._sessions)
        for pid, _start in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = _still_running(snapshot) | _session_processes(self._sessions)
        for _ in range(3):
            left = _still_running(snapshot) | _session_processes(self._sessions)
            if not left:
                break
            for pid, _start in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            snapshot |= left
            time.sleep(0.3)
        for comp in self.components.values():
            if comp.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    comp.proc.wait(timeout=10)
            comp.proc = None
        self._http.close()
        self._pending.clear()
        self.stop_took = time.monotonic() - t0
        if self._db_conn is not None:
            with contextlib.suppress(Exception):
                self._db_conn.close()
            self._db_conn = None
        self._release_redis_db()
        if self._db_created and not self.keep:
            self._drop_database()
        elif self._db_created:
            sys.stderr.write(f"AirflowStack: keeping database {self.db_name} ({self.sql_alchemy_conn})\n")

    def leftover_processes(self) -> list[int]:
        """Pids still running in any session this stack started (empty after ``stop()``)."""
        return sorted(pid for pid, _ in _session_processes(self._sessions))

    # ------------------------------------------------------------------ configuration
    def _build_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AIRFLOW__") and k not in ("AIRFLOW_HOME", "AIRFLOW_CONFIG")
        }
        fernet_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        cfg = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__FERNET_KEY": fernet_key,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            # No login: every request is an admin (SimpleAllAdminMiddleware adds the JWT).
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__EXPOSE_STACKTRACE": "True",
            # The same secrets for every component (JWTs for the Execution API, sessions).
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(64),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            # Log servers of the scheduler (LocalExecutor workers) and triggerer: free ports so
            # that several stacks can run side by side.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.task_log_dir),
        }
        if self.executor == "CeleryExecutor":
            cfg.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.sql_alchemy_conn}",
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                }
            )
        if self.fast:
            cfg.update(
                {
                    # dag-processor: notice new files within seconds, re-parse often.
                    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
                    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                    "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "300",
                    "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
                    "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "5",
                    # scheduler / triggerer: frequent heartbeats, short idle sleep.
                    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
                    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                    "AIRFLOW__SCHEDULER__POOL_METRICS_INTERVAL": "60",
                    "AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL": "30",
                    "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5",
                    # A task killed with its worker is noticed in ~1 minute, not 5.
                    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
                    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                    # The task supervisor sleeps in select() up to this long after its task process
                    # has closed its sockets: with the default 5 s it reports a defer() exit late,
                    # which delays every hand-off and opens Airflow's "stale executor success after
                    # resume" race (apache/airflow#66374, #71580, #72716) for short deferrals.
                    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                }
            )
        env.update(cfg)
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ postgres
    def _pg_connect(self, dbname: str = _PG_ADMIN_DB) -> Any:
        import psycopg2

        conn = psycopg2.connect(host=self.pg_host, port=self.pg_port, user=self.pg_user, dbname=dbname)
        conn.autocommit = True
        return conn

    def _create_database(self) -> None:
        self.db_name = f"airflow_e2e_{uuid.uuid4().hex[:12]}"
        conn = self._pg_connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            conn.close()
        self._db_created = True

    def db_query(
        self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of a query on the metadata database (PostgreSQL stacks), as dicts, autocommitted."""
        if self.database != "postgres" or not self.db_name:
            raise AirflowStackError("db_query() needs a started PostgreSQL stack")
        for attempt in (1, 2):
            if self._db_conn is None or self._db_conn.closed:
                self._db_conn = self._pg_connect(self.db_name)
            try:
                with self._db_conn.cursor() as cur:
                    cur.execute(sql, params)
                    if cur.description is None:
                        return []
                    columns = [col.name for col in cur.description]
                    return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
            except Exception:
                with contextlib.suppress(Exception):
                    self._db_conn.close()
                self._db_conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def jobs(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Rows of the ``job`` table (of one component kind, e.g. ``"triggerer"``), oldest first."""
        types = [_JOB_TYPES[kind]] if kind else list(_JOB_TYPES.values())
        return self.db_query(
            "SELECT id, job_type, state, hostname, start_date, end_date, latest_heartbeat"
            " FROM job WHERE job_type = ANY(%s) ORDER BY id",
            (types,),
        )

    def job_id(self, component: str) -> int | None:
        """Id of the ``job`` row of the component's latest instance (None until it has one)."""
        comp = self.components[component]
        if comp.job_id is None and self.database == "postgres":
            self._match_jobs()
        return comp.job_id

    def _match_jobs(self) -> list[dict[str, Any]]:
        """Give each unmatched job row to the component of its kind started before it and still
        without a job. Instances of one kind start one after the other (see ``_jobs_waiting``),
        so at most one candidate waits, except after simultaneous restarts of one kind (then the
        earliest-started one gets the oldest job)."""
        rows = self.jobs()
        for row in rows:
            if row["id"] in self._claimed_jobs or row["end_date"] is not None:
                continue
            kind = next(k for k, t in _JOB_TYPES.items() if t == row["job_type"])
            candidates = [
                comp
                for name, comp in self.components.items()
                if component_kind(name)[0] == kind
                and comp.job_id is None
                and comp.started_at is not None
                and row["start_date"] is not None
                and row["start_date"] >= comp.started_at
            ]
            if candidates:
                comp = min(candidates, key=lambda c: c.started_at or datetime.max.replace(tzinfo=UTC))
                comp.job_id = row["id"]
                self._claimed_jobs.add(row["id"])
        return rows

    # ------------------------------------------------------------------ redis (Celery broker)
    def _redis(self, db: int) -> Any:
        import redis

        return redis.Redis.from_url(f"{self.redis_url}/{db}", socket_timeout=10)

    def _claim_redis_db(self) -> None:
        """Claim a broker database (a key in db 0, with a TTL, so that concurrent stacks never share
        one) and flush it."""
        owner = f"{socket.gethostname()}:{os.getpid()}:{self._token}"
        admin = self._redis(0)
        try:
            if self.redis_db is not None:
                candidates = [self.redis_db]
            else:
                try:
                    databases = int(admin.config_get("databases").get("databases", 16))
                except Exception:
                    databases = 16
                candidates = list(range(1, databases))
            for db in candidates:
                key = _REDIS_CLAIM_KEY.format(db)
                if admin.set(key, owner, nx=True, ex=_REDIS_CLAIM_TTL) or (
                    _claim_is_stale(admin.get(key)) and admin.set(key, owner, ex=_REDIS_CLAIM_TTL)
                ):
                    self.redis_db, self._redis_claim = db, key
                    break
            else:
                raise AirflowStackError(
                    f"no free Redis database for the Celery broker among {candidates} on {self.redis_url}"
                    f" (claimed by other stacks: keys {_REDIS_CLAIM_KEY.format('*')} in db 0)"
                )
        finally:
            admin.close()
        client = self._redis(self.redis_db)
        try:
            client.flushdb()
        finally:
            client.close()

    def _release_redis_db(self) -> None:
        if self._redis_claim is None or self.redis_db is None:
            return
        with contextlib.suppress(Exception):
            client = self._redis(self.redis_db)
            client.flushdb()
            client.close()
        with contextlib.suppress(Exception):
            admin = self._redis(0)
            admin.delete(self._redis_claim)
            admin.close()
        self._redis_claim = None

    def _drop_database(self) -> None:
        conn = self._pg_connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        finally:
            conn.close()
        self._db_created = False

    # ------------------------------------------------------------------ processes
    def cli(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` with the stack's environment; return the completed process."""
        if not self.env:
            raise AirflowStackError("start() the stack first")
        res = subprocess.run(
            [self.airflow_bin, *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
        if check and res.returncode != 0:
            raise AirflowStackError(
                f"airflow {' '.join(args)} exited {res.returncode}\n{_tail(res.stdout)}\n{_tail(res.stderr)}"
            )
        return res

    def _run_logged(self, args: list[str], name: str, timeout: float) -> None:
        log_path = self.components_log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            res = subprocess.run(
                [self.airflow_bin, *args],
                env=self.env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                start_new_session=True,
            )
        if res.returncode != 0:
            raise AirflowStackError(
                f"airflow {' '.join(args)} exited {res.returncode}:\n"
                f"{_tail(log_path.read_text('utf-8', 'replace'))}"
            )

    def _argv(self, name: str) -> list[str]:
        kind, index = component_kind(name)
        if name not in self.component_names:
            raise ValueError(f"unknown component {name!r}; known: {', '.join(self.component_names)}")
        # Second and later instances serve no logs: the ports are taken by the first one, and the
        # api-server reads the task and trigger logs from the shared log folder anyway.
        skip_serve_logs = ["--skip-serve-logs"] if index > 1 else []
        if kind == "api-server":
            return [self.airflow_bin, "api-server", "--port", str(self.api_port), "--host", "127.0.0.1"]
        if kind == "dag-processor":
            return [self.airflow_bin, kind]
        if kind in ("scheduler", "triggerer"):
            return [self.airflow_bin, kind, *skip_serve_logs]
        if kind == "celery-worker":
            return [
                self.airflow_bin,
                "celery",
                "worker",
                "--concurrency",
                str(self.worker_concurrency),
                "--celery-hostname",
                self.celery_hostname(name),
                *skip_serve_logs,
            ]
        raise ValueError(f"unknown component {name!r}")

    def _start_component(self, name: str) -> None:
        comp = self.components.get(name)
        if comp is None:
            comp = _Component(name, self._argv(name), self.components_log_dir / f"{name}.log")
            self.components[name] = comp
        comp.job_id = None
        with open(comp.log_path, "ab") as log:
            comp.started_at = datetime.now(UTC)
            log.write(f"\n===== AirflowStack: starting {name} at {comp.started_at.isoformat()}\n".encode())
            log.flush()
            comp.log_offset = log.tell()
            comp.proc = subprocess.Popen(
                comp.argv,
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._sessions.add(comp.proc.pid)

    def pid(self, component: str) -> int | None:
        comp = self.components.get(component)
        return comp.proc.pid if comp and comp.proc and comp.proc.poll() is None else None

    def is_alive(self, component: str) -> bool:
        return self.pid(component) is not None

    def kill(
        self, component: str, sig: int = signal.SIGKILL, *, scope: str = "group", wait: float = 30
    ) -> None:
        """Send ``sig`` to a component and wait up to ``wait`` s for its main process to exit.

        ``scope``: ``"process"`` (the main process only), ``"group"`` (its process group: e.g. the
        triggerer and its trigger runner, the scheduler and its LocalExecutor workers with the
        task supervisors, a Celery worker and its pool processes with the task supervisors, but
        not the task processes, which have their own groups) or
        ``"session"`` (everything it started, task processes included).
        """
        comp = self.components[component]
        if comp.proc is None:
            return
        pid = comp.proc.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if scope == "process":
                os.kill(pid, sig)
            elif scope == "group":
                os.killpg(pid, sig)
            elif scope == "session":
                for member, _ in _session_processes({pid}):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(member, sig)
            else:
                raise ValueError(f"scope must be process, group or session, not {scope!r}")
        with contextlib.suppress(subprocess.TimeoutExpired):
            comp.proc.wait(timeout=wait)

    def restart(self, component: str) -> None:
        """Start the component again, after stopping it (SIGTERM, then SIGKILL) if it still runs.

        Processes the old instance left behind (e.g. task processes after a kill -9) are left as a
        real crash would leave them; ``stop()`` sweeps them.
        """
        comp = self.components[component]
        if comp.proc is not None and comp.proc.poll() is None:
            self.kill(component, signal.SIGTERM, wait=30)
            if comp.proc.poll() is None:
                self.kill(component, signal.SIGKILL, wait=10)
        self._start_component(component)

    # ------------------------------------------------------------------ readiness
    def health(self) -> dict[str, Any]:
        return self.api("GET", "/monitor/health")

    def wait_healthy(self, timeout: float = 90) -> dict[str, Any]:
        """Wait until every component runs and ``/monitor/health`` shows each one healthy.

        A component counts as healthy only once its job has heartbeated after its latest
        (re)start, so after ``restart("triggerer")`` this waits for the new triggerer, not the
        dead one's last heartbeat. On PostgreSQL that holds for each scheduler and triggerer
        instance (its own row in the ``job`` table), and a Celery worker is healthy once its log
        says ``celery@<hostname> ready.``. Raises at once if a component process exits.
        """
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            for name, comp in self.components.items():
                if comp.proc is not None and comp.proc.poll() is not None:
                    raise AirflowStackError(
                        f"{name} exited with {comp.proc.returncode}:\n"
                        f"{_tail(comp.log_path.read_text('utf-8', 'replace'))}"
                    )
            waiting: list[str] = []
            try:
                last = self.health()
                if self.database == "postgres":
                    waiting = self._jobs_waiting()
            except (requests.RequestException, ApiError) as e:
                last = e
            else:
                waiting += [name for name in self.components if not self._worker_ready(name)]
                if (
                    not waiting
                    and not self._pending
                    and last.get("metadatabase", {}).get("status") == "healthy"
                    and all(self._job_healthy(last, name) for name in _HEALTH_KEYS if name in self.components)
                ):
                    return dict(last)
            if time.monotonic() > deadline:
                raise AirflowStackError(
                    f"Airflow not healthy after {timeout:.0f}s; waiting for {waiting + self._pending};"
                    f" last health: {last!r}\n{self._log_tails()}"
                )
            time.sleep(0.5)

    def _jobs_waiting(self) -> list[str]:
        """Components whose job has not heartbeated since their start; starts pending instances
        whose elder has its job."""
        rows = {row["id"]: row for row in self._match_jobs()}
        for name in list(self._pending):
            kind, index = component_kind(name)
            elder = kind if index == 2 else f"{kind}-{index - 1}"
            if self.components.get(elder) is not None and self.components[elder].job_id is not None:
                self._pending.remove(name)
                self._start_component(name)
        waiting = []
        for name, comp in self.components.items():
            if component_kind(name)[0] not in _JOB_TYPES or comp.proc is None:
                continue
            row = rows.get(comp.job_id) if comp.job_id is not None else None
            if (
                row is None
                or row["state"] != "running"
                or row["latest_heartbeat"] is None
                or (comp.started_at is not None and row["latest_heartbeat"] < comp.started_at)
            ):
                waiting.append(name)
        return waiting

    def _worker_ready(self, name: str) -> bool:
        """A Celery worker logged ``celery@<hostname> ready.`` since its latest start (others: True)."""
        comp = self.components[name]
        if component_kind(name)[0] != "celery-worker" or comp.proc is None:
            return True
        with open(comp.log_path, "rb") as f:
            f.seek(comp.log_offset)
            text = f.read()
        return f"celery@{self.celery_hostname(name)} ready.".encode() in text

    def _job_healthy(self, health: dict[str, Any], component: str) -> bool:
        key, hb_key = _HEALTH_KEYS[component]
        info = health.get(key) or {}
        if info.get("status") != "healthy" or not info.get(hb_key):
            return False
        started = self.components[component].started_at
        return started is None or datetime.fromisoformat(info[hb_key]) >= started

    # ------------------------------------------------------------------ REST
    def api(self, method: str, path: str, **kw: Any) -> Any:
        """Call ``/api/v2<path>``; return the decoded JSON (None when empty); raise on non-2xx."""
        url = path if path.startswith("http") else f"{self.api_url}/{path.lstrip('/')}"
        kw.setdefault("timeout", 30)
        resp = self._http.request(method, url, **kw)
        if not 200 <= resp.status_code < 300:
            raise ApiError(method, url, resp.status_code, resp.text)
        if not resp.content:
            return None
        return resp.json()

    def _paged(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.api("GET", path, params={**(params or {}), "limit": 100, "offset": offset})
            items = page[key]
            out.extend(items)
            offset += len(items)
            if not items or offset >= (page.get("total_entries") or 0):
                return out

    def create_pool(
        self, name: str, slots: int, include_deferred: bool = True, description: str | None = None
    ) -> dict[str, Any]:
        """Create (or update) a pool via ``POST /api/v2/pools``."""
        body = {
            "name": name,
            "slots": slots,
            "description": description or f"{name} (AirflowStack)",
            "include_deferred": include_deferred,
        }
        try:
            return self.api("POST", "/pools", json=body)
        except ApiError as e:
            if e.status != 409:
                raise
            body.pop("name")
            return self.api("PATCH", f"/pools/{name}", json=body)

    def import_errors(self) -> list[dict[str, Any]]:
        return self._paged("/importErrors", "import_errors")

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> dict[str, Any]:
        """Wait until the dag-processor has serialized ``dag_id``; fail early on an import error."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                dag = self.api("GET", f"/dags/{dag_id}")
                # The DAG row exists once parsed; the scheduler needs its serialized form too.
                self.api("GET", f"/dags/{dag_id}/details")
                return dag
            except ApiError as e:
                if e.status != 404:
                    raise
            errors = self.import_errors()
            if errors:
                text = "\n\n".join(f"{err['filename']}:\n{err['stack_trace']}" for err in errors)
                raise AirflowStackError(f"DAG {dag_id!r} not loaded; import errors:\n{text}")
            if time.monotonic() > deadline:
                raise AirflowStackError(
                    f"DAG {dag_id!r} not parsed after {timeout}s (no import error)\n"
                    f"{_tail(self.component_logs().get('dag-processor', ''))}"
                )
            time.sleep(1)

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        return self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def unpause(self, dag_id: str) -> dict[str, Any]:
        return self.set_paused(dag_id, False)

    def pause(self, dag_id: str) -> dict[str, Any]:
        return self.set_paused(dag_id, True)

    def trigger(
        self,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        logical_date: datetime | str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Trigger a manual run (``POST /dags/{id}/dagRuns``); return its run id."""
        body: dict[str, Any] = {
            "logical_date": _iso(logical_date) if logical_date is not None else None,
            "conf": conf or {},
        }
        if run_id:
            body["dag_run_id"] = run_id
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def create_backfill(
        self,
        dag_id: str,
        from_date: datetime | str,
        to_date: datetime | str,
        max_active_runs: int = 16,
        reprocess_behavior: str = "none",
        run_backwards: bool = False,
        dag_run_conf: dict[str, Any] | None = None,
        retry_for: float = 60,
    ) -> int:
        """Create a backfill the way the UI does (``POST /api/v2/backfills``); return its id.

        On SQLite, Airflow 3.3 answers 503 "Database is locked. Backfill creation is not supported
        on SQLite under concurrent access" when a scheduler write collides with the creation; it
        removes the partial backfill first, so the request is retried (for up to ``retry_for`` s).
        """
        body: dict[str, Any] = {
            "dag_id": dag_id,
            "from_date": _iso(from_date),
            "to_date": _iso(to_date),
            "run_backwards": run_backwards,
            "dag_run_conf": dag_run_conf or {},
            "reprocess_behavior": reprocess_behavior,
            "max_active_runs": max_active_runs,
        }
        deadline = time.monotonic() + retry_for
        while True:
            try:
                return int(self.api("POST", "/backfills", json=body)["id"])
            except ApiError as e:
                if e.status != 503 or time.monotonic() > deadline:
                    raise
            time.sleep(1)

    def backfill(self, backfill_id: int) -> dict[str, Any]:
        return self.api("GET", f"/backfills/{backfill_id}")

    def dag_runs(self, dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
        params = {"run_type": run_type} if run_type else None
        return self._paged(f"/dags/{dag_id}/dagRuns", "dag_runs", params)

    def wait_for_runs(
        self, dag_id: str, expected_count: int, timeout: float = 180, run_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Wait until ``expected_count`` runs (of ``run_type`` if given) are success/failed.

        Returns every run of the DAG (of that type) at that moment, terminal or not.
        """
        deadline = time.monotonic() + timeout
        while True:
            runs = self.dag_runs(dag_id, run_type)
            if sum(r["state"] in TERMINAL_RUN_STATES for r in runs) >= expected_count:
                return runs
            if time.monotonic() > deadline:
                summary = ", ".join(f"{r['dag_run_id']}={r['state']}" for r in runs) or "no runs"
                raise AirflowStackError(
                    f"{dag_id}: fewer than {expected_count} terminal runs after {timeout}s: {summary}\n"
                    f"{self._log_tails(30)}"
                )
            time.sleep(1)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self._paged(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def task_tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """Every try of a task instance (``.../taskInstances/{task_id}/{map_index}/tries``)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        return self.api("GET", path)["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.api("GET", path, params={"deserialize": "true"})["value"]

    def clear_task(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        *,
        only_failed: bool = False,
        include_downstream: bool = False,
        reset_dag_runs: bool = True,
    ) -> list[dict[str, Any]]:
        """Clear one task instance (``POST /dags/{id}/clearTaskInstances``); return the cleared TIs."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [task_id],
            "only_failed": only_failed,
            "only_running": False,
            "reset_dag_runs": reset_dag_runs,
            "include_downstream": include_downstream,
        }
        return self.api("POST", f"/dags/{dag_id}/clearTaskInstances", json=body)["task_instances"]

    def get_token(self) -> str:
        """An admin JWT (``GET /auth/token``, allowed only in all-admins mode); rarely needed."""
        resp = self._http.get(f"{self.base_url}/auth/token", timeout=30)
        if resp.status_code not in (200, 201):
            raise ApiError("GET", f"{self.base_url}/auth/token", resp.status_code, resp.text)
        return str(resp.json()["access_token"])

    # ------------------------------------------------------------------ logs
    def component_logs(self) -> dict[str, str]:
        """Text of every component log (``home/logs-components/*.log``) by component name."""
        if not self.components_log_dir.is_dir():
            return {}
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

    def _log_tails(self, lines: int = 40, names: Iterable[str] | None = None) -> str:
        logs = self.component_logs()
        return "\n".join(
            f"----- {name} (last {lines} lines)\n{_tail(text, lines)}"
            for name, text in logs.items()
            if names is None or name in names
        )


def _claim_is_stale(owner: bytes | None) -> bool:
    """A Redis db claim (``host:pid:token``) made by a process of this host that no longer runs."""
    if not owner:
        return False
    host, _, rest = owner.decode("utf-8", "replace").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _proc_table() -> list[tuple[int, int, int, int]]:
    """(pid, ppid, session, start time) of every live, non-zombie process, from /proc (Linux)."""
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        # "pid (comm) state ppid pgrp session ... starttime(22nd field)"; comm may hold ") ".
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] in ("Z", "X"):
            continue
        rows.append((int(entry), int(fields[1]), int(fields[3]), int(fields[19])))
    return rows


def _session_processes(sessions: set[int]) -> set[tuple[int, int]]:
    """(pid, start time) of live processes in ``sessions`` and of all their descendants."""
    if not sessions:
        return set()
    table = _proc_table()
    children: dict[int, list[tuple[int, int]]] = {}
    found: set[tuple[int, int]] = set()
    for pid, ppid, sid, start in table:
        children.setdefault(ppid, []).append((pid, start))
        if sid in sessions and pid != os.getpid():
            found.add((pid, start))
    todo = [pid for pid, _ in found]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child[0])
    return found


def _still_running(procs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    if not procs:
        return set()
    live = {(pid, start) for pid, _ppid, _sid, start in _proc_table()}
    return procs & live


def dump_json(obj: Any) -> str:
    """Pretty JSON for assertion messages."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str)
