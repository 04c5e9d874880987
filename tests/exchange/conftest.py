"""Fixtures for the node-core tests: a real migrated SQLite file, the writer, the network, intake.

* ``engine`` — the test's own database (a SQLite file in ``tmp_path``, WAL, FULL sync; or a fresh
  PostgreSQL database when ``IHX_TEST_DATABASE_URL`` is set) migrated to head with Alembic;
  ``writer`` — the single writer over it, started, stopped at teardown; ``sqlite_engine`` — a
  SQLite file migrated to head whatever the suite runs on (for what only SQLite has: its
  settings, its query plans).
* ``network`` / ``manifest`` — the shared test network (``tests.auth.factories``).
* ``clock`` — a ``FakeClock`` at ``factories.T0``; it moves only when a test advances it.
* ``resolver`` / ``geoip`` / ``tracer`` — ``url_in(cc)`` hosts resolve to an address that the
  small GeoIP databases of ``tests/conftest.py`` place in country ``cc``; other hosts get
  NXDOMAIN (untraceable).
* ``make_intake(member)`` / ``make_receiver(member)`` — the node's intake and receiver for a
  member, over the same writer; ``wakes`` records the destinations intake woke.

Helpers that are not fixtures (``table_counts``, ``writer_held``, ``FakeClock``, the report and
envelope factories) live in ``tests.exchange.factories``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from auth.manifest import Manifest
from exchange.intake import Intake
from exchange.receiver import Receiver
from exchange.store import schema
from exchange.store.engine import open_engine
from exchange.store.migrate import upgrade
from exchange.store.writer import Tx, Writer
from exchange.wire.envelope import Limits
from routing.geoip import GeoIp
from routing.resolver import StaticResolver
from routing.trace import Tracer
from tests.conftest import GeoRow
from tests.dbs import Databases
from tests.exchange.factories import FakeClock, NetworkKit, host_in, make_network, signing_key


@pytest.fixture
def db_url(databases: Databases) -> str:
    return databases.new()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """The test's own real database, migrated to head by Alembic."""
    eng = open_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file migrated to head, also when the suite runs on PostgreSQL."""
    eng = open_engine(f"sqlite:///{tmp_path / 'node.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def writer(engine: Engine) -> Iterator[Writer]:
    """The started single writer over ``engine``; stopped at teardown."""
    w = Writer(engine)
    w.start()
    yield w
    w.stop()


@pytest.fixture
def network() -> NetworkKit:
    return make_network()


@pytest.fixture
def manifest(network: NetworkKit) -> Manifest:
    return network.manifest


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def resolver(geo_table: Mapping[str, GeoRow]) -> StaticResolver:
    """``host_in(cc)`` → the first test-database address in ``cc``; anything else NXDOMAIN."""
    table: dict[str, list[str]] = {}
    for row in geo_table.values():
        table.setdefault(host_in(row.country), [row.sample])
    return StaticResolver(table)


@pytest.fixture
def geoip(country_db: Path, asn_db: Path) -> Iterator[GeoIp]:
    reader = GeoIp(country_db, asn_db)
    yield reader
    reader.close()


@pytest.fixture
def tracer(resolver: StaticResolver, geoip: GeoIp, clock: FakeClock) -> Tracer:
    return Tracer(resolver, geoip, clock)


@pytest.fixture
def wakes() -> list[set[str]]:
    """Every set of destinations intake asked to wake, in order."""
    return []


@pytest.fixture
def early_seals() -> list[tuple[set[str], list[str]]]:
    """Every ``seal_early`` intake asked for: the destinations, and the report ids queued for
    them as its transaction saw them at that moment."""
    return []


@pytest.fixture
def make_intake(
    tracer: Tracer,
    manifest: Manifest,
    writer: Writer,
    clock: FakeClock,
    wakes: list[set[str]],
    early_seals: list[tuple[set[str], list[str]]],
) -> Callable[..., Intake]:
    """``make_intake(member="nl-eokm", manifest=None, early=True)`` → an Intake of that member;
    ``early=False``: without senders that seal in its transaction (it wakes them itself)."""

    def build(
        member: str = "nl-eokm", manifest_: Manifest | None = None, *, early: bool = True
    ) -> Intake:
        current = manifest_ or manifest
        return Intake(
            self_member=member,
            tracer=tracer,
            manifest=lambda: current,
            writer=writer,
            clock=clock,
            wake=wakes.append,
            seal_early=seal_early if early else None,
        )

    def seal_early(tx: Tx, members: set[str]) -> None:
        outbox = schema.outbox
        queued = tx.conn.execute(
            select(outbox.c.report_id)
            .where(outbox.c.destination.in_(members))
            .order_by(outbox.c.id)
        )
        early_seals.append((set(members), list(queued.scalars())))

    return build


@pytest.fixture
def intake(make_intake: Callable[..., Intake]) -> Intake:
    """The intake of nl-eokm (NL-hosted URLs are local cases there)."""
    return make_intake("nl-eokm")


@pytest.fixture
def make_receiver(manifest: Manifest, writer: Writer, clock: FakeClock) -> Callable[..., Receiver]:
    """``make_receiver(member="de-eco", manifest=None, limits=Limits())`` → its Receiver."""

    def build(
        member: str = "de-eco", manifest_: Manifest | None = None, limits: Limits | None = None
    ) -> Receiver:
        current = manifest_ or manifest
        return Receiver(
            self_member=member,
            key=signing_key(member),
            manifest=lambda: current,
            writer=writer,
            clock=clock,
            limits=limits or Limits(),
        )

    return build


@pytest.fixture
def receiver(make_receiver: Callable[..., Receiver]) -> Receiver:
    """The receiver of de-eco."""
    return make_receiver("de-eco")
