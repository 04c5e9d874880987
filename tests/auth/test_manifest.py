"""The network manifest: model, validation with field paths, files, signatures and the builder."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth.countries import ISO_3166_ALPHA2
from auth.errors import (
    KeyNotValid,
    ManifestError,
    ManifestRejected,
    SignatureInvalid,
    UnknownKey,
    UnknownMember,
)
from auth.keys import PublicKey
from auth.manifest import (
    Manifest,
    MemberKey,
    accept_update,
    add_coordinator_key,
    add_key,
    add_member,
    add_signature,
    bump_epoch,
    canonical_json,
    dump_manifest,
    load_manifest,
    load_signed_manifest,
    manifest_to_document,
    manifest_to_json,
    manifest_to_toml,
    parse_manifest,
    parse_signed_manifest,
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
    make_manifest,
    make_member,
    make_network,
    manifest_document,
    member_key,
    signing_key,
)

DAY = timedelta(days=1)
NOW = T0 + 30 * DAY


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


def _with_key(kit: NetworkKit, member_id: str, **validity: Any) -> Manifest:
    member = kit.manifest.member(member_id)
    key = dataclasses.replace(member.keys[0], **validity)
    return replace_member(kit.manifest, dataclasses.replace(member, keys=(key,)))


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


# --- documents and files --------------------------------------------------------------------------


def _rich_manifest() -> Manifest:
    """Everything optional filled in, odd characters included."""
    kit = make_network(issued_at=T0 + timedelta(microseconds=250))
    m = add_member(
        kit.manifest,
        make_member(
            "be-childfocus",
            ["BE", "LU"],
            name='Child Focus "België" \\ Belgique — 🇧🇪',
            keys=(
                member_key(signing_key("be1"), not_after=T0 + 90 * DAY),
                member_key(signing_key("be2"), not_before=T0 + DAY, revoked_at=T0 + 2 * DAY),
            ),
            endpoint="[2001:db8::1]:7443",
            tls_identity="spiffe://ihx/be-childfocus",
        ),
    )
    return set_orphan_rule(m, "FR", "be-childfocus")


def test_document_round_trip() -> None:
    m = _rich_manifest()
    doc = manifest_to_document(m)
    assert parse_manifest(doc) == m
    assert manifest_to_document(parse_manifest(doc)) == doc
    json.dumps(doc)  # plain JSON types only


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_file_round_trip(tmp_path: Path, suffix: str) -> None:
    m = _rich_manifest()
    path = tmp_path / f"manifest{suffix}"
    dump_manifest(m, path)
    assert load_manifest(path) == m
    assert load_manifest(str(path)) == m


def test_toml_text_is_the_document() -> None:
    m = _rich_manifest()
    assert tomllib.loads(manifest_to_toml(m)) == manifest_to_document(m)
    assert json.loads(manifest_to_json(m)) == manifest_to_document(m)


@settings(max_examples=100, deadline=None)
@given(
    name=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=200).filter(
        str.strip
    )
)
def test_toml_round_trips_any_display_name(name: str) -> None:
    m = replace_member(make_manifest(), make_member("nl-eokm", ["NL"], name=name))
    assert parse_manifest(tomllib.loads(manifest_to_toml(m))) == m


def test_toml_native_datetimes(tmp_path: Path) -> None:
    text = manifest_to_toml(make_manifest()).replace(
        'issued_at = "2025-01-01T00:00:00Z"', "issued_at = 2025-01-01T00:00:00Z"
    )
    path = tmp_path / "m.toml"
    path.write_text(text)
    assert load_manifest(path) == make_manifest()
    path.write_text(
        text.replace("issued_at = 2025-01-01T00:00:00Z", "issued_at = 2025-01-01T00:00:00")
    )
    with pytest.raises(ManifestError, match=r"m\.toml: issued_at: time has no timezone"):
        load_manifest(path)


def test_load_names_the_file_and_the_field(tmp_path: Path) -> None:
    doc = manifest_document()
    doc["members"][2]["countries"] = ["nl"]
    path = tmp_path / "network.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.message.startswith(f'{path}: members[2].countries[0]: "nl" is not')


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ManifestError, match="not found") as info:
        load_manifest(path)
    assert str(path) in info.value.message


def test_load_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("network: x")
    with pytest.raises(ManifestError, match=r"use \.toml or \.json"):
        load_manifest(path)


def test_load_bad_toml_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('network = "x"\nepoch = = 1\n')
    with pytest.raises(ManifestError, match=r"m\.toml: invalid TOML: .*line 2"):
        load_manifest(path)


def test_load_bad_json_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{\n  "network": "x",\n  "epoch": ,\n}')
    with pytest.raises(ManifestError, match=r"m\.json: invalid JSON at line 3, column 12"):
        load_manifest(path)


def test_load_refuses_duplicate_json_keys(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"epoch": 1, "epoch": 2}')
    with pytest.raises(ManifestError, match='duplicate key "epoch"'):
        load_manifest(path)


def test_load_refuses_non_utf8_and_non_objects(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(b'{"network": "\xff"}')
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_manifest(path)
    path.write_text("[]")
    with pytest.raises(ManifestError, match="expected a JSON object, got array"):
        load_manifest(path)


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


def test_public_key_in_document_is_base64_raw(manifest: Manifest) -> None:
    doc = manifest_to_document(manifest)
    raw = PublicKey.from_b64(doc["members"][0]["keys"][0]["public_key"]).raw
    assert raw == signing_key("nl-eokm").public.raw
