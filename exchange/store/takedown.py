"""The takedown watches and their checks: every statement on ``takedown_watches`` (the check
side — the notice columns are ``notices.py``'s) and ``takedown_checks``.

A watch exists for each case held here with an open item assessed illegal (``start_watches``
finds them, set-based, so a thousand newly assessed cases cost one query) and ends when no such
item is left (``end_watches``). The scheduler *claims* due watches by pushing their
``next_check_at`` past the time a check can take, in the transaction that reads them: a
restart or a second replica on the same PostgreSQL database never checks one URL twice at once,
and a check lost in a crash is simply due again after the claim runs out.

Everything is batched: one statement per table per group of checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, func, insert, select, update

from exchange.domain import Classification
from exchange.lifecycle.model import CLOSED_STAGES
from exchange.store import schema
from exchange.store.sql import chunks, upsert
from exchange.takedown.model import Check, Outcome

WATCHES = schema.takedown_watches
CHECKS = schema.takedown_checks
STATES = schema.item_states
CASES = schema.cases

_CLOSED = sorted(str(s) for s in CLOSED_STAGES)
_ILLEGAL = [str(Classification.BASELINE), str(Classification.NATIONAL)]


class WatchState:
    WATCHING = "watching"
    SUGGESTED = "suggested"  # gone on enough checks: an analyst confirms (confirm_removal)
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Watch:
    """A due watch as the scheduler needs it."""

    case_id: str
    url: str
    host: str
    state: str
    started_at: datetime
    country: str | None
    asn: int | None
    organisation: str


@dataclass(frozen=True, slots=True)
class CheckUpdate:
    """A check's result and what it does to its watch."""

    case_id: str
    check: Check
    next_check_at: datetime
    state: str
    country: str | None
    asn: int | None
    organisation: str
    reset_notices: bool  # a new hoster: notices count again from zero, to the new contact


def _open_illegal(holder: str) -> Any:
    s = STATES.c
    return and_(s.holder == holder, s.stage.not_in(_CLOSED), s.classification.in_(_ILLEGAL))


def unwatched(conn: Connection, holder: str, limit: int) -> list[tuple[str, str, str | None]]:
    """Held cases with an open item assessed illegal and no live watch: never watched, or
    watched until their last illegal item closed and illegal again since (an item assessed
    later, a merged report's new items) — (case, URL, country)."""
    s = STATES.c
    w = WATCHES.c
    c = CASES.c
    rows = conn.execute(
        select(c.id, c.url, c.hosting_country)
        .where(
            c.id.in_(select(s.case_id).where(_open_illegal(holder))),
            ~exists().where(w.case_id == c.id, w.state != WatchState.DONE),
            c.anonymised_at.is_(None),
        )
        .order_by(c.opened_at, c.id)
        .limit(limit)
    )
    return [(r.id, r.url, r.hosting_country) for r in rows]


def start_watches(
    conn: Connection, rows: Sequence[tuple[str, str, str | None]], now: datetime
) -> None:
    """Watches for (case, host, country), due at once: the first check is the baseline. A
    watch that had ended starts again from nothing (its checks stay, as evidence)."""
    if not rows:
        return
    upsert(
        conn,
        WATCHES,
        [
            {
                "case_id": case_id,
                "host": host[:255],
                "state": WatchState.WATCHING,
                "started_at": now,
                "next_check_at": now,
                "checks": 0,
                "not_online": 0,
                "country": country,
                "notices": 0,
                "no_contact": False,
                "updated_at": now,
                "last_check_at": None,
                "last_outcome": None,
                "last_status": None,
                "online_since": None,
                "asn": None,
                "organisation": None,
                "first_notice_at": None,
                "last_notice_at": None,
                "hold_until": None,
            }
            for case_id, host, country in rows
        ],
        key=("case_id",),
    )


def end_watches(conn: Connection, holder: str, now: datetime) -> int:
    """Watches whose case has no open illegal item left (removed, moved, withdrawn …) end."""
    s = STATES.c
    w = WATCHES.c
    still = select(s.case_id).where(_open_illegal(holder))
    result = conn.execute(
        update(WATCHES)
        .where(w.state != WatchState.DONE, w.case_id.not_in(still))
        .values(state=WatchState.DONE, updated_at=now)
    )
    return int(result.rowcount or 0)


