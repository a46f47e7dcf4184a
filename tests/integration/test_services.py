"""devtools.services: the PostgreSQL and Redis of the e2e tests, found running where they answer, otherwise
throwaway ones that really serve (a database created, a key set), on free ports, and that are gone with
their directory when the block ends, by its end, by an exception, by Ctrl-C or by SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import redis as redis_client

from devtools import services
from devtools.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.one_airflow]  # the harness's own tools


@pytest.fixture
def auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(services.MODE_VARIABLE, "auto")


@pytest.fixture
def throwaway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(services.MODE_VARIABLE, "throwaway")


def assert_gone(server: services.Postgres | services.Redis) -> None:
    assert server.process is not None
    assert not server.answers()
    assert server.process.leftovers() == []
    assert server.process.cwd is not None and not Path(server.process.cwd).exists()


def test_a_throwaway_postgres_serves_airflow_s_user_over_tcp_then_is_gone(throwaway: None) -> None:
    with services.postgres() as server:
        assert server.process is not None and server.port != services.PG_PORT
        assert "throwaway" in str(server)
        expected = {"pg_host": "127.0.0.1", "pg_port": server.port, "pg_user": "postgres"}
        assert server.stack_options() == expected
        with contextlib.closing(psycopg2.connect(**_dsn(server), dbname="postgres")) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute('CREATE DATABASE "airflow_probe"')
                cur.execute("SHOW server_version")
                (version,) = cur.fetchone()
        assert version.startswith("16.")
        with contextlib.closing(psycopg2.connect(**_dsn(server), dbname="airflow_probe")):
            pass
        if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as an unprivileged user
            assert os.stat(f"/proc/{server.process.pid}").st_uid != 0
    assert_gone(server)


def test_a_throwaway_redis_serves_then_is_gone(throwaway: None) -> None:
    with services.redis() as server:
        assert server.process is not None and server.url != services.REDIS_URL
        assert server.stack_options() == {"broker_url": server.url}
        with redis_client.Redis.from_url(server.url) as client:
            client.set("probe", "yes")
            assert client.get("probe") == b"yes"
    assert_gone(server)


def test_where_nothing_listens_at_the_usual_address_throwaway_servers_start(auto: None) -> None:
    nowhere = free_port()
    with (
        services.postgres(services.Postgres(port=nowhere)) as pg,
        services.redis(services.Redis(f"redis://127.0.0.1:{nowhere}/0")) as broker,
    ):
        assert pg.process is not None and pg.port != nowhere and pg.answers()
        assert broker.process is not None and broker.answers()
    assert_gone(pg)
    assert_gone(broker)


def test_servers_that_answer_at_the_usual_address_are_used_as_they_are(auto: None) -> None:
    with services.postgres(services.Postgres(port=free_port())) as running:
        with services.postgres(services.Postgres(port=running.port)) as found:
            assert found.process is None and found.port == running.port
            assert "found running" in str(found)
        assert running.answers()  # using it did not stop it
    with services.redis(services.Redis(f"redis://127.0.0.1:{free_port()}/0")) as running_redis:
        with services.redis(services.Redis(running_redis.url)) as found_redis:
            assert found_redis.process is None and found_redis.url == running_redis.url
        assert running_redis.answers()


def test_the_switch_takes_auto_or_throwaway_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(services.MODE_VARIABLE, "sometimes")
    with pytest.raises(ValueError, match="auto' or 'throwaway"), services.postgres():
        pass


def test_an_exception_in_the_block_stops_them(throwaway: None) -> None:
    with pytest.raises(RuntimeError), services.postgres() as pg, services.redis() as broker:
        raise RuntimeError("a failed test")
    assert_gone(pg)
    assert_gone(broker)


CHILD = """
import signal, sys, time
from devtools import services
# Ctrl-C raises KeyboardInterrupt, as in a terminal, also where this run inherited SIGINT ignored
# (started in the background by a shell without job control, or under nohup).
signal.signal(signal.SIGINT, signal.default_int_handler)
with services.postgres() as pg, services.redis() as broker:
    print(pg.port, pg.process.cwd, broker.url, broker.process.cwd, flush=True)
    time.sleep(300)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_to_the_process_that_started_them_stops_them(throwaway: None, sig: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )
    try:
        assert child.stdout is not None
        pg_port, pg_dir, url, redis_dir = child.stdout.readline().split()
        pg = services.Postgres(port=int(pg_port))
        broker = services.Redis(url)
        assert pg.answers() and broker.answers()
        child.send_signal(sig)
        child.wait(60)
    finally:
        child.kill()
    assert not pg.answers() and not broker.answers()
    assert not Path(pg_dir).exists() and not Path(redis_dir).exists()


def _dsn(server: services.Postgres) -> dict[str, object]:
    return {"host": server.host, "port": server.port, "user": server.user}
