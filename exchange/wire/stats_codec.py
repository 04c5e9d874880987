"""Statistics ⇄ protobuf (statistics.proto): the period asked, and ``Snapshot`` ⇄ its body.

Encoding is canonical — series sorted by (figure, key), deterministic serialization — so the
bytes a node signs are a function of its figures alone. Decoding treats the body as hostile
(it comes from another member): ``snapshot_from_body`` checks, in order, the version, that the
member and the period are exactly the ones asked, the protocol's duration edges, the time it
was generated (within the clock-skew window of ours), then every series — a figure of the closed
set and of the right kind (count, duration, gauge), a bounded printable key, one count per
bucket (or per edge and overflow), every integer in range, no (figure, key) twice, at most
``MAX_SERIES`` in all. The first failure raises ``StatisticsRefused`` naming the field and what
was wrong; a body is merged whole or not at all.

Each member's counts are capped at ``MAX_MEMBER_COUNT`` (far above any real figure) so that the
sum of up to ``MAX_MEMBERS`` members stays within the model's ``MAX_COUNT`` — a hostile member
cannot make the network's merge overflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from exchange.errors import ExchangeError, StatisticsRefused
from exchange.stats.asked import parse_period, period_text
from exchange.stats.model import (
    EDGES_MS,
    MAX_COUNT,
    MAX_KEY_LENGTH,
    MAX_SERIES,
    Figure,
    Histogram,
    Period,
    SeriesKey,
    Snapshot,
)
from exchange.wire.codec import from_timestamp, timestamp
from ihx.v1 import statistics_pb2 as spb

__all__ = [
    "MAX_MEMBERS",
    "MAX_MEMBER_COUNT",
    "VERSION",
    "body_from_snapshot",
    "period_from_request",
    "request_from_period",
    "snapshot_from_body",
]

VERSION = 1
MAX_MEMBERS = 8192  # members whose counts one merge may sum
MAX_MEMBER_COUNT = MAX_COUNT // MAX_MEMBERS  # 2**40: ~10**12 per count, per member
_FIGURES = {f.value: f for f in Figure}


# -- the request ------------------------------------------------------------------------------


def request_from_period(period: Period) -> spb.StatisticsRequest:
    first, last, by = period_text(period)
    return spb.StatisticsRequest(first_day=first, last_day=last, granularity=by)


def period_from_request(request: spb.StatisticsRequest) -> Period:
    """The period asked; ``InvalidStatisticsRequest`` naming the field when it is not one."""
    return parse_period(request.first_day, request.last_day, request.granularity)


# -- encoding ---------------------------------------------------------------------------------


def body_from_snapshot(snapshot: Snapshot) -> spb.StatisticsBody:
    """The body of one member's own snapshot (a merge has no single signer: refused)."""
    if len(snapshot.members) != 1:
        raise ValueError(f"a signed body is one member's, not {list(snapshot.members)}")
    first, last, by = period_text(snapshot.period)
    body = spb.StatisticsBody(
        version=VERSION,
        member=snapshot.members[0],
        first_day=first,
        last_day=last,
        granularity=by,
        generated_at=timestamp(snapshot.generated_at),
        edges_ms=EDGES_MS,
    )
    for (fig, key), row in sorted(snapshot.counts.items()):
        body.counts.append(spb.CountSeries(figure=fig.value, key=key, counts=row))
    for (fig, key), hist in sorted(snapshot.histograms.items()):
        body.durations.append(spb.DurationSeries(figure=fig.value, key=key, counts=hist.counts))
    for (fig, key), value in sorted(snapshot.gauges.items()):
        body.gauges.append(spb.Gauge(figure=fig.value, key=key, value=value))
    return body


# -- decoding (hostile) -----------------------------------------------------------------------


def _refuse(message: str, code: str) -> StatisticsRefused:
    return StatisticsRefused(message, code=code)


