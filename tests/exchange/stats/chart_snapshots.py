"""Hand-built snapshots for the chart and export tests (no database: counts written out)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime

from exchange.stats.model import (
    Figure,
    Granularity,
    Histogram,
    Merged,
    Period,
    SeriesKey,
    Snapshot,
    merge,
)

DAY_MS = 86_400_000
AT = datetime(2026, 7, 1, tzinfo=UTC)
HALF_YEAR = Period(date(2026, 1, 1), date(2026, 6, 30), Granularity.MONTH)


def snapshot(
    counts: Mapping[SeriesKey, tuple[int, ...]] | None = None,
    histograms: Mapping[SeriesKey, Histogram] | None = None,
    *,
    member: str = "nl-eokm",
    period: Period = HALF_YEAR,
) -> Snapshot:
    return Snapshot((member,), period, AT, dict(counts or {}), dict(histograms or {}), {})


def spread(total: int, width: int = 6) -> tuple[int, ...]:
    """``total`` over ``width`` buckets, the rest in the first."""
    each = total // width
    return (total - each * (width - 1), *([each] * (width - 1)))


def countries(totals: Mapping[str, int]) -> dict[SeriesKey, tuple[int, ...]]:
    return {(Figure.ITEMS, cc): spread(n) for cc, n in totals.items()}


def removal(in_network_days: list[float], orphan_days: list[float]) -> dict[SeriesKey, Histogram]:
    return {
        (Figure.TO_REMOVAL, "in_network"): Histogram.of(int(d * DAY_MS) for d in in_network_days),
        (Figure.TO_REMOVAL, "orphan"): Histogram.of(int(d * DAY_MS) for d in orphan_days),
    }


def network(*snaps: Snapshot, missing: Mapping[str, str] | None = None) -> Merged:
    return merge(snaps[0].period, list(snaps), dict(missing or {}), AT)
