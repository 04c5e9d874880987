"""The node's own figures for a period: the ``Snapshot`` it signs and hands to the network.

Counts and durations come from the rollups (``store/stats.py``), folded up to date first
(``fold.py``), so the answer is fresh and costs a read of the period's days, not of the
period's reports. The open work (items per queue) is a gauge read from the rollup over every
day. The rest is read straight from its tables at the time of asking: the outbox backlog per
destination, the items of cases the takedown automation flags, and the hoster scorecard
(notices sent, items notified and removed per hoster, each bucketed by the day of the first
notice to that hoster about the case; items still online as a gauge).

Only what this node is the source of is counted (see model.py), so the network's figures are
the plain sum of the members' snapshots.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from common.clock import Clock
from exchange.lifecycle.model import Queue, Stage
from exchange.stats.facts import (
    COUNT,
    OPEN_ALL,
    Contribution,
    day_number,
    day_of,
    duration_bucket,
)
from exchange.stats.fold import Folder, ItemCursor, Page
from exchange.stats.model import (
    EDGES_MS,
    MAX_KEY_LENGTH,
    Figure,
    Histogram,
    Period,
    SeriesKey,
    Snapshot,
)
from exchange.store import stats as store
from exchange.store.engine import immediate
from exchange.store.stats import HosterRows
from exchange.store.writer import Priority, Tx, Writer

QUEUE_DAYS = 30  # the work queues' "overdue" window, as CaseViews shows


class NodeFigures:
    """``snapshot(period)``: this node's figures; ``fold()``: the rollups brought up to date.

    With a ``writer`` (the running node) folding is a writer job, serialized with every other
    write; without one (a command such as ``ihx stats``, beside a running node or not) it is
    its own transaction holding the write lock from its start (``store.engine.immediate``).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        member: str,
        clock: Clock,
        writer: Writer | None = None,
        folder: Folder | None = None,
    ) -> None:
        self._engine = engine
        self._member = member
        self._clock = clock
        self._writer = writer
        self._folder = folder or Folder(member=member)

    def fold(self) -> int:
        """Fold everything that changed; the number of rows read."""
        total = 0
        after: ItemCursor | None = None
        items = True
        while True:
            page = self._fold_page(after, items)
            total += page.rows
            after = page.after
            items = items and after is not None  # the item pass is over: the log goes on
            if not page.more:
                return total

    def _fold_page(self, after: ItemCursor | None, items: bool) -> Page:
        def job(tx: Tx) -> Page:
            return self._folder.fold_page(tx.conn, after, items=items)

        if self._writer is not None:
            return self._writer.execute(job, Priority.BACKGROUND)
        with immediate(self._engine) as conn:
            return self._folder.fold_page(conn, after, items=items)

    def snapshot(self, period: Period) -> Snapshot:
        self.fold()
        now = self._clock()
        first, last = day_number(period.first), day_number(period.last)
        with self._engine.connect() as conn:
            rows = list(store.counts_between(conn, first, last))
            backlog = store.backlog(conn)
            work = store.open_work(conn)
            flagged = store.flagged_open_items(conn, self._member)
            hosters = store.hoster_rows(conn, self._member)
        counts, histograms = _series(period, rows)
        _add_hosters(period, hosters, counts, histograms)
        gauges: dict[SeriesKey, int] = {(Figure.BACKLOG, _key(d)): n for d, n in backlog.items()}
        gauges.update(_open(work, flagged, now))
        gauges.update(_online(hosters))
        return Snapshot(
            members=(self._member,),
            period=period,
            generated_at=now,
            counts={k: tuple(v) for k, v in counts.items()},
            histograms={k: Histogram(tuple(v)) for k, v in histograms.items()},
            gauges=gauges,
        )


def bucket_index(period: Period) -> Callable[[int], int | None]:
    """Day number → the period's bucket it counts in (None outside the period)."""
    first = day_number(period.first)
    starts = [day_number(s) for s in period.starts]
    table: list[int] = []
    b = 0
    for day in range(first, day_number(period.last) + 1):
        while b + 1 < len(starts) and starts[b + 1] <= day:
            b += 1
        table.append(b)

    def of(day: int) -> int | None:
        i = day - first
        return table[i] if 0 <= i < len(table) else None

    return of


