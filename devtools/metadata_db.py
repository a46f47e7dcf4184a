"""The metadata database of one Airflow stack on PostgreSQL: a fresh, uniquely named database on the
local (or the session's throwaway) server, dropped with the stack, and the queries the tests make on
it (jobs, trigger assignments, task tries) where the REST API does not tell.

``airflow db migrate`` takes 10-20 s; copying a migrated database takes a fraction of a second. So the
first stack of an Airflow installation migrates its database and saves a copy of it as a template,
``airflow_e2e_template_<hash>``, and every later stack of the same installation starts as a copy of
that (PostgreSQL's ``CREATE DATABASE ... TEMPLATE``). The hash names Airflow's distributions and their
versions, which decide the schema. The templates stay on the server for the next session (``DROP
DATABASE`` one to have it made again).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from importlib.metadata import distributions
from typing import Any

TEMPLATE_PREFIX = "airflow_e2e_template_"


@functools.cache
def template_name() -> str:
    """The template of this interpreter's Airflow installation: its schema is that of its
    distributions (Airflow, the task SDK, the providers) at their versions."""
    installed = sorted(
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in distributions()
        if (dist.metadata["Name"] or "").lower().startswith("apache-airflow")
    )
    return TEMPLATE_PREFIX + hashlib.sha256("\n".join(installed).encode()).hexdigest()[:16]


class MetadataDatabase:
    """A PostgreSQL database ``airflow_e2e_<random>`` for one stack (trust auth, autocommit).

    :param host: the server's address.
    :param port: its port.
    :param user: its superuser.
    :param template: the migrated database to copy (default: this Airflow installation's,
        :func:`template_name`).
    """

    def __init__(self, host: str, port: int, user: str, template: str | None = None) -> None:
        self.host, self.port, self.user = host, port, user
        self.template = template or template_name()
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

    def create(self) -> bool:
        """Create it, as a copy of the installation's template if there is one: True if it was
        (then it is migrated already), False if it is empty."""
        name = f"airflow_e2e_{uuid.uuid4().hex[:12]}"
        with contextlib.closing(self.connect("postgres")) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.template,))
            copied = cur.fetchone() is not None
            cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{self.template}"' if copied else ""))
        self.name = name
        return copied

    def save_as_template(self) -> None:
        """Copy it, just migrated and with no connection open, as the installation's template. A
        stack that starts beside it may have saved the template first: then that one is kept."""
        from psycopg2.errors import DuplicateDatabase

        with contextlib.closing(self.connect("postgres")) as conn, conn.cursor() as cur:
            with contextlib.suppress(DuplicateDatabase):
                cur.execute(f'CREATE DATABASE "{self.template}" TEMPLATE "{self.name}"')

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
