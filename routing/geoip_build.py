"""Write small GeoIP databases (MaxMind DB format) from a table of networks.

The test suite and ``ihx demo`` need country and ASN databases whose answers they know, without
shipping or downloading real ones. This module writes them with ``mmdb-writer`` in the two
layouts :mod:`routing.geoip` reads: MaxMind (GeoLite2/GeoIP2/DB-IP) and ip-location-db.

Design: always an IPv6 database holding IPv4 networks in the IPv4-compatible subtree (as
MaxMind's own databases do), so one file answers both families. Networks are inserted from the
least to the most specific, so a more specific network overrides the network containing it
whatever order the table is given in. The file is written beside its final path and renamed
over it, so a reader never opens a half-written database.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from mmdb_writer import MMDBWriter
from netaddr import IPSet

__all__ = ["COUNTRY_LAYOUTS", "build_asn_db", "build_country_db"]

COUNTRY_LAYOUTS: Final = ("maxmind", "ip-location-db")
_DEFAULT_TYPES: Final = {"maxmind": "GeoLite2-Country", "ip-location-db": "country ipvAll"}
_COUNTRY_CODE = re.compile(r"[A-Za-z]{2}")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Writer(MMDBWriter):
    """An MMDBWriter whose metadata build time can be fixed, for reproducible files."""

    def __init__(self, build_time: datetime | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._build_epoch = None if build_time is None else int(build_time.timestamp())

    def _build_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = super()._build_meta()
        if self._build_epoch is not None:
            meta["build_epoch"] = self._build_epoch
        return meta


def _parse_networks(networks: Mapping[str, Any]) -> list[tuple[Network, Any]]:
    parsed: dict[Network, Any] = {}
    for text, value in networks.items():
        try:
            net = ipaddress.ip_network(text.strip())
        except ValueError as exc:
            raise ValueError(f"bad network {text!r}: {exc}") from None
        if net in parsed:
            raise ValueError(f"network {net} given twice")
        parsed[net] = value
    # IPv4 networks live at ::/96 in the IPv6 tree, so their depth there is 96 + prefix length.
    return sorted(parsed.items(), key=lambda item: _tree_depth(item[0]))


def _tree_depth(net: Network) -> int:
    return net.prefixlen + (96 if net.version == 4 else 0)


def _write(
    path: str | os.PathLike[str],
    rows: list[tuple[Network, Any]],
    *,
    database_type: str,
    languages: list[str],
    description: str | dict[str, str],
    build_time: datetime | None,
    int_type: str = "auto",
) -> Path:
    writer = _Writer(
        build_time,
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=languages,
        description=description,
        int_type=int_type,
    )
    for net, record in rows:
        # mmdb-writer cannot insert the whole IPv6 space (a zero-length path); its two halves do.
        parts = list(net.subnets()) if net.prefixlen == 0 and net.version == 6 else [net]
        for part in parts:  # one IPSet each: an IPSet would merge the halves back into ::/0
            writer.insert_network(IPSet([str(part)]), record)
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        writer.to_db_file(str(partial))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def build_country_db(
    path: str | os.PathLike[str],
    networks: Mapping[str, str],
    *,
    layout: str = "maxmind",
    database_type: str | None = None,
    build_time: datetime | None = None,
) -> Path:
    """Write a country database mapping each CIDR to an ISO 3166-1 alpha-2 code.

    ``layout="maxmind"`` writes ``{"country": {"iso_code": CC}}`` (database type
    ``GeoLite2-Country`` unless given); ``layout="ip-location-db"`` writes
    ``{"country_code": CC}`` (``country ipvAll``). ``build_time`` fixes the metadata build
    epoch (default: now). Raises ``ValueError`` for a bad network, duplicate or country code.
    """
    if layout not in COUNTRY_LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: expected one of {', '.join(COUNTRY_LAYOUTS)}")
    rows = []
    for net, code in _parse_networks(networks):
        if not isinstance(code, str) or not _COUNTRY_CODE.fullmatch(code):
            raise ValueError(f"bad country code {code!r} for {net}: expected two letters")
        cc = code.upper()
        record = {"country": {"iso_code": cc}} if layout == "maxmind" else {"country_code": cc}
        rows.append((net, record))
    maxmind = layout == "maxmind"
    return _write(
        path,
        rows,
        database_type=database_type or _DEFAULT_TYPES[layout],
        languages=["en"] if maxmind else [],
        description="ihx test country database" if maxmind else {},
        build_time=build_time,
    )


def build_asn_db(
    path: str | os.PathLike[str],
    networks: Mapping[str, tuple[int, str]],
    *,
    build_time: datetime | None = None,
) -> Path:
    """Write a GeoLite2-ASN layout database mapping each CIDR to ``(asn, organization)``."""
    rows = []
    for net, value in _parse_networks(networks):
        number, organization = value
        if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 2**32:
            raise ValueError(f"bad AS number {number!r} for {net}")
        record: dict[str, Any] = {"autonomous_system_number": number}
        if organization:
            record["autonomous_system_organization"] = organization
        rows.append((net, record))
    return _write(
        path,
        rows,
        database_type="GeoLite2-ASN",
        languages=["en"],
        description="ihx test ASN database",
        build_time=build_time,
        # GeoLite2 stores AS numbers as uint32; "auto" would pick the smallest type per value.
        int_type="u32",
    )
