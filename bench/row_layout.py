"""The storage layout's own ceiling: a node's rows written again by SQLite alone, no Python between.

After a run, every table the node filled per report (at least one row per two reports) is read
from its database and inserted again into a fresh file with the same schema and indexes and the
node's settings (WAL, synchronous=FULL): in transactions of ``group`` reports, in the order the
reports were stored, each table's rows by one ``executemany``. A report's rows travel with it
(tables with a ``report_id`` column, and ``reports`` itself); a table whose rows name no report
(a case, an announcement) is spread evenly over the transactions in its stored order.

What it measures is what the layout costs SQLite: report ids and content hashes are hashes, so
every index on them takes a random leaf, and a commit writes every page it touched — the fewer
reports a transaction holds, the fewer of them share a page. The rate is an upper bound on what
a node's single writer can reach with that layout at that group size; the bytes are what the
kernel counted as written (WAL frames and SQLite's own checkpoints) per report.

``what_if`` replays the same rows in a layout the node does not have yet, to price a change
before making it (issue 16's next steps):
- ``surrogate``: ``items``, ``item_hashes`` and ``deliveries`` name their report by its place in
  storage order (a zero-padded ordinal, so its text sorts as the number would) instead of its
  hash id: an integer key per report, where those tables append at their right edge.
- ``batch-log``: no per-report ``sent`` and ``receipted`` routing-log entries (one per batch
  instead, about a row per 500 reports, left out here).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench_common import storage_writes

PER_REPORT = 0.5  # a table with at least this many rows per report is part of the layout
WHAT_IF = ("surrogate", "batch-log")
SURROGATE_TABLES = ("items", "item_hashes", "deliveries")
PER_BATCH_KINDS = ("sent", "receipted")


class Rows:
    """A node's per-report rows, read once and replayed at several group sizes."""

    def __init__(self, db_path: Path) -> None:
        src = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            self.ids = [r[0] for r in src.execute("SELECT id FROM reports ORDER BY rowid")]
            self.reports = n = max(1, len(self.ids))
            self.ddl: list[str] = []
            self.tables: list[str] = []
            self.by_report: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
            self.spread: dict[str, list[tuple[Any, ...]]] = {}
            self.columns: dict[str, list[str]] = {}
            tables = src.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL"
            ).fetchall()
            for name, sql in tables:
                (rows,) = src.execute(f'SELECT count(*) FROM "{name}"').fetchone()
                if rows / n < PER_REPORT:
                    continue
                self.tables.append(name)
                self.ddl.append(sql)
                self._read(src, name)
            self.ddl += [
                sql
                for (sql,) in src.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                    f"AND tbl_name IN ({','.join('?' * len(self.tables))})",
                    self.tables,
                )
            ]
        finally:
            src.close()

    def _read(self, src: sqlite3.Connection, table: str) -> None:
        columns = [r[1] for r in src.execute(f'PRAGMA table_info("{table}")')]
        self.columns[table] = columns
        key = "id" if table == "reports" else "report_id" if "report_id" in columns else None
        by: dict[str, list[tuple[Any, ...]]] = {}
        spread: list[tuple[Any, ...]] = []
        k = columns.index(key) if key else -1
        for row in src.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
            if key and row[k] is not None:
                by.setdefault(row[k], []).append(row)
            else:
                spread.append(row)
        self.by_report[table] = by
        self.spread[table] = spread

    def rows_of(self, table: str, what_if: frozenset[str] = frozenset()) -> dict[str, list[Any]]:
        """``table``'s rows by report id, as ``what_if`` would have stored them."""
        by = self.by_report[table]
        columns = self.columns[table]
        if "surrogate" in what_if and table in SURROGATE_TABLES:
            k = columns.index("report_id")
            place = {rid: f"{i:012d}" for i, rid in enumerate(self.ids)}
            by = {
                rid: [(*row[:k], place.get(rid, rid), *row[k + 1 :]) for row in rows]
                for rid, rows in by.items()
            }
        if "batch-log" in what_if and table == "routing_log":
            k = columns.index("kind")
            by = {
                rid: kept
                for rid, rows in by.items()
                if (kept := [row for row in rows if row[k] not in PER_BATCH_KINDS])
            }
        return by

    def replay(
        self,
        directory: Path,
        group: int,
        *,
        keep: bool = False,
        what_if: frozenset[str] = frozenset(),
    ) -> tuple[float, float]:
        """(reports/s, bytes written per report) for transactions of ``group`` reports, in the
        layout ``what_if`` says (the node's own by default); the file ``layout-<group>.db`` in
        ``directory`` is removed afterwards unless ``keep``."""
        unknown = what_if - set(WHAT_IF)
        if unknown:
            raise ValueError(f"what_if: unknown {sorted(unknown)}; known {list(WHAT_IF)}")
        by_report = {table: self.rows_of(table, what_if) for table in self.tables}
        path = directory / f"layout-{group}.db"
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            for sql in self.ddl:
                db.execute(sql)
            groups = max(1, -(-len(self.ids) // group))
            started, before = time.perf_counter(), storage_writes(os.getpid())
            for g in range(groups):
                chunk = self.ids[g * group : (g + 1) * group]
                db.execute("BEGIN IMMEDIATE")
                for table in self.tables:
                    by, spread = by_report[table], self.spread[table]
                    rows = [row for i in chunk for row in by.get(i, ())]
                    share = len(spread) * g // groups, len(spread) * (g + 1) // groups
                    rows += spread[share[0] : share[1]]
                    if rows:
                        marks = ",".join("?" * len(rows[0]))
                        db.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
                db.execute("COMMIT")
            elapsed, written = time.perf_counter() - started, storage_writes(os.getpid()) - before
        finally:
            db.close()
            for suffix in ("-wal", "-shm") if keep else ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return self.reports / elapsed, written / self.reports
