"""store/routing_log.py: append and head, the one row→entry mapping, paging, checkpoints."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from exchange.batch_entries import receipted_entry, sent_entry
from exchange.domain import LogKind, ReportRole
from exchange.routing_log import GENESIS, Checkpoint, LogChain, verify_chain
from exchange.store import outbox, peers, reports, routing_log
from exchange.store.reports import Incoming
from exchange.store.routing_log import LogFilter
from exchange.store.writer import Tx, Writer
from tests.exchange.factories import T0, make_report, report_place, report_wire


def fill(engine: Engine, n: int) -> list[object]:
    chain = LogChain(0, GENESIS)
    entries = [
        chain.append(
            T0 + timedelta(seconds=i),
            LogKind.INTAKE if i % 2 else LogKind.PULLED,
            report_id=f"r-{i}",
            member="nl-eokm",
            country="NL" if i < 3 else "DE",
            detail={"i": i},
        )
        for i in range(n)
    ]
    with engine.begin() as conn:
        routing_log.append(conn, [e.as_row() for e in entries])
        routing_log.append(conn, [])  # nothing to do
    return list(entries)


def test_an_empty_log_has_no_head(engine: Engine) -> None:
    with engine.connect() as conn:
        assert routing_log.head(conn) is None
        assert list(routing_log.load_entries(conn)) == []


def test_rows_read_back_as_the_entries_written(engine: Engine) -> None:
    written = fill(engine, 5)
    with engine.connect() as conn:
        read = list(routing_log.load_entries(conn, batch=2))  # several pages
        head = routing_log.head(conn)
    assert read == written
    assert verify_chain(read) is None
    assert head is not None
    assert (head.idx, head.entry_hash) == (4, read[-1].entry_hash)


def test_stored_kinds_are_the_enum_values(engine: Engine) -> None:
    fill(engine, 2)
    with engine.connect() as conn:
        kinds = [e.kind for e in routing_log.load_entries(conn)]
    assert kinds == ["pulled", "intake"]


def test_list_entries_filters_and_pages(engine: Engine) -> None:
    fill(engine, 6)
    with engine.connect() as conn:
        page, after = routing_log.list_entries(conn, LogFilter(page_size=4))
        assert [e.idx for e in page] == [0, 1, 2, 3]
        assert after == 3
        rest, end = routing_log.list_entries(conn, LogFilter(after_index=3, page_size=4))
        assert [e.idx for e in rest] == [4, 5]
        assert end is None
        de = routing_log.list_entries(conn, LogFilter(country="DE", kind="intake"))[0]
        assert [e.idx for e in de] == [3, 5]
        timed = routing_log.list_entries(
            conn, LogFilter(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3))
        )[0]
        assert [e.idx for e in timed] == [1, 2]


def _entry(chain: LogChain, kind: LogKind, report_id: str) -> dict[str, Any]:
    return chain.append(T0, kind, report_id=report_id, member="nl-eokm").as_row()


def _ids(conn: Connection, report_id: str, **page: Any) -> tuple[list[int], int | None]:
    entries, after = routing_log.list_entries(conn, LogFilter(report_id=report_id, **page))
    return [e.idx for e in entries], after


def test_a_reports_entries_are_found_whether_or_not_it_is_stored_here(engine: Engine) -> None:
    """An entry names a report by id; the log finds it through the report's place once the
    report is stored here, and through the id for entries written before that (or about a
    report never stored here, as a payload refused in a receipt) — every one, in order."""
    kept, refused = make_report(hashes=["kept"]), make_report(hashes=["refused"])
    chain = LogChain(0, GENESIS)
    with engine.begin() as conn:  # before ``kept`` is stored here: 0 and 1
        routing_log.append(
            conn,
            [_entry(chain, LogKind.REJECTED, kept.id), _entry(chain, LogKind.REJECTED, refused.id)],
        )
    with engine.begin() as conn:  # stored, then logged in the same transaction: 2, 3, 4
        incoming = Incoming(kept, report_wire(kept), ReportRole.ORIGIN)
        reports.insert(conn, [incoming], [None], [(None,)], T0)
        routing_log.append(
            conn,
            [
                _entry(chain, LogKind.INTAKE, kept.id),
                _entry(chain, LogKind.SENT, refused.id),
                _entry(chain, LogKind.SENT, kept.id),
            ],
        )
    with engine.connect() as conn:
        places = dict(conn.execute(text("SELECT idx, report_seq FROM routing_log")).all())
        assert _ids(conn, kept.id) == ([0, 2, 4], None)
        assert _ids(conn, refused.id) == ([1, 3], None)
        assert _ids(conn, kept.id, page_size=2) == ([0, 2], 2)
        assert _ids(conn, kept.id, after_index=2) == ([4], None)
        assert _ids(conn, "r-" + "0" * 64) == ([], None)
        read = list(routing_log.load_entries(conn))
    place = report_place(engine, kept.id)
    assert places == {0: None, 1: None, 2: place, 3: None, 4: place}
    assert verify_chain(read) is None  # the place is the store's, not part of an entry
    with engine.begin() as conn:  # a place edited (no hash covers it) moves no entry over
        conn.execute(text("UPDATE routing_log SET report_seq = :p WHERE idx = 3"), {"p": place})
    with engine.connect() as conn:
        assert _ids(conn, kept.id) == ([0, 2, 4], None)


def test_the_writer_places_entries_about_the_reports_its_jobs_store(
    writer: Writer, engine: Engine
) -> None:
    """The writer appends a transaction's entries after its jobs ran: an entry logged before
    its report was stored, in the same job, still gets the report's place."""
    report = make_report(hashes=["placed"])

    def job(tx: Tx) -> None:
        tx.log(tx.chain.append(T0, LogKind.INTAKE, report_id=report.id, member="nl-eokm"))
        incoming = Incoming(report, report_wire(report), ReportRole.ORIGIN)
        reports.insert(tx.conn, [incoming], [None], [(None,)], T0)

    writer.execute(job)
    with engine.connect() as conn:
        placed = conn.execute(text("SELECT report_seq FROM routing_log")).scalar_one()
    assert placed == report_place(engine, report.id)


