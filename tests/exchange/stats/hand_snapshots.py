"""Hand-built snapshots for the federation's tests: every kind of series, numbers from a seed.

``hand_snapshot(member, period, seed)`` gives a member's own snapshot with count series (one
per bucket), duration histograms and gauges, each number derived from the seed so that two
members' snapshots differ and their sum is known without the engine. A hoster key carries a
count under 5 in a bucket, so masking has something to mask.
"""

from __future__ import annotations

from datetime import date, datetime

from exchange.stats.model import Figure, Granularity, Histogram, Period, Snapshot
from tests.exchange.factories import T0

PERIOD = Period(date(2026, 1, 1), date(2026, 3, 31), Granularity.MONTH)
"""Three months, three buckets; T0 (2026-03-01) lies in the last."""


def _row(period: Period, base: int) -> tuple[int, ...]:
    return tuple(base + 3 * i for i in range(len(period.starts)))


def hand_snapshot(
    member: str,
    period: Period = PERIOD,
    *,
    seed: int = 1,
    generated_at: datetime = T0,
) -> Snapshot:
    """``member``'s own snapshot: counts, histograms and gauges that depend on ``seed``."""
    counts = {
        (Figure.INTAKE, "NL"): _row(period, 10 * seed),
        (Figure.INTAKE, "JP"): _row(period, seed),
        (Figure.SENT, "de-eco"): _row(period, 2 * seed),
        (Figure.ASSESSED, "baseline"): _row(period, 5 * seed),
        (Figure.HOSTER_ITEMS, f"AS{seed} Hoster {seed} B.V."): _row(period, 2),
        (Figure.DISPUTED, ""): _row(period, 0),
    }
    removal = [3_600_000 * seed, 2 * 86_400_000, 10 * 86_400_000, 40 * 86_400_000, 400 * 86_400_000]
    histograms = {
        (Figure.TO_REMOVAL, "in_network"): Histogram.of(removal),
        (Figure.TO_REMOVAL, "orphan"): Histogram.of([30 * 86_400_000] * seed),
        (Figure.TO_LEA, "in_network"): Histogram.of([60_000, 7_200_000 * seed]),
        (Figure.DELIVERY, ""): Histogram.of([40, 80, 900 * seed]),
    }
    gauges = {(Figure.BACKLOG, "de-eco"): seed, (Figure.OPEN, "unassessed"): 4 * seed}
    return Snapshot((member,), period, generated_at, counts, histograms, gauges)
