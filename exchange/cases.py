"""Cases at the responsible node: dedup by URL, merge, known content, announcements.

``accept`` takes reports this node is responsible for — from its own intake (a local decision) or
from a peer's envelope — and, inside the writer's transaction, in a handful of set-based
statements per batch:

* a report id already held is answered with its earlier outcome (idempotent receiver);
* a report whose ``url_key`` matches an open case is merged into it (the extra reporting member
  and the items new to the case are recorded); otherwise it opens a case;
* every item whose hash is in the network hash index is marked known content, with the first
  sighting; hashes seen for the first time are added to the index and to the announcement log,
  which each peer's sender drains through the signed outbox.

Because the single writer serialises all of this, two origins reporting the same URL at the same
moment still end with one case and two reporting members. The rows are the store's
(exchange/store/: reports, cases, hash_index); this module decides what they say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from exchange.domain import (
    ContentHash,
    KnownContent,
    LogKind,
    Outcome,
    PayloadResult,
    Report,
    case_id_for,
)
from exchange.lifecycle.model import ItemRef, ItemState
from exchange.store import cases as case_store
from exchange.store import hash_index, lifecycle, reports
from exchange.store.cases import CaseLink
from exchange.store.reports import Incoming, Marks
from exchange.store.writer import Tx
from exchange.wire.codec import announcement_to_proto

_MILLISECOND = timedelta(milliseconds=1)


def marks_for(report: Report, known: dict[ContentHash, KnownContent]) -> Marks:
    """Per item, the first sighting of any of its hashes, or None when the content is new."""
    marks: list[KnownContent | None] = []
    for item in report.items:
        mark = None
        for h in item.hashes:  # one look-up per hash: this runs for every item stored
            mark = known.get(h)
            if mark is not None:
                break
        marks.append(mark)
    return tuple(marks)


@dataclass(frozen=True, slots=True)
class Accepted:
    results: list[PayloadResult]  # one per input, in order
    marks: dict[str, Marks]  # known-content marks of the reports stored now


@dataclass(slots=True)
class _Plan:
    """What one ``accept`` call writes, gathered report by report before the set-based inserts."""

    open_cases: dict[bytes, str]  # url_key → open case, including those this batch opens
    known: dict[ContentHash, KnownContent]  # first sightings, including this batch's own
    opened: list[tuple[str, Report]] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)  # case ids in use: see ``_new_case_id``
    touched: set[str] = field(default_factory=set)
    links: list[CaseLink] = field(default_factory=list)
    sightings: list[KnownContent] = field(default_factory=list)
    case_of: dict[str, str] = field(default_factory=dict)
    outcome_of: dict[str, Outcome] = field(default_factory=dict)
    case_ids: list[str | None] = field(default_factory=list)
    marks: list[Marks] = field(default_factory=list)


def accept(
    tx: Tx,
    incoming: Sequence[Incoming],
    *,
    self_member: str,
    now: datetime,
    send_quality: bool = False,
) -> Accepted:
    """Store reports this node is responsible for; one result per input, in order.
    ``send_quality``: announcements carry PDQ qualities (``[pdq] send_quality``)."""
    conn = tx.conn
    held = reports.existing(conn, [i.report.id for i in incoming])
    earlier = case_store.earlier_outcomes(
        conn, [rid for rid, case in held.items() if case is not None]
    )
    fresh = _fresh(incoming, held)
    plan = _Plan(
        case_store.open_by_url(conn, {inc.report.url_key for inc in fresh}),
        hash_index.known_content(conn, (h for inc in fresh for h in inc.report.hashes)),
        taken=case_store.taken_ids(conn, (case_id_for(inc.report.id, now) for inc in fresh)),
    )
    for inc in fresh:
        _place(tx, plan, inc, self_member=self_member, now=now)
    _write(tx, plan, fresh, self_member=self_member, now=now, send_quality=send_quality)

    out: list[PayloadResult] = []
    for i, inc in enumerate(incoming):
        rid = inc.report.id
        if rid in plan.case_of:  # stored now (or the same id twice in one batch)
            out.append(PayloadResult(i, rid, plan.outcome_of[rid], plan.case_of[rid]))
        else:
            prior_outcome, prior_case = earlier.get(rid, (Outcome.NEW_CASE, held.get(rid) or ""))
            out.append(PayloadResult(i, rid, prior_outcome, prior_case))
    return Accepted(out, {inc.report.id: m for inc, m in zip(fresh, plan.marks, strict=True)})


def _fresh(incoming: Sequence[Incoming], held: dict[str, str | None]) -> list[Incoming]:
    """The reports to store now: not held, and each id once (the first of a batch wins)."""
    fresh: list[Incoming] = []
    seen: set[str] = set()
    for inc in incoming:
        rid = inc.report.id
        if rid not in held and rid not in seen:
            seen.add(rid)
            fresh.append(inc)
    return fresh


def _place(tx: Tx, plan: _Plan, inc: Incoming, *, self_member: str, now: datetime) -> None:
    """Open or merge the report's case, mark its known content, note its first sightings."""
    r = inc.report
    known = plan.known
    plan.marks.append(marks_for(r, known))
    case_id = plan.open_cases.get(r.url_key)
    if case_id is None:
        case_id = _new_case_id(tx, plan, r.id, now)
        plan.open_cases[r.url_key] = case_id
        outcome = Outcome.NEW_CASE
        plan.opened.append((case_id, r))
    else:
        outcome = Outcome.MERGED
        plan.touched.add(case_id)
    new_items = _first_sightings(plan, r, case_id, self_member)
    plan.links.append(CaseLink(case_id, r.id, r.origin_member, outcome, new_items, now))
    plan.case_of[r.id] = case_id
    plan.outcome_of[r.id] = outcome
    plan.case_ids.append(case_id)
    tx.log(
        tx.chain.append(
            now,
            LogKind(outcome.value),
            report_id=r.id,
            member=r.origin_member,
            country=r.hosting_country,
            detail={"case": case_id, "new_items": new_items, "via": inc.sender or "intake"},
        )
    )


