"""Time windows: every time a peer states must be one it could truthfully have stated.

A valid signature proves who sent a time, not that it is sane. A report "received" in year 1 or
9999 would sort first (or last) for ever in every node's hash index and figures, and a poisoned
"first sighting" could never be displaced. So each time a member signs — a report's
``received_at``, its trace's ``traced_at`` and GeoIP build times, a sighting's ``first_seen`` —
must lie in the signer's window: not before 2000-01-01 nor before the member could sign anything
(its earliest key's ``not_before``), and not after the envelope that carries it was signed, plus
the clock skew the node tolerates. Receipt and envelope times have their own checks
(envelope.py); this module is the one rule for the times inside payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# No ihx time can predate the network; far enough back for every hotline's archive.
NETWORK_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    floor: datetime
    ceiling: datetime

    @classmethod
    def for_signer(
        cls, joined_at: datetime | None, signed_at: datetime, skew: timedelta
    ) -> TimeWindow:
        floor = NETWORK_FLOOR if joined_at is None else max(NETWORK_FLOOR, joined_at)
        return cls(floor, signed_at + skew)

    def problem(self, at: datetime, what: str) -> str | None:
        """Why ``at`` is outside the window (naming ``what``), or None when it is inside."""
        if at < self.floor:
            return f"{what} {at.isoformat()} is before {self.floor.isoformat()}"
        if at > self.ceiling:
            return f"{what} {at.isoformat()} is after the envelope was signed"
        return None
