"""exchange/stats/fold.py: the rollups equal a direct recomputation, whatever happened.

Random sequences of what a node records — items opened (held here or elsewhere, orphaned or
not, known content or new), their states rewritten (assessed, reported to law enforcement,
removed, moved, disputed, handed to another holder), routing-log entries (intake, sent,
received, receipted), the clock jumping (back too, within the look-back) — interleaved with
folds of any page size and folds whose transaction never commits: after a last fold the rollup
holds exactly what a plain recount of the tables gives. Folding again adds nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from exchange.domain import AgeGroup, Classification, LogKind
from exchange.lifecycle.model import Assessment, Gender, ReasonCode, Stage
from exchange.stats.figures import NodeFigures
from exchange.stats.fold import Folder
from exchange.stats.model import Figure
from exchange.store import stats as store
from exchange.store.writer import Tx, Writer
from tests.exchange.factories import T0, FakeClock
from tests.exchange.stats.held import ME, Held, recompute

LOOKBACK = timedelta(seconds=10)


class Crash(Exception):
    """Raised inside a fold's transaction: nothing it did may count."""


def _figures(engine: Engine, writer: Writer, clock: FakeClock, page: int) -> NodeFigures:
    folder = Folder(member=ME, lookback=LOOKBACK, page=page)
    return NodeFigures(engine=engine, member=ME, clock=clock, writer=writer, folder=folder)


def _crashed_fold(writer: Writer, page: int) -> None:
    folder = Folder(member=ME, lookback=LOOKBACK, page=page)

    def job(tx: Tx) -> None:
        folder.fold_page(tx.conn)
        raise Crash

    with contextlib.suppress(Crash):
        writer.execute(job)


_STAGES = [s for s in Stage]
_CLASSES = [c for c in Classification]
_OPEN = st.tuples(
    st.just("open"),
    st.integers(1, 3),
    st.sampled_from(["US", "JP", "NL", None]),
    st.booleans(),  # known content
    st.booleans(),  # orphaned
    st.sampled_from([ME, ME, ME, "de-eco"]),
    st.sampled_from(["website", "forum"]),
    st.booleans(),
)
_CHANGE = st.tuples(
    st.just("change"),
    st.integers(0, 10_000),  # which item
    st.sampled_from(_STAGES),
    st.sampled_from([None, *_CLASSES]),
    st.sampled_from(list(AgeGroup)),
    st.sampled_from(list(Gender)),
    st.booleans(),  # disputed
    st.sampled_from([None, 60, 3_600, 90_000, 3_000_000]),  # seconds after the clock: LEA
    st.sampled_from([None, 120, 86_000, 300_000, 5_000_000]),  # ... closed
    st.sampled_from([ME, ME, "de-eco"]),  # holder (an item can change hands)
)
_LOG = st.tuples(
    st.just("log"),
    st.sampled_from([LogKind.INTAKE, LogKind.SENT, LogKind.NEW_CASE, LogKind.RECEIPTED]),
    st.sampled_from(["de-eco", "nl-eokm"]),
    st.sampled_from(["US", "JP", None]),
    st.sampled_from(["intake", "nl-eokm"]),
)
# A batch's one sent or receipted entry (0019), listing up to three of the reports held.
_BATCH = st.tuples(
    st.just("batch"),
    st.sampled_from([LogKind.SENT, LogKind.RECEIPTED]),
    st.sampled_from(["de-eco", "nl-eokm"]),
    st.integers(1, 3),
)
_TICK = st.tuples(st.just("tick"), st.integers(-5, 200_000))
_FOLD = st.tuples(st.just("fold"), st.integers(1, 7))
_CRASH = st.tuples(st.just("crash"), st.integers(1, 7))
OPS = st.lists(st.one_of(_OPEN, _CHANGE, _LOG, _BATCH, _TICK, _FOLD, _CRASH), max_size=40)


def _apply(op: tuple, held: Held, clock: FakeClock, engine: Engine, writer: Writer) -> None:  # type: ignore[type-arg]
    now = clock()
    kind = op[0]
    if kind == "open":
        _, n, country, known, orphaned, holder, site, commercial = op
        held.open(
            now=now, items=n, country=country, known=known, orphaned=orphaned,
            holder=holder, site_type=site, commercial=commercial,
        )  # fmt: skip
    elif kind == "change" and held.items:
        _change(op, held, now)
    elif kind == "log":
        _, log_kind, member, country, via = op
        rid = next(iter(held.items))[1] if held.items else None
        held.log(
            log_kind, now=now, report_id=rid, member=member, country=country,
            detail={"via": via},
        )  # fmt: skip
    elif kind == "batch":
        _, log_kind, member, n = op
        ids = list(dict.fromkeys(rid for _, rid, _ in sorted(held.items)))[:n] or ["r-" + "0" * 32]
        log = held.log_sent if log_kind == LogKind.SENT else held.log_receipted
        log(now=now, member=member, sequence=len(ids), ids=ids)
    elif kind == "tick":
        _tick(clock, op[1])
    elif kind == "fold":
        _figures(engine, writer, clock, op[1]).fold()
    elif kind == "crash":
        _crashed_fold(writer, op[1])


