"""The statistics aggregate: every statement on the rollups, and the reads that feed them.

The folder (exchange/stats/fold.py) reads what changed — item states by ``updated_at`` (each
with its facts as last counted, from ``stats_items``), the routing log by index — and writes
count deltas into ``stats_counts`` (an upsert that adds), the items' new facts and the
watermarks, all in one transaction. A snapshot reads ``stats_counts`` for a range of days and
the open work over every day, plus the outbox backlog, the items the takedown automation flags
and the hoster scorecard's rows straight from their tables.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    and_,
    case,
    delete,
    func,
    or_,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite

from exchange.batch_entries import BATCH_KINDS, count_of, reports_in
from exchange.domain import Classification, LogKind, ReportRole
from exchange.lifecycle.model import CLOSED_STAGES, Queue, Stage
from exchange.stats.facts import (
    COUNTED_KINDS,
    DAY_US,
    EACH_KINDS,
    Contribution,
    ItemRow,
    LogRow,
)
from exchange.stats.model import Figure
from exchange.store import schema
from exchange.store.sql import chunks, upsert
from exchange.takedown.notice_model import NoticeStatus

COUNTS = schema.stats_counts
ITEMS = schema.stats_items
MARKS = schema.stats_marks
STATES = schema.item_states
REPORTS = schema.reports
CASES = schema.cases
REPORT_ITEMS = schema.items
LOG = schema.routing_log
OUTBOX = schema.outbox
NOTICES = schema.takedown_notices
NOTICE_CASES = schema.takedown_notice_cases
WATCHES = schema.takedown_watches
_CLOSED = sorted(str(st) for st in CLOSED_STAGES)
_ILLEGAL = [str(Classification.BASELINE), str(Classification.NATIONAL)]

ItemKey = tuple[str, str, int]  # case, report, index


# -- reads that feed the folder -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangedItem:
    key: ItemKey
    updated_at: datetime
    row: ItemRow | None  # None: no longer held here (its counts are taken back)
    counted: str | None  # the facts as last counted, encoded


def changed_items(
    conn: Connection,
    member: str,
    *,
    since: datetime | None,
    after: tuple[datetime, str, str, int] | None,
    limit: int,
) -> list[ChangedItem]:
    """Item states updated at or after ``since`` (every one when None) that are held by
    ``member`` or were counted before, keyset-paged by (updated_at, case, report, index)."""
    s = STATES.c
    columns = (
        s.case_id, s.report_id, s.idx, s.updated_at, s.holder, s.clock_started,
        # The case's country: a moved case's is the new one, its report's the old.
        func.coalesce(CASES.c.hosting_country, REPORTS.c.hosting_country),
        s.orphaned, REPORT_ITEMS.c.known_member,
        REPORTS.c.site_type, REPORTS.c.commercial, s.classification, s.age_group, s.gender,
        s.stage, s.moved_to_country, s.disputed, s.lea_at, s.closed_at, ITEMS.c.facts,
    )  # fmt: skip
    stmt = (
        select(*columns)
        .select_from(
            STATES.outerjoin(REPORTS, REPORTS.c.id == s.report_id)
            .outerjoin(CASES, CASES.c.id == s.case_id)
            .outerjoin(
                REPORT_ITEMS,
                and_(REPORT_ITEMS.c.report_seq == REPORTS.c.seq, REPORT_ITEMS.c.idx == s.idx),
            )
            .outerjoin(
                ITEMS,
                and_(
                    ITEMS.c.case_id == s.case_id,
                    ITEMS.c.report_id == s.report_id,
                    ITEMS.c.idx == s.idx,
                ),
            )
        )
        .where(or_(s.holder == member, ITEMS.c.facts.is_not(None)))
        .order_by(s.updated_at, s.case_id, s.report_id, s.idx)
        .limit(limit)
    )
    if since is not None:
        stmt = stmt.where(s.updated_at >= since)
    if after is not None:
        at, case_id, report_id, idx = after
        # Spelled out rather than a row-value comparison, so the time binds as the column's
        # micros (see store/lifecycle.queue).
        # The plain lower bound first: with only the OR, SQLite read and sorted every row
        # after the cursor for each page (a quadratic first fold); with it, an index range.
        stmt = stmt.where(s.updated_at >= at).where(
            or_(
                s.updated_at > at,
                and_(
                    s.updated_at == at,
                    tuple_(s.case_id, s.report_id, s.idx) > tuple_(case_id, report_id, idx),
                ),
            )
        )
    return [_changed(r, member) for r in conn.execute(stmt)]


def _changed(r: Any, member: str) -> ChangedItem:
    (
        case_id, report_id, idx, updated_at, holder, clock_started, country, orphaned, known,
        site_type, commercial, classification, age_group, gender, stage, moved_to, disputed,
        lea_at, closed_at, facts,
    ) = r  # fmt: skip
    row = None
    if holder == member:
        row = ItemRow(
            clock_started, country, bool(orphaned), known, site_type or "", bool(commercial),
            classification, age_group, gender, stage, moved_to, bool(disputed), lea_at,
            closed_at,
        )  # fmt: skip
    return ChangedItem((case_id, report_id, idx), updated_at, row, facts)


@dataclass(frozen=True, slots=True)
class LogPage:
    """The counted routing-log entries with an index in (``after``, ``last``]."""

    last: int | None  # the highest index read; None: the log holds nothing after ``after``
    more: bool  # entries past ``last`` are waiting
    # COUNTED_KINDS: kind, key, day, reports (a key may come twice: add them up)
    counts: list[tuple[str, str | None, int, int]]
    each: list[LogRow]  # EACH_KINDS: entries of one report in index order, then a batch's


def log_page(conn: Connection, after: int, size: int) -> LogPage:
    """The next ``size`` indexes of the log after ``after``, a range of the primary key.

    Entries of ``COUNTED_KINDS`` (at a report's origin, two of its three) are counted by the
    database per kind, key and day: one aggregate over the range instead of a row, a join and
    a datetime each in Python. The rest come as rows, each with its report's intake time if it
    came in through this node's intake. An entry for a batch of reports (batch_entries.py)
    counts as the reports it lists: a ``sent`` one by its count, a ``receipted`` one as a row
    per report it lists. Entries commit in index order (the writer appends under the log's
    lock), so every one up to the top read here is there to be read.
    """
    top = conn.execute(select(func.max(LOG.c.idx))).scalar()
    if top is None or top <= after:
        return LogPage(None, False, [], [])
    last = min(after + size, top)
    e, r = LOG.c, REPORTS.c
    span = and_(e.idx > after, e.idx <= last)
    key = case(*((e.kind == k, e[col]) for k, (_, col) in COUNTED_KINDS.items()))
    # As stored: micros. Integer division truncates in SQL where Python floors: the same for
    # every time since 1970, and a node's log holds no earlier one.
    day = (type_coerce(e.at, BigInteger) // DAY_US).label("day")
    # Told apart by the hashed entry, not by the store's batch_sequence: a batch's names no
    # report (batch_entries.py).
    batch = and_(e.report_id.is_(None), e.kind.in_(BATCH_KINDS))
    per_report = ~batch
    counts = conn.execute(
        select(e.kind, key, day, func.count())
        .where(span, per_report, e.kind.in_(list(COUNTED_KINDS)))
        .group_by(e.kind, key, day)
    )
    origin = and_(r.id == e.report_id, r.role == str(ReportRole.ORIGIN))
    # Times as stored (micros): a LogRow takes them so, without a datetime per entry.
    at, intake = type_coerce(e.at, BigInteger), type_coerce(r.received_at, BigInteger)
    each = conn.execute(
        select(at, e.kind, e.member, e.country, e.detail, intake)
        .select_from(LOG.outerjoin(REPORTS, origin))
        .where(span, per_report, e.kind.in_(EACH_KINDS))
        .order_by(e.idx)
    )
    tally = [(k, key_, int(d), int(n)) for k, key_, d, n in counts]
    rows = [LogRow(*x) for x in each]
    batches = conn.execute(
        select(at.label("at"), e.kind, e.member, e.detail).where(span, batch)
    ).all()
    for at_us, kind, member, detail in batches:
        if kind == str(LogKind.SENT):
            tally.append((kind, member, at_us // DAY_US, count_of(detail)))
    rows += _receipted_reports(conn, [b for b in batches if b.kind == str(LogKind.RECEIPTED)])
    return LogPage(last, top > last, tally, rows)


def _receipted_reports(conn: Connection, entries: Sequence[Any]) -> list[LogRow]:
    """A row per report each ``receipted`` batch entry lists, with its intake time here."""
    listed = [(x, report_id) for x in entries for report_id in reports_in(x.detail)]
    r = REPORTS.c
    intake: dict[str, int] = {}
    for part in chunks(sorted({report_id for _, report_id in listed})):
        found = conn.execute(
            select(r.id, type_coerce(r.received_at, BigInteger)).where(
                r.id.in_(part), r.role == str(ReportRole.ORIGIN)
            )
        )
        intake.update({report_id: int(t) for report_id, t in found})
    return [LogRow(x.at, x.kind, x.member, None, "{}", intake.get(rid)) for x, rid in listed]


# -- writes of the folder -------------------------------------------------------------------


def add_counts(conn: Connection, delta: Mapping[Contribution, int]) -> None:
    """Add each delta to its count (a new count starts at the delta)."""
    rows = [
        {"day": d, "figure": str(f), "series_key": k, "bucket": b, "n": n}
        for (f, k, d, b), n in sorted(delta.items(), key=lambda kv: _sortable(kv[0]))
        if n
    ]
    if rows:
        conn.execute(_adding(conn.dialect.name), rows)


def _sortable(c: Contribution) -> tuple[int, str, str, int]:
    # One order for every writer: two replicas' upserts never lock rows in opposite orders.
    f, k, d, b = c
    return (d, str(f), k, b)


@functools.cache
def _adding(dialect_name: str) -> Any:
    dialect = sqlite if dialect_name == "sqlite" else postgresql
    stmt = dialect.insert(COUNTS)
    return stmt.on_conflict_do_update(
        index_elements=["day", "figure", "series_key", "bucket"],
        set_={"n": COUNTS.c.n + stmt.excluded.n},
    )


def save_facts(conn: Connection, rows: Sequence[tuple[ItemKey, str | None]]) -> None:
    """Each item's facts as now counted; None: it counts no more (its row goes)."""
    keep = [{"case_id": c, "report_id": r, "idx": i, "facts": f} for (c, r, i), f in rows if f]
    upsert(conn, ITEMS, keep, key=("case_id", "report_id", "idx"))
    gone = [k for k, f in rows if not f]
    for part in chunks(gone, 500):
        conn.execute(
            delete(ITEMS).where(
                tuple_(ITEMS.c.case_id, ITEMS.c.report_id, ITEMS.c.idx).in_(list(part))
            )
        )


def mark(conn: Connection, source: str) -> int | None:
    return conn.execute(select(MARKS.c.value).where(MARKS.c.source == source)).scalar_one_or_none()


def set_mark(conn: Connection, source: str, value: int) -> None:
    upsert(conn, MARKS, [{"source": source, "value": value}], key=("source",))


# -- reads of a snapshot --------------------------------------------------------------------


def counts_between(
    conn: Connection, first_day: int, last_day: int
) -> Iterator[tuple[Contribution, int]]:
    """(figure, key, day, bucket) and its count, for every non-zero count of the days."""
    c = COUNTS.c
    rows = conn.execute(
        select(c.figure, c.series_key, c.day, c.bucket, c.n).where(
            c.day >= first_day, c.day <= last_day, c.n != 0
        )
    )
    for figure, key, day, bucket, n in rows:
        yield (Figure(figure), key, day, bucket), int(n)


def all_counts(conn: Connection) -> dict[Contribution, int]:
    """Every non-zero count of the rollup (the tests compare it with a recomputation).

    Only the tests read the whole rollup; it stays here because SQL lives in exchange/store/
    only, beside the upsert whose result it reads."""
    c = COUNTS.c
    rows = conn.execute(select(c.figure, c.series_key, c.day, c.bucket, c.n).where(c.n != 0))
    return {(Figure(f), k, d, b): int(n) for f, k, d, b, n in rows}


def backlog(conn: Connection) -> dict[str, int]:
    """Outbox rows (reports, events, transfers) per destination: none is receipted yet."""
    o = OUTBOX.c
    return {
        str(d): int(n)
        for d, n in conn.execute(select(o.destination, func.count()).group_by(o.destination))
    }


@dataclass(frozen=True, slots=True)
class HosterRows:
    """The scorecard's rows: notices sent per hoster and time; items notified per hoster and
    case with the first notice's time; items removed or still online with it."""

    notices: list[tuple[int | None, str, datetime]]
    cases: list[tuple[int | None, str, datetime, int]]
    outcomes: list[tuple[int | None, str, datetime, str, datetime | None]]


def hoster_rows(conn: Connection, holder: str) -> HosterRows:
    """The scorecard's rows (as ``store/notices.scorecard`` counts them): one pass over the
    notices sent with their cases, then the illegal items of those cases by key.

    An item's removal (or its being online) counts for the hoster its case was last noticed
    to, timed from the first notice to that hoster about the case."""
    nc, n = NOTICE_CASES.c, NOTICES.c
    rows = conn.execute(
        select(nc.asn, nc.organisation, n.id, n.sent_at, nc.case_id, nc["items"])
        .select_from(NOTICE_CASES.join(NOTICES, NOTICES.c.id == NOTICE_CASES.c.notice_id))
        .where(n.status == str(NoticeStatus.SENT))
    )
    notices: dict[tuple[int | None, str, str], datetime] = {}
    cases: dict[tuple[int | None, str, str], tuple[datetime, datetime, int]] = {}
    for asn, org, notice_id, sent_at, case_id, items in rows:
        notices[(asn, org, notice_id)] = sent_at
        first, last, most = cases.get((asn, org, case_id), (sent_at, sent_at, 0))
        cases[(asn, org, case_id)] = (
            min(first, sent_at),
            max(last, sent_at),
            max(most, int(items or 0)),
        )
    latest: dict[str, tuple[datetime, datetime, int | None, str]] = {}
    for (asn, org, case_id), (first, last, _) in cases.items():
        mine = (last, first, asn, org)
        held = latest.get(case_id)
        if held is None or (last, first) > (held[0], held[1]):
            latest[case_id] = mine
    outcomes = [
        (asn, org, first, stage, closed_at)
        for case_id, stage, closed_at in _outcomes(conn, holder, sorted(latest))
        for _, first, asn, org in [latest[case_id]]
    ]
    return HosterRows(
        [(a, o, t) for (a, o, _), t in notices.items()],
        [(a, o, t, i) for (a, o, _), (t, _, i) in cases.items()],
        outcomes,
    )


def _outcomes(
    conn: Connection, holder: str, case_ids: Sequence[str]
) -> Iterator[tuple[str, str, datetime | None]]:
    """(case, stage, closed at) of the illegal items held here of these cases that were
    removed or are still online (open, last seen online, still watched)."""
    s, w = STATES.c, WATCHES.c
    online = and_(s.stage.not_in(_CLOSED), w.last_outcome == "online", w.state != "done")
    for part in chunks(case_ids):
        # The holder is checked here, not in SQL: given it, SQLite chose the (holder, stage)
        # index and read every item held for each chunk instead of the cases' keys.
        rows = conn.execute(
            select(s.case_id, s.holder, s.stage, s.closed_at)
            .select_from(STATES.outerjoin(WATCHES, w.case_id == s.case_id))
            .where(
                s.case_id.in_(part),
                s.classification.in_(_ILLEGAL),
                or_(s.stage == str(Stage.REMOVED), online),
            )
        )
        yield from ((r.case_id, r.stage, r.closed_at) for r in rows if r.holder == holder)


# pg_advisory_xact_lock key of the statistics' folder ("ihx_stat"): two folders (replicas, or
# the CLI beside a node) must not both add the same page. On SQLite this does nothing: there
# the folder's transaction must itself begin with BEGIN IMMEDIATE — the writer's connection,
# or store.engine.immediate without a writer (stats.figures.NodeFigures) — which is the lock.
FOLD_LOCK_KEY = 0x6968785F73746174


def lock_folder(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(FOLD_LOCK_KEY)))


