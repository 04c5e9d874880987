"""The manifest store picks up newer manifests from its file; a refusal for time heals by itself.

A manifest issued "in the future" is what a node sees whose clock runs behind the coordinator's:
it is refused while that is so, looked at again on every poll, and accepted once our clock has
caught up — unlike a bad signature or an old epoch, which stay refused until the file changes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from auth.manifest import bump_epoch, sign_manifest
from exchange.errors import ConfigError
from exchange.manifest_store import ManifestStore
from tests.auth.factories import T0, make_network, member_key, signing_key

SKEW = timedelta(minutes=15)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _store(path: Path, clock: Clock) -> ManifestStore:
    anchors = (member_key(signing_key("coordinator")),)
    return ManifestStore(path, anchors, clock, max_skew=SKEW)


def test_a_manifest_from_our_future_is_accepted_once_our_clock_catches_up(tmp_path: Path) -> None:
    kit = make_network(issued_at=T0)
    path = tmp_path / "manifest.json"
    path.write_bytes(sign_manifest(kit.manifest, kit.coordinator_key))
    clock = Clock(T0 + timedelta(hours=1))
    store = _store(path, clock)
    assert store.current().epoch == 1

    # The coordinator (on time) issues epoch 2 at T0+1h; our clock runs 20 minutes behind.
    issued = T0 + timedelta(hours=1, minutes=20)
    newer = bump_epoch(kit.manifest, issued_at=issued)
    path.write_bytes(sign_manifest(newer, kit.coordinator_key))
    assert store.refresh() is False
    assert store.current().epoch == 1
    clock.now += timedelta(minutes=4)  # still more than 15 minutes before issued_at
    assert store.refresh() is False
    clock.now += timedelta(minutes=2)
    assert store.refresh() is True
    assert store.current().epoch == 2


def test_a_manifest_within_the_tolerance_is_accepted_at_once(tmp_path: Path) -> None:
    kit = make_network(issued_at=T0)
    path = tmp_path / "manifest.json"
    path.write_bytes(sign_manifest(kit.manifest, kit.coordinator_key))
    clock = Clock(T0)
    store = _store(path, clock)
    path.write_bytes(
        sign_manifest(bump_epoch(kit.manifest, issued_at=T0 + SKEW), kit.coordinator_key)
    )
    assert store.refresh() is True


def test_a_refused_signature_is_not_looked_at_again(tmp_path: Path) -> None:
    kit = make_network(issued_at=T0)
    path = tmp_path / "manifest.json"
    path.write_bytes(sign_manifest(kit.manifest, kit.coordinator_key))
    clock = Clock(T0)
    store = _store(path, clock)
    forged = sign_manifest(bump_epoch(kit.manifest, issued_at=T0), signing_key("mallory"))
    path.write_bytes(forged)
    assert store.refresh() is False
    clock.now += timedelta(days=1)
    assert store.refresh() is False
    assert store.current().epoch == 1


def test_the_first_manifest_from_our_future_stops_the_node_with_a_clear_error(
    tmp_path: Path,
) -> None:
    kit = make_network(issued_at=T0 + timedelta(hours=1))
    path = tmp_path / "manifest.json"
    path.write_bytes(sign_manifest(kit.manifest, kit.coordinator_key))
    with pytest.raises(ConfigError, match="in the future"):
        _store(path, Clock(T0))
