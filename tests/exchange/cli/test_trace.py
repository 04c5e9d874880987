"""``ihx trace``: the canonical URL, the evidence and the decision, as text and as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auth.manifest import dump_manifest, sign_manifest
from exchange.cli.main import app
from tests.auth.factories import make_network

ACCEPTANCE_URL = "https://Example.NL:443/a/../b#x"


@pytest.fixture
def manifest_toml(tmp_path: Path) -> Path:
    path = tmp_path / "network.toml"
    dump_manifest(make_network().manifest, path)
    return path


@pytest.fixture
def signed_manifest(tmp_path: Path) -> Path:
    kit = make_network()
    path = tmp_path / "signed.json"
    path.write_bytes(sign_manifest(kit.manifest, kit.coordinator_key))
    return path


def trace(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["trace", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_acceptance_example(
    runner: CliRunner, country_db: Path, asn_db: Path, manifest_toml: Path
) -> None:
    code, out, _ = trace(
        runner,
        ACCEPTANCE_URL,
        "--resolve",
        "example.nl=185.107.56.1",
        "--geoip-db",
        str(country_db),
        "--asn-db",
        str(asn_db),
        "--manifest",
        str(manifest_toml),
    )
    assert code == 0
    lines = out.splitlines()
    assert "canonical URL    https://example.nl/b" in lines
    assert any(
        line.split() == ["185.107.56.1", "NL", "AS43350", "NForce", "Entertainment", "B.V."]
        for line in lines
    )
    assert "hosting country  NL" in lines
    assert "responsible      nl-eokm (Expertisebureau Online Kindermisbruik)" in lines
    assert "reason           served-member: NL is served by member nl-eokm" in lines
    assert "GeoLite2-Country (maxmind layout), built 2026-06-01T12:00:00Z" in out
    assert "unsigned manifest file" in out
    for flag in ("default-port-dropped", "dot-segments-resolved", "fragment-dropped"):
        assert flag in out


def test_json_is_one_object_with_the_evidence(
    runner: CliRunner, country_db: Path, asn_db: Path, signed_manifest: Path
) -> None:
    code, out, _ = trace(
        runner,
        ACCEPTANCE_URL,
        "--json",
        "--resolve",
        "example.nl=185.107.56.1,10.0.0.1",
        "--geoip-db",
        str(country_db),
        "--asn-db",
        str(asn_db),
        "--manifest",
        str(signed_manifest),
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["canonical_url"] == "https://example.nl/b"
    assert doc["country"] == "NL"
    public, private = doc["addresses"]
    assert (public["address"], public["country"], public["asn"]) == ("185.107.56.1", "NL", 43350)
    assert public["as_organization"] == "NForce Entertainment B.V."
    assert private["special"] == "private"
    assert private["country"] is None
    assert doc["geoip"]["country"]["database_type"] == "GeoLite2-Country"
    assert doc["geoip"]["asn"]["build_time"] == "2026-06-01T12:00:00Z"
    assert doc["manifest"]["signature"] == "not checked"
    assert doc["decision"]["member"] == "nl-eokm"
    assert doc["decision"]["reason"] == "served-member"


def test_signed_manifest_says_the_signature_was_not_checked(
    runner: CliRunner, country_db: Path, signed_manifest: Path
) -> None:
    code, out, _ = trace(
        runner,
        "http://8.8.8.8/x",
        "--geoip-db",
        str(country_db),
        "--manifest",
        str(signed_manifest),
    )
    assert code == 0
    assert "signature not checked" in out
    assert "responsible      us-ncmec" in out


def test_member_option_makes_a_local_decision(
    runner: CliRunner, country_db: Path, manifest_toml: Path
) -> None:
    code, out, _ = trace(
        runner,
        "http://185.107.56.1/",
        "--geoip-db",
        str(country_db),
        "--manifest",
        str(manifest_toml),
        "--member",
        "nl-eokm",
    )
    assert code == 0
    assert "reason           local: NL is served by this node" in out


@pytest.mark.parametrize(
    ("resolve", "country", "reason"),
    [
        ("example.jp=203.119.1.1", "JP", "orphan-rule"),
        ("example.test=81.2.69.142", "GB", "coordinator-fallback"),
        ("example.test=10.1.2.3", None, "untraceable"),
    ],
)
def test_rules_and_reasons(
    runner: CliRunner,
    country_db: Path,
    manifest_toml: Path,
    resolve: str,
    country: str | None,
    reason: str,
) -> None:
    host = resolve.split("=", maxsplit=1)[0]
    code, out, _ = trace(
        runner,
        f"https://{host}/",
        "--json",
        "--resolve",
        resolve,
        "--geoip-db",
        str(country_db),
        "--manifest",
        str(manifest_toml),
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["country"] == country
    assert doc["decision"]["reason"] == reason


def test_special_purpose_and_tie_are_explained(
    runner: CliRunner, country_db: Path, asn_db: Path
) -> None:
    code, out, _ = trace(
        runner,
        "https://example.test/",
        "--resolve",
        "example.test=10.0.0.1,185.107.56.1,2a01:4f8::1",
        "--geoip-db",
        str(country_db),
        "--asn-db",
        str(asn_db),
    )
    assert code == 0
    assert "special-purpose: private; never a hosting location" in out
    assert "hosting country  DE (tie between DE, NL; first alphabetically)" in out
    assert "responsible" not in out  # no manifest, no decision


def test_geoip_paths_come_from_the_environment(
    runner: CliRunner, country_db: Path, asn_db: Path
) -> None:
    env = {"IHX_GEOIP_COUNTRY_DB": str(country_db), "IHX_GEOIP_ASN_DB": str(asn_db)}
    code, out, _ = trace(runner, "http://8.8.8.8/", "--json", env=env)
    assert code == 0
    doc = json.loads(out)
    assert doc["addresses"][0]["asn"] == 15169
    assert doc["geoip"]["country"]["path"] == str(country_db)


def test_untraceable_without_resolve_uses_dns_and_says_why(
    runner: CliRunner, country_db: Path
) -> None:
    # ".invalid" never resolves (RFC 6761), with or without network access.
    code, out, _ = trace(
        runner, "https://nothing.invalid/", "--json", "--geoip-db", str(country_db)
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["country"] is None
    assert doc["untraceable_reason"].startswith("resolver: ")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["ftp//broken"], "URL"),
        (["javascript:alert(1)"], "javascript"),
        (["http://x/", "--resolve", "x=not-an-ip"], "not-an-ip"),
        (["http://x/", "--member", "nl-eokm"], "--member needs --manifest"),
    ],
)
def test_errors_exit_2_with_one_line(
    runner: CliRunner, country_db: Path, args: list[str], fragment: str
) -> None:
    code, out, err = trace(runner, *args, "--geoip-db", str(country_db))
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("ihx: error: ")
    assert fragment in err


def test_unknown_member_and_bad_manifest_are_errors(
    runner: CliRunner, tmp_path: Path, country_db: Path, manifest_toml: Path
) -> None:
    code, _, err = trace(
        runner,
        "http://8.8.8.8/",
        "--geoip-db",
        str(country_db),
        "--manifest",
        str(manifest_toml),
        "--member",
        "xx-nobody",
    )
    assert (code, err.count("\n")) == (2, 1)
    assert "xx-nobody" in err
    broken = tmp_path / "broken.json"
    broken.write_text('{"manifest": {"network": "x"}, "signatures": []}', encoding="utf-8")
    code, _, err = trace(
        runner, "http://8.8.8.8/", "--geoip-db", str(country_db), "--manifest", str(broken)
    )
    assert (code, err.count("\n")) == (2, 1)
    assert "broken.json" in err


def test_no_geoip_database_is_an_error(runner: CliRunner) -> None:
    code, _, err = trace(runner, "http://8.8.8.8/", env={"IHX_GEOIP_COUNTRY_DB": ""})
    assert code == 2
    assert "IHX_GEOIP_COUNTRY_DB" in err


@pytest.mark.realgeo
def test_acceptance_with_the_real_databases(runner: CliRunner, manifest_toml: Path) -> None:
    country, asn = os.environ.get("IHX_GEOIP_COUNTRY_DB"), os.environ.get("IHX_GEOIP_ASN_DB")
    if not country or not asn:
        pytest.skip("IHX_GEOIP_COUNTRY_DB / IHX_GEOIP_ASN_DB not set")
    code, out, _ = trace(
        runner,
        ACCEPTANCE_URL,
        "--resolve",
        "example.nl=185.107.56.1",
        "--geoip-db",
        country,
        "--asn-db",
        asn,
        "--manifest",
        str(manifest_toml),
    )
    assert code == 0
    assert "https://example.nl/b" in out
    assert "hosting country  NL" in out
    assert "AS43350" in out
    assert "responsible      nl-eokm" in out
