"""What one item or one routing-log entry contributes to the node's figures — pure.

The rollups (``store/stats.py``) hold counts per (figure, key, day, bucket); every count comes
from a *contribution*: one fact of one item or log entry. An item's contributions change as it
is assessed, actioned and closed, so the folder keeps each item's ``ItemFacts`` as last counted
and applies the difference between the old facts' contributions and the new ones: folding an
item twice adds nothing, and a direct recomputation is the sum of every item's contributions.

Days are whole days since the Unix epoch (UTC); ``bucket`` is a duration's histogram bucket on
``EDGES_MS``, or ``COUNT`` for a plain count.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from exchange.domain import Classification, LogKind
from exchange.lifecycle.model import CLOSED_STAGES, Queue, Stage
from exchange.stats.model import MAX_KEY_LENGTH, Figure, Histogram

COUNT = -1  # the bucket of a count (durations use 0..len(EDGES_MS))
EPOCH = date(1970, 1, 1)
DAY_US = 86_400_000_000  # a day in microseconds, the unit times are stored in

Contribution = tuple[Figure, str, int, int]  # figure, key, day, bucket

_ILLEGAL = frozenset({str(Classification.BASELINE), str(Classification.NATIONAL)})
_CLOSED = frozenset(str(s) for s in CLOSED_STAGES)
_MOVED = str(Stage.MOVED)
_SEP = "\x1f"  # never in a stored enum value, country code or site type


def day_of(at: datetime) -> int:
    """The day number (since 1970-01-01, UTC) of an aware time."""
    delta = at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days


def day_number(d: date) -> int:
    return (d - EPOCH).days


def duration_bucket(start: datetime, end: datetime) -> int:
    ms = (end - start) // _MS
    return Histogram.bucket(max(ms, 0))


_MS = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _key(text: str | None) -> str:
    return (text or "")[:MAX_KEY_LENGTH]


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What the figures count of one item this node holds (its clock start's day for all)."""

    day: int
    country: str
    orphaned: bool
    known: bool
    site_type: str
    commercial: bool
    classification: str
    age_group: str
    gender: str
    stage: str
    moved_to: str
    disputed: bool
    lea_bucket: int  # -1: not reported to law enforcement
    removal_bucket: int  # -1: not removed

    def encode(self) -> str:
        # Spelled out: dataclasses.astuple deep-copies, and cost more than the rest of a fold.
        return _SEP.join(
            (
                str(self.day), self.country, _flag(self.orphaned), _flag(self.known),
                self.site_type, _flag(self.commercial), self.classification, self.age_group,
                self.gender, self.stage, self.moved_to, _flag(self.disputed),
                str(self.lea_bucket), str(self.removal_bucket),
            )
        )  # fmt: skip

    @classmethod
    def decode(cls, text: str) -> ItemFacts:
        p = text.split(_SEP)
        if len(p) != 14:
            raise ValueError(f"stored item facts have {len(p)} fields, not 14")
        return cls(
            int(p[0]), p[1], p[2] == "1", p[3] == "1", p[4], p[5] == "1", p[6], p[7], p[8],
            p[9], p[10], p[11] == "1", int(p[12]), int(p[13]),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ItemRow:
    """An item state as the folder reads it, with its report's and case's facts."""

    clock_started: datetime | None
    country: str | None
    orphaned: bool
    known_member: str | None
    site_type: str
    commercial: bool
    classification: str | None
    age_group: str | None
    gender: str | None
    stage: str
    moved_to_country: str | None
    disputed: bool
    lea_at: datetime | None
    closed_at: datetime | None


def item_facts(r: ItemRow) -> ItemFacts | None:
    """The facts of an item held here (None for an item without a clock: not counted)."""
    if r.clock_started is None:
        return None
    start = r.clock_started
    removed = r.stage == str(Stage.REMOVED) and r.closed_at is not None
    return ItemFacts(
        day=day_of(start),
        country=_key(r.country),
        orphaned=bool(r.orphaned),
        known=r.known_member is not None,
        site_type=_key(r.site_type),
        commercial=bool(r.commercial),
        classification=_key(r.classification),
        age_group=_key(r.age_group),
        gender=_key(r.gender),
        stage=r.stage,
        moved_to=_key(r.moved_to_country) if r.stage == str(Stage.MOVED) else "",
        disputed=bool(r.disputed),
        lea_bucket=duration_bucket(start, r.lea_at) if r.lea_at is not None else -1,
        removal_bucket=duration_bucket(start, r.closed_at) if removed and r.closed_at else -1,
    )


def item_contributions(f: ItemFacts | None) -> list[Contribution]:
    """Every count one item's facts add (an empty list for None)."""
    if f is None:
        return []
    if f.stage == _MOVED:
        return _moved_away(f)
    d = f.day
    where = "orphan" if f.orphaned else "in_network"
    out: list[Contribution] = [
        (Figure.ITEMS, f.country, d, COUNT),
        (Figure.ITEMS_ORPHAN, where, d, COUNT),
        (Figure.CONTENT, "known" if f.known else "new", d, COUNT),
        (Figure.SITE_TYPE, f.site_type, d, COUNT),
        (Figure.COMMERCIAL, "yes" if f.commercial else "no", d, COUNT),
    ]
    if f.classification:
        out.append((Figure.ASSESSED, f.classification, d, COUNT))
        if f.classification in _ILLEGAL:
            out.append((Figure.AGE_GROUP, f.age_group, d, COUNT))
            out.append((Figure.GENDER, f.gender, d, COUNT))
    if f.stage in _CLOSED:
        out.append((Figure.CLOSED, f.stage, d, COUNT))
    if f.disputed:
        out.append((Figure.DISPUTED, "", d, COUNT))
    if f.lea_bucket >= 0:
        out.append((Figure.TO_LEA, where, d, f.lea_bucket))
    if f.removal_bucket >= 0:
        out.append((Figure.TO_REMOVAL, where, d, f.removal_bucket))
    out.extend(_open_work(f))
    return out


def _moved_away(f: ItemFacts) -> list[Contribution]:
    """A moved item is the new holder's to count (it takes it over with its own state): here
    it counts only as closed by the move, where it went, and what happened here before it
    went — its dispute and its report to law enforcement. Counting its items, content, site
    and assessment here too would count one URL twice across the network (and under the
    country it was wrongly placed in)."""
    d = f.day
    out: list[Contribution] = [
        (Figure.CLOSED, f.stage, d, COUNT),
        (Figure.MOVED, f.moved_to, d, COUNT),
    ]
    if f.disputed:
        out.append((Figure.DISPUTED, "", d, COUNT))
    if f.lea_bucket >= 0:
        where = "orphan" if f.orphaned else "in_network"
        out.append((Figure.TO_LEA, where, d, f.lea_bucket))
    out.extend(_open_work(f))
    return out


# The work queues an item is in while it waits (the OPEN gauge, read over every day: an item
# is in a queue whatever the period asked). "open" is every open item, by its clock's day: the
# overdue ones are those of the days before the cutoff.
OPEN_ALL = "open"


def _open_work(f: ItemFacts) -> list[Contribution]:
    d = f.day
    out: list[Contribution] = []
    if f.disputed:
        out.append((Figure.OPEN, str(Queue.DISPUTED), d, COUNT))
    if f.stage in _CLOSED:
        return out
    out.append((Figure.OPEN, OPEN_ALL, d, COUNT))
    if f.stage == str(Stage.UNASSESSED):
        out.append((Figure.OPEN, str(Queue.UNASSESSED), d, COUNT))
    elif f.stage == str(Stage.ASSESSED) and f.classification in _ILLEGAL:
        out.append((Figure.OPEN, str(Queue.UNACTIONED), d, COUNT))
    if f.orphaned:
        out.append((Figure.OPEN, str(Queue.ORPHANED), d, COUNT))
    return out


def item_delta(old: ItemFacts | None, new: ItemFacts | None) -> Counter[Contribution]:
    """What changes in the rollups when an item counted as ``old`` now reads ``new``."""
    delta: Counter[Contribution] = Counter()
    if old == new:
        return delta
    for c in item_contributions(new):
        delta[c] += 1
    for c in item_contributions(old):
        delta[c] -= 1
    return Counter({c: n for c, n in delta.items() if n})


@dataclass(frozen=True, slots=True)
class LogRow:
    """A routing-log entry as the folder reads it, its times in microseconds since the epoch
    (as stored: no datetime per entry); ``intake_us`` is its report's intake time here (for a
    receipt: the start of the delivery latency)."""

    at_us: int
    kind: str
    member: str | None
    country: str | None
    detail: str
    intake_us: int | None


# Entries that count once each, keyed by a column of their own, on their own day: intake by
# hosting country, sent by member. The folder has the database count them by (kind, key, day)
# (store/stats.log_page), never reading them into Python one by one; a batch's one ``sent``
# entry counts as the reports it lists, its ``receipted`` one reads as a row per report
# (batch_entries.py). ``log_contributions`` says the same of each entry of one report.
COUNTED_KINDS: dict[str, tuple[Figure, str]] = {
    str(LogKind.INTAKE): (Figure.INTAKE, "country"),
    str(LogKind.SENT): (Figure.SENT, "member"),
}
# Entries whose contribution needs a look at each: a case opened or joined (by whose report:
# its detail), a receipt (the delivery's latency: its report's intake time).
EACH_KINDS = (str(LogKind.RECEIPTED), str(LogKind.NEW_CASE), str(LogKind.MERGED))


def counted(kind: str, key: str | None, day: int) -> Contribution:
    """The contribution of an entry of one of ``COUNTED_KINDS``."""
    return (COUNTED_KINDS[kind][0], _key(key), day, COUNT)


def log_contributions(e: LogRow) -> list[Contribution]:
    """The counts one routing-log entry adds: intake (by hosting country), a report sent, a
    report received (a case opened or joined by a member's report), a delivery's latency."""
    d = e.at_us // DAY_US
    if e.kind == LogKind.INTAKE:
        return [counted(e.kind, e.country, d)]
    if e.kind == LogKind.SENT:
        return [counted(e.kind, e.member, d)]
    if e.kind in (LogKind.NEW_CASE, LogKind.MERGED):
        via = _detail(e.detail).get("via")
        if isinstance(via, str) and via != "intake":
            return [(Figure.RECEIVED, _key(via), d, COUNT)]
        return []
    if e.kind == LogKind.RECEIPTED and e.intake_us is not None:
        # The text first: parsing every receipt's detail was most of a fold at an origin, and
        # only a transfer's has the key.
        if _TRANSFER in e.detail and _detail(e.detail).get("transfer"):
            return []  # a moved case's transfer, not a report's delivery
        ms = (e.at_us - e.intake_us) // 1000
        return [(Figure.DELIVERY, "", e.intake_us // DAY_US, Histogram.bucket(max(ms, 0)))]
    return []


_TRANSFER = '"transfer"'


def _detail(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def total(contributions: Iterable[Contribution]) -> Counter[Contribution]:
    out: Counter[Contribution] = Counter()
    for c in contributions:
        out[c] += 1
    return out
