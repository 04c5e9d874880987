"""The routing decision: each rule, its reason code and the local flag."""

from __future__ import annotations

import pytest

from auth.manifest import Manifest
from routing.decision import Decider, DecisionReason, decide
from tests.auth.factories import make_manifest


@pytest.fixture
def manifest() -> Manifest:
    return make_manifest()


def test_country_served_by_another_member(manifest: Manifest) -> None:
    d = decide("DE", manifest, "nl-eokm")
    assert (d.member, d.reason, d.local) == ("de-eco", DecisionReason.SERVED_MEMBER, False)
    assert d.manifest_epoch == manifest.epoch
    assert "DE" in d.explanation


def test_country_served_by_this_node_is_local(manifest: Manifest) -> None:
    d = decide("NL", manifest, "nl-eokm")
    assert (d.member, d.reason, d.local) == ("nl-eokm", DecisionReason.LOCAL, True)


def test_orphan_rule(manifest: Manifest) -> None:
    d = decide("JP", manifest, "nl-eokm")
    assert (d.member, d.reason) == ("us-ncmec", DecisionReason.ORPHAN_RULE)


def test_orphan_rule_naming_this_node_is_local(manifest: Manifest) -> None:
    d = decide("JP", manifest, "us-ncmec")
    assert d.reason is DecisionReason.ORPHAN_RULE
    assert d.local


def test_no_member_no_rule_goes_to_coordinator(manifest: Manifest) -> None:
    d = decide("BR", manifest, "nl-eokm")
    assert (d.member, d.reason) == (manifest.coordinator, DecisionReason.COORDINATOR_FALLBACK)


def test_untraceable_goes_to_coordinator_with_the_reason(manifest: Manifest) -> None:
    d = decide(None, manifest, "nl-eokm", untraceable_reason="resolver: nxdomain")
    assert (d.member, d.reason, d.country) == (
        manifest.coordinator,
        DecisionReason.UNTRACEABLE,
        None,
    )
    assert "nxdomain" in d.explanation


def test_decider_caches_per_manifest_and_matches_decide(manifest: Manifest) -> None:
    decider = Decider("nl-eokm")
    first = decider.decide("DE", manifest)
    assert first == decide("DE", manifest, "nl-eokm")
    assert decider.decide("DE", manifest) is first
    untraceable = decider.decide(None, manifest, untraceable_reason="resolver: timeout")
    assert "timeout" in untraceable.explanation
    other = decider.decide(None, manifest, untraceable_reason="no addresses")
    assert "no addresses" in other.explanation
    newer = make_manifest(epoch=manifest.epoch + 1)
    assert decider.decide("DE", newer).manifest_epoch == manifest.epoch + 1
