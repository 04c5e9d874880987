"""Manifest documents and files: JSON and TOML round trips, errors naming the file and line."""

from __future__ import annotations

import json
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth.errors import (
    ManifestError,
)
from auth.keys import PublicKey
from auth.manifest import (
    Manifest,
    add_member,
    dump_manifest,
    load_manifest,
    manifest_to_document,
    manifest_to_json,
    manifest_to_toml,
    parse_manifest,
    replace_member,
    set_orphan_rule,
)
from tests.auth.factories import (
    T0,
    make_manifest,
    make_member,
    make_network,
    manifest_document,
    member_key,
    signing_key,
)
from tests.auth.manifest.helpers import DAY

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


def test_public_key_in_document_is_base64_raw(manifest: Manifest) -> None:
    doc = manifest_to_document(manifest)
    raw = PublicKey.from_b64(doc["members"][0]["keys"][0]["public_key"]).raw
    assert raw == signing_key("nl-eokm").public.raw
