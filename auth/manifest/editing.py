"""Editing a manifest: pure functions that return a new, re-validated ``Manifest``.

The coordinator's tools (``ihx network …``) change a manifest only through these. Each builds the
next value with ``dataclasses.replace``, so the model's own validation runs again and an edit can
never produce an invalid manifest. Keys are never removed: rotation only ever shortens the old
key's life (``not_after``) and revocation only ever moves ``revoked_at`` earlier, so whatever a key
signed while it was valid stays verifiable.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from auth.errors import ManifestError, UnknownKey
from auth.keys import PublicKey
from auth.manifest.checks import format_time, quote
from auth.manifest.model import Manifest, Member, MemberKey
from auth.manifest.readers import NetworkReader

__all__ = [
    "add_coordinator_key",
    "add_key",
    "add_member",
    "bump_epoch",
    "replace_member",
    "revoke_coordinator_key",
    "revoke_key",
    "rotate_coordinator_key",
    "rotate_key",
    "set_coordinator",
    "set_network_reader",
    "set_orphan_rule",
    "set_tls_identity",
]


def add_member(manifest: Manifest, member: Member) -> Manifest:
    if manifest.find_member(member.id) is not None:
        raise ManifestError(f"members: member {quote(member.id)} already exists")
    return dataclasses.replace(manifest, members=(*manifest.members, member))


def replace_member(manifest: Manifest, member: Member) -> Manifest:
    """Replace the member with the same id (its position is kept, so diffs stay small)."""
    manifest.member(member.id)
    members = tuple(member if m.id == member.id else m for m in manifest.members)
    return dataclasses.replace(manifest, members=members)


def set_tls_identity(manifest: Manifest, member_id: str, identity: str | None) -> Manifest:
    """Bind ``member_id``'s mutual-TLS certificate (fingerprint or SPIFFE id), or unbind it with
    None; the member's own validation checks the form of ``identity``."""
    member = manifest.member(member_id)
    return replace_member(manifest, dataclasses.replace(member, tls_identity=identity))


def set_orphan_rule(manifest: Manifest, country: str, member_id: str | None) -> Manifest:
    """Assign ``country`` to ``member_id``, or drop its rule with None."""
    rules = dict(manifest.orphan_rules)
    if member_id is None:
        rules.pop(country, None)
    else:
        rules[country] = member_id
    return dataclasses.replace(manifest, orphan_rules=rules)


def set_network_reader(manifest: Manifest, member_id: str, scopes: frozenset[str]) -> Manifest:
    """Grant ``member_id`` network-wide ``scopes`` (replacing its grant), or drop it with none."""
    manifest.member(member_id)
    others = tuple(r for r in manifest.network_readers if r.member != member_id)
    if not scopes:
        return dataclasses.replace(manifest, network_readers=others)
    reader = NetworkReader(member_id, scopes)
    # The grant keeps its place when changed, so diffs stay small.
    readers = [reader if r.member == member_id else r for r in manifest.network_readers]
    if reader not in readers:
        readers = [*others, reader]
    return dataclasses.replace(manifest, network_readers=tuple(readers))


def set_coordinator(manifest: Manifest, member_id: str) -> Manifest:
    return dataclasses.replace(manifest, coordinator=member_id)


def bump_epoch(manifest: Manifest, *, issued_at: datetime) -> Manifest:
    return dataclasses.replace(manifest, epoch=manifest.epoch + 1, issued_at=issued_at)


def _with_key(keys: tuple[MemberKey, ...], key: MemberKey) -> tuple[MemberKey, ...]:
    if any(k.key_id == key.key_id for k in keys):
        raise ManifestError(f"keys: key {key.key_id} is already present")
    return (*keys, key)


def _find_key(keys: tuple[MemberKey, ...], key_id: str, owner: str) -> MemberKey:
    for k in keys:
        if k.key_id == key_id:
            return k
    raise UnknownKey(f"{owner} has no key {quote(key_id)}")


def _rotated(
    keys: tuple[MemberKey, ...],
    old_key_id: str,
    new_key: PublicKey,
    *,
    at: datetime,
    overlap: timedelta,
    owner: str,
) -> tuple[MemberKey, ...]:
    old = _find_key(keys, old_key_id, owner)
    retire = at + overlap
    if retire <= old.not_before:
        raise ManifestError(
            f"keys: cannot retire key {old_key_id} at {format_time(retire)}: it only becomes "
            f"valid at {format_time(old.not_before)}"
        )
    # Never extend an old key's life: a rotation only ever shortens it.
    not_after = retire if old.not_after is None else min(old.not_after, retire)
    retired = dataclasses.replace(old, not_after=not_after)
    keys = tuple(retired if k.key_id == old_key_id else k for k in keys)
    return _with_key(keys, MemberKey.of(new_key, not_before=at))


def _revoked(
    keys: tuple[MemberKey, ...], key_id: str, at: datetime, owner: str
) -> tuple[MemberKey, ...]:
    old = _find_key(keys, key_id, owner)
    # A second revocation can move the date earlier but never later: that would re-validate
    # signatures already refused.
    revoked_at = at if old.revoked_at is None else min(old.revoked_at, at)
    revoked = dataclasses.replace(old, revoked_at=revoked_at)
    return tuple(revoked if k.key_id == key_id else k for k in keys)


def _with_member_keys(manifest: Manifest, member_id: str, keys: tuple[MemberKey, ...]) -> Manifest:
    member = manifest.member(member_id)
    return replace_member(manifest, dataclasses.replace(member, keys=keys))


def add_key(manifest: Manifest, member_id: str, key: MemberKey) -> Manifest:
    return _with_member_keys(manifest, member_id, _with_key(manifest.member(member_id).keys, key))


def rotate_key(
    manifest: Manifest,
    member_id: str,
    old_key_id: str,
    new_key: PublicKey,
    *,
    at: datetime,
    overlap: timedelta = timedelta(0),
) -> Manifest:
    """Add ``new_key`` valid from ``at``; the old key stays valid until ``at + overlap``.

    The overlap covers peers that still run the previous manifest and do not know the new key yet;
    the node switches to the new key once they have it.
    """
    keys = manifest.member(member_id).keys
    owner = f"member {quote(member_id)}"
    return _with_member_keys(
        manifest,
        member_id,
        _rotated(keys, old_key_id, new_key, at=at, overlap=overlap, owner=owner),
    )


def revoke_key(manifest: Manifest, member_id: str, key_id: str, *, at: datetime) -> Manifest:
    """Mark a member key revoked from ``at``; what it signed before stays verifiable."""
    keys = manifest.member(member_id).keys
    owner = f"member {quote(member_id)}"
    return _with_member_keys(manifest, member_id, _revoked(keys, key_id, at, owner))


def add_coordinator_key(manifest: Manifest, key: MemberKey) -> Manifest:
    return dataclasses.replace(manifest, coordinator_keys=_with_key(manifest.coordinator_keys, key))


def rotate_coordinator_key(
    manifest: Manifest,
    old_key_id: str,
    new_key: PublicKey,
    *,
    at: datetime,
    overlap: timedelta = timedelta(0),
) -> Manifest:
    keys = _rotated(
        manifest.coordinator_keys,
        old_key_id,
        new_key,
        at=at,
        overlap=overlap,
        owner="the coordinator",
    )
    return dataclasses.replace(manifest, coordinator_keys=keys)


def revoke_coordinator_key(manifest: Manifest, key_id: str, *, at: datetime) -> Manifest:
    keys = _revoked(manifest.coordinator_keys, key_id, at, "the coordinator")
    return dataclasses.replace(manifest, coordinator_keys=keys)
