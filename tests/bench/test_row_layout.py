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


def test_an_unknown_what_if_is_refused(tmp_path: Path) -> None:
    row_layout = load("row_layout")
    source = tmp_path / "node.db"
    _node_db_with_log_kinds(source)
    with pytest.raises(ValueError, match="unknown"):
        row_layout.Rows(source).replay(tmp_path, 2, what_if=frozenset({"no-such"}))


def test_held_fills_the_file_first_with_renamed_copies_and_the_timed_rows_come_last(
    tmp_path: Path,
) -> None:
    """``held`` 7 of a 3-report run: three copies, then the timed one. Copy 0 is the run's own
    rows; later copies have ids, hashes and URL keys of their own (same length and prefix) and
    integer keys after the copy before, and nothing else of a row changes."""
    source = tmp_path / "node.db"
    db = sqlite3.connect(source)
    db.executescript(
        """
        CREATE TABLE reports (id TEXT NOT NULL, url_key BLOB NOT NULL, wire BLOB NOT NULL,
                              PRIMARY KEY (id));
        CREATE UNIQUE INDEX uq_url_key ON reports (url_key);
        CREATE TABLE item_hashes (report_id TEXT, idx INTEGER, hex TEXT,
                                  PRIMARY KEY (report_id, idx));
        CREATE TABLE routing_log (idx BIGINT NOT NULL, report_id TEXT, PRIMARY KEY (idx));
        """
    )
    ids = [f"r-{n:032x}" for n in (0xC, 0xA, 0xB)]
    for i, rid in enumerate(ids):
        db.execute("INSERT INTO reports VALUES (?, ?, ?)", (rid, bytes([i]) * 32, b"wire"))
        db.execute("INSERT INTO item_hashes VALUES (?, 0, ?)", (rid, f"{i:064x}"))
        db.execute("INSERT INTO routing_log VALUES (?, ?)", (i, rid))
    db.commit()
    db.close()
    out = tmp_path / "out"
    out.mkdir()
    load("row_layout").Rows(source).replay(out, 2, keep=True, held=7)
    copy = out / "layout-2.db"
    reports = _dump(copy, "reports")
    assert len(reports) == 4 * 3
    assert set(_dump(source, "reports")) <= set(reports)  # copy 0: the run's own rows
    assert {len(rid) for (rid, _, _) in reports} == {len(ids[0])}
    assert all(rid.startswith("r-") for (rid, _, _) in reports)
    assert len({key for (_, key, _) in reports}) == 12
    assert {w for (*_, w) in reports} == {b"wire"}
    hashes = _dump(copy, "item_hashes")
    assert len({h for (_, _, h) in hashes}) == 12
    assert {len(h) for (_, _, h) in hashes} == {64}
    db = sqlite3.connect(copy)
    try:
        log = db.execute("SELECT idx, report_id FROM routing_log ORDER BY idx").fetchall()
        newest = {r for (r,) in db.execute("SELECT id FROM reports ORDER BY rowid DESC LIMIT 3")}
    finally:
        db.close()
    assert len(log) == 12
    assert {r for (_, r) in log[-3:]} == newest  # the timed copy's keys come after the rest
    assert newest.isdisjoint(ids)


def test_what_if_no_lookup_indexes_leaves_out_only_that_index(tmp_path: Path) -> None:
    source = tmp_path / "node.db"
    db = sqlite3.connect(source)
    db.executescript(
        """
        CREATE TABLE reports (id TEXT PRIMARY KEY);
        CREATE TABLE item_hashes (report_id TEXT, algorithm TEXT, hex TEXT);
        CREATE INDEX ix_item_hashes_algorithm_hex ON item_hashes (algorithm, hex);
        CREATE TABLE routing_log (idx INTEGER PRIMARY KEY, at INTEGER, report_id TEXT);
        CREATE INDEX ix_routing_log_report_id ON routing_log (report_id);
        """
    )
    for i in range(3):
        db.execute("INSERT INTO reports VALUES (?)", (f"r-{i}",))
        db.execute("INSERT INTO item_hashes VALUES (?, 'sha256', ?)", (f"r-{i}", f"{i:064x}"))
        db.execute("INSERT INTO routing_log VALUES (?, ?, ?)", (i, i, f"r-{i}"))
    db.commit()
    db.close()
    out = tmp_path / "out"
    out.mkdir()
    what_if = frozenset({"no-lookup-indexes"})
    load("row_layout").Rows(source).replay(out, 2, keep=True, what_if=what_if)
    copy = out / "layout-2.db"
    db = sqlite3.connect(copy)
    try:
        indexes = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        db.close()
    assert indexes == {"ix_routing_log_report_id", "sqlite_autoindex_reports_1"}
    for table in ("reports", "item_hashes", "routing_log"):
        assert _dump(copy, table) == _dump(source, table)


