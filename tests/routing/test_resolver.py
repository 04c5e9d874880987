"""Resolvers: the static table, and DnsResolver against a real UDP DNS server on loopback.

No test touches the internet: ``FakeDns`` is a tiny authoritative server on 127.0.0.1 built
with dnspython, whose records, TTLs and failure modes each test sets, and which records every
query it receives so cache behaviour is observed from the server's side.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

from routing.errors import ResolverConfigError
from routing.resolver import DnsResolver, Resolution, Resolver, StaticResolver

# --- StaticResolver -----------------------------------------------------------------------


def test_static_answers_a_then_aaaa_canonical_and_deduplicated() -> None:
    resolver: Resolver = StaticResolver(
        {"Example.COM": ["2A01:4F8::1", "185.107.56.1", "2a01:4f8:0::1", "8.8.8.8"]}
    )
    expected = Resolution(("185.107.56.1", "8.8.8.8", "2a01:4f8::1"), None)
    assert resolver.resolve("example.com") == expected
    assert resolver.resolve("EXAMPLE.com.") == expected


def test_static_unknown_host_is_nxdomain_and_empty_host_no_answer() -> None:
    resolver = StaticResolver({"empty.example": []})
    assert resolver.resolve("other.example") == Resolution((), "nxdomain")
    assert resolver.resolve("empty.example") == Resolution((), "no-answer")


def test_static_ip_literal_is_returned_as_is() -> None:
    resolver = StaticResolver({})
    assert resolver.resolve("8.8.8.8") == Resolution(("8.8.8.8",), None)
    assert resolver.resolve("2A01:4F8::1") == Resolution(("2a01:4f8::1",), None)


def test_static_bound_on_addresses() -> None:
    resolver = StaticResolver(
        {"many.example": [f"192.0.2.{i}" for i in range(1, 11)]}, max_addresses=3
    )
    result = resolver.resolve("many.example")
    assert result == Resolution(("192.0.2.1", "192.0.2.2", "192.0.2.3"), None, truncated=True)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"a.example": ["8.8.8.8", "not-an-ip"]}, "host 'a.example': 'not-an-ip' is not an IP"),
        ({"a.example": ["01.2.3.4"]}, "host 'a.example': '01.2.3.4' is not an IP"),
        ({"a.example": "8.8.8.8"}, "must be a list of addresses, not one string"),
        ({"8.8.4.4": ["8.8.8.8"]}, "host '8.8.4.4' is an IP address"),
        ({"faß.example": ["8.8.8.8"]}, "punycode"),
        ({"bad host": ["8.8.8.8"]}, "host 'bad host' is not a valid DNS name"),
        ({"": ["8.8.8.8"]}, "host '' is not a valid DNS name"),
        ({"-x.example": ["8.8.8.8"]}, "not a valid DNS name"),
        ({"a" * 64 + ".example": ["8.8.8.8"]}, "not a valid DNS name"),
    ],
)
def test_static_rejects_bad_tables(table: dict[str, object], message: str) -> None:
    with pytest.raises(ResolverConfigError) as info:
        StaticResolver(table)  # type: ignore[arg-type]
    assert message in info.value.message
    assert info.value.code == "resolver-config"


def test_from_specs() -> None:
    resolver = StaticResolver.from_specs(
        ["Site.Example=185.107.56.1, 2a01:4f8::1", "other.example=8.8.8.8", "site.example=5.2.64.1"]
    )
    assert resolver.resolve("site.example").addresses == (
        "185.107.56.1",
        "5.2.64.1",
        "2a01:4f8::1",
    )
    assert resolver.resolve("other.example").addresses == ("8.8.8.8",)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("site.example", "bad resolve spec 'site.example': expected host=ip[,ip...]"),
        ("=8.8.8.8", "bad resolve spec '=8.8.8.8': no host before '='"),
        ("site.example=", "bad resolve spec 'site.example=': no address after '='"),
        ("site.example=8.8.8.8,", "bad resolve spec 'site.example=8.8.8.8,': empty address"),
        ("site.example=8.8.8.888", "bad resolve spec 'site.example=8.8.8.888': '8.8.8.888' is not"),
        ("site.example=[::1]", "'[::1]' is not an IP address"),
        ("1.2.3.4=8.8.8.8", "host '1.2.3.4' is an IP address"),
    ],
)
def test_from_specs_errors(spec: str, message: str) -> None:
    with pytest.raises(ResolverConfigError) as info:
        StaticResolver.from_specs([spec])
    assert message in info.value.message


# --- a real DNS server on loopback --------------------------------------------------------


@dataclass
class FakeDns:
    """An authoritative UDP server on 127.0.0.1 answering from ``records``."""

    records: dict[tuple[str, str], tuple[list[str], int]] = field(default_factory=dict)
    cnames: dict[str, tuple[str, int]] = field(default_factory=dict)
    nxdomain: set[str] = field(default_factory=set)
    servfail: set[tuple[str, str]] = field(default_factory=set)
    silent: bool = False
    queries: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def add(self, name: str, rdtype: str, addresses: list[str], ttl: int = 300) -> None:
        self.records[(name, rdtype)] = (addresses, ttl)

    def count(self, name: str) -> int:
        return sum(1 for qname, _ in self.queries if qname == name)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            if self.silent:
                continue
            self.sock.sendto(self._answer(query, name, rdtype).to_wire(), peer)

    def _answer(self, query: dns.message.Message, name: str, rdtype: str) -> dns.message.Message:
        response = dns.message.make_response(query)
        if name in self.nxdomain:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        if (name, rdtype) in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        owner = name
        if name in self.cnames:
            target, ttl = self.cnames[name]
            response.answer.append(
                dns.rrset.from_text_list(f"{name}.", ttl, "IN", "CNAME", [f"{target}."])
            )
            owner = target
        found = self.records.get((owner, rdtype))
        if found:
            addresses, ttl = found
            response.answer.append(
                dns.rrset.from_text_list(f"{owner}.", ttl, "IN", rdtype, addresses)
            )
        return response


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def server() -> Iterator[FakeDns]:
    fake = FakeDns()
    yield fake
    fake.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _dns(server: FakeDns, clock: FakeClock, **kwargs: object) -> DnsResolver:
    inner = dns.resolver.Resolver(configure=False)
    inner.port = server.port
    inner.timeout = 0.5
    return DnsResolver(nameservers=["127.0.0.1"], resolver=inner, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_dns_answers_a_then_aaaa(server: FakeDns, clock: FakeClock) -> None:
    server.add("site.example", "A", ["185.107.56.2", "185.107.56.10", "185.107.56.1"])
    server.add("site.example", "AAAA", ["2a01:4f8:0:0::1"])
    result = _dns(server, clock).resolve("Site.Example.")
    # Each family sorted numerically, whatever order the server sends.
    expected = ("185.107.56.1", "185.107.56.2", "185.107.56.10", "2a01:4f8::1")
    assert result == Resolution(expected, None)
    assert sorted(server.queries) == [("site.example", "A"), ("site.example", "AAAA")]


def test_dns_ipv4_mapped_aaaa_is_written_canonically(server: FakeDns, clock: FakeClock) -> None:
    server.add("mapped.example", "AAAA", ["::ffff:808:808"])
    assert _dns(server, clock).resolve("mapped.example").addresses == ("::ffff:8.8.8.8",)


def test_dns_cache_hit_sends_no_second_query(server: FakeDns, clock: FakeClock) -> None:
    server.add("site.example", "A", ["8.8.8.8"])
    resolver = _dns(server, clock)
    first = resolver.resolve("site.example")
    clock.advance(10)
    assert resolver.resolve("SITE.example") == first
    assert server.count("site.example") == 2  # A and AAAA, once


def test_dns_cache_expires_after_the_smallest_ttl(server: FakeDns, clock: FakeClock) -> None:
    server.add("site.example", "A", ["8.8.8.8"], ttl=30)
    server.add("site.example", "AAAA", ["2a01:4f8::1"], ttl=120)
    resolver = _dns(server, clock)
    resolver.resolve("site.example")
    clock.advance(29.9)
    resolver.resolve("site.example")
    assert server.count("site.example") == 2
    clock.advance(0.1)
    server.add("site.example", "A", ["8.8.4.4"], ttl=30)
    assert resolver.resolve("site.example").addresses == ("8.8.4.4", "2a01:4f8::1")
    assert server.count("site.example") == 4


def test_dns_cache_ttl_is_capped(server: FakeDns, clock: FakeClock) -> None:
    server.add("site.example", "A", ["8.8.8.8"], ttl=86400)
    resolver = _dns(server, clock, max_cache_ttl=100.0)
    resolver.resolve("site.example")
    clock.advance(99)
    resolver.resolve("site.example")
    assert server.count("site.example") == 2
    clock.advance(1)
    resolver.resolve("site.example")
    assert server.count("site.example") == 4


def test_dns_ttl_zero_is_not_cached(server: FakeDns, clock: FakeClock) -> None:
    server.add("site.example", "A", ["8.8.8.8"], ttl=0)
    resolver = _dns(server, clock)
    resolver.resolve("site.example")
    resolver.resolve("site.example")
    assert server.count("site.example") == 4


def test_dns_cname_chain_uses_its_smallest_ttl(server: FakeDns, clock: FakeClock) -> None:
    server.cnames["www.site.example"] = ("site.example", 20)
    server.add("site.example", "A", ["8.8.8.8"], ttl=300)
    resolver = _dns(server, clock)
    assert resolver.resolve("www.site.example").addresses == ("8.8.8.8",)
    clock.advance(19)
    resolver.resolve("www.site.example")
    assert server.count("www.site.example") == 2
    clock.advance(1)
    resolver.resolve("www.site.example")
    assert server.count("www.site.example") == 4


def test_dns_nxdomain_is_cached_briefly(server: FakeDns, clock: FakeClock) -> None:
    server.nxdomain.add("gone.example")
    resolver = _dns(server, clock, negative_ttl=60.0)
    assert resolver.resolve("gone.example") == Resolution((), "nxdomain")
    # The name does not exist, so AAAA is not asked.
    assert server.queries == [("gone.example", "A")]
    clock.advance(59)
    assert resolver.resolve("gone.example") == Resolution((), "nxdomain")
    assert server.count("gone.example") == 1
    clock.advance(1)
    resolver.resolve("gone.example")
    assert server.count("gone.example") == 2


def test_dns_no_records_is_no_answer(server: FakeDns, clock: FakeClock) -> None:
    assert _dns(server, clock).resolve("empty.example") == Resolution((), "no-answer")


def test_dns_servfail(server: FakeDns, clock: FakeClock) -> None:
    server.servfail |= {("broken.example", "A"), ("broken.example", "AAAA")}
    resolver = _dns(server, clock, failure_ttl=5.0)
    assert resolver.resolve("broken.example") == Resolution((), "servfail")
    asked = server.count("broken.example")
    clock.advance(4.9)
    resolver.resolve("broken.example")
    assert server.count("broken.example") == asked
    clock.advance(0.1)
    resolver.resolve("broken.example")
    assert server.count("broken.example") > asked


def test_dns_half_answer_keeps_addresses_and_notes_the_failure(
    server: FakeDns, clock: FakeClock
) -> None:
    server.add("half.example", "A", ["8.8.8.8"], ttl=3600)
    server.servfail.add(("half.example", "AAAA"))
    resolver = _dns(server, clock, failure_ttl=5.0)
    result = resolver.resolve("half.example")
    assert result == Resolution(("8.8.8.8",), None, notes=("AAAA: servfail",))
    asked = server.count("half.example")
    clock.advance(5)  # the failed family is retried after failure_ttl, not the A TTL
    resolver.resolve("half.example")
    assert server.count("half.example") > asked


def test_dns_timeout_within_budget() -> None:
    silent = FakeDns(silent=True)
    try:
        inner = dns.resolver.Resolver(configure=False)
        inner.nameservers = ["127.0.0.1"]
        inner.port = silent.port
        inner.timeout = 0.2
        clock = FakeClock()
        resolver = DnsResolver(timeout=0.6, resolver=inner, clock=clock, failure_ttl=5.0)
        started = time.monotonic()
        result = resolver.resolve("slow.example")
        elapsed = time.monotonic() - started
        assert result == Resolution((), "timeout")
        assert 0.5 <= elapsed < 1.2
        assert silent.count("slow.example") >= 2  # the lost query was retried in the budget
        # A second burst of the same host does not wait again.
        started = time.monotonic()
        assert resolver.resolve("slow.example") == Resolution((), "timeout")
        assert time.monotonic() - started < 0.1
    finally:
        silent.stop()


def test_dns_bound_on_addresses(server: FakeDns, clock: FakeClock) -> None:
    server.add("many.example", "A", [f"192.0.2.{i}" for i in range(1, 21)])
    server.add("many.example", "AAAA", ["2a01:4f8::1"])
    result = _dns(server, clock, max_addresses=5).resolve("many.example")
    assert result == Resolution(tuple(f"192.0.2.{i}" for i in range(1, 6)), None, truncated=True)


def test_dns_lru_evicts_the_least_recently_used(server: FakeDns, clock: FakeClock) -> None:
    for host in ("a.example", "b.example", "c.example"):
        server.add(host, "A", ["8.8.8.8"])
    resolver = _dns(server, clock, max_cache_entries=2)
    resolver.resolve("a.example")
    resolver.resolve("b.example")
    resolver.resolve("a.example")  # a is now the most recently used
    resolver.resolve("c.example")  # evicts b
    assert resolver.cache_size() == 2
    resolver.resolve("a.example")
    assert server.count("a.example") == 2
    resolver.resolve("b.example")
    assert server.count("b.example") == 4


def test_dns_ip_literal_and_bad_names_send_no_query(server: FakeDns, clock: FakeClock) -> None:
    resolver = _dns(server, clock)
    assert resolver.resolve("185.107.56.1") == Resolution(("185.107.56.1",), None)
    assert resolver.resolve("faß.example") == Resolution((), "bad-name")
    assert resolver.resolve("a" * 64 + ".example") == Resolution((), "bad-name")
    assert resolver.resolve("a..example") == Resolution((), "bad-name")
    assert server.queries == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nameservers": ["dns.example"]}, "nameserver 'dns.example' is not an IP address"),
        ({"nameservers": []}, "nameservers must be a non-empty list"),
        ({"nameservers": "127.0.0.1"}, "nameservers must be a non-empty list"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"timeout": float("nan")}, "timeout must be a number"),
        ({"max_addresses": 0}, "max_addresses must be an integer >= 1"),
        ({"max_cache_entries": -1}, "max_cache_entries must be an integer >= 0"),
        ({"negative_ttl": -1}, "negative_ttl must be a number >= 0"),
    ],
)
def test_dns_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ResolverConfigError) as info:
        DnsResolver(**kwargs)  # type: ignore[arg-type]
    assert message in info.value.message


def test_dns_builds_its_own_resolver_from_nameservers() -> None:
    resolver = DnsResolver(nameservers=["127.0.0.1", "::1"], timeout=3.0)
    inner = resolver._resolver
    assert inner.nameservers == ["127.0.0.1", "::1"]
    assert inner.timeout == 1.5
