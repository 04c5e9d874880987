"""Special-purpose IP addresses: which addresses may be taken as a hosting location.

A trace must never geolocate a private, loopback, documentation or otherwise special-purpose
address as the place where content is hosted: a DNS record pointing at 10.0.0.1 says nothing
about any country. This module decides that for one address, purely.

Design:
- The IANA IPv4 and IPv6 Special-Purpose Address Registries are written out below as data, one
  row per block with its RFC and the registry's "globally reachable" flag, so the policy is
  explicit and testable (``ipaddress.is_private`` has changed between Python releases).
- Policy: every block of the registries is refused as a hosting location, including the few
  the registry marks globally reachable (anycast services such as AS112, AMT, PCP, TURN, and
  identifier blocks such as ORCHIDv2): an anycast or identifier address has no single place,
  and its whois country would be a guess presented as a fact.
- IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo) are geolocated by
  that IPv4 address; the check runs on both the address and the embedded one.
- Rows overlap (a /32 inside a /24); at import they are flattened into disjoint integer ranges
  where the most specific row wins, so a lookup is one ``bisect`` per address.
- Speed: most addresses a trace meets are IPv4 in strict dotted decimal. ``view`` takes those
  through one anchored regex and ``inet_aton`` (about a tenth of ``ipaddress``' parse, which was
  most of a trace's cost on an address not seen before); the text is already canonical. The
  regex accepts exactly what ``ipaddress`` accepts as IPv4; anything else (IPv6, bad text)
  takes the ``ipaddress`` path and its errors.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from bisect import bisect_right
from dataclasses import dataclass
from typing import Final

from routing.errors import RoutingError

__all__ = [
    "SPECIAL_BLOCKS_V4",
    "SPECIAL_BLOCKS_V6",
    "AddressView",
    "BadAddressError",
    "SpecialBlock",
    "parse_ip",
    "special_reason",
    "view",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BadAddressError(RoutingError, ValueError):
    """Text that is not an IP address where one was required.

    Also a ``ValueError`` so callers that validate input generically can catch it as such.
    """

    code = "bad-address"


@dataclass(frozen=True, slots=True)
class SpecialBlock:
    """One row of the special-purpose tables.

    ``reason`` is the stable code reported for addresses in the block; ``None`` marks a block
    whose addresses embed an IPv4 address (``embeds``) and are judged by that address instead.
    ``globally_reachable`` copies the IANA registry column (``None`` where it says N/A or the
    block is not in the special-purpose registry itself), for reference; the policy refuses
    every block with a reason regardless.
    """

    network: str
    reason: str | None
    rfc: str
    globally_reachable: bool | None
    embeds: str | None = None


# IANA IPv4 Special-Purpose Address Registry, plus multicast (RFC 5771), which has its own
# registry but is never a hosting location either.
SPECIAL_BLOCKS_V4: Final[tuple[SpecialBlock, ...]] = (
    SpecialBlock("0.0.0.0/8", "this-network", "RFC 791 §3.2", False),
    SpecialBlock("0.0.0.0/32", "unspecified", "RFC 1122 §3.2.1.3", False),
    SpecialBlock("10.0.0.0/8", "private", "RFC 1918", False),
    SpecialBlock("100.64.0.0/10", "cgnat", "RFC 6598", False),
    SpecialBlock("127.0.0.0/8", "loopback", "RFC 1122 §3.2.1.3", False),
    SpecialBlock("169.254.0.0/16", "link-local", "RFC 3927", False),
    SpecialBlock("172.16.0.0/12", "private", "RFC 1918", False),
    SpecialBlock("192.0.0.0/24", "ietf-protocol", "RFC 6890 §2.1", False),
    SpecialBlock("192.0.0.0/29", "ietf-protocol", "RFC 7335 (IPv4 service continuity)", False),
    SpecialBlock("192.0.0.8/32", "ietf-protocol", "RFC 7600 (IPv4 dummy address)", False),
    SpecialBlock("192.0.0.9/32", "pcp-anycast", "RFC 7723", True),
    SpecialBlock("192.0.0.10/32", "turn-anycast", "RFC 8155", True),
    SpecialBlock("192.0.0.170/32", "ietf-protocol", "RFC 8880, RFC 7050 (NAT64 discovery)", False),
    SpecialBlock("192.0.0.171/32", "ietf-protocol", "RFC 8880, RFC 7050 (NAT64 discovery)", False),
    SpecialBlock("192.0.2.0/24", "documentation", "RFC 5737 (TEST-NET-1)", False),
    SpecialBlock("192.31.196.0/24", "as112", "RFC 7535", True),
    SpecialBlock("192.52.193.0/24", "amt", "RFC 7450", True),
    SpecialBlock("192.88.99.0/24", "6to4-relay-anycast", "RFC 7526 (deprecated)", None),
    SpecialBlock("192.168.0.0/16", "private", "RFC 1918", False),
    SpecialBlock("192.175.48.0/24", "as112", "RFC 7534", True),
    SpecialBlock("198.18.0.0/15", "benchmarking", "RFC 2544", False),
    SpecialBlock("198.51.100.0/24", "documentation", "RFC 5737 (TEST-NET-2)", False),
    SpecialBlock("203.0.113.0/24", "documentation", "RFC 5737 (TEST-NET-3)", False),
    SpecialBlock("224.0.0.0/4", "multicast", "RFC 5771", None),
    SpecialBlock("240.0.0.0/4", "reserved", "RFC 1112 §4", False),
    SpecialBlock("255.255.255.255/32", "broadcast", "RFC 8190, RFC 919 §7", False),
)

# IANA IPv6 Special-Purpose Address Registry. The first rows come from the IPv6 Address Space
# registry instead: only 2000::/3 is allocated as global unicast, so an address outside it and
# outside every more specific row is "reserved" (not routable on the Internet).
SPECIAL_BLOCKS_V6: Final[tuple[SpecialBlock, ...]] = (
    SpecialBlock("::/0", "reserved", "RFC 4291 §2.4 (reserved by IETF)", None),
    SpecialBlock("2000::/3", None, "RFC 4291 §2.4 (global unicast)", True),
    SpecialBlock("::/96", "ipv4-compatible", "RFC 4291 §2.5.5.1 (deprecated)", None),
    SpecialBlock("::/128", "unspecified", "RFC 4291", False),
    SpecialBlock("::1/128", "loopback", "RFC 4291", False),
    SpecialBlock("::ffff:0:0/96", None, "RFC 4291", False, embeds="ipv4-mapped"),
    SpecialBlock("64:ff9b::/96", None, "RFC 6052", True, embeds="nat64"),
    # Local-use NAT64 prefix: reachable only inside the operator's network, so refused, but the
    # embedded IPv4 address is still reported for the record.
    SpecialBlock("64:ff9b:1::/48", "nat64-local", "RFC 8215", False, embeds="nat64"),
    SpecialBlock("100::/64", "discard-only", "RFC 6666", False),
    SpecialBlock("2001::/23", "ietf-protocol", "RFC 2928", False),
    SpecialBlock("2001::/32", None, "RFC 4380, RFC 8190", None, embeds="teredo"),
    SpecialBlock("2001:1::1/128", "pcp-anycast", "RFC 7723", True),
    SpecialBlock("2001:1::2/128", "turn-anycast", "RFC 8155", True),
    SpecialBlock("2001:1::3/128", "dns-sd-srp-anycast", "RFC 9665", True),
    SpecialBlock("2001:2::/48", "benchmarking", "RFC 5180", False),
    SpecialBlock("2001:3::/32", "amt", "RFC 7450", True),
    SpecialBlock("2001:4:112::/48", "as112", "RFC 7535", True),
    SpecialBlock("2001:10::/28", "orchid-deprecated", "RFC 4843", None),
    SpecialBlock("2001:20::/28", "orchid", "RFC 7343", True),
    SpecialBlock("2001:30::/28", "drone-remote-id", "RFC 9374", True),
    SpecialBlock("2001:db8::/32", "documentation", "RFC 3849", False),
    SpecialBlock("2002::/16", None, "RFC 3056", None, embeds="6to4"),
    SpecialBlock("2620:4f:8000::/48", "as112", "RFC 7534", True),
    SpecialBlock("3fff::/20", "documentation", "RFC 9637", False),
    SpecialBlock("5f00::/16", "srv6-sid", "RFC 9602", False),
    SpecialBlock("fc00::/7", "unique-local", "RFC 4193, RFC 8190", False),
    SpecialBlock("fe80::/10", "link-local", "RFC 4291", False),
    SpecialBlock("fec0::/10", "site-local", "RFC 3879 (deprecated)", None),
    SpecialBlock("ff00::/8", "multicast", "RFC 4291", None),
)


class _RangeTable:
    """Disjoint ranges covering a whole address family, most specific row winning."""

    __slots__ = ("_blocks", "_starts")

    def __init__(self, blocks: tuple[SpecialBlock, ...], bits: int) -> None:
        networks = [(ipaddress.ip_network(b.network), b) for b in blocks]
        bounds = {0, 1 << bits}
        for net, _ in networks:
            bounds.add(int(net.network_address))
            bounds.add(int(net.broadcast_address) + 1)
        starts: list[int] = []
        winners: list[SpecialBlock | None] = []
        for start in sorted(bounds)[:-1]:
            covering = [
                (net.prefixlen, block)
                for net, block in networks
                if int(net.network_address) <= start <= int(net.broadcast_address)
            ]
            winner = max(covering, key=lambda c: c[0])[1] if covering else None
            # Adjacent ranges with the same winner merge, keeping the list short.
            if winners and winners[-1] is winner:
                continue
            starts.append(start)
            winners.append(winner)
        self._starts = starts
        self._blocks = winners

    def lookup(self, value: int) -> SpecialBlock | None:
        return self._blocks[bisect_right(self._starts, value) - 1]


_V4: Final = _RangeTable(SPECIAL_BLOCKS_V4, 32)
_V6: Final = _RangeTable(SPECIAL_BLOCKS_V6, 128)


@dataclass(frozen=True, slots=True)
class AddressView:
    """One address as the trace sees it.

    ``address``: canonical text (compressed IPv6; IPv4-mapped written ``::ffff:a.b.c.d`` on
    every Python version). ``effective``: the address to geolocate — the embedded IPv4 address
    for IPv4-mapped, NAT64, 6to4 and Teredo (the client), else ``address``. ``note`` names the
    embedding. ``special``: why the address must not be geolocated, ``None`` when it may be; an
    ordinary address embedding a special IPv4 address gets ``"embedded-<reason>"``.
    """

    address: str
    effective: str
    note: str | None
    special: str | None


def parse_ip(text: str) -> IPAddress:
    """Parse an IPv4 or IPv6 address strictly (no leading zeros, no whitespace, no brackets)."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise BadAddressError(f"not an IP address: {text!r}", code="bad-address") from None
    # A zone id ("fe80::1%eth0") only means something on the host that wrote it.
    if ip.version == 6 and ip.scope_id is not None:
        raise BadAddressError(f"scoped IPv6 address not allowed: {text!r}", code="bad-address")
    return ip