def test_a_reports_entries_are_looked_up_through_indexes_not_a_scan(engine: Engine) -> None:
    """The log holds an entry or more per report a node ever handled: a look-up by report must
    not read it all. PostgreSQL plans by its statistics (a near-empty table is read whole), so
    there the plan is asked for with sequential scans off: it can use the indexes."""
    stored = make_report(hashes=["stored"])
    with engine.begin() as conn:
        incoming = Incoming(stored, report_wire(stored), ReportRole.ORIGIN)
        reports.insert(conn, [incoming], [None], [(None,)], T0)
    for rid in (stored.id, "r-" + "0" * 64):
        plan = _plan(engine, LogFilter(report_id=rid))
        assert "scan routing_log" not in plan.lower().replace("seq scan on", "scan"), plan
        assert "ix_routing_log_unplaced_report_id" in plan, plan
        assert ("ix_routing_log_report_seq" in plan) == (rid == stored.id), plan


def _plan(engine: Engine, f: LogFilter) -> str:
    with engine.begin() as conn:
        query = routing_log.page_query(conn, f, 100)
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
    return _explain(engine, sql)


def _explain(engine: Engine, sql: str) -> str:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        return " | ".join(
            str(r[-1])
            for r in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {sql}" if engine.dialect.name == "sqlite" else f"EXPLAIN {sql}"
            )
        )


def _batch(chain: LogChain, kind: LogKind, seq: int, ids: list[str]) -> dict[str, Any]:
    if kind == LogKind.SENT:
        entry = sent_entry(chain, T0, "de-eco", seq, ids)
    else:
        entry = receipted_entry(chain, T0, "de-eco", seq, T0, [(i, "new-case", "") for i in ids])
    return {**entry.as_row(), "batch_sequence": seq}


def test_a_reports_listing_holds_the_entries_of_the_batches_it_went_in(engine: Engine) -> None:
    """A batch's ``sent`` and ``receipted`` entries (one each since 0019) are in the listing of
    every report they list: found by the batch's peer and sequence, among the batches awaiting
    a receipt until it comes and by the report's delivery after. Another batch's entries are
    not, nor one whose stored sequence is edited to the report's batch: its hashed detail must
    name the report."""
    kept, other = make_report(hashes=["kept"]), make_report(hashes=["other"])
    chain = LogChain(0, GENESIS)
    with engine.begin() as conn:
        incoming = [Incoming(r, report_wire(r), ReportRole.ORIGIN) for r in (kept, other)]
        reports.insert(conn, incoming, [None, None], [(None,), (None,)], T0)
        routing_log.append(conn, [_entry(chain, LogKind.INTAKE, kept.id)])  # 0
        outbox.enqueue_stored(conn, [("de-eco", kept.id), ("de-eco", other.id)], T0)
        rows = sorted(r.id for r in outbox.pending_reports(conn, "de-eco", 10))
        peers.ensure(conn, "de-eco")
        for seq, part in ((7, rows[:1]), (8, rows[1:])):
            _sealed(conn, seq)
            outbox.assign(conn, seq, part)
        routing_log.append(conn, [_batch(chain, LogKind.SENT, 7, [kept.id])])  # 1
        routing_log.append(conn, [_batch(chain, LogKind.SENT, 8, [other.id])])  # 2
    with engine.connect() as conn:
        assert _ids(conn, kept.id) == ([0, 1], None)  # sent: awaiting its receipt
        assert _ids(conn, other.id) == ([2], None)
    with engine.begin() as conn:
        outbox.remove_batch_rows(conn, "de-eco", 7)
        outbox.mark_receipted(conn, "de-eco", 7, body=b"b", signature=b"s", at=T0)
        delivery = outbox.Delivery(kept.id, "de-eco", 7, "new-case", None, None, T0)
        outbox.record_deliveries(conn, [delivery])
        routing_log.append(conn, [_batch(chain, LogKind.RECEIPTED, 7, [kept.id])])  # 3
        conn.execute(text("UPDATE routing_log SET batch_sequence = 7 WHERE idx = 2"))
    with engine.connect() as conn:
        assert _ids(conn, kept.id) == ([0, 1, 3], None)  # receipted: by its delivery
        assert _ids(conn, kept.id, after_index=1, page_size=1) == ([3], None)
        assert verify_chain(list(routing_log.load_entries(conn))) is None