def test_rows_keyed_by_report_place_travel_with_their_report_and_held_copies_follow(
    tmp_path: Path,
) -> None:
    """Since migration 0014 ``items`` names its report by ``reports.seq``: its rows go with the
    report into each transaction, and each held copy moves both places past the copy before,
    so a copy's items still name that copy's reports."""
    source = tmp_path / "node.db"
    db = sqlite3.connect(source)
    db.executescript(
        """
        CREATE TABLE reports (id TEXT PRIMARY KEY, seq BIGINT NOT NULL);
        CREATE UNIQUE INDEX uq_reports_seq ON reports (seq);
        CREATE TABLE items (report_seq BIGINT, idx INTEGER, PRIMARY KEY (report_seq, idx));
        """
    )
    for seq, n in enumerate((0xC, 0xA, 0xB), start=1):
        db.execute("INSERT INTO reports VALUES (?, ?)", (f"r-{n:032x}", seq))
        db.executemany("INSERT INTO items VALUES (?, ?)", [(seq, 0), (seq, 1)])
    db.commit()
    db.close()
    rows = load("row_layout").Rows(source)
    assert {len(by) for by in rows.by_report["items"].values()} == {2}
    assert rows.spread["items"] == []
    out = tmp_path / "out"
    out.mkdir()
    rows.replay(out, 1, keep=True, held=3)
    copy = sqlite3.connect(out / "layout-1.db")
    try:
        joined = copy.execute(
            "SELECT count(*) FROM items i JOIN reports r ON r.seq = i.report_seq"
        ).fetchone()
        places = [s for (s,) in copy.execute("SELECT seq FROM reports ORDER BY rowid")]
    finally:
        copy.close()
    assert joined == (12,)
    assert places == sorted(places)
    assert len(set(places)) == 6


# A case's id as it was (its first report's digits), and as it is (opened when, then 20 of them).
CASE_IDS = {
    "report-digits": lambda h, at: f"c-{h}",
    "time-first": lambda h, at: f"c-{at:012x}{h[:20]}",
}


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_what_if_case_key_names_cases_and_their_reports_by_place_also_in_held_copies(
    tmp_path: Path, case_id: str
) -> None:
    """``case-key``: a case is named by its first report's place, a case's report by its own;
    each held copy's places come after the copy before, so the timed copy's cases and reports
    still match one another."""
    name = CASE_IDS[case_id]
    source = tmp_path / "node.db"
    db = sqlite3.connect(source)
    db.executescript(
        """
        CREATE TABLE reports (id TEXT PRIMARY KEY);
        CREATE TABLE cases (id TEXT PRIMARY KEY, url TEXT);
        CREATE TABLE case_reports (case_id TEXT, report_id TEXT, PRIMARY KEY (case_id, report_id));
        CREATE TABLE item_states (case_id TEXT, report_id TEXT, idx INTEGER,
                                  PRIMARY KEY (case_id, report_id, idx));
        """
    )
    hexes = [d * 32 for d in "cab"]
    for h in hexes:
        db.execute("INSERT INTO reports VALUES (?)", (f"r-{h}",))
    opened = {h: name(h, 1_800_000_000_000 + i) for i, h in enumerate(hexes[:2])}
    for h in hexes[:2]:  # the third report joins the first's case
        db.execute("INSERT INTO cases VALUES (?, 'u')", (opened[h],))
    joins = [(hexes[0], hexes[0]), (hexes[1], hexes[1]), (hexes[0], hexes[2])]
    for case, report in joins:
        db.execute("INSERT INTO case_reports VALUES (?, ?)", (opened[case], f"r-{report}"))
        db.execute("INSERT INTO item_states VALUES (?, ?, 0)", (opened[case], f"r-{report}"))
    db.commit()
    db.close()
    out = tmp_path / "out"
    out.mkdir()
    load("row_layout").Rows(source).replay(
        out, 2, keep=True, what_if=frozenset({"case-key"}), held=3
    )
    copy = out / "layout-2.db"
    cases = [c for (c, _) in _dump(copy, "cases")]
    places = [f"{i:012d}" for i in range(6)]
    assert cases == [places[0], places[1], places[3], places[4]]
    assert _dump(copy, "case_reports") == [
        (places[0], places[0]),
        (places[0], places[2]),
        (places[1], places[1]),
        (places[3], places[3]),
        (places[3], places[5]),
        (places[4], places[4]),
    ]
    assert [(c, r) for (c, r, _) in _dump(copy, "item_states")] == _dump(copy, "case_reports")


def test_held_copies_of_time_first_case_ids_keep_their_order_of_opening(tmp_path: Path) -> None:
    """A case's id starts with when it was opened, so the node writes each new one at the right
    edge of its key; a held copy's cases must too, or the held file prices random keys again."""
    source = tmp_path / "node.db"
    db = sqlite3.connect(source)
    db.executescript(
        """
        CREATE TABLE reports (id TEXT PRIMARY KEY);
        CREATE TABLE cases (id TEXT PRIMARY KEY, first_report TEXT);
        """
    )
    hexes = [d * 32 for d in "cab"]
    for i, h in enumerate(hexes):
        db.execute("INSERT INTO reports VALUES (?)", (f"r-{h}",))
        case = CASE_IDS["time-first"](h, 1_800_000_000_000 + i)
        db.execute("INSERT INTO cases VALUES (?, ?)", (case, f"r-{h}"))
    db.commit()
    db.close()
    out = tmp_path / "out"
    out.mkdir()
    load("row_layout").Rows(source).replay(out, 2, keep=True, held=6)
    db = sqlite3.connect(out / "layout-2.db")
    try:
        by_arrival = [c for (c,) in db.execute("SELECT id FROM cases ORDER BY rowid")]
    finally:
        db.close()
    assert len(set(by_arrival)) == 9
    assert by_arrival == sorted(by_arrival)  # every copy's, and the timed copy's last
    assert all(len(c) == 34 and c.startswith("c-") for c in by_arrival)


def test_an_index_is_named_whether_or_not_it_is_unique() -> None:
    name = load("row_layout")._index_name
    assert name("CREATE INDEX ix_a ON t (a)") == "ix_a"
    assert name("CREATE UNIQUE INDEX uq_b ON t (b) WHERE c IS NULL") == "uq_b"
    assert name('CREATE UNIQUE INDEX "uq_c" ON t (c)') == "uq_c"
    assert name("CREATE TABLE t (a)") is None
