"""The manifest as a document: parse a TOML/JSON mapping into the model, render it back.

``parse_manifest`` turns an already-decoded document (``tomllib``/JSON output) into a ``Manifest``;
unknown fields are errors (they are usually typos) and every error names its field path.
``manifest_to_document`` is its exact inverse in plain JSON types (times as RFC 3339 strings),
which is also what a manifest signature covers. The JSON and TOML texts are renderings of that one
document; TOML is written by ``tomli-w`` (reading stays on the standard library's ``tomllib``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import tomli_w

from auth.errors import KeyFormatError, ManifestError
from auth.keys import PublicKey
from auth.manifest.checks import (
    as_array,
    as_string,
    as_table,
    aware,
    check_fields,
    country_problem,
    format_time,
    key_path,
    quote,
    type_name,
    within,
)
from auth.manifest.model import Manifest, Member, MemberKey
from auth.manifest.readers import NetworkReader, scope_problem

__all__ = ["manifest_to_document", "manifest_to_json", "manifest_to_toml", "parse_manifest"]

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _time(value: object, path: str) -> datetime:
    if isinstance(value, datetime):
        # TOML offset date-times arrive already parsed; local date-times have no timezone.
        return aware(value, path)
    if not isinstance(value, str):
        raise ManifestError(f"{path}: expected an RFC 3339 time string, got {type_name(value)}")
    problem = (
        f"{path}: {quote(value)} is not an RFC 3339 time with a timezone, "
        'e.g. "2025-01-31T12:00:00Z"'
    )
    if not _RFC3339.fullmatch(value):
        raise ManifestError(problem)
    text = value.upper().replace(" ", "T")
    head, dot, rest = text.partition(".")
    if dot:
        # datetime keeps microseconds; finer digits are dropped rather than refused.
        digits = re.match(r"\d+", rest)
        assert digits is not None
        text = f"{head}.{digits[0][:6]}{rest[digits.end() :]}"
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        raise ManifestError(problem) from None


def _optional_time(table: Mapping[str, Any], name: str) -> datetime | None:
    value = table.get(name)
    return None if value is None else _time(value, name)


def _parse_key(value: object, path: str) -> MemberKey:
    table = as_table(value, path)
    check_fields(table, path, ("public_key", "not_before"), ("key_id", "not_after", "revoked_at"))
    encoded = as_string(table["public_key"], f"{path}.public_key")
    try:
        public_key = PublicKey.from_b64(encoded)
    except KeyFormatError as error:
        problem = "a point of small order" if "small order" in error.message else None
        raise ManifestError(
            f"{path}.public_key: not a base64 Ed25519 public key (32 bytes)"
            + (f": {problem}" if problem else "")
        ) from None
    key_id = table.get("key_id")
    if key_id is None:
        key_id = public_key.key_id
    else:
        as_string(key_id, f"{path}.key_id")
    with within(path):
        return MemberKey(
            key_id=key_id,
            public_key=public_key,
            not_before=_time(table["not_before"], "not_before"),
            not_after=_optional_time(table, "not_after"),
            revoked_at=_optional_time(table, "revoked_at"),
        )


def _parse_keys(value: object, path: str) -> tuple[MemberKey, ...]:
    return tuple(_parse_key(item, f"{path}[{i}]") for i, item in enumerate(as_array(value, path)))


def _parse_countries(value: object, path: str) -> frozenset[str]:
    seen: set[str] = set()
    for i, cc in enumerate(as_array(value, path)):
        if not isinstance(cc, str):
            raise ManifestError(f"{path}[{i}]: expected a string, got {type_name(cc)}")
        if (problem := country_problem(cc)) is not None:
            raise ManifestError(f"{path}[{i}]: {problem}")
        if cc in seen:
            raise ManifestError(f"{path}[{i}]: duplicate country {quote(cc)}")
        seen.add(cc)
    return frozenset(seen)


def _parse_member(value: object, path: str) -> Member:
    table = as_table(value, path)
    check_fields(table, path, ("id", "name", "countries", "endpoint", "keys"), ("tls_identity",))
    tls_identity = table.get("tls_identity")
    with within(path):
        return Member(
            id=as_string(table["id"], "id"),
            name=as_string(table["name"], "name"),
            countries=_parse_countries(table["countries"], "countries"),
            endpoint=as_string(table["endpoint"], "endpoint"),
            keys=_parse_keys(table["keys"], "keys"),
            tls_identity=None if tls_identity is None else as_string(tls_identity, "tls_identity"),
        )


_TOP_REQUIRED = ("network", "epoch", "issued_at", "coordinator", "coordinator_keys", "members")
_TOP_OPTIONAL = ("orphan_rules", "network_readers")


def _parse_reader(value: object, path: str) -> NetworkReader:
    table = as_table(value, path)
    check_fields(table, path, ("member", "scopes"))
    scopes: set[str] = set()
    for i, scope in enumerate(as_array(table["scopes"], f"{path}.scopes")):
        if (problem := scope_problem(scope)) is not None:
            raise ManifestError(f"{path}.scopes[{i}]: {problem}")
        assert isinstance(scope, str)
        if scope in scopes:
            raise ManifestError(f"{path}.scopes[{i}]: duplicate scope {quote(scope)}")
        scopes.add(scope)
    with within(path):
        return NetworkReader(member=as_string(table["member"], "member"), scopes=frozenset(scopes))


def _parse_readers(value: object) -> tuple[NetworkReader, ...]:
    if value is None:
        return ()
    items = as_array(value, "network_readers")
    return tuple(_parse_reader(item, f"network_readers[{i}]") for i, item in enumerate(items))


def parse_manifest(data: Mapping[str, Any]) -> Manifest:
    """Validate a parsed TOML/JSON manifest document; every ManifestError names its field."""
    if not isinstance(data, Mapping):
        raise ManifestError(f"manifest: expected a table, got {type_name(data)}")
    if "manifest" in data and "signatures" in data:
        raise ManifestError(
            "manifest: this is a signed manifest (manifest + signatures); "
            "read it with load_signed_manifest"
        )
    check_fields(data, "", _TOP_REQUIRED, _TOP_OPTIONAL)
    epoch = data["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise ManifestError(f"epoch: expected an integer, got {type_name(epoch)}")
    rules = data.get("orphan_rules")
    orphan_rules: dict[str, str] = {}
    if rules is not None:
        for cc, member_id in as_table(rules, "orphan_rules").items():
            orphan_rules[cc] = as_string(member_id, key_path("orphan_rules", cc))
    return Manifest(
        network=as_string(data["network"], "network"),
        epoch=epoch,
        issued_at=_time(data["issued_at"], "issued_at"),
        members=tuple(
            _parse_member(item, f"members[{i}]")
            for i, item in enumerate(as_array(data["members"], "members"))
        ),
        orphan_rules=orphan_rules,
        coordinator=as_string(data["coordinator"], "coordinator"),
        coordinator_keys=_parse_keys(data["coordinator_keys"], "coordinator_keys"),
        network_readers=_parse_readers(data.get("network_readers")),
    )


def _key_document(key: MemberKey) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key_id": key.key_id,
        "public_key": key.public_key.to_b64(),
        "not_before": format_time(key.not_before),
    }
    if key.not_after is not None:
        doc["not_after"] = format_time(key.not_after)
    if key.revoked_at is not None:
        doc["revoked_at"] = format_time(key.revoked_at)
    return doc


def _member_document(member: Member) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": member.id,
        "name": member.name,
        "countries": sorted(member.countries),
        "endpoint": member.endpoint,
    }
    if member.tls_identity is not None:
        doc["tls_identity"] = member.tls_identity
    doc["keys"] = [_key_document(k) for k in member.keys]
    return doc


def manifest_to_document(manifest: Manifest) -> dict[str, Any]:
    """The document form (plain dicts, lists, strings, ints); ``parse_manifest`` is its inverse.

    ``network_readers`` appears only when there are some, so a manifest without them has the
    same document — and the same signed bytes — as before the field existed.
    """
    doc: dict[str, Any] = {
        "network": manifest.network,
        "epoch": manifest.epoch,
        "issued_at": format_time(manifest.issued_at),
        "coordinator": manifest.coordinator,
        "coordinator_keys": [_key_document(k) for k in manifest.coordinator_keys],
        "orphan_rules": dict(sorted(manifest.orphan_rules.items())),
        "members": [_member_document(m) for m in manifest.members],
    }
    if manifest.network_readers:
        doc["network_readers"] = [
            {"member": r.member, "scopes": sorted(r.scopes)} for r in manifest.network_readers
        ]
    return doc


def manifest_to_json(manifest: Manifest) -> str:
    return json.dumps(manifest_to_document(manifest), indent=2, ensure_ascii=False) + "\n"


# The order a reader expects: the scalars, the orphan rules, then the keys and members.
_TOML_ORDER = (
    "network",
    "epoch",
    "issued_at",
    "coordinator",
    "orphan_rules",
    "coordinator_keys",
    "members",
    "network_readers",
)


def manifest_to_toml(manifest: Manifest) -> str:
    """The document as TOML (times as RFC 3339 strings, like the JSON form)."""
    doc = manifest_to_document(manifest)
    return tomli_w.dumps({name: doc[name] for name in _TOML_ORDER if name in doc})
