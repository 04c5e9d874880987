"""Signed manifests: the bytes a signature covers, the file envelope, and the update policy.

A manifest is distributed as a JSON file ``{"manifest": <document>, "signatures": [...]}``, signed
by coordinator keys over the canonical JSON of the document (sorted keys, no whitespace, UTF-8).
Signatures are checked over those bytes before the document is even parsed.

The update policy (``accept_update``): a node accepts a new manifest only if a key that the
*current* manifest trusts signed it, was valid when it was issued, the network is the same, the
epoch is higher and ``issued_at`` does not go backwards. The signing time is the signer's claim,
bound by the signature; checking it against the receiver's clock (``max_skew``) happens here too.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from auth import strict_json
from auth.errors import ManifestError, ManifestNotYetValid, ManifestRejected, SignatureInvalid
from auth.keys import SIGNATURE_SIZE, SigningKey
from auth.manifest.checks import (
    as_array,
    as_string,
    as_table,
    aware,
    check_fields,
    format_time,
    quote,
    within,
)
from auth.manifest.document import manifest_to_document, parse_manifest
from auth.manifest.model import Manifest, MemberKey
from auth.strict_json import StrictJsonError

__all__ = [
    "DEFAULT_MAX_SKEW",
    "ManifestSignature",
    "SignedManifest",
    "accept_update",
    "add_signature",
    "canonical_json",
    "load_signed_manifest",
    "parse_signed_manifest",
    "sign_manifest",
]

# A manifest issued slightly "in the future" is clock skew between coordinator and node.
DEFAULT_MAX_SKEW = timedelta(minutes=5)


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The bytes a manifest signature covers."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


@dataclass(frozen=True)
class ManifestSignature:
    key_id: str
    signature: bytes


@dataclass(frozen=True)
class SignedManifest:
    """The parsed envelope of a signed manifest file; nothing in it is verified yet."""

    document: Mapping[str, Any]
    signatures: tuple[ManifestSignature, ...]
    signed_bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signed_bytes", canonical_json(self.document))

    def to_bytes(self) -> bytes:
        envelope = {
            "manifest": self.document,
            "signatures": [
                {"key_id": s.key_id, "signature": base64.b64encode(s.signature).decode("ascii")}
                for s in self.signatures
            ],
        }
        return (json.dumps(envelope, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def parse_signed_manifest(data: bytes) -> SignedManifest:
    """Parse the envelope (JSON, manifest + signatures) without checking any signature."""
    try:
        envelope = strict_json.loads(data)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"signed manifest: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except StrictJsonError as exc:
        raise ManifestError(f"signed manifest: invalid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ManifestError("signed manifest: not UTF-8 JSON") from None
    envelope = as_table(envelope, "signed manifest")
    check_fields(envelope, "", ("manifest", "signatures"))
    document = as_table(envelope["manifest"], "manifest")
    signatures: list[ManifestSignature] = []
    for i, item in enumerate(as_array(envelope["signatures"], "signatures")):
        path = f"signatures[{i}]"
        entry = as_table(item, path)
        check_fields(entry, path, ("key_id", "signature"))
        key_id = as_string(entry["key_id"], f"{path}.key_id")
        encoded = as_string(entry["signature"], f"{path}.signature")
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ManifestError(f"{path}.signature: not base64") from None
        if len(signature) != SIGNATURE_SIZE:
            raise ManifestError(
                f"{path}.signature: an Ed25519 signature is {SIGNATURE_SIZE} bytes, "
                f"got {len(signature)}"
            )
        signatures.append(ManifestSignature(key_id, signature))
    return SignedManifest(document, tuple(signatures))


def sign_manifest(manifest: Manifest, key: SigningKey) -> bytes:
    """The content of a signed manifest file, signed by ``key``."""
    document = manifest_to_document(manifest)
    signed_bytes = canonical_json(document)
    return SignedManifest(
        document, (ManifestSignature(key.key_id, key.sign(signed_bytes)),)
    ).to_bytes()


def add_signature(data: bytes, key: SigningKey) -> bytes:
    """Co-sign a signed manifest file with another key (replacing an earlier signature by it)."""
    signed = parse_signed_manifest(data)
    others = tuple(s for s in signed.signatures if s.key_id != key.key_id)
    mine = ManifestSignature(key.key_id, key.sign(signed.signed_bytes))
    return SignedManifest(signed.document, (*others, mine)).to_bytes()


def load_signed_manifest(
    data: bytes,
    *,
    trusted: Sequence[MemberKey] | Manifest,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> Manifest:
    """Verify and parse a signed manifest file.

    ``trusted`` is the current manifest (its ``coordinator_keys`` are trusted) or, for a node's
    first manifest, the configured trust anchors. At least one signature must verify by a trusted
    key that was valid at the manifest's ``issued_at``, and ``issued_at`` may not lie beyond ``now``
    by more than ``max_skew``. The document is only parsed once a trusted key has signed it.
    """
    now = aware(now, "now")
    signed = parse_signed_manifest(data)
    keys = trusted.coordinator_keys if isinstance(trusted, Manifest) else tuple(trusted)
    by_id = {k.key_id: k for k in keys}
    verified: list[MemberKey] = []
    problems: list[str] = []
    if not signed.signatures:
        problems.append("the file carries no signatures")
    for sig in signed.signatures:
        key = by_id.get(sig.key_id)
        if key is None:
            problems.append(f"key {sig.key_id} is not a trusted coordinator key")
            continue
        try:
            key.public_key.verify(sig.signature, signed.signed_bytes)
        except SignatureInvalid:
            problems.append(f"the signature by {sig.key_id} does not verify")
            continue
        verified.append(key)
    if not verified:
        raise ManifestRejected("no valid coordinator signature: " + "; ".join(problems))

    with within("manifest"):
        manifest = parse_manifest(signed.document)

    issued = manifest.issued_at
    reasons = [(k, k.invalid_reason(issued)) for k in verified]
    if all(reason is not None for _, reason in reasons):
        detail = "; ".join(f"key {k.key_id} was {reason}" for k, reason in reasons)
        raise ManifestRejected(
            f"no valid coordinator signature: {detail} "
            f"(the manifest was issued at {format_time(issued)})"
        )
    if issued > now + max_skew:
        raise ManifestNotYetValid(
            f"issued_at {format_time(issued)} is in the future (now is {format_time(now)})"
        )
    return manifest


def accept_update(
    current: Manifest, data: bytes, now: datetime, *, max_skew: timedelta = DEFAULT_MAX_SKEW
) -> Manifest:
    """The new manifest in ``data`` if the current one's coordinator keys signed it and it is newer.

    ``issued_at`` may not go backwards either: otherwise a key revoked "from now on" could still
    sign a newer epoch dated before its revocation.
    """
    manifest = load_signed_manifest(data, trusted=current, now=now, max_skew=max_skew)
    if manifest.network != current.network:
        raise ManifestRejected(
            f"network {quote(manifest.network)} is not the current network {quote(current.network)}"
        )
    if manifest.epoch <= current.epoch:
        raise ManifestRejected(
            f"epoch {manifest.epoch} is not higher than the current epoch {current.epoch}"
        )
    if manifest.issued_at < current.issued_at:
        raise ManifestRejected(
            f"issued_at {format_time(manifest.issued_at)} is earlier than the current "
            f"manifest's {format_time(current.issued_at)}"
        )
    return manifest