def _sealed(conn: Connection, seq: int) -> None:
    outbox.insert_batch(
        conn, peer="de-eco", sequence=seq, kind=outbox.REPORT, header=b"h", signature=b"s",
        root=bytes(32), count=1, created_at=T0,
    )  # fmt: skip


def test_a_reports_batch_entries_are_looked_up_through_an_index(engine: Engine) -> None:
    """As above, for the entries of the batch a report went in. The log holds entries of
    other batches, and PostgreSQL is told what it holds: on a near-empty table its planner
    would rather read the whole key range."""
    stored = make_report(hashes=["stored"])
    chain = LogChain(0, GENESIS)
    with engine.begin() as conn:
        reports.insert(conn, [Incoming(stored, report_wire(stored), ReportRole.ORIGIN)],
                       [None], [(None,)], T0)  # fmt: skip
        delivery = outbox.Delivery(stored.id, "de-eco", 7, "new-case", None, None, T0)
        outbox.record_deliveries(conn, [delivery])
        peers.ensure(conn, "de-eco")
        _sealed(conn, 8)  # awaiting its receipt
        others = [_batch(chain, LogKind.SENT, seq, [f"r-{seq:032x}"]) for seq in range(8, 2008)]
        routing_log.append(conn, others)
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE routing_log")
    plan = _plan(engine, LogFilter(report_id=stored.id))
    assert "scan routing_log" not in plan.lower().replace("seq scan on", "scan"), plan
    assert plan.count("ix_routing_log_batch") >= (2 if engine.dialect.name == "sqlite" else 1)
    with engine.begin() as conn:  # the batches its listing looks in: through an index
        found = outbox.batches_of(conn, report_place(engine, stored.id))
        query = str(
            outbox.batches_query(report_place(engine, stored.id)).compile(
                conn, compile_kwargs={"literal_binds": True}
            )
        )
    assert found == [("de-eco", 7), ("de-eco", 8)]
    waiting = _explain(engine, query)
    assert "ix_batches_destination_receipted" in waiting, waiting
    assert "scan batches" not in waiting.lower().replace("seq scan on", "scan"), waiting


def test_checkpoints_are_stored_found_and_listed(engine: Engine) -> None:
    a = Checkpoint("nl-eokm", 2, b"h" * 32, T0, "k1", b"s1")
    b = Checkpoint("nl-eokm", 5, b"i" * 32, T0 + timedelta(minutes=1), "k1", b"s2")
    with engine.connect() as conn:
        assert routing_log.largest_checkpoint(conn) is None
        assert routing_log.find_checkpoint(conn, "nl-eokm", 0) is None
    with engine.begin() as conn:
        routing_log.add_checkpoint(conn, b)
        routing_log.add_checkpoint(conn, a)
    with engine.connect() as conn:
        assert routing_log.largest_checkpoint(conn) == 5
        assert routing_log.load_checkpoints(conn, "nl-eokm") == [a, b]
        assert routing_log.find_checkpoint(conn, "nl-eokm", 2) == a
        assert routing_log.find_checkpoint(conn, "nl-eokm", 0) == b  # 0: the latest
        assert routing_log.find_checkpoint(conn, "nl-eokm", 3) is None


def test_a_page_of_large_entries_ends_early_and_paging_moves_on(engine: Engine) -> None:
    """A page holds about ``MAX_PAGE_BYTES`` of entries at most (a batch's entry lists its
    reports), one at least even when that one alone is larger: every entry is read once, in
    order, whatever the page size asked for."""
    chain = LogChain(0, GENESIS)
    big = routing_log.MAX_PAGE_BYTES // 3
    sizes = [big, big, big, big, 10, 4 * big, 10]
    rows = [
        chain.append(T0, LogKind.SENT, member="de-eco", detail={"pad": "x" * n}).as_row()
        for n in sizes
    ]
    with engine.begin() as conn:
        routing_log.append(conn, rows)
    pages, after = [], -1
    with engine.connect() as conn:
        while after is not None:
            page, after = routing_log.list_entries(
                conn, LogFilter(after_index=after, page_size=100)
            )
            pages.append([e.idx for e in page])
    assert pages == [[0, 1], [2, 3, 4], [5], [6]]
