"""Item figures on rows the lifecycle store wrote: moves, withdrawals, other holders' copies.

The states are written through ``store/lifecycle`` as every node writes them (see held.py):
an item moved to another country counts as closed (moved) and under the country it moved to,
and no longer as an item held here (the new holder counts it: model.py);
a copy of an item another member holds (kept here as its origin) never counts here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Engine

from exchange.lifecycle.model import Stage
from exchange.stats.figures import NodeFigures
from exchange.stats.model import Figure, Granularity, Period
from exchange.store.writer import Writer
from tests.exchange.factories import T0, FakeClock
from tests.exchange.lifecycle.factories import assessment
from tests.exchange.stats.held import ME, Held

WEEK = Period(T0.date(), T0.date() + timedelta(days=6), Granularity.WEEK)


def _figures(engine: Engine, writer: Writer, clock: FakeClock) -> NodeFigures:
    return NodeFigures(engine=engine, member=ME, clock=clock, writer=writer)


def test_a_moved_item_counts_as_closed_and_by_the_country_it_moved_to(
    engine: Engine, writer: Writer
) -> None:
    clock = FakeClock(T0)
    held = Held(engine, writer)
    cid = held.open(now=clock(), items=2, country="US")
    key = next(k for k in held.items if k[0] == cid)
    clock.advance(3_600)
    moved = replace(
        held.items[key], stage=Stage.MOVED, closed_at=clock(), moved_to_country="RO",
        assessment=assessment(),
    )  # fmt: skip
    held.change(key, moved, now=clock())

    snap = _figures(engine, writer, clock).snapshot(WEEK)

    assert snap.by_key(Figure.MOVED) == {"RO": 1}
    assert snap.by_key(Figure.CLOSED) == {"moved": 1}
    # The new holder counts the moved item (and its assessment) from its take-over on.
    assert snap.by_key(Figure.ITEMS) == {"US": 1}
    assert snap.total(Figure.ASSESSED) == 0
    assert snap.histogram(Figure.TO_REMOVAL).total == 0  # moved is not removed


def test_copies_of_items_another_member_holds_never_count_here(
    engine: Engine, writer: Writer
) -> None:
    clock = FakeClock(T0)
    held = Held(engine, writer)
    held.open(now=clock(), items=3, country="DE", holder="de-eco")
    held.open(now=clock(), items=1, country="US")

    snap = _figures(engine, writer, clock).snapshot(WEEK)

    assert snap.by_key(Figure.ITEMS) == {"US": 1}


def test_an_item_that_passes_to_another_holder_is_taken_back_out(
    engine: Engine, writer: Writer
) -> None:
    clock = FakeClock(T0)
    held = Held(engine, writer)
    cid = held.open(now=clock(), items=1, country="US")
    figures = _figures(engine, writer, clock)
    assert figures.snapshot(WEEK).by_key(Figure.ITEMS) == {"US": 1}
    key = next(k for k in held.items if k[0] == cid)
    clock.advance(60)
    held.change(key, replace(held.items[key], holder="de-eco"), now=clock())

    snap = figures.snapshot(WEEK)

    assert snap.total(Figure.ITEMS) == 0


def test_items_without_a_clock_are_not_counted(engine: Engine, writer: Writer) -> None:
    clock = FakeClock(T0)
    held = Held(engine, writer)
    cid = held.open(now=clock(), items=1)
    key = next(k for k in held.items if k[0] == cid)
    s = held.items[key]
    held.change(
        key, replace(s, clock_started=None, ref=replace(s.ref, clock_started=None)), now=clock()
    )

    assert _figures(engine, writer, clock).snapshot(WEEK).total(Figure.ITEMS) == 0
