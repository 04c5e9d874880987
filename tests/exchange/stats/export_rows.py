"""Cases and routing-log entries on a real database for the export tests.

``put_held`` writes cases with item states through the store's own functions (as the lifecycle
would have left them; ``tests.exchange.store.held_cases``); ``put_many`` opens thousands of
bare cases in one transaction; ``put_log`` appends a hash-chained log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Engine

from exchange.domain import Outcome
from exchange.routing_log import GENESIS, LogChain, LogEntry
from exchange.store import cases as case_store
from exchange.store import routing_log as log_store
from tests.exchange.factories import T0, make_report
from tests.exchange.lifecycle.factories import case_id


def put_many(engine: Engine, n: int, *, prefix: str = "bulk") -> list[str]:
    """``n`` open cases (no items), one transaction; their ids, sorted."""
    opened = []
    for i in range(n):
        url = f"https://host-{prefix}.example/{i}.jpg"
        key = hashlib.sha256(url.encode()).digest()
        report = make_report(url=url, canonical=False, url_key=key, report_id=_rid(prefix, i))
        opened.append((case_id(f"{prefix}-{i}"), report))
    with engine.begin() as conn:
        case_store.open_cases(conn, opened, T0)
    return sorted(cid for cid, _ in opened)


def _rid(prefix: str, i: int) -> str:
    return "r-" + hashlib.sha256(f"{prefix}:{i}".encode()).hexdigest()[:32]


def link_reports(engine: Engine, cid: str, members: Sequence[str]) -> None:
    """Reports from ``members`` linked to the case (one each)."""
    with engine.begin() as conn:
        case_store.link(
            conn,
            [
                case_store.CaseLink(cid, _rid(cid, n), m, Outcome.ACCEPTED, 1, T0)
                for n, m in enumerate(members)
            ],
        )


def put_log(engine: Engine, specs: Sequence[dict[str, object]]) -> list[LogEntry]:
    """Log entries (kind, member, country, report_id, detail per spec), a minute apart."""
    chain = LogChain(0, GENESIS)
    entries = [
        chain.append(
            T0 + timedelta(minutes=i),
            str(s.get("kind", "intake")),
            report_id=s.get("report_id"),  # type: ignore[arg-type]
            member=s.get("member"),  # type: ignore[arg-type]
            country=s.get("country"),  # type: ignore[arg-type]
            detail=s.get("detail", {}),  # type: ignore[arg-type]
        )
        for i, s in enumerate(specs)
    ]
    with engine.begin() as conn:
        for start in range(0, len(entries), 5000):
            log_store.append(conn, [e.as_row() for e in entries[start : start + 5000]])
    return entries
