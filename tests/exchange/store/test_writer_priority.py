"""The single writer's priorities: the delivery path first, background work (statistics folder
pages, checkpoints, retention) in a group of its own — late under load, never starved.

Against a real migrated database; the writer is held inside a job (``writer_held``) so what is
submitted meanwhile is queued, and each job records which group (transaction) it ran in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from sqlalchemy import Engine

from exchange.store.writer import BACKGROUND_PATIENCE, Coalescer, Priority, Tx, Writer
from tests.exchange.factories import writer_held
from tests.integration.support import wait_until

Ran = list[tuple[str, int]]


def record(writer: Writer, name: str, ran: Ran) -> Callable[[Tx], str]:
    """A job that notes its name and its group (the writer's commits so far)."""

    def job(_tx: Tx) -> str:
        ran.append((name, writer.commits))
        return name

    return job


def test_delivery_jobs_run_first_and_background_work_in_a_group_of_its_own(
    writer: Writer,
) -> None:
    ran: Ran = []
    with writer_held(writer):
        fold = writer.submit(record(writer, "fold page", ran), Priority.BACKGROUND)
        intake = writer.submit(record(writer, "intake", ran))
        seal = writer.submit(record(writer, "seal", ran), Priority.DELIVERY)
        receipt = writer.submit(record(writer, "receipt", ran), Priority.DELIVERY)
    for f in (fold, intake, seal, receipt):
        f.result(10)
    assert [name for name, _ in ran] == ["seal", "receipt", "intake", "fold page"]
    groups = {name: group for name, group in ran}
    assert groups["seal"] == groups["receipt"] == groups["intake"]
    assert groups["fold page"] != groups["seal"]


def test_a_coalescer_is_queued_at_its_own_priority(writer: Writer) -> None:
    ran: Ran = []

    def handler(_tx: Tx, items: list[str]) -> list[str]:
        ran.extend((i, writer.commits) for i in items)
        return items

    urgent: Coalescer[str, str] = Coalescer(handler, priority=Priority.DELIVERY)
    with writer_held(writer):
        normal = writer.submit(record(writer, "intake", ran))
        items = writer.submit_items(urgent, ["receipt 1", "receipt 2"])
    normal.result(10)
    assert [f.result(10) for f in items] == ["receipt 1", "receipt 2"]
    assert [name for name, _ in ran] == ["receipt 1", "receipt 2", "intake"]


def test_background_work_under_unending_load_is_late_but_never_starved(writer: Writer) -> None:
    """Each intake job queues the next before its group commits, so the queue never empties:
    the fold page is passed over ``BACKGROUND_PATIENCE`` groups, then joins the next one."""
    ran: Ran = []
    chain = BACKGROUND_PATIENCE + 5

    def intake(n: int) -> Callable[[Tx], None]:
        def job(_tx: Tx) -> None:
            ran.append((f"intake {n}", writer.commits))
            if n + 1 < chain:
                writer.submit(intake(n + 1))

        return job

    with writer_held(writer):
        writer.submit(intake(0))
        fold = writer.submit(record(writer, "fold page", ran), Priority.BACKGROUND)
    assert fold.result(10) == "fold page"
    groups = [group for _, group in ran]
    fold_group = groups[[name for name, _ in ran].index("fold page")]
    intake_groups_before = len(set(groups[: groups.index(fold_group)]))
    assert intake_groups_before == BACKGROUND_PATIENCE  # passed over that many, no more
    assert groups.count(fold_group) == 2  # it joined a group holding an intake job


def test_a_large_intake_is_taken_in_parts_and_a_seal_runs_between_them(writer: Writer) -> None:
    """1,200 reports queued in one coalescer go as 500, 500 and 200: a seal that arrives while
    the first part is written runs right after it, not after all 1,200 (a bulk intake held the
    writer, and the pipe's other end with it, for half a second)."""
    ran: Ran = []
    parts: list[int] = []
    seal: list[Future[str]] = []

    def handler(_tx: Tx, items: list[int]) -> list[int]:
        parts.append(len(items))
        ran.append((f"intake {items[0]}-{items[-1]}", writer.commits))
        if not seal:
            seal.append(writer.submit(record(writer, "seal", ran), Priority.DELIVERY))
        return items

    intake: Coalescer[int, int] = Coalescer(handler)
    assert intake.max_take == 500
    with writer_held(writer):
        reports = writer.submit_items(intake, list(range(1200)))
    assert [f.result(10) for f in reports] == list(range(1200))  # all of them, in order
    seal[0].result(10)
    assert parts == [500, 500, 200]
    names = [name for name, _ in ran]
    assert names == ["intake 0-499", "seal", "intake 500-999", "intake 1000-1199"]
    assert len({group for name, group in ran if name != "seal"}) == 3  # three transactions


def test_items_added_while_a_part_is_written_follow_in_order(writer: Writer) -> None:
    seen: list[int] = []
    intake: Coalescer[int, int] = Coalescer(lambda _tx, items: seen.extend(items) or items)
    intake.max_take = 2
    with writer_held(writer):
        first = writer.submit_items(intake, [1, 2, 3])
    late = writer.submit_items(intake, [4, 5])
    assert [f.result(10) for f in first + late] == [1, 2, 3, 4, 5]
    assert seen == [1, 2, 3, 4, 5]


def test_a_stop_after_a_large_intake_answers_every_part_first(engine: Engine) -> None:
    """A stop queued while a coalescer's first part is written comes after its remainder: every
    caller is answered (before, a stop gathered into the same group left the rest unanswered)."""
    writer = Writer(engine)
    writer.start()
    intake: Coalescer[int, int] = Coalescer(lambda _tx, items: items)
    intake.max_take = 2
    with writer_held(writer):
        futures = writer.submit_items(intake, [1, 2, 3, 4, 5])
        stopping = threading.Thread(target=writer.stop)
        stopping.start()
        wait_until(lambda: writer._queue.qsize() >= 2, 5)  # the coalescer, then the stop
    stopping.join(10)
    assert not stopping.is_alive()
    assert [f.result(0) for f in futures] == [1, 2, 3, 4, 5]
