"""The statistics' vocabulary: periods, figures, counts and duration histograms — pure.

A node's figures for a period are a ``Snapshot``: per figure and key, one count per period
bucket (day, week, month or year) and, for durations, one histogram over the whole period on
the fixed ``EDGES_MS``. Only counts leave a node — never a URL, a hash, a case or report id —
so a snapshot may be signed and handed to any ``stats:read`` token, and the network's figures
are the plain sum of its members' snapshots (``merge``): exact, and the merge names every
member that did not answer instead of leaving it out.

Each node counts only what it alone is the source of, so the sum never double counts: reports
its analysts submitted (origin), reports it sent and received, and the items it holds
(assessments, actions, takedown times). Copies of other members' events folded here for their
origins do not count again. An item moved to another member is the new holder's from the
take-over on (its items, content, site, assessment and removal counts); the old holder counts
it only as closed by the move (CLOSED "moved", MOVED by the country it went to) and for what
happened there before the move (its dispute, its report to law enforcement), so one moved URL
is one item across the network.

Counts under ``MASK_BELOW`` in a breakdown finer than a country (a hoster, a country crossed
with another key) are shown as "<5" (``shown``): masking is the display's, never the
snapshot's, so merges stay exact sums.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

MASK_BELOW = 5

_DAY_MS = 86_400_000
# Duration buckets (upper edges, ms): fine under a second for delivery, then minutes, hours and
# days; the shares INHOPE publishes (same day, <= 3, <= 7, > 28 days) fall on edges, so they
# are exact. Counts beyond the last edge go to an overflow bucket. Fixed by the protocol: a
# snapshot with other edges is refused, never re-bucketed.
EDGES_MS: tuple[int, ...] = (
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
    60_000, 300_000, 900_000, 1_800_000,
    3_600_000, 2 * 3_600_000, 4 * 3_600_000, 8 * 3_600_000, 12 * 3_600_000,
    _DAY_MS, 2 * _DAY_MS, 3 * _DAY_MS, 4 * _DAY_MS, 5 * _DAY_MS, 7 * _DAY_MS,
    10 * _DAY_MS, 14 * _DAY_MS, 21 * _DAY_MS, 28 * _DAY_MS, 42 * _DAY_MS,
    60 * _DAY_MS, 90 * _DAY_MS, 180 * _DAY_MS, 365 * _DAY_MS,
)  # fmt: skip
SAME_DAY_MS, THREE_DAYS_MS, SEVEN_DAYS_MS, FOUR_WEEKS_MS = (
    _DAY_MS,
    3 * _DAY_MS,
    7 * _DAY_MS,
    28 * _DAY_MS,
)

# Bounds a snapshot from a member must keep (it is hostile until its bytes say otherwise).
MAX_BUCKETS = 3_700  # ten years of days
MAX_SERIES = 20_000
MAX_KEY_LENGTH = 128
MAX_COUNT = 2**53  # exact in JSON and in a float, far above any real figure


class Granularity(enum.StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO weeks, starting Monday
    MONTH = "month"
    YEAR = "year"


class Figure(enum.StrEnum):
    """What a series counts, and what its key is. Counts unless ``is_duration``."""

    # Reports (by the day of the event at this node).
    INTAKE = "intake"  # reports from this node's analysts; key: hosting country ("" untraced)
    SENT = "sent"  # reports sent to a member; key: that member
    RECEIVED = "received"  # reports received from a member; key: that member
    # Items this node holds (by the day the item reached it, its clock start).
    ITEMS = "items"  # key: hosting country
    ITEMS_ORPHAN = "items.orphan"  # key: "in_network" | "orphan"
    ASSESSED = "assessed"  # key: the classification (baseline, national, not_illegal, ...)
    CONTENT = "content"  # key: "new" | "known" (the network's hash index at receipt)
    SITE_TYPE = "site_type"  # key: the report's site type
    AGE_GROUP = "age_group"  # key: the assessment's age group (illegal items)
    GENDER = "gender"  # key: the assessment's gender (illegal items)
    COMMERCIAL = "commercial"  # key: "yes" | "no"
    CLOSED = "closed"  # key: the final stage (removed, unavailable, moved, ...)
    MOVED = "moved"  # key: the country moved to
    DISPUTED = "disputed"  # key: ""
    # Durations (histograms over the period, by the item's clock start).
    TO_LEA = "to_lea"  # clock start -> reported to law enforcement; key: in_network | orphan
    TO_REMOVAL = "to_removal"  # clock start -> removed; key: in_network | orphan
    DELIVERY = "delivery"  # intake -> the peer's receipt; key: ""
    # The hoster scorecard (key: "AS<asn> <organisation>", a breakdown finer than country).
    HOSTER_ITEMS = "hoster.items"
    HOSTER_NOTICES = "hoster.notices"
    HOSTER_REMOVED = "hoster.removed"
    HOSTER_ONLINE = "hoster.online"  # gauge: items still online now
    HOSTER_REMOVAL = "hoster.removal"  # duration: first notice -> removed
    # Gauges: the state when the snapshot was taken, not per bucket.
    BACKLOG = "backlog"  # outbox rows not yet receipted; key: the destination member
    OPEN = "open"  # open items by queue; key: the queue

    @property
    def is_duration(self) -> bool:
        return self in _DURATIONS

    @property
    def is_gauge(self) -> bool:
        return self in _GAUGES

    @property
    def finer_than_country(self) -> bool:
        """Keys below a country's level: small counts are shown masked."""
        return self.value.startswith("hoster.")


