"""Host names to IP addresses, behind one small interface the trace depends on.

The trace needs a host's A and AAAA addresses and, when there are none, a short reason it can
record. Tests and the demo need fixed answers; a node needs real DNS that is bounded in time,
memory and answer size, because reports arrive in bursts of tens of thousands of URLs, many on
the same few hosts. The resolver only looks names up: it never connects to an address.

Design:
- :class:`Resolver` is a Protocol with one method; :class:`StaticResolver` (a table) and
  :class:`DnsResolver` (dnspython) implement it, and tests inject whichever they need.
- Failures are data (``Resolution.error``), not exceptions: an unresolvable host is a normal
  outcome of a trace. Only bad configuration raises (:class:`ResolverConfigError`).
- :class:`DnsResolver` keeps its own LRU cache keyed by host, expiring on the injected clock
  after the answer's TTL (capped); negative answers are cached for ``negative_ttl`` and
  transient failures (timeout, SERVFAIL) for ``failure_ttl``, so a burst on a host whose DNS is
  down costs one timeout, not one per URL.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from routing.addresses import parse_ip, view
from routing.errors import ResolverConfigError, RoutingError

__all__ = ["DnsResolver", "Resolution", "Resolver", "StaticResolver"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """The addresses of one host, or why there are none.

    ``addresses``: A then AAAA, canonical text, de-duplicated, at most the resolver's bound
    (:class:`DnsResolver` sorts each family numerically; :class:`StaticResolver` keeps the
    table's order within each family).
    ``error``: set only when there are no addresses — ``"nxdomain"``, ``"no-answer"``,
    ``"timeout"``, ``"servfail"``, ``"bad-name"``, ``"dns-error"``. ``truncated``: more
    addresses existed than the bound. ``notes``: failures that did not prevent an answer, for
    the record (e.g. ``"AAAA: timeout"`` when the A query answered).
    """

    addresses: tuple[str, ...]
    error: str | None
    truncated: bool = False
    notes: tuple[str, ...] = ()


class Resolver(Protocol):
    def resolve(self, host: str) -> Resolution: ...


_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOST_NAME: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_MAX_NAME_LENGTH: Final = 253


def _host_key(host: str) -> str:
    """DNS names are case-insensitive and ``example.com.`` is ``example.com``."""
    key = host.lower()
    return key[:-1] if key.endswith(".") else key


def _literal(host: str) -> str | None:
    """Canonical text of ``host`` if it is an IP address (used as is, never looked up)."""
    try:
        return view(host).address
    except RoutingError:
        return None


def _check_host(host: str) -> str:
    key = _host_key(host)
    if _literal(key) is not None:
        raise ResolverConfigError(f"host {host!r} is an IP address; IP hosts are never resolved")
    if not key.isascii():
        raise ResolverConfigError(f"host {host!r} is not ASCII: give its punycode (xn--) form")
    if len(key) > _MAX_NAME_LENGTH or not _HOST_NAME.fullmatch(key):
        raise ResolverConfigError(f"host {host!r} is not a valid DNS name")
    return key


def _numeric(address: str) -> int:
    return int(parse_ip(address))


def _bounded(addresses: Sequence[str], limit: int) -> tuple[tuple[str, ...], bool]:
    unique = tuple(dict.fromkeys(addresses))
    return unique[:limit], len(unique) > limit


def _int_at_least(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ResolverConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _non_negative(name: str, value: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ResolverConfigError(f"{name} must be a number >= 0, got {value!r}")
    if positive and value == 0:
        raise ResolverConfigError(f"{name} must be > 0")
    return float(value)


class StaticResolver:
    """Fixed answers from a table, for tests, the demo and ``--resolve host=ip`` overrides.

    An unknown host gives ``nxdomain``, a host mapped to no address ``no-answer``.
    """

    def __init__(self, table: Mapping[str, Sequence[str]], *, max_addresses: int = 16) -> None:
        self._max_addresses = _int_at_least("max_addresses", max_addresses)
        self._table: dict[str, Resolution] = {}
        merged: dict[str, list[str]] = {}
        for host, addresses in table.items():
            key = _check_host(host)
            if isinstance(addresses, str):
                # A lone string is a Sequence[str] of characters; almost surely a mistake.
                raise ResolverConfigError(
                    f"addresses of host {host!r} must be a list of addresses, not one string"
                )
            canonical = merged.setdefault(key, [])
            for address in addresses:
                try:
                    canonical.append(view(address).address)
                except RoutingError:
                    raise ResolverConfigError(
                        f"host {host!r}: {address!r} is not an IP address"
                    ) from None
        for key, canonical in merged.items():
            # Same order as DNS answers: A records, then AAAA.
            ordered = [a for a in canonical if ":" not in a] + [a for a in canonical if ":" in a]
            kept, truncated = _bounded(ordered, self._max_addresses)
            self._table[key] = Resolution(kept, None if kept else "no-answer", truncated)

    @classmethod
    def from_specs(cls, specs: Sequence[str], *, max_addresses: int = 16) -> StaticResolver:
        """Build from command-line specs ``host=ip[,ip...]``; repeated hosts are merged."""
        table: dict[str, list[str]] = {}
        for spec in specs:
            host, sep, rest = spec.partition("=")
            host = host.strip()
            if not sep:
                raise ResolverConfigError(f"bad resolve spec {spec!r}: expected host=ip[,ip...]")
            if not host:
                raise ResolverConfigError(f"bad resolve spec {spec!r}: no host before '='")
            items = [item.strip() for item in rest.split(",")]
            if not rest.strip():
                raise ResolverConfigError(f"bad resolve spec {spec!r}: no address after '='")
            if "" in items:
                raise ResolverConfigError(f"bad resolve spec {spec!r}: empty address in the list")
            for item in items:
                try:
                    parse_ip(item)
                except RoutingError:
                    raise ResolverConfigError(
                        f"bad resolve spec {spec!r}: {item!r} is not an IP address"
                    ) from None
            table.setdefault(host, []).extend(items)
        return cls(table, max_addresses=max_addresses)

    def resolve(self, host: str) -> Resolution:
        found = self._table.get(_host_key(host))
        if found is not None:
            return found
        literal = _literal(host)  # never a table key, so only checked on a miss
        if literal is not None:
            return Resolution((literal,), None)
        return Resolution((), "nxdomain")


# Which error to report when neither query gave an address: the most informative one.
_ERROR_RANK: Final = {"nxdomain": 0, "timeout": 1, "servfail": 2, "dns-error": 3, "no-answer": 4}
# Errors worth retrying soon rather than trusting for negative_ttl.
_TRANSIENT: Final = frozenset({"timeout", "servfail", "dns-error"})


@dataclass(frozen=True, slots=True)
class _Query:
    addresses: tuple[str, ...]
    ttl: float
    error: str | None


class DnsResolver:
    """Real DNS through dnspython: A then AAAA, time-bounded, cached, size-bounded.

    ``timeout`` bounds one whole ``resolve()`` (both queries, every retry); measured on real
    time since it bounds real waiting. The cache expires on ``clock`` (injectable for tests)
    after ``min(ttl, max_cache_ttl)``. With ``resolver`` given, its nameservers, port and
    per-attempt timeout are used as configured (``nameservers`` still replaces its list);
    otherwise one is built from ``nameservers`` or the system configuration, with a
    per-attempt timeout of half the budget so one lost UDP packet is retried.
    """

    def __init__(
        self,
        *,
        nameservers: Sequence[str] | None = None,
        timeout: float = 2.0,
        max_addresses: int = 16,
        max_cache_entries: int = 100_000,
        max_cache_ttl: float = 3600.0,
        negative_ttl: float = 60.0,
        failure_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        resolver: dns.resolver.Resolver | None = None,
    ) -> None:
        self._timeout = _non_negative("timeout", timeout, positive=True)
        self._max_addresses = _int_at_least("max_addresses", max_addresses)
        self._max_cache_entries = _int_at_least("max_cache_entries", max_cache_entries, 0)
        self._max_cache_ttl = _non_negative("max_cache_ttl", max_cache_ttl)
        self._negative_ttl = min(_non_negative("negative_ttl", negative_ttl), self._max_cache_ttl)
        self._failure_ttl = min(_non_negative("failure_ttl", failure_ttl), self._max_cache_ttl)
        self._clock = clock
        if nameservers is not None:
            if isinstance(nameservers, str) or not nameservers:
                raise ResolverConfigError("nameservers must be a non-empty list of IP addresses")
            for server in nameservers:
                try:
                    parse_ip(server)
                except RoutingError:
                    raise ResolverConfigError(
                        f"nameserver {server!r} is not an IP address"
                    ) from None
        if resolver is None:
            try:
                resolver = dns.resolver.Resolver(configure=nameservers is None)
            except dns.exception.DNSException as exc:
                raise ResolverConfigError(f"no usable system DNS configuration: {exc}") from None
            resolver.timeout = self._timeout / 2
        if nameservers is not None:
            resolver.nameservers = list(nameservers)
        self._resolver = resolver
        self._cache: OrderedDict[str, tuple[float, Resolution]] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, host: str) -> Resolution:
        key = _host_key(host)
        cached = self._cached(key)
        if cached is not None:
            return cached
        literal = _literal(host)
        if literal is not None:
            return Resolution((literal,), None)
        if not key.isascii():
            # dnspython would encode it with IDNA 2003 (faß → fass), not UTS 46 as URLs are.
            return Resolution((), "bad-name")
        try:
            qname = dns.name.from_text(key)
        except dns.exception.DNSException:
            return Resolution((), "bad-name")
        resolution, ttl = self._lookup(qname)
        self._store(key, resolution, ttl)
        return resolution

    def _lookup(self, qname: dns.name.Name) -> tuple[Resolution, float]:
        deadline = time.monotonic() + self._timeout
        a = self._query(qname, dns.rdatatype.A, deadline)
        if a.error == "nxdomain":
            # The name does not exist: asking for AAAA would only spend the budget again.
            return Resolution((), "nxdomain"), self._negative_ttl
        aaaa = self._query(qname, dns.rdatatype.AAAA, deadline)
        addresses, truncated = _bounded(a.addresses + aaaa.addresses, self._max_addresses)
        if not addresses:
            errors = [q.error or "no-answer" for q in (a, aaaa)]
            error = min(errors, key=_ERROR_RANK.__getitem__)
            ttl = self._failure_ttl if error in _TRANSIENT else self._negative_ttl
            return Resolution((), error), ttl
        answered = [q.ttl for q in (a, aaaa) if q.addresses]
        ttl = min(*answered, self._max_cache_ttl)
        notes = []
        for name, q in (("A", a), ("AAAA", aaaa)):
            if q.error in _TRANSIENT:
                notes.append(f"{name}: {q.error}")
                # Retry the failed family soon rather than keep a half answer for the full TTL.
                ttl = min(ttl, self._failure_ttl)
        return Resolution(addresses, None, truncated, tuple(notes)), ttl

    def _query(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, deadline: float
    ) -> _Query:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _Query((), 0.0, "timeout")
        try:
            answer = self._resolver.resolve(qname, rdtype, lifetime=remaining, search=False)
        except dns.resolver.NXDOMAIN:
            return _Query((), 0.0, "nxdomain")
        except dns.resolver.NoAnswer:
            return _Query((), 0.0, "no-answer")
        except dns.exception.Timeout:
            return _Query((), 0.0, "timeout")
        except dns.resolver.NoNameservers:
            # Every server failed: SERVFAIL, REFUSED or unreachable.
            return _Query((), 0.0, "servfail")
        except (dns.exception.DNSException, OSError):
            return _Query((), 0.0, "dns-error")
        # Servers rotate the order of a record set; sorting makes the answer, and which
        # addresses a truncation keeps, the same on every run.
        found = sorted({view(rdata.address).address for rdata in answer}, key=_numeric)
        return _Query(tuple(found), float(answer.chaining_result.minimum_ttl), None)

    def _cached(self, key: str) -> Resolution | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            expires, resolution = entry
            if self._clock() >= expires:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return resolution

    def _store(self, key: str, resolution: Resolution, ttl: float) -> None:
        if ttl <= 0 or self._max_cache_entries == 0:
            return
        with self._lock:
            self._cache[key] = (self._clock() + ttl, resolution)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max_cache_entries:
                self._cache.popitem(last=False)

    def cache_size(self) -> int:
        """Entries held, expired ones included until they are next asked for or evicted."""
        with self._lock:
            return len(self._cache)
