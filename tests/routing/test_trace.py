"""The trace: addresses, countries, ASNs, special-purpose addresses, ties, evidence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from routing.canonical import canonicalize
from routing.geoip import GeoIp
from routing.resolver import Resolution, StaticResolver
from routing.trace import Tracer

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class CountingResolver:
    """A static resolver that counts queries (the trace must not resolve IP literals)."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self._inner = StaticResolver(table)
        self.queries: list[str] = []

    def resolve(self, host: str) -> Resolution:
        self.queries.append(host)
        return self._inner.resolve(host)


@pytest.fixture
def geoip(country_db: Path, asn_db: Path) -> GeoIp:
    with GeoIp(country_db, asn_db) as g:
        yield g


def tracer(geoip: GeoIp, table: Mapping[str, Sequence[str]]) -> Tracer:
    return Tracer(StaticResolver(table), geoip, lambda: NOW)


def test_trace_records_every_address_with_country_and_asn(geoip: GeoIp) -> None:
    t = tracer(geoip, {"example.nl": ["185.107.56.1", "2a01:4f8::1", "91.198.174.192"]})
    trace = t.trace(canonicalize("https://Example.NL/a"))
    # A records first, then AAAA, as the resolver gives them.
    assert [(a.address, a.country, a.asn) for a in trace.addresses] == [
        ("185.107.56.1", "NL", 43350),
        ("91.198.174.192", "NL", None),
        ("2a01:4f8::1", "DE", 24940),
    ]
    assert trace.addresses[0].as_organization == "NForce Entertainment B.V."
    assert trace.country == "NL"
    assert trace.tied_countries == ()
    assert trace.traced_at == NOW
    assert trace.country_database.database_type == "GeoLite2-Country"
    assert trace.asn_database is not None
    assert trace.untraceable_reason is None


def test_tie_is_broken_alphabetically_and_recorded(geoip: GeoIp) -> None:
    t = tracer(geoip, {"tie.example": ["8.8.8.8", "185.107.56.1"]})
    trace = t.trace(canonicalize("http://tie.example/"))
    assert trace.country == "NL"
    assert trace.tied_countries == ("NL", "US")


def test_special_purpose_addresses_are_kept_but_never_a_hosting_location(geoip: GeoIp) -> None:
    t = tracer(geoip, {"mixed.example": ["10.0.0.1", "127.0.0.1", "100.64.0.1", "8.8.8.8"]})
    trace = t.trace(canonicalize("http://mixed.example/"))
    specials = {a.address: a.special for a in trace.addresses}
    assert specials["10.0.0.1"] == "private"
    assert specials["127.0.0.1"] == "loopback"
    assert specials["100.64.0.1"] == "cgnat"
    assert specials["8.8.8.8"] is None
    assert all(a.country is None for a in trace.addresses if a.special)
    assert trace.country == "US"


def test_only_special_addresses_is_untraceable_with_reason(geoip: GeoIp) -> None:
    t = tracer(geoip, {"intranet.example": ["192.168.1.1"]})
    trace = t.trace(canonicalize("http://intranet.example/"))
    assert trace.country is None
    assert trace.untraceable_reason == "only special-purpose addresses"


def test_resolver_failure_is_untraceable_with_reason(geoip: GeoIp) -> None:
    trace = tracer(geoip, {}).trace(canonicalize("http://nowhere.example/"))
    assert trace.country is None
    assert trace.resolver_error == "nxdomain"
    assert trace.untraceable_reason == "resolver: nxdomain"


def test_ip_literal_is_used_as_is_without_resolving(geoip: GeoIp) -> None:
    resolver = CountingResolver({})
    t = Tracer(resolver, geoip, lambda: NOW)
    trace = t.trace(canonicalize("http://0xB96B3801/x"))  # 185.107.56.1 in hex
    assert resolver.queries == []
    assert [a.address for a in trace.addresses] == ["185.107.56.1"]
    assert trace.country == "NL"


def test_ipv4_mapped_literal_is_located_by_its_embedded_address(geoip: GeoIp) -> None:
    trace = tracer(geoip, {}).trace(canonicalize("http://[::ffff:185.107.56.1]/"))
    (address,) = trace.addresses
    assert address.effective == "185.107.56.1"
    assert address.note == "ipv4-mapped"
    assert trace.country == "NL"


def test_nat64_twin_of_an_a_record_counts_once(geoip: GeoIp) -> None:
    # 64:ff9b::b96b:3801 embeds 185.107.56.1: with 8.8.8.8 that is one NL and one US host.
    t = tracer(geoip, {"twin.example": ["185.107.56.1", "64:ff9b::b96b:3801", "8.8.8.8"]})
    trace = t.trace(canonicalize("http://twin.example/"))
    assert trace.tied_countries == ("NL", "US")


def test_unknown_country_for_public_address(geoip: GeoIp) -> None:
    trace = tracer(geoip, {"dark.example": ["9.9.9.9"]}).trace(canonicalize("http://dark.example/"))
    assert trace.addresses[0].country is None
    assert trace.untraceable_reason == "no country for any address"
