"""The network manifest: who the members are, which countries they serve, which keys they sign with.

Every node holds the same manifest and trusts only what it says, so this module is strict: the model
is frozen dataclasses that validate themselves on construction (the builder functions at the bottom
can therefore never produce an invalid manifest), and the parser turns a TOML/JSON document into
that model with errors that name the offending field, e.g. ``members[2].countries[0]: …``.

A manifest is distributed as a JSON file ``{"manifest": <document>, "signatures": [...]}``,
signed by coordinator keys over the canonical JSON of the document. A node accepts a new one only if
a key that the *current* manifest trusts signed it, was valid when it was issued, and the epoch is
higher.

Keys are never deleted from a manifest: an expired or revoked key still verifies what it signed
before that time, so old reports stay verifiable; anything it signed later is refused. The signing
time is the signer's claim, bound by the signature; checking it against the receiver's clock is the
caller's job.

The package has one module per job: ``model`` (the validated dataclasses), ``document`` (parse a
mapping, render JSON/TOML), ``files`` (read and write the bare document), ``signing`` (canonical
bytes, the signed envelope, the update policy), ``editing`` (pure edit functions), ``readers``
(members trusted network-wide for read scopes) and ``checks`` (value checks and field-path
errors they share). Import from ``auth.manifest``; the names below are its public surface.
"""

from __future__ import annotations

from auth.manifest.checks import MEMBER_ID_PATTERN, NETWORK_PATTERN
from auth.manifest.document import (
    manifest_to_document,
    manifest_to_json,
    manifest_to_toml,
    parse_manifest,
)
from auth.manifest.editing import (
    add_coordinator_key,
    add_key,
    add_member,
    bump_epoch,
    replace_member,
    revoke_coordinator_key,
    revoke_key,
    rotate_coordinator_key,
    rotate_key,
    set_coordinator,
    set_network_reader,
    set_orphan_rule,
    set_tls_identity,
)
from auth.manifest.files import dump_manifest, load_manifest
from auth.manifest.model import Manifest, Member, MemberKey
from auth.manifest.readers import (
    NETWORK_SCOPES,
    NetworkReader,
    network_audience,
    network_issuer,
)
from auth.manifest.signing import (
    DEFAULT_MAX_SKEW,
    ManifestSignature,
    SignedManifest,
    accept_update,
    add_signature,
    canonical_json,
    load_signed_manifest,
    parse_signed_manifest,
    sign_manifest,
)

__all__ = [
    "DEFAULT_MAX_SKEW",
    "MEMBER_ID_PATTERN",
    "NETWORK_PATTERN",
    "NETWORK_SCOPES",
    "Manifest",
    "ManifestSignature",
    "Member",
    "MemberKey",
    "NetworkReader",
    "SignedManifest",
    "accept_update",
    "add_coordinator_key",
    "add_key",
    "add_member",
    "add_signature",
    "bump_epoch",
    "canonical_json",
    "dump_manifest",
    "load_manifest",
    "load_signed_manifest",
    "manifest_to_document",
    "manifest_to_json",
    "manifest_to_toml",
    "network_audience",
    "network_issuer",
    "parse_manifest",
    "parse_signed_manifest",
    "replace_member",
    "revoke_coordinator_key",
    "revoke_key",
    "rotate_coordinator_key",
    "rotate_key",
    "set_coordinator",
    "set_network_reader",
    "set_orphan_rule",
    "set_tls_identity",
    "sign_manifest",
]
