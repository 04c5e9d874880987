"""The fan-out of nl-eokm: a sender per peer member, wakes routed to it, a channel per endpoint."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from auth.manifest import Manifest
from exchange.delivery.fanout import Fanout
from exchange.settings import ExchangeTuning
from exchange.store.writer import Writer
from tests.exchange.factories import FakeClock, signing_key

SELF = "nl-eokm"


@pytest.fixture
def current(manifest: Manifest) -> list[Manifest]:
    """The manifest the fan-out sees (tests replace it, as a manifest update would)."""
    return [manifest]


@pytest.fixture
def fanout(
    current: list[Manifest], engine: Engine, writer: Writer, clock: FakeClock
) -> Iterator[Fanout]:
    f = Fanout(
        self_member=SELF,
        key=signing_key(SELF),
        manifest=lambda: current[0],
        engine=engine,
        writer=writer,
        clock=clock,
        rng=random.Random(7),
        tuning=ExchangeTuning(),
    )
    yield f
    f.stop_senders()
    f.close_channels()


def without(manifest: Manifest, member: str) -> Manifest:
    return dataclasses.replace(
        manifest, members=tuple(m for m in manifest.members if m.id != member)
    )


def peer_ids(manifest: Manifest) -> set[str]:
    return {m.id for m in manifest.members} - {SELF}


def test_one_sender_per_peer_member_never_one_for_itself(
    fanout: Fanout, manifest: Manifest
) -> None:
    fanout.ensure(manifest)
    assert set(fanout.senders) == peer_ids(manifest)
    assert SELF not in fanout.senders
    same = dict(fanout.senders)
    fanout.ensure(manifest)  # idempotent: the senders are kept, not replaced
    assert dict(fanout.senders) == same
    assert all(s._thread.is_alive() for s in fanout.senders.values())


def test_a_manifest_that_adds_members_adds_their_senders(
    fanout: Fanout, manifest: Manifest
) -> None:
    fanout.ensure(without(manifest, "de-eco"))
    assert "de-eco" not in fanout.senders
    fanout.ensure(manifest)
    assert set(fanout.senders) == peer_ids(manifest)


def test_wakes_and_heard_from_reach_only_that_peers_sender(
    fanout: Fanout, manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    fanout.stop_senders()  # no threads: only the routing is under test
    fanout.ensure(manifest)
    calls: list[tuple[str, str]] = []
    for peer, sender in fanout.senders.items():
        monkeypatch.setattr(sender, "wake", lambda p=peer: calls.append(("wake", p)))
        monkeypatch.setattr(sender, "heard_from", lambda p=peer: calls.append(("heard", p)))
    fanout.wake({"de-eco", "no-such-member", SELF})
    fanout.heard_from("us-ncmec")
    fanout.heard_from("no-such-member")
    assert calls == [("wake", "de-eco"), ("heard", "us-ncmec")]


def test_after_stopping_no_new_sender_starts(fanout: Fanout, manifest: Manifest) -> None:
    fanout.ensure(without(manifest, "de-eco"))
    fanout.stop_senders()
    assert not any(s._thread.is_alive() for s in fanout.senders.values())
    fanout.ensure(manifest)  # a manifest update while the node shuts down
    assert "de-eco" in fanout.senders
    assert not fanout.senders["de-eco"]._thread.is_alive()


def test_one_channel_per_endpoint_and_fresh_replaces_it(fanout: Fanout) -> None:
    first = fanout.channels.channel_for("127.0.0.1:1")
    assert fanout.channels.channel_for("127.0.0.1:1") is first
    assert fanout.channels.channel_for("127.0.0.1:2") is not first
    fresh = fanout.channels.channel_for("127.0.0.1:1", True)
    assert fresh is not first
    assert fanout.channels.channel_for("127.0.0.1:1") is fresh


def test_a_hello_retries_a_failing_sender_now_resetting_only_an_unreachable_ones_backoff(
    fanout: Fanout, manifest: Manifest
) -> None:
    fanout.stop_senders()  # no threads: the sender's state is driven by hand
    fanout.ensure(manifest)
    sender, other = fanout.senders["de-eco"], fanout.senders["us-ncmec"]
    fanout.greeted("de-eco")
    assert not sender._retry.is_set(), "nothing failed: no retry"
    assert sender._stale.is_set(), "but a stream held from before the peer's restart is dropped"

    # Refused: the retry comes now, but the refusal's backoff stays where it was.
    sender._failed("INVALID_ARGUMENT", "INVALID_ARGUMENT: envelope-future: test")
    for _ in range(4):
        sender.backoff.next_delay()
    fanout.greeted("de-eco")
    assert sender._retry.is_set()
    assert sender.backoff.failures == 4
    assert not other._retry.is_set(), "only the greeting member's sender"

    # Unreachable: the retry comes now and the backoff starts again from its first step.
    sender._retry.clear()
    sender._failed("UNAVAILABLE", "UNAVAILABLE: test")
    fanout.greeted("de-eco")
    assert sender._retry.is_set()
    assert sender.backoff.failures == 0
    fanout.greeted("no-such-member")  # no sender: nothing to do, nothing raised