_DURATIONS = frozenset({Figure.TO_LEA, Figure.TO_REMOVAL, Figure.DELIVERY, Figure.HOSTER_REMOVAL})
_GAUGES = frozenset({Figure.BACKLOG, Figure.OPEN, Figure.HOSTER_ONLINE})


def period_start(at: date, granularity: Granularity) -> date:
    """The first day of the bucket ``at`` falls in."""
    if granularity is Granularity.DAY:
        return at
    if granularity is Granularity.WEEK:
        return at - timedelta(days=at.weekday())
    if granularity is Granularity.MONTH:
        return at.replace(day=1)
    return at.replace(month=1, day=1)


def _next_start(start: date, granularity: Granularity) -> date:
    if granularity is Granularity.DAY:
        return start + timedelta(days=1)
    if granularity is Granularity.WEEK:
        return start + timedelta(days=7)
    if granularity is Granularity.MONTH:
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return date(start.year + 1, 1, 1)


@dataclass(frozen=True, slots=True)
class Period:
    """Days ``first``..``last`` (inclusive, UTC), counted per ``granularity`` bucket.

    Buckets are whole calendar buckets clipped to the period: a month asked from the 10th
    counts from the 10th, and says so by its start.
    """

    first: date
    last: date
    granularity: Granularity = Granularity.MONTH

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"period ends ({self.last}) before it starts ({self.first})")
        if len(self.starts) > MAX_BUCKETS:
            raise ValueError(f"period has more than {MAX_BUCKETS} buckets; choose a coarser one")

    @property
    def starts(self) -> tuple[date, ...]:
        """Each bucket's first day within the period, in order."""
        out = [self.first]
        nxt = _next_start(period_start(self.first, self.granularity), self.granularity)
        while nxt <= self.last:
            out.append(nxt)
            nxt = _next_start(nxt, self.granularity)
        return tuple(out)

    def bucket_of(self, day: date) -> int | None:
        """The index of the bucket ``day`` counts in, or None outside the period."""
        if not self.first <= day <= self.last:
            return None
        return bisect_right(self.starts, day) - 1