def claim_due(
    conn: Connection, now: datetime, claim: timedelta, limit: int, *, per_host: int
) -> list[Watch]:
    """Up to ``limit`` watches due by ``now`` (at most ``per_host`` of one host), oldest
    first, claimed until ``now + claim``. On PostgreSQL the rows are locked SKIP LOCKED: a
    second replica claiming at the same moment takes other watches, never these."""
    w = WATCHES.c
    due = (
        select(
            w.case_id,
            func.row_number()
            .over(partition_by=w.host, order_by=(w.next_check_at, w.case_id))
            .label("nth"),
        )
        .where(w.state != WatchState.DONE, w.next_check_at <= now)
        .subquery()
    )
    stmt = (
        select(
            w.case_id, CASES.c.url, w.host, w.state, w.started_at, w.country, w.asn, w.organisation
        )
        .join(CASES, CASES.c.id == w.case_id)
        .join(due, due.c.case_id == w.case_id)
        .where(due.c.nth <= per_host, w.next_check_at <= now)
        .order_by(w.next_check_at, w.case_id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=WATCHES)
    rows = conn.execute(stmt).all()
    ids = [r.case_id for r in rows]
    for part in chunks(ids):
        conn.execute(update(WATCHES).where(w.case_id.in_(part)).values(next_check_at=now + claim))
    return [
        Watch(
            r.case_id, r.url, r.host, r.state, r.started_at, r.country, r.asn, r.organisation or ""
        )
        for r in rows
    ]


def record(conn: Connection, updates: Sequence[CheckUpdate], now: datetime) -> None:
    """Each check stored as evidence and its watch moved on: two statements for the group."""
    if not updates:
        return
    conn.execute(insert(CHECKS), [_check_row(u.case_id, u.check) for u in updates])
    w = WATCHES.c
    not_online = func.coalesce(w.not_online, 0)
    conn.execute(
        update(WATCHES)
        .where(w.case_id == bindparam("b_case"))
        .values(
            state=bindparam("b_state"),
            next_check_at=bindparam("b_next", type_=w.next_check_at.type),
            checks=w.checks + 1,
            last_check_at=bindparam("b_at", type_=w.last_check_at.type),
            last_outcome=bindparam("b_outcome"),
            last_status=bindparam("b_status"),
            not_online=(not_online + 1) * bindparam("b_gone"),
            online_since=func.coalesce(
                w.online_since, bindparam("b_online_at", type_=w.online_since.type)
            ),
            country=bindparam("b_country"),
            asn=bindparam("b_asn"),
            organisation=bindparam("b_org"),
            notices=w.notices * bindparam("b_keep_notices"),
            no_contact=and_(w.no_contact, bindparam("b_keep_notices") == 1),
            updated_at=now,
        ),
        [_watch_params(u) for u in updates],
    )


def _check_row(case_id: str, c: Check) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "at": c.at,
        "outcome": str(c.outcome),
        "status": c.status,
        "address": c.address[:64],
        "country": c.country,
        "asn": c.asn,
        "organisation": c.organisation[:128],
        "redirects": c.redirects,
        "elapsed_ms": c.elapsed_ms,
        "detail": c.detail[:200],
    }


def _watch_params(u: CheckUpdate) -> dict[str, Any]:
    online = u.check.outcome is Outcome.ONLINE
    return {
        "b_case": u.case_id,
        "b_state": u.state,
        "b_next": u.next_check_at,
        "b_at": u.check.at,
        "b_outcome": str(u.check.outcome),
        "b_status": u.check.status,
        "b_gone": 0 if online or u.check.outcome is Outcome.REFUSED else 1,
        "b_online_at": u.check.at if online else None,
        "b_country": u.country,
        "b_asn": u.asn,
        "b_org": u.organisation[:128] or None,
        "b_keep_notices": 0 if u.reset_notices else 1,
    }


