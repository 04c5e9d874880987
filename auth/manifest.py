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
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import tomllib
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from auth import strict_json
from auth.countries import ISO_3166_ALPHA2
from auth.errors import (
    KeyFormatError,
    KeyNotValid,
    ManifestError,
    ManifestNotYetValid,
    ManifestRejected,
    SignatureInvalid,
    UnknownKey,
    UnknownMember,
)
from auth.keys import SIGNATURE_SIZE, PublicKey, SigningKey
from auth.strict_json import StrictJsonError

__all__ = [
    "DEFAULT_MAX_SKEW",
    "Manifest",
    "ManifestSignature",
    "Member",
    "MemberKey",
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
    "parse_manifest",
    "parse_signed_manifest",
    "replace_member",
    "revoke_coordinator_key",
    "revoke_key",
    "rotate_coordinator_key",
    "rotate_key",
    "set_coordinator",
    "set_orphan_rule",
    "sign_manifest",
]

MEMBER_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
NETWORK_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_ENDPOINT = re.compile(
    r"(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+)):(?P<port>\d{1,5})"
)
_MAX_NAME = 200

# A manifest issued slightly "in the future" is clock skew between coordinator and node.
DEFAULT_MAX_SKEW = timedelta(minutes=5)


# --- errors with field paths ----------------------------------------------------------------------


_TLS_IDENTITY = re.compile(r"sha256:[0-9a-f]{64}|spiffe://ihx/[a-z0-9][a-z0-9-]{1,62}")


def _join(prefix: str, message: str) -> str:
    return f"{prefix}{message}" if message.startswith("[") else f"{prefix}.{message}"


@contextmanager
def _within(prefix: str) -> Iterator[None]:
    """Prefix the field path of ManifestErrors raised inside: nested objects report full paths."""
    try:
        yield
    except ManifestError as exc:
        raise ManifestError(_join(prefix, exc.message)) from None


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


# --- value checks shared by the model and the parser ----------------------------------------------


def _country_problem(cc: object) -> str | None:
    if isinstance(cc, str) and cc in ISO_3166_ALPHA2:
        return None
    return f"{_quote(cc)} is not an upper-case ISO 3166-1 alpha-2 country code"


def _member_id_problem(member_id: object) -> str | None:
    if isinstance(member_id, str) and MEMBER_ID_PATTERN.fullmatch(member_id):
        return None
    return (
        f"{_quote(member_id)} is not a member id "
        "(2-63 characters: lower-case letters, digits and '-', not starting with '-')"
    )


def _endpoint_problem(endpoint: object) -> str | None:
    if not isinstance(endpoint, str):
        return f"expected a string, got {_type_name(endpoint)}"
    match = _ENDPOINT.fullmatch(endpoint)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        return f'{_quote(endpoint)} is not a "host:port" endpoint'
    return None


def _text_problem(value: object, *, max_len: int = _MAX_NAME) -> str | None:
    if not isinstance(value, str):
        return f"expected a string, got {_type_name(value)}"
    if not value.strip():
        return "must not be empty"
    if len(value) > max_len:
        return f"longer than {max_len} characters"
    if any(unicodedata.category(c) == "Cc" for c in value):
        return "must not contain control characters"
    return None


