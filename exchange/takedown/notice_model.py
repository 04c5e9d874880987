"""The notices' vocabulary: a case that may be noticed, a notice and the URLs it names — pure.

Kept beside ``model.py`` (the room's checks, policy and contacts) so the store, the renderer
and the notifier share one set of values without any of them importing the others. A notice
names URLs, cases, hosters and classification categories; never an image, a hash or anything
else of the content.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from exchange.takedown.model import Contact, Hoster
from exchange.times import to_micros

NOTICE_ID_PREFIX = "n-"
MAX_URLS_PER_NOTICE = 500  # a longer list is split into several notices to the same contact
RETRY_FIRST = timedelta(seconds=30)


class NoticeStatus(enum.StrEnum):
    PENDING = "pending"  # written with its Message-ID; not yet accepted by the relay
    SENT = "sent"  # the relay accepted it
    FAILED = "failed"  # the relay refused it for good (5xx)
    DROPPED = "dropped"  # nothing left to send about when its turn came (closed, held, LEA wait)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A watched case that is online with open items assessed illegal here: what decides
    whether, when and to whom its next notice goes."""

    case_id: str
    url: str
    hoster: Hoster
    country: str | None
    online_since: datetime | None
    notices: int  # notices sent to the current hoster
    last_notice_at: datetime | None
    lea_at: datetime | None  # the latest reported_to_lea of its open illegal items
    hold_until: datetime | None  # a partner's (or analyst's) hold on notices
    no_contact: bool
    items: int  # open items assessed illegal
    category: str  # "baseline" if any of them is, else "national"
    failed_recipients: frozenset[str] = frozenset()  # refused for good since the last sent


@dataclass(frozen=True, slots=True)
class NoticeUrl:
    """One URL a notice names, with what the hoster needs to find and judge it."""

    case_id: str
    url: str
    hoster: Hoster
    country: str | None
    online_since: datetime | None
    items: int
    category: str

    @classmethod
    def of(cls, c: Candidate) -> NoticeUrl:
        return cls(c.case_id, c.url, c.hoster, c.country, c.online_since, c.items, c.category)


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice to one recipient about one or more URLs, as it is rendered and sent.

    ``previous``: the most notices any of its URLs had before this one (0: a first notice).
    ``contact``: the directory's entry (its name and language); None if it has left the
    directory since the notice was written (rendered in English, without a name).
    """

    id: str
    message_id: str
    recipient: str
    escalated: bool
    created_at: datetime
    urls: tuple[NoticeUrl, ...]
    previous: int = 0
    contact: Contact | None = None


@dataclass(frozen=True, slots=True)
class PendingNotice:
    """A notice written but not yet accepted by the relay (first attempt or a retry)."""

    id: str
    contact_key: str
    recipient: str
    escalated: bool
    message_id: str
    attempts: int
    created_at: datetime
    case_ids: tuple[str, ...]


def notice_id_for(recipient: str, case_ids: Sequence[str], created_at: datetime) -> str:
    """A notice's id, implied by whom it goes to, what it names and when it was written."""
    text = "\x00".join([recipient.lower(), str(to_micros(created_at)), *sorted(case_ids)])
    return NOTICE_ID_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:32]


def message_id_for(notice_id: str, from_address: str) -> str:
    """The Message-ID of a notice: the same for every attempt, so a resend after a crash is
    the same message to the hoster (which may deduplicate on it)."""
    domain = from_address.rpartition("@")[2].lower()
    return f"<{notice_id}@{domain}>"


def retry_delay(attempts: int, ceiling: timedelta) -> timedelta:
    """Exponential back-off after ``attempts`` failed attempts: 30 s, 1 min, 2 min, … capped."""
    if attempts <= 0:
        return timedelta(0)
    step: timedelta = RETRY_FIRST * (2 ** min(attempts - 1, 30))
    return min(step, ceiling)


@dataclass(frozen=True, slots=True)
class HosterScore:
    """One hoster's line of the scorecard (``ihx hosts``, the statistics).

    Durations in seconds. Removal is timed from the first notice sent to this hoster about
    the item's case to the item's ``removed`` action; items still online are counted with the
    time since that first notice.
    """

    asn: int | None
    organisation: str
    notices: int  # notices sent naming its URLs
    cases: int  # cases noticed
    items: int  # items notified
    removed: int
    removal_median_s: float | None
    removal_p90_s: float | None
    still_online: int
    online_median_s: float | None
    online_max_s: float | None

    @property
    def hoster(self) -> Hoster:
        return Hoster(self.asn, self.organisation)


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile (0..1) of ascending values, linearly interpolated between
    closest ranks (numpy's default, PostgreSQL's ``percentile_cont``); None when empty."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    share = position - low
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * share)
