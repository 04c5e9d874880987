"""Editing a manifest: members, orphan rules, epochs, and key rotation and revocation."""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import datetime
from typing import Any

import pytest

from auth.errors import (
    KeyNotValid,
    ManifestError,
    ManifestRejected,
    UnknownKey,
    UnknownMember,
)
from auth.manifest import (
    Manifest,
    accept_update,
    add_coordinator_key,
    add_key,
    add_member,
    bump_epoch,
    manifest_to_document,
    manifest_to_toml,
    parse_manifest,
    replace_member,
    revoke_coordinator_key,
    revoke_key,
    rotate_coordinator_key,
    rotate_key,
    set_coordinator,
    set_orphan_rule,
    sign_manifest,
)
from tests.auth.factories import (
    T0,
    NetworkKit,
    make_member,
    member_key,
    signing_key,
)
from tests.auth.manifest.helpers import DAY, NOW, _with_key

# --- builder --------------------------------------------------------------------------------------


def test_add_member(manifest: Manifest) -> None:
    fr = make_member("fr-pointdecontact", ["FR"])
    m = add_member(manifest, fr)
    assert m.member_for_country("FR") == fr
    assert manifest.find_member("fr-pointdecontact") is None  # the input is untouched
    with pytest.raises(ManifestError, match='member "fr-pointdecontact" already exists'):
        add_member(m, fr)
    with pytest.raises(ManifestError, match=r'^members\[5\]\.countries: "NL" is already served'):
        add_member(manifest, make_member("nl-other", ["NL"]))


def test_a_member_taking_an_orphaned_country_needs_the_rule_dropped(manifest: Manifest) -> None:
    jp = make_member("jp-safeline", ["JP"])
    with pytest.raises(ManifestError, match=r'^orphan_rules\.JP: "JP" is served by member'):
        add_member(manifest, jp)
    m = add_member(set_orphan_rule(manifest, "JP", None), jp)
    assert m.member_for_country("JP") == jp


def test_replace_member(manifest: Manifest) -> None:
    de = dataclasses.replace(manifest.member("de-eco"), endpoint="de.example:8443")
    m = replace_member(manifest, de)
    assert m.member("de-eco").endpoint == "de.example:8443"
    assert [x.id for x in m.members] == [x.id for x in manifest.members]
    with pytest.raises(UnknownMember):
        replace_member(manifest, make_member("xx-new", []))


def test_set_orphan_rule_and_coordinator(manifest: Manifest) -> None:
    m = set_orphan_rule(manifest, "FR", "de-eco")
    assert m.orphan_member_for("FR") == m.member("de-eco")
    with pytest.raises(ManifestError, match=r'^orphan_rules\.FR: unknown member "xx"'):
        set_orphan_rule(manifest, "FR", "xx")
    assert set_coordinator(manifest, "nl-eokm").coordinator == "nl-eokm"
    with pytest.raises(ManifestError, match=r"^coordinator: unknown member"):
        set_coordinator(manifest, "xx")


def test_bump_epoch(manifest: Manifest) -> None:
    m = bump_epoch(manifest, issued_at=NOW)
    assert (m.epoch, m.issued_at) == (2, NOW)
    assert (manifest.epoch, manifest.issued_at) == (1, T0)


def test_add_key(network: NetworkKit) -> None:
    extra = member_key(signing_key("nl-2"))
    m = add_key(network.manifest, "nl-eokm", extra)
    assert m.member("nl-eokm").key(extra.key_id) == extra
    with pytest.raises(ManifestError, match="already present"):
        add_key(m, "nl-eokm", extra)
    with pytest.raises(ManifestError, match="already held by member"):
        add_key(m, "de-eco", extra)


def test_rotate_key(network: NetworkKit) -> None:
    old, new = network.key_of("nl-eokm"), signing_key("nl-eokm-2")
    at = T0 + 10 * DAY
    m = rotate_key(network.manifest, "nl-eokm", old.key_id, new.public, at=at, overlap=2 * DAY)
    member = m.member("nl-eokm")
    assert [k.key_id for k in member.keys] == [old.key_id, new.key_id]
    assert member.key(old.key_id) == member_key(old, not_after=at + 2 * DAY)
    assert member.key(new.key_id) == member_key(new, not_before=at)

    def verify(key: Any, t: datetime) -> None:
        m.verify_member_signature("nl-eokm", key.key_id, t, b"m", key.sign(b"m"))

    verify(old, at + DAY)  # the overlap: both keys are good
    verify(new, at + DAY)
    with pytest.raises(KeyNotValid, match="not valid before"):
        verify(new, at - DAY)
    with pytest.raises(KeyNotValid, match="expired at 2025-01-13T00:00:00Z"):
        verify(old, at + 2 * DAY)