@dataclass(frozen=True, slots=True)
class Histogram:
    """Counts per duration bucket on ``EDGES_MS``: ``counts[i]`` holds durations <= EDGES_MS[i]
    (and above the previous edge); the last count is the overflow beyond the last edge."""

    counts: tuple[int, ...] = field(default=(0,) * (len(EDGES_MS) + 1))

    def __post_init__(self) -> None:
        if len(self.counts) != len(EDGES_MS) + 1:
            raise ValueError(f"a histogram has {len(EDGES_MS) + 1} counts, not {len(self.counts)}")
        if any(c < 0 or c > MAX_COUNT for c in self.counts):
            raise ValueError("a histogram count is negative or out of range")

    @staticmethod
    def bucket(duration_ms: int) -> int:
        """The bucket index a duration counts in (a negative duration counts as zero)."""
        for i, edge in enumerate(EDGES_MS):
            if duration_ms <= edge:
                return i
        return len(EDGES_MS)

    @classmethod
    def of(cls, durations_ms: Iterable[int]) -> Histogram:
        counts = [0] * (len(EDGES_MS) + 1)
        for d in durations_ms:
            counts[cls.bucket(d)] += 1
        return cls(tuple(counts))

    @property
    def total(self) -> int:
        return sum(self.counts)

    def __add__(self, other: Histogram) -> Histogram:
        return Histogram(tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)))

    def quantile_ms(self, q: float) -> int | None:
        """The upper edge of the bucket holding the q-quantile (None when empty; the overflow
        bucket answers with the last edge — "more than" — see ``beyond_last_edge``)."""
        total = self.total
        if total == 0:
            return None
        rank = max(1, -(-int(q * total * 1_000_000) // 1_000_000))  # ceil without float drift
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return EDGES_MS[min(i, len(EDGES_MS) - 1)]
        return EDGES_MS[-1]

    def share_within(self, limit_ms: int) -> float | None:
        """The share of durations <= ``limit_ms``; ``limit_ms`` must be one of ``EDGES_MS``."""
        total = self.total
        if total == 0:
            return None
        return sum(self.counts[: EDGES_MS.index(limit_ms) + 1]) / total

    def share_beyond(self, limit_ms: int) -> float | None:
        within = self.share_within(limit_ms)
        return None if within is None else 1.0 - within


SeriesKey = tuple[Figure, str]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One member's figures for a period, as counted by it (or a merge of several).

    ``counts``: per (figure, key), one count per bucket of ``period`` (count figures).
    ``histograms``: per (figure, key) of a duration figure, over the whole period.
    ``gauges``: per (figure, key) of a gauge figure, the value at ``generated_at``.
    ``members``: whose figures these are (one for a node's own snapshot).
    """

    members: tuple[str, ...]
    period: Period
    generated_at: datetime
    counts: Mapping[SeriesKey, tuple[int, ...]]
    histograms: Mapping[SeriesKey, Histogram]
    gauges: Mapping[SeriesKey, int]

    def __post_init__(self) -> None:
        width = len(self.period.starts)
        for (fig, key), row in self.counts.items():
            if fig.is_duration or fig.is_gauge:
                raise ValueError(f"{fig} is not a count figure")
            if len(row) != width:
                raise ValueError(f"{fig}[{key!r}] has {len(row)} buckets, the period {width}")
        for fig, _ in self.histograms:
            if not fig.is_duration:
                raise ValueError(f"{fig} is not a duration figure")
        for fig, _ in self.gauges:
            if not fig.is_gauge:
                raise ValueError(f"{fig} is not a gauge")
        if len(self.counts) + len(self.histograms) + len(self.gauges) > MAX_SERIES:
            raise ValueError(f"more than {MAX_SERIES} series")

    def total(self, figure: Figure, key: str | None = None) -> int:
        """A count figure summed over the period (over every key when ``key`` is None)."""
        return sum(
            sum(row)
            for (fig, k), row in self.counts.items()
            if fig is figure and (key is None or k == key)
        )

    def by_key(self, figure: Figure) -> dict[str, int]:
        """A count figure's period totals per key (a gauge's values), largest first."""
        if figure.is_gauge:
            pairs = [(k, v) for (f, k), v in self.gauges.items() if f is figure]
        else:
            pairs = [(k, sum(row)) for (f, k), row in self.counts.items() if f is figure]
        return dict(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))

    def histogram(self, figure: Figure, key: str | None = None) -> Histogram:
        """A duration figure's histogram (the sum over every key when ``key`` is None)."""
        out = Histogram()
        for (fig, k), h in self.histograms.items():
            if fig is figure and (key is None or k == key):
                out = out + h
        return out


@dataclass(frozen=True, slots=True)
class Merged:
    """The network's figures: the sum of the snapshots that answered, and who did not."""

    snapshot: Snapshot
    answered: tuple[str, ...]
    missing: Mapping[str, str]  # member -> why (unreachable, refused, tampered, ...)


def merge(
    period: Period,
    snapshots: Sequence[Snapshot],
    missing: Mapping[str, str],
    generated_at: datetime,
) -> Merged:
    """Sum snapshots of the same period, exactly; a member answering twice is refused."""
    counts: dict[SeriesKey, list[int]] = {}
    histograms: dict[SeriesKey, Histogram] = {}
    gauges: dict[SeriesKey, int] = {}
    members: list[str] = []
    for snap in snapshots:
        if snap.period != period:
            raise ValueError(f"{snap.members} answered for {snap.period}, not {period}")
        if dup := set(members) & set(snap.members):
            raise ValueError(f"{sorted(dup)} counted twice")
        members.extend(snap.members)
        for sk, row in snap.counts.items():
            acc = counts.setdefault(sk, [0] * len(row))
            for i, n in enumerate(row):
                acc[i] += n
        for sk, h in snap.histograms.items():
            histograms[sk] = histograms.get(sk, Histogram()) + h
        for sk, v in snap.gauges.items():
            gauges[sk] = gauges.get(sk, 0) + v
    merged = Snapshot(
        members=tuple(sorted(members)),
        period=period,
        generated_at=generated_at.astimezone(UTC),
        counts={sk: tuple(v) for sk, v in counts.items()},
        histograms=histograms,
        gauges=gauges,
    )
    return Merged(merged, tuple(sorted(members)), dict(sorted(missing.items())))


def shown(figure: Figure, count: int) -> str:
    """A count as people see it: "<5" when small in a breakdown finer than a country."""
    if figure.finer_than_country and 0 < count < MASK_BELOW:
        return f"<{MASK_BELOW}"
    return str(count)
