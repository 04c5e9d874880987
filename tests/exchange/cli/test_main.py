"""The error contract of the installed ``ihx`` script: exit statuses and one-line errors.

These run the real console script in a subprocess, so they prove what a user sees: exit status
2 and exactly one ``ihx: error: …`` line on stderr for every expected failure, never a
traceback; Typer's usage errors also exit 2; ``node run`` stops cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from exchange.cli import main as cli_main
from exchange.cli.common import error_line, one_line
from exchange.tools.provision import MemberPlan, free_port, provision_federation


def ihx_script() -> str:
    found = shutil.which("ihx") or str(Path(sys.executable).parent / "ihx")
    assert Path(found).exists(), "the ihx console script is not installed"
    return found


def run_ihx(args: Sequence[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IHX_")}
    return subprocess.run(
        [ihx_script(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ihx: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_url_is_one_line_and_exit_2(country_db: Path) -> None:
    result = run_ihx(["trace", "javascript:alert(1)", "--geoip-db", str(country_db)])
    assert_one_error_line(result, "javascript")
    assert result.stdout == ""


def test_missing_geoip_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mmdb"
    result = run_ihx(["trace", "http://example.nl/", "--geoip-db", str(missing)])
    assert_one_error_line(result, str(missing))


def test_garbage_manifest_file_is_one_line(tmp_path: Path, country_db: Path) -> None:
    manifest = tmp_path / "m.toml"
    manifest.write_text("network = [\n", encoding="utf-8")
    result = run_ihx(
        ["trace", "http://8.8.8.8/", "--geoip-db", str(country_db), "--manifest", str(manifest)]
    )
    assert_one_error_line(result, "m.toml")


def test_unreachable_node_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    result = run_ihx(
        [
            "submit",
            "--node",
            f"127.0.0.1:{port}",
            "--url",
            "https://example.nl/",
            "--hash",
            "sha256:" + "a" * 64,
            "--classification",
            "baseline",
        ]
    )
    assert_one_error_line(result, "node unavailable")


def test_missing_settings_file_is_one_line(tmp_path: Path) -> None:
    result = run_ihx(["status", "--config", str(tmp_path / "node.toml")])
    assert_one_error_line(result, "node.toml")


def test_usage_error_is_typers_with_exit_2() -> None:
    result = run_ihx(["trace", "--no-such-option"])
    assert result.returncode == 2
    assert "No such option" in result.stderr
    assert "Traceback" not in result.stderr


def test_node_run_serves_until_sigterm(tmp_path: Path, geo_table: object) -> None:
    fed = provision_federation(
        tmp_path / "fed",
        [MemberPlan("nl-eokm", "EOKM", ("NL",)), MemberPlan("inhope", "INHOPE", ())],
        coordinator="inhope",
        now=datetime.now(UTC),
        orphan_rules={},
        country_networks={"185.107.56.0/22": "NL"},
        asn_networks={},
        static_hosts={"example.nl": ["185.107.56.1"]},
    )
    proc = subprocess.Popen(
        [ihx_script(), "node", "run", "--config", str(fed.config_path("nl-eokm"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in first
        address = first.rsplit(" ", 1)[1].strip()
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "stopped" in stdout
    assert "Traceback" not in stderr


def test_node_run_on_a_bad_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("[node]\nmember = 'nl-eokm'\n", encoding="utf-8")
    result = run_ihx(["node", "run", "--config", str(config)])
    assert_one_error_line(result, "node.listen")


# -- in-process: the mapping itself ------------------------------------------------------------


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_error_line_names_the_grpc_status_and_keeps_one_line() -> None:
    text = error_line(_FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "bad\nthing"))
    assert text == "the node refused the request (INVALID_ARGUMENT): bad thing"
    assert error_line(_FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down")).startswith(
        "node unavailable"
    )
    assert error_line(FileNotFoundError(2, "No such file or directory", "/x/y")) == (
        "/x/y: No such file or directory"
    )
    assert one_line("a\n\n  b  \n") == "a b"


def test_unexpected_exception_is_an_internal_error_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], country_db: Path
) -> None:
    def boom(url: str) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("exchange.cli.trace.canonicalize", boom)
    monkeypatch.setattr(sys, "argv", ["ihx", "trace", "http://x/", "--geoip-db", str(country_db)])
    monkeypatch.delenv("IHX_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main()
    assert exit_info.value.code == 70
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "ihx: internal error: RuntimeError: boom second line (set IHX_DEBUG=1 for a traceback)"
    ]


def test_every_command_module_is_reachable_from_the_root_table() -> None:
    # A module of exchange/cli that registers commands but is missing from COMMANDS would never
    # load: its commands would silently vanish from `ihx`.
    cli_dir = Path(cli_main.__file__).parent
    registering = {
        p.stem for p in cli_dir.glob("*.py") if "\ndef register(" in p.read_text(encoding="utf-8")
    }
    assert registering == {m for modules in cli_main.COMMANDS.values() for m in modules}


@pytest.mark.parametrize("name", list(cli_main.COMMANDS))
def test_each_top_level_command_loads_under_its_name(name: str) -> None:
    command = cli_main.load_command(name)
    assert command.name == name
