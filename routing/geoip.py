"""The GeoIP adapter: an IP address to its country and autonomous system.

The trace looks up every resolved address, for bursts of tens of thousands of URLs, and must
record which database build answered. Two record layouts are in use and both must work: the
MaxMind one (GeoLite2/GeoIP2/DB-IP: ``country.iso_code``) and the ip-location-db one
(``country_code``), which ``geoip2.Reader.country()`` refuses with a ``TypeError``.

Design:
- Raw ``maxminddb`` readers, opened once (memory-mapped, C extension when present): one
  ``Reader.get`` plus dict access per lookup, several times faster than ``geoip2``.
- The layout is decided once at open, from the first records of the database (a probe) with
  the metadata database type as fallback, so a database of the wrong kind (an ASN database
  given as the country database, a corrupt file) fails at start-up with one clear line rather
  than answering ``None`` for every address.
- Lookups take canonical address text (see :mod:`routing.addresses`); errors are cold paths.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Self

import maxminddb
from maxminddb.types import Record

from routing.addresses import parse_ip
from routing.errors import GeoDatabaseError

__all__ = [
    "LAYOUT_IP_LOCATION_DB",
    "LAYOUT_MAXMIND",
    "LAYOUT_MAXMIND_ASN",
    "AsnInfo",
    "GeoDatabaseInfo",
    "GeoIp",
]

LAYOUT_MAXMIND: Final = "maxmind"
LAYOUT_IP_LOCATION_DB: Final = "ip-location-db"
LAYOUT_MAXMIND_ASN: Final = "maxmind-asn"

# How many leading records the layout probe reads: enough to step over a few odd records
# (e.g. a MaxMind network carrying only a continent), still microseconds.
_PROBE_RECORDS: Final = 16

try:
    from maxminddb import extension as _extension

    _OPEN_MODE: int = (
        maxminddb.MODE_MMAP_EXT if hasattr(_extension, "Reader") else maxminddb.MODE_MMAP
    )
except ImportError:  # pragma: no cover - depends on how maxminddb was installed
    _OPEN_MODE = maxminddb.MODE_MMAP


@dataclass(frozen=True, slots=True)
class GeoDatabaseInfo:
    """Which database answered: recorded with every trace so decisions can be reproduced."""

    path: str
    database_type: str
    build_time: datetime
    layout: str


@dataclass(frozen=True, slots=True)
class AsnInfo:
    number: int
    organization: str | None


def _layout_of_record(record: Record) -> str | None:
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("country_code"), str):
        return LAYOUT_IP_LOCATION_DB
    for key in ("country", "registered_country"):
        place = record.get(key)
        if isinstance(place, dict) and isinstance(place.get("iso_code"), str):
            return LAYOUT_MAXMIND
    if isinstance(record.get("autonomous_system_number"), int):
        return LAYOUT_MAXMIND_ASN
    return None


def _layout_of_type(database_type: str) -> str | None:
    # Only consulted when the probe found no telling record (e.g. an empty database).
    if database_type.startswith("country ipv"):
        return LAYOUT_IP_LOCATION_DB
    if "ASN" in database_type:
        return LAYOUT_MAXMIND_ASN
    if any(word in database_type for word in ("Country", "City", "Enterprise")):
        return LAYOUT_MAXMIND
    return None


def _open(path: str | os.PathLike[str], kind: str) -> tuple[maxminddb.Reader, GeoDatabaseInfo]:
    """Open and identify one database; ``kind`` ("country" or "ASN") only words the errors."""
    shown = os.path.abspath(os.fspath(path))
    what = f"GeoIP {kind} database {shown}"
    if not os.path.exists(shown):
        raise GeoDatabaseError(f"{what} not found")
    if os.path.isdir(shown):
        raise GeoDatabaseError(f"{what} is a directory, not a MaxMind DB file")
    try:
        reader = maxminddb.open_database(shown, _OPEN_MODE)
    except OSError as exc:
        raise GeoDatabaseError(f"{what} cannot be read: {exc.strerror or exc}") from None
    except (maxminddb.InvalidDatabaseError, ValueError) as exc:
        # The C extension says "Is this a valid MaxMind DB file?"; an empty file gives ValueError.
        raise GeoDatabaseError(f"{what} is not a valid MaxMind DB file ({exc})") from None
    try:
        meta = reader.metadata()
        layout = None
        for _network, record in itertools.islice(iter(reader), _PROBE_RECORDS):
            layout = _layout_of_record(record)
            if layout is not None:
                break
        database_type = str(meta.database_type)
        info = GeoDatabaseInfo(
            path=shown,
            database_type=database_type,
            build_time=datetime.fromtimestamp(meta.build_epoch, tz=UTC),
            layout=layout or _layout_of_type(database_type) or "unknown",
        )
    except (maxminddb.InvalidDatabaseError, ValueError, OverflowError, OSError) as exc:
        reader.close()
        raise GeoDatabaseError(f"{what} is corrupt ({exc})") from None
    except BaseException:
        reader.close()
        raise
    return reader, info


def _wrong_kind(info: GeoDatabaseInfo, kind: str, expected: str) -> GeoDatabaseError:
    article = "an" if kind == "ASN" else "a"
    return GeoDatabaseError(
        f"GeoIP {kind} database {info.path} is not {article} {kind} database: database type "
        f"{info.database_type!r}, records of layout {info.layout!r}; expected {expected}"
    )


class GeoIp:
    """Country (and optionally ASN) lookups over MaxMind DB files, opened once.

    Thread-safe for lookups (the readers are read-only memory maps). ``country()`` and
    ``asn()`` take canonical address text (``AddressView.effective``): they do not re-validate
    it, since that would double the cost of a lookup, and the C reader accepts a few legacy
    forms (``"1.2.3"``). Text that is no address at all raises
    :class:`routing.addresses.BadAddressError`; an address not covered gives ``None``.
    """

    country_info: GeoDatabaseInfo
    asn_info: GeoDatabaseInfo | None

    def __init__(
        self,
        country_db: str | os.PathLike[str],
        asn_db: str | os.PathLike[str] | None = None,
    ) -> None:
        self._closed = False
        reader, info = _open(country_db, "country")
        if info.layout not in (LAYOUT_MAXMIND, LAYOUT_IP_LOCATION_DB):
            reader.close()
            raise _wrong_kind(
                info, "country", "country.iso_code (MaxMind) or country_code (ip-location-db)"
            )
        self._country_reader = reader
        self._country_get = reader.get
        self._ip_location_db = info.layout == LAYOUT_IP_LOCATION_DB
        self.country_info = info

        self._asn_reader: maxminddb.Reader | None = None
        self.asn_info = None
        if asn_db is not None:
            try:
                asn_reader, asn_info = _open(asn_db, "ASN")
            except BaseException:
                reader.close()
                raise
            if asn_info.layout != LAYOUT_MAXMIND_ASN:
                asn_reader.close()
                reader.close()
                raise _wrong_kind(asn_info, "ASN", "autonomous_system_number records")
            self._asn_reader = asn_reader
            self.asn_info = asn_info

    def country(self, address: str) -> str | None:
        """ISO 3166-1 alpha-2 code (upper-case) of ``address``, or ``None`` if not covered."""
        try:
            record = self._country_get(address)
        except ValueError as exc:
            self._failed_lookup(address, self.country_info, exc)
            return None
        if not isinstance(record, dict):
            return None
        if self._ip_location_db:
            code = record.get("country_code")
        else:
            place = record.get("country")
            code = place.get("iso_code") if isinstance(place, dict) else None
            if code is None:
                # GeoLite2 leaves "country" out for some networks (e.g. those only known at
                # continent level) but still knows where the block is registered.
                place = record.get("registered_country")
                code = place.get("iso_code") if isinstance(place, dict) else None
        return code.upper() if isinstance(code, str) else None

    def asn(self, address: str) -> AsnInfo | None:
        """Autonomous system of ``address``; ``None`` if not covered or no ASN database."""
        reader = self._asn_reader
        if reader is None:
            return None
        try:
            record = reader.get(address)
        except ValueError as exc:
            assert self.asn_info is not None
            self._failed_lookup(address, self.asn_info, exc)
            return None
        if not isinstance(record, dict):
            return None
        number = record.get("autonomous_system_number")
        if not isinstance(number, int):
            return None
        organization = record.get("autonomous_system_organization")
        return AsnInfo(number, organization if isinstance(organization, str) else None)

    def _failed_lookup(self, address: str, info: GeoDatabaseInfo, exc: ValueError) -> None:
        """Raise the right error for an address ``Reader.get`` refused, or return if uncovered."""
        if self._closed:
            raise GeoDatabaseError(f"GeoIP database {info.path} is closed")
        ip = parse_ip(address)  # raises BadAddressError for text that is not an address
        if ip.version == 6:
            # maxminddb refuses IPv6 lookups in an IPv4-only database: simply not covered.
            return
        raise GeoDatabaseError(f"lookup of {address} in {info.path} failed: {exc}")

    def close(self) -> None:
        """Release the memory maps; lookups afterwards raise GeoDatabaseError. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._country_reader.close()
        if self._asn_reader is not None:
            self._asn_reader.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
