"""The takedown room's vocabulary: checks, watches, contacts, notices, holds — pure.

Once a case held here has an item assessed illegal, the node *watches* its URL: it re-checks,
on a schedule, whether the content is still there (never fetching it: a HEAD, or a GET whose
body is never read), re-traces where it is hosted, and notifies the hoster's abuse contact
until it is gone. Everything the automation decides is a function of these values and the
``Policy``, so the rules are tested without a network, a database or a clock.

A watch is per case, not per item: a case is one URL (dedup by URL key), so one request answers
for every item of it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from exchange.lifecycle.model import Action, ActionKind, ReasonCode
from routing.trace import Trace

MAX_DETAIL = 200  # a check's detail text (status line, error), stored and shown


class Outcome(enum.StrEnum):
    """What one check found. Only ONLINE means the content is (still) there."""

    ONLINE = "online"  # 2xx (or 3xx beyond the redirect limit): the content answers
    GONE = "gone"  # 404 / 410: the host says the content is not there
    UNAVAILABLE = "unavailable"  # 401 / 403 / 451: there, but not for us (password, geo)
    UNREACHABLE = "unreachable"  # no address, refused, timed out, TLS failure, 5xx
    REFUSED = "refused"  # ihx would not ask: a special-purpose address, a bad redirect


@dataclass(frozen=True, slots=True)
class Check:
    """One re-check of a URL: where it was hosted then, and what the host answered.

    No content is ever stored: ``status`` is the HTTP status code, ``detail`` a short
    description (reason phrase, error, the refused redirect target's address — never its path).
    """

    at: datetime
    outcome: Outcome
    status: int | None = None
    address: str = ""  # the address asked (the first hosting candidate)
    country: str | None = None  # the re-traced hosting country (None: untraceable)
    asn: int | None = None
    organisation: str = ""
    redirects: int = 0
    elapsed_ms: int = 0
    detail: str = ""
    # The re-trace itself (never stored as such): a move's transfer carries it as evidence.
    trace: Trace | None = field(default=None, compare=False, repr=False)


class OnGone(enum.StrEnum):
    """What N consecutive 'gone' checks do (the hotline's policy)."""

    ACT = "act"  # record the removed / unavailable action at once, with the checks' evidence
    SUGGEST = "suggest"  # put it in the confirm_removal queue for an analyst


@dataclass(frozen=True, slots=True)
class Policy:
    """The hotline's takedown settings, as durations (``[takedown]`` in the node's file)."""

    first_interval: timedelta = timedelta(hours=1)  # re-check this often …
    first_period: timedelta = timedelta(days=1)  # … for this long after the watch starts,
    interval: timedelta = timedelta(days=1)  # then this often
    gone_checks: int = 3  # consecutive checks that make it gone
    on_gone: OnGone = OnGone.ACT
    notice_interval: timedelta = timedelta(days=1)  # a new notice while still online
    escalate_after: int = 3  # notices to the abuse contact before the escalation contact
    lea_hold: timedelta = timedelta(hours=0)  # notices wait this long after reported_to_lea


def next_check_at(started: datetime, last: datetime, policy: Policy) -> datetime:
    """When the check after the one at ``last`` is due: often at first, then less often."""
    within_first = last < started + policy.first_period
    return last + (policy.first_interval if within_first else policy.interval)


_GONE_STATES = frozenset({Outcome.GONE, Outcome.UNAVAILABLE, Outcome.UNREACHABLE})


def gone_verdict(recent: Sequence[Check], policy: Policy) -> Action | None:
    """The final action ``policy.gone_checks`` consecutive not-online checks justify, or None.

    ``recent`` is newest first. Removed when the host itself said 404/410 on the latest;
    unavailable otherwise, with the reason the latest check gives (password / geo-blocked for
    401/403/451, site down when unreachable). A refused check proves nothing and breaks the run.
    """
    run = list(recent[: policy.gone_checks])
    if len(run) < policy.gone_checks or any(c.outcome not in _GONE_STATES for c in run):
        return None
    latest = run[0]
    evidence = evidence_text(run)
    if latest.outcome is Outcome.GONE:
        return Action(kind=ActionKind.REMOVED, reference=evidence)
    return Action(
        kind=ActionKind.UNAVAILABLE, reason=unavailable_reason(latest), reference=evidence
    )


def proven_gone(recent: Sequence[Check], policy: Policy) -> bool:
    """The run behind a verdict is the host's own word (404/410 every time): the only run the
    automation turns into an action by itself. Unreachable hosts (perhaps our own network or
    DNS failing, a certificate error) and 401/403/451 (perhaps shown only to our User-Agent)
    prove nothing about the content: an analyst confirms those (``confirm_removal``)."""
    run = recent[: policy.gone_checks]
    return len(run) == policy.gone_checks and all(c.outcome is Outcome.GONE for c in run)


def unavailable_reason(check: Check) -> ReasonCode:
    if check.status in (401, 403):
        return ReasonCode.PASSWORD_PROTECTED
    if check.status == 451:
        return ReasonCode.GEO_BLOCKED
    if check.outcome is Outcome.GONE:
        return ReasonCode.CONTENT_NOT_FOUND
    return ReasonCode.SITE_DOWN


def evidence_text(run: Sequence[Check]) -> str:
    """The checks behind an automatic action, short enough for an action's reference."""
    codes = ",".join(str(c.status) if c.status is not None else c.outcome.value for c in run)
    first, last = run[-1].at, run[0].at
    text = f"recheck {len(run)}x [{codes}] {first:%Y-%m-%dT%H:%MZ}..{last:%Y-%m-%dT%H:%MZ}"
    return text[:128]


# -- where notices go -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contact:
    """An abuse contact from the hotline's directory: by ASN or by organisation name."""

    key: str  # "AS64500" or the organisation, lower-case
    address: str  # the abuse mailbox
    name: str = ""
    language: str = "en"
    escalation: str = ""  # written to after ``Policy.escalate_after`` unanswered notices


@dataclass(frozen=True, slots=True)
class Hoster:
    """Who hosts a URL now, as the last trace said."""

    asn: int | None
    organisation: str

    @property
    def label(self) -> str:
        if self.asn is None:
            return self.organisation or "unknown"
        return f"AS{self.asn}" + (f" {self.organisation}" if self.organisation else "")


def notice_recipient(contact: Contact, notices_sent: int, policy: Policy) -> tuple[str, bool]:
    """The address the next notice goes to, and whether it is an escalation."""
    if contact.escalation and notices_sent >= policy.escalate_after:
        return contact.escalation, True
    return contact.address, False


def notice_due(
    *,
    now: datetime,
    last_notice: datetime | None,
    lea_at: datetime | None,
    hold_until: datetime | None,
    policy: Policy,
) -> datetime | None:
    """When the next notice may go (None: now is fine; a time: not before it).

    Law enforcement first: nothing goes while a partner's hold runs, nor within
    ``policy.lea_hold`` of the case being reported to law enforcement.
    """
    waits = []
    if hold_until is not None and hold_until > now:
        waits.append(hold_until)
    if lea_at is not None and lea_at + policy.lea_hold > now:
        waits.append(lea_at + policy.lea_hold)
    if last_notice is not None and last_notice + policy.notice_interval > now:
        waits.append(last_notice + policy.notice_interval)
    return max(waits) if waits else None


@dataclass(frozen=True, slots=True)
class Hold:
    """A partner (or the hotline) asked that no notice go yet, to preserve evidence."""

    case_id: str
    by: str  # the partner or analyst (audited)
    until: datetime
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Target:
    """One URL to check, for one watched case."""

    case_id: str
    url: str
    host: str
