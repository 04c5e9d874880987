"""Progress bars: drawn on stderr when it is a terminal, never in a script's captured stderr.

``ihx log verify`` and ``ihx import`` run against the CLI federation's nodes, once as a real
process with stderr on a pseudo-terminal (the bar's label must be drawn there) and once with
stderr captured (nothing but the command's own lines). ``ihx cases pull`` uses the same helper
(``exchange.cli.common.progress``); its pulls are tested in tests/integration/test_partners.py.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exchange.cli.main import app
from tests.exchange.cli.conftest import Running

pytestmark = pytest.mark.timeout(90)

NL = "nl-eokm"


def on_terminal(args: list[str]) -> tuple[int, str, bytes]:
    """Exit status, stdout and what was drawn on stderr, a pseudo-terminal, by ``ihx ARGS``."""
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "80"}
    command = [sys.executable, "-m", "exchange.cli.main", *args]
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=follower, env=env, stdin=subprocess.DEVNULL
        )
        os.close(follower)
        stdout, _ = process.communicate(timeout=60)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    return process.returncode, stdout.decode(), drawn


def test_log_verify_draws_a_bar_on_a_terminal_only(federation: Running) -> None:
    args = ["log", "verify", "--config", str(federation.config(NL)), "--json"]
    code, stdout, drawn = on_terminal(args)
    assert code == 0, drawn
    assert b"verifying" in drawn
    assert json.loads(stdout)["intact"] is True
    captured = CliRunner().invoke(app, args)  # stderr captured: not a terminal
    assert captured.exit_code == 0, captured.stderr
    assert captured.stderr == ""
    assert json.loads(captured.stdout)["intact"] is True


def test_import_draws_a_bar_on_a_terminal_only(federation: Running, tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    record = {
        "url": "https://example.nl/bar",
        "items": [{"hashes": ["sha256:" + "cd" * 32], "classification": "baseline"}],
    }
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    args = ["import", str(path), "--node", federation.address(NL), "--json"]
    code, _, drawn = on_terminal(args)
    assert code == 0, drawn
    assert b"importing" in drawn
    captured = CliRunner().invoke(app, args)
    assert captured.exit_code == 0, captured.stderr
    assert captured.stderr == ""
    assert json.loads(captured.stdout.splitlines()[-1])["summary"]["duplicates"] == 1
