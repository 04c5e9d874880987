"""Special-purpose addresses: the table's content, the fast lookup, embedded IPv4 addresses."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from routing.addresses import (
    SPECIAL_BLOCKS_V4,
    SPECIAL_BLOCKS_V6,
    AddressView,
    BadAddressError,
    SpecialBlock,
    parse_ip,
    special_reason,
    view,
)
from routing.errors import RoutingError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _oracle(ip: IPAddress) -> SpecialBlock | None:
    """The most specific table row containing ``ip``, by a plain scan: the lookup's reference."""
    blocks = SPECIAL_BLOCKS_V4 if ip.version == 4 else SPECIAL_BLOCKS_V6
    best: tuple[int, SpecialBlock] | None = None
    for block in blocks:
        net = ipaddress.ip_network(block.network)
        if ip in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, block)
    return best[1] if best else None


def _oracle_reason(ip: IPAddress) -> str | None:
    block = _oracle(ip)
    return block.reason if block else None


# --- the table as data --------------------------------------------------------------------


@pytest.mark.parametrize("block", SPECIAL_BLOCKS_V4 + SPECIAL_BLOCKS_V6, ids=lambda b: b.network)
def test_every_row_is_a_strict_network_with_an_rfc(block: SpecialBlock) -> None:
    net = ipaddress.ip_network(block.network)  # strict: no host bits set
    assert str(net) == block.network
    assert block.rfc.startswith("RFC ")
    assert block.reason is not None or block.embeds is not None or block.network == "2000::/3"


def test_no_network_is_listed_twice() -> None:
    networks = [b.network for b in SPECIAL_BLOCKS_V4 + SPECIAL_BLOCKS_V6]
    assert len(networks) == len(set(networks))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "this-network"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("100.64.0.0", "cgnat"),
        ("100.127.255.255", "cgnat"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("169.254.169.254", "link-local"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.0.0.1", "ietf-protocol"),
        ("192.0.0.9", "pcp-anycast"),
        ("192.0.0.10", "turn-anycast"),
        ("192.0.0.170", "ietf-protocol"),
        ("192.0.2.1", "documentation"),
        ("192.31.196.1", "as112"),
        ("192.52.193.1", "amt"),
        ("192.88.99.1", "6to4-relay-anycast"),
        ("192.168.1.1", "private"),
        ("192.175.48.6", "as112"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.255", "benchmarking"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("224.0.0.251", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.254", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::8.8.8.8", "ipv4-compatible"),
        ("64:ff9b:1::808:808", "nat64-local"),
        ("100::1", "discard-only"),
        ("100:0:0:1::1", "reserved"),
        ("2001:2::1", "benchmarking"),
        ("2001:1::1", "pcp-anycast"),
        ("2001:1::2", "turn-anycast"),
        ("2001:1::3", "dns-sd-srp-anycast"),
        ("2001:1::4", "ietf-protocol"),
        ("2001:3::1", "amt"),
        ("2001:4:112::1", "as112"),
        ("2001:10::1", "orchid-deprecated"),
        ("2001:20::1", "orchid"),
        ("2001:30::1", "drone-remote-id"),
        ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "ietf-protocol"),
        ("2001:db8::1", "documentation"),
        ("2001:db8:ffff::1", "documentation"),
        ("2620:4f:8000::1", "as112"),
        ("3fff::1", "documentation"),
        ("3fff:fff:ffff::1", "documentation"),
        ("5f00::1", "srv6-sid"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("febf:ffff::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("4000::1", "reserved"),
        ("1000::1", "reserved"),
        ("fe00::1", "reserved"),
    ],
)
def test_special_purpose_addresses(address: str, reason: str) -> None:
    result = view(address)
    assert result.special == reason
    assert result.effective == result.address or result.note is not None


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "185.107.56.1",
        "100.63.255.255",  # just below 100.64.0.0/10
        "100.128.0.0",  # just above it
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.255",
        "192.0.3.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",  # last unicast address before multicast
        "2a01:4f8::1",
        "2606:4700::1111",
        "2001:200::1",  # just outside 2001::/23
        "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",  # just below 2001:db8::/32
        "2001:db9::1",  # just above it
        "2620:4f:7fff::1",
        "2620:4f:8001::1",
        "3fff:1000::1",  # just after 3fff::/20
        "2000::1",
        "3ffe:ffff::1",
    ],
)
def test_globally_routable_addresses(address: str) -> None:
    result = view(address)
    assert result == AddressView(address, address, None, None)


def test_2001_23_boundaries() -> None:
    assert view("2001:1ff:ffff:ffff::1").special == "ietf-protocol"
    assert view("2001:200::").special is None
    assert view("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff").special is None


# --- the bisect lookup agrees with a plain scan of the table ------------------------------


