"""What the writer reports of each committed group (``on_group``): the node's writer metrics.

The writer's timer is a manual one the jobs move, and the engine's own ``commit`` event moves it
by a known amount, so every figure of a ``GroupTiming`` is exact: how long the group's oldest
job waited, how long the group held the writer, and how much of that was COMMIT.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, event

from exchange.errors import StorageUnavailable
from exchange.store.writer import Coalescer, GroupTiming, Priority, Tx, Writer
from tests.dbs import create_deferred_probe
from tests.exchange.factories import writer_held

COMMIT_TAKES = 0.5


class ManualTimer:
    """A monotonic timer that moves only when told to (thread-safe: the writer reads it)."""

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def set(self, now: float) -> None:
        with self._lock:
            self._now = now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@pytest.fixture
def timer(engine: Engine) -> Iterator[ManualTimer]:
    """The writer's timer; every COMMIT on ``engine`` takes ``COMMIT_TAKES`` of it."""
    t = ManualTimer()

    def on_commit(_conn: object) -> None:
        t.advance(COMMIT_TAKES)

    event.listen(engine, "commit", on_commit)
    yield t
    event.remove(engine, "commit", on_commit)


@pytest.fixture
def groups() -> list[GroupTiming]:
    return []


@pytest.fixture
def timed_writer(engine: Engine, timer: ManualTimer, groups: list[GroupTiming]) -> Iterator[Writer]:
    w = Writer(engine, on_group=groups.append, timer=timer)
    w.start()
    yield w
    w.stop()


def takes(timer: ManualTimer, seconds: float) -> Callable[[Tx], str]:
    """A job that writes nothing and lasts ``seconds`` of the timer."""

    def job(_tx: Tx) -> str:
        timer.advance(seconds)
        return "done"

    return job


def test_a_group_reports_its_oldest_wait_its_hold_and_its_commit(
    timed_writer: Writer, timer: ManualTimer, groups: list[GroupTiming]
) -> None:
    with writer_held(timed_writer):  # the held job's group begins at 0
        timer.set(1.0)
        first = timed_writer.submit(takes(timer, 1.0))
        timer.set(2.0)
        second = timed_writer.submit(takes(timer, 0.25), Priority.DELIVERY)
        timer.set(5.0)
    assert first.result(10) == second.result(10) == "done"
    # The held group committed at 5.0 (+0.5); the next began at 5.5 with both jobs (the
    # delivery one first), ran 1.25 and committed in 0.5.
    assert groups == [
        GroupTiming(jobs=1, waited=0.0, held=5.5, commit=COMMIT_TAKES),
        GroupTiming(jobs=2, waited=5.5 - 1.0, held=1.25 + COMMIT_TAKES, commit=COMMIT_TAKES),
    ]


def test_a_coalescers_wait_is_its_first_items(
    timed_writer: Writer, timer: ManualTimer, groups: list[GroupTiming]
) -> None:
    coalescer: Coalescer[int, int] = Coalescer(lambda _tx, items: list(items))
    with writer_held(timed_writer):
        timer.set(3.0)
        futures = timed_writer.submit_items(coalescer, [1, 2])
        timer.set(4.0)
        futures += timed_writer.submit_items(coalescer, [3])
        timer.set(10.0)
    assert [f.result(10) for f in futures] == [1, 2, 3]
    assert groups[-1] == GroupTiming(jobs=1, waited=10.5 - 3.0, held=0.5, commit=0.5)


def test_a_coalescers_leftover_waits_from_its_own_oldest_item(
    timed_writer: Writer, timer: ManualTimer, groups: list[GroupTiming]
) -> None:
    coalescer: Coalescer[int, int] = Coalescer(lambda _tx, items: list(items), max_take=2)
    with writer_held(timed_writer):
        timer.set(1.0)
        futures = timed_writer.submit_items(coalescer, [1])
        timer.set(2.0)
        futures += timed_writer.submit_items(coalescer, [2, 3])
        timer.set(3.0)
        futures += timed_writer.submit_items(coalescer, [4])
        timer.set(4.0)
    assert [f.result(10) for f in futures] == [1, 2, 3, 4]
    # [1, 2] began at 4.5 (item 1 waited since 1.0); [3, 4] — queued again while the first
    # group ran — began at 5.0, and item 3 had waited since 2.0, not since it was requeued.
    assert [(g.jobs, g.waited) for g in groups[-2:]] == [(1, 3.5), (1, 3.0)]


def test_a_group_that_failed_to_commit_is_reported_as_failed(
    engine: Engine, timed_writer: Writer, groups: list[GroupTiming]
) -> None:
    with engine.begin() as conn:
        create_deferred_probe(conn)

    def dangling(tx: Tx) -> str:
        tx.conn.exec_driver_sql("INSERT INTO probe (parent) VALUES (42)")
        return "dangling"

    with pytest.raises(StorageUnavailable):
        timed_writer.execute(dangling)
    assert timed_writer.execute(lambda _tx: "after") == "after"
    # The failed COMMIT still took the writer's time (the commit event fired before it failed).
    assert [(g.jobs, g.committed, g.commit) for g in groups] == [
        (1, False, COMMIT_TAKES),
        (1, True, COMMIT_TAKES),
    ]


def test_a_failing_report_does_not_stop_the_writer(engine: Engine, timer: ManualTimer) -> None:
    calls: list[GroupTiming] = []

    def broken(timing: GroupTiming) -> None:
        calls.append(timing)
        raise RuntimeError("metrics broke")

    w = Writer(engine, on_group=broken, timer=timer)
    w.start()
    try:
        assert w.execute(lambda _tx: 1) == 1
        assert w.execute(lambda _tx: 2) == 2
    finally:
        w.stop()
    assert len(calls) == 2