def _block(ip: IPAddress) -> SpecialBlock | None:
    table = _V4 if ip.version == 4 else _V6
    return table.lookup(int(ip))


def special_reason(ip: IPAddress) -> str | None:
    """The special-purpose reason of ``ip`` itself (embedded addresses not considered)."""
    block = _block(ip)
    return block.reason if block is not None else None


def _embedded(ip: ipaddress.IPv6Address, kind: str) -> ipaddress.IPv4Address:
    if kind == "teredo":
        teredo = ip.teredo
        assert teredo is not None  # the block is 2001::/32, where .teredo always answers
        return teredo[1]
    if kind == "6to4":
        sixtofour = ip.sixtofour
        assert sixtofour is not None
        return sixtofour
    # IPv4-mapped and NAT64 (/96 form, RFC 6052 §2.2): the last 32 bits. For the local-use
    # prefix the operator may use a shorter form; such addresses are refused anyway.
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


# Four decimal octets of 0-255 without leading zeros: what ``ipaddress`` accepts as IPv4 (ASCII
# digits only; ``fullmatch`` also refuses a trailing newline, which ``$`` would let through).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_STRICT_IPV4: Final = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def view(address: str) -> AddressView:
    """Classify one address; raises :class:`BadAddressError` for text that is not an IP address."""
    if _STRICT_IPV4.fullmatch(address) is not None:
        # Dotted decimal as strict as this is its own canonical text; no IPv4 row embeds.
        ipv4 = _V4.lookup(int.from_bytes(socket.inet_aton(address)))
        return AddressView(address, address, None, ipv4.reason if ipv4 is not None else None)
    ip = parse_ip(address)
    block = _block(ip)
    if block is None or block.embeds is None:
        text = str(ip)
        reason = block.reason if block is not None else None
        return AddressView(text, text, None, reason)
    assert isinstance(ip, ipaddress.IPv6Address)  # only IPv6 rows embed
    inner = _embedded(ip, block.embeds)
    inner_text = str(inner)
    text = f"::ffff:{inner_text}" if block.embeds == "ipv4-mapped" else str(ip)
    if block.reason is not None:
        special: str | None = block.reason
    else:
        inner_reason = special_reason(inner)
        special = f"embedded-{inner_reason}" if inner_reason is not None else None
    return AddressView(text, inner_text, block.embeds, special)
