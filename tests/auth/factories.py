"""Deterministic keys and a small test network, shared by every test that needs a manifest.

Keys derive from a name, so a test can rebuild the same key anywhere (``signing_key("nl-eokm")``)
and failures show the same key ids on every run. The network has four national members, the
coordinator ``inhope`` that serves no country, and one orphan rule (JP → us-ncmec).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auth.keys import SigningKey
from auth.manifest import Manifest, Member, MemberKey, manifest_to_document

T0 = datetime(2025, 1, 1, tzinfo=UTC)
NETWORK = "inhope-test"
COORDINATOR = "inhope"

# (member id, display name, countries served)
MEMBERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("nl-eokm", "Expertisebureau Online Kindermisbruik", ("NL",)),
    ("de-eco", "eco Beschwerdestelle", ("DE",)),
    ("us-ncmec", "National Center for Missing & Exploited Children", ("US",)),
    ("ro-safernet", "Safernet Romania", ("RO",)),
    (COORDINATOR, "INHOPE", ()),
)
ORPHAN_RULES: Mapping[str, str] = {"JP": "us-ncmec"}


def signing_key(name: str) -> SigningKey:
    """The same Ed25519 key for the same name, in every test run."""
    return SigningKey.from_seed(hashlib.sha256(f"ihx-test-key:{name}".encode()).digest())


def member_key(key: SigningKey, *, not_before: datetime = T0, **validity: Any) -> MemberKey:
    return MemberKey.of(key.public, not_before=not_before, **validity)


def make_member(
    member_id: str,
    countries: Iterable[str] = (),
    *,
    name: str | None = None,
    key: SigningKey | None = None,
    keys: Iterable[MemberKey] | None = None,
    endpoint: str | None = None,
    tls_identity: str | None = None,
) -> Member:
    if keys is None:
        keys = (member_key(key or signing_key(member_id)),)
    return Member(
        id=member_id,
        name=name or member_id,
        countries=frozenset(countries),
        endpoint=endpoint or f"{member_id}.ihx.test:7443",
        keys=tuple(keys),
        tls_identity=tls_identity,
    )


@dataclass(frozen=True)
class NetworkKit:
    """A manifest together with the private keys behind it."""

    manifest: Manifest
    node_keys: Mapping[str, SigningKey]
    coordinator_key: SigningKey

    def key_of(self, member_id: str) -> SigningKey:
        return self.node_keys[member_id]


def make_network(
    *,
    network: str = NETWORK,
    epoch: int = 1,
    issued_at: datetime = T0,
    extra_members: Iterable[Member] = (),
    coordinator_key: SigningKey | None = None,
) -> NetworkKit:
    node_keys = {member_id: signing_key(member_id) for member_id, _, _ in MEMBERS}
    members = tuple(
        make_member(member_id, countries, name=name, key=node_keys[member_id])
        for member_id, name, countries in MEMBERS
    )
    coordinator_key = coordinator_key or signing_key("coordinator")
    manifest = Manifest(
        network=network,
        epoch=epoch,
        issued_at=issued_at,
        members=(*members, *extra_members),
        orphan_rules=dict(ORPHAN_RULES),
        coordinator=COORDINATOR,
        coordinator_keys=(member_key(coordinator_key),),
    )
    return NetworkKit(manifest, node_keys, coordinator_key)


def make_manifest(**kwargs: Any) -> Manifest:
    return make_network(**kwargs).manifest


def manifest_document(**kwargs: Any) -> dict[str, Any]:
    """The test network as a plain document, for tests that break it field by field."""
    return manifest_to_document(make_manifest(**kwargs))
