"""Alembic migrations build the schema the models declare, on SQLite and on PostgreSQL alike.

Both backends are upgraded from empty to head and compared with Alembic's autogenerate (the
options of migrations/env.py): no difference may remain. Autogenerate does not look at partial
index predicates nor at how each backend spells types, so the two migrated databases are also
reflected and compared with each other. PostgreSQL is needed on every run (CI provides it): the
suite's own server when ``IHX_TEST_DATABASE_URL`` is set, else the local default.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, Table, inspect, text

from exchange.store.engine import open_engine
from exchange.store.migrate import current_revision, downgrade, head_revision, upgrade
from exchange.store.schema import Base
from tests.dbs import Databases, postgresql_admin_url

pytestmark = pytest.mark.timeout(120)

# What migrations/env.py passes to context.configure (besides the connection and metadata).
ENV_OPTIONS: dict[str, Any] = {"compare_type": True, "render_as_batch": True}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Engine]]:
    """A fresh SQLite file and a fresh PostgreSQL database, each upgraded to head."""
    directory = tmp_path_factory.mktemp("migrations")
    sqlite_dbs = Databases(directory, None)
    pg_dbs = Databases(directory, postgresql_admin_url())
    engines = {
        "sqlite": open_engine(sqlite_dbs.new()),
        "postgresql": open_engine(pg_dbs.new(empty=True)),
    }
    try:
        for engine in engines.values():
            upgrade(engine)
        yield engines
    finally:
        for engine in engines.values():
            engine.dispose()
        pg_dbs.close()


def differences(engine: Engine, metadata: MetaData) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts=ENV_OPTIONS)
        return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_reach_head_and_match_the_models(
    migrated: dict[str, Engine], backend: str
) -> None:
    engine = migrated[backend]
    assert current_revision(engine) == head_revision()
    assert differences(engine, Base.metadata) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_comparison_sees_a_model_the_migrations_lack(
    migrated: dict[str, Engine], backend: str
) -> None:
    # The check above is only worth something if a drift shows up: add a column and a table.
    # (Alembic diff tuples: ("add_column", schema, table, column), ("add_table", table).)
    drifted = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["node_meta"].append_column(Column("added", Integer, nullable=True))
    Table("not_migrated", drifted, Column("id", Integer, primary_key=True))
    found = differences(migrated[backend], drifted)
    kinds = {(d[0], d[3].name if d[0] == "add_column" else d[1].name) for d in found}
    assert kinds == {("add_column", "added"), ("add_table", "not_migrated")}


def shape(engine: Engine) -> dict[str, Any]:
    """Tables, columns (generic type, length, nullability), keys and indexes, backend-neutral."""
    insp = inspect(engine)
    tables: dict[str, Any] = {}
    for name in sorted(insp.get_table_names()):
        if name == "alembic_version":
            continue
        columns = {
            c["name"]: (
                type(c["type"]._type_affinity).__name__ if c["type"]._type_affinity else None,
                getattr(c["type"], "length", None),
                c["nullable"],
            )
            for c in insp.get_columns(name)
        }
        indexes = {
            i["name"]: (tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(name)
        }
        pk = insp.get_pk_constraint(name)
        tables[name] = {
            "columns": columns,
            "pk": (pk["name"], tuple(pk["constrained_columns"])),
            "indexes": indexes,
        }
    return tables


def test_sqlite_and_postgresql_have_the_same_shape(migrated: dict[str, Engine]) -> None:
    sqlite_shape, pg_shape = shape(migrated["sqlite"]), shape(migrated["postgresql"])
    assert set(sqlite_shape) == set(Base.metadata.tables)
    assert sqlite_shape == pg_shape


def test_the_open_case_index_is_partial_on_both(migrated: dict[str, Engine]) -> None:
    # One OPEN case per URL key; closed cases with the same key must stay possible.
    with migrated["postgresql"].connect() as conn:
        pg = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_cases_open_url_key'")
        ).scalar_one()
    with migrated["sqlite"].connect() as conn:
        lite = conn.execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'uq_cases_open_url_key'")
        ).scalar_one()
    assert pg.startswith("CREATE UNIQUE INDEX")
    assert pg.endswith("WHERE ((status)::text = 'open'::text)")
    assert lite.startswith("CREATE UNIQUE INDEX")
    assert lite.endswith("WHERE status = 'open'")


def test_pg_admin_helper_creates_and_drops_databases(tmp_path: Path) -> None:
    dbs = Databases(tmp_path, postgresql_admin_url())
    url = dbs.new()
    name = url.rsplit("/", 1)[1]
    admin = open_engine(postgresql_admin_url())
    try:

        def exists() -> bool:
            with admin.connect() as conn:
                found = conn.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                ).first()
                return found is not None

        assert exists()
        held = open_engine(url)
        held.connect()  # a connection left open (a killed node's) must not block the drop
        dbs.close()
        held.dispose()
        assert not exists()
    finally:
        admin.dispose()


def test_pg_helper_hands_out_databases_at_head_unless_asked_for_empty(tmp_path: Path) -> None:
    dbs = Databases(tmp_path, postgresql_admin_url())
    try:
        at_head, empty = open_engine(dbs.new()), open_engine(dbs.new(empty=True))
        try:
            assert current_revision(at_head) == head_revision()
            assert current_revision(empty) is None
            with empty.connect() as conn:
                assert inspect(conn).get_table_names() == []
        finally:
            at_head.dispose()
            empty.dispose()
    finally:
        dbs.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_cases_open_before_the_lifecycle_start_it_unassessed(tmp_path: Path, backend: str) -> None:
    """0006 gives every item of a case held before it an item state, so it can be worked."""
    dbs = Databases(tmp_path, postgresql_admin_url() if backend == "postgresql" else None)
    engine = open_engine(dbs.new(empty=True))
    try:
        upgrade(engine, "0005")
        with engine.begin() as conn:
            for rid, reason in (
                ("r-" + "1" * 32, "served-member"),
                ("r-" + "2" * 32, "orphan-rule"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO reports (id, role, origin_member, url, url_key, received_at,"
                        " stored_at, site_type, commercial, payment_methods, notes,"
                        " decision_member, decision_reason, case_id, wire) VALUES (:id,"
                        " 'received', 'nl-eokm', 'https://x.example/', :key, 1, 1, 'website',"
                        " FALSE, '', '', 'de-eco', :reason, :case, :wire)"
                    ),
                    {
                        "id": rid,
                        "key": rid.encode()[:32],
                        "reason": reason,
                        "case": "c-" + rid[2:],
                        "wire": b"w",
                    },
                )
                conn.execute(
                    text(
                        "INSERT INTO items (report_id, idx, classification, media_type, age_group)"
                        " VALUES (:id, 0, 'national', 'image', 'unknown'),"
                        " (:id, 1, 'baseline', 'video', 'unknown')"
                    ),
                    {"id": rid},
                )
                conn.execute(
                    text(
                        "INSERT INTO case_reports (case_id, report_id, reporting_member, outcome,"
                        " new_items, at) VALUES (:case, :id, 'nl-eokm', 'new-case', 2,"
                        " 1700000000000000)"
                    ),
                    {"id": rid, "case": "c-" + rid[2:]},
                )
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT report_id, idx, holder, origin_classification, orphaned, stage,"
                    " clock_started FROM item_states ORDER BY report_id, idx"
                )
            ).all()
    finally:
        engine.dispose()
        dbs.close()
    assert [tuple(r) for r in rows] == [
        ("r-" + "1" * 32, 0, "de-eco", "national", False, "unassessed", 1700000000000000),
        ("r-" + "1" * 32, 1, "de-eco", "baseline", False, "unassessed", 1700000000000000),
        ("r-" + "2" * 32, 0, "de-eco", "national", True, "unassessed", 1700000000000000),
        ("r-" + "2" * 32, 1, "de-eco", "baseline", True, "unassessed", 1700000000000000),
    ]


def _report_with_items(conn: Any, rid: str, stored_at: int, hexes: tuple[str, ...]) -> None:
    """A report as 0013 stored it: its items, item hashes and delivery keyed by its id."""
    conn.execute(
        text(
            "INSERT INTO reports (id, role, origin_member, url, url_key, received_at, stored_at,"
            " site_type, commercial, payment_methods, notes, decision_member, decision_reason,"
            " wire) VALUES (:id, 'origin', 'nl-eokm', 'https://x.example/', :key, 1, :at,"
            " 'website', FALSE, '', '', 'de-eco', 'served-member', :wire)"
        ),
        {"id": rid, "key": rid.encode()[:32], "at": stored_at, "wire": b"w"},
    )
    for idx, hex_ in enumerate(hexes):
        conn.execute(
            text(
                "INSERT INTO items (report_id, idx, classification, media_type, age_group)"
                " VALUES (:id, :idx, 'national', 'image', 'unknown')"
            ),
            {"id": rid, "idx": idx},
        )
        conn.execute(
            text(
                "INSERT INTO item_hashes (report_id, idx, algorithm, hex, quality)"
                " VALUES (:id, :idx, 'sha256', :hex, NULL)"
            ),
            {"id": rid, "idx": idx, "hex": hex_},
        )
    conn.execute(
        text(
            "INSERT INTO deliveries (report_id, destination, sequence, outcome, receipted_at)"
            " VALUES (:id, 'de-eco', :at, 'new-case', :at)"
        ),
        {"id": rid, "at": stored_at},
    )


_DELIVERIES_BY_ID = """SELECT r.id, d.sequence FROM reports r
 JOIN deliveries d ON d.report_seq = r.seq ORDER BY r.id"""
_ITEMS_BY_ID = """SELECT r.id, i.idx, h.hex FROM reports r
 JOIN items i ON i.report_seq = r.seq
 JOIN item_hashes h ON h.report_seq = r.seq AND h.idx = i.idx ORDER BY r.id, i.idx"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_report_rows_are_keyed_by_their_report_place_and_back(tmp_path: Path, backend: str) -> None:
    """0014 numbers the reports in storage order and re-keys their items, item hashes and
    deliveries by that place, every row kept; its downgrade keys them by the report id again."""
    dbs = Databases(tmp_path, postgresql_admin_url() if backend == "postgresql" else None)
    engine = open_engine(dbs.new(empty=True))
    first, second, third = ("r-" + d * 32 for d in "321")
    try:
        upgrade(engine, "0013")
        with engine.begin() as conn:  # stored in this order, at these times
            _report_with_items(conn, first, 10, ("aa" * 32, "bb" * 32))
            _report_with_items(conn, second, 20, ("cc" * 32,))
            _report_with_items(conn, third, 30, ("dd" * 32, "ee" * 32))
        upgrade(engine)
        with engine.connect() as conn:
            places = conn.execute(text("SELECT id, seq FROM reports ORDER BY seq")).all()
            items = [tuple(r) for r in conn.execute(text(_ITEMS_BY_ID))]
            delivered = [tuple(r) for r in conn.execute(text(_DELIVERIES_BY_ID))]
        downgrade(engine, "0013")
        with engine.connect() as conn:
            back = conn.execute(
                text(
                    "SELECT i.report_id, i.idx, h.hex FROM items i JOIN item_hashes h"
                    " ON h.report_id = i.report_id AND h.idx = i.idx ORDER BY i.report_id, i.idx"
                )
            ).all()
            delivered_back = conn.execute(
                text("SELECT report_id, sequence FROM deliveries ORDER BY report_id")
            ).all()
            columns = {c["name"] for c in inspect(conn).get_columns("reports")}
    finally:
        engine.dispose()
        dbs.close()
    assert [r.id for r in places] == [first, second, third]
    assert [r.seq for r in places] == sorted({r.seq for r in places})
    expected = [
        (third, 0, "dd" * 32),
        (third, 1, "ee" * 32),
        (second, 0, "cc" * 32),
        (first, 0, "aa" * 32),
        (first, 1, "bb" * 32),
    ]
    assert items == expected
    assert [tuple(r) for r in back] == expected
    assert delivered == [(third, 30), (second, 20), (first, 10)]
    assert [tuple(r) for r in delivered_back] == delivered
    assert "seq" not in columns


