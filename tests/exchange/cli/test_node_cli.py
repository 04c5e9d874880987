"""``ihx init``, ``ihx db upgrade`` and ``ihx status``."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auth.keys import SigningKey
from auth.manifest import sign_manifest
from exchange.cli.main import app
from exchange.domain import Classification, ContentHash, HashAlgorithm, Submission, make_facts
from exchange.domain import make_item as domain_item
from exchange.settings import load_settings
from exchange.store.engine import open_engine
from exchange.store.migrate import current_revision, head_revision
from tests.auth.factories import make_network
from tests.dbs import Databases, postgresql_admin_url
from tests.exchange.cli.conftest import Running, wait_for

COORDINATOR_KEY = make_network().coordinator_key.public.to_b64()


def init_args(directory: Path, country_db: Path, *extra: str) -> list[str]:
    return [
        "init",
        str(directory),
        "--member",
        "nl-eokm",
        "--listen",
        "127.0.0.1:7701",
        "--geoip-db",
        str(country_db),
        *extra,
    ]


def test_init_creates_key_settings_and_migrated_database(
    runner: CliRunner, tmp_path: Path, country_db: Path, asn_db: Path
) -> None:
    node_dir = tmp_path / "nl"
    result = runner.invoke(
        app,
        init_args(
            node_dir,
            country_db,
            "--asn-db",
            str(asn_db),
            "--trusted-key",
            COORDINATOR_KEY,
            "--static",
            "example.nl=185.107.56.1,2a01:4f8::1",
        ),
    )
    assert result.exit_code == 0, result.stderr
    key = SigningKey.load(node_dir / "node.key")
    assert stat.S_IMODE((node_dir / "node.key").stat().st_mode) == 0o600
    assert f"key id      {key.key_id}" in result.stdout
    assert f"public key  {key.public.to_b64()}" in result.stdout
    assert "member      nl-eokm" in result.stdout

    settings = load_settings(node_dir / "node.toml", env={})
    assert settings.member == "nl-eokm"
    assert settings.trusted_keys == (COORDINATOR_KEY,)
    assert settings.country_db == country_db.resolve()
    assert settings.asn_db == asn_db.resolve()
    assert settings.resolver_kind == "static"
    assert settings.static_hosts == {"example.nl": ("185.107.56.1", "2a01:4f8::1")}
    engine = open_engine(settings.database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    # Nothing but the node's own files, and no temporary directory left beside it.
    assert sorted(p.name for p in node_dir.iterdir() if not p.name.startswith("node.db-")) == [
        "node.db",
        "node.key",
        "node.toml",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["nl"]


def test_init_with_a_signed_manifest_checks_and_copies_it(
    runner: CliRunner, tmp_path: Path, country_db: Path
) -> None:
    kit = make_network()
    signed = tmp_path / "signed.json"
    signed.write_bytes(sign_manifest(kit.manifest, kit.coordinator_key))
    node_dir = tmp_path / "node"
    result = runner.invoke(
        app,
        init_args(
            node_dir, country_db, "--manifest", str(signed), "--trusted-key", COORDINATOR_KEY
        ),
    )
    assert result.exit_code == 0, result.stderr
    assert (node_dir / "manifest.json").read_bytes() == signed.read_bytes()
    # The new key is not in the manifest yet: the coordinator must add it.
    assert "in the manifest with other keys" in result.stderr

    other = SigningKey.generate().public.to_b64()
    result = runner.invoke(
        app,
        init_args(tmp_path / "n2", country_db, "--manifest", str(signed), "--trusted-key", other),
    )
    assert result.exit_code == 2
    assert "not a trusted coordinator key" in result.stderr
    assert not (tmp_path / "n2").exists()


def test_init_without_trusted_key_trusts_the_manifest_keys_and_says_so(
    runner: CliRunner, tmp_path: Path, country_db: Path
) -> None:
    kit = make_network()
    signed = tmp_path / "signed.json"
    signed.write_bytes(sign_manifest(kit.manifest, kit.coordinator_key))
    result = runner.invoke(app, init_args(tmp_path / "n", country_db, "--manifest", str(signed)))
    assert result.exit_code == 0, result.stderr
    assert "no --trusted-key given" in result.stderr
    settings = load_settings(tmp_path / "n" / "node.toml", env={})
    assert settings.trusted_keys == (COORDINATOR_KEY,)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--trusted-key", COORDINATOR_KEY, "--listen", "192.0.2.1:7701"], "loopback"),
        (["--trusted-key", "bm90IGEga2V5"], "--trusted-key"),
        ([], "coordinator's public key"),
        (["--trusted-key", COORDINATOR_KEY, "--static", "example.nl"], "host=ip"),
    ],
)
def test_init_refuses_bad_input_and_leaves_nothing(
    runner: CliRunner, tmp_path: Path, country_db: Path, extra: list[str], fragment: str
) -> None:
    result = runner.invoke(app, init_args(tmp_path / "node", country_db, *extra))
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_init_refuses_a_non_empty_directory_and_a_bad_geoip_file(
    runner: CliRunner, tmp_path: Path, country_db: Path, asn_db: Path
) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x", encoding="utf-8")
    result = runner.invoke(app, init_args(busy, country_db, "--trusted-key", COORDINATOR_KEY))
    assert result.exit_code == 2
    assert "not an empty directory" in result.stderr
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]

    # An ASN database given as the country database is caught at init, not at the first trace.
    result = runner.invoke(app, init_args(tmp_path / "n", asn_db, "--trusted-key", COORDINATOR_KEY))
    assert result.exit_code == 2
    assert "country database" in result.stderr
    assert not (tmp_path / "n").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, init_args(empty, country_db, "--trusted-key", COORDINATOR_KEY))
    assert result.exit_code == 0, result.stderr
    assert (empty / "node.key").exists()


def test_init_with_a_database_url_names_it_and_migrates_that_database(
    runner: CliRunner, tmp_path: Path, country_db: Path
) -> None:
    # PostgreSQL whatever the run: the option exists for it (a fresh database on the local server).
    dbs = Databases(tmp_path, postgresql_admin_url())
    try:
        url = dbs.new(empty=True)
        node_dir = tmp_path / "nl"
        result = runner.invoke(
            app,
            init_args(
                node_dir, country_db, "--trusted-key", COORDINATOR_KEY, "--database-url", url
            ),
        )
        assert result.exit_code == 0, result.stderr
        settings = load_settings(node_dir / "node.toml", env={})
        assert settings.database_url == url
        assert not (node_dir / "node.db").exists()
        engine = open_engine(url)
        try:
            assert current_revision(engine) == head_revision()
        finally:
            engine.dispose()
    finally:
        dbs.close()


def test_init_refuses_a_database_it_cannot_open_and_leaves_nothing(
    runner: CliRunner, tmp_path: Path, country_db: Path
) -> None:
    result = runner.invoke(
        app,
        init_args(
            tmp_path / "nl",
            country_db,
            "--trusted-key",
            COORDINATOR_KEY,
            "--database-url",
            "postgresql+psycopg://postgres@127.0.0.1:1/none",
        ),
    )
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("ihx: error: ")
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_migrates_and_reports_the_revision(
    runner: CliRunner, tmp_path: Path, country_db: Path
) -> None:
    node_dir = tmp_path / "n"
    assert (
        runner.invoke(
            app, init_args(node_dir, country_db, "--trusted-key", COORDINATOR_KEY)
        ).exit_code
        == 0
    )
    config = node_dir / "node.toml"
    result = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"database already at revision {head_revision()}"

    for f in node_dir.glob("node.db*"):
        f.unlink()
    result = runner.invoke(app, ["status", "--config", str(config)])
    assert result.exit_code == 2
    assert "ihx db upgrade" in result.stderr
    result = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"database upgraded from empty to revision {head_revision()}"


def _submission(url: str, seed: str) -> Submission:
    item = domain_item(
        [ContentHash(HashAlgorithm.SHA256, (seed * 64)[:64])], Classification.BASELINE
    )
    return Submission(url, make_facts(), (item,))


def test_status_counts_reports_cases_outbox_and_peers(
    runner: CliRunner, federation: Running
) -> None:
    with federation.intake("nl-eokm") as client:
        client.submit(_submission("https://example.de/a", "a"))
        client.submit(_submission("https://example.de/b", "b"))
        client.submit(_submission("https://example.nl/c", "c"))
    wait_for(lambda: federation.query("nl-eokm", "select count(*) from deliveries")[0][0] == 2)
    wait_for(lambda: federation.query("de-eco", "select count(*) from hash_index")[0][0] == 3)
    wait_for(lambda: federation.query("nl-eokm", "select count(*) from hash_index")[0][0] == 3)

    result = runner.invoke(app, ["status", "--config", str(federation.config("nl-eokm")), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["member"] == "nl-eokm"
    assert doc["reports"] == {"origin": 3}
    assert doc["cases"] == {"open": 1, "total": 1}
    assert doc["outbox"] == []
    peers = {p["member"]: p for p in doc["peers"]}
    assert peers["de-eco"]["delivered_reports"] == 2
    assert peers["de-eco"]["unreceipted_batches"] == 0
    assert peers["de-eco"]["last_heard_at"] is not None
    assert doc["hash_index_size"] == 3
    assert doc["routing_log_size"] == len(
        federation.query("nl-eokm", "select idx from routing_log")
    )

    result = runner.invoke(app, ["status", "--config", str(federation.config("de-eco"))])
    assert result.exit_code == 0, result.stderr
    assert "reports         2 received" in result.stdout
    assert "cases           2 open, 2 in total" in result.stdout
    assert "hash index      3 hashes" in result.stdout


def test_status_shows_pending_outbox_for_a_dead_peer(
    runner: CliRunner, federation: Running
) -> None:
    federation.stop("de-eco")
    with federation.intake("nl-eokm") as client:
        client.submit(_submission("https://example.de/late", "d"))
    result = runner.invoke(app, ["status", "--config", str(federation.config("nl-eokm")), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [(p["destination"], p["reports"]) for p in doc["outbox"]] == [("de-eco", 1)]
    assert doc["outbox"][0]["oldest"] is not None
    result = runner.invoke(app, ["status", "--config", str(federation.config("nl-eokm"))])
    assert "outbox          1 reports pending" in result.stdout
    assert any(line.split()[:2] == ["de-eco", "1"] for line in result.stdout.splitlines())


def test_init_turns_metrics_on_by_default(
    runner: CliRunner, tmp_path: Path, country_db: Path
) -> None:
    on = runner.invoke(
        app, init_args(tmp_path / "on", country_db, "--trusted-key", COORDINATOR_KEY)
    )
    assert on.exit_code == 0, on.stderr
    assert load_settings(tmp_path / "on" / "node.toml", env={}).metrics_listen == "127.0.0.1:9464"
    off = runner.invoke(
        app,
        init_args(
            tmp_path / "off",
            country_db,
            "--trusted-key",
            COORDINATOR_KEY,
            "--metrics-listen",
            "off",
        ),
    )
    assert off.exit_code == 0, off.stderr
    assert load_settings(tmp_path / "off" / "node.toml", env={}).metrics_listen is None
    bad = runner.invoke(
        app,
        init_args(
            tmp_path / "bad",
            country_db,
            "--trusted-key",
            COORDINATOR_KEY,
            "--metrics-listen",
            "9464",
        ),
    )
    assert bad.exit_code == 2
    assert "--metrics-listen must be host:port" in bad.stderr
    assert not (tmp_path / "bad").exists()