def _quote(value: object) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def _aware(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ManifestError(f"{name}: expected a datetime, got {_type_name(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ManifestError(f"{name}: time has no timezone")
    # One representation (UTC) so documents, logs and comparisons agree.
    return value.astimezone(UTC)


def _format_time(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"


# --- the model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberKey:
    """A signing key of a member (or of the coordinator) with its validity window."""

    key_id: str
    public_key: PublicKey
    not_before: datetime
    not_after: datetime | None = None
    revoked_at: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, PublicKey):
            raise ManifestError(
                f"public_key: expected a PublicKey, got {_type_name(self.public_key)}"
            )
        if self.key_id != self.public_key.key_id:
            raise ManifestError(
                f"key_id: {_quote(self.key_id)} does not match the public key, "
                f"whose key id is {_quote(self.public_key.key_id)}"
            )
        object.__setattr__(self, "not_before", _aware(self.not_before, "not_before"))
        for name in ("not_after", "revoked_at"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _aware(value, name))
        if self.not_after is not None and self.not_after <= self.not_before:
            raise ManifestError(
                f"not_after: {_format_time(self.not_after)} is not later than "
                f"not_before {_format_time(self.not_before)}"
            )

    @classmethod
    def of(
        cls,
        public_key: PublicKey,
        not_before: datetime,
        not_after: datetime | None = None,
        revoked_at: datetime | None = None,
    ) -> MemberKey:
        return cls(public_key.key_id, public_key, not_before, not_after, revoked_at)

    def valid_at(self, t: datetime) -> bool:
        return self.invalid_reason(t) is None

    def invalid_reason(self, t: datetime) -> str | None:
        """Why this key could not sign at ``t`` ("revoked at …", "expired at …", …), or None."""
        if self.revoked_at is not None and t >= self.revoked_at:
            return f"revoked at {_format_time(self.revoked_at)}"
        if self.not_after is not None and t >= self.not_after:
            return f"expired at {_format_time(self.not_after)}"
        if t < self.not_before:
            return f"not valid before {_format_time(self.not_before)}"
        return None


@dataclass(frozen=True)
class Member:
    """A hotline in the network: the countries it is responsible for and its node."""

    id: str
    name: str
    countries: frozenset[str]
    endpoint: str
    keys: tuple[MemberKey, ...]
    tls_identity: str | None = None
    _keys_by_id: Mapping[str, MemberKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (problem := _member_id_problem(self.id)) is not None:
            raise ManifestError(f"id: {problem}")
        if (problem := _text_problem(self.name)) is not None:
            raise ManifestError(f"name: {problem}")
        if isinstance(self.countries, str):
            raise ManifestError("countries: expected a set of country codes, got a string")
        countries = frozenset(self.countries)
        for cc in sorted(countries, key=str):
            if (problem := _country_problem(cc)) is not None:
                raise ManifestError(f"countries: {problem}")
        object.__setattr__(self, "countries", countries)
        if (problem := _endpoint_problem(self.endpoint)) is not None:
            raise ManifestError(f"endpoint: {problem}")
        if self.tls_identity is not None and (problem := _text_problem(self.tls_identity)):
            raise ManifestError(f"tls_identity: {problem}")
        if self.tls_identity is not None and not _TLS_IDENTITY.fullmatch(self.tls_identity):
            raise ManifestError(
                f"tls_identity: {_quote(self.tls_identity)} is neither sha256:<64 hex digits> "
                "of the certificate nor spiffe://ihx/<member id>"
            )
        keys = tuple(self.keys)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "_keys_by_id", _index_keys(keys, "keys"))

    def key(self, key_id: str) -> MemberKey | None:
        return self._keys_by_id.get(key_id)

    @property
    def joined_at(self) -> datetime | None:
        """When the member could first sign anything: its earliest key's ``not_before``."""
        return min((k.not_before for k in self.keys), default=None)


def _index_keys(keys: tuple[MemberKey, ...], path: str) -> Mapping[str, MemberKey]:
    if not keys:
        # A member without a key could never sign anything, so it could never take part.
        raise ManifestError(f"{path}: at least one key is required")
    index: dict[str, MemberKey] = {}
    for i, key in enumerate(keys):
        if not isinstance(key, MemberKey):
            raise ManifestError(f"{path}[{i}]: expected a MemberKey, got {_type_name(key)}")
        if key.key_id in index:
            raise ManifestError(f"{path}[{i}].key_id: duplicate key id {_quote(key.key_id)}")
        index[key.key_id] = key
    return MappingProxyType(index)


@dataclass(frozen=True)
class Manifest:
    """One epoch of the network: members, orphan rules, coordinator, keys for the next epoch."""

    network: str
    epoch: int
    issued_at: datetime
    members: tuple[Member, ...]
    orphan_rules: Mapping[str, str] = field(hash=False)
    coordinator: str
    coordinator_keys: tuple[MemberKey, ...]
    _by_id: Mapping[str, Member] = field(init=False, repr=False, compare=False)
    _by_country: Mapping[str, Member] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.network, str) or not NETWORK_PATTERN.fullmatch(self.network):
            raise ManifestError(
                f"network: {_quote(self.network)} is not a network name "
                "(1-63 characters: lower-case letters, digits, '.', '_' and '-')"
            )
        if isinstance(self.epoch, bool) or not isinstance(self.epoch, int) or self.epoch < 1:
            raise ManifestError(f"epoch: must be an integer >= 1, got {self.epoch!r}")
        object.__setattr__(self, "issued_at", _aware(self.issued_at, "issued_at"))

        members = tuple(self.members)
        object.__setattr__(self, "members", members)
        if not members:
            raise ManifestError("members: at least one member is required")
        by_id: dict[str, Member] = {}
        by_country: dict[str, Member] = {}
        key_owner: dict[str, str] = {}
        for i, member in enumerate(members):
            if not isinstance(member, Member):
                raise ManifestError(f"members[{i}]: expected a Member, got {_type_name(member)}")
            if member.id in by_id:
                raise ManifestError(f"members[{i}].id: duplicate member id {_quote(member.id)}")
            by_id[member.id] = member
            for cc in sorted(member.countries):
                if cc in by_country:
                    raise ManifestError(
                        f"members[{i}].countries: {_quote(cc)} is already served by member "
                        f"{_quote(by_country[cc].id)}"
                    )
                by_country[cc] = member
            for j, key in enumerate(member.keys):
                # One key, one signer: otherwise a signature could not be attributed to a member.
                if key.key_id in key_owner:
                    raise ManifestError(
                        f"members[{i}].keys[{j}].key_id: key {_quote(key.key_id)} is already "
                        f"held by member {_quote(key_owner[key.key_id])}"
                    )
                key_owner[key.key_id] = member.id

        if not isinstance(self.orphan_rules, Mapping):
            raise ManifestError(
                f"orphan_rules: expected a table, got {_type_name(self.orphan_rules)}"
            )
        rules = dict(self.orphan_rules)
        for cc, member_id in rules.items():
            path = _key_path("orphan_rules", cc)
            if (problem := _country_problem(cc)) is not None:
                raise ManifestError(f"{path}: {problem}")
            if cc in by_country:
                raise ManifestError(
                    f"{path}: {_quote(cc)} is served by member {_quote(by_country[cc].id)}; "
                    "orphan rules are for countries without a member"
                )
            if not isinstance(member_id, str):
                raise ManifestError(f"{path}: expected a member id, got {_type_name(member_id)}")
            if member_id not in by_id:
                raise ManifestError(f"{path}: unknown member {_quote(member_id)}")
        object.__setattr__(self, "orphan_rules", MappingProxyType(rules))

        if not isinstance(self.coordinator, str) or self.coordinator not in by_id:
            raise ManifestError(f"coordinator: unknown member {_quote(self.coordinator)}")
        coordinator_keys = tuple(self.coordinator_keys)
        object.__setattr__(self, "coordinator_keys", coordinator_keys)
        _index_keys(coordinator_keys, "coordinator_keys")

        object.__setattr__(self, "_by_id", MappingProxyType(by_id))
        object.__setattr__(self, "_by_country", MappingProxyType(by_country))

    def member(self, member_id: str) -> Member:
        member = self._by_id.get(member_id)
        if member is None:
            raise UnknownMember(f"unknown member {_quote(member_id)} in {self._label()}")
        return member

    def find_member(self, member_id: str) -> Member | None:
        return self._by_id.get(member_id)

    def member_for_country(self, cc: str) -> Member | None:
        """The member that serves ``cc`` — not the orphan rule; see ``orphan_member_for``."""
        return self._by_country.get(cc)

    def orphan_member_for(self, cc: str) -> Member | None:
        """The member an orphan rule assigns ``cc`` to, if any."""
        member_id = self.orphan_rules.get(cc)
        return None if member_id is None else self._by_id[member_id]

    @property
    def coordinator_member(self) -> Member:
        return self._by_id[self.coordinator]

    def verify_member_signature(
        self, member_id: str, key_id: str, signed_at: datetime, message: bytes, signature: bytes
    ) -> MemberKey:
        """Check that ``member_id`` signed ``message`` with ``key_id``, valid at ``signed_at``.

        Returns the key used. Validity is checked before the signature because it costs nothing and
        the signature costs ~135 µs.
        """
        member = self.member(member_id)
        key = member.key(key_id)
        if key is None:
            raise UnknownKey(f"member {_quote(member_id)} has no key {_quote(key_id)}")
        reason = key.invalid_reason(signed_at)
        if reason is not None:
            raise KeyNotValid(
                f"key {key_id} of member {_quote(member_id)} {_verb(reason)}; "
                f"the message was signed at {_format_time(signed_at)}"
            )
        key.public_key.verify(signature, message)
        return key

    def _label(self) -> str:
        return f"manifest {self.network} epoch {self.epoch}"


def _verb(reason: str) -> str:
    return reason if reason.startswith("not ") else f"was {reason}"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key_path(prefix: str, key: object) -> str:
    """``prefix.key``, or ``prefix["odd key"]`` when the key would not read as one word."""
    if isinstance(key, str) and _BARE_KEY.fullmatch(key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{_quote(key)}]"


# --- parsing --------------------------------------------------------------------------------------


def _table(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ManifestError(f"{path}: expected a table, got {_type_name(value)}")
    return value


def _array(value: object, path: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ManifestError(f"{path}: expected an array, got {_type_name(value)}")
    return list(value)


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{path}: expected a string, got {_type_name(value)}")
    return value


def _fields(
    table: Mapping[str, Any], prefix: str, required: Sequence[str], optional: Sequence[str] = ()
) -> None:
    """Unknown fields are errors (they are usually typos); every required field must be there."""
    known = (*required, *optional)
    for name in table:
        if name not in known:
            raise ManifestError(
                f"{_key_path(prefix, name)}: unknown field "
                f"(known fields: {', '.join(sorted(known))})"
            )
    for name in required:
        if name not in table:
            raise ManifestError(f"{_key_path(prefix, name)}: required field missing")


def _time(value: object, path: str) -> datetime:
    if isinstance(value, datetime):
        # TOML offset date-times arrive already parsed; local date-times have no timezone.
        return _aware(value, path)
    if not isinstance(value, str):
        raise ManifestError(f"{path}: expected an RFC 3339 time string, got {_type_name(value)}")
    problem = (
        f"{path}: {_quote(value)} is not an RFC 3339 time with a timezone, "
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
    table = _table(value, path)
    _fields(table, path, ("public_key", "not_before"), ("key_id", "not_after", "revoked_at"))
    encoded = _string(table["public_key"], f"{path}.public_key")
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
        _string(key_id, f"{path}.key_id")
    with _within(path):
        return MemberKey(
            key_id=key_id,
            public_key=public_key,
            not_before=_time(table["not_before"], "not_before"),
            not_after=_optional_time(table, "not_after"),
            revoked_at=_optional_time(table, "revoked_at"),
        )


def _parse_keys(value: object, path: str) -> tuple[MemberKey, ...]:
    return tuple(_parse_key(item, f"{path}[{i}]") for i, item in enumerate(_array(value, path)))


def _parse_countries(value: object, path: str) -> frozenset[str]:
    seen: set[str] = set()
    for i, cc in enumerate(_array(value, path)):
        if not isinstance(cc, str):
            raise ManifestError(f"{path}[{i}]: expected a string, got {_type_name(cc)}")
        if (problem := _country_problem(cc)) is not None:
            raise ManifestError(f"{path}[{i}]: {problem}")
        if cc in seen:
            raise ManifestError(f"{path}[{i}]: duplicate country {_quote(cc)}")
        seen.add(cc)
    return frozenset(seen)


def _parse_member(value: object, path: str) -> Member:
    table = _table(value, path)
    _fields(table, path, ("id", "name", "countries", "endpoint", "keys"), ("tls_identity",))
    tls_identity = table.get("tls_identity")
    with _within(path):
        return Member(
            id=_string(table["id"], "id"),
            name=_string(table["name"], "name"),
            countries=_parse_countries(table["countries"], "countries"),
            endpoint=_string(table["endpoint"], "endpoint"),
            keys=_parse_keys(table["keys"], "keys"),
            tls_identity=None if tls_identity is None else _string(tls_identity, "tls_identity"),
        )


_TOP_REQUIRED = ("network", "epoch", "issued_at", "coordinator", "coordinator_keys", "members")
_TOP_OPTIONAL = ("orphan_rules",)


def parse_manifest(data: Mapping[str, Any]) -> Manifest:
    """Validate a parsed TOML/JSON manifest document; every ManifestError names its field."""
    if not isinstance(data, Mapping):
        raise ManifestError(f"manifest: expected a table, got {_type_name(data)}")
    if "manifest" in data and "signatures" in data:
        raise ManifestError(
            "manifest: this is a signed manifest (manifest + signatures); "
            "read it with load_signed_manifest"
        )
    _fields(data, "", _TOP_REQUIRED, _TOP_OPTIONAL)
    epoch = data["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise ManifestError(f"epoch: expected an integer, got {_type_name(epoch)}")
    rules = data.get("orphan_rules")
    orphan_rules: dict[str, str] = {}
    if rules is not None:
        for cc, member_id in _table(rules, "orphan_rules").items():
            orphan_rules[cc] = _string(member_id, _key_path("orphan_rules", cc))
    return Manifest(
        network=_string(data["network"], "network"),
        epoch=epoch,
        issued_at=_time(data["issued_at"], "issued_at"),
        members=tuple(
            _parse_member(item, f"members[{i}]")
            for i, item in enumerate(_array(data["members"], "members"))
        ),
        orphan_rules=orphan_rules,
        coordinator=_string(data["coordinator"], "coordinator"),
        coordinator_keys=_parse_keys(data["coordinator_keys"], "coordinator_keys"),
    )


# --- documents and files --------------------------------------------------------------------------


def _key_document(key: MemberKey) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key_id": key.key_id,
        "public_key": key.public_key.to_b64(),
        "not_before": _format_time(key.not_before),
    }
    if key.not_after is not None:
        doc["not_after"] = _format_time(key.not_after)
    if key.revoked_at is not None:
        doc["revoked_at"] = _format_time(key.revoked_at)
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
    """The document form (plain dicts, lists, strings, ints); ``parse_manifest`` is its inverse."""
    return {
        "network": manifest.network,
        "epoch": manifest.epoch,
        "issued_at": _format_time(manifest.issued_at),
        "coordinator": manifest.coordinator,
        "coordinator_keys": [_key_document(k) for k in manifest.coordinator_keys],
        "orphan_rules": dict(sorted(manifest.orphan_rules.items())),
        "members": [_member_document(m) for m in manifest.members],
    }


def manifest_to_json(manifest: Manifest) -> str:
    return json.dumps(manifest_to_document(manifest), indent=2, ensure_ascii=False) + "\n"


def _toml_string(value: str) -> str:
    out = ['"']
    for c in value:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")  # a bug here, not bad input


def _toml_pairs(table: Mapping[str, Any]) -> list[str]:
    return [
        f"{name} = {_toml_value(value)}"
        for name, value in table.items()
        if not (isinstance(value, list) and value and isinstance(value[0], dict))
    ]


def manifest_to_toml(manifest: Manifest) -> str:
    """The document as TOML (times as RFC 3339 strings, like the JSON form)."""
    doc = manifest_to_document(manifest)
    lines = _toml_pairs({k: v for k, v in doc.items() if k != "orphan_rules"})
    lines += ["", "[orphan_rules]", *_toml_pairs(doc["orphan_rules"])]
    for key in doc["coordinator_keys"]:
        lines += ["", "[[coordinator_keys]]", *_toml_pairs(key)]
    for member in doc["members"]:
        lines += ["", "[[members]]", *_toml_pairs(member)]
        for key in member["keys"]:
            lines += ["", "[[members.keys]]", *_toml_pairs(key)]
    return "\n".join(lines) + "\n"


def _read_document(path: Path) -> Mapping[str, Any]:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ManifestError(f"{path}: unsupported manifest file type (use .toml or .json)")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest file not found") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else strict_json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: invalid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except StrictJsonError as exc:
        raise ManifestError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise ManifestError(f"{path}: expected a JSON object, got {_type_name(data)}")
    return data


def load_manifest(path: str | Path) -> Manifest:
    """Read a bare (unsigned) manifest document from a .toml or .json file."""
    p = Path(path)
    data = _read_document(p)
    try:
        return parse_manifest(data)
    except ManifestError as exc:
        raise ManifestError(f"{p}: {exc.message}") from None


def dump_manifest(manifest: Manifest, path: str | Path) -> None:
    """Write the bare document as .toml or .json (by suffix)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".toml":
        text = manifest_to_toml(manifest)
    elif suffix == ".json":
        text = manifest_to_json(manifest)
    else:
        raise ManifestError(f"{p}: unsupported manifest file type (use .toml or .json)")
    p.write_text(text, encoding="utf-8")


# --- signed manifests -----------------------------------------------------------------------------


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
    envelope = _table(envelope, "signed manifest")
    _fields(envelope, "", ("manifest", "signatures"))
    document = _table(envelope["manifest"], "manifest")
    signatures: list[ManifestSignature] = []
    for i, item in enumerate(_array(envelope["signatures"], "signatures")):
        path = f"signatures[{i}]"
        entry = _table(item, path)
        _fields(entry, path, ("key_id", "signature"))
        key_id = _string(entry["key_id"], f"{path}.key_id")
        encoded = _string(entry["signature"], f"{path}.signature")
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
    now = _aware(now, "now")
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

    with _within("manifest"):
        manifest = parse_manifest(signed.document)

    issued = manifest.issued_at
    reasons = [(k, k.invalid_reason(issued)) for k in verified]
    if all(reason is not None for _, reason in reasons):
        detail = "; ".join(f"key {k.key_id} was {reason}" for k, reason in reasons)
        raise ManifestRejected(
            f"no valid coordinator signature: {detail} "
            f"(the manifest was issued at {_format_time(issued)})"
        )
    if issued > now + max_skew:
        raise ManifestNotYetValid(
            f"issued_at {_format_time(issued)} is in the future (now is {_format_time(now)})"
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
            f"network {_quote(manifest.network)} is not the current network "
            f"{_quote(current.network)}"
        )
    if manifest.epoch <= current.epoch:
        raise ManifestRejected(
            f"epoch {manifest.epoch} is not higher than the current epoch {current.epoch}"
        )
    if manifest.issued_at < current.issued_at:
        raise ManifestRejected(
            f"issued_at {_format_time(manifest.issued_at)} is earlier than the current "
            f"manifest's {_format_time(current.issued_at)}"
        )
    return manifest


# --- builder: pure functions returning a new, re-validated Manifest -------------------------------


def add_member(manifest: Manifest, member: Member) -> Manifest:
    if manifest.find_member(member.id) is not None:
        raise ManifestError(f"members: member {_quote(member.id)} already exists")
    return dataclasses.replace(manifest, members=(*manifest.members, member))


def replace_member(manifest: Manifest, member: Member) -> Manifest:
    """Replace the member with the same id (its position is kept, so diffs stay small)."""
    manifest.member(member.id)
    members = tuple(member if m.id == member.id else m for m in manifest.members)
    return dataclasses.replace(manifest, members=members)


def set_orphan_rule(manifest: Manifest, country: str, member_id: str | None) -> Manifest:
    """Assign ``country`` to ``member_id``, or drop its rule with None."""
    rules = dict(manifest.orphan_rules)
    if member_id is None:
        rules.pop(country, None)
    else:
        rules[country] = member_id
    return dataclasses.replace(manifest, orphan_rules=rules)


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
    raise UnknownKey(f"{owner} has no key {_quote(key_id)}")


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
            f"keys: cannot retire key {old_key_id} at {_format_time(retire)}: it only becomes "
            f"valid at {_format_time(old.not_before)}"
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
    owner = f"member {_quote(member_id)}"
    return _with_member_keys(
        manifest,
        member_id,
        _rotated(keys, old_key_id, new_key, at=at, overlap=overlap, owner=owner),
    )


def revoke_key(manifest: Manifest, member_id: str, key_id: str, *, at: datetime) -> Manifest:
    """Mark a member key revoked from ``at``; what it signed before stays verifiable."""
    keys = manifest.member(member_id).keys
    owner = f"member {_quote(member_id)}"
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
