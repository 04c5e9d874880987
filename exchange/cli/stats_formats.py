"""What ``ihx stats`` prints, as data: the figures with who answered, as a JSON document.

``Figures`` is one node's snapshot (local) or the network's merge with the members that did not
answer and why. Durations are summarised the way INHOPE publishes them (``DurationSummary``:
median, p90, shares same day, within 3 and 7 days, beyond 28 days); the histogram's buckets end
on those limits, so the shares are exact and a quantile is "at most <edge>" (or "more than" the
last edge).

Masking is the display's (model.shown): a count under 5 in a breakdown finer than a country
prints as "<5" — in the table, in CSV (``stats/export.statistics_csv``, shared with the web
view) and in JSON alike. JSON carries the same masked values as strings: a file is passed on as
easily as a screen, and exact figures are a matter for the signed snapshots themselves, not for
a report. Masking one cell is not enough where the cells add up in print: for figures finer
than a country, JSON gives a key's period total only (no per-bucket counts, whose unmasked
cells would give the masked one away by subtraction from the total), and the table prints no
total, share or "more" row that includes a masked cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exchange.cli.common import format_time
from exchange.stats.model import (
    EDGES_MS,
    FOUR_WEEKS_MS,
    MASK_BELOW,
    SAME_DAY_MS,
    SEVEN_DAYS_MS,
    THREE_DAYS_MS,
    Figure,
    Histogram,
    Snapshot,
    shown,
)

__all__ = ["DurationSummary", "Figures", "json_document", "moved_share", "summarise"]


@dataclass(frozen=True, slots=True)
class Figures:
    """Figures to print: whose they are, and (network) who did not answer and why."""

    snapshot: Snapshot
    network: bool = False
    missing: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DurationSummary:
    """A histogram as people read it; quantiles are upper bucket edges in ms (None: empty)."""

    n: int
    median_ms: int | None
    p90_ms: int | None
    median_beyond: bool  # the median lies beyond the last edge: "more than"
    p90_beyond: bool
    same_day: float | None
    within_3d: float | None
    within_7d: float | None
    beyond_28d: float | None


def _quantile(h: Histogram, q: float) -> tuple[int | None, bool]:
    value = h.quantile_ms(q)
    if value is None:
        return None, False
    rank = max(1, -(-int(q * h.total * 1_000_000) // 1_000_000))  # as Histogram.quantile_ms
    return value, sum(h.counts[: len(EDGES_MS)]) < rank


def summarise(h: Histogram) -> DurationSummary:
    median, median_beyond = _quantile(h, 0.5)
    p90, p90_beyond = _quantile(h, 0.9)
    return DurationSummary(
        n=h.total,
        median_ms=median,
        p90_ms=p90,
        median_beyond=median_beyond,
        p90_beyond=p90_beyond,
        same_day=h.share_within(SAME_DAY_MS),
        within_3d=h.share_within(THREE_DAYS_MS),
        within_7d=h.share_within(SEVEN_DAYS_MS),
        beyond_28d=h.share_beyond(FOUR_WEEKS_MS),
    )


def _masked(figure: Figure, count: int) -> int | str:
    text = shown(figure, count)
    return count if text == str(count) else text


def _small(figure: Figure, count: int) -> bool:
    return figure.finer_than_country and 0 < count < MASK_BELOW


def moved_share(snap: Snapshot) -> tuple[int, int, float | None]:
    """Items moved to another country, items held, and the share moved (None: none held)."""
    moved, held = snap.total(Figure.MOVED), snap.total(Figure.ITEMS)
    return moved, held, (moved / held if held else None)


# -- JSON -------------------------------------------------------------------------------------


def json_document(figures: Figures) -> dict[str, Any]:
    """The snapshot as one document: period, members, counts, durations and gauges."""
    snap = figures.snapshot
    return {
        "period": {
            "first": snap.period.first.isoformat(),
            "last": snap.period.last.isoformat(),
            "granularity": snap.period.granularity.value,
            "buckets": [s.isoformat() for s in snap.period.starts],
        },
        "generated_at": format_time(snap.generated_at),
        "scope": "network" if figures.network else "node",
        "members": {"answered": list(snap.members), "missing": dict(figures.missing)},
        "masked_below": MASK_BELOW,
        "edges_ms": list(EDGES_MS),
        "counts": [_count_json(fig, key, row) for (fig, key), row in sorted(snap.counts.items())],
        "moved": dict(zip(("moved", "items", "share"), moved_share(snap), strict=True)),
        "durations": [
            _duration_json(fig, key, h) for (fig, key), h in sorted(snap.histograms.items())
        ],
        "gauges": [
            {"figure": fig.value, "key": key, "value": _masked(fig, value)}
            for (fig, key), value in sorted(snap.gauges.items())
        ],
    }


def _count_json(figure: Figure, key: str, row: tuple[int, ...]) -> dict[str, Any]:
    total = _masked(figure, sum(row))
    if figure.finer_than_country:  # the period total only: see the module's docstring
        return {"figure": figure.value, "key": key, "total": total}
    return {"figure": figure.value, "key": key, "counts": list(row), "total": total}


def _duration_json(figure: Figure, key: str, h: Histogram) -> dict[str, Any]:
    if _small(figure, h.total):  # a few durations of one hoster would be its cases' times
        return {"figure": figure.value, "key": key, "n": shown(figure, h.total)}
    s = summarise(h)
    return {
        "figure": figure.value,
        "key": key,
        "n": s.n,
        **({} if figure.finer_than_country else {"counts": list(h.counts)}),
        "median_ms": s.median_ms,
        "median_beyond_last_edge": s.median_beyond,
        "p90_ms": s.p90_ms,
        "p90_beyond_last_edge": s.p90_beyond,
        "share_same_day": s.same_day,
        "share_within_3d": s.within_3d,
        "share_within_7d": s.within_7d,
        "share_beyond_28d": s.beyond_28d,
    }
