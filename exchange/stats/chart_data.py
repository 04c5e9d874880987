"""What each chart shows, taken out of a ``Snapshot`` — pure, no matplotlib.

The drawing (``chart_draw``) only lays out what this module hands it, so every number a chart
shows is computed (and tested) here: bars with their labels and shares, the cumulative shares of
a duration histogram at each edge, the volume per bucket, the hoster scorecard's rows with their
counts masked as the display must (``model.shown``).

Keys come from members' snapshots and are hostile: ``label`` keeps them printable, short and
(the renderer never parses mathtext); ``gid`` turns them into safe, unique SVG ids.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from exchange.stats.model import (
    EDGES_MS,
    MASK_BELOW,
    Figure,
    Histogram,
    Merged,
    Snapshot,
    shown,
)

DAY_MS = 86_400_000
MAX_LABEL = 40
OTHER = "other"
UNTRACED = "untraced"
# Where the overflow bucket (beyond the last edge) is drawn on a duration axis: one step on.
OVERFLOW_MS = 2 * EDGES_MS[-1]
# The shares INHOPE publishes, marked on every time-to chart: (id, limit, label).
MARKERS: tuple[tuple[str, int, str], ...] = (
    ("1d", DAY_MS, "same day"),
    ("3d", 3 * DAY_MS, "3 days"),
    ("7d", 7 * DAY_MS, "7 days"),
    ("28d", 28 * DAY_MS, "28 days"),
)


class Chart(enum.StrEnum):
    """The charts, named as their files are (``countries.svg``)."""

    COUNTRIES = "countries"  # hosting countries, top 15 + other, count and share
    TO_REMOVAL = "to_removal"  # time to removal, CDF, in-network vs orphan
    TO_LEA = "to_lea"  # time to law enforcement, CDF, in-network vs orphan
    VOLUME = "volume"  # reports and items per bucket of the period
    ASSESSED = "assessed"  # items per classification
    SITE_TYPES = "site_types"
    AGE_GROUPS = "age_groups"
    HOSTERS = "hosters"  # the hoster scorecard


HEADINGS: Mapping[Chart, str] = {
    Chart.COUNTRIES: "Hosting countries",
    Chart.TO_REMOVAL: "Time to removal",
    Chart.TO_LEA: "Time to law enforcement",
    Chart.VOLUME: "Volume",
    Chart.ASSESSED: "Assessments",
    Chart.SITE_TYPES: "Site types",
    Chart.AGE_GROUPS: "Age groups (illegal items)",
    Chart.HOSTERS: "Hoster scorecard (top hosters by items)",
}

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


def label(key: str) -> str:
    """A key as a chart shows it: printable, at most ``MAX_LABEL`` characters."""
    text = "".join(ch if ch.isprintable() else "?" for ch in key)
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "…"
    return text or UNTRACED


def gid(prefix: str, key: str) -> str:
    """A safe SVG id for a key's artist: ``bar-NL``, ``series-in_network``."""
    return f"{prefix}-{_UNSAFE_ID.sub('_', key) or UNTRACED}"


def unique_gids(prefix: str, keys: Iterable[str]) -> list[str]:
    """``gid`` for each key, made unique (two hostile keys may sanitise alike)."""
    seen: set[str] = set()
    out: list[str] = []
    for key in keys:
        base = candidate = gid(prefix, key)
        n = 1
        while candidate in seen:
            n += 1
            candidate = f"{base}.{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


# -- titles -----------------------------------------------------------------------------------


def unwrap(source: Snapshot | Merged) -> tuple[Snapshot, Merged | None]:
    if isinstance(source, Merged):
        return source.snapshot, source
    return source, None


def whose(source: Snapshot | Merged) -> str:
    """Whose figures: ``member: NL`` or ``network: 3 members, missing: de-eco (unreachable)``."""
    snap, merged = unwrap(source)
    if merged is None:
        names = ", ".join(label(m) for m in snap.members[:5])
        more = f" and {len(snap.members) - 5} more" if len(snap.members) > 5 else ""
        return f"member: {names}{more}" if len(snap.members) == 1 else f"members: {names}{more}"
    n = len(merged.answered)
    head = f"network: {n} member{'s' if n != 1 else ''}"
    if not merged.missing:
        return f"{head}, none missing"
    missing = [f"{label(m)} ({label(why)})" for m, why in list(merged.missing.items())[:4]]
    rest = len(merged.missing) - len(missing)
    return f"{head}, missing: {', '.join(missing)}" + (f" and {rest} more" if rest else "")


def period_text(snap: Snapshot) -> str:
    p = snap.period
    return f"{p.first.isoformat()} to {p.last.isoformat()}, by {p.granularity.value}"


def title(what: str, source: Snapshot | Merged) -> str:
    snap, _ = unwrap(source)
    return f"{what}, {period_text(snap)}\n{whose(source)}"


def heading(chart: Chart, source: Snapshot | Merged) -> str:
    """A chart's title: what it shows, the period, whose figures (two lines)."""
    return title(HEADINGS[chart], source)


# -- bars -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    key: str  # the snapshot's key ("other" for the rest)
    label: str
    count: int
    share: float  # of the figure's total
    in_network: bool | None = None  # None when unknown (or "other")


