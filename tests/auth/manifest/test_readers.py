"""Network readers in the manifest: parsed strictly, rendered only when present, edited safely."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from auth.errors import ManifestError, UnknownMember
from auth.manifest import (
    NetworkReader,
    canonical_json,
    manifest_to_document,
    manifest_to_toml,
    parse_manifest,
    set_network_reader,
)
from tests.auth.factories import COORDINATOR, make_manifest, manifest_document


def _with_readers(readers: Any) -> dict[str, Any]:
    return {**manifest_document(), "network_readers": readers}


def test_a_manifest_without_readers_signs_the_same_bytes_as_before() -> None:
    manifest = make_manifest()
    document = manifest_to_document(manifest)

    assert "network_readers" not in document
    assert "network_readers" not in manifest_to_toml(manifest)
    assert parse_manifest(document) == manifest
    # The document of an older manifest is its own canonical form: nothing was added to it.
    assert canonical_json(document) == canonical_json(manifest_document())


def test_readers_round_trip_through_the_document() -> None:
    manifest = parse_manifest(
        _with_readers([{"member": COORDINATOR, "scopes": ["stats:read", "log:read"]}])
    )

    assert manifest.network_readers == (
        NetworkReader(COORDINATOR, frozenset({"log:read", "stats:read"})),
    )
    assert manifest.network_reader(COORDINATOR) is not None
    assert manifest.network_reader("de-eco") is None
    document = manifest_to_document(manifest)
    assert document["network_readers"] == [
        {"member": COORDINATOR, "scopes": ["log:read", "stats:read"]}
    ]
    assert parse_manifest(document) == manifest


@pytest.mark.parametrize(
    ("readers", "message"),
    [
        (
            [{"member": COORDINATOR, "scopes": ["log:read", "cases:pull"]}],
            'network_readers[0].scopes[1]: "cases:pull" cannot be granted network-wide',
        ),
        (
            [{"member": COORDINATOR, "scopes": ["admin"]}],
            'network_readers[0].scopes[0]: "admin" cannot be granted network-wide',
        ),
        (
            [{"member": COORDINATOR, "scopes": ["reports:submit"]}],
            'network_readers[0].scopes[0]: "reports:submit" cannot be granted',
        ),
        ([{"member": COORDINATOR, "scopes": []}], "network_readers[0].scopes: at least one"),
        (
            [{"member": COORDINATOR, "scopes": ["log:read", "log:read"]}],
            "network_readers[0].scopes[1]: duplicate scope",
        ),
        ([{"member": "xx-nobody", "scopes": ["log:read"]}], "network_readers[0].member: unknown"),
        (
            [
                {"member": COORDINATOR, "scopes": ["log:read"]},
                {"member": COORDINATOR, "scopes": ["stats:read"]},
            ],
            'network_readers[1].member: "inhope" is already a reader',
        ),
        ([{"member": COORDINATOR}], "network_readers[0]"),
        ([{"member": COORDINATOR, "scopes": ["log:read"], "keys": []}], "network_readers[0]"),
        ({"member": COORDINATOR}, "network_readers"),
        ([{"member": COORDINATOR, "scopes": [7]}], "network_readers[0].scopes[0]: expected"),
    ],
)
def test_a_bad_reader_is_refused_naming_the_field(readers: Any, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_with_readers(readers))
    assert message in caught.value.message


def test_the_model_refuses_a_write_scope_built_in_code() -> None:
    with pytest.raises(ManifestError, match="cases:work"):
        NetworkReader(COORDINATOR, frozenset({"cases:work"}))
    with pytest.raises(ManifestError, match=r"network_readers\[0\]\.member: unknown member"):
        dataclasses.replace(
            make_manifest(), network_readers=(NetworkReader("xx-nobody", frozenset({"log:read"})),)
        )


def test_set_network_reader_grants_changes_and_drops() -> None:
    manifest = make_manifest()

    granted = set_network_reader(manifest, COORDINATOR, frozenset({"log:read"}))
    changed = set_network_reader(granted, COORDINATOR, frozenset({"log:read", "stats:read"}))
    dropped = set_network_reader(changed, COORDINATOR, frozenset())

    assert granted.network_readers == (NetworkReader(COORDINATOR, frozenset({"log:read"})),)
    assert changed.network_readers == (
        NetworkReader(COORDINATOR, frozenset({"log:read", "stats:read"})),
    )
    assert dropped.network_readers == ()
    with pytest.raises(ManifestError, match="cannot be granted network-wide"):
        set_network_reader(manifest, COORDINATOR, frozenset({"cases:pull"}))
    with pytest.raises(UnknownMember, match="unknown member"):
        set_network_reader(manifest, "xx-nobody", frozenset({"log:read"}))
