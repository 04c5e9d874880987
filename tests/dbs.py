"""A database per test: a SQLite file by default, a fresh PostgreSQL database on request.

Set ``IHX_TEST_DATABASE_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and
every test that uses a node database gets its OWN PostgreSQL database instead of a SQLite file:
``Databases.new()`` hands out ``ihx_t_<random>`` on that server and ``close()`` drops every
database it handed out, with ``FORCE`` so a node that is still connected (or a killed child
process whose backend has not noticed yet) cannot make the drop fail. The URL's own database is
only the admin connection's; it is never written.

On PostgreSQL a new database is already at head unless the test asks for ``empty=True``: creating
one costs about 0.25 s there and migrating it 0.35 s more, some 1,500 times a run, which was a
third of the PostgreSQL pass. ``_HeadClones`` migrates one template database per run and a
background thread keeps a few copies of it (``CREATE DATABASE … TEMPLATE``) ready while the tests
run. Code under test still migrates what it is given, as a node does; at head that is a no-op.
Tests about migrating itself ask for ``empty=True``, and the SQLite pass migrates every file.

Nothing else in the suite needs to know which backend runs: fixtures ask ``Databases`` for a URL
and hand it to the code under test, which migrates it as a real node would. Tests that are
SQLite by nature (pragmas, file tricks) build their own ``sqlite:///`` URL and stay SQLite on
both runs. ``postgresql_admin_url()`` is for tests that need PostgreSQL whatever the run
(several replicas sharing one database): the env URL, else the local default of CI.
"""

from __future__ import annotations

import atexit
import os
import queue
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from exchange.store.engine import open_engine
from exchange.store.migrate import upgrade

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

    def new(self, label: str = "node", *, empty: bool = False) -> str:
        """A URL of a new database (``label`` names the SQLite file).

        A SQLite file is always empty; a PostgreSQL database is at head unless ``empty``.
        """
        if self._admin_url is None:
            self._files += 1
            name = label if self._files == 1 else f"{label}-{self._files}"
            return f"sqlite:///{self._directory / f'{name}.db'}"
        if empty:
            name = PREFIX + secrets.token_hex(6)
            with self._engine().connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        else:
            self._engine()  # the same clear error when the server is down
            name = _HeadClones.serving(self._admin_url).take()
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


class _HeadClones:
    """Databases at head, copied ahead of need from one migrated template (per server, per run).

    The template is made and migrated on first use, in the caller's thread (so a failure there is
    the caller's error). A daemon thread then keeps ``DEPTH`` copies ready in a queue; while a test
    runs, PostgreSQL makes the next one on the other core. At exit the copies nobody took and the
    template are dropped (only by the process that made them: a forked child inherits the object,
    not the thread).
    """

    DEPTH = 2
    _serving: ClassVar[dict[str, _HeadClones]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def serving(cls, admin_url: str) -> _HeadClones:
        with cls._lock:
            clones = cls._serving.get(admin_url)
            if clones is None:
                clones = cls._serving[admin_url] = cls(admin_url)
                atexit.register(clones.close)
            return clones

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url
        self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self._pid = os.getpid()
        self._template = PREFIX + "tpl_" + secrets.token_hex(4)
        self._execute(f'CREATE DATABASE "{self._template}"')
        url = make_url(admin_url).set(database=self._template)
        migrated = open_engine(url.render_as_string(hide_password=False))
        try:
            upgrade(migrated)
        except BaseException:
            migrated.dispose()
            self._execute(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
            self._admin.dispose()
            raise
        migrated.dispose()
        self._ready: queue.Queue[str | Exception] = queue.Queue(maxsize=self.DEPTH)
        self._stopping = threading.Event()
        self._filler = threading.Thread(target=self._fill, name="db-clones", daemon=True)
        self._filler.start()

    def take(self) -> str:
        """The name of a database at head, now this caller's to drop."""
        try:
            item = self._ready.get(timeout=120)
        except queue.Empty:
            raise RuntimeError("no PostgreSQL database was made ready in 120 s") from None
        if isinstance(item, Exception):
            self._ready.put(item)  # every later caller fails the same way
            raise item
        return item

    def close(self) -> None:
        if os.getpid() != self._pid:
            return
        self._stopping.set()
        self._filler.join(timeout=30)
        leftover = [self._template]
        while not self._ready.empty():
            item = self._ready.get_nowait()
            if isinstance(item, str):
                leftover.append(item)
        for name in leftover:
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin.dispose()

    def _fill(self) -> None:
        while not self._stopping.is_set():
            item: str | Exception = PREFIX + secrets.token_hex(6)
            try:
                self._execute(f'CREATE DATABASE "{item}" TEMPLATE "{self._template}"')
            except Exception as error:  # handed to the next taker, who raises it
                item = error
            while True:
                try:
                    self._ready.put(item, timeout=0.2)
                    break
                except queue.Full:
                    if self._stopping.is_set():
                        if isinstance(item, str):
                            self._execute(f'DROP DATABASE IF EXISTS "{item}" WITH (FORCE)')
                        return
            if isinstance(item, Exception):
                return

    def _execute(self, sql: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(sql))


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
