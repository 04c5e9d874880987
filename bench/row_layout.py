"""The storage layout's own ceiling: a node's rows written again by SQLite alone, no Python between.

After a run, every table the node filled per report (at least one row per two reports) is read
from its database and inserted again into a fresh file with the same schema and indexes and the
node's settings (WAL, synchronous=FULL): in transactions of ``group`` reports, in the order the
reports were stored, each table's rows by one ``executemany``. A report's rows travel with it
(tables with a ``report_id`` column or a ``report_seq``, its place in storage order, and
``reports`` itself); a table whose rows name no report (a case, an announcement) is spread evenly
over the transactions in its stored order.

What it measures is what the layout costs SQLite: report ids and content hashes are hashes, so
every index on them takes a random leaf, and a commit writes every page it touched — the fewer
reports a transaction holds, the fewer of them share a page. The rate is an upper bound on what
a node's single writer can reach with that layout at that group size; the bytes are what the
kernel counted as written (WAL frames and SQLite's own checkpoints) per report.

``what_if`` replays the same rows in a layout the node does not have yet, to price a change
before making it (issue 16's next steps; three are the node's own layout now: an integer key
per report for ``items``, ``item_hashes`` and ``deliveries`` since migration 0014, a report's
log entries found by its place rather than an index on every entry's id since 0015, and one
``sent`` and one ``receipted`` log entry per batch rather than per report since 0019; a fourth
in part, since 0016):
- ``no-lookup-indexes``: without the index a report's rows add only for looking it up later —
  ``item_hashes (algorithm, hex)`` (which other report carries a hash) — as if it looked up
  through what it would need anyway, the hash index. Since 0016 that index covers only the
  hashes of reports in a case held here (``held``): what is left to price is the holder's.
- ``case-key``: ``cases``, ``case_reports`` and ``item_states`` (the responsible node's) name a
  case and a report by a place in storage order (a zero-padded ordinal, so its text sorts as the
  number would) instead of their ids: a case's place is its first report's. Priced at +63% when a
  case's id was its first report's hash digits, a random leaf of each of those keys per report;
  since a case's id starts with the millisecond it was opened (``case_id_for``), and a report's
  item states are found by its place (0017), what is left of it is the report id in the second
  column.

``held``: the rate and bytes on a file that already holds that many reports — as a node's does
after weeks — not on an empty one. A run's 20,000 reports fill a few hundred leaves per index, so
a transaction's random keys share many of them; a node holding hundreds of thousands has so
many leaves that each key dirties one of its own, and every one of them is written at COMMIT.
The file is first filled (untimed, in large transactions) with copies of the run's own rows
under fresh names (``_Copy``; a copy's cases opened a day after the copy before's); the timed
rows come last, as the newest.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_common import storage_writes

PER_REPORT = 0.5  # a table with at least this many rows per report is part of the layout
WHAT_IF = ("no-lookup-indexes", "case-key")
CASE_TABLES = {
    "cases": ("id",),
    "case_reports": ("case_id", "report_id"),
    "item_states": ("case_id", "report_id"),
}
# The index before 0016 and the partial one since: a file of either age is priced.
LOOKUP_INDEXES = ("ix_item_hashes_algorithm_hex", "ix_item_hashes_held_algorithm_hex")
FILL_GROUP = 5_000  # reports per transaction while filling a file to ``held`` (untimed)


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
            # Per table, the integer columns a later copy moves past the copy before: a single
            # integer key (the log's index, …) and the report's place in storage order.
            self.serial: dict[str, tuple[int, ...]] = {}
            self.places = _places(src)
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
        info = src.execute(f'PRAGMA table_info("{table}")').fetchall()
        columns = [r[1] for r in info]
        self.columns[table] = columns
        keys = [r for r in info if r[5]]
        single = len(keys) == 1 and "INT" in keys[0][2].upper()
        moved = [keys[0][1]] if single else []
        moved += [c for c in ("seq", "report_seq") if c in columns and c not in moved]
        self.serial[table] = tuple(columns.index(c) for c in moved)
        key = next((c for c in _REPORT_KEYS[table == "reports"] if c in columns), None)
        name: Callable[[Any], str | None] = self.places.get if key == "report_seq" else lambda v: v
        by: dict[str, list[tuple[Any, ...]]] = {}
        spread: list[tuple[Any, ...]] = []
        k = columns.index(key) if key else -1
        for row in src.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
            rid = name(row[k]) if key else None
            if rid is not None:
                by.setdefault(rid, []).append(row)
            else:
                spread.append(row)
        self.by_report[table] = by
        self.spread[table] = spread

    def rows_of(self, table: str, what_if: frozenset[str] = frozenset()) -> dict[str, list[Any]]:
        """``table``'s rows by report id, as ``what_if`` would have stored them."""
        by = self.by_report[table]
        if "case-key" in what_if and table in CASE_TABLES:
            by = {rid: self._case_keyed(table, rows) for rid, rows in by.items()}
        return by

    def spread_of(self, table: str, what_if: frozenset[str] = frozenset()) -> list[Any]:
        """``table``'s rows that name no report, as ``what_if`` would have stored them."""
        spread = self.spread[table]
        if "case-key" in what_if and table in CASE_TABLES:
            return self._case_keyed(table, spread)
        return spread

    @functools.cached_property
    def _places_by_hex(self) -> dict[str, str]:
        """A report's hex digits → its place as ``case-key`` writes it; also the first 20 of
        them, which a case's id ends with (before, a case's id was all of them)."""
        places = {}
        for i, rid in enumerate(self.ids):
            digits = rid.removeprefix("r-")
            places[digits] = places[digits[:_CASE_REPORT_HEX]] = f"{i:012d}"
        return places

    def _case_keyed(self, table: str, rows: list[Any]) -> list[Any]:
        """``rows`` with their case and report ids replaced by places (``case-key``)."""
        place = self._places_by_hex
        keys = [self.columns[table].index(c) for c in CASE_TABLES[table]]
        out = []
        for row in rows:
            values = list(row)
            for k in keys:
                text = str(values[k])
                digits = text[2:]
                if (case := _CASE.match(text)) and digits not in place:
                    digits = case.group(2)
                values[k] = place.get(digits, values[k])
            out.append(tuple(values))
        return out

    def replay(
        self,
        directory: Path,
        group: int,
        *,
        keep: bool = False,
        what_if: frozenset[str] = frozenset(),
        held: int = 0,
    ) -> tuple[float, float]:
        """(reports/s, bytes written per report) for transactions of ``group`` reports, in the
        layout ``what_if`` says (the node's own by default), on a file already holding ``held``
        reports (at least; whole copies of the run's); the file ``layout-<group>.db`` in
        ``directory`` is removed afterwards unless ``keep``."""
        unknown = what_if - set(WHAT_IF)
        if unknown:
            raise ValueError(f"what_if: unknown {sorted(unknown)}; known {list(WHAT_IF)}")
        by_report = {table: self.rows_of(table, what_if) for table in self.tables}
        spread = {table: self.spread_of(table, what_if) for table in self.tables}
        copies = -(-held // len(self.ids)) if held and self.ids else 0
        path = directory / f"layout-{group}.db"
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            for sql in self.ddl:
                if "no-lookup-indexes" in what_if and _index_name(sql) in LOOKUP_INDEXES:
                    continue
                db.execute(sql)
            for c in range(copies):
                self._write(db, (by_report, spread), FILL_GROUP, _Copy(c, len(self.ids)))
            started, before = time.perf_counter(), storage_writes(os.getpid())
            self._write(db, (by_report, spread), group, _Copy(copies, len(self.ids)))
            elapsed, written = time.perf_counter() - started, storage_writes(os.getpid()) - before
        finally:
            db.close()
            for suffix in ("-wal", "-shm") if keep else ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return self.reports / elapsed, written / self.reports

    def _write(
        self,
        db: sqlite3.Connection,
        tables: tuple[dict[str, dict[str, list[Any]]], dict[str, list[Any]]],
        group: int,
        copy: _Copy,
    ) -> None:
        """Every table's rows once (by report, and those that name no report), as ``copy``
        names them, in transactions of ``group`` reports; a table's rows that name no report
        spread evenly over the transactions."""
        by_report, spread_rows = tables
        groups = max(1, -(-len(self.ids) // group))
        for g in range(groups):
            chunk = self.ids[g * group : (g + 1) * group]
            db.execute("BEGIN IMMEDIATE")
            for table in self.tables:
                by, spread = by_report[table], spread_rows[table]
                rows = [row for i in chunk for row in by.get(i, ())]
                share = len(spread) * g // groups, len(spread) * (g + 1) // groups
                rows += spread[share[0] : share[1]]
                if rows:
                    marks = ",".join("?" * len(rows[0]))
                    rows = copy.rows(rows, self.serial[table])
                    db.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
            db.execute("COMMIT")


# The column that names a row's report: in ``reports`` itself, elsewhere (by id or by place).
_REPORT_KEYS = {True: ("id",), False: ("report_id", "report_seq")}


def _places(src: sqlite3.Connection) -> dict[int, str]:
    """Report place in storage order (``reports.seq``, since migration 0014) → its id."""
    columns = {r[1] for r in src.execute('PRAGMA table_info("reports")')}
    if "seq" not in columns:
        return {}
    return {seq: rid for rid, seq in src.execute("SELECT id, seq FROM reports")}


_INDEX = re.compile(r'CREATE\s+(?:UNIQUE\s+)?INDEX\s+"?(\w+)', re.IGNORECASE)


def _index_name(sql: str) -> str | None:
    """The index a ``CREATE [UNIQUE] INDEX`` statement makes (None for a table)."""
    found = _INDEX.match(sql)
    return found.group(1) if found else None


_ORDINAL = re.compile(r"^[0-9]{12}$")  # the ``case-key`` layout's place in storage order
# A report's or case's id ("r-" and 32 hex digits) or a content hash (32 to 64 hex digits).
_NAME = re.compile(r"^([a-z]-)?([0-9a-f]{32,64})$")
# A case's id: the millisecond it was opened, then its first report's first 20 hex digits.
_CASE = re.compile(r"^c-([0-9a-f]{12})([0-9a-f]{20})$")
_CASE_REPORT_HEX = 20
_CASE_STRIDE_MS = 86_400_000  # a copy's cases were opened a day after the copy before's
_KEY_BYTES = 32  # a binary key (a URL's): sha256 length; a payload is never exactly that
_SERIAL_STRIDE = 10**9  # a copy's integer keys (the log's index, …) come after the last one's


class _Copy:
    """The run's rows as copy ``n`` names them: copy 0 as they are; every later copy with its
    own ids, hashes and URL keys (the same length and prefix, so the same page use), and its integer
    keys and places in storage order (``case-key``'s too) after the copy before it, as newer
    rows are."""

    def __init__(self, n: int, reports: int) -> None:
        self.n = n
        self.reports = reports

    def rows(self, rows: list[Any], serial: tuple[int, ...]) -> list[Any]:
        if self.n == 0:
            return rows
        return [self._row(row, serial) for row in rows]

    def _row(self, row: tuple[Any, ...], serial: tuple[int, ...]) -> tuple[Any, ...]:
        out = [self._value(v) for v in row]
        for k in serial:
            if isinstance(out[k], int):
                out[k] += self.n * _SERIAL_STRIDE
        return tuple(out)

    def _value(self, value: Any) -> Any:
        if isinstance(value, bytes) and len(value) == _KEY_BYTES:  # a URL key, a log hash
            return hashlib.sha256(b"%d:%s" % (self.n, value)).digest()
        if not isinstance(value, str):
            return value
        if _ORDINAL.match(value):
            return f"{int(value) + self.n * self.reports:012d}"
        if case := _CASE.match(value):  # renamed, and still in order of opening
            at = (int(case.group(1), 16) + self.n * _CASE_STRIDE_MS) % (1 << 48)
            digest = hashlib.sha256(f"{self.n}:{value}".encode()).hexdigest()
            return f"c-{at:012x}{digest[:_CASE_REPORT_HEX]}"
        if found := _NAME.match(value):
            digest = hashlib.sha256(f"{self.n}:{value}".encode()).hexdigest()
            return (found.group(1) or "") + digest[: len(found.group(2))]
        return value
