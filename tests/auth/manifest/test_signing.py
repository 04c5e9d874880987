"""Signed manifests: canonical bytes, co-signing, and the update policy of ``accept_update``."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import datetime, timedelta

import pytest

from auth.errors import (
    ManifestError,
    ManifestRejected,
)
from auth.manifest import (
    Manifest,
    accept_update,
    add_signature,
    canonical_json,
    load_signed_manifest,
    manifest_to_document,
    parse_signed_manifest,
    revoke_coordinator_key,
    sign_manifest,
)
from tests.auth.factories import (
    T0,
    NetworkKit,
    make_network,
    member_key,
    signing_key,
)
from tests.auth.manifest.helpers import DAY, NOW

# --- signed manifests -----------------------------------------------------------------------------


def _next(kit: NetworkKit, *, epoch: int | None = None, days: int = 1) -> Manifest:
    m = kit.manifest
    return dataclasses.replace(
        m, epoch=m.epoch + 1 if epoch is None else epoch, issued_at=m.issued_at + days * DAY
    )


def test_sign_and_load(network: NetworkKit) -> None:
    data = sign_manifest(network.manifest, network.coordinator_key)
    assert load_signed_manifest(data, trusted=network.manifest, now=NOW) == network.manifest
    anchors = list(network.manifest.coordinator_keys)
    assert load_signed_manifest(data, trusted=anchors, now=NOW) == network.manifest


def test_signature_covers_the_canonical_document(network: NetworkKit) -> None:
    data = sign_manifest(network.manifest, network.coordinator_key)
    signed = parse_signed_manifest(data)
    assert signed.signed_bytes == canonical_json(manifest_to_document(network.manifest))
    network.coordinator_key.public.verify(signed.signatures[0].signature, signed.signed_bytes)
    # Re-formatting the file (whitespace, key order) does not change what was signed.
    envelope = json.loads(data)
    reformatted = json.dumps(
        {"signatures": envelope["signatures"], "manifest": envelope["manifest"]}
    ).encode()
    assert load_signed_manifest(reformatted, trusted=network.manifest, now=NOW) == network.manifest


def test_accept_update_with_a_higher_epoch(network: NetworkKit) -> None:
    new = _next(network)
    data = sign_manifest(new, network.coordinator_key)
    assert accept_update(network.manifest, data, NOW) == new


@pytest.mark.parametrize(("current", "new"), [(4, 3), (4, 4), (1, 1)])
def test_accept_update_refuses_an_epoch_not_higher(current: int, new: int) -> None:
    kit = make_network(epoch=current)
    data = sign_manifest(_next(kit, epoch=new), kit.coordinator_key)
    with pytest.raises(ManifestRejected) as info:
        accept_update(kit.manifest, data, NOW)
    assert info.value.message == f"epoch {new} is not higher than the current epoch {current}"
    assert info.value.code == "manifest-rejected"


def test_accept_update_refuses_a_tampered_document(network: NetworkKit) -> None:
    envelope = json.loads(sign_manifest(_next(network), network.coordinator_key))
    envelope["manifest"]["members"][0]["endpoint"] = "attacker.example:443"
    with pytest.raises(ManifestRejected, match=r"^no valid coordinator signature: the signature"):
        accept_update(network.manifest, json.dumps(envelope).encode(), NOW)


def test_accept_update_refuses_a_flipped_signature(network: NetworkKit) -> None:
    envelope = json.loads(sign_manifest(_next(network), network.coordinator_key))
    sig = bytearray(parse_signed_manifest(json.dumps(envelope).encode()).signatures[0].signature)
    sig[10] ^= 1
    envelope["signatures"][0]["signature"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(ManifestRejected, match=r"^no valid coordinator signature"):
        accept_update(network.manifest, json.dumps(envelope).encode(), NOW)


def test_accept_update_refuses_a_member_key(network: NetworkKit) -> None:
    # A member's node key is in the manifest, but it may not sign manifests.
    data = sign_manifest(_next(network), network.key_of("inhope"))
    with pytest.raises(ManifestRejected, match="is not a trusted coordinator key") as info:
        accept_update(network.manifest, data, NOW)
    assert info.value.message.startswith("no valid coordinator signature")


def test_accept_update_refuses_an_unsigned_file(network: NetworkKit) -> None:
    envelope = json.loads(sign_manifest(_next(network), network.coordinator_key))
    envelope["signatures"] = []
    with pytest.raises(ManifestRejected, match="carries no signatures"):
        accept_update(network.manifest, json.dumps(envelope).encode(), NOW)


def test_accept_update_refuses_a_revoked_coordinator_key(network: NetworkKit) -> None:
    key_id = network.coordinator_key.key_id
    current = revoke_coordinator_key(network.manifest, key_id, at=T0 + DAY)
    before = sign_manifest(
        dataclasses.replace(current, epoch=2, issued_at=T0 + timedelta(hours=12)),
        network.coordinator_key,
    )
    assert accept_update(current, before, NOW).epoch == 2
    after = sign_manifest(
        dataclasses.replace(current, epoch=2, issued_at=T0 + 2 * DAY), network.coordinator_key
    )
    with pytest.raises(ManifestRejected, match="was revoked at 2025-01-02T00:00:00Z"):
        accept_update(current, after, NOW)


def test_accept_update_refuses_an_expired_coordinator_key(network: NetworkKit) -> None:
    current = dataclasses.replace(
        network.manifest,
        coordinator_keys=(member_key(network.coordinator_key, not_after=T0 + DAY),),
    )
    data = sign_manifest(
        dataclasses.replace(current, epoch=2, issued_at=T0 + 2 * DAY), network.coordinator_key
    )
    with pytest.raises(ManifestRejected, match="was expired at 2025-01-02T00:00:00Z"):
        accept_update(current, data, NOW)


def test_accept_update_refuses_a_future_manifest(network: NetworkKit) -> None:
    new = dataclasses.replace(network.manifest, epoch=2, issued_at=NOW + timedelta(minutes=4))
    data = sign_manifest(new, network.coordinator_key)
    assert accept_update(network.manifest, data, NOW) == new  # clock skew
    new = dataclasses.replace(new, issued_at=NOW + timedelta(minutes=6))
    data = sign_manifest(new, network.coordinator_key)
    with pytest.raises(ManifestRejected, match="is in the future"):
        accept_update(network.manifest, data, NOW)


def test_accept_update_refuses_an_earlier_issue_time() -> None:
    kit = make_network(issued_at=T0 + 5 * DAY)
    data = sign_manifest(_next(kit, days=-1), kit.coordinator_key)
    with pytest.raises(ManifestRejected, match="is earlier than the current manifest's"):
        accept_update(kit.manifest, data, NOW)


def test_accept_update_refuses_another_network(network: NetworkKit) -> None:
    data = sign_manifest(
        dataclasses.replace(_next(network), network="other-net"), network.coordinator_key
    )
    with pytest.raises(ManifestRejected, match='network "other-net" is not the current network'):
        accept_update(network.manifest, data, NOW)


def test_co_signed_manifest(network: NetworkKit) -> None:
    intruder = signing_key("intruder")
    data = add_signature(sign_manifest(_next(network), intruder), network.coordinator_key)
    assert len(parse_signed_manifest(data).signatures) == 2
    assert accept_update(network.manifest, data, NOW).epoch == 2
    # Signing twice with one key keeps one signature.
    again = add_signature(data, network.coordinator_key)
    assert len(parse_signed_manifest(again).signatures) == 2


def test_a_signed_but_invalid_document_names_its_field(network: NetworkKit) -> None:
    envelope = json.loads(sign_manifest(network.manifest, network.coordinator_key))
    envelope["manifest"]["members"][0]["countries"] = ["XX"]
    document = envelope["manifest"]
    sig = network.coordinator_key.sign(canonical_json(document))
    envelope["signatures"][0]["signature"] = base64.b64encode(sig).decode()
    with pytest.raises(ManifestError, match=r'^manifest\.members\[0\]\.countries\[0\]: "XX"'):
        load_signed_manifest(json.dumps(envelope).encode(), trusted=network.manifest, now=NOW)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"not json", "signed manifest: invalid JSON at line 1"),
        (b"[]", "signed manifest: expected a table, got array"),
        (b'{"manifest": {}}', "signatures: required field missing"),
        (b'{"manifest": {}, "signatures": [], "x": 1}', "x: unknown field"),
        (b'{"manifest": [], "signatures": []}', "manifest: expected a table, got array"),
        (
            b'{"manifest": {}, "signatures": [{"key_id": "k", "signature": "!!"}]}',
            "signatures[0].signature: not base64",
        ),
        (
            b'{"manifest": {}, "signatures": [{"key_id": "k", "signature": "AAAA"}]}',
            "signatures[0].signature: an Ed25519 signature is 64 bytes, got 3",
        ),
        (b'{"manifest": {}, "signatures": [{"signature": "AAAA"}]}', "signatures[0].key_id: req"),
        (b'{"manifest": {"a": 1, "a": 2}, "signatures": []}', 'duplicate key "a"'),
    ],
)
def test_malformed_signed_files(network: NetworkKit, data: bytes, expected: str) -> None:
    with pytest.raises(ManifestError) as info:
        load_signed_manifest(data, trusted=network.manifest, now=NOW)
    assert expected in info.value.message


def test_load_signed_needs_an_aware_now(network: NetworkKit) -> None:
    data = sign_manifest(network.manifest, network.coordinator_key)
    with pytest.raises(ManifestError, match="now: time has no timezone"):
        load_signed_manifest(data, trusted=network.manifest, now=datetime(2025, 2, 1))