_Counts = dict[SeriesKey, list[int]]
_Histograms = dict[SeriesKey, list[int]]


def _series(
    period: Period, rows: Iterable[tuple[Contribution, int]]
) -> tuple[_Counts, _Histograms]:
    """The rollup's counts of the period's days as count rows and histograms."""
    of = bucket_index(period)
    width = len(period.starts)
    counts: _Counts = {}
    histograms: _Histograms = {}
    for (figure, key, day, bucket), n in rows:
        index = of(day)
        if index is None:
            continue
        if bucket == COUNT:
            if figure.is_duration or figure.is_gauge:
                continue  # never written so; a row that says otherwise is not a count
            counts.setdefault((figure, key), [0] * width)[index] += n
        elif figure.is_duration and 0 <= bucket <= len(EDGES_MS):
            histograms.setdefault((figure, key), [0] * (len(EDGES_MS) + 1))[bucket] += n
    return counts, histograms


def hoster_key(asn: int | None, organisation: str) -> str:
    return f"AS{asn if asn is not None else '?'} {organisation}"[:MAX_KEY_LENGTH]


def _add_hosters(
    period: Period, rows: HosterRows, counts: _Counts, histograms: _Histograms
) -> None:
    """The scorecard's counts in the period: notices by the day sent; items notified, items
    removed and the time to removal by the day of the first notice to the hoster."""
    of = bucket_index(period)
    width = len(period.starts)

    def add(figure: Figure, key: str, at: datetime | None, n: int) -> None:
        index = None if at is None else of(day_of(at))
        if index is not None:
            counts.setdefault((figure, key), [0] * width)[index] += n

    for asn, org, sent_at in rows.notices:
        add(Figure.HOSTER_NOTICES, hoster_key(asn, org), sent_at, 1)
    for asn, org, first_at, items in rows.cases:
        add(Figure.HOSTER_ITEMS, hoster_key(asn, org), first_at, items)
    for asn, org, first_at, stage, closed_at in rows.outcomes:
        if stage != str(Stage.REMOVED) or closed_at is None:
            continue
        key = hoster_key(asn, org)
        add(Figure.HOSTER_REMOVED, key, first_at, 1)
        if of(day_of(first_at)) is not None:
            h = histograms.setdefault((Figure.HOSTER_REMOVAL, key), [0] * (len(EDGES_MS) + 1))
            h[duration_bucket(first_at, closed_at)] += 1


OPEN_QUEUES = (Queue.UNASSESSED, Queue.UNACTIONED, Queue.ORPHANED, Queue.DISPUTED)


def _open(
    work: Iterable[tuple[str, int, int]], flagged: dict[str, int], now: datetime
) -> dict[SeriesKey, int]:
    """Items per work queue now. Overdue: open items whose clock started on a day before the
    day ``QUEUE_DAYS`` ago (whole days: the rollup keeps days, not times)."""
    cutoff = day_of(now - timedelta(days=QUEUE_DAYS))
    out: dict[SeriesKey, int] = {(Figure.OPEN, str(q)): 0 for q in OPEN_QUEUES}
    out[(Figure.OPEN, str(Queue.OVERDUE))] = 0
    for queue, day, n in work:
        if queue == OPEN_ALL:
            if day < cutoff:
                out[(Figure.OPEN, str(Queue.OVERDUE))] += n
        elif (Figure.OPEN, queue) in out:
            out[(Figure.OPEN, queue)] += n
    out.update({(Figure.OPEN, q): n for q, n in flagged.items()})
    return out


def _online(rows: HosterRows) -> dict[SeriesKey, int]:
    out: dict[SeriesKey, int] = {}
    for asn, org, _, stage, _ in rows.outcomes:
        if stage != str(Stage.REMOVED):
            key = (Figure.HOSTER_ONLINE, hoster_key(asn, org))
            out[key] = out.get(key, 0) + 1
    return out


def _key(text: str) -> str:
    return text[:MAX_KEY_LENGTH]
