"""``ihx --version`` prints the installed package's version, the one GetNodeInfo and logs name."""

from __future__ import annotations

from importlib.metadata import version

from exchange.wire.codec import SOFTWARE_VERSION
from tests.exchange.cli.test_main import run_ihx


def test_version_prints_the_installed_version() -> None:
    result = run_ihx(["--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ihx {version('ihx')}\n"
    assert result.stderr == ""


def test_node_info_names_the_same_version() -> None:
    assert f"ihx/{version('ihx')}" == SOFTWARE_VERSION
