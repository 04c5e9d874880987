"""The wire bytes and log digests are stable: known answers, computed by the code before issue 16.

Signatures, Merkle roots and every peer's verification cover these exact bytes, so a faster
encoder must produce the same ones: a report with its trace (two addresses, one special, an ASN
database, a PDQ hash with its quality) and without, at the epoch, with non-ASCII notes; and
routing-log entry hashes with absent fields, non-ASCII text and a time before the epoch.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from exchange.domain import ContentHash, HashAlgorithm, Item, ReportFacts, SiteType
from exchange.routing_log import compute_hash
from exchange.wire.codec import report_to_proto
from routing.canonical import canonicalize
from routing.geoip import GeoDatabaseInfo
from routing.trace import Trace, TracedAddress
from tests.exchange.factories import T0, make_decision, make_report, make_test_item

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PDQ = "f" * 8 + "0" * 56


def _trace(at: datetime) -> Trace:
    db = GeoDatabaseInfo("/geo/country.mmdb", "GeoLite2-Country", T0, "geolite2")
    return Trace(
        canonical=canonicalize("https://Files.Example.DE/a/b.jpg?x=1"),
        addresses=(
            TracedAddress("5.9.10.20", "5.9.10.20", None, None, "DE", 24940, "Hetzner Online"),
            TracedAddress("10.0.0.1", "10.0.0.1", "private", "private", None, None, None),
        ),
        country="DE",
        tied_countries=("DE", "NL"),
        country_database=db,
        asn_database=GeoDatabaseInfo("/geo/asn.mmdb", "GeoLite2-ASN", EPOCH, "geolite2"),
        traced_at=at,
        resolver_error=None,
        truncated=False,
    )


def _report(at: datetime, quality: bool) -> bytes:
    first = make_test_item(["seed-a"])
    pdq = ContentHash(HashAlgorithm.PDQ, PDQ, quality=87 if quality else None)
    items = [first, Item((pdq,), first.classification, first.media_type, first.age_group)]
    report = make_report(
        items=items,
        received_at=at,
        country="DE",
        facts=ReportFacts(SiteType.IMAGE_HOST, True, ("card", "crypto"), "notes: ß ü 漢"),
    )
    trace = _trace(at) if quality else None
    msg = report_to_proto(
        report, trace, make_decision("de-eco", country="DE"), with_quality=quality
    )
    return msg.SerializeToString(deterministic=True)


@pytest.mark.parametrize(
    ("at", "quality", "digest"),
    [
        (T0, True, "f42ab832dea4f21db47c522b9534f757c929d4096caa1e6ddf950a4006e609cb"),
        (T0, False, "bd7f387b51c937be67d5ec9381b5573761a40b94134b8821f36d37e005cb7c9c"),
        (EPOCH, True, "b9565fca67d3630f01f469c9ab3c6decdf76bb86d3192be2dfc3220e452e088b"),
        (
            EPOCH + timedelta(microseconds=1),
            False,
            "2c1ef76ff9c17d5ba0cc8e319c365e3d7fb73a3a40fe1e42fd210c528072cbe5",
        ),
    ],
)
def test_report_bytes_are_the_known_ones(at: datetime, quality: bool, digest: str) -> None:
    assert hashlib.sha256(_report(at, quality)).hexdigest() == digest


@pytest.mark.parametrize(
    ("fields", "digest"),
    [
        (
            (0, T0, "intake", "r-1", "de-eco", "DE", "{}"),
            "a4fa3f854cda8293250250ec67e85af21643ee083f035eecf19bc5dfc111e49c",
        ),
        (
            (7, EPOCH - timedelta(days=1), "sent", None, None, None, ""),
            "7a04aada3fb291c76fce7fbd43e397789ba156d858dacbaab566459298530677",
        ),
        (
            (2**40, T0, "receipted", "r-ß", "nl-eokm", None, '{"c":"漢"}'),
            "6793cf1c5f859e02835d7fd465ae5e25749fb0a5e40e6d00443ffb01413cdc5e",
        ),
    ],
)
def test_log_entry_hashes_are_the_known_ones(fields: tuple, digest: str) -> None:  # type: ignore[type-arg]
    idx, at, kind, report_id, member, country, detail = fields
    h = compute_hash(
        b"\x01" * 32,
        idx,
        at,
        kind,
        report_id,
        member,
        country,
        detail,  # type: ignore[arg-type]
    )
    assert h.hex() == digest