def _log_row(conn: Any, idx: int, report_id: str | None) -> None:
    """An entry as 0014 stored it (its hash does not matter to the migration)."""
    conn.execute(
        text(
            "INSERT INTO routing_log (idx, at, kind, report_id, member, country, detail,"
            " previous_hash, entry_hash) VALUES (:idx, 1, 'intake', :rid, 'nl-eokm', NULL, '',"
            " :h, :h)"
        ),
        {"idx": idx, "rid": report_id, "h": bytes(32)},
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_log_entries_get_their_reports_place_and_back(tmp_path: Path, backend: str) -> None:
    """0015 gives each entry that names a report stored here that report's place, leaves the
    others without one, and swaps the index on every entry's id for the place's and a partial
    one; its downgrade drops the column and builds the old index again."""
    dbs = Databases(tmp_path, postgresql_admin_url() if backend == "postgresql" else None)
    engine = open_engine(dbs.new(empty=True))
    stored, elsewhere = "r-" + "4" * 32, "r-" + "5" * 32
    try:
        upgrade(engine, "0013")
        with engine.begin() as conn:
            _report_with_items(conn, "r-" + "6" * 32, 5, ())
            _report_with_items(conn, stored, 10, ())
        upgrade(engine, "0014")
        with engine.begin() as conn:
            for idx, rid in enumerate((stored, elsewhere, None, stored)):
                _log_row(conn, idx, rid)
        upgrade(engine)
        with engine.connect() as conn:
            places = conn.execute(text("SELECT idx, report_seq FROM routing_log ORDER BY idx"))
            placed = [tuple(r) for r in places]
            seq = conn.execute(text("SELECT seq FROM reports WHERE id = :r"), {"r": stored})
            place = seq.scalar_one()
            indexes = {i["name"] for i in inspect(conn).get_indexes("routing_log")}
        downgrade(engine, "0014")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("routing_log")}
            back = {i["name"] for i in inspect(conn).get_indexes("routing_log")}
            count = conn.execute(text("SELECT count(*) FROM routing_log")).scalar_one()
    finally:
        engine.dispose()
        dbs.close()
    assert placed == [(0, place), (1, None), (2, None), (3, place)]
    assert place == 2
    assert indexes - {"ix_routing_log_batch"} == {  # 0019's
        "ix_routing_log_at",
        "ix_routing_log_report_seq",
        "ix_routing_log_unplaced_report_id",
    }
    assert "report_seq" not in columns
    assert back == {"ix_routing_log_at", "ix_routing_log_report_id"}
    assert count == 4


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_held_contents_hashes_are_marked_and_back(tmp_path: Path, backend: str) -> None:
    """0016 marks each item hash of a report in a case held here ``held`` (the others not) and
    swaps the index of every hash for a partial one of those; its downgrade drops the column
    and builds the old index again, every row kept."""
    dbs = Databases(tmp_path, postgresql_admin_url() if backend == "postgresql" else None)
    engine = open_engine(dbs.new(empty=True))
    in_case, sent_on = "r-" + "7" * 32, "r-" + "8" * 32
    try:
        upgrade(engine, "0013")
        with engine.begin() as conn:
            _report_with_items(conn, in_case, 10, ("aa" * 32, "bb" * 32))
            _report_with_items(conn, sent_on, 20, ("cc" * 32,))
            conn.execute(text("UPDATE reports SET case_id = 'c-1' WHERE id = :r"), {"r": in_case})
        upgrade(engine, "0015")
        upgrade(engine)
        with engine.connect() as conn:
            marked = conn.execute(
                text(
                    "SELECT r.id, h.hex, h.held FROM item_hashes h"
                    " JOIN reports r ON r.seq = h.report_seq ORDER BY h.hex"
                )
            )
            held = [(r.id, r.hex, bool(r.held)) for r in marked]
            indexes = {i["name"] for i in inspect(conn).get_indexes("item_hashes")}
        downgrade(engine, "0015")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("item_hashes")}
            back = {i["name"] for i in inspect(conn).get_indexes("item_hashes")}
            count = conn.execute(text("SELECT count(*) FROM item_hashes")).scalar_one()
    finally:
        engine.dispose()
        dbs.close()
    assert held == [
        (in_case, "aa" * 32, True),
        (in_case, "bb" * 32, True),
        (sent_on, "cc" * 32, False),
    ]
    assert indexes == {"ix_item_hashes_held_algorithm_hex"}
    assert "held" not in columns
    assert back == {"ix_item_hashes_algorithm_hex"}
    assert count == 3


