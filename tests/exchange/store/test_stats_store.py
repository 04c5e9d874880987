"""exchange/store/stats.py on a real database (SQLite, or PostgreSQL when the suite runs on it).

The rollup's upsert adds (a delta creates a count, a later one changes it, a negative one takes
back); a range read sees only its days and no zero count; item facts are kept and dropped;
changed items page by (updated_at, key) and are found by time; the routing-log read takes only
the kinds that count, with the intake time of a report that came in here.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from exchange.domain import LogKind
from exchange.stats.facts import day_of
from exchange.stats.model import Figure
from exchange.store import schema
from exchange.store import stats as store
from exchange.store.writer import Writer
from exchange.times import to_micros
from tests.exchange.factories import T0, FakeClock
from tests.exchange.stats.held import ME, Held, report_row


def test_counts_add_up_and_a_range_sees_only_its_days(engine: Engine) -> None:
    with engine.begin() as conn:
        store.add_counts(conn, {(Figure.ITEMS, "NL", 10, -1): 2, (Figure.ITEMS, "NL", 11, -1): 1})
        store.add_counts(conn, {(Figure.ITEMS, "NL", 10, -1): 3, (Figure.TO_LEA, "", 10, 4): 1})
        store.add_counts(conn, {(Figure.ITEMS, "NL", 11, -1): -1})
    with engine.connect() as conn:
        assert dict(store.counts_between(conn, 10, 10)) == {
            (Figure.ITEMS, "NL", 10, -1): 5,
            (Figure.TO_LEA, "", 10, 4): 1,
        }
        assert dict(store.counts_between(conn, 11, 30)) == {}  # a zero count is not read
        assert store.all_counts(conn) == {
            (Figure.ITEMS, "NL", 10, -1): 5,
            (Figure.TO_LEA, "", 10, 4): 1,
        }


def test_marks_are_kept_and_moved(engine: Engine) -> None:
    with engine.begin() as conn:
        assert store.mark(conn, "log") is None
        store.set_mark(conn, "log", 7)
        store.set_mark(conn, "log", 9)
    with engine.connect() as conn:
        assert store.mark(conn, "log") == 9


def test_facts_are_kept_and_dropped(engine: Engine, writer: Writer) -> None:
    held = Held(engine, writer)
    cid = held.open(now=T0, items=2)
    with engine.begin() as conn:
        store.save_facts(conn, [((cid, "r-000001", 0), "a"), ((cid, "r-000001", 1), "b")])
        store.save_facts(conn, [((cid, "r-000001", 0), None), ((cid, "r-000001", 1), "c")])
    with engine.connect() as conn:
        rows = store.changed_items(conn, ME, since=None, after=None, limit=10)
    assert [(r.key, r.counted) for r in rows] == [
        ((cid, "r-000001", 0), None),
        ((cid, "r-000001", 1), "c"),
    ]


def test_facts_of_six_long_keys_are_kept(engine: Engine, writer: Writer) -> None:
    # A hoster's key is up to 128 characters; an item's facts name several such keys.
    cid = Held(engine, writer).open(now=T0, items=1)
    facts = "\t".join("k" * 128 for _ in range(6))
    with engine.begin() as conn:
        store.save_facts(conn, [((cid, "r-000001", 0), facts)])
    with engine.connect() as conn:
        rows = store.changed_items(conn, ME, since=None, after=None, limit=10)
    assert [r.counted for r in rows] == [facts]


def test_changed_items_page_by_time_and_key(engine: Engine, writer: Writer) -> None:
    clock = FakeClock(T0)
    held = Held(engine, writer)
    for _ in range(3):
        held.open(now=clock(), items=2)
        clock.advance(10)
    held.open(now=T0, items=1, holder="de-eco")  # not ours, never counted: not read
    with engine.connect() as conn:
        first = store.changed_items(conn, ME, since=None, after=None, limit=4)
        last = first[-1]
        rest = store.changed_items(
            conn, ME, since=None, after=(last.updated_at, *last.key), limit=4
        )
        recent = store.changed_items(
            conn, ME, since=T0 + timedelta(seconds=15), after=None, limit=9
        )
    keys = [r.key for r in first + rest]
    assert len(keys) == len(set(keys)) == 6
    assert [r.key[0] for r in recent] == ["c-000003", "c-000003"]
    assert all(r.row is not None and r.row.country == "US" for r in first)


def test_a_log_page_counts_intake_and_sent_and_reads_the_rest_with_the_intake_time(
    engine: Engine, writer: Writer
) -> None:
    clock = FakeClock(T0)
    held = Held(engine, writer)
    held.log(LogKind.INTAKE, now=clock(), country="NL")  # 0
    held.log(LogKind.ANNOUNCED, now=clock())  # 1: counts nothing
    held.log(LogKind.RECEIPTED, now=clock(), report_id="r-unknown", member="de-eco")  # 2
    with engine.begin() as conn:
        conn.execute(
            schema.reports.insert(),
            report_row("r-mine", seq=10**6, country="DE", at=T0, role="origin"),
        )
    clock.advance(2)
    held.log(LogKind.RECEIPTED, now=clock(), report_id="r-mine", member="de-eco")  # 3
    held.log(LogKind.INTAKE, now=clock(), country="NL")  # 4
    held.log(LogKind.SENT, now=clock(), member="de-eco")  # 5
    clock.advance(86_400)
    held.log(LogKind.INTAKE, now=clock(), country="NL")  # 6: the next day
    held.log(LogKind.INTAKE, now=clock(), country=None)  # 7: untraced
    day = day_of(T0)
    with engine.connect() as conn:
        first = store.log_page(conn, -1, 4)
        second = store.log_page(conn, first.last or 0, 10)
        none = store.log_page(conn, 7, 10)
    assert (first.last, first.more) == (3, True)
    assert first.counts == [("intake", "NL", day, 1)]
    assert [(e.kind, e.member, e.intake_us) for e in first.each] == [
        ("receipted", "de-eco", None),  # not a report that came in here
        ("receipted", "de-eco", to_micros(T0)),
    ]
    assert (second.last, second.more, second.each) == (7, False, [])
    assert sorted(second.counts, key=repr) == sorted(
        [("intake", "NL", day, 1), ("sent", "de-eco", day, 1), ("intake", "NL", day + 1, 1),
         ("intake", None, day + 1, 1)],
        key=repr,
    )  # fmt: skip
    assert none == store.LogPage(None, False, [], [])


def test_a_log_page_of_entries_that_count_nothing_still_moves_on(
    engine: Engine, writer: Writer
) -> None:
    clock = FakeClock(T0)
    held = Held(engine, writer)
    for _ in range(3):
        held.log(LogKind.ANNOUNCED, now=clock())
    held.log(LogKind.SENT, now=clock(), member="de-eco")  # 3
    with engine.connect() as conn:
        first = store.log_page(conn, -1, 3)
        second = store.log_page(conn, first.last or 0, 3)
    assert (first.last, first.more, first.counts, first.each) == (2, True, [], [])
    assert (second.last, second.more) == (3, False)
    assert second.counts == [("sent", "de-eco", day_of(T0), 1)]


def test_a_log_page_counts_a_batchs_sent_entry_as_its_reports_and_reads_its_receipt_per_report(
    engine: Engine, writer: Writer
) -> None:
    """Since 0019 an origin logs one ``sent`` and one ``receipted`` entry per batch: the first
    counts as the reports it lists, the second reads as one row per report with its intake
    time here (None for a report that did not come in here) — the figures stay per report."""
    clock = FakeClock(T0)
    held = Held(engine, writer)
    with engine.begin() as conn:
        conn.execute(
            schema.reports.insert(),
            report_row("r-mine", seq=10**6, country="DE", at=T0, role="origin"),
        )
    held.log(LogKind.SENT, now=clock(), report_id="r-old", member="de-eco")  # 0: before 0019
    held.log_sent(now=clock(), member="de-eco", sequence=7, ids=["r-mine", "r-x", "r-y"])  # 1
    clock.advance(3)
    held.log_receipted(now=clock(), member="de-eco", sequence=7, ids=["r-mine", "r-x"])  # 2
    with engine.connect() as conn:
        page = store.log_page(conn, -1, 10)
    day = day_of(T0)
    assert sorted(page.counts) == [("sent", "de-eco", day, 1), ("sent", "de-eco", day, 3)]
    assert [(e.kind, e.member, e.at_us, e.intake_us) for e in page.each] == [
        ("receipted", "de-eco", to_micros(T0) + 3_000_000, to_micros(T0)),
        ("receipted", "de-eco", to_micros(T0) + 3_000_000, None),
    ]