_high: list[datetime] = [T0]


def _tick(clock: FakeClock, seconds: int) -> None:
    """Forward, or back by less than the look-back below the latest time yet (a clock that
    steps back further would hide its writes from the folder until it caught up)."""
    floor = _high[0] - LOOKBACK / 2
    clock.set(max(clock() + timedelta(seconds=seconds), floor))
    _high[0] = max(_high[0], clock())


def _change(op: tuple, held: Held, now) -> None:  # type: ignore[type-arg,no-untyped-def]
    _, pick, stage, classification, age, gender, disputed, lea, closed, holder = op
    keys = sorted(held.items)
    key = keys[pick % len(keys)]
    s = held.items[key]
    start = s.clock_started or T0
    new = replace(
        s,
        holder=holder,
        stage=stage,
        assessment=Assessment(classification, age, gender) if classification else None,
        disputed=disputed,
        lea_at=start + timedelta(seconds=lea) if lea is not None else None,
        closed_at=start + timedelta(seconds=closed) if closed is not None else None,
        close_reason=ReasonCode.CONTENT_NOT_FOUND if stage is Stage.UNAVAILABLE else None,
        moved_to_country="RO" if stage is Stage.MOVED else "",
    )
    held.change(key, new, now=now)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_rollups_equal_a_direct_recount_after_any_sequence(
    ops: list[tuple],
    engine: Engine,
    writer: Writer,  # type: ignore[type-arg]
) -> None:
    # One database for every example: each adds to what the earlier ones left, and the
    # invariant holds after any history.
    # The clock goes on from where the last example left it, like a node's.
    clock = FakeClock(_high[0])
    held = Held(engine, writer)
    held._n = _count_reports(engine)
    for op in ops:
        _apply(op, held, clock, engine, writer)
        clock.advance(0.001)
        _high[0] = max(_high[0], clock())
    _figures(engine, writer, clock, 5).fold()

    with engine.connect() as conn:
        assert store.all_counts(conn) == recompute(engine)


def _count_reports(engine: Engine) -> int:
    from sqlalchemy import func, select

    from exchange.store import schema

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.reports)).scalar_one())


def test_folding_twice_adds_nothing(engine: Engine, writer: Writer) -> None:
    clock = FakeClock(T0)
    held = Held(engine, writer)
    for i in range(12):
        held.open(now=clock(), items=2, country="US" if i % 3 else "JP", orphaned=i % 3 == 0)
        clock.advance(1)
    figures = _figures(engine, writer, clock, 5)
    assert figures.fold() == 24
    with engine.connect() as conn:
        once = store.all_counts(conn)

    figures.fold()
    figures.fold()

    with engine.connect() as conn:
        assert store.all_counts(conn) == once == recompute(engine)


def test_a_fold_that_never_commits_counts_nothing(engine: Engine, writer: Writer) -> None:
    clock = FakeClock(T0)
    held = Held(engine, writer)
    held.open(now=clock(), items=3)
    held.log(LogKind.INTAKE, now=clock(), country="US")

    _crashed_fold(writer, 100)

    with engine.connect() as conn:
        assert store.all_counts(conn) == {}
        assert store.mark(conn, "log") is None
    _figures(engine, writer, clock, 100).fold()
    with engine.connect() as conn:
        assert store.all_counts(conn) == recompute(engine)
        assert store.all_counts(conn)  # not vacuous: the items and the intake counted


def test_an_item_changed_after_it_was_counted_moves_its_counts(
    engine: Engine, writer: Writer
) -> None:
    clock = FakeClock(T0)
    held = Held(engine, writer)
    cid = held.open(now=clock())
    figures = _figures(engine, writer, clock, 100)
    figures.fold()
    (key,) = [k for k in held.items if k[0] == cid]
    clock.advance(3_600)
    held.change(
        key,
        replace(
            held.items[key],
            stage=Stage.REMOVED,
            assessment=Assessment(Classification.NATIONAL),
            closed_at=clock(),
        ),
        now=clock(),
    )

    figures.fold()

    with engine.connect() as conn:
        counts = store.all_counts(conn)
    assert counts == recompute(engine)
    day = (T0.date() - T0.date().replace(year=1970, month=1, day=1)).days
    assert counts[("assessed", "national", day, -1)] == 1  # type: ignore[index]
    assert counts[("closed", "removed", day, -1)] == 1  # type: ignore[index]


def test_a_rollup_of_another_fold_version_is_folded_again_from_nothing(
    engine: Engine, writer: Writer
) -> None:
    clock = FakeClock(T0)
    held = Held(engine, writer)
    held.open(now=clock(), items=2)
    figures = _figures(engine, writer, clock, 100)
    figures.fold()
    with engine.begin() as conn:
        store.set_mark(conn, "version", 1)
        store.add_counts(conn, {(Figure.ITEMS, "XX", 1, -1): 7})  # what version 1 had counted

    figures.fold()

    with engine.connect() as conn:
        assert store.all_counts(conn) == recompute(engine)