def recent_checks(conn: Connection, case_ids: Sequence[str], n: int) -> dict[str, list[Check]]:
    """Each case's last ``n`` checks, newest first."""
    c = CHECKS.c
    out: dict[str, list[Check]] = {}
    for part in chunks(sorted(set(case_ids))):
        ranked = (
            select(
                CHECKS,
                func.row_number()
                .over(partition_by=c.case_id, order_by=(c.at.desc(), c.id.desc()))
                .label("rank"),
            )
            .where(c.case_id.in_(part))
            .subquery()
        )
        rows = conn.execute(
            select(ranked).where(ranked.c.rank <= n).order_by(ranked.c.case_id, ranked.c.rank)
        )
        for r in rows:
            out.setdefault(r.case_id, []).append(_check(r))
    return out


def _check(r: Any) -> Check:
    return Check(
        at=r.at,
        outcome=Outcome(r.outcome),
        status=r.status,
        address=r.address,
        country=r.country,
        asn=r.asn,
        organisation=r.organisation,
        redirects=r.redirects,
        elapsed_ms=r.elapsed_ms,
        detail=r.detail,
    )


def open_illegal_items(
    conn: Connection, holder: str, case_ids: Sequence[str]
) -> dict[str, list[tuple[str, int]]]:
    """Each case's open items assessed illegal: what a removal or a notice is about."""
    return _items(conn, case_ids, _open_illegal(holder))


def open_items(
    conn: Connection, holder: str, case_ids: Sequence[str]
) -> dict[str, list[tuple[str, int]]]:
    """Each case's open items, assessed or not: what a move takes along."""
    s = STATES.c
    return _items(conn, case_ids, and_(s.holder == holder, s.stage.not_in(_CLOSED)))


def _items(
    conn: Connection, case_ids: Sequence[str], condition: Any
) -> dict[str, list[tuple[str, int]]]:
    s = STATES.c
    out: dict[str, list[tuple[str, int]]] = {}
    for part in chunks(sorted(set(case_ids))):
        rows = conn.execute(
            select(s.case_id, s.report_id, s.idx)
            .where(s.case_id.in_(part), condition)
            .order_by(s.case_id, s.report_id, s.idx)
        )
        for r in rows:
            out.setdefault(r.case_id, []).append((r.report_id, r.idx))
    return out


@dataclass(frozen=True, slots=True)
class WatchView:
    """A watch as people read it (``ihx takedown show``)."""

    case_id: str
    host: str
    state: str
    started_at: datetime
    next_check_at: datetime
    checks: int
    last_check_at: datetime | None
    last_outcome: str | None
    last_status: int | None
    not_online: int
    online_since: datetime | None
    country: str | None
    asn: int | None
    organisation: str
    notices: int
    first_notice_at: datetime | None
    last_notice_at: datetime | None
    no_contact: bool
    hold_until: datetime | None


def watches(conn: Connection, case_ids: Sequence[str]) -> dict[str, WatchView]:
    w = WATCHES.c
    out: dict[str, WatchView] = {}
    for part in chunks(sorted(set(case_ids))):
        for r in conn.execute(select(WATCHES).where(w.case_id.in_(part))):
            out[r.case_id] = WatchView(
                case_id=r.case_id,
                host=r.host,
                state=r.state,
                started_at=r.started_at,
                next_check_at=r.next_check_at,
                checks=r.checks,
                last_check_at=r.last_check_at,
                last_outcome=r.last_outcome,
                last_status=r.last_status,
                not_online=r.not_online,
                online_since=r.online_since,
                country=r.country,
                asn=r.asn,
                organisation=r.organisation or "",
                notices=r.notices,
                first_notice_at=r.first_notice_at,
                last_notice_at=r.last_notice_at,
                no_contact=r.no_contact,
                hold_until=r.hold_until,
            )
    return out


def counts(conn: Connection) -> Mapping[str, int]:
    """Watches per state (metrics and ``ihx takedown status``)."""
    w = WATCHES.c
    rows = conn.execute(select(w.state, func.count()).group_by(w.state))
    return {state: int(n) for state, n in rows}


def flagged(conn: Connection, now: datetime) -> tuple[int, int, int]:
    """Open watches (not done) due now, without an abuse contact, and on hold."""
    w = WATCHES.c
    live = w.state != WatchState.DONE
    row = conn.execute(
        select(
            func.count().filter(w.next_check_at <= now),
            func.count().filter(w.no_contact.is_(True)),
            func.count().filter(w.hold_until > now),
        ).where(live)
    ).one()
    return int(row[0]), int(row[1]), int(row[2])