def snapshot_from_body(
    body: spb.StatisticsBody,
    *,
    member: str,
    period: Period,
    now: datetime,
    max_skew: timedelta,
) -> Snapshot:
    """``member``'s snapshot of ``period`` from its body, or ``StatisticsRefused``."""
    _check_header(body, member, period)
    generated_at = _generated_at(body, now, max_skew)
    total = len(body.counts) + len(body.durations) + len(body.gauges)
    if total > MAX_SERIES:
        raise _refuse(f"{total} series, at most {MAX_SERIES}", "stats-series")
    width = len(period.starts)
    seen: set[SeriesKey] = set()
    counts = {
        _series_key("counts", i, s.figure, s.key, "count", seen): _counts(
            f"counts[{i}]", s.counts, width, "buckets of the period"
        )
        for i, s in enumerate(body.counts)
    }
    histograms = {
        _series_key("durations", i, s.figure, s.key, "duration", seen): Histogram(
            _counts(f"durations[{i}]", s.counts, len(EDGES_MS) + 1, "duration buckets")
        )
        for i, s in enumerate(body.durations)
    }
    gauges = {
        _series_key("gauges", i, g.figure, g.key, "gauge", seen): _count(
            f"gauges[{i}].value", g.value
        )
        for i, g in enumerate(body.gauges)
    }
    try:
        return Snapshot((member,), period, generated_at, counts, histograms, gauges)
    except ValueError as error:  # every rule of Snapshot is checked above; kept as a backstop
        raise _refuse(str(error), "stats-body") from None


def _check_header(body: spb.StatisticsBody, member: str, period: Period) -> None:
    if body.version != VERSION:
        raise _refuse(f"version {body.version}, this node speaks {VERSION}", "stats-version")
    if body.member != member:
        raise _refuse(
            f"the body counts member {body.member[:64]!r}, we asked {member!r}", "stats-member"
        )
    said = (body.first_day, body.last_day, body.granularity)
    if said != period_text(period):
        shown = " ".join(part[:16] for part in said)
        raise _refuse(
            f"the body counts {shown!r}, we asked {' '.join(period_text(period))!r}",
            "stats-period",
        )
    if tuple(body.edges_ms) != EDGES_MS:
        raise _refuse(
            f"duration edges differ from the protocol's ({len(body.edges_ms)} edges, "
            f"{len(EDGES_MS)} expected): a snapshot is never re-bucketed",
            "stats-edges",
        )


def _generated_at(body: spb.StatisticsBody, now: datetime, max_skew: timedelta) -> datetime:
    if not body.HasField("generated_at"):
        raise _refuse("generated_at is missing", "stats-time")
    try:
        at = from_timestamp(body.generated_at)
    except ExchangeError as error:
        raise _refuse(f"generated_at: {error.message}", "stats-time") from None
    if not now - max_skew <= at <= now + max_skew:
        raise _refuse(
            f"generated_at {at.isoformat()} is more than {max_skew.total_seconds():g} s "
            f"from our clock ({now.isoformat()})",
            "stats-time",
        )
    return at


def _series_key(
    field: str, i: int, figure: str, key: str, kind: str, seen: set[SeriesKey]
) -> SeriesKey:
    """The (figure, key) of ``field[i]``: a known figure of ``kind``, a sane key, not seen."""
    where = f"{field}[{i}]"
    fig = _FIGURES.get(figure)
    if fig is None:
        raise _refuse(f"{where}.figure: {figure[:40]!r} is not a figure", "stats-figure")
    actual = "duration" if fig.is_duration else "gauge" if fig.is_gauge else "count"
    if actual != kind:
        raise _refuse(f"{where}.figure: {fig.value} is a {actual}, not a {kind}", "stats-figure")
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise _refuse(
            f"{where}.key: at most {MAX_KEY_LENGTH} printable characters "
            f"(got {len(key)}: {key[:40]!r})",
            "stats-key",
        )
    if (fig, key) in seen:
        raise _refuse(f"{where}: {fig.value} {key!r} appears twice", "stats-duplicate")
    seen.add((fig, key))
    return fig, key


def _counts(where: str, values: Sequence[int], width: int, what: str) -> tuple[int, ...]:
    if len(values) != width:
        raise _refuse(
            f"{where}.counts: {len(values)} counts, the {what} are {width}", "stats-width"
        )
    row = tuple(values)
    if row and max(row) > MAX_MEMBER_COUNT:  # max() in C: the common case costs no loop here
        j = next(j for j, value in enumerate(row) if value > MAX_MEMBER_COUNT)
        _count(f"{where}.counts[{j}]", row[j])
    return row


def _count(where: str, value: int) -> int:
    if value > MAX_MEMBER_COUNT:
        raise _refuse(f"{where}: {value} is above {MAX_MEMBER_COUNT}", "stats-count")
    return value
