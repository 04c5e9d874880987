"""A port already in use: ``ihx node run`` and ``ihx web`` name the address and exit 2.

Each test holds the port with a real listening socket and runs the real command as a child
process (the console script's ``main``, so the exit status is the one an operator sees). Before
this, the gRPC port failed with ``internal error: RuntimeError: cannot join thread before it is
started`` (exit 70): the failed start's cleanup joined a thread that never started.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exchange.errors import ListenError
from exchange.ops.listen import check_bindable
from exchange.tools.provision import Federation, MemberPlan, free_port, provision_federation
from tests.conftest import GeoRow
from tests.dbs import Databases

_REPO = Path(__file__).resolve().parents[3]
_MAIN = "from exchange.cli.main import main; main()"


@pytest.fixture
def node_fed(tmp_path: Path, geo_table: Mapping[str, GeoRow], databases: Databases) -> Federation:
    return provision_federation(
        tmp_path / "fed",
        [MemberPlan("nl-eokm", "EOKM", ("NL",)), MemberPlan("inhope", "INHOPE", ())],
        coordinator="inhope",
        now=datetime.now(UTC),
        orphan_rules={},
        country_networks={net: row.country for net, row in geo_table.items()},
        asn_networks={},
        static_hosts={},
        database_url=databases.for_members(),
    )


@pytest.fixture
def held() -> Iterator[socket.socket]:
    """A port on 127.0.0.1 held by a listening socket for the whole test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))
        s.listen()
        yield s


def _ihx(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    environment.pop("IHX_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-c", _MAIN, *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=_REPO,
        env=environment,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def _address(s: socket.socket) -> str:
    host, port = s.getsockname()
    return f"{host}:{port}"


def _assert_refused(result: subprocess.CompletedProcess[str], address: str) -> None:
    line = f"ihx: error: cannot listen on {address}: address already in use"
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert line in result.stderr.splitlines(), result.stderr[-2000:]
    assert "internal error" not in result.stderr


@pytest.mark.timeout(120)
def test_node_run_on_a_port_in_use_names_the_address(
    node_fed: Federation, held: socket.socket
) -> None:
    address = _address(held)
    config = node_fed.config_path("nl-eokm")
    result = _ihx("node", "run", "-c", str(config), env={"IHX_NODE_LISTEN": address})
    _assert_refused(result, address)


@pytest.mark.timeout(120)
def test_node_run_with_its_metrics_port_in_use_names_that_address(
    node_fed: Federation, held: socket.socket
) -> None:
    address = _address(held)
    config = node_fed.config_path("nl-eokm")
    # The gRPC port is free: the node starts serving, then stops cleanly on the metrics port.
    result = _ihx("node", "run", "-c", str(config), env={"IHX_METRICS_LISTEN": address})
    _assert_refused(result, address)


@pytest.mark.timeout(120)
def test_web_on_a_port_in_use_names_the_address(node_fed: Federation, held: socket.socket) -> None:
    address = _address(held)
    config = node_fed.config_path("nl-eokm")
    result = _ihx("web", "-c", str(config), "--listen", address, env={"IHX_WEB_ENABLED": "true"})
    _assert_refused(result, address)


def test_check_bindable_accepts_a_free_port_and_names_a_held_one(held: socket.socket) -> None:
    check_bindable(f"127.0.0.1:{free_port()}")
    address = _address(held)
    with pytest.raises(ListenError) as caught:
        check_bindable(address)
    assert caught.value.message == f"cannot listen on {address}: address already in use"
    assert caught.value.code == "listen"
