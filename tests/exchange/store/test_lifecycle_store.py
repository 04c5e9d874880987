"""store/lifecycle.py on a real migrated database: events, item states and the work queues.

Events: stored once with their bytes (a second insert of an id is refused by the database),
sequences per (case, member), the feed in order of arrival. States: the holder's first rows,
rewritten whole by ``save_states`` (the orphan mark kept). Queues: each one's set-based
filter, held cases only, oldest takedown clock first, keyset-paged without gaps or repeats;
"recently closed" lists only cases with no open item left; ``queue_counts`` agrees with them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from exchange.domain import AgeGroup, Classification, ReportRole
from exchange.lifecycle.model import (
    ActionKind,
    Assessment,
    EventKind,
    Gender,
    ItemState,
    Queue,
    ReasonCode,
    Stage,
)
from exchange.store import lifecycle as store
from exchange.store import reports, schema
from exchange.store.lifecycle import StoredEvent
from exchange.store.reports import Incoming
from exchange.times import from_micros
from exchange.wire.case_codec import event_to_bytes
from tests.exchange.factories import T0, make_report, report_place
from tests.exchange.lifecycle.factories import (
    HOLDER,
    assessment,
    case_id,
    make_event,
    make_ref,
    make_state,
    report_id,
    withdrawal,
)
from tests.exchange.store.held_cases import (
    NOW,
    SINCE,
    assessed_as,
    clock,
    closed_item,
    item,
    put_case,
)
from tests.exchange.store.plans import sqlite_plans


def stored(
    event_seed: str = "a", *, member: str = HOLDER, sequence: int = 1, **extra: object
) -> StoredEvent:
    event = make_event(
        assessment(), refs=(make_ref(seed=event_seed),), member=member, sequence=sequence
    )
    return StoredEvent(
        id=event.id,
        case_id=event.case_id,
        member=event.member,
        sequence=event.sequence,
        at=event.at,
        kind=str(event.kind),
        payload=event_to_bytes(event),
        **extra,  # type: ignore[arg-type]
    )


# -- events -------------------------------------------------------------------------------------


def test_events_are_stored_once_with_their_bytes(engine: Engine) -> None:
    first, second = stored(sequence=1), stored(sequence=2)
    with engine.begin() as conn:
        store.insert_events(conn, [first, second], NOW)
        store.insert_events(conn, [], NOW)  # nothing to do
    with engine.connect() as conn:
        assert store.held_event_ids(conn, [first.id, second.id, "e-" + "0" * 32, first.id]) == {
            first.id,
            second.id,
        }
        assert store.held_event_ids(conn, []) == set()
        assert [p for _, p in store.case_payloads(conn, [case_id()])] == [
            first.payload,
            second.payload,
        ]
    # the id is unique: an event is never held twice, whatever the caller checked before
    with pytest.raises(IntegrityError), engine.begin() as conn:
        store.insert_events(conn, [first], NOW)


def test_a_received_event_keeps_the_envelope_that_carried_it(engine: Engine) -> None:
    event = stored(sender="de-eco", envelope_sequence=9, leaf_index=2, proof=b"\x01" * 32)
    with engine.begin() as conn:
        store.insert_events(conn, [event], NOW)
    with engine.connect() as conn:
        row = conn.execute(select(schema.case_events)).one()
    assert (row.sender, row.envelope_sequence, row.leaf_index, row.proof) == (
        "de-eco",
        9,
        2,
        b"\x01" * 32,
    )
    assert row.stored_at == NOW


def test_sequences_count_per_case_and_member(engine: Engine) -> None:
    with engine.begin() as conn:
        assert store.next_sequence(conn, case_id(), HOLDER) == 1
        assert store.next_sequence(conn, case_id(), HOLDER) == 1
        store.insert_events(
            conn,
            [
                stored(sequence=1),
                stored(sequence=2),
                stored(sequence=1, member="nl-eokm"),
                stored("b", sequence=1),
            ],
            NOW,
        )
        assert store.next_sequence(conn, case_id(), HOLDER) == 3
        assert store.next_sequence(conn, case_id(), HOLDER) == 3
        assert store.next_sequence(conn, case_id(), "nl-eokm") == 2
        assert store.next_sequence(conn, case_id("b"), HOLDER) == 2
        assert store.next_sequence(conn, case_id("c"), HOLDER) == 1


def test_the_feed_is_the_order_of_arrival_and_pages_by_cursor(engine: Engine) -> None:
    # arrival order differs from case order and from the events' own times
    events = [stored("b", sequence=1), stored("a", sequence=1), stored("b", sequence=2)]
    with engine.begin() as conn:
        assert store.payloads_after(conn, 0, 10) == []
        for e in events:  # one at a time: each gets the next cursor
            store.insert_events(conn, [e], NOW)
    with engine.connect() as conn:
        everything = store.payloads_after(conn, 0, 10)
        assert [p for _, p in everything] == [e.payload for e in events]
        cursors = [c for c, _ in everything]
        assert cursors == sorted(cursors)
        assert store.payloads_after(conn, 0, 2) == everything[:2]
        assert store.payloads_after(conn, cursors[1], 2) == everything[2:]
        assert store.payloads_after(conn, cursors[-1], 2) == []
        # a case's timeline: its own events, in arrival order
        assert [p for _, p in store.case_payloads(conn, [case_id("b")])] == [
            events[0].payload,
            events[2].payload,
        ]
        assert store.case_payloads(conn, []) == []


def test_withdrawals_are_found_by_their_report(engine: Engine) -> None:
    asked = make_event(withdrawal(), kind=EventKind.WITHDRAWAL, member="nl-eokm", case="")
    row = StoredEvent(
        id=asked.id,
        case_id="",
        member=asked.member,
        sequence=1,
        at=asked.at,
        kind=str(asked.kind),
        payload=event_to_bytes(asked),
        report_id=report_id(),
    )
    with engine.begin() as conn:
        store.insert_events(conn, [row, stored()], NOW)
    with engine.connect() as conn:
        assert [p for _, p in store.withdrawal_payloads(conn, report_id())] == [row.payload]
        assert store.withdrawal_payloads(conn, report_id("b")) == []


# -- item states --------------------------------------------------------------------------------


def worked(index: int = 0, seed: str = "a") -> ItemState:
    """An item with every column of its row set."""
    return make_state(
        index,
        seed=seed,
        stage=Stage.NOT_ILLEGAL,
        assessment=Assessment(
            Classification.NOT_ILLEGAL,
            AgeGroup.PUBESCENT,
            Gender.MALE,
            virtual=True,
            user_generated=True,
            child_modelling=True,
            analyst_ref="an-3",
        ),
        disputed=True,
        actions=4,
        last_action=ActionKind.NOT_ILLEGAL,
        assessed_at=T0 + timedelta(hours=1),
        lea_at=T0 + timedelta(hours=2),
        lea_partner="de-bka",
        host_notice_at=T0 + timedelta(hours=3),
        host_recipient="abuse@hoster.example",
        closed_at=T0 + timedelta(hours=4),
        close_reason=ReasonCode.ADULT_PORNOGRAPHY,
        moved_to_country="RO",
        moved_to_member="ro-safernet",
    )


def test_states_are_read_back_exactly(engine: Engine) -> None:
    fresh, full = make_state(0), worked(1)
    with engine.begin() as conn:
        store.open_items(conn, [(case_id(), fresh, False), (case_id(), full, True)], NOW)
        store.open_items(conn, [], NOW)
    with engine.connect() as conn:
        assert store.states(conn, [case_id(), case_id("none")]) == {case_id(): [fresh, full]}
        assert store.states(conn, []) == {}
        assert store.states_of_report(conn, report_id()) == [
            (case_id(), fresh),
            (case_id(), full),
        ]
        assert store.holder_of(conn, case_id()) == HOLDER
        assert store.holder_of(conn, case_id("none")) is None


def test_an_untouched_state_is_stored_as_every_column_of_its_row(engine: Engine) -> None:
    """A first state is written by its non-null columns only: the row is the full one."""
    fresh, full = make_state(0), worked(1)
    with engine.begin() as conn:
        store.open_items(conn, [(case_id(), fresh, True), (case_id(), full, False)], NOW)
    with engine.connect() as conn:
        rows = {r.idx: dict(r._mapping) for r in conn.execute(select(schema.item_states))}
    unplaced = {"report_seq": None}  # the report is not stored here
    assert rows[0] == store._row(case_id(), fresh, NOW, True) | unplaced
    assert rows[1] == store._row(case_id(), full, NOW, False) | unplaced


def _store_report(engine: Engine, seed: str) -> int:
    """A report with the id ``report_id(seed)`` stored here; its place."""
    report = replace(make_report(url=f"https://a.example/{seed}"), id=report_id(seed))
    with engine.begin() as conn:
        incoming = [Incoming(report, b"w", ReportRole.RECEIVED)]
        reports.insert(conn, incoming, [case_id(seed)], [(None,) * len(report.items)], NOW)
    return report_place(engine, report.id)


def test_a_reports_states_are_found_by_its_place_or_else_by_its_id(engine: Engine) -> None:
    """A state of a report stored here carries the report's place and is found by it; one of a
    report held elsewhere (another reporter's) has none and is found by its id — also after
    the report arrives, until its state is written again (0017)."""
    _store_report(engine, "other")  # the places are not all the first
    place = _store_report(engine, "here")
    here, elsewhere = make_state(0, seed="here"), make_state(0, seed="away")
    moved = make_state(1, seed="here")
    with engine.begin() as conn:
        store.open_items(
            conn,
            [(case_id("here"), here, False), (case_id("away"), elsewhere, False)],
            NOW,
        )
        store.save_states(conn, case_id("moved"), [moved], NOW)  # a second case, by a move

    def seqs() -> dict[str, int | None]:
        s = schema.item_states.c
        with engine.connect() as conn:
            return {r.case_id: r.report_seq for r in conn.execute(select(s.case_id, s.report_seq))}

    assert seqs() == {case_id("here"): place, case_id("away"): None, case_id("moved"): place}
    with engine.connect() as conn:
        assert store.states_of_report(conn, report_id("here")) == [
            (case_id("here"), here),
            (case_id("moved"), moved),
        ]
        assert store.states_of_report(conn, report_id("away")) == [(case_id("away"), elsewhere)]
    away = _store_report(engine, "away")  # it arrives: its written state still has no place
    with engine.connect() as conn:
        assert store.states_of_report(conn, report_id("away")) == [(case_id("away"), elsewhere)]
    with engine.begin() as conn:
        store.save_states(conn, case_id("away"), [elsewhere], NOW)
    assert seqs()[case_id("away")] == away
    with engine.connect() as conn:
        assert store.states_of_report(conn, report_id("away")) == [(case_id("away"), elsewhere)]


def test_a_reports_states_are_searched_by_index(sqlite_engine: Engine) -> None:
    """Read for a report's status and a transfer: never a scan of every item state."""
    _store_report(sqlite_engine, "here")
    for seed in ("here", "away"):
        plans = sqlite_plans(
            sqlite_engine,
            "item_states",
            lambda c, seed=seed: store.states_of_report(c, report_id(seed)),  # type: ignore[misc]
        )
        assert plans, seed
        for plan in plans:
            assert "SCAN item_states" not in plan, plan
            assert "ix_item_states_unplaced_report_id" in plan, plan
        if seed == "here":
            assert "ix_item_states_report_seq" in plans[0], plans[0]


def test_save_states_replaces_held_rows_and_inserts_new_ones(engine: Engine) -> None:
    with engine.begin() as conn:
        store.open_items(
            conn, [(case_id(), make_state(0), True), (case_id(), make_state(1), False)], NOW
        )
    first = make_state(0, stage=Stage.ASSESSED, assessment=assessment(), assessed_at=NOW)
    added = make_state(2, stage=Stage.UNASSESSED)
    later = NOW + timedelta(minutes=1)
    with engine.begin() as conn:
        store.save_states(conn, case_id(), [first, added], later)
        store.save_states(conn, case_id(), [], later)  # nothing to do
    with engine.connect() as conn:
        assert store.states(conn, [case_id()])[case_id()] == [first, make_state(1), added]
        rows = {
            r.idx: r
            for r in conn.execute(
                select(schema.item_states).where(schema.item_states.c.case_id == case_id())
            )
        }
    assert len(rows) == 3  # replaced, not duplicated
    # the orphan mark is the holder's first decision: a rewrite keeps it, a new item has none
    assert (rows[0].orphaned, rows[1].orphaned, rows[2].orphaned) == (True, False, False)
    assert (rows[0].updated_at, rows[1].updated_at) == (later, NOW)


def test_save_states_touches_only_its_own_case(engine: Engine) -> None:
    # the same report item can be in the state rows of two cases (a node that learned it twice)
    with engine.begin() as conn:
        store.open_items(conn, [(case_id("x"), make_state(0), False)], NOW)
        store.save_states(conn, case_id("y"), [make_state(0, stage=Stage.REMOVED)], NOW)
    with engine.connect() as conn:
        held = store.states(conn, [case_id("x"), case_id("y")])
    assert held[case_id("x")][0].stage is Stage.UNASSESSED
    assert held[case_id("y")][0].stage is Stage.REMOVED


# -- queues -------------------------------------------------------------------------------------


def listed(engine: Engine, queue: Queue, *, holder: str = HOLDER, limit: int = 100) -> list[str]:
    with engine.connect() as conn:
        rows = store.queue(
            conn, queue, holder=holder, now=NOW, since=SINCE, after=None, limit=limit
        )
    return [r.id for r in rows]


@pytest.fixture
def queues(engine: Engine) -> dict[str, str]:
    """One case per situation (held by de-eco unless said), named for what it shows."""
    return {
        "unassessed": put_case(engine, "unassessed", [item(days_ago=2)]),
        "half-assessed": put_case(
            engine, "half", [assessed_as(Classification.BASELINE, days_ago=3), item(1, days_ago=3)]
        ),
        "unactioned-national": put_case(
            engine, "national", [assessed_as(Classification.NATIONAL, days_ago=4)]
        ),
        "assessed-not-illegal": put_case(
            engine, "legal", [assessed_as(Classification.NOT_ILLEGAL, days_ago=5)]
        ),
        "actioned": put_case(
            engine,
            "actioned",
            [item(stage=Stage.ACTIONED, assessment=assessment(), actions=1, days_ago=6)],
        ),
        "overdue": put_case(engine, "overdue", [assessed_as(Classification.BASELINE, days_ago=45)]),
        "old-but-closed": put_case(
            engine, "oldclosed", [closed_item(days_ago=90, closed_days_ago=40)]
        ),
        "orphaned": put_case(engine, "orphan", [item(days_ago=7)], orphaned=True),
        "orphaned-closed": put_case(
            engine, "orphanclosed", [closed_item(days_ago=8, closed_days_ago=1)], orphaned=True
        ),
        "recently-closed": put_case(
            engine,
            "recent",
            [
                closed_item(days_ago=9, closed_days_ago=2),
                closed_item(1, days_ago=9, closed_days_ago=50),
            ],
        ),
        "partly-closed": put_case(
            engine, "partly", [closed_item(days_ago=10, closed_days_ago=1), item(1, days_ago=10)]
        ),
        "disputed": put_case(
            engine,
            "disputed",
            [assessed_as(Classification.NATIONAL, disputed=True, days_ago=11)],
        ),
        "disputed-closed": put_case(
            engine, "disputedclosed", [closed_item(days_ago=12, closed_days_ago=3, disputed=True)]
        ),
        "elsewhere": put_case(
            engine, "elsewhere", [item(days_ago=13)], holder="nl-eokm", header=False
        ),
    }


# Queue → the cases it lists, oldest takedown clock first (the fixture's clocks: days ago).
EXPECTED = {
    Queue.UNASSESSED: ["partly-closed", "orphaned", "half-assessed", "unassessed"],
    Queue.UNACTIONED: ["overdue", "disputed", "unactioned-national", "half-assessed"],
    Queue.OVERDUE: ["overdue"],
    Queue.ORPHANED: ["orphaned"],
    Queue.RECENTLY_CLOSED: ["disputed-closed", "recently-closed", "orphaned-closed"],
    Queue.DISPUTED: ["disputed-closed", "disputed"],
    # The takedown queues list watched cases (tests/exchange/store/test_takedown_store.py);
    # none of these is watched.
    Queue.NO_CONTACT: [],
    Queue.CONFIRM_REMOVAL: [],
}


@pytest.mark.parametrize("queue", list(Queue))
def test_each_queue_lists_its_cases_oldest_clock_first(
    engine: Engine, queues: dict[str, str], queue: Queue
) -> None:
    got = listed(engine, queue)
    assert got == [queues[n] for n in EXPECTED[queue]]
    # a case held by another member is never in this node's queues
    assert queues["elsewhere"] not in got


def test_recently_closed_lists_only_cases_with_no_open_item(
    engine: Engine, queues: dict[str, str]
) -> None:
    got = listed(engine, Queue.RECENTLY_CLOSED)
    assert queues["partly-closed"] not in got  # an item closed yesterday, another still open
    assert queues["old-but-closed"] not in got  # closed 40 days ago: not recent
    assert queues["recently-closed"] in got  # one item closed recently is enough


def test_summaries_count_items_and_carry_the_case_header(
    engine: Engine, queues: dict[str, str]
) -> None:
    with engine.connect() as conn:
        rows = store.queue(
            conn, Queue.UNASSESSED, holder=HOLDER, now=NOW, since=SINCE, after=None, limit=10
        )
    half = next(r for r in rows if r.id == queues["half-assessed"])
    assert (half.items, half.open_items, half.disputed, half.holder) == (2, 2, False, HOLDER)
    assert half.hosting_country == "DE"
    assert half.opened_at == clock(3)
    partly = next(r for r in rows if r.id == queues["partly-closed"])
    assert (partly.items, partly.open_items) == (2, 1)
    micros, _, cid = partly.cursor.partition("/")
    assert cid == partly.id
    assert from_micros(int(micros)) == clock(10)


def test_a_case_without_a_header_row_is_listed_without_one(engine: Engine) -> None:
    cid = put_case(engine, "headless", [item(days_ago=1)], header=False)
    with engine.connect() as conn:
        (row,) = store.queue(
            conn, Queue.UNASSESSED, holder=HOLDER, now=NOW, since=SINCE, after=None, limit=10
        )
    assert (row.id, row.hosting_country, row.opened_at) == (cid, None, None)


def test_keyset_pages_cover_the_queue_without_gaps_or_repeats(engine: Engine) -> None:
    # nine cases, three of them sharing one clock: the case id breaks the tie
    ids = [
        put_case(engine, f"page-{i}", [item(days_ago=[5, 5, 5, 4, 3, 2, 9, 1, 6][i])])
        for i in range(9)
    ]
    everything = listed(engine, Queue.UNASSESSED)
    assert sorted(everything) == sorted(ids)
    pages: list[list[str]] = []
    after: tuple[datetime, str] | None = None
    with engine.connect() as conn:
        while True:
            rows = store.queue(
                conn, Queue.UNASSESSED, holder=HOLDER, now=NOW, since=SINCE, after=after, limit=2
            )
            if not rows:
                break
            pages.append([r.id for r in rows])
            micros, _, last = rows[-1].cursor.partition("/")
            after = (from_micros(int(micros)), last)
    assert [i for page in pages for i in page] == everything
    assert [len(p) for p in pages] == [2, 2, 2, 2, 1]


def test_queue_counts_agree_with_the_queues(engine: Engine, queues: dict[str, str]) -> None:
    with engine.connect() as conn:
        counts = store.queue_counts(conn, HOLDER, NOW, SINCE)
        elsewhere = store.queue_counts(conn, "nl-eokm", NOW, SINCE)
    assert set(counts) == set(Queue)
    # every queue, "recently closed" included: a case with an item still open is not counted
    assert counts == {q: len(EXPECTED[q]) for q in Queue}
    assert elsewhere == {q: (1 if q is Queue.UNASSESSED else 0) for q in Queue}
