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


def _node_db_with_log_kinds(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE reports (id TEXT PRIMARY KEY, wire BLOB NOT NULL);
        CREATE TABLE items (report_id TEXT, idx INTEGER, PRIMARY KEY (report_id, idx));
        CREATE TABLE deliveries (report_id TEXT, destination TEXT,
                                 PRIMARY KEY (report_id, destination));
        CREATE TABLE routing_log (idx INTEGER PRIMARY KEY, kind TEXT, report_id TEXT);
        """
    )
    # Stored in an order their ids do not sort in, as hash ids are.
    for i, rid in enumerate(["r-c", "r-a", "r-b"]):
        db.execute("INSERT INTO reports VALUES (?, ?)", (rid, b"x"))
        db.execute("INSERT INTO items VALUES (?, 0)", (rid,))
        db.execute("INSERT INTO deliveries VALUES (?, 'de-eco')", (rid,))
        for j, kind in enumerate(("intake", "sent", "receipted")):
            db.execute("INSERT INTO routing_log VALUES (?, ?, ?)", (i * 3 + j, kind, rid))
    db.commit()
    db.close()


def _replayed(tmp_path: Path, group: int, what_if: str) -> tuple[Path, Path]:
    """(source, copy): the node database and its rows written again in layout ``what_if``."""
    source = tmp_path / "node.db"
    _node_db_with_log_kinds(source)
    out = tmp_path / "out"
    out.mkdir()
    load("row_layout").Rows(source).replay(out, group, keep=True, what_if=frozenset({what_if}))
    return source, out / f"layout-{group}.db"


def test_what_if_surrogate_keys_items_and_deliveries_by_storage_order(tmp_path: Path) -> None:
    source, copy = _replayed(tmp_path, 2, "surrogate")
    ordinals = [f"{i:012d}" for i in range(3)]
    assert [r for (r, _) in _dump(copy, "items")] == ordinals
    assert [r for (r, _) in _dump(copy, "deliveries")] == ordinals
    assert _dump(copy, "reports") == _dump(source, "reports")  # the id itself stays
    assert _dump(copy, "routing_log") == _dump(source, "routing_log")


def test_what_if_batch_log_leaves_out_per_report_sent_and_receipted(tmp_path: Path) -> None:
    source, copy = _replayed(tmp_path, 3, "batch-log")
    assert {kind for (_, kind, _) in _dump(copy, "routing_log")} == {"intake"}
    assert len(_dump(copy, "routing_log")) == 3
    assert _dump(copy, "items") == _dump(source, "items")


def test_an_unknown_what_if_is_refused(tmp_path: Path) -> None:
    row_layout = load("row_layout")
    source = tmp_path / "node.db"
    _node_db_with_log_kinds(source)
    with pytest.raises(ValueError, match="unknown"):
        row_layout.Rows(source).replay(tmp_path, 2, what_if=frozenset({"no-such"}))