def reset(conn: Connection) -> None:
    """Forget every count, fact and watermark: the folder starts again from nothing (when
    what an item contributes has changed, so what was counted cannot be taken back)."""
    for t in (COUNTS, ITEMS, MARKS):
        conn.execute(delete(t))


def open_work(conn: Connection) -> list[tuple[str, int, int]]:
    """(queue, clock day, items) of the open-work counts, over every day."""
    c = COUNTS.c
    rows = conn.execute(
        select(c.series_key, c.day, func.sum(c.n))
        .where(c.figure == str(Figure.OPEN), c.bucket == -1)
        .group_by(c.series_key, c.day)
    )
    return [(str(k), int(d), int(n)) for k, d, n in rows if n]


def flagged_open_items(conn: Connection, holder: str) -> dict[str, int]:
    """Open items of cases the takedown automation flags: no abuse contact, or gone on its
    re-checks (an analyst to confirm the removal) — the watches' two queues."""
    s, w = STATES.c, WATCHES.c
    flagged = {
        str(Queue.NO_CONTACT): w.no_contact.is_(True),
        str(Queue.CONFIRM_REMOVAL): w.state == "suggested",
    }
    out: dict[str, int] = {}
    for queue, condition in flagged.items():
        # From the watches (few are not done; their state is indexed) to the items by case.
        # The holder is checked here, not in SQL (see ``_outcomes``).
        cases = select(w.case_id).where(w.state.in_(("watching", "suggested")), condition)
        holders = conn.execute(
            select(s.holder).where(s.case_id.in_(cases), s.stage.not_in(_CLOSED))
        ).scalars()
        out[queue] = sum(1 for h in holders if h == holder)
    return out