def bars(
    snap: Snapshot,
    figure: Figure,
    *,
    top: int = 15,
    member_countries: Collection[str] | None = None,
) -> list[Bar]:
    """A count figure's keys, largest first: the ``top`` largest, then the rest as "other"."""
    totals = {k: v for k, v in snap.by_key(figure).items() if v > 0}
    grand = sum(totals.values())
    if grand == 0:
        return []
    items = list(totals.items())
    head, rest = items[:top], items[top:]
    out = [
        Bar(
            k,
            label(k),
            v,
            v / grand,
            None if member_countries is None or not k else k in member_countries,
        )
        for k, v in head
    ]
    if rest:
        other = sum(v for _, v in rest)
        out.append(Bar(OTHER, f"{OTHER} ({len(rest)})", other, other / grand))
    return out


# -- durations --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cdf:
    """A histogram's cumulative shares: ``shares[i]`` of durations <= ``xs_ms[i]``."""

    key: str
    total: int
    xs_ms: tuple[int, ...]
    shares: tuple[float, ...]
    at_markers: Mapping[str, float]  # marker id -> share within it
    median_ms: int | None
    p90_ms: int | None


def cdf(key: str, hist: Histogram) -> Cdf | None:
    """The CDF of a histogram (None when empty); the overflow bucket sits at ``OVERFLOW_MS``."""
    total = hist.total
    if total == 0:
        return None
    xs = (*EDGES_MS, OVERFLOW_MS)
    shares: list[float] = []
    seen = 0
    for c in hist.counts:
        seen += c
        shares.append(seen / total)
    markers = {mid: hist.share_within(limit) or 0.0 for mid, limit, _ in MARKERS}
    return Cdf(key, total, xs, tuple(shares), markers, hist.quantile_ms(0.5), hist.quantile_ms(0.9))


def cdfs(snap: Snapshot, figure: Figure) -> list[Cdf]:
    """One CDF per key of a duration figure (in_network first, then orphan, then any other)."""
    keys = sorted({k for f, k in snap.histograms if f is figure}, key=_split_order)
    out = [cdf(k, snap.histogram(figure, k)) for k in keys]
    return [c for c in out if c is not None]


def _split_order(key: str) -> tuple[int, str]:
    return ({"in_network": 0, "orphan": 1}.get(key, 2), key)


def duration_text(ms: int | None) -> str:
    """A duration as people read it: ``250 ms``, ``30 s``, ``4 h``, ``3 d``."""
    if ms is None:
        return "–"
    for unit, size in (("d", DAY_MS), ("h", 3_600_000), ("min", 60_000), ("s", 1_000)):
        if ms >= size:
            value = ms / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{ms} ms"


# -- volume -----------------------------------------------------------------------------------

VOLUME_FIGURES = (Figure.INTAKE, Figure.SENT, Figure.RECEIVED, Figure.ITEMS)


@dataclass(frozen=True, slots=True)
class Volume:
    starts: tuple[date, ...]
    series: Mapping[Figure, tuple[int, ...]]  # only figures with a count > 0


def volume(snap: Snapshot) -> Volume:
    width = len(snap.period.starts)
    series: dict[Figure, tuple[int, ...]] = {}
    for fig in VOLUME_FIGURES:
        acc = [0] * width
        for (f, _), row in snap.counts.items():
            if f is fig:
                for i, n in enumerate(row):
                    acc[i] += n
        if any(acc):
            series[fig] = tuple(acc)
    return Volume(snap.period.starts, series)


# -- the hoster scorecard ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HosterRow:
    key: str
    label: str
    items: int
    notices: int
    removed: int
    median_ms: int | None

    def shown(self, figure: Figure) -> str:
        value = {
            Figure.HOSTER_ITEMS: self.items,
            Figure.HOSTER_NOTICES: self.notices,
            Figure.HOSTER_REMOVED: self.removed,
        }[figure]
        return shown(figure, value)

    @staticmethod
    def drawn(count: int) -> int:
        """The bar length drawn for a count: a masked count never shows its size."""
        return MASK_BELOW if 0 < count < MASK_BELOW else count


def hosters(snap: Snapshot, *, top: int = 12) -> list[HosterRow]:
    """The top hosters by items held, with notices, removals and the median time to removal.

    The median is left out (None) for a hoster with fewer than MASK_BELOW removals: a median
    of one or two removal times is those times.
    """
    items = {k: v for k, v in snap.by_key(Figure.HOSTER_ITEMS).items() if v > 0}
    notices = snap.by_key(Figure.HOSTER_NOTICES)
    removed = snap.by_key(Figure.HOSTER_REMOVED)
    return [
        HosterRow(
            k,
            label(k),
            v,
            notices.get(k, 0),
            removed.get(k, 0),
            _median(snap, k, removed.get(k, 0)),
        )
        for k, v in list(items.items())[:top]
    ]


def _median(snap: Snapshot, key: str, removed: int) -> int | None:
    if removed < MASK_BELOW:
        return None
    return snap.histogram(Figure.HOSTER_REMOVAL, key).quantile_ms(0.5)