def _state_row(conn: Any, case: str, report_id: str) -> None:
    """An item state as 0016 stored it."""
    conn.execute(
        text(
            "INSERT INTO item_states (case_id, report_id, idx, holder, origin_member,"
            " origin_classification, orphaned, stage, disputed, actions, updated_at)"
            " VALUES (:c, :r, 0, 'de-eco', 'nl-eokm', 'baseline', FALSE, 'unassessed', FALSE,"
            " 0, 1)"
        ),
        {"c": case, "r": report_id},
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_item_states_get_their_reports_place_and_back(tmp_path: Path, backend: str) -> None:
    """0017 gives each item state whose report is stored here that report's place, leaves the
    others without one, and swaps the index on every row's report id for the place's and a
    partial one; its downgrade drops the column and builds the old index again."""
    dbs = Databases(tmp_path, postgresql_admin_url() if backend == "postgresql" else None)
    engine = open_engine(dbs.new(empty=True))
    stored, elsewhere = "r-" + "a" * 32, "r-" + "b" * 32
    try:
        upgrade(engine, "0013")
        with engine.begin() as conn:
            _report_with_items(conn, "r-" + "c" * 32, 5, ())
            _report_with_items(conn, stored, 10, ())
        upgrade(engine, "0016")
        with engine.begin() as conn:
            for case, rid in (("c-1", stored), ("c-2", elsewhere), ("c-3", stored)):
                _state_row(conn, case, rid)
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT case_id, report_seq FROM item_states ORDER BY 1"))
            placed = [tuple(r) for r in rows]
            seq = conn.execute(text("SELECT seq FROM reports WHERE id = :r"), {"r": stored})
            place = seq.scalar_one()
            indexes = {i["name"] for i in inspect(conn).get_indexes("item_states")}
        downgrade(engine, "0016")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("item_states")}
            back = {i["name"] for i in inspect(conn).get_indexes("item_states")}
            count = conn.execute(text("SELECT count(*) FROM item_states")).scalar_one()
    finally:
        engine.dispose()
        dbs.close()
    assert placed == [("c-1", place), ("c-2", None), ("c-3", place)]
    assert place == 2
    assert {"ix_item_states_report_seq", "ix_item_states_unplaced_report_id"} <= indexes
    assert "ix_item_states_report_id" not in indexes
    assert "report_seq" not in columns
    assert "ix_item_states_report_id" in back
    assert not {"ix_item_states_report_seq", "ix_item_states_unplaced_report_id"} & back
    assert count == 3


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_outbox_rows_queue_reports_by_place_and_back(tmp_path: Path, backend: str) -> None:
    """0018 keeps every queued row's bytes and lets a row name a stored report by its place
    instead; its downgrade copies that report's bytes back into the row."""
    dbs = Databases(tmp_path, postgresql_admin_url() if backend == "postgresql" else None)
    engine = open_engine(dbs.new(empty=True))
    rid = "r-" + "a" * 32
    queue = (
        "INSERT INTO outbox (destination, report_id, {col}, created_at, kind)"
        " VALUES ('de-eco', :r, :v, 1, :kind)"
    )
    try:
        upgrade(engine, "0013")
        with engine.begin() as conn:
            _report_with_items(conn, rid, 10, ())
        upgrade(engine, "0017")
        with engine.begin() as conn:
            conn.execute(
                text(queue.format(col="payload")), {"r": "e-1", "v": b"ev", "kind": "event"}
            )
        upgrade(engine)
        with engine.begin() as conn:
            place = conn.execute(text("SELECT seq FROM reports WHERE id = :r"), {"r": rid})
            by_place = {"r": rid, "v": place.scalar_one(), "kind": "report"}
            conn.execute(text(queue.format(col="report_seq")), by_place)
            at_head = [tuple(r) for r in conn.execute(_OUTBOX_ROWS)]
        downgrade(engine, "0017")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("outbox")}
            back = [tuple(r) for r in conn.execute(text("SELECT report_id, payload FROM outbox"))]
    finally:
        engine.dispose()
        dbs.close()
    assert at_head == [("e-1", None, b"ev"), (rid, by_place["v"], None)]
    assert "report_seq" not in columns
    assert sorted(back) == [("e-1", b"ev"), (rid, b"w")]


