"""The metadata database of one Airflow stack on PostgreSQL: a fresh, uniquely named database on the
local (or the session's throwaway) server, created before ``airflow db migrate`` and dropped with the
stack, and the queries the tests make on it (jobs, trigger assignments, task tries) where the REST
API does not tell.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any


class MetadataDatabase:
    """A PostgreSQL database ``airflow_e2e_<random>`` for one stack (trust auth, autocommit).

    :param host: the server's address.
    :param port: its port.
    :param user: its superuser.
    """

    def __init__(self, host: str, port: int, user: str) -> None:
        self.host, self.port, self.user = host, port, user
        self.name: str | None = None

    @property
    def url(self) -> str:
        """Airflow's ``sql_alchemy_conn`` for it."""
        assert self.name, "database not created yet"
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{self.name}"

    def connect(self, dbname: str | None = None) -> Any:
        """A psycopg2 connection (autocommit) to the database (or to ``dbname``)."""
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=dbname or self.name)
        conn.autocommit = True
        return conn

    def create(self) -> None:
        name = f"airflow_e2e_{uuid.uuid4().hex[:12]}"
        with contextlib.closing(self.connect("postgres")) as conn, conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        self.name = name

    def drop(self) -> None:
        """Drop it, connections and all (nothing if it was never created)."""
        if self.name is None:
            return
        with contextlib.closing(self.connect("postgres")) as conn, conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def query(
        self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of a query, as dicts."""
        if not self.name:
            raise RuntimeError("query() needs the database created (a started PostgreSQL stack)")
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            if cur.description is None:
                return []
            columns = [col.name for col in cur.description]
            return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
