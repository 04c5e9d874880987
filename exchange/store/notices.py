"""The notice aggregate: every statement on ``takedown_notices`` and ``takedown_notice_cases``,
the watches' notice columns, and the hoster scorecard.

Who may be noticed is one set-based query over the watches, the cases and the item states: a
watched case (state ``watching``) whose last check found it online, with open items assessed
illegal at this holder, not named by a pending notice, whose interval since the last notice
and whose holds have run out (the same rule as ``model.notice_due``, applied in SQL so a pass
over 100,000 watched cases reads only the due ones). A pass reads them in one query ordered
by hoster (ASN, organisation) then case, so a contact's cases come together.

A notice is written ``pending`` with the cases it names (``takedown_notice_cases``, with the
hoster each was sent about): a notice re-sent after a crash is rendered again from those rows
under the same Message-ID. The scorecard counts only notices the relay accepted (``sent``).

Of the watch row this module writes only the notice columns (``notices``, ``first_notice_at``,
``last_notice_at``, ``no_contact``); the checks' columns are ``store/takedown.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, literal, or_, select, update

from exchange.domain import Classification
from exchange.lifecycle.model import CLOSED_STAGES, Stage
from exchange.store import schema
from exchange.store.sql import chunks
from exchange.takedown.model import Hoster
from exchange.takedown.notice_model import (
    Candidate,
    HosterScore,
    NoticeStatus,
    NoticeUrl,
    PendingNotice,
    percentile,
)

WATCHES = schema.takedown_watches
NOTICES = schema.takedown_notices
NOTICE_CASES = schema.takedown_notice_cases
STATES = schema.item_states
CASES = schema.cases

WATCHING = "watching"
DONE = "done"
ONLINE = "online"
_CLOSED = sorted(str(s) for s in CLOSED_STAGES)
_ILLEGAL = [str(Classification.BASELINE), str(Classification.NATIONAL)]
MAX_ERROR = 200
STREAM_PAGE = 1000

SortKey = tuple[int, str, str]  # (ASN or -1, organisation or "", case id)


@dataclass(frozen=True, slots=True)
class DueBy:
    """The cut-offs of one pass: a case is due if its last notice is at or before
    ``last_notice``, its hold ended by ``now`` and its last reported_to_lea is at or before
    ``lea``."""

    now: datetime
    last_notice: datetime
    lea: datetime


def sort_key(c: Candidate) -> SortKey:
    return (c.hoster.asn if c.hoster.asn is not None else -1, c.hoster.organisation, c.case_id)


# -- who is due -------------------------------------------------------------------------------


def candidates(
    conn: Connection, *, holder: str, due: DueBy, case_ids: Sequence[str]
) -> list[Candidate]:
    """Those of ``case_ids`` that are due (re-checked inside the writer), in hoster order."""
    out: list[Candidate] = []
    for part in chunks(sorted(set(case_ids))):
        stmt = _candidates(holder, due).where(WATCHES.c.case_id.in_(part))
        out.extend(_candidate(r) for r in conn.execute(stmt))
    return sorted(out, key=sort_key)


def due_in_hoster_order(
    conn: Connection, *, holder: str, due: DueBy, no_contact: bool = True
) -> Iterator[Candidate]:
    """Every case due now, in (ASN, organisation, case) order, read as the caller goes: one
    scan and one sort for the whole pass (keyset pages re-scanned the watches for each page),
    rows fetched a page at a time. ``no_contact=False`` leaves out the cases flagged as
    having no contact."""
    asn_key, org_key = _hoster_keys()
    stmt = _candidates(holder, due).order_by(asn_key, org_key, WATCHES.c.case_id)
    if not no_contact:
        stmt = stmt.where(WATCHES.c.no_contact.is_(False))
    for r in conn.execution_options(yield_per=STREAM_PAGE).execute(stmt):
        yield _candidate(r)


def _hoster_keys() -> tuple[Any, Any]:
    return func.coalesce(WATCHES.c.asn, -1), func.coalesce(WATCHES.c.organisation, "")


def _candidates(holder: str, due: DueBy) -> Any:
    w, s, c = WATCHES.c, STATES.c, CASES.c
    pending = (
        select(NOTICE_CASES.c.case_id)
        .join(NOTICES, NOTICES.c.id == NOTICE_CASES.c.notice_id)
        .where(NOTICES.c.status == str(NoticeStatus.PENDING))
    )
    lea = func.max(s.lea_at)
    columns = (
        w.case_id,
        c.url,
        w.asn,
        w.organisation,
        w.country,
        w.online_since,
        w.notices,
        w.last_notice_at,
        w.hold_until,
        w.no_contact,
    )
    return (
        select(
            *columns,
            func.count().label("items"),
            lea.label("lea_at"),
            func.max(case((s.classification == str(Classification.BASELINE), 1), else_=0)).label(
                "baseline"
            ),
        )
        .select_from(WATCHES.join(CASES, c.id == w.case_id).join(STATES, s.case_id == w.case_id))
        .where(
            w.state == WATCHING,
            w.last_outcome == ONLINE,
            s.holder == holder,
            s.stage.not_in(_CLOSED),
            s.classification.in_(_ILLEGAL),
            or_(w.last_notice_at.is_(None), w.last_notice_at <= due.last_notice),
            or_(w.hold_until.is_(None), w.hold_until <= due.now),
            w.case_id.not_in(pending),
        )
        .group_by(*columns)
        .having(or_(lea.is_(None), lea <= due.lea))
    )


def _candidate(r: Any) -> Candidate:
    return Candidate(
        case_id=r.case_id,
        url=r.url,
        hoster=Hoster(r.asn, r.organisation or ""),
        country=r.country,
        online_since=r.online_since,
        notices=r.notices,
        last_notice_at=r.last_notice_at,
        lea_at=r.lea_at,
        hold_until=r.hold_until,
        no_contact=bool(r.no_contact),
        items=int(r.items),
        category=str(Classification.BASELINE if r.baseline else Classification.NATIONAL),
    )


def failed_recipients(conn: Connection, case_ids: Sequence[str]) -> dict[str, frozenset[str]]:
    """Per case, the addresses that refused a notice about it for good since its last notice
    went out (none: no entry). The notifier does not write to them again."""
    w = WATCHES.c
    out: dict[str, set[str]] = {}
    for part in chunks(sorted(set(case_ids))):
        rows = conn.execute(
            select(NOTICE_CASES.c.case_id, NOTICES.c.recipient)
            .select_from(
                NOTICE_CASES.join(NOTICES, NOTICES.c.id == NOTICE_CASES.c.notice_id).join(
                    WATCHES, w.case_id == NOTICE_CASES.c.case_id
                )
            )
            .where(
                NOTICE_CASES.c.case_id.in_(part),
                NOTICES.c.status == str(NoticeStatus.FAILED),
                or_(w.last_notice_at.is_(None), NOTICES.c.created_at > w.last_notice_at),
            )
        )
        for case_id, recipient in rows:
            out.setdefault(case_id, set()).add(recipient.lower())
    return {c: frozenset(r) for c, r in out.items()}


# -- notices ------------------------------------------------------------------------------------


def insert_pending(
    conn: Connection, notices: Sequence[tuple[PendingNotice, Sequence[Candidate]]]
) -> None:
    """Write notices ``pending`` (due at once) with the cases each names."""
    if not notices:
        return
    conn.execute(
        NOTICES.insert(),
        [
            {
                "id": n.id,
                "contact_key": n.contact_key,
                "recipient": n.recipient,
                "escalated": n.escalated,
                "message_id": n.message_id,
                "status": str(NoticeStatus.PENDING),
                "attempts": n.attempts,
                "next_attempt_at": n.created_at,
                "created_at": n.created_at,
                "sent_at": None,
                "error": None,
            }
            for n, _ in notices
        ],
    )
    conn.execute(
        NOTICE_CASES.insert(),
        [
            {
                "notice_id": n.id,
                "case_id": c.case_id,
                "asn": c.hoster.asn,
                "organisation": c.hoster.organisation,
                "items": c.items,
            }
            for n, cases in notices
            for c in cases
        ],
    )


def pending(conn: Connection, now: datetime, limit: int) -> list[PendingNotice]:
    """Pending notices whose next attempt is due, oldest first, with the cases they name."""
    n = NOTICES.c
    rows = conn.execute(
        select(NOTICES)
        .where(n.status == str(NoticeStatus.PENDING), n.next_attempt_at <= now)
        .order_by(n.next_attempt_at, n.id)
        .limit(limit)
    ).all()
    cases: dict[str, list[str]] = {}
    for part in chunks([r.id for r in rows]):
        for notice_id, case_id in conn.execute(
            select(NOTICE_CASES.c.notice_id, NOTICE_CASES.c.case_id)
            .where(NOTICE_CASES.c.notice_id.in_(part))
            .order_by(NOTICE_CASES.c.notice_id, NOTICE_CASES.c.case_id)
        ):
            cases.setdefault(notice_id, []).append(case_id)
    return [
        PendingNotice(
            id=r.id,
            contact_key=r.contact_key,
            recipient=r.recipient,
            escalated=r.escalated,
            message_id=r.message_id,
            attempts=r.attempts,
            created_at=r.created_at,
            case_ids=tuple(cases.get(r.id, ())),
        )
        for r in rows
    ]


def notice_urls(conn: Connection, notice_id: str, holder: str) -> list[NoticeUrl]:
    """The URLs a notice names, as it is rendered: the hoster it was written about, the case's
    URL, country and first time seen online, and its category now."""
    nc, c, w = NOTICE_CASES.c, CASES.c, WATCHES.c
    rows = conn.execute(
        select(nc.case_id, c.url, nc.asn, nc.organisation, nc["items"], w.country, w.online_since)
        .select_from(
            NOTICE_CASES.join(CASES, c.id == nc.case_id).outerjoin(WATCHES, w.case_id == nc.case_id)
        )
        .where(nc.notice_id == notice_id)
        .order_by(nc.asn, nc.organisation, nc.case_id)
    ).all()
    baseline = _baseline_cases(conn, [r.case_id for r in rows], holder)
    return [
        NoticeUrl(
            case_id=r.case_id,
            url=r.url,
            hoster=Hoster(r.asn, r.organisation),
            country=r.country,
            online_since=r.online_since,
            items=r.items,
            category=str(
                Classification.BASELINE if r.case_id in baseline else Classification.NATIONAL
            ),
        )
        for r in rows
    ]


def _baseline_cases(conn: Connection, case_ids: Sequence[str], holder: str) -> set[str]:
    """Those of the cases with an item assessed baseline here (looked up by case: a join on
    the holder would read every item the holder has)."""
    s = STATES.c
    out: set[str] = set()
    for part in chunks(sorted(set(case_ids))):
        out.update(
            conn.execute(
                select(s.case_id)
                .where(
                    s.case_id.in_(part),
                    s.holder == holder,
                    s.classification == str(Classification.BASELINE),
                )
                .distinct()
            ).scalars()
        )
    return out


def previous_notices(conn: Connection, case_ids: Sequence[str]) -> int:
    """The most notices any of the cases had sent so far (the renderer's "earlier notices")."""
    most = 0
    for part in chunks(sorted(set(case_ids))):
        found = conn.execute(
            select(func.max(WATCHES.c.notices)).where(WATCHES.c.case_id.in_(part))
        ).scalar_one_or_none()
        most = max(most, int(found or 0))
    return most


def mark_sent(conn: Connection, notice_id: str, now: datetime) -> bool:
    """The relay accepted it; False if it was not pending (already recorded elsewhere)."""
    n = NOTICES.c
    done = conn.execute(
        update(NOTICES)
        .where(n.id == notice_id, n.status == str(NoticeStatus.PENDING))
        .values(status=str(NoticeStatus.SENT), sent_at=now, attempts=n.attempts + 1, error=None)
    )
    return done.rowcount == 1


def keep_notice_cases(conn: Connection, notice_id: str, case_ids: Sequence[str]) -> None:
    """Forget the cases a notice named when written but no longer carried when sent (their
    items closed meanwhile): the scorecard counts what the hoster was told."""
    nc = NOTICE_CASES.c
    conn.execute(
        delete(NOTICE_CASES).where(nc.notice_id == notice_id, nc.case_id.not_in(list(case_ids)))
    )


def mark_retry(conn: Connection, notice_id: str, next_attempt_at: datetime, error: str) -> int:
    """A temporary failure: one attempt more, the next at ``next_attempt_at``; the attempts
    made (0: the notice was not pending)."""
    n = NOTICES.c
    conn.execute(
        update(NOTICES)
        .where(n.id == notice_id, n.status == str(NoticeStatus.PENDING))
        .values(attempts=n.attempts + 1, next_attempt_at=next_attempt_at, error=error[:MAX_ERROR])
    )
    found = conn.execute(
        select(n.attempts).where(n.id == notice_id, n.status == str(NoticeStatus.PENDING))
    ).scalar_one_or_none()
    return int(found or 0)


def reserve(conn: Connection, notice_id: str, now: datetime, until: datetime) -> bool:
    """Take a due pending notice for sending until ``until`` (False: another replica has it,
    or it is no longer pending): replicas sharing the database never send one notice twice."""
    n = NOTICES.c
    done = conn.execute(
        update(NOTICES)
        .where(
            n.id == notice_id,
            n.status == str(NoticeStatus.PENDING),
            n.next_attempt_at <= now,
        )
        .values(next_attempt_at=until)
    )
    return done.rowcount == 1


def waiting(
    conn: Connection, case_ids: Sequence[str], now: datetime, lea_since: datetime
) -> set[str]:
    """The cases a notice must not name now: on hold, or reported to law enforcement after
    ``lea_since`` (the law-enforcement wait), as the due rule says at planning."""
    w, s = WATCHES.c, STATES.c
    out: set[str] = set()
    for part in chunks(sorted(set(case_ids))):
        held = select(w.case_id).where(w.case_id.in_(part), w.hold_until > now)
        out.update(conn.execute(held).scalars())
        lea = (
            select(s.case_id)
            .where(s.case_id.in_(part))
            .group_by(s.case_id)
            .having(func.max(s.lea_at) > lea_since)
        )
        out.update(conn.execute(lea).scalars())
    return out


def mark_dropped(conn: Connection, notice_id: str, reason: str) -> bool:
    """Nothing left to send about: no address refused anything (``failed_recipients`` ignores
    it), and its cases are planned again when they are due."""
    n = NOTICES.c
    done = conn.execute(
        update(NOTICES)
        .where(n.id == notice_id, n.status == str(NoticeStatus.PENDING))
        .values(status=str(NoticeStatus.DROPPED), error=reason[:MAX_ERROR])
    )
    return done.rowcount == 1


def mark_failed(conn: Connection, notice_id: str, error: str) -> bool:
    """Refused for good; False if it was not pending."""
    n = NOTICES.c
    done = conn.execute(
        update(NOTICES)
        .where(n.id == notice_id, n.status == str(NoticeStatus.PENDING))
        .values(status=str(NoticeStatus.FAILED), attempts=n.attempts + 1, error=error[:MAX_ERROR])
    )
    return done.rowcount == 1


# -- the watches' notice columns, the items a notice covers ------------------------------------


def note_sent(conn: Connection, case_ids: Sequence[str], now: datetime) -> None:
    """A notice about these cases went out at ``now``: one more, the first kept, a contact
    found (``no_contact`` cleared)."""
    w = WATCHES.c
    at = literal(now, schema.UtcMicros())
    for part in chunks(sorted(set(case_ids))):
        conn.execute(
            update(WATCHES)
            .where(w.case_id.in_(part))
            .values(
                notices=w.notices + 1,
                first_notice_at=func.coalesce(w.first_notice_at, at),
                last_notice_at=now,
                no_contact=False,
                updated_at=now,
            )
        )


def set_no_contact(conn: Connection, case_ids: Iterable[str], flag: bool, now: datetime) -> None:
    w = WATCHES.c
    for part in chunks(sorted(set(case_ids))):
        conn.execute(
            update(WATCHES)
            .where(w.case_id.in_(part), w.no_contact.is_not(flag))
            .values(no_contact=flag, updated_at=now)
        )


def open_illegal_items(
    conn: Connection, case_ids: Sequence[str], holder: str
) -> dict[str, list[tuple[str, int]]]:
    """Per case, its open items assessed illegal at ``holder`` — what a notice reports."""
    s = STATES.c
    out: dict[str, list[tuple[str, int]]] = {}
    for part in chunks(sorted(set(case_ids))):
        rows = conn.execute(
            select(s.case_id, s.report_id, s.idx)
            .where(
                s.case_id.in_(part),
                s.holder == holder,
                s.stage.not_in(_CLOSED),
                s.classification.in_(_ILLEGAL),
            )
            .order_by(s.case_id, s.report_id, s.idx)
        )
        for case_id, report_id, idx in rows:
            out.setdefault(case_id, []).append((report_id, idx))
    return out


# -- the hoster scorecard ---------------------------------------------------------------------


def scorecard(conn: Connection, holder: str, now: datetime) -> list[HosterScore]:
    """Per hoster (ASN and organisation as noticed): notices sent, cases and items notified,
    time from the first notice to removal (median, p90), items still online and for how long.

    An item's removal (and its being still online) counts for the hoster its case was last
    noticed to — a case that moved hosters is not held against the one it left — timed from
    the first notice sent to that hoster about the case.
    """
    totals = _hoster_totals(conn)
    removed: dict[tuple[int | None, str], list[float]] = {}
    online: dict[tuple[int | None, str], list[float]] = {}
    for r in conn.execute(_item_outcomes(holder)):
        key = (r.asn, r.organisation)
        if r.stage == str(Stage.REMOVED):
            if r.closed_at is not None:
                seconds = (r.closed_at - r.first_at).total_seconds()
                removed.setdefault(key, []).append(max(seconds, 0.0))
        else:
            online.setdefault(key, []).append(max((now - r.first_at).total_seconds(), 0.0))
    out = []
    for key, (notices, cases, items) in totals.items():
        took = sorted(removed.get(key, []))
        still = sorted(online.get(key, []))
        out.append(
            HosterScore(
                asn=key[0],
                organisation=key[1],
                notices=notices,
                cases=cases,
                items=items,
                removed=len(took),
                removal_median_s=percentile(took, 0.5),
                removal_p90_s=percentile(took, 0.9),
                still_online=len(still),
                online_median_s=percentile(still, 0.5),
                online_max_s=still[-1] if still else None,
            )
        )
    return sorted(out, key=lambda h: (h.asn is None, h.asn or 0, h.organisation.casefold()))


def _sent_rows() -> Any:
    return NOTICE_CASES.join(NOTICES, NOTICES.c.id == NOTICE_CASES.c.notice_id)


def _hoster_totals(conn: Connection) -> dict[tuple[int | None, str], tuple[int, int, int]]:
    """(asn, organisation) → (notices sent, cases noticed, items notified)."""
    nc = NOTICE_CASES.c
    sent = NOTICES.c.status == str(NoticeStatus.SENT)
    per_case = (
        select(nc.asn, nc.organisation, nc.case_id, func.max(nc["items"]).label("items"))
        .select_from(_sent_rows())
        .where(sent)
        .group_by(nc.asn, nc.organisation, nc.case_id)
        .subquery()
    )
    items = {
        (r.asn, r.organisation): (int(r.cases), int(r.items or 0))
        for r in conn.execute(
            select(
                per_case.c.asn,
                per_case.c.organisation,
                func.count().label("cases"),
                func.sum(per_case.c["items"]).label("items"),
            ).group_by(per_case.c.asn, per_case.c.organisation)
        )
    }
    notices = conn.execute(
        select(nc.asn, nc.organisation, func.count(func.distinct(nc.notice_id)))
        .select_from(_sent_rows())
        .where(sent)
        .group_by(nc.asn, nc.organisation)
    ).all()
    return {(a, o): (int(n), *items.get((a, o), (0, 0))) for a, o, n in notices}


def _item_outcomes(holder: str) -> Any:
    """One row per illegal item of a noticed case that was removed or is still online, with
    the hoster its case was last noticed to and the first notice to that hoster."""
    nc, s, w = NOTICE_CASES.c, STATES.c, WATCHES.c
    per = (
        select(
            nc.case_id,
            nc.asn,
            nc.organisation,
            func.min(NOTICES.c.sent_at).label("first_at"),
            func.max(NOTICES.c.sent_at).label("last_at"),
        )
        .select_from(_sent_rows())
        .where(NOTICES.c.status == str(NoticeStatus.SENT))
        .group_by(nc.case_id, nc.asn, nc.organisation)
        .subquery()
    )
    rank = (
        func.row_number()
        .over(partition_by=per.c.case_id, order_by=(per.c.last_at.desc(), per.c.first_at.desc()))
        .label("rank")
    )
    ranked = select(per, rank).subquery()
    latest = select(ranked).where(ranked.c.rank == 1).subquery()
    still_online = and_(s.stage.not_in(_CLOSED), w.last_outcome == ONLINE, w.state != DONE)
    return (
        select(latest.c.asn, latest.c.organisation, latest.c.first_at, s.stage, s.closed_at)
        .select_from(
            latest.join(
                STATES,
                and_(
                    s.case_id == latest.c.case_id,
                    s.holder == holder,
                    s.classification.in_(_ILLEGAL),
                ),
            ).outerjoin(WATCHES, w.case_id == latest.c.case_id)
        )
        .where(or_(s.stage == str(Stage.REMOVED), still_online))
    )
