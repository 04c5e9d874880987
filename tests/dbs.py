"""A database per test: a SQLite file by default, a fresh PostgreSQL database on request.

Set ``IHX_TEST_DATABASE_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and
every test that uses a node database gets its OWN empty PostgreSQL database instead of a SQLite
file: ``Databases.new()`` creates ``ihx_t_<random>`` on that server through an admin connection
(autocommit — CREATE DATABASE cannot run in a transaction) and ``close()`` drops every database it
made, with ``FORCE`` so a node that is still connected (or a killed child process whose backend
has not noticed yet) cannot make the drop fail. The URL's own database is only the admin
connection's; it is never written.

Nothing else in the suite needs to know which backend runs: fixtures ask ``Databases`` for a URL
and hand it to the code under test, which migrates it as a real node would. Tests that are
SQLite by nature (pragmas, file tricks) build their own ``sqlite:///`` URL and stay SQLite on
both runs. ``postgresql_admin_url()`` is for tests that need PostgreSQL whatever the run
(several replicas sharing one database): the env URL, else the local default of CI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

ENV = "IHX_TEST_DATABASE_URL"
DEFAULT_POSTGRESQL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PREFIX = "ihx_t_"


def configured_url() -> str | None:
    """The PostgreSQL server the suite was asked to run on, or None for SQLite files."""
    return os.environ.get(ENV) or None


def postgresql_admin_url() -> str:
    """A PostgreSQL server for tests that need one on every run."""
    return configured_url() or DEFAULT_POSTGRESQL


class PostgresUnavailable(RuntimeError):
    pass


class Databases:
    """Hands out database URLs for one test and removes what it created at ``close()``.

    ``admin_url`` None means SQLite files under ``directory``; otherwise PostgreSQL databases on
    the server of ``admin_url``.
    """

    def __init__(self, directory: Path, admin_url: str | None) -> None:
        self._directory = directory
        self._admin_url = admin_url
        self._admin: Engine | None = None
        self._created: list[str] = []
        self._files = 0

    @property
    def postgresql(self) -> bool:
        return self._admin_url is not None

    def new(self, label: str = "node") -> str:
        """A URL of a new, empty database (``label`` names the SQLite file)."""
        if self._admin_url is None:
            self._files += 1
            name = label if self._files == 1 else f"{label}-{self._files}"
            return f"sqlite:///{self._directory / f'{name}.db'}"
        name = PREFIX + secrets.token_hex(6)
        with self._engine().connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self._created.append(name)
        url = make_url(self._admin_url).set(database=name)
        return url.render_as_string(hide_password=False)

    def for_members(self) -> Callable[[str], str] | None:
        """``provision_federation(database_url=…)``: a new database per member on PostgreSQL;
        None (each node's ``node.db`` in its own directory) on SQLite."""
        return self.new if self.postgresql else None

    def close(self) -> None:
        if self._admin is None:
            return
        try:
            with self._admin.connect() as conn:
                for name in self._created:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            self._created.clear()
            self._admin.dispose()
            self._admin = None

    def _engine(self) -> Engine:
        if self._admin is None:
            assert self._admin_url is not None
            engine = create_engine(
                self._admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool
            )
            try:
                with engine.connect():
                    pass
            except OperationalError as error:
                engine.dispose()
                raise PostgresUnavailable(
                    f"PostgreSQL at {make_url(self._admin_url).render_as_string()} is not "
                    f"reachable ({str(error.orig).strip().splitlines()[0]}); start it "
                    "(.ci/run shows how) or unset " + ENV
                ) from None
            self._admin = engine
        return self._admin


# -- making a database refuse writes, the same way on both backends ------------------------------


def refuse_inserts(conn: Connection, table: str, message: str) -> None:
    """A trigger that makes every INSERT into ``table`` fail as a constraint violation."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )
        return
    # check_violation: psycopg raises IntegrityError, as SQLite's RAISE(ABORT) does.
    conn.exec_driver_sql(
        f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = 'check_violation'; END $$"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
    )


def allow_inserts(conn: Connection, table: str) -> None:
    """Undo ``refuse_inserts``."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"DROP TRIGGER refuse_{table}")
        return
    conn.exec_driver_sql(f"DROP TRIGGER refuse_{table} ON {table}")
    conn.exec_driver_sql(f"DROP FUNCTION refuse_{table}()")


def create_deferred_probe(conn: Connection) -> None:
    """Tables ``probe_parent`` and ``probe`` whose foreign key is checked at COMMIT only."""
    serial = "INTEGER" if conn.dialect.name == "sqlite" else "SERIAL"
    conn.exec_driver_sql("CREATE TABLE probe_parent (id INTEGER PRIMARY KEY)")
    conn.exec_driver_sql(
        f"CREATE TABLE probe (id {serial} PRIMARY KEY, parent INTEGER "
        "REFERENCES probe_parent(id) DEFERRABLE INITIALLY DEFERRED)"
    )
