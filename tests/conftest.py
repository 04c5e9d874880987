"""Shared test fixtures: small GeoIP databases whose every answer the tests know.

The suite never depends on real GeoIP files (a fresh checkout has none), so the country and
ASN databases are built once per session from ``GEO_TABLE`` with :mod:`routing.geoip_build`,
in both country layouts. Tests refer to the table through the ``geo_table`` fixture rather than
repeating addresses and countries.

``databases`` hands a test its node databases: SQLite files in ``tmp_path``, or fresh PostgreSQL
databases when ``IHX_TEST_DATABASE_URL`` is set (``tests/dbs.py``); dropped at teardown.

``web_server`` is a real HTTP server on loopback whose paths behave as hosted content does
(present, removed, redirecting, slow, endless …): ``tests/exchange/takedown/servers.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest

from routing.geoip_build import build_asn_db, build_country_db
from tests.dbs import Databases, configured_url
from tests.exchange.takedown.servers import web_server  # noqa: F401  (a fixture, shared)


@dataclass(frozen=True, slots=True)
class GeoRow:
    """One network of the test databases; ``sample`` is an address inside it."""

    network: str
    sample: str
    country: str
    asn: int | None = None
    organization: str | None = None


_ROWS = (
    GeoRow("185.107.56.0/22", "185.107.56.1", "NL", 43350, "NForce Entertainment B.V."),
    GeoRow("2a01:4f8::/32", "2a01:4f8::1", "DE", 24940, "Hetzner Online GmbH"),
    GeoRow("8.8.8.0/24", "8.8.8.8", "US", 15169, "Google LLC"),
    GeoRow("81.2.69.0/24", "81.2.69.142", "GB"),
    GeoRow("5.2.0.0/16", "5.2.64.1", "RO", 8708, "RCS & RDS"),
    GeoRow("198.41.0.0/24", "198.41.0.4", "US"),
    GeoRow("91.198.174.0/24", "91.198.174.192", "NL"),
    # A country no test member serves: the orphan case.
    GeoRow("203.119.0.0/16", "203.119.1.1", "JP"),
    GeoRow("2606:4700::/32", "2606:4700::1111", "US", 13335, "Cloudflare, Inc."),
    # A second NL hoster: content moving between hosters in one country (takedown).
    GeoRow("37.48.64.0/18", "37.48.64.1", "NL", 60781, "LeaseWeb Netherlands B.V."),
)

GEO_TABLE: Mapping[str, GeoRow] = MappingProxyType({row.network: row for row in _ROWS})
"""Network (CIDR) → row, the content of the ``country_db*`` and ``asn_db`` fixtures."""

GEO_BUILD_TIME = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
"""Build time written into the test databases' metadata."""


@pytest.fixture(scope="session")
def geo_table() -> Mapping[str, GeoRow]:
    return GEO_TABLE


@pytest.fixture(scope="session")
def geo_build_time() -> datetime:
    return GEO_BUILD_TIME


@pytest.fixture(scope="session")
def country_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MaxMind layout (``country.iso_code``), database type ``GeoLite2-Country``."""
    return build_country_db(
        tmp_path_factory.mktemp("geoip") / "country-maxmind.mmdb",
        {row.network: row.country for row in _ROWS},
        build_time=GEO_BUILD_TIME,
    )


@pytest.fixture(scope="session")
def country_db_iplocation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ip-location-db layout (``country_code``), database type ``country ipvAll``."""
    return build_country_db(
        tmp_path_factory.mktemp("geoip") / "country-ip-location-db.mmdb",
        {row.network: row.country for row in _ROWS},
        layout="ip-location-db",
        build_time=GEO_BUILD_TIME,
    )


@pytest.fixture(scope="session")
def asn_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GeoLite2-ASN layout; only the rows with an AS number."""
    return build_asn_db(
        tmp_path_factory.mktemp("geoip") / "asn.mmdb",
        {row.network: (row.asn, row.organization or "") for row in _ROWS if row.asn is not None},
        build_time=GEO_BUILD_TIME,
    )


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[Databases]:
    """This test's database factory (SQLite files, or PostgreSQL databases on request)."""
    dbs = Databases(tmp_path, configured_url())
    yield dbs
    dbs.close()
