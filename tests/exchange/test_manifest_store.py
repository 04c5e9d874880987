"""The manifest store picks up newer manifests from its file; a refusal for time heals by itself.

A manifest issued "in the future" is what a node sees whose clock runs behind the coordinator's:
it is refused while that is so, looked at again on every poll, and accepted once our clock has
caught up — unlike a bad signature or an old epoch, which stay refused until the file changes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from auth.keys import SigningKey
from auth.manifest import Manifest, bump_epoch, sign_manifest
from exchange.errors import ConfigError
from exchange.manifest_store import ManifestStore
from tests.auth.factories import T0, make_network, member_key, signing_key

SKEW = timedelta(minutes=15)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Node:
    """A manifest file, the coordinator who writes it, and the store of a node reading it."""

    def __init__(self, tmp_path: Path, now: datetime, issued_at: datetime = T0) -> None:
        self.kit = make_network(issued_at=issued_at)
        self.path = tmp_path / "manifest.json"
        self.clock = Clock(now)
        self.publish(self.kit.manifest)

    def publish(self, manifest: Manifest, signer: SigningKey | None = None) -> None:
        self.path.write_bytes(sign_manifest(manifest, signer or self.kit.coordinator_key))

    def store(self) -> ManifestStore:
        anchors = (member_key(signing_key("coordinator")),)
        return ManifestStore(self.path, anchors, self.clock, max_skew=SKEW)


def test_a_manifest_from_our_future_is_accepted_once_our_clock_catches_up(tmp_path: Path) -> None:
    node = Node(tmp_path, now=T0 + timedelta(hours=1))
    store = node.store()
    assert store.current().epoch == 1

    # The coordinator (on time) issues epoch 2 at T0+1h20; our clock runs 20 minutes behind.
    node.publish(bump_epoch(node.kit.manifest, issued_at=T0 + timedelta(hours=1, minutes=20)))
    assert store.refresh() is False
    assert store.current().epoch == 1
    node.clock.now += timedelta(minutes=4)  # still more than 15 minutes before issued_at
    assert store.refresh() is False
    node.clock.now += timedelta(minutes=2)
    assert store.refresh() is True
    assert store.current().epoch == 2


def test_a_manifest_within_the_tolerance_is_accepted_at_once(tmp_path: Path) -> None:
    node = Node(tmp_path, now=T0)
    store = node.store()
    node.publish(bump_epoch(node.kit.manifest, issued_at=T0 + SKEW))
    assert store.refresh() is True


def test_a_refused_signature_is_not_looked_at_again(tmp_path: Path) -> None:
    node = Node(tmp_path, now=T0)
    store = node.store()
    node.publish(bump_epoch(node.kit.manifest, issued_at=T0), signer=signing_key("mallory"))
    assert store.refresh() is False
    node.clock.now += timedelta(days=1)
    assert store.refresh() is False
    assert store.current().epoch == 1


def test_the_first_manifest_from_our_future_stops_the_node_with_a_clear_error(
    tmp_path: Path,
) -> None:
    node = Node(tmp_path, now=T0, issued_at=T0 + timedelta(hours=1))
    with pytest.raises(ConfigError, match="in the future"):
        node.store()
