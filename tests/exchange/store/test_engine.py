"""Database engines: SQLite durability settings, and refusing URLs we do not support.

The SQLite set-up is what is under test here, so this module's ``engine`` is always a SQLite file
(also when the suite runs on PostgreSQL).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine

from exchange.errors import ConfigError
from exchange.store.engine import is_sqlite, open_engine
from exchange.store.migrate import current_revision, head_revision, require_head, upgrade
from exchange.store.writer import Writer


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    """A SQLite file migrated to head, whatever database the rest of the suite runs on."""
    return sqlite_engine


def pragma(engine: Engine, name: str) -> object:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()


def test_sqlite_connections_use_wal_and_full_sync(engine: Engine) -> None:
    assert str(pragma(engine, "journal_mode")).lower() == "wal"
    assert pragma(engine, "synchronous") == 2  # FULL
    assert pragma(engine, "foreign_keys") == 1
    assert pragma(engine, "busy_timeout") == 10000


def test_every_pooled_connection_is_set_up(engine: Engine) -> None:
    with engine.connect() as a, engine.connect() as b:
        for conn in (a, b):
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2
            assert str(conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()).lower() == "wal"


def test_wal_mode_is_persisted_in_the_file(engine: Engine, tmp_path: Path) -> None:
    pragma(engine, "journal_mode")  # make sure a connection was opened
    raw = sqlite3.connect(tmp_path / "node.db")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_writer_connections_take_the_write_lock_at_begin(engine: Engine, tmp_path: Path) -> None:
    with engine.connect() as conn:
        conn.info["writer"] = True
        with conn.begin():
            other = sqlite3.connect(tmp_path / "node.db", timeout=0, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
                # Readers are not blocked by the writer (WAL).
                assert other.execute("SELECT count(*) FROM reports").fetchone() == (0,)
            finally:
                other.close()


def test_the_writer_keeps_its_temporary_files_in_memory_and_readers_do_not(
    engine: Engine,
) -> None:
    # Each job's SAVEPOINT journals the original of every page it changes: in a temporary
    # file by default, which doubled the bytes a node wrote.
    writer = Writer(engine)
    writer.start()
    try:
        in_job = writer.execute(lambda tx: tx.conn.exec_driver_sql("PRAGMA temp_store").scalar())
        assert in_job == 2  # MEMORY
        assert pragma(engine, "temp_store") == 0  # a reader's: the default (files)
    finally:
        writer.stop()
    # The writer's connection is not handed to a reader afterwards: every pooled one has the
    # default (the engine pools 8).
    conns = [engine.connect() for _ in range(8)]
    try:
        assert [c.exec_driver_sql("PRAGMA temp_store").scalar_one() for c in conns] == [0] * 8
        assert not any(c.info.get("writer") for c in conns)
    finally:
        for c in conns:
            c.close()


def test_savepoints_work(engine: Engine) -> None:
    with engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("INSERT INTO node_meta (key, value) VALUES ('kept', '1')")
        sp = conn.begin_nested()
        conn.exec_driver_sql("INSERT INTO node_meta (key, value) VALUES ('undone', '1')")
        sp.rollback()
        keys = conn.exec_driver_sql("SELECT key FROM node_meta").scalars().all()
    assert keys == ["kept"]


@pytest.mark.parametrize(
    "url",
    [
        "mysql://user@localhost/ihx",
        "postgresql://localhost/ihx",  # psycopg2, not psycopg 3
        "postgresql+asyncpg://localhost/ihx",
        "sqlite+pysqlcipher:///node.db",
        "not a url",
        "",
        "oracle+oracledb://localhost/ihx",
    ],
)
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_engine(url)
    assert info.value.message.startswith("database.url:")


def test_postgresql_with_psycopg3_is_accepted_without_connecting() -> None:
    engine = open_engine("postgresql+psycopg://ihx@127.0.0.1:1/ihx")
    try:
        assert engine.dialect.name == "postgresql"
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_is_sqlite() -> None:
    assert is_sqlite("sqlite:///x.db")
    assert not is_sqlite("postgresql+psycopg://h/db")


def test_fresh_database_is_not_at_head_until_upgraded(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        assert current_revision(engine) is None
        with pytest.raises(ConfigError, match="ihx db upgrade"):
            require_head(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        require_head(engine)
    finally:
        engine.dispose()