_OUTBOX_ROWS = text("SELECT report_id, report_seq, payload FROM outbox ORDER BY id")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_log_entries_get_a_batch_column_and_back(tmp_path: Path, backend: str) -> None:
    """0019 adds the (unhashed) batch sequence a batch's entries are found by, indexed only
    where set; entries of one report written before keep none, a batch's entry written before
    (kept through a downgrade) gets its sequence back from its detail. Its downgrade drops the
    column and index."""
    dbs = Databases(tmp_path, postgresql_admin_url() if backend == "postgresql" else None)
    engine = open_engine(dbs.new(empty=True))
    try:
        upgrade(engine, "0018")
        with engine.begin() as conn:
            _log_row(conn, 0, "r-old")
            # A batch's entry written under 0019 and kept through a downgrade.
            conn.execute(
                text(
                    "INSERT INTO routing_log (idx, at, kind, member, detail, previous_hash,"
                    " entry_hash) VALUES (2, 3, 'receipted', 'de-eco', :d, :h, :h)"
                ),
                {"h": b"\0" * 32, "d": '{"count":1,"reports":[],"sequence":5}'},
            )
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO routing_log (idx, at, kind, member, detail, previous_hash,"
                    " entry_hash, batch_sequence) VALUES (1, 2, 'sent', 'de-eco', '{}', :h, :h, 7)"
                ),
                {"h": b"\0" * 32},
            )
            at_head = [tuple(r) for r in conn.execute(_LOG_BATCHES)]
            indexes = {i["name"] for i in inspect(conn).get_indexes("routing_log")}
        downgrade(engine, "0018")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("routing_log")}
            back = {i["name"] for i in inspect(conn).get_indexes("routing_log")}
            count = conn.execute(text("SELECT count(*) FROM routing_log")).scalar_one()
    finally:
        engine.dispose()
        dbs.close()
    assert at_head == [(0, None), (1, 7), (2, 5)]
    assert "ix_routing_log_batch" in indexes
    assert "batch_sequence" not in columns
    assert "ix_routing_log_batch" not in back
    assert count == 3


_LOG_BATCHES = text("SELECT idx, batch_sequence FROM routing_log ORDER BY idx")
