"""The manifest model: the country list, lookups, key validity, and validation with field paths."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from auth.countries import ISO_3166_ALPHA2
from auth.errors import (
    KeyNotValid,
    ManifestError,
    SignatureInvalid,
    UnknownKey,
    UnknownMember,
)
from auth.manifest import (
    Manifest,
    MemberKey,
    parse_manifest,
    sign_manifest,
)
from tests.auth.factories import (
    T0,
    NetworkKit,
    make_manifest,
    make_member,
    manifest_document,
    member_key,
    signing_key,
)
from tests.auth.manifest.helpers import DAY, _with_key

# --- countries ------------------------------------------------------------------------------------


def test_country_list_has_the_249_assigned_codes() -> None:
    assert len(ISO_3166_ALPHA2) == 249
    assert all(len(cc) == 2 and cc.isascii() and cc.isupper() for cc in ISO_3166_ALPHA2)
    assert {"NL", "DE", "US", "RO", "JP", "GB", "AX", "SS", "XK"} - ISO_3166_ALPHA2 == {"XK"}
    assert not {"XX", "EU", "UK", "AP", "ZZ", "nl"} & ISO_3166_ALPHA2


def test_country_list_agrees_with_the_tz_database_copy() -> None:
    tab = Path("/usr/share/zoneinfo/iso3166.tab")
    if not tab.exists():
        pytest.skip("no tz database on this machine")
    codes = {
        line.split("\t")[0]
        for line in tab.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    assert codes == ISO_3166_ALPHA2


# --- model ----------------------------------------------------------------------------------------


def test_factory_network(manifest: Manifest) -> None:
    assert [m.id for m in manifest.members] == [
        "nl-eokm",
        "de-eco",
        "us-ncmec",
        "ro-safernet",
        "inhope",
    ]
    assert manifest.coordinator == "inhope"
    assert manifest.coordinator_member.countries == frozenset()
    assert dict(manifest.orphan_rules) == {"JP": "us-ncmec"}


def test_member_lookup(manifest: Manifest) -> None:
    assert manifest.member("de-eco").countries == frozenset({"DE"})
    assert manifest.find_member("de-eco") is manifest.member("de-eco")
    assert manifest.find_member("fr-pointdecontact") is None
    with pytest.raises(UnknownMember, match='unknown member "fr-pointdecontact"') as info:
        manifest.member("fr-pointdecontact")
    assert info.value.code == "unknown-member"


def test_member_for_country(manifest: Manifest) -> None:
    assert manifest.member_for_country("NL") is manifest.member("nl-eokm")
    assert manifest.member_for_country("RO") is manifest.member("ro-safernet")
    # Orphan rules are a separate question: JP has no member of its own.
    assert manifest.member_for_country("JP") is None
    assert manifest.orphan_member_for("JP") is manifest.member("us-ncmec")
    assert manifest.orphan_member_for("FR") is None
    assert manifest.member_for_country("nl") is None


def test_member_key_lookup(network: NetworkKit) -> None:
    member = network.manifest.member("nl-eokm")
    key_id = network.key_of("nl-eokm").key_id
    assert member.key(key_id) is member.keys[0]
    assert member.key(network.key_of("de-eco").key_id) is None


def test_manifest_is_immutable(manifest: Manifest) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.epoch = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        manifest.orphan_rules["FR"] = "de-eco"  # type: ignore[index]


def test_manifest_copies_the_orphan_rules_it_is_given(manifest: Manifest) -> None:
    rules = {"JP": "us-ncmec"}
    m = dataclasses.replace(manifest, orphan_rules=rules)
    rules["FR"] = "de-eco"
    assert "FR" not in m.orphan_rules


def test_times_are_kept_in_utc(network: NetworkKit) -> None:
    cet = timezone(timedelta(hours=1))
    key = member_key(signing_key("x"), not_before=datetime(2025, 1, 1, 1, tzinfo=cet))
    assert key.not_before == T0
    assert key.not_before.tzinfo is UTC


def test_naive_times_are_refused() -> None:
    with pytest.raises(ManifestError, match="not_before: time has no timezone"):
        member_key(signing_key("x"), not_before=datetime(2025, 1, 1))


# --- key validity ---------------------------------------------------------------------------------


def test_valid_at_window() -> None:
    key = member_key(signing_key("x"), not_before=T0, not_after=T0 + 10 * DAY)
    assert not key.valid_at(T0 - timedelta(microseconds=1))
    assert key.valid_at(T0)
    assert key.valid_at(T0 + 10 * DAY - timedelta(microseconds=1))
    assert not key.valid_at(T0 + 10 * DAY)
    revoked = dataclasses.replace(key, revoked_at=T0 + 3 * DAY)
    assert revoked.valid_at(T0 + 3 * DAY - timedelta(microseconds=1))
    assert not revoked.valid_at(T0 + 3 * DAY)


def test_invalid_reason_names_the_cause() -> None:
    key = member_key(
        signing_key("x"), not_before=T0, not_after=T0 + 10 * DAY, revoked_at=T0 + 5 * DAY
    )
    assert key.invalid_reason(T0 - DAY) == "not valid before 2025-01-01T00:00:00Z"
    assert key.invalid_reason(T0 + 6 * DAY) == "revoked at 2025-01-06T00:00:00Z"
    assert key.invalid_reason(T0 + 11 * DAY) == "revoked at 2025-01-06T00:00:00Z"
    unrevoked = dataclasses.replace(key, revoked_at=None)
    assert unrevoked.invalid_reason(T0 + 11 * DAY) == "expired at 2025-01-11T00:00:00Z"
    assert unrevoked.invalid_reason(T0 + DAY) is None


def test_verify_member_signature(network: NetworkKit) -> None:
    key = network.key_of("de-eco")
    message = b"header"
    used = network.manifest.verify_member_signature(
        "de-eco", key.key_id, T0 + DAY, message, key.sign(message)
    )
    assert used.key_id == key.key_id


def test_verify_refuses_unknown_member_and_key(network: NetworkKit) -> None:
    key = network.key_of("de-eco")
    sig = key.sign(b"m")
    with pytest.raises(UnknownMember):
        network.manifest.verify_member_signature("xx-nobody", key.key_id, T0, b"m", sig)
    # A real key, but another member's: a member signs only for itself.
    with pytest.raises(UnknownKey, match='member "nl-eokm" has no key'):
        network.manifest.verify_member_signature("nl-eokm", key.key_id, T0, b"m", sig)


def test_verify_refuses_a_bad_signature(network: NetworkKit) -> None:
    key = network.key_of("de-eco")
    with pytest.raises(SignatureInvalid):
        network.manifest.verify_member_signature(
            "de-eco", key.key_id, T0 + DAY, b"m", key.sign(b"n")
        )
    other = network.key_of("nl-eokm")
    with pytest.raises(SignatureInvalid):
        network.manifest.verify_member_signature(
            "de-eco", key.key_id, T0 + DAY, b"m", other.sign(b"m")
        )


def test_revoked_key_verifies_before_revocation_only(network: NetworkKit) -> None:
    revoked_at = T0 + 10 * DAY
    m = _with_key(network, "nl-eokm", revoked_at=revoked_at)
    key = network.key_of("nl-eokm")
    sig = key.sign(b"m")
    m.verify_member_signature("nl-eokm", key.key_id, revoked_at - timedelta(seconds=1), b"m", sig)
    for signed_at in (revoked_at, revoked_at + DAY):
        with pytest.raises(KeyNotValid, match="revoked at 2025-01-11T00:00:00Z") as info:
            m.verify_member_signature("nl-eokm", key.key_id, signed_at, b"m", sig)
        assert info.value.code == "key-not-valid"


def test_expired_key_verifies_before_expiry_only(network: NetworkKit) -> None:
    not_after = T0 + 10 * DAY
    m = _with_key(network, "nl-eokm", not_after=not_after)
    key = network.key_of("nl-eokm")
    sig = key.sign(b"m")
    m.verify_member_signature("nl-eokm", key.key_id, not_after - timedelta(seconds=1), b"m", sig)
    with pytest.raises(KeyNotValid, match="expired at 2025-01-11T00:00:00Z"):
        m.verify_member_signature("nl-eokm", key.key_id, not_after, b"m", sig)


def test_key_not_yet_valid(network: NetworkKit) -> None:
    key = network.key_of("nl-eokm")
    with pytest.raises(KeyNotValid, match="not valid before 2025-01-01T00:00:00Z"):
        network.manifest.verify_member_signature(
            "nl-eokm", key.key_id, T0 - DAY, b"m", key.sign(b"m")
        )


# --- validation: every error names its field ------------------------------------------------------

Doc = dict[str, Any]


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """A mutation that sets ``a.b[2].c`` in a document (``value`` of ... deletes it)."""

    def mutate(doc: Doc) -> None:
        *parents, last = _steps(path)
        target: Any = doc
        for step in parents:
            target = target[step]
        if value is ...:
            del target[last]
        else:
            target[last] = value

    return mutate


def _steps(path: str) -> list[str | int]:
    steps: list[str | int] = []
    for part in path.split("."):
        name, *indexes = part.split("[")
        steps.append(name)
        steps.extend(int(i.rstrip("]")) for i in indexes)
    return steps


def _all(*mutations: Callable[[Doc], None]) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        for m in mutations:
            m(doc)

    return mutate


BAD_VALUES: list[tuple[str, Callable[[Doc], None], str]] = [
    # (case, mutation, the message must start with this)
    (
        "lower-case country",
        _set("members[2].countries", ["nl"]),
        'members[2].countries[0]: "nl" is not an upper-case ISO 3166-1 alpha-2 country code',
    ),
    (
        "EU is no country",
        _set("members[0].countries", ["NL", "EU"]),
        'members[0].countries[1]: "EU"',
    ),
    ("UK is not GB", _set("members[0].countries", ["UK"]), 'members[0].countries[0]: "UK" is not'),
    ("XX", _set("members[0].countries", ["XX"]), 'members[0].countries[0]: "XX" is not'),
    ("country type", _set("members[0].countries", [31]), "members[0].countries[0]: expected a str"),
    ("countries type", _set("members[0].countries", "NL"), "members[0].countries: expected an ar"),
    (
        "country twice in a member",
        _set("members[0].countries", ["NL", "NL"]),
        'members[0].countries[1]: duplicate country "NL"',
    ),
    (
        "country served twice",
        _set("members[3].countries", ["RO", "NL"]),
        'members[3].countries: "NL" is already served by member "nl-eokm"',
    ),
    (
        "duplicate member id",
        _set("members[1].id", "nl-eokm"),
        'members[1].id: duplicate member id "nl-eokm"',
    ),
    ("bad member id", _set("members[0].id", "NL_EOKM"), 'members[0].id: "NL_EOKM" is not a member'),
    ("short member id", _set("members[0].id", "n"), 'members[0].id: "n" is not a member id'),
    ("member id type", _set("members[0].id", 7), "members[0].id: expected a string, got integer"),
    ("empty name", _set("members[0].name", " "), "members[0].name: must not be empty"),
    ("control in name", _set("members[0].name", "a\nb"), "members[0].name: must not contain"),
    ("C1 control", _set("members[0].name", "a\x85b"), "members[0].name: must not contain"),
    ("endpoint port", _set("members[0].endpoint", "h:0"), 'members[0].endpoint: "h:0" is not a'),
    ("endpoint big", _set("members[0].endpoint", "h:65536"), "members[0].endpoint: "),
    ("no port", _set("members[0].endpoint", "nl.example"), "members[0].endpoint: "),
    ("tls identity", _set("members[0].tls_identity", ""), "members[0].tls_identity: must not be"),
    (
        "tls identity form",
        _set("members[0].tls_identity", "nl-eokm.ihx.test"),
        'members[0].tls_identity: "nl-eokm.ihx.test" is neither sha256:',
    ),
    ("missing endpoint", _set("members[0].endpoint", ...), "members[0].endpoint: required field"),
    ("typo in member", _set("members[0].countrys", ["NL"]), "members[0].countrys: unknown field"),
    ("member type", _set("members[1]", "de-eco"), "members[1]: expected a table, got string"),
    ("members empty", _set("members", []), "members: at least one member is required"),
    ("members type", _set("members", {}), "members: expected an array, got table"),
    ("no keys", _set("members[0].keys", []), "members[0].keys: at least one key is required"),
    (
        "public key not base64",
        _set("members[0].keys[0].public_key", "$$$"),
        "members[0].keys[0].public_key: not a base64 Ed25519 public key (32 bytes)",
    ),
    (
        "public key short",
        _set("members[0].keys[0].public_key", "AAAA"),
        "members[0].keys[0].public_key: not a base64 Ed25519 public key (32 bytes)",
    ),
    (
        "key id mismatch",
        _set("members[0].keys[0].key_id", "ed25519:" + "0" * 32),
        'members[0].keys[0].key_id: "ed25519:00000000000000000000000000000000" does not match',
    ),
    (
        "duplicate key in member",
        lambda d: d["members"][0]["keys"].append(copy.deepcopy(d["members"][0]["keys"][0])),
        "members[0].keys[1].key_id: duplicate key id",
    ),
    (
        "empty public key",
        _set("members[1].keys", [{"public_key": "", "not_before": "2025-01-01T00:00:00Z"}]),
        "members[1].keys[0].public_key: not a base64",
    ),
    (
        "time without timezone",
        _set("members[0].keys[0].not_before", "2025-01-01T00:00:00"),
        'members[0].keys[0].not_before: "2025-01-01T00:00:00" is not an RFC 3339 time with a time',
    ),
    (
        "date only",
        _set("members[0].keys[0].not_after", "2026-01-01"),
        'members[0].keys[0].not_after: "2026-01-01" is not an RFC 3339 time',
    ),
    (
        "impossible date",
        _set("issued_at", "2025-02-30T00:00:00Z"),
        'issued_at: "2025-02-30T00:00:00Z" is not an RFC 3339 time',
    ),
    (
        "time type",
        _set("members[0].keys[0].not_before", 1735689600),
        "members[0].keys[0].not_before: expected an RFC 3339 time string, got integer",
    ),
    (
        "expiry before start",
        _set("members[0].keys[0].not_after", "2024-12-31T00:00:00Z"),
        "members[0].keys[0].not_after: 2024-12-31T00:00:00Z is not later than not_before",
    ),
    (
        "typo in key",
        _set("members[0].keys[0].notafter", "2026-01-01T00:00:00Z"),
        "members[0].keys[0].notafter: unknown field",
    ),
    ("missing key time", _set("members[0].keys[0].not_before", ...), "members[0].keys[0].not_be"),
    (
        "orphan rule to unknown member",
        _set("orphan_rules", {"JP": "xx"}),
        'orphan_rules.JP: unknown member "xx"',
    ),
    (
        "orphan rule for a served country",
        _set("orphan_rules", {"NL": "de-eco"}),
        'orphan_rules.NL: "NL" is served by member "nl-eokm"',
    ),
    ("orphan rule code", _set("orphan_rules", {"jp": "us-ncmec"}), 'orphan_rules.jp: "jp" is not'),
    ("orphan rule odd key", _set("orphan_rules", {"J P": "de-eco"}), 'orphan_rules["J P"]: '),
    ("orphan rule type", _set("orphan_rules", {"JP": 1}), "orphan_rules.JP: expected a string"),
    ("orphan rules type", _set("orphan_rules", ["JP"]), "orphan_rules: expected a table, got arr"),
    ("unknown coordinator", _set("coordinator", "nobody"), 'coordinator: unknown member "nobody"'),
    (
        "no coordinator keys",
        _set("coordinator_keys", []),
        "coordinator_keys: at least one key is required",
    ),
    (
        "coordinator key",
        _set("coordinator_keys[0].public_key", "x"),
        "coordinator_keys[0].public_key: not a base64 Ed25519 public key",
    ),
    ("epoch zero", _set("epoch", 0), "epoch: must be an integer >= 1, got 0"),
    ("epoch string", _set("epoch", "2"), "epoch: expected an integer, got string"),
    ("epoch bool", _set("epoch", True), "epoch: expected an integer, got boolean"),
    ("epoch float", _set("epoch", 2.0), "epoch: expected an integer, got number"),
    ("network", _set("network", "INHOPE net"), 'network: "INHOPE net" is not a network name'),
    ("missing epoch", _set("epoch", ...), "epoch: required field missing"),
    ("typo at top", _set("netwrok", "x"), "netwrok: unknown field (known fields: coordinator,"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES]
)
def test_validation_errors_name_their_field(mutate: Callable[[Doc], None], expected: str) -> None:
    doc = manifest_document()
    doc["members"][0]["tls_identity"] = "spiffe://ihx/nl-eokm"
    mutate(doc)
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc)
    assert info.value.message.startswith(expected), info.value.message
    assert info.value.code == "manifest-invalid"


def test_a_key_held_by_two_members_is_refused() -> None:
    doc = manifest_document()
    doc["members"][1]["keys"] = copy.deepcopy(doc["members"][0]["keys"])
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc)
    assert info.value.message.startswith("members[1].keys[0].key_id: key ")
    assert info.value.message.endswith('is already held by member "nl-eokm"')


def test_key_id_is_optional_and_derived() -> None:
    doc = manifest_document()
    del doc["members"][0]["keys"][0]["key_id"]
    m = parse_manifest(doc)
    assert m.member("nl-eokm").keys[0].key_id == signing_key("nl-eokm").key_id


def test_null_optional_fields_are_absent() -> None:
    doc = manifest_document()
    doc["members"][0]["tls_identity"] = None
    doc["members"][0]["keys"][0]["not_after"] = None
    doc["members"][0]["keys"][0]["revoked_at"] = None
    assert parse_manifest(doc) == make_manifest()


def test_orphan_rules_may_be_left_out() -> None:
    doc = manifest_document()
    del doc["orphan_rules"]
    assert dict(parse_manifest(doc).orphan_rules) == {}


def test_offsets_and_fractions_are_accepted() -> None:
    doc = manifest_document()
    doc["issued_at"] = "2025-01-01T01:00:00.1234567+01:00"
    assert parse_manifest(doc).issued_at == T0 + timedelta(microseconds=123456)


def test_parse_refuses_a_non_table() -> None:
    with pytest.raises(ManifestError, match="manifest: expected a table, got array"):
        parse_manifest([])  # type: ignore[arg-type]


def test_parse_points_signed_files_elsewhere(network: NetworkKit) -> None:
    signed = json.loads(sign_manifest(network.manifest, network.coordinator_key))
    with pytest.raises(ManifestError, match="load_signed_manifest"):
        parse_manifest(signed)


def test_model_constructors_validate_too(manifest: Manifest) -> None:
    with pytest.raises(ManifestError, match=r"^countries: \"XX\" is not"):
        make_member("fr-pdc", ["XX"])
    with pytest.raises(ManifestError, match=r"^coordinator: unknown member"):
        dataclasses.replace(manifest, coordinator="nobody")
    with pytest.raises(ManifestError, match=r"^key_id: "):
        MemberKey("ed25519:00", signing_key("x").public, T0)
