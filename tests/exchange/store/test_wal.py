"""The log's checkpoints off the writer (store/wal.py), on a real SQLite file.

A writer started with a raised ``wal_autocheckpoint`` leaves its log growing past SQLite's
1,000 pages; ``WalCheckpointer`` copies every frame into the database file (on demand, and on
its own thread every ``interval``), after which the writer starts the log over. The log's size
is read from the file itself: ``-wal`` beside the database.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from exchange.store.engine import open_engine
from exchange.store.wal import BACKSTOP_PAGES, Checkpoint, WalCheckpointer
from exchange.store.writer import Tx, Writer
from tests.integration.support import wait_until

PAGE = 4096
SQLITE_DEFAULT_PAGES = 1000


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "node.db"


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    """SQLite even when the suite runs on PostgreSQL: only SQLite has this log (at db_path)."""
    return sqlite_engine


@pytest.fixture
def writer(engine: Engine) -> Iterator[Writer]:
    w = Writer(engine, wal_autocheckpoint=BACKSTOP_PAGES)
    w.start()
    yield w
    w.stop()


def wal_bytes(db_path: Path) -> int:
    wal = Path(f"{db_path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def write_pages(writer: Writer, pages: int, *, groups: int = 10) -> None:
    """About ``pages`` pages of new rows (a row of 3,500 random bytes fills a page), in
    ``groups`` commits."""

    def job(tx: Tx) -> None:
        tx.conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS filler (k INTEGER PRIMARY KEY, v)")
        tx.conn.exec_driver_sql(
            "INSERT INTO filler (v) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
            "SELECT i + 1 FROM n WHERE i < ?) SELECT randomblob(3500) FROM n",
            (pages // groups,),
        )

    for _ in range(groups):
        writer.execute(job)


def test_the_writer_leaves_the_log_to_the_checkpointer_below_its_backstop(
    writer: Writer, db_path: Path
) -> None:
    write_pages(writer, 2 * SQLITE_DEFAULT_PAGES)
    # With SQLite's own 1,000-page checkpoint in COMMIT, the log would have started over at
    # 4 MB and stayed there; left alone, it holds every page written.
    assert wal_bytes(db_path) > 1.5 * SQLITE_DEFAULT_PAGES * PAGE


def test_a_checkpoint_copies_every_frame_and_the_log_starts_over(
    writer: Writer, engine: Engine, db_path: Path
) -> None:
    write_pages(writer, 2 * SQLITE_DEFAULT_PAGES)
    done = WalCheckpointer(engine).checkpoint()
    assert done.complete
    assert done.log_frames == done.copied_frames > 1.5 * SQLITE_DEFAULT_PAGES
    size = wal_bytes(db_path)
    write_pages(writer, SQLITE_DEFAULT_PAGES)  # written from the log's start again: no growth
    assert wal_bytes(db_path) == size
    after = WalCheckpointer(engine).checkpoint()
    assert after.complete
    assert after.log_frames < done.log_frames


def test_the_thread_checkpoints_on_its_own(writer: Writer, engine: Engine) -> None:
    checkpointer = WalCheckpointer(engine, interval=0.05)
    checkpointer.start()
    try:
        write_pages(writer, SQLITE_DEFAULT_PAGES)

        def copied() -> bool:
            last = checkpointer.last
            return last is not None and last.complete and last.copied_frames > 0

        wait_until(copied, 10)
    finally:
        checkpointer.stop()
    assert checkpointer.failures == 0


def test_failing_checkpoints_are_logged_when_they_start_and_end(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    checkpointer = WalCheckpointer(engine)
    works = checkpointer.checkpoint

    def fails() -> Checkpoint:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(checkpointer, "checkpoint", fails)
    with caplog.at_level(logging.INFO, logger="exchange.store.wal"):
        for _ in range(3):
            checkpointer._round()
        monkeypatch.setattr(checkpointer, "checkpoint", works)
        checkpointer._round()
        checkpointer._round()
    assert checkpointer.failures == 3
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "WAL checkpoint failed (the writer's backstop goes on): disk I/O error"),
        ("INFO", "WAL checkpoints work again"),
    ]


def test_the_writer_checkpoints_past_its_backstop(engine: Engine, db_path: Path) -> None:
    w = Writer(engine, wal_autocheckpoint=SQLITE_DEFAULT_PAGES // 2)
    w.start()
    try:
        write_pages(w, 3 * SQLITE_DEFAULT_PAGES, groups=30)
    finally:
        w.stop()
    # Checkpointed in COMMIT past 500 pages and started over: the log never reached SQLite's
    # own 1,000 (nor the whole 3,000).
    assert wal_bytes(db_path) < 0.8 * SQLITE_DEFAULT_PAGES * PAGE


def test_only_sqlite_has_a_log_to_checkpoint() -> None:
    engine = open_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(ValueError, match="only SQLite"):
        WalCheckpointer(engine)
    engine.dispose()


def test_the_file_is_whole_after_the_checkpoint(
    writer: Writer, engine: Engine, db_path: Path
) -> None:
    write_pages(writer, SQLITE_DEFAULT_PAGES)
    assert WalCheckpointer(engine).checkpoint().complete
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
        assert conn.exec_driver_sql("SELECT count(*) FROM filler").scalar_one() == (
            SQLITE_DEFAULT_PAGES // 10 * 10
        )
    assert os.path.getsize(db_path) > SQLITE_DEFAULT_PAGES * PAGE
