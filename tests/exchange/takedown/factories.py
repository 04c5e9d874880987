"""Factories for the takedown tests: rows of the takedown tables, written straight to them.

Until the re-check scheduler's store (``exchange/store/takedown.py``) creates watches, the
tests write a watch row the way it will: ``watch_row(case_id, …)`` is a complete row of
``takedown_watches`` (state ``watching``, last check online, hoster AS64500 "Example Hosting
B.V." in NL, nothing noticed yet) with the given changes. ``case_row`` and ``notice_row`` /
``notice_case_row`` build hand-made cases and notices for the store tests; ``insert`` writes
rows of any table in one statement; ``put_case`` a whole watched case with its item states,
``put_notices`` notices with the cases they name. ``MovingResolver`` is DNS whose answers a
test changes (content moving to another address, hoster or country).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table

from exchange.domain import Classification
from exchange.lifecycle.model import Assessment, ItemState, Stage
from exchange.store import lifecycle as lifecycle_store
from exchange.store import schema
from routing.resolver import Resolution
from tests.exchange.factories import T0
from tests.exchange.lifecycle.factories import make_state

HOSTER_ASN = 64500  # documentation AS numbers (RFC 5398), as in docs/examples/abuse-contacts.toml
HOSTER_ORG = "Example Hosting B.V."


def watch_row(case_id: str, **changes: Any) -> dict[str, Any]:
    """A ``takedown_watches`` row: watched since T0, online at its last check (T0)."""
    row: dict[str, Any] = {
        "case_id": case_id,
        "host": "hosting-nl.example",
        "state": "watching",
        "started_at": T0,
        "next_check_at": T0 + timedelta(hours=1),
        "checks": 1,
        "last_check_at": T0,
        "last_outcome": "online",
        "last_status": 200,
        "not_online": 0,
        "online_since": T0,
        "country": "NL",
        "asn": HOSTER_ASN,
        "organisation": HOSTER_ORG,
        "notices": 0,
        "first_notice_at": None,
        "last_notice_at": None,
        "no_contact": False,
        "hold_until": None,
        "updated_at": T0,
    }
    unknown = set(changes) - set(row)
    assert not unknown, f"not a watch column: {unknown}"
    row.update(changes)
    return row


def case_row(case_id: str, url: str | None = None, **changes: Any) -> dict[str, Any]:
    """A ``cases`` row held here (open), for the store tests that build cases by hand."""
    the_url = url or f"https://hosting-nl.example/{case_id}.jpg"
    row: dict[str, Any] = {
        "id": case_id,
        "url_key": hashlib.sha256(the_url.encode()).digest(),
        "url": the_url,
        "hosting_country": "NL",
        "status": "open",
        "opened_at": T0,
        "updated_at": T0,
        "first_report_id": "r-" + hashlib.sha256(case_id.encode()).hexdigest()[:32],
        "closed_at": None,
        "anonymised_at": None,
    }
    row.update(changes)
    return row


def notice_row(
    notice_id: str,
    *,
    status: str = "sent",
    sent_at: datetime | None = None,
    recipient: str = "abuse@hosting.example.nl",
    created_at: datetime = T0,
    **changes: Any,
) -> dict[str, Any]:
    """A ``takedown_notices`` row (sent at ``sent_at`` unless another status is given)."""
    row: dict[str, Any] = {
        "id": notice_id,
        "contact_key": f"AS{HOSTER_ASN}",
        "recipient": recipient,
        "escalated": False,
        "message_id": f"<{notice_id}@hotline.example.nl>",
        "status": status,
        "attempts": 1 if status != "pending" else 0,
        "next_attempt_at": created_at,
        "created_at": created_at,
        "sent_at": sent_at if status == "sent" else None,
        "error": None,
    }
    row.update(changes)
    return row


def notice_case_row(
    notice_id: str,
    case_id: str,
    *,
    asn: int | None = HOSTER_ASN,
    organisation: str = HOSTER_ORG,
    items: int = 1,
) -> dict[str, Any]:
    return {
        "notice_id": notice_id,
        "case_id": case_id,
        "asn": asn,
        "organisation": organisation,
        "items": items,
    }


def insert(target: Engine | Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` to ``table`` (in a transaction of their own when given an engine)."""
    if not rows:
        return
    if isinstance(target, Engine):
        with target.begin() as conn:
            conn.execute(table.insert(), list(rows))
    else:
        target.execute(table.insert(), list(rows))


def insert_watches(engine: Engine, *rows: dict[str, Any]) -> None:
    insert(engine, schema.takedown_watches, rows)


def item(
    seed: str,
    index: int = 0,
    *,
    holder: str,
    classification: Classification | None = Classification.BASELINE,
    stage: Stage = Stage.ASSESSED,
    **changes: Any,
) -> ItemState:
    """An item of the case of ``seed`` held by ``holder``, assessed ``classification`` (None:
    unassessed), at ``stage``."""
    assessment = Assessment(classification) if classification is not None else None
    return make_state(
        index,
        seed=seed,
        holder=holder,
        stage=stage if assessment is not None else Stage.UNASSESSED,
        assessment=assessment,
        **changes,
    )


def put_case(engine: Engine, case_id: str, items: Sequence[ItemState], **watch: Any) -> None:
    """A case held here with its items' states, watched (online unless ``watch`` says)."""
    with engine.begin() as conn:
        insert(conn, schema.cases, [case_row(case_id)])
        lifecycle_store.open_items(conn, [(case_id, s, False) for s in items], T0)
        insert(conn, schema.takedown_watches, [watch_row(case_id, **watch)])


def put_notices(engine: Engine, *notices: tuple[dict[str, Any], Sequence[dict[str, Any]]]) -> None:
    """``(notice_row(…), [notice_case_row(…), …])`` pairs, written in one transaction."""
    with engine.begin() as conn:
        insert(conn, schema.takedown_notices, [n for n, _ in notices])
        insert(conn, schema.takedown_notice_cases, [c for _, cases in notices for c in cases])


class MovingResolver:
    """DNS whose answers the test changes: ``table`` host → addresses (none: no answer)."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = {host: tuple(addresses) for host, addresses in table.items()}

    def resolve(self, host: str) -> Resolution:
        found = self.table.get(host)
        return Resolution(found, None) if found else Resolution((), "nxdomain")
