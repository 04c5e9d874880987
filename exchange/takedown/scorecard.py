"""The hoster scorecard: how each hoster answered the notices, as figures and as a document.

Per hoster (ASN and organisation, as the notices named them): notices sent, cases and items
notified, the time from the first notice to removal (median, p90), and the items still online
with how long since the first notice. Computed from the node's own rows by one set-based pass
(``store/notices.py``); ``ihx hosts`` prints it, and the statistics work takes the same
``HosterScore`` values (or the document).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from exchange.store import notices as store
from exchange.takedown.notice_model import HosterScore


def scorecard(engine: Engine, member: str, now: datetime) -> list[HosterScore]:
    """Every hoster this node has sent a notice about, in (ASN, organisation) order."""
    with engine.connect() as conn:
        return store.scorecard(conn, member, now)


def to_document(scores: list[HosterScore], now: datetime) -> dict[str, Any]:
    """The scorecard as one JSON-ready document (durations in seconds, null when none)."""
    return {
        "at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "hosters": [
            {
                "asn": s.asn,
                "organisation": s.organisation,
                "notices": s.notices,
                "cases": s.cases,
                "items": s.items,
                "removed": s.removed,
                "removal_median_s": s.removal_median_s,
                "removal_p90_s": s.removal_p90_s,
                "still_online": s.still_online,
                "online_median_s": s.online_median_s,
                "online_max_s": s.online_max_s,
            }
            for s in scores
        ],
    }
