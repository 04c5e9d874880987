"""``ihx log --network`` / ``log verify --network``: a token never goes out in plaintext.

A network token is good at every member, so anyone on the path of a plaintext call could replay
it at all of them. Without a TLS identity (``--tls-config``) the command asks no member off
loopback, names each one and exits 1; loopback (tests, a sidecar) is allowed. ``--token-file``
reads the tokens from a file, so they stay out of the process list.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from auth.manifest import Manifest, dump_manifest, network_audience, set_network_reader
from exchange.cli.common import CliError
from exchange.cli.main import app
from exchange.cli.network_reads import plaintext_refusal, tls_from_config, token_values
from tests.auth.factories import COORDINATOR, NETWORK, make_manifest

TLS = (b"ca", b"cert", b"key")


@pytest.fixture
def manifest() -> Manifest:
    # Every member at <id>.ihx.test:7443: none on loopback.
    return set_network_reader(make_manifest(), COORDINATOR, frozenset({"log:read"}))


def _network_token() -> str:
    now = datetime.now(UTC)
    claims = {"aud": network_audience(NETWORK), "iss": "x", "exp": now + timedelta(minutes=5)}
    return jwt.encode(claims, "not-a-secret-that-matters-here-0123456789", algorithm="HS256")


def _ihx(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("address", "token", "tls", "refused"),
    [
        ("nl.ihx.test:7443", "t", None, True),
        ("192.0.2.7:7443", "t", None, True),
        ("127.0.0.1:7702", "t", None, False),
        ("[::1]:7702", "t", None, False),
        ("localhost:7702", "t", None, False),
        ("nl.ihx.test:7443", "t", TLS, False),
        ("nl.ihx.test:7443", None, None, False),  # no token: nothing to leak
    ],
)
def test_a_token_goes_in_plaintext_to_loopback_only(
    address: str, token: str | None, tls: tuple[bytes, bytes, bytes] | None, refused: bool
) -> None:
    refusal = plaintext_refusal("nl-eokm", address, token, tls)
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.startswith(f"nl-eokm ({address}): not asked")


@pytest.mark.parametrize("verb", [(), ("verify",)])
def test_log_network_asks_no_member_in_plaintext(
    tmp_path: Path, manifest: Manifest, verb: tuple[str, ...]
) -> None:
    path = tmp_path / "manifest.json"
    dump_manifest(manifest, path)
    token_file = tmp_path / "token"
    token_file.write_text(_network_token() + "\n", encoding="utf-8")
    code, output = _ihx("log", *verb, "--network", str(path), "--token-file", str(token_file))
    assert code == 1
    for member in manifest.members:
        assert f"{member.id} ({member.endpoint}): not asked" in " ".join(output.split())


def test_log_node_refuses_a_plaintext_token_off_loopback() -> None:
    code, output = _ihx("log", "--node", "nl.ihx.test:7443", "--token", "a.b.c")
    assert code == 2
    assert "never sent in plaintext" in output


def test_token_file_and_tls_config_are_read_strictly(tmp_path: Path) -> None:
    (tmp_path / "tokens").write_text("a.b.c\n\n nl-eokm=d.e.f \n", encoding="utf-8")
    assert token_values(["x.y.z"], tmp_path / "tokens") == ["x.y.z", "a.b.c", "nl-eokm=d.e.f"]
    with pytest.raises(CliError, match=r"--token-file .*: cannot read"):
        token_values([], tmp_path / "missing")
    assert tls_from_config(None) is None
