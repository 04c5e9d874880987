"""``wire.documents``: protobuf messages in the words the CLI takes as input."""

from __future__ import annotations

from datetime import UTC, datetime

from exchange.domain import AgeGroup, Classification, MediaType, SiteType
from exchange.wire.documents import enum_word, message_document
from ihx.v1 import report_pb2 as pb


def test_enum_values_are_the_domain_words() -> None:
    for domain, proto in (
        (Classification, pb.Classification),
        (MediaType, pb.MediaType),
        (AgeGroup, pb.AgeGroup),
        (SiteType, pb.SiteType),
    ):
        words = {enum_word(proto.DESCRIPTOR, n) for n in proto.values() if n}
        assert words == {m.value for m in domain}, domain
    assert enum_word(pb.DecisionReason.DESCRIPTOR, pb.DECISION_REASON_ORPHAN_RULE) == "orphan-rule"
    assert enum_word(pb.Classification.DESCRIPTOR, 99) == "99"  # a newer peer's value


def test_a_report_reads_as_it_was_typed() -> None:
    report = pb.Report(
        id="r-1",
        url_key=b"\x00\xff",
        site_type=pb.SITE_TYPE_IMAGE_HOST,
        items=[
            pb.Item(
                hashes=[pb.ContentHash(algorithm=pb.HASH_ALGORITHM_MD5, hex="0" * 32)],
                classification=pb.CLASSIFICATION_NOT_ILLEGAL,
            )
        ],
        decision=pb.Decision(member="de-eco", manifest_epoch=2**40),
    )
    report.received_at.FromDatetime(datetime(2025, 1, 31, 12, tzinfo=UTC))
    assert message_document(report) == {
        "id": "r-1",
        "url_key": "AP8=",
        "received_at": "2025-01-31T12:00:00Z",
        "site_type": "image_host",
        "items": [{"hashes": ["md5:" + "0" * 32], "classification": "not_illegal"}],
        "decision": {"member": "de-eco", "manifest_epoch": 2**40},  # a number, not a string
    }
