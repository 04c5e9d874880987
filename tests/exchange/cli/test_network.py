"""``ihx network``: building, editing, signing and verifying the manifest as a coordinator does."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auth.keys import SigningKey
from auth.manifest import load_manifest, load_signed_manifest, parse_signed_manifest
from exchange.cli.main import app
from exchange.manifest_store import trust_anchors


def ok(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def fails(runner: CliRunner, *args: str, code: int = 2) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.stdout + result.stderr
    if code == 2:
        assert len(result.stderr.splitlines()) == 1
        assert result.stderr.startswith("ihx: error: ")
    return result.stderr + result.stdout


def keygen(runner: CliRunner, path: Path) -> SigningKey:
    out = ok(runner, "network", "keygen", str(path))
    key = SigningKey.load(path)
    assert f"key id      {key.key_id}" in out
    assert f"public key  {key.public.to_b64()}" in out
    return key


class Setup:
    def __init__(self, runner: CliRunner, root: Path) -> None:
        self.runner = runner
        self.root = root
        self.coordinator = keygen(runner, root / "coordinator.key")
        self.inhope = keygen(runner, root / "inhope.key")
        self.nl = keygen(runner, root / "nl.key")
        self.file = root / "network.toml"
        ok(
            runner,
            "network",
            "create",
            str(self.file),
            "--network",
            "ihx-test",
            "--coordinator",
            "inhope",
            "--coordinator-key",
            str(root / "coordinator.key"),
            "--endpoint",
            "127.0.0.1:7700",
            "--public-key",
            self.inhope.public.to_b64(),
            "--name",
            "INHOPE",
        )
        ok(
            runner,
            "network",
            "add-member",
            str(self.file),
            "--id",
            "nl-eokm",
            "--name",
            "EOKM",
            "--countries",
            "NL,BE",
            "--endpoint",
            "127.0.0.1:7701",
            "--public-key",
            self.nl.public.to_b64(),
        )


@pytest.fixture
def setup(runner: CliRunner, tmp_path: Path) -> Setup:
    return Setup(runner, tmp_path)


def test_keygen_writes_a_private_key_and_refuses_to_overwrite(
    runner: CliRunner, tmp_path: Path
) -> None:
    key = keygen(runner, tmp_path / "k.key")
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    err = fails(runner, "network", "keygen", str(tmp_path / "k.key"))
    assert "already exists" in err
    assert SigningKey.load(tmp_path / "k.key").key_id == key.key_id


def test_create_and_add_member_build_a_valid_manifest(setup: Setup) -> None:
    manifest = load_manifest(setup.file)
    assert (manifest.network, manifest.epoch, manifest.coordinator) == ("ihx-test", 1, "inhope")
    assert manifest.coordinator_keys[0].key_id == setup.coordinator.key_id
    nl = manifest.member("nl-eokm")
    assert nl.countries == {"NL", "BE"}
    assert nl.keys[0].key_id == setup.nl.key_id
    assert manifest.member("inhope").keys[0].key_id == setup.inhope.key_id


def test_create_refuses_an_existing_file(setup: Setup) -> None:
    before = setup.file.read_bytes()
    fails(
        setup.runner,
        "network",
        "create",
        str(setup.file),
        "--network",
        "x",
        "--coordinator",
        "inhope",
        "--coordinator-key",
        setup.coordinator.public.to_b64(),
        "--endpoint",
        "127.0.0.1:1",
        "--public-key",
        setup.inhope.public.to_b64(),
    )
    assert setup.file.read_bytes() == before


def test_an_invalid_edit_is_refused_and_changes_nothing(setup: Setup, tmp_path: Path) -> None:
    before = setup.file.read_bytes()
    other = keygen(setup.runner, tmp_path / "be.key")
    err = fails(
        setup.runner,
        "network",
        "add-member",
        str(setup.file),
        "--id",
        "be-child-focus",
        "--name",
        "Child Focus",
        "--countries",
        "BE",
        "--endpoint",
        "127.0.0.1:7702",
        "--public-key",
        other.public.to_b64(),
    )
    assert "already served by member" in err
    assert setup.file.read_bytes() == before
    err = fails(setup.runner, "network", "set-orphan", str(setup.file), "JP", "xx-nobody")
    assert "unknown member" in err
    assert setup.file.read_bytes() == before


def test_update_member_prints_what_changed(setup: Setup) -> None:
    out = ok(
        setup.runner,
        "network",
        "update-member",
        str(setup.file),
        "--id",
        "nl-eokm",
        "--countries",
        "NL",
        "--endpoint",
        "127.0.0.1:7801",
    )
    assert "nl-eokm countries: BE,NL → NL" in out
    assert "nl-eokm endpoint: 127.0.0.1:7701 → 127.0.0.1:7801" in out
    member = load_manifest(setup.file).member("nl-eokm")
    assert (member.countries, member.endpoint) == ({"NL"}, "127.0.0.1:7801")
    fails(setup.runner, "network", "update-member", str(setup.file), "--id", "nl-eokm")


def test_update_member_sets_and_clears_the_tls_identity(setup: Setup) -> None:
    fingerprint = "sha256:" + "ab" * 32
    out = ok(
        setup.runner,
        "network",
        "update-member",
        str(setup.file),
        "--id",
        "nl-eokm",
        "--tls-identity",
        fingerprint,
    )
    assert f"nl-eokm tls_identity: - → {fingerprint}" in out
    assert load_manifest(setup.file).member("nl-eokm").tls_identity == fingerprint

    before = setup.file.read_bytes()
    err = fails(
        setup.runner,
        "network",
        "update-member",
        str(setup.file),
        "--id",
        "nl-eokm",
        "--tls-identity",
        "sha256:nothex",
    )
    assert "tls_identity" in err
    assert setup.file.read_bytes() == before

    out = ok(
        setup.runner,
        "network",
        "update-member",
        str(setup.file),
        "--id",
        "nl-eokm",
        "--tls-identity",
        "-",
    )
    assert f"nl-eokm tls_identity: {fingerprint} → -" in out
    assert load_manifest(setup.file).member("nl-eokm").tls_identity is None


def test_orphan_rule_set_and_dropped(setup: Setup) -> None:
    out = ok(setup.runner, "network", "set-orphan", str(setup.file), "jp", "nl-eokm")
    assert "orphan rule JP: - → nl-eokm" in out
    assert dict(load_manifest(setup.file).orphan_rules) == {"JP": "nl-eokm"}
    ok(setup.runner, "network", "set-orphan", str(setup.file), "JP", "-")
    assert dict(load_manifest(setup.file).orphan_rules) == {}


def test_rotate_and_revoke_keys(setup: Setup, tmp_path: Path) -> None:
    new = keygen(setup.runner, tmp_path / "nl2.key")
    out = ok(
        setup.runner,
        "network",
        "rotate-key",
        str(setup.file),
        "--member",
        "nl-eokm",
        "--new-public-key",
        str(tmp_path / "nl2.key"),
        "--retire-after",
        "+1d",
    )
    assert f"new key {new.key_id}" in out
    keys = {k.key_id: k for k in load_manifest(setup.file).member("nl-eokm").keys}
    old = keys[setup.nl.key_id]
    assert old.not_after is not None
    assert timedelta(hours=23) < old.not_after - keys[new.key_id].not_before <= timedelta(days=1)

    out = ok(
        setup.runner,
        "network",
        "revoke-key",
        str(setup.file),
        "--member",
        "nl-eokm",
        "--key-id",
        setup.nl.key_id,
        "--at",
        "2030-01-01T00:00:00Z",
    )
    assert f"key {setup.nl.key_id} revoked at 2030-01-01T00:00:00Z" in out
    revoked = load_manifest(setup.file).member("nl-eokm").key(setup.nl.key_id)
    assert revoked is not None
    assert revoked.revoked_at == datetime(2030, 1, 1, tzinfo=UTC)
    err = fails(
        setup.runner,
        "network",
        "revoke-key",
        str(setup.file),
        "--member",
        "nl-eokm",
        "--key-id",
        "ed25519:" + "0" * 32,
    )
    assert "has no key" in err
    fails(
        setup.runner,
        "network",
        "revoke-key",
        str(setup.file),
        "--member",
        "nl-eokm",
        "--key-id",
        setup.nl.key_id,
        "--at",
        "tomorrow",
    )


def test_sign_and_verify_with_trusted_key(setup: Setup) -> None:
    signed = setup.root / "signed.json"
    out = ok(
        setup.runner,
        "network",
        "sign",
        str(setup.file),
        "--key",
        str(setup.root / "coordinator.key"),
        "--out",
        str(signed),
    )
    assert "epoch 1" in out
    manifest = load_signed_manifest(
        signed.read_bytes(),
        trusted=trust_anchors([setup.coordinator.public.to_b64()]),
        now=datetime.now(UTC),
    )
    assert manifest.member("nl-eokm").name == "EOKM"

    out = ok(
        setup.runner,
        "network",
        "verify",
        str(signed),
        "--trusted-key",
        setup.coordinator.public.to_b64(),
    )
    assert "✓ signature" in out
    assert "member  nl-eokm (EOKM; BE,NL; 127.0.0.1:7701)" in out

    out = fails(
        setup.runner,
        "network",
        "verify",
        str(signed),
        "--trusted-key",
        setup.nl.public.to_b64(),
        code=1,
    )
    assert "✗ signature" in out


def test_verify_detects_a_tampered_file(setup: Setup) -> None:
    signed = setup.root / "signed.json"
    ok(
        setup.runner,
        "network",
        "sign",
        str(setup.file),
        "--key",
        str(setup.root / "coordinator.key"),
        "--out",
        str(signed),
    )
    data = json.loads(signed.read_text(encoding="utf-8"))
    data["manifest"]["members"][1]["endpoint"] = "203.0.113.9:7701"
    signed.write_text(json.dumps(data), encoding="utf-8")
    out = fails(
        setup.runner,
        "network",
        "verify",
        str(signed),
        "--trusted-key",
        setup.coordinator.public.to_b64(),
        code=1,
    )
    assert "does not verify" in out


def test_sign_refuses_a_key_that_is_not_the_coordinators(setup: Setup) -> None:
    err = fails(
        setup.runner,
        "network",
        "sign",
        str(setup.file),
        "--key",
        str(setup.root / "nl.key"),
        "--out",
        str(setup.root / "signed.json"),
    )
    assert "not a coordinator key" in err
    assert not (setup.root / "signed.json").exists()


def test_new_content_needs_a_new_epoch_and_verify_current_checks_it(setup: Setup) -> None:
    coordinator_key = str(setup.root / "coordinator.key")
    first = setup.root / "epoch1.json"
    ok(
        setup.runner,
        "network",
        "sign",
        str(setup.file),
        "--key",
        coordinator_key,
        "--out",
        str(first),
    )
    # Re-signing the same content is harmless; changed content under the same epoch is not.
    ok(
        setup.runner,
        "network",
        "sign",
        str(setup.file),
        "--key",
        coordinator_key,
        "--out",
        str(first),
    )
    ok(setup.runner, "network", "set-orphan", str(setup.file), "JP", "nl-eokm")
    err = fails(
        setup.runner,
        "network",
        "sign",
        str(setup.file),
        "--key",
        coordinator_key,
        "--out",
        str(first),
    )
    assert "--bump-epoch" in err

    second = setup.root / "epoch2.json"
    ok(
        setup.runner,
        "network",
        "sign",
        str(setup.file),
        "--key",
        coordinator_key,
        "--out",
        str(second),
        "--bump-epoch",
    )
    assert load_manifest(setup.file).epoch == 2
    assert parse_signed_manifest(second.read_bytes()).document["epoch"] == 2

    out = ok(setup.runner, "network", "verify", str(second), "--current", str(first))
    assert "epoch 2 > 1" in out
    out = fails(setup.runner, "network", "verify", str(first), "--current", str(second), code=1)
    assert "not higher" in out
    fails(setup.runner, "network", "verify", str(first))  # neither --trusted-key nor --current
