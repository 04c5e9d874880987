"""The GeoIP adapter over databases built by routing.geoip_build, and the real ones if given."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import maxminddb
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from routing import geoip
from routing.addresses import BadAddressError
from routing.errors import GeoDatabaseError
from routing.geoip import AsnInfo, GeoDatabaseInfo, GeoIp
from routing.geoip_build import build_asn_db, build_country_db

if TYPE_CHECKING:
    from tests.conftest import GeoRow


def _write(path: Path, rows: Mapping[str, Any], *, ip_version: int = 6, **meta: Any) -> Path:
    """A database with arbitrary records, for layouts geoip_build does not write."""
    writer = MMDBWriter(ip_version=ip_version, ipv4_compatible=ip_version == 6, **meta)
    for network, record in rows.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture(params=["maxmind", "ip-location-db"])
def any_country_db(request: pytest.FixtureRequest) -> Path:
    name = "country_db" if request.param == "maxmind" else "country_db_iplocation"
    path: Path = request.getfixturevalue(name)
    return path


# --- lookups ------------------------------------------------------------------------------


def test_country_of_every_table_row(any_country_db: Path, geo_table: Mapping[str, GeoRow]) -> None:
    with GeoIp(any_country_db) as geo:
        for row in geo_table.values():
            assert geo.country(row.sample) == row.country, row


@pytest.mark.parametrize("address", ["1.1.1.1", "185.107.60.1", "2a02::1", "9.9.9.9", "::"])
def test_country_not_covered(any_country_db: Path, address: str) -> None:
    with GeoIp(any_country_db) as geo:
        assert geo.country(address) is None


def test_asn_of_every_table_row(
    country_db: Path, asn_db: Path, geo_table: Mapping[str, GeoRow]
) -> None:
    with GeoIp(country_db, asn_db) as geo:
        for row in geo_table.values():
            expected = AsnInfo(row.asn, row.organization) if row.asn is not None else None
            assert geo.asn(row.sample) == expected, row
        assert geo.asn("1.1.1.1") is None


def test_asn_without_asn_database(country_db: Path) -> None:
    with GeoIp(country_db) as geo:
        assert geo.asn_info is None
        assert geo.asn("8.8.8.8") is None


def test_database_info(
    country_db: Path, country_db_iplocation: Path, asn_db: Path, geo_build_time: datetime
) -> None:
    with GeoIp(country_db, asn_db) as geo:
        assert geo.country_info == GeoDatabaseInfo(
            str(country_db.resolve()), "GeoLite2-Country", geo_build_time, "maxmind"
        )
        assert geo.asn_info == GeoDatabaseInfo(
            str(asn_db.resolve()), "GeoLite2-ASN", geo_build_time, "maxmind-asn"
        )
        assert geo.country_info.build_time.tzinfo is UTC
    with GeoIp(country_db_iplocation) as geo:
        assert geo.country_info.layout == "ip-location-db"
        assert geo.country_info.database_type == "country ipvAll"


def test_relative_path_is_recorded_absolute(
    country_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(country_db.parent)
    with GeoIp(country_db.name) as geo:
        assert geo.country_info.path == str(country_db.resolve())


def test_registered_country_fallback_and_upper_case(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "city.mmdb",
        {
            "192.0.2.0/24": {"continent": {"code": "EU"}, "registered_country": {"iso_code": "nl"}},
            "198.51.100.0/24": {
                "country": {"iso_code": "DE"},
                "registered_country": {"iso_code": "NL"},
            },
            "203.0.113.0/24": {"continent": {"code": "EU"}},
        },
        database_type="GeoIP2-City",
    )
    with GeoIp(path) as geo:
        assert geo.country_info.layout == "maxmind"
        assert geo.country("192.0.2.1") == "NL"
        assert geo.country("198.51.100.1") == "DE"
        assert geo.country("203.0.113.1") is None


def test_ip_location_db_country_code_upper_cased(tmp_path: Path) -> None:
    path = _write(tmp_path / "lc.mmdb", {"192.0.2.0/24": {"country_code": "ro"}})
    with GeoIp(path) as geo:
        assert geo.country_info.layout == "ip-location-db"
        assert geo.country("192.0.2.1") == "RO"


def test_asn_without_organization(country_db: Path, tmp_path: Path) -> None:
    path = build_asn_db(tmp_path / "asn.mmdb", {"192.0.2.0/24": (64500, "")})
    with GeoIp(country_db, path) as geo:
        assert geo.asn("192.0.2.1") == AsnInfo(64500, None)


def test_more_specific_network_wins_whatever_the_order(tmp_path: Path) -> None:
    path = build_country_db(
        tmp_path / "nested.mmdb",
        {"185.107.56.0/24": "NL", "185.107.0.0/16": "DE", "::/0": "AQ", "2a01::/16": "FR"},
    )
    with GeoIp(path) as geo:
        assert geo.country("185.107.56.1") == "NL"
        assert geo.country("185.107.57.1") == "DE"
        assert geo.country("2a01::1") == "FR"
        assert geo.country("2a02::1") == "AQ"
        # IPv4 lives at ::/96 of the tree, so ::/0 covers it too, as in MaxMind's databases.
        assert geo.country("8.8.8.8") == "AQ"


# Only text no parser takes: the C reader is lenient ("1.2.3" is 1.2.0.3 to inet_aton), which
# is why callers pass routing.addresses canonical text.
@pytest.mark.parametrize("address", ["example.com", "", "1.2.3.4.5", "2a01:4f8::1::1", "::ffff:zz"])
def test_bad_address(country_db: Path, asn_db: Path, address: str) -> None:
    with GeoIp(country_db, asn_db) as geo:
        with pytest.raises(BadAddressError):
            geo.country(address)
        with pytest.raises(BadAddressError):
            geo.asn(address)


def test_ipv6_in_ipv4_only_database_is_not_covered(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "v4.mmdb",
        {"8.8.8.0/24": {"country": {"iso_code": "US"}}},
        ip_version=4,
        database_type="GeoLite2-Country",
    )
    with GeoIp(path) as geo:
        assert geo.country("8.8.8.8") == "US"
        assert geo.country("2a01:4f8::1") is None


def test_close_is_idempotent_and_lookups_after_it_fail(country_db: Path, asn_db: Path) -> None:
    geo = GeoIp(country_db, asn_db)
    with geo:
        assert geo.country("8.8.8.8") == "US"
    with pytest.raises(GeoDatabaseError, match="closed"):
        geo.country("8.8.8.8")
    with pytest.raises(GeoDatabaseError, match="closed"):
        geo.asn("8.8.8.8")
    geo.close()


def test_pure_python_reader_gives_the_same_answers(
    country_db_iplocation: Path,
    asn_db: Path,
    geo_table: Mapping[str, GeoRow],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(geoip, "_OPEN_MODE", maxminddb.MODE_MMAP)
    with GeoIp(country_db_iplocation, asn_db) as geo:
        assert isinstance(geo._country_reader, maxminddb.Reader)
        for row in geo_table.values():
            assert geo.country(row.sample) == row.country
        assert geo.asn("8.8.8.8") == AsnInfo(15169, "Google LLC")
        with pytest.raises(BadAddressError):
            geo.country("nonsense")


def test_c_extension_is_used_when_available(country_db: Path) -> None:
    pytest.importorskip("maxminddb.extension")
    with GeoIp(country_db) as geo:
        assert not isinstance(geo._country_reader, maxminddb.Reader)


# --- errors at open -----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mmdb"
    with pytest.raises(GeoDatabaseError) as info:
        GeoIp(missing)
    assert info.value.message == f"GeoIP country database {missing} not found"
    assert info.value.code == "geoip-database"


def test_missing_asn_file(country_db: Path, tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match=r"GeoIP ASN database .*nope\.mmdb not found"):
        GeoIp(country_db, tmp_path / "nope.mmdb")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match="is a directory"):
        GeoIp(tmp_path)


@pytest.mark.parametrize(
    "content",
    [os.urandom(4096), b"", b"\xab\xcd\xefMaxMind.com" + os.urandom(64)],
    ids=["random", "empty", "bad-metadata"],
)
def test_corrupt_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.mmdb"
    path.write_bytes(content)
    with pytest.raises(GeoDatabaseError) as info:
        GeoIp(path)
    assert info.value.message.startswith(f"GeoIP country database {path} ")
    assert "\n" not in info.value.message


def test_truncated_file(country_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.mmdb"
    path.write_bytes(country_db.read_bytes()[: country_db.stat().st_size // 2])
    with pytest.raises(GeoDatabaseError, match="not a valid MaxMind DB file"):
        GeoIp(path)


def test_unreadable_file(country_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated: file modes do not stop root, and tests may run as root in containers.
    def refuse(path: str, mode: int) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(geoip.maxminddb, "open_database", refuse)
    with pytest.raises(GeoDatabaseError) as info:
        GeoIp(country_db)
    assert info.value.message == (
        f"GeoIP country database {country_db} cannot be read: Permission denied"
    )


def test_asn_database_given_as_country_database(asn_db: Path) -> None:
    with pytest.raises(GeoDatabaseError) as info:
        GeoIp(asn_db)
    message = info.value.message
    assert "is not a country database" in message
    assert "'GeoLite2-ASN'" in message


def test_country_database_given_as_asn_database(country_db: Path) -> None:
    with pytest.raises(GeoDatabaseError, match="is not an ASN database"):
        GeoIp(country_db, country_db)


def test_unknown_layout(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "anon.mmdb",
        {"192.0.2.0/24": {"is_anonymous": True}},
        database_type="GeoIP2-Anonymous-IP",
    )
    with pytest.raises(GeoDatabaseError, match=r"'GeoIP2-Anonymous-IP'.*'unknown'"):
        GeoIp(path)


def test_empty_database_layout_from_metadata(tmp_path: Path) -> None:
    country = _write(tmp_path / "empty-country.mmdb", {}, database_type="GeoLite2-Country")
    iplocation = _write(tmp_path / "empty-ipl.mmdb", {}, database_type="country ipv4")
    with GeoIp(country) as geo:
        assert geo.country_info.layout == "maxmind"
        assert geo.country("8.8.8.8") is None
    with GeoIp(iplocation) as geo:
        assert geo.country_info.layout == "ip-location-db"
    unknown = _write(tmp_path / "empty-other.mmdb", {}, database_type="Something")
    with pytest.raises(GeoDatabaseError, match="unknown"):
        GeoIp(unknown)


# --- geoip_build input checks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("networks", "message"),
    [
        ({"185.107.56.0/33": "NL"}, "bad network '185.107.56.0/33'"),
        ({"185.107.56.1/22": "NL"}, "bad network '185.107.56.1/22'"),  # host bits set
        ({"8.8.8.0/24": "USA"}, "bad country code 'USA'"),
        ({"8.8.8.0/24": "U1"}, "bad country code 'U1'"),
        ({"8.8.8.0/24": "US", "8.8.8.0/24 ": "US"}, "network 8.8.8.0/24 given twice"),
    ],
)
def test_build_country_db_rejects_bad_input(
    tmp_path: Path, networks: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        build_country_db(tmp_path / "x.mmdb", networks)
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_build_rejects_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown layout 'geoip1'"):
        build_country_db(tmp_path / "x.mmdb", {"8.8.8.0/24": "US"}, layout="geoip1")


def test_build_asn_db_rejects_bad_numbers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad AS number 0"):
        build_asn_db(tmp_path / "x.mmdb", {"8.8.8.0/24": (0, "x")})


def test_build_custom_database_type_and_default_build_time(tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    path = build_country_db(
        tmp_path / "x.mmdb", {"8.8.8.0/24": "US"}, database_type="DBIP-Country-Lite"
    )
    with GeoIp(path) as geo:
        assert geo.country_info.database_type == "DBIP-Country-Lite"
        assert before <= geo.country_info.build_time <= datetime.now(UTC)


# --- the real databases, when available ---------------------------------------------------


def _real(variable: str) -> str:
    path = os.environ.get(variable)
    if not path:
        pytest.skip(f"set {variable} to a real GeoIP database file to run this test")
    return path


@pytest.mark.realgeo
def test_real_country_and_asn() -> None:
    with GeoIp(_real("IHX_GEOIP_COUNTRY_DB"), _real("IHX_GEOIP_ASN_DB")) as geo:
        assert geo.country_info.layout == "maxmind"
        assert geo.asn_info is not None
        assert geo.asn_info.layout == "maxmind-asn"
        assert geo.country("185.107.56.1") == "NL"
        assert geo.country("8.8.8.8") == "US"
        nforce = geo.asn("185.107.56.1")
        assert nforce is not None
        assert nforce.number == 43350
        google = geo.asn("8.8.8.8")
        assert google is not None
        assert google.number == 15169
        hetzner = geo.asn("2a01:4f8::1")
        assert hetzner is not None
        assert hetzner.number == 24940
        assert geo.country("10.0.0.1") is None


@pytest.mark.realgeo
def test_real_ip_location_db_layout() -> None:
    with GeoIp(_real("IHX_GEOIP_COUNTRY_DB_IPLOCATION")) as geo:
        assert geo.country_info.layout == "ip-location-db"
        assert geo.country("185.107.56.1") == "NL"
        assert geo.country("8.8.8.8") == "US"
