"""The clock type shared by every part that needs the time, and the real one.

Time is injected, never read from a global: a component takes a ``Clock`` (a callable returning
an aware datetime) so tests can control it. ``system_clock`` is the production wiring: aware UTC
now. Aware datetimes only — a naive one's ``timestamp()`` is local time, a silent hour-sized error.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "system_clock", "whole_second_clock"]

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The real time (aware, UTC), for production wiring; tests inject their own clock."""
    return datetime.now(UTC)


def whole_second_clock() -> datetime:
    """The real time to the whole second, for times people read and write back.

    Manifest ``issued_at``/validity times, certificate validity and token issue times are shown
    to and typed by people (``ihx network``, ``ihx tls``, ``ihx token``); microseconds there add
    nothing but noise, so the CLI stamps them with this clock.
    """
    return system_clock().replace(microsecond=0)
