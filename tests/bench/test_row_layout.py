"""The layout ceiling (bench/row_layout.py) writes again exactly the per-report rows a node
holds — every row of every table with a row per report, none of the others — with the schema's
indexes, whatever the transaction size."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.bench.scripts import load


def _node_db(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE reports (id TEXT PRIMARY KEY, wire BLOB NOT NULL);
        CREATE TABLE items (report_id TEXT, idx INTEGER, PRIMARY KEY (report_id, idx));
        CREATE TABLE routing_log (idx INTEGER PRIMARY KEY, report_id TEXT);
        CREATE INDEX ix_log_report ON routing_log (report_id);
        CREATE TABLE cases (id TEXT PRIMARY KEY);
        CREATE TABLE peers (member TEXT PRIMARY KEY);
        """
    )
    for i in range(7):
        db.execute("INSERT INTO reports VALUES (?, ?)", (f"r-{i}", b"x" * i))
        db.executemany("INSERT INTO items VALUES (?, ?)", [(f"r-{i}", 0), (f"r-{i}", 1)])
        db.execute("INSERT INTO cases VALUES (?)", (f"c-{i}",))
    log = [(n, None if n % 5 == 0 else f"r-{n % 7}") for n in range(12)]
    db.executemany("INSERT INTO routing_log VALUES (?, ?)", log)
    db.execute("INSERT INTO peers VALUES ('de-eco')")
    db.commit()
    db.close()


def _dump(path: Path, table: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return sorted(db.execute(f"SELECT * FROM {table}"), key=repr)
    finally:
        db.close()


@pytest.mark.parametrize("group", [1, 3, 500])
def test_every_per_report_row_is_written_again_with_the_indexes(tmp_path: Path, group: int) -> None:
    row_layout = load("row_layout")
    source = tmp_path / "node.db"
    _node_db(source)
    rows = row_layout.Rows(source)
    assert sorted(rows.tables) == ["cases", "items", "reports", "routing_log"]  # not peers
    out = tmp_path / "out"
    out.mkdir()
    rate, written = rows.replay(out, group, keep=True)
    assert rate > 0
    assert written >= 0
    copy = out / f"layout-{group}.db"
    for table in rows.tables:
        assert _dump(copy, table) == _dump(source, table), table
    db = sqlite3.connect(copy)
    names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    db.close()
    assert "ix_log_report" in names


def test_the_file_is_removed_unless_kept(tmp_path: Path) -> None:
    row_layout = load("row_layout")
    source = tmp_path / "node.db"
    _node_db(source)
    out = tmp_path / "out"
    out.mkdir()
    row_layout.Rows(source).replay(out, 2)
    assert list(out.iterdir()) == []
