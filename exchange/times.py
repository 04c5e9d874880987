"""Time as integer microseconds since the Unix epoch: exact, ordered, the same everywhere.

Storage keeps times this way (no time-zone ambiguity, identical on SQLite and PostgreSQL) and the
codec converts wire timestamps with plain integer arithmetic, which is far cheaper than going
through ``utctimetuple``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    # One addition: twice as fast as fromtimestamp + replace, and every stored time read back
    # goes through here.
    try:
        return _EPOCH + timedelta(microseconds=value)
    except OverflowError:
        raise ValueError(f"{value} microseconds since the epoch is out of range") from None