def _new_case_id(tx: Tx, plan: _Plan, report_id: str, now: datetime) -> str:
    """The id of the case ``report_id`` opens now: one no case here has, nor another report
    of this batch took.

    Two reports get one id only when their ids share 80 bits and their cases open in the same
    millisecond. A member can grind that for its own reports (2^40 hashes), and an earlier
    job of the same writer group may have the same ``now``; on the key the batch would fail
    and be sent again. The later report steps a millisecond on instead: ``plan.taken`` holds
    the ids already in use of every first choice, and a stepped id (rare) is looked up alone.
    The writer's lock is held, so no other writer opens a case between look-up and insert."""
    at, case_id = now, case_id_for(report_id, now)
    while case_id in plan.taken or (at != now and case_store.taken_ids(tx.conn, [case_id])):
        at += _MILLISECOND
        case_id = case_id_for(report_id, at)
    plan.taken.add(case_id)
    return case_id


def _first_sightings(plan: _Plan, r: Report, case_id: str, self_member: str) -> int:
    """Note the report's hashes seen here for the first time; how many of its items are new to
    the case (none of their hashes already sighted in it)."""
    known = plan.known
    new_items = 0
    for item in r.items:
        in_case = False
        for h in item.hashes:
            k = known.get(h)
            if k is None:
                first = KnownContent(
                    h, self_member, case_id, item.classification, r.received_at, r.id
                )
                known[h] = first
                plan.sightings.append(first)
            elif k.case_id == case_id:
                in_case = True
        if not in_case:
            new_items += 1
    return new_items


def _announce(
    tx: Tx, sightings: Sequence[KnownContent], self_member: str, now: datetime, quality: bool
) -> None:
    """First sightings into the index and the announcement log every peer's sender drains.
    The index row keeps a PDQ quality; the announcement carries it only with ``quality``
    (``[pdq] send_quality``)."""
    hash_index.add_first_sightings(tx.conn, sightings)
    if sightings:
        payloads = [
            announcement_to_proto(k, with_quality=quality).SerializeToString() for k in sightings
        ]
        hash_index.queue_announcements(tx.conn, payloads, now)
        tx.log(
            tx.chain.append(
                now, LogKind.ANNOUNCED, member=self_member, detail={"hashes": len(sightings)}
            )
        )


