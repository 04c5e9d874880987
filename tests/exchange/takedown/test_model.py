"""exchange/takedown/model.py: the pure rules — when the next check is due, when checks make
content gone (and which action says so), when a notice may go and to whom."""

from __future__ import annotations

from datetime import timedelta

import pytest

from exchange.lifecycle.model import ActionKind, ReasonCode
from exchange.takedown.model import (
    Check,
    Contact,
    Hoster,
    Outcome,
    Policy,
    evidence_text,
    gone_verdict,
    next_check_at,
    notice_due,
    notice_recipient,
    proven_gone,
)
from tests.exchange.factories import T0

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def checks(*found: tuple[Outcome, int | None]) -> list[Check]:
    """Checks newest first, an hour apart, the newest at T0 + 10 h."""
    return [
        Check(at=T0 + (10 - i) * HOUR, outcome=outcome, status=status)
        for i, (outcome, status) in enumerate(found)
    ]


# -- next_check_at -------------------------------------------------------------------------------


def test_checks_are_hourly_during_the_first_day_then_daily() -> None:
    policy = Policy()
    assert next_check_at(T0, T0, policy) == T0 + HOUR
    assert next_check_at(T0, T0 + 23 * HOUR, policy) == T0 + 24 * HOUR
    # the check at the end of the first period starts the daily rhythm
    assert next_check_at(T0, T0 + DAY, policy) == T0 + 2 * DAY
    assert next_check_at(T0, T0 + 5 * DAY, policy) == T0 + 6 * DAY


def test_the_rhythm_follows_the_policy() -> None:
    policy = Policy(first_interval=timedelta(minutes=10), first_period=2 * HOUR, interval=6 * HOUR)
    assert next_check_at(T0, T0 + HOUR, policy) == T0 + HOUR + timedelta(minutes=10)
    assert next_check_at(T0, T0 + 2 * HOUR, policy) == T0 + 8 * HOUR


# -- gone_verdict --------------------------------------------------------------------------------


def test_three_gone_checks_in_a_row_are_a_removal_with_their_evidence() -> None:
    run = checks((Outcome.GONE, 404), (Outcome.GONE, 410), (Outcome.GONE, 404))

    action = gone_verdict(run, Policy())

    assert action is not None
    assert (action.kind, action.reason) == (ActionKind.REMOVED, None)
    assert action.reference == evidence_text(run)
    assert action.reference == "recheck 3x [404,410,404] 2026-03-01T20:00Z..2026-03-01T22:00Z"


def test_fewer_not_online_checks_than_the_policy_asks_are_no_verdict() -> None:
    assert gone_verdict(checks((Outcome.GONE, 404), (Outcome.GONE, 404)), Policy()) is None
    assert gone_verdict(checks((Outcome.GONE, 404)), Policy(gone_checks=1)) is not None


@pytest.mark.parametrize(
    "breaker",
    [(Outcome.ONLINE, 200), (Outcome.REFUSED, None)],
    ids=["online-again", "refused-proves-nothing"],
)
def test_an_online_or_refused_check_breaks_the_run(breaker: tuple[Outcome, int | None]) -> None:
    run = checks((Outcome.GONE, 404), breaker, (Outcome.GONE, 404), (Outcome.GONE, 404))
    assert gone_verdict(run, Policy()) is None


def test_only_the_newest_checks_count() -> None:
    # online long ago, gone on the three newest: gone
    run = checks(
        (Outcome.GONE, 404), (Outcome.GONE, 404), (Outcome.GONE, 404), (Outcome.ONLINE, 200)
    )
    assert gone_verdict(run, Policy()) is not None


