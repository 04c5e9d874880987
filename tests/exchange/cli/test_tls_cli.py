"""``ihx tls ca`` and ``ihx tls node``: a development CA and node certificates for mutual TLS.

The files must be usable as written: a CA certificate that signs, a node certificate for the
member with the given hosts and its SPIFFE id, private keys readable by the owner only, and a
printed fingerprint that is exactly what a manifest's ``tls_identity`` must say. An existing CA
key is never overwritten: exit status 2 and one error line.
"""

from __future__ import annotations

import ipaddress
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from typer.testing import CliRunner

from auth.tls import fingerprint, peer_matches
from exchange.cli.main import app

pytestmark = pytest.mark.timeout(30)

MEMBER = "nl-eokm"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def make_ca(runner: CliRunner, directory: Path) -> None:
    result = runner.invoke(app, ["tls", "ca", "--out", str(directory)])
    assert result.exit_code == 0, result.stderr
    assert str(directory) in result.stdout


def test_ca_and_node_certificate_are_written_and_the_fingerprint_is_printed(
    runner: CliRunner, tmp_path: Path
) -> None:
    ca_dir, node_dir = tmp_path / "ca", tmp_path / "node"
    make_ca(runner, ca_dir)
    assert sorted(p.name for p in ca_dir.iterdir()) == ["ca.crt", "ca.key"]
    assert mode(ca_dir / "ca.key") == 0o600
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    ca_key = load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    assert ca_key.public_key() == ca_cert.public_key()
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    result = runner.invoke(
        app,
        [
            "tls",
            "node",
            "--ca",
            str(ca_dir),
            "--member",
            MEMBER,
            "--host",
            "127.0.0.1",
            "--host",
            "node.example",
            "--out",
            str(node_dir),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in node_dir.iterdir()) == ["node.crt", "node.key"]
    assert mode(node_dir / "node.key") == 0o600
    cert_pem = (node_dir / "node.crt").read_bytes()
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = load_pem_private_key((node_dir / "node.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == cert.public_key()

    # Signed by that CA, for that member, its hosts and its SPIFFE id.
    cert.verify_directly_issued_by(ca_cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["node.example"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://ihx/{MEMBER}"]

    # The printed identity is the written certificate's fingerprint, and it matches it.
    printed = re.findall(r'tls_identity = "(sha256:[0-9a-f]{64})"', result.stdout)
    assert printed == [fingerprint(cert_pem)], result.stdout
    assert peer_matches(cert_pem, printed[0])
    assert f'"spiffe://ihx/{MEMBER}"' in result.stdout
    assert peer_matches(cert_pem, f"spiffe://ihx/{MEMBER}")


def test_an_existing_ca_key_is_never_overwritten(runner: CliRunner, tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    make_ca(runner, ca_dir)
    before = {p.name: p.read_bytes() for p in ca_dir.iterdir()}

    result = runner.invoke(app, ["tls", "ca", "--out", str(ca_dir)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ihx: error: ")
    assert "ca.key" in lines[0]
    assert "overwrite" in lines[0]
    assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in ca_dir.iterdir()} == before


def test_a_node_certificate_needs_the_ca_files(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "tls",
            "node",
            "--ca",
            str(tmp_path / "missing"),
            "--member",
            MEMBER,
            "--host",
            "127.0.0.1",
            "--out",
            str(tmp_path / "node"),
        ],
    )
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ihx: error: ")
    assert "ca.crt" in lines[0]
    assert not (tmp_path / "node").exists()