def _write(
    tx: Tx,
    plan: _Plan,
    fresh: Sequence[Incoming],
    *,
    self_member: str,
    now: datetime,
    send_quality: bool,
) -> None:
    conn = tx.conn
    case_store.open_cases(conn, plan.opened, now)
    case_store.touch(conn, plan.touched, now)
    reports.insert(conn, fresh, plan.case_ids, plan.marks, now)
    case_store.link(conn, plan.links)
    lifecycle.open_items(conn, _first_states(fresh, plan.case_ids, self_member, now), now)
    _announce(tx, plan.sightings, self_member, now, send_quality)


# Reports placed here by these rules make the case "orphaned" in the holder's work queues.
ORPHAN_REASONS = frozenset({"orphan-rule", "coordinator-fallback", "untraceable"})


def _first_states(
    fresh: Sequence[Incoming], case_ids: Sequence[str | None], holder: str, now: datetime
) -> list[tuple[str, ItemState, bool]]:
    """Every item of the stored reports starts its lifecycle here, unassessed; its takedown
    clock starts now — the time the receipt will carry."""
    return [
        (
            case_id,
            ItemState(
                ItemRef(inc.report.id, idx, inc.report.origin_member, item.classification, now),
                holder=holder,
                clock_started=now,
            ),
            inc.report.decision_reason in ORPHAN_REASONS,
        )
        for inc, case_id in zip(fresh, case_ids, strict=True)
        if case_id is not None
        for idx, item in enumerate(inc.report.items)
    ]


def accept_moved(
    tx: Tx,
    inc: Incoming,
    *,
    case_id: str,
    opened: bool,
    country: str,
    items: Sequence[int],
    orphaned: bool,
    self_member: str,
    now: datetime,
) -> list[ItemState]:
    """A report whose items another member moved here (``exchange/transfer``): linked to
    ``case_id`` — opened now when ``opened``, hosted in ``country`` — stored if not held here
    yet (its content marked and its first sightings announced like a received report's), or,
    held already (it came back, or this node is its origin), moved into the case. Only the
    moved ``items`` start their lifecycle here: unassessed, their takedown clock at ``now``,
    the time of the receipt. Returns the states of the items new to the case."""
    conn = tx.conn
    r = inc.report
    outcome = Outcome.NEW_CASE if opened else Outcome.MERGED
    if opened:
        case_store.open_cases(conn, [(case_id, replace(r, hosting_country=country))], now)
    else:
        case_store.touch(conn, [case_id], now)
    new_items = 0
    if r.id in reports.existing(conn, [r.id]):
        reports.set_case(conn, r.id, case_id)
    else:
        plan = _Plan({r.url_key: case_id}, hash_index.known_content(conn, r.hashes))
        marks = marks_for(r, plan.known)
        new_items = _first_sightings(plan, r, case_id, self_member)
        reports.insert(conn, [inc], [case_id], [marks], now)
        _announce(tx, plan.sightings, self_member, now, False)
    if not case_store.is_linked(conn, case_id, r.id):
        case_store.link(conn, [CaseLink(case_id, r.id, r.origin_member, outcome, new_items, now)])
    held = {s.ref.key for s in lifecycle.states(conn, [case_id]).get(case_id, [])}
    states = [
        ItemState(
            ItemRef(r.id, i, r.origin_member, r.items[i].classification, now),
            holder=self_member,
            clock_started=now,
        )
        for i in items
        if (r.id, i) not in held
    ]
    lifecycle.open_items(conn, [(case_id, st, orphaned) for st in states], now)
    return states


def record_announcements(tx: Tx, announced: Sequence[KnownContent]) -> None:
    """Apply members' announcements, each to the announcer's own sighting only.

    A sighting adds or updates the announcer's row (its case, report and classification as
    now announced; its time the earlier of the two); a retraction removes it. The receiver has
    checked that every announcement names its signer, so no row of another member is touched.
    """
    hash_index.upsert_sightings(tx.conn, [k for k in announced if not k.retracted])
    for k in announced:
        if k.retracted:
            hash_index.retract(tx.conn, k)
