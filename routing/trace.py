"""The trace: from a canonical URL to the addresses behind it and their countries and ASNs.

A trace is the evidence behind every routing decision, so it records everything needed to explain
and reproduce it: each address with its country, ASN and special-purpose reason, the GeoIP
database builds, the resolver's error, and when it ran. IP-literal hosts are used as given;
special-purpose addresses are kept with their reason but never count as a hosting location.

The hosting country is the country of most addresses; a tie is broken alphabetically (stable
across runs and nodes) and the tied countries are recorded. Per-address results are cached in a
bounded table because the databases are immutable for the tracer's lifetime and hosting is
concentrated: most traces hit addresses seen before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from common.clock import Clock
from routing.addresses import view
from routing.canonical import CanonicalUrl, HostType
from routing.errors import RoutingError
from routing.geoip import GeoDatabaseInfo, GeoIp
from routing.resolver import Resolver


@dataclass(frozen=True, slots=True)
class TracedAddress:
    """One address behind the host, and what the databases say about it."""

    address: str
    effective: str
    note: str | None
    special: str | None
    country: str | None
    asn: int | None
    as_organization: str | None

    @property
    def hosting_candidate(self) -> bool:
        return self.special is None and self.country is not None


@dataclass(frozen=True, slots=True)
class Trace:
    """Where a URL is hosted, with the evidence."""

    canonical: CanonicalUrl
    addresses: tuple[TracedAddress, ...]
    country: str | None
    tied_countries: tuple[str, ...]
    country_database: GeoDatabaseInfo
    asn_database: GeoDatabaseInfo | None
    traced_at: datetime
    resolver_error: str | None
    truncated: bool

    @property
    def untraceable_reason(self) -> str | None:
        """Why no hosting country was found, or None when one was."""
        if self.country is not None:
            return None
        if self.resolver_error is not None:
            return f"resolver: {self.resolver_error}"
        if not self.addresses:
            return "no addresses"
        if all(a.special is not None for a in self.addresses):
            return "only special-purpose addresses"
        return "no country for any address"


_CACHE_LIMIT = 65_536


class Tracer:
    """Traces canonical URLs with an injected resolver, GeoIP reader and clock."""

    def __init__(
        self,
        resolver: Resolver,
        geoip: GeoIp,
        clock: Clock,
        *,
        cache_limit: int = _CACHE_LIMIT,
    ) -> None:
        self._resolver = resolver
        self._geoip = geoip
        self._clock = clock
        self._cache: dict[str, TracedAddress] = {}
        self._cache_limit = cache_limit

    def trace(self, canonical: CanonicalUrl) -> Trace:
        resolver_error: str | None = None
        truncated = False
        if canonical.host_type is HostType.DOMAIN:
            resolution = self._resolver.resolve(canonical.host)
            raw_addresses = resolution.addresses
            resolver_error = resolution.error
            truncated = resolution.truncated
        else:
            raw_addresses = (canonical.host,)
        addresses = tuple(self._locate(a) for a in raw_addresses)
        country, tied = _hosting_country(addresses)
        return Trace(
            canonical=canonical,
            addresses=addresses,
            country=country,
            tied_countries=tied,
            country_database=self._geoip.country_info,
            asn_database=self._geoip.asn_info,
            traced_at=self._clock(),
            resolver_error=resolver_error,
            truncated=truncated,
        )

    def place(self, addresses: Sequence[str]) -> str | None:
        """The hosting country of addresses someone else resolved (a peer's trace), by this
        tracer's own databases and the same majority rule."""
        return _hosting_country(tuple(self._locate(a) for a in addresses))[0]

    def _locate(self, address: str) -> TracedAddress:
        found = self._cache.get(address)
        if found is not None:
            return found
        try:
            v = view(address)
        except RoutingError:
            # A resolver never returns text that is not an address; a static table could.
            found = TracedAddress(address, address, None, "not-an-address", None, None, None)
        else:
            if v.special is not None:
                # Never a hosting location, so not looked up: the trace says why.
                found = TracedAddress(v.address, v.effective, v.note, v.special, None, None, None)
            else:
                asn = self._geoip.asn(v.effective) if self._geoip.asn_info is not None else None
                found = TracedAddress(
                    v.address,
                    v.effective,
                    v.note,
                    None,
                    self._geoip.country(v.effective),
                    asn.number if asn is not None else None,
                    asn.organization if asn is not None else None,
                )
        if len(self._cache) >= self._cache_limit:
            self._cache.clear()
        self._cache[address] = found
        return found


def _hosting_country(addresses: tuple[TracedAddress, ...]) -> tuple[str | None, tuple[str, ...]]:
    if len(addresses) == 1:  # the common case, kept off the general path
        only = addresses[0]
        return (only.country if only.special is None else None), ()
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for a in addresses:
        # An A record and the AAAA that embeds the same IPv4 (NAT64, mapped) are one host.
        if a.special is None and a.country is not None and a.effective not in seen:
            seen.add(a.effective)
            counts[a.country] = counts.get(a.country, 0) + 1
    if not counts:
        return None, ()
    if len(counts) == 1:
        return next(iter(counts)), ()
    best = max(counts.values())
    tied = tuple(sorted(c for c, n in counts.items() if n == best))
    return tied[0], (tied if len(tied) > 1 else ())
