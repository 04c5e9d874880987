"""The whole-second clock the CLI stamps people-facing times with."""

from __future__ import annotations

from datetime import UTC

from common.clock import system_clock, whole_second_clock


def test_whole_second_clock_is_aware_utc_without_microseconds() -> None:
    before = system_clock().replace(microsecond=0)
    now = whole_second_clock()
    assert now.tzinfo is UTC
    assert now.microsecond == 0
    assert before <= now <= system_clock()
