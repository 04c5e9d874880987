"""``ihx geoip build``: a small database that ihx reads like a real one, or a clear refusal."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from exchange.cli.main import app
from routing.geoip import GeoIp


def test_builds_a_country_database_that_answers_for_its_networks(
    runner: CliRunner, tmp_path: Path
) -> None:
    target = tmp_path / "country.mmdb"
    result = runner.invoke(
        app, ["geoip", "build", str(target), "185.107.56.0/24=NL", "2a01:4f8::/32=de"]
    )
    assert result.exit_code == 0, result.stderr
    assert "2 networks" in result.stdout
    with GeoIp(target, None) as geo:
        assert geo.country("185.107.56.1") == "NL"
        assert geo.country("2a01:4f8::1") == "DE"
        assert geo.country("8.8.8.8") is None


def test_builds_an_asn_database(runner: CliRunner, tmp_path: Path) -> None:
    country, asn = tmp_path / "country.mmdb", tmp_path / "asn.mmdb"
    assert runner.invoke(app, ["geoip", "build", str(country), "8.8.8.0/24=US"]).exit_code == 0
    result = runner.invoke(app, ["geoip", "build", "--asn", str(asn), "8.8.8.0/24=15169:Google"])
    assert result.exit_code == 0, result.stderr
    with GeoIp(country, asn) as geo:
        found = geo.asn("8.8.8.8")
        assert found is not None
        assert found.number == 15169


def test_refuses_bad_networks_and_existing_files_and_writes_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    target = tmp_path / "country.mmdb"
    for spec, fragment in (
        ("185.107.56.0/24", "CIDR=CC"),
        ("not-a-net=NL", "bad network"),
        ("185.107.56.0/24=NLD", "bad country code"),
    ):
        result = runner.invoke(app, ["geoip", "build", str(target), spec])
        assert result.exit_code == 2, result.stdout
        assert fragment in result.stderr
        assert len(result.stderr.splitlines()) == 1
        assert not target.exists()
    result = runner.invoke(app, ["geoip", "build", "--asn", str(target), "8.8.8.0/24=x:Google"])
    assert result.exit_code == 2
    assert "AS number" in result.stderr
    target.write_bytes(b"keep")
    result = runner.invoke(app, ["geoip", "build", str(target), "8.8.8.0/24=US"])
    assert result.exit_code == 2
    assert "refusing to overwrite" in result.stderr
    assert target.read_bytes() == b"keep"
