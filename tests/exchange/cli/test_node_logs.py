"""``ihx node run --log-format json``: every line the node writes is one JSON object.

The real console script runs in a subprocess; a report for a member whose node is down makes it
log about that peer. After SIGTERM every line of stdout and stderr must parse as JSON and carry
the time, level, logger, message, the node's member and the installed version; the lifecycle
lines ("listening", "stopping", "stopped") are among them, and the line about the peer names it
in a ``peer`` field, not only in its message.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import grpc

from exchange.client.stubs import IntakeClient
from exchange.tools.provision import MemberPlan, provision_federation
from tests.conftest import GeoRow
from tests.exchange.cli.conftest import FAST_RETRIES, STATIC_HOSTS
from tests.exchange.cli.test_main import ihx_script
from tests.exchange.factories import make_submission, url_in

FIELDS = ("time", "level", "logger", "message", "member", "version")


def _read_until(
    proc: subprocess.Popen[str],
    wanted: Callable[[dict[str, Any]], bool],
    lines: list[str],
    timeout: float = 60,
) -> dict[str, Any]:
    """Read stderr lines into ``lines`` until one is ``wanted``; that line as a dict."""
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not selector.select(timeout=1):
            continue
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        doc = json.loads(line)
        if wanted(doc):
            return dict(doc)
    raise AssertionError(f"no such log line; the last seen: {lines[-5:]}")


def test_every_line_is_json_with_member_version_and_peer(
    tmp_path: Path, geo_table: Mapping[str, GeoRow]
) -> None:
    fed = provision_federation(
        tmp_path / "fed",
        [
            MemberPlan("nl-eokm", "EOKM", ("NL",)),
            MemberPlan("de-eco", "eco", ("DE",)),
            MemberPlan("inhope", "INHOPE", ()),
        ],
        coordinator="inhope",
        now=datetime.now(UTC),
        orphan_rules={},
        country_networks={net: row.country for net, row in geo_table.items()},
        asn_networks={},
        static_hosts=STATIC_HOSTS,
        extra_settings=FAST_RETRIES,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("IHX_")}
    proc = subprocess.Popen(
        [ihx_script(), "node", "run", "--config", str(fed.config_path("nl-eokm"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "IHX_LOG_FORMAT": "json"},
    )
    lines: list[str] = []
    try:
        listening = _read_until(proc, lambda d: "listening on" in d["message"], lines)
        address = listening["address"]
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
        # No other node runs: delivering this report (to de-eco, and its announcement to every
        # member) fails, and the node says so about each peer.
        with IntakeClient(address, token=fed.token("nl-eokm")) as intake:
            intake.submit(make_submission(url_in("DE", "/logs.jpg"), hashes=["logs"]))
        about_peer = _read_until(proc, lambda d: "peer" in d, lines)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    lines += [*stderr.splitlines(), *stdout.splitlines()]
    docs = [json.loads(line) for line in lines if line.strip()]  # fails on any plain line
    assert len(docs) == len([line for line in lines if line.strip()])
    for doc in docs:
        assert all(doc.get(name) for name in FIELDS), doc
        assert doc["member"] == "nl-eokm"
        assert doc["version"] == version("ihx")
        datetime.fromisoformat(doc["time"])
    messages = [doc["message"] for doc in docs]
    assert "stopping…" in messages
    assert "stopped" in messages
    assert about_peer["peer"] in {"de-eco", "inhope"}
    assert about_peer["peer"] in about_peer["message"]
    assert listening["level"] == "info"
    assert listening["logger"] == "exchange.node"


def test_json_logs_name_a_bad_config_in_json(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("[node]\nmember = 'nl-eokm'\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IHX_")}
    result = subprocess.run(
        [ihx_script(), "node", "run", "--config", str(config), "--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    doc = json.loads(line)
    assert doc["level"] == "error"
    assert "node.listen" in doc["message"]


def test_an_unknown_log_format_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IHX_")}
    result = subprocess.run(
        [ihx_script(), "node", "run", "--config", str(tmp_path / "x.toml"), "--log-format", "xml"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "--log-format" in result.stderr
    assert "json, text" in result.stderr
