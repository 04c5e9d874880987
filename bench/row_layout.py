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
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench_common import storage_writes

PER_REPORT = 0.5  # a table with at least this many rows per report is part of the layout


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

    def replay(self, directory: Path, group: int, *, keep: bool = False) -> tuple[float, float]:
        """(reports/s, bytes written per report) for transactions of ``group`` reports; the
        file ``layout-<group>.db`` in ``directory`` is removed afterwards unless ``keep``."""
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
                    by, spread = self.by_report[table], self.spread[table]
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
