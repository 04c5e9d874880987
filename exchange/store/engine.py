"""Database engines: the embedded SQLite default and PostgreSQL, set up for durability.

SQLite runs in WAL mode with ``synchronous=FULL`` (an acknowledged commit survives power loss,
not only a process crash) and a busy timeout. pysqlite's own transaction handling is switched
off and ``BEGIN IMMEDIATE`` is emitted by us, so SAVEPOINTs work (the writer isolates each job in
one) and the write lock is taken up front instead of failing mid-transaction — by the writer's
connection, and by ``immediate`` for a command that writes beside a running node without one.

The writer's connection keeps SQLite's temporary files in memory (``for_the_writer``): a
SAVEPOINT keeps the original of every page its job changes in a sub-journal, which SQLite keeps
in memory for its first 64 KiB and then spills to a temporary file — at 1,000 reports/s that file
was written as many bytes as the WAL (strace), each page twice over.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from exchange.errors import ConfigError

# Prepared statements each SQLite connection keeps (the driver's default is 128): the writer's
# alone has a few INSERT texts per table (store/sql.py's row ladder) beside its reads and IN
# lookups, whose every list length is a text of its own.
CACHED_STATEMENTS = 512


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def open_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://…``)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database.url: not a database URL: {url[:80]!r}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.drivername != "sqlite":
            raise ConfigError(f"database.url: use the plain 'sqlite:///' driver, not {parsed}")
        engine = create_engine(
            url,
            echo=echo,
            pool_size=8,
            max_overflow=8,
            connect_args={"cached_statements": CACHED_STATEMENTS},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername != "postgresql+psycopg":
            raise ConfigError(
                "database.url: PostgreSQL needs the psycopg 3 driver (postgresql+psycopg://…)"
            )
        return create_engine(url, echo=echo, pool_size=8, max_overflow=8, pool_pre_ping=True)
    raise ConfigError(f"database.url: unsupported database {parsed.get_backend_name()!r}")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("writer") else "BEGIN")


def for_the_writer(conn: Connection, *, wal_autocheckpoint: int | None = None) -> None:
    """Make ``conn`` the node writer's: it takes the write lock at BEGIN and, on SQLite, keeps
    temporary files in memory. Those are the sub-journal each job's SAVEPOINT writes a changed
    page's original to (a page for each page the job changes that existed before it: a few MB
    for a 500-report intake job, freed when the job ends; writer jobs are bounded, see
    store/writer.py) and the statement journal of a multi-row UPDATE or DELETE. Readers'
    connections keep the default: their temporary files are sorts and GROUP BYs over whole
    tables (statistics, exports), which do not belong in memory.

    ``wal_autocheckpoint`` (SQLite): the writer checkpoints the log in its own COMMIT only past
    that many pages — another thread checkpoints it (store/wal.py)."""
    conn.info["writer"] = True
    if conn.dialect.name == "sqlite":
        _driver(conn).execute("PRAGMA temp_store=MEMORY")
        if wal_autocheckpoint is not None:
            _driver(conn).execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")


def _driver(conn: Connection) -> Any:
    """The DB-API connection: a PRAGMA there opens no transaction, where through ``conn`` it
    would — on a writer's connection a ``BEGIN IMMEDIATE``, the write lock, for a setting."""
    return conn.connection.dbapi_connection


@contextmanager
def immediate(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the write lock from its start: on SQLite ``BEGIN IMMEDIATE``,
    which waits (the busy timeout) for a running node's write to end — a deferred ``BEGIN``
    that read first would fail on its first write once the node committed. On PostgreSQL an
    ordinary transaction (its locks are row locks and advisory locks)."""
    with engine.connect() as conn:
        conn.info["writer"] = True
        try:
            with conn.begin():
                yield conn
        finally:
            conn.info.pop("writer", None)