def _edges(blocks: tuple[SpecialBlock, ...]) -> list[IPAddress]:
    out: list[IPAddress] = []
    for block in blocks:
        net = ipaddress.ip_network(block.network)
        lo, hi = int(net.network_address), int(net.broadcast_address)
        top = (1 << net.max_prefixlen) - 1
        for value in (lo - 1, lo, lo + 1, (lo + hi) // 2, hi - 1, hi, hi + 1):
            if 0 <= value <= top:
                ip_type = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
                out.append(ip_type(value))
    return out


@pytest.mark.parametrize("ip", _edges(SPECIAL_BLOCKS_V4) + _edges(SPECIAL_BLOCKS_V6), ids=str)
def test_lookup_matches_table_at_every_block_edge(ip: IPAddress) -> None:
    assert special_reason(ip) == _oracle_reason(ip)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_lookup_matches_table_ipv4(value: int) -> None:
    ip = ipaddress.IPv4Address(value)
    assert special_reason(ip) == _oracle_reason(ip)


@given(
    st.one_of(
        st.integers(min_value=0, max_value=2**128 - 1),
        # Dense near the interesting low and high ends and 2001::/16.
        st.integers(min_value=0, max_value=2**112),
        st.integers(min_value=0x2001 << 112, max_value=(0x2002 << 112) - 1),
        st.integers(min_value=0xFC00 << 112, max_value=2**128 - 1),
    )
)
def test_lookup_matches_table_ipv6(value: int) -> None:
    ip = ipaddress.IPv6Address(value)
    assert special_reason(ip) == _oracle_reason(ip)


# --- IPv4 text: the fast path reads exactly what ipaddress reads ---------------------------

_OCTET_LIKE = st.one_of(
    st.integers(min_value=0, max_value=300).map(str),
    st.sampled_from(["00", "01", "007", "0x1", "+1", "-0", " 1", "1 ", "1\n", "", "\u0661"]),
)


@given(
    st.one_of(
        st.integers(min_value=0, max_value=2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v))),
        st.lists(_OCTET_LIKE, min_size=4, max_size=4).map(".".join),
        st.lists(_OCTET_LIKE, min_size=1, max_size=5).map(".".join),
        st.text(alphabet="0123456789.: \nx", max_size=20),
    )
)
# What inet_aton alone would take, and wrongly: a trailing newline or space, octal, non-ASCII
# digits (Arabic-Indic, fullwidth), a prefix, a fifth part.
@example("1.2.3.4\n")
@example("1.2.3.4 ")
@example(" 1.2.3.4")
@example("01.1.1.1")
@example("010.1.1.1")
@example("1.2.3.00")
@example("\u0661.1.1.1")
@example("1.1.1.\uff11")
@example("x1.2.3.4")
@example("1.2.3.4.5")
def test_ipv4_text_is_read_as_ipaddress_reads_it(text: str) -> None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        with pytest.raises(BadAddressError):
            view(text)
        return
    if ip.version == 4:
        assert view(text) == AddressView(str(ip), str(ip), None, _oracle_reason(ip))


# --- embedded IPv4 addresses --------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("::ffff:8.8.8.8", AddressView("::ffff:8.8.8.8", "8.8.8.8", "ipv4-mapped", None)),
        # Same address written in hex: canonical text is the dotted form on every Python.
        ("::ffff:808:808", AddressView("::ffff:8.8.8.8", "8.8.8.8", "ipv4-mapped", None)),
        (
            "::ffff:10.1.2.3",
            AddressView("::ffff:10.1.2.3", "10.1.2.3", "ipv4-mapped", "embedded-private"),
        ),
        (
            "::ffff:127.0.0.1",
            AddressView("::ffff:127.0.0.1", "127.0.0.1", "ipv4-mapped", "embedded-loopback"),
        ),
        ("64:ff9b::808:808", AddressView("64:ff9b::808:808", "8.8.8.8", "nat64", None)),
        ("64:ff9b::8.8.8.8", AddressView("64:ff9b::808:808", "8.8.8.8", "nat64", None)),
        (
            "64:ff9b::c0a8:101",
            AddressView("64:ff9b::c0a8:101", "192.168.1.1", "nat64", "embedded-private"),
        ),
        # Local-use NAT64 prefix: refused itself, the embedded address still shown.
        (
            "64:ff9b:1::b96b:3801",
            AddressView("64:ff9b:1::b96b:3801", "185.107.56.1", "nat64", "nat64-local"),
        ),
        ("2002:b96b:3801::1", AddressView("2002:b96b:3801::1", "185.107.56.1", "6to4", None)),
        (
            "2002:c000:204::1",
            AddressView("2002:c000:204::1", "192.0.2.4", "6to4", "embedded-documentation"),
        ),
        # RFC 4380 example: server 65.54.227.120, client 192.0.2.45 (obfuscated as 3fff:fdd2).
        (
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            AddressView(
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                "192.0.2.45",
                "teredo",
                "embedded-documentation",
            ),
        ),
        (
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
            AddressView("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "8.8.8.8", "teredo", None),
        ),
    ],
)
def test_embedded_ipv4(address: str, expected: AddressView) -> None:
    assert view(address) == expected


def test_teredo_is_not_the_rest_of_2001_23() -> None:
    # 2001::/32 is Teredo (judged by the client), 2001:1::/32 onwards is not.
    assert view("2001:0:808:808::1").note == "teredo"
    assert view("2001:1::5").note is None
    assert view("2001:1::5").special == "ietf-protocol"


# --- canonical text and bad input ---------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("2A01:04F8:0000:0000:0000:0000:0000:0001", "2a01:4f8::1"),
        ("2606:4700:0:0:0:0:0:1111", "2606:4700::1111"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_canonical_text(given: str, canonical: str) -> None:
    assert view(given).address == canonical
    assert view(given).effective == canonical


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example.com",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "01.2.3.4",  # leading zeros: octal to some parsers
        " 1.2.3.4",
        "1.2.3.4 ",
        "[::1]",
        "1.2.3.4/32",
        "fe80::1%eth0",
        "2001:db8::1%1",
        ":::1",
    ],
)
def test_bad_address(text: str) -> None:
    with pytest.raises(BadAddressError) as info:
        view(text)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, RoutingError)
    assert info.value.code == "bad-address"
    assert repr(text) in info.value.message
    with pytest.raises(BadAddressError):
        parse_ip(text)


def test_parse_ip_returns_ipaddress_objects() -> None:
    assert parse_ip("8.8.8.8") == ipaddress.IPv4Address("8.8.8.8")
    assert parse_ip("2a01:4f8::1") == ipaddress.IPv6Address("2a01:4f8::1")