def test_rotate_never_extends_the_old_key(network: NetworkKit) -> None:
    old = network.key_of("nl-eokm")
    short = _with_key(network, "nl-eokm", not_after=T0 + 3 * DAY)
    m = rotate_key(short, "nl-eokm", old.key_id, signing_key("n2").public, at=T0 + 10 * DAY)
    assert m.member("nl-eokm").key(old.key_id).not_after == T0 + 3 * DAY  # type: ignore[union-attr]


def test_rotate_errors(network: NetworkKit) -> None:
    old = network.key_of("nl-eokm")
    with pytest.raises(UnknownKey):
        rotate_key(network.manifest, "nl-eokm", "ed25519:nope", signing_key("n").public, at=NOW)
    with pytest.raises(UnknownMember):
        rotate_key(network.manifest, "xx-nobody", old.key_id, signing_key("n").public, at=NOW)
    with pytest.raises(ManifestError, match="cannot retire key"):
        rotate_key(network.manifest, "nl-eokm", old.key_id, signing_key("n").public, at=T0)
    with pytest.raises(ManifestError, match="already present"):
        rotate_key(network.manifest, "nl-eokm", old.key_id, old.public, at=NOW)


def test_revoke_key(network: NetworkKit) -> None:
    key = network.key_of("de-eco")
    m = revoke_key(network.manifest, "de-eco", key.key_id, at=T0 + 5 * DAY)
    assert m.member("de-eco").keys[0].revoked_at == T0 + 5 * DAY
    # A revocation can move earlier, never later: later would re-validate refused signatures.
    assert revoke_key(m, "de-eco", key.key_id, at=T0 + 9 * DAY).member("de-eco").keys[
        0
    ].revoked_at == (T0 + 5 * DAY)
    assert revoke_key(m, "de-eco", key.key_id, at=T0 + 2 * DAY).member("de-eco").keys[
        0
    ].revoked_at == (T0 + 2 * DAY)
    with pytest.raises(UnknownKey):
        revoke_key(m, "de-eco", network.key_of("nl-eokm").key_id, at=NOW)


def test_coordinator_key_rotation_chain(network: NetworkKit) -> None:
    old, new = network.coordinator_key, signing_key("coordinator-2")
    at = T0 + 10 * DAY
    epoch2 = bump_epoch(
        rotate_coordinator_key(network.manifest, old.key_id, new.public, at=at), issued_at=at
    )
    m2 = accept_update(network.manifest, sign_manifest(epoch2, old), NOW)
    assert [k.key_id for k in m2.coordinator_keys] == [old.key_id, new.key_id]

    epoch3 = bump_epoch(m2, issued_at=at + DAY)
    assert accept_update(m2, sign_manifest(epoch3, new), NOW).epoch == 3
    # The old key retired at `at`: it can no longer sign a newer manifest.
    with pytest.raises(ManifestRejected, match="expired at"):
        accept_update(m2, sign_manifest(epoch3, old), NOW)
    # Nor could the new key have signed epoch 2 against epoch 1: it was not trusted yet.
    with pytest.raises(ManifestRejected, match="not a trusted coordinator key"):
        accept_update(network.manifest, sign_manifest(epoch2, new), NOW)


def test_add_and_revoke_coordinator_keys(network: NetworkKit) -> None:
    second = member_key(signing_key("coordinator-b"))
    m = add_coordinator_key(network.manifest, second)
    assert len(m.coordinator_keys) == 2
    with pytest.raises(ManifestError, match="already present"):
        add_coordinator_key(m, second)
    m = revoke_coordinator_key(m, second.key_id, at=T0 + DAY)
    assert m.coordinator_keys[1].revoked_at == T0 + DAY
    with pytest.raises(UnknownKey):
        revoke_coordinator_key(m, "ed25519:nope", at=NOW)


def test_builder_results_round_trip(network: NetworkKit) -> None:
    m = rotate_key(
        network.manifest,
        "ro-safernet",
        network.key_of("ro-safernet").key_id,
        signing_key("ro-2").public,
        at=T0 + DAY,
    )
    m = revoke_key(m, "de-eco", network.key_of("de-eco").key_id, at=T0 + 2 * DAY)
    m = bump_epoch(m, issued_at=T0 + 3 * DAY)
    assert parse_manifest(manifest_to_document(m)) == m
    assert parse_manifest(tomllib.loads(manifest_to_toml(m))) == m