@pytest.mark.parametrize(
    ("latest", "reason"),
    [
        ((Outcome.UNAVAILABLE, 401), ReasonCode.PASSWORD_PROTECTED),
        ((Outcome.UNAVAILABLE, 403), ReasonCode.PASSWORD_PROTECTED),
        ((Outcome.UNAVAILABLE, 451), ReasonCode.GEO_BLOCKED),
        ((Outcome.UNREACHABLE, 503), ReasonCode.SITE_DOWN),
        ((Outcome.UNREACHABLE, None), ReasonCode.SITE_DOWN),
    ],
)
def test_not_gone_by_the_hosts_word_is_unavailable_with_the_latest_checks_reason(
    latest: tuple[Outcome, int | None], reason: ReasonCode
) -> None:
    run = checks(latest, (Outcome.GONE, 404), (Outcome.UNREACHABLE, None))

    action = gone_verdict(run, Policy())

    assert action is not None
    assert (action.kind, action.reason) == (ActionKind.UNAVAILABLE, reason)
    assert "unreachable" in action.reference  # a check without a status shows its outcome


def test_evidence_stays_within_an_actions_reference() -> None:
    run = checks(*[(Outcome.UNREACHABLE, None)] * 40)
    assert len(evidence_text(run)) == 128


# -- notices ---------------------------------------------------------------------------------------


def test_a_notice_may_go_at_once_when_nothing_holds_it() -> None:
    assert (
        notice_due(now=T0, last_notice=None, lea_at=None, hold_until=None, policy=Policy()) is None
    )


def test_a_new_notice_waits_for_the_notice_interval() -> None:
    policy = Policy(notice_interval=DAY)
    last = T0 - 3 * HOUR
    assert (
        notice_due(now=T0, last_notice=last, lea_at=None, hold_until=None, policy=policy)
        == last + DAY
    )
    assert (
        notice_due(now=last + DAY, last_notice=last, lea_at=None, hold_until=None, policy=policy)
        is None
    )


def test_law_enforcement_first_the_latest_wait_wins() -> None:
    policy = Policy(lea_hold=48 * HOUR)
    lea = T0 - HOUR
    hold = T0 + 5 * HOUR
    # reported to law enforcement an hour ago: 47 hours to go, longer than the partner's hold
    assert (
        notice_due(now=T0, last_notice=None, lea_at=lea, hold_until=hold, policy=policy)
        == lea + 48 * HOUR
    )
    # a partner's hold beyond the LEA wait decides
    later = T0 + 72 * HOUR
    assert (
        notice_due(now=T0, last_notice=None, lea_at=lea, hold_until=later, policy=policy) == later
    )
    # a hold that has ended holds nothing
    assert notice_due(now=T0, last_notice=None, lea_at=None, hold_until=T0, policy=Policy()) is None


def test_notices_escalate_after_the_policys_count_when_there_is_an_escalation_contact() -> None:
    contact = Contact("AS43350", "abuse@nforce.example", escalation="noc@nforce.example")
    policy = Policy(escalate_after=3)
    assert notice_recipient(contact, 2, policy) == ("abuse@nforce.example", False)
    assert notice_recipient(contact, 3, policy) == ("noc@nforce.example", True)
    plain = Contact("AS43350", "abuse@nforce.example")
    assert notice_recipient(plain, 10, policy) == ("abuse@nforce.example", False)


def test_a_hoster_is_labelled_by_its_asn_and_organisation() -> None:
    assert Hoster(43350, "NForce").label == "AS43350 NForce"
    assert Hoster(43350, "").label == "AS43350"
    assert Hoster(None, "Some Host").label == "Some Host"
    assert Hoster(None, "").label == "unknown"


def test_only_the_hosts_own_404_or_410_every_time_is_proof_of_removal() -> None:
    policy = Policy(gone_checks=2)
    assert proven_gone(checks((Outcome.GONE, 404), (Outcome.GONE, 410)), policy)
    assert not proven_gone(checks((Outcome.GONE, 404)), policy)  # too few
    assert not proven_gone(checks((Outcome.GONE, 404), (Outcome.UNREACHABLE, None)), policy)
    assert not proven_gone(checks((Outcome.UNAVAILABLE, 403), (Outcome.UNAVAILABLE, 403)), policy)
    assert not proven_gone(checks((Outcome.UNREACHABLE, None), (Outcome.UNREACHABLE, None)), policy)
