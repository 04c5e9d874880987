"""``ihx network set-reader``: the coordinator trusts a member network-wide, for reads only."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from auth.manifest import NetworkReader, load_manifest, load_signed_manifest
from exchange.cli.main import app
from exchange.manifest_store import trust_anchors
from tests.exchange.cli.test_network import Setup, fails, ok


def test_set_reader_grants_changes_signs_and_drops(runner: CliRunner, tmp_path: Path) -> None:
    setup = Setup(runner, tmp_path)
    file = str(setup.file)

    out = ok(runner, "network", "set-reader", file, "inhope", "--scope", "log:read")
    assert "network reader inhope: - → log:read" in out
    out = ok(runner, "network", "set-reader", file, "inhope", "--scope", "log:read,stats:read")
    assert "network reader inhope: log:read → log:read, stats:read" in out
    both = frozenset({"log:read", "stats:read"})
    assert load_manifest(setup.file).network_readers == (NetworkReader("inhope", both),)

    signed = tmp_path / "manifest.json"
    ok(runner, "network", "sign", file, "--key", str(tmp_path / "coordinator.key"),
       "--out", str(signed))  # fmt: skip
    anchors = trust_anchors([setup.coordinator.public.to_b64()])
    manifest = load_signed_manifest(signed.read_bytes(), trusted=anchors, now=datetime.now(UTC))
    assert manifest.network_reader("inhope") == NetworkReader("inhope", both)
    assert "reader  inhope (log:read, stats:read)" in ok(
        runner, "network", "verify", str(signed), "--trusted-key", setup.coordinator.public.to_b64()
    )

    out = ok(runner, "network", "set-reader", file, "inhope", "--drop")
    assert "network reader inhope: log:read, stats:read → -" in out
    assert load_manifest(setup.file).network_readers == ()


def test_set_reader_refuses_write_scopes_and_changes_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    setup = Setup(runner, tmp_path)
    before = setup.file.read_bytes()
    file = str(setup.file)

    err = fails(runner, "network", "set-reader", file, "inhope", "--scope", "cases:pull")
    assert '"cases:pull" cannot be granted network-wide' in err
    assert "unknown member" in fails(
        runner, "network", "set-reader", file, "xx-nobody", "--scope", "log:read"
    )
    assert "give --scope" in fails(runner, "network", "set-reader", file, "inhope")
    assert setup.file.read_bytes() == before


def test_the_first_reader_warns_that_older_nodes_refuse_the_manifest(
    runner: CliRunner, tmp_path: Path
) -> None:
    setup = Setup(runner, tmp_path)
    file = str(setup.file)
    note = "nodes older than this release refuse a manifest with network readers"

    first = runner.invoke(app, ["network", "set-reader", file, "inhope", "--scope", "log:read"])
    assert first.exit_code == 0, first.stderr
    assert note in first.stderr
    # Once the field is there, changing a grant adds nothing old nodes could not already refuse.
    again = runner.invoke(app, ["network", "set-reader", file, "inhope", "--scope", "stats:read"])
    assert again.exit_code == 0, again.stderr
    assert note not in again.stderr
