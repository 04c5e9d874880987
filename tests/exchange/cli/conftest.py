"""Fixtures for the command-line tests: a CLI runner, and a small real federation on loopback.

``federation`` provisions three nodes with ``exchange.tools.provision`` (real keys, signed manifest,
migrated databases — SQLite files, or PostgreSQL databases when the suite runs on it — GeoIP
databases built from the shared ``GEO_TABLE``) and starts them
on 127.0.0.1; they are stopped at teardown. Backoff is shortened so a sender that tried a peer
before it was listening retries within milliseconds, keeping the tests quick. Every intake call
carries a token issued by the node (``IHX_TOKEN`` for the CLI), as a node that checks tokens
requires.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection
from typer.testing import CliRunner

from exchange.client.stubs import IntakeClient
from exchange.node import Node, build_node
from exchange.tools.provision import Federation, MemberPlan, provision_federation
from tests.conftest import GeoRow
from tests.dbs import Databases

# Hosts of the test network and where GEO_TABLE puts them.
STATIC_HOSTS: Mapping[str, list[str]] = {
    "example.nl": ["185.107.56.1"],
    "example.de": ["2a01:4f8::1"],
    "example.us": ["8.8.8.8"],
    "example.jp": ["203.119.1.1"],
    "private.example": ["10.0.0.1"],
}
FAST_RETRIES = """
[exchange]
backoff_initial_s = 0.05
backoff_max_s = 0.5
linger_ms = 1.0
manifest_poll_s = 0.2
"""


@dataclass
class Running:
    """A started federation: the provisioned files plus the live nodes."""

    fed: Federation
    nodes: dict[str, Node]
    running: list[Node]

    def stop(self, member: str) -> None:
        node = self.nodes[member]
        self.running.remove(node)
        node.stop(grace=0)

    def address(self, member: str) -> str:
        return self.nodes[member].address

    def token(self, member: str) -> str:
        """An analyst's intake token issued by ``member``'s node (as ``ihx token issue``)."""
        return self.fed.token(member)

    def intake(self, member: str) -> IntakeClient:
        return IntakeClient(self.address(member), token=self.token(member))

    def config(self, member: str) -> Path:
        return self.fed.config_path(member)

    def query(self, member: str, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        """Raw SQL with ``?`` placeholders against the member's database, rows as tuples."""
        with self.nodes[member].engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(_native(conn, sql), params)]

    def execute(self, member: str, sql: str, params: tuple[object, ...] = ()) -> None:
        """Edit a node's database directly, as an attacker with database access could."""
        with self.nodes[member].engine.begin() as conn:
            conn.exec_driver_sql(_native(conn, sql), params)


def _native(conn: Connection, sql: str) -> str:
    # The tests write sqlite3's ``?``; psycopg's placeholder is ``%s``.
    return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def federation(
    tmp_path: Path,
    geo_table: Mapping[str, GeoRow],
    monkeypatch: pytest.MonkeyPatch,
    databases: Databases,
) -> Iterator[Running]:
    fed = provision_federation(
        tmp_path / "fed",
        [
            MemberPlan("nl-eokm", "EOKM", ("NL",)),
            MemberPlan("de-eco", "eco", ("DE",)),
            MemberPlan("inhope", "INHOPE", ()),
        ],
        coordinator="inhope",
        now=datetime.now(UTC),
        orphan_rules={"JP": "de-eco"},
        country_networks={net: row.country for net, row in geo_table.items()},
        asn_networks={
            net: (row.asn, row.organization or "")
            for net, row in geo_table.items()
            if row.asn is not None
        },
        static_hosts=STATIC_HOSTS,
        extra_settings=FAST_RETRIES,
        database_url=databases.for_members(),
    )
    nodes = {member: build_node(settings) for member, settings in fed.settings.items()}
    started: list[Node] = []
    try:
        for node in nodes.values():
            node.start()
            started.append(node)
        running = Running(fed, nodes, started)
        # The CLI reads it like a user's environment; submissions in the tests go to nl-eokm.
        monkeypatch.setenv("IHX_TOKEN", running.token("nl-eokm"))
        yield running
    finally:
        for node in started:
            node.stop(grace=0.5)
