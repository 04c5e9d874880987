"""The manifest model: members, their keys and the network's epoch, validated on construction.

Every node holds the same manifest and trusts only what it says, so the model is strict: frozen
dataclasses that check themselves in ``__post_init__`` (with errors that name the field), so no
code path — parser, editing function or test — can hold an invalid manifest. ``Manifest`` also
answers the questions the rest of the node asks: who serves a country, which member an orphan
rule names, and whether a member's key was valid when it signed something.

Keys are never deleted: an expired or revoked key still verifies what it signed before that time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from auth.errors import KeyNotValid, ManifestError, UnknownKey, UnknownMember
from auth.keys import PublicKey
from auth.manifest.checks import (
    NETWORK_PATTERN,
    TLS_IDENTITY_PATTERN,
    aware,
    country_problem,
    endpoint_problem,
    format_time,
    key_path,
    member_id_problem,
    quote,
    text_problem,
    type_name,
)
from auth.manifest.readers import NetworkReader

__all__ = ["Manifest", "Member", "MemberKey"]


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
                f"public_key: expected a PublicKey, got {type_name(self.public_key)}"
            )
        if self.key_id != self.public_key.key_id:
            raise ManifestError(
                f"key_id: {quote(self.key_id)} does not match the public key, "
                f"whose key id is {quote(self.public_key.key_id)}"
            )
        object.__setattr__(self, "not_before", aware(self.not_before, "not_before"))
        for name in ("not_after", "revoked_at"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, aware(value, name))
        if self.not_after is not None and self.not_after <= self.not_before:
            raise ManifestError(
                f"not_after: {format_time(self.not_after)} is not later than "
                f"not_before {format_time(self.not_before)}"
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
            return f"revoked at {format_time(self.revoked_at)}"
        if self.not_after is not None and t >= self.not_after:
            return f"expired at {format_time(self.not_after)}"
        if t < self.not_before:
            return f"not valid before {format_time(self.not_before)}"
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
        if (problem := member_id_problem(self.id)) is not None:
            raise ManifestError(f"id: {problem}")
        if (problem := text_problem(self.name)) is not None:
            raise ManifestError(f"name: {problem}")
        if isinstance(self.countries, str):
            raise ManifestError("countries: expected a set of country codes, got a string")
        countries = frozenset(self.countries)
        for cc in sorted(countries, key=str):
            if (problem := country_problem(cc)) is not None:
                raise ManifestError(f"countries: {problem}")
        object.__setattr__(self, "countries", countries)
        if (problem := endpoint_problem(self.endpoint)) is not None:
            raise ManifestError(f"endpoint: {problem}")
        if self.tls_identity is not None and (problem := text_problem(self.tls_identity)):
            raise ManifestError(f"tls_identity: {problem}")
        if self.tls_identity is not None and not TLS_IDENTITY_PATTERN.fullmatch(self.tls_identity):
            raise ManifestError(
                f"tls_identity: {quote(self.tls_identity)} is neither sha256:<64 hex digits> "
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
            raise ManifestError(f"{path}[{i}]: expected a MemberKey, got {type_name(key)}")
        if key.key_id in index:
            raise ManifestError(f"{path}[{i}].key_id: duplicate key id {quote(key.key_id)}")
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
    # Members whose network tokens every node accepts (readers.py); () in older manifests.
    network_readers: tuple[NetworkReader, ...] = ()
    _by_id: Mapping[str, Member] = field(init=False, repr=False, compare=False)
    _by_country: Mapping[str, Member] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.network, str) or not NETWORK_PATTERN.fullmatch(self.network):
            raise ManifestError(
                f"network: {quote(self.network)} is not a network name "
                "(1-63 characters: lower-case letters, digits, '.', '_' and '-')"
            )
        if isinstance(self.epoch, bool) or not isinstance(self.epoch, int) or self.epoch < 1:
            raise ManifestError(f"epoch: must be an integer >= 1, got {self.epoch!r}")
        object.__setattr__(self, "issued_at", aware(self.issued_at, "issued_at"))

        members = tuple(self.members)
        object.__setattr__(self, "members", members)
        by_id, by_country = _index_members(members)
        rules = _checked_orphan_rules(self.orphan_rules, by_id, by_country)
        object.__setattr__(self, "orphan_rules", MappingProxyType(rules))

        if not isinstance(self.coordinator, str) or self.coordinator not in by_id:
            raise ManifestError(f"coordinator: unknown member {quote(self.coordinator)}")
        coordinator_keys = tuple(self.coordinator_keys)
        object.__setattr__(self, "coordinator_keys", coordinator_keys)
        _index_keys(coordinator_keys, "coordinator_keys")
        readers = tuple(self.network_readers)
        _check_readers(readers, by_id)
        object.__setattr__(self, "network_readers", readers)

        object.__setattr__(self, "_by_id", MappingProxyType(by_id))
        object.__setattr__(self, "_by_country", MappingProxyType(by_country))

    def member(self, member_id: str) -> Member:
        member = self._by_id.get(member_id)
        if member is None:
            raise UnknownMember(f"unknown member {quote(member_id)} in {self._label()}")
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

    def network_reader(self, member_id: str) -> NetworkReader | None:
        """The network-wide read grant of ``member_id``, if the manifest gives it one."""
        return next((r for r in self.network_readers if r.member == member_id), None)

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
            raise UnknownKey(f"member {quote(member_id)} has no key {quote(key_id)}")
        reason = key.invalid_reason(signed_at)
        if reason is not None:
            raise KeyNotValid(
                f"key {key_id} of member {quote(member_id)} {_verb(reason)}; "
                f"the message was signed at {format_time(signed_at)}"
            )
        key.public_key.verify(signature, message)
        return key

    def _label(self) -> str:
        return f"manifest {self.network} epoch {self.epoch}"


def _verb(reason: str) -> str:
    return reason if reason.startswith("not ") else f"was {reason}"


def _index_members(
    members: tuple[Member, ...],
) -> tuple[dict[str, Member], dict[str, Member]]:
    """(member id → member, country → member); a country or key held twice is an error."""
    if not members:
        raise ManifestError("members: at least one member is required")
    by_id: dict[str, Member] = {}
    by_country: dict[str, Member] = {}
    key_owner: dict[str, str] = {}
    for i, member in enumerate(members):
        if not isinstance(member, Member):
            raise ManifestError(f"members[{i}]: expected a Member, got {type_name(member)}")
        if member.id in by_id:
            raise ManifestError(f"members[{i}].id: duplicate member id {quote(member.id)}")
        by_id[member.id] = member
        for cc in sorted(member.countries):
            if cc in by_country:
                raise ManifestError(
                    f"members[{i}].countries: {quote(cc)} is already served by member "
                    f"{quote(by_country[cc].id)}"
                )
            by_country[cc] = member
        for j, key in enumerate(member.keys):
            # One key, one signer: otherwise a signature could not be attributed to a member.
            if key.key_id in key_owner:
                raise ManifestError(
                    f"members[{i}].keys[{j}].key_id: key {quote(key.key_id)} is already "
                    f"held by member {quote(key_owner[key.key_id])}"
                )
            key_owner[key.key_id] = member.id
    return by_id, by_country


def _check_readers(readers: tuple[NetworkReader, ...], by_id: Mapping[str, Member]) -> None:
    seen: set[str] = set()
    for i, reader in enumerate(readers):
        if not isinstance(reader, NetworkReader):
            raise ManifestError(
                f"network_readers[{i}]: expected a NetworkReader, got {type_name(reader)}"
            )
        if reader.member not in by_id:
            raise ManifestError(
                f"network_readers[{i}].member: unknown member {quote(reader.member)}"
            )
        if reader.member in seen:
            raise ManifestError(
                f"network_readers[{i}].member: {quote(reader.member)} is already a reader"
            )
        seen.add(reader.member)


def _checked_orphan_rules(
    orphan_rules: object, by_id: Mapping[str, Member], by_country: Mapping[str, Member]
) -> dict[str, str]:
    """The orphan rules as a dict: countries without a member, each assigned to a known member."""
    if not isinstance(orphan_rules, Mapping):
        raise ManifestError(f"orphan_rules: expected a table, got {type_name(orphan_rules)}")
    rules = dict(orphan_rules)
    for cc, member_id in rules.items():
        path = key_path("orphan_rules", cc)
        if (problem := country_problem(cc)) is not None:
            raise ManifestError(f"{path}: {problem}")
        if cc in by_country:
            raise ManifestError(
                f"{path}: {quote(cc)} is served by member {quote(by_country[cc].id)}; "
                "orphan rules are for countries without a member"
            )
        if not isinstance(member_id, str):
            raise ManifestError(f"{path}: expected a member id, got {type_name(member_id)}")
        if member_id not in by_id:
            raise ManifestError(f"{path}: unknown member {quote(member_id)}")
    return rules
