"""The domain model: hash parsing, items, facts, report ids, item checks."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from exchange.domain import (
    MAX_HASHES_PER_ITEM,
    MAX_ITEMS,
    MAX_NOTES_CHARS,
    MAX_PAYMENT_METHOD_CHARS,
    MAX_PAYMENT_METHODS,
    AgeGroup,
    Classification,
    ContentHash,
    HashAlgorithm,
    MediaType,
    SiteType,
    case_id_for,
    check_items,
    is_case_id,
    make_facts,
    make_item,
    parse_hash,
    parse_hash_text,
    report_id_for,
)
from exchange.errors import InvalidReport
from tests.exchange.factories import content_hash, make_test_item

URL_KEY = hashlib.sha256(b"https://hosting-nl.example/a.jpg").digest()
OTHER_URL_KEY = hashlib.sha256(b"https://hosting-nl.example/b.jpg").digest()

# -- hashes -------------------------------------------------------------------------------------

LENGTHS = {"sha256": 64, "sha1": 40, "md5": 32, "pdq": 64}


@pytest.mark.parametrize("algorithm", list(HashAlgorithm))
def test_every_algorithm_parses_at_its_length(algorithm: HashAlgorithm) -> None:
    value = "ab" * (LENGTHS[algorithm.value] // 2)
    h = parse_hash(algorithm.value, value)
    assert h == ContentHash(algorithm, value)
    assert algorithm.hex_length == LENGTHS[algorithm.value]
    assert str(h) == f"{algorithm.value}:{value}"


@pytest.mark.parametrize("algorithm", list(HashAlgorithm))
@pytest.mark.parametrize("delta", [-1, 1, -2])
def test_wrong_length_is_refused(algorithm: HashAlgorithm, delta: int) -> None:
    value = "a" * (algorithm.hex_length + delta)
    with pytest.raises(InvalidReport) as info:
        parse_hash(algorithm.value, value, where="items[0].hashes[1]")
    assert info.value.code == "hash-length"
    assert "items[0].hashes[1]" in info.value.message
    assert str(algorithm.hex_length) in info.value.message


def test_a_sha1_length_value_is_not_a_sha256() -> None:
    with pytest.raises(InvalidReport) as info:
        parse_hash("sha256", "a" * 40)
    assert info.value.code == "hash-length"


@pytest.mark.parametrize("bad", ["g", "-", " ", "é", "0x"])
def test_non_hex_is_refused(bad: str) -> None:
    value = "a" * 32 + bad + "a" * (32 - len(bad))
    with pytest.raises(InvalidReport) as info:
        parse_hash("sha256", value, where="hash")
    assert info.value.code == "hash-not-hex"


def test_upper_case_and_surrounding_space_are_normalised() -> None:
    h = parse_hash(" SHA256 ", "  " + "AB" * 32 + "\n")
    assert h == ContentHash(HashAlgorithm.SHA256, "ab" * 32)


@pytest.mark.parametrize("algorithm", ["sha512", "", "crc32", "pdq2"])
def test_unknown_algorithm_is_refused(algorithm: str) -> None:
    with pytest.raises(InvalidReport) as info:
        parse_hash(algorithm, "a" * 64, where="items[2].hashes[0]")
    assert info.value.code == "hash-algorithm"
    assert "items[2].hashes[0]" in info.value.message


def test_hash_text_form() -> None:
    assert parse_hash_text("md5:" + "F" * 32) == ContentHash(HashAlgorithm.MD5, "f" * 32)
    with pytest.raises(InvalidReport) as info:
        parse_hash_text("f" * 32, where="line 3")
    assert info.value.code == "hash-format"
    assert "line 3" in info.value.message


# -- items --------------------------------------------------------------------------------------


def test_item_hashes_are_deduplicated_and_sorted() -> None:
    sha = content_hash("x")
    md5 = content_hash("x", HashAlgorithm.MD5)
    pdq = content_hash("x", HashAlgorithm.PDQ)
    a = make_item([sha, md5, pdq, sha], Classification.BASELINE)
    b = make_item([pdq, sha, md5], Classification.BASELINE)
    assert a == b
    assert a.hashes == tuple(sorted({sha, md5, pdq}))
    assert len(a.hashes) == 3


def test_item_defaults() -> None:
    item = make_item([content_hash("x")], Classification.NATIONAL)
    assert item.media_type is MediaType.IMAGE
    assert item.age_group is AgeGroup.UNKNOWN


def test_item_needs_a_hash() -> None:
    with pytest.raises(InvalidReport) as info:
        make_item([], Classification.BASELINE, where="items[4]")
    assert info.value.code == "item-no-hash"
    assert "items[4]" in info.value.message


def test_two_hashes_of_one_algorithm_conflict() -> None:
    with pytest.raises(InvalidReport) as info:
        make_item([content_hash("a"), content_hash("b")], Classification.BASELINE)
    assert info.value.code == "item-conflicting-hashes"


def test_too_many_hashes_per_item() -> None:
    # Distinct values are needed to pass de-duplication; the limit is checked first.
    many = [ContentHash(HashAlgorithm.SHA256, f"{i:064x}") for i in range(MAX_HASHES_PER_ITEM + 1)]
    with pytest.raises(InvalidReport) as info:
        make_item(many, Classification.BASELINE)
    assert info.value.code == "item-too-many-hashes"


# -- facts --------------------------------------------------------------------------------------


def test_facts_keep_notes_up_to_the_cap() -> None:
    facts = make_facts(SiteType.FORUM, True, [" card ", "crypto"], "x" * MAX_NOTES_CHARS)
    assert facts.site_type is SiteType.FORUM
    assert facts.commercial is True
    assert facts.payment_methods == ("card", "crypto")
    assert len(facts.notes) == MAX_NOTES_CHARS


def test_notes_over_the_cap_are_refused() -> None:
    with pytest.raises(InvalidReport) as info:
        make_facts(notes="x" * (MAX_NOTES_CHARS + 1))
    assert info.value.code == "notes-too-long"
    assert "notes" in info.value.message


def test_notes_may_hold_newlines_and_tabs() -> None:
    assert make_facts(notes="line 1\n\tline 2").notes == "line 1\n\tline 2"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("evil \u202e gpj.exe", "text-bidi"),
        ("isolate \u2066x\u2069", "text-bidi"),
        ("lone \ud800 surrogate", "text-surrogate"),
        ("low \udfff surrogate", "text-surrogate"),
        ("bell \x07", "text-control"),
        ("nul \x00", "text-control"),
        ("escape \x1b[31m", "text-control"),
        ("delete \x7f", "text-control"),
        ("carriage \r return", "text-control"),
    ],
)
def test_dangerous_characters_in_notes_are_refused(text: str, code: str) -> None:
    with pytest.raises(InvalidReport) as info:
        make_facts(notes=text)
    assert info.value.code == code
    assert info.value.message.startswith("notes:")


def test_dangerous_characters_in_payment_methods_are_refused() -> None:
    with pytest.raises(InvalidReport) as info:
        make_facts(payment_methods=["ok", "pay\u202epal"])
    assert info.value.code == "text-bidi"
    assert "payment_methods[1]" in info.value.message


@pytest.mark.parametrize("method", ["", "   ", "x" * (MAX_PAYMENT_METHOD_CHARS + 1)])
def test_empty_or_long_payment_method_is_refused(method: str) -> None:
    with pytest.raises(InvalidReport) as info:
        make_facts(payment_methods=[method])
    assert info.value.code == "payment-method-invalid"


def test_too_many_payment_methods() -> None:
    with pytest.raises(InvalidReport) as info:
        make_facts(payment_methods=[f"m{i}" for i in range(MAX_PAYMENT_METHODS + 1)])
    assert info.value.code == "payment-methods-too-many"


# -- check_items --------------------------------------------------------------------------------


def test_check_items_accepts_distinct_items() -> None:
    items = [make_test_item("a"), make_test_item("b")]
    assert check_items(items) == tuple(items)


def test_check_items_needs_one_item() -> None:
    with pytest.raises(InvalidReport) as info:
        check_items([])
    assert info.value.code == "report-no-items"


def test_check_items_limit() -> None:
    assert len(check_items([make_test_item(f"h{i}") for i in range(MAX_ITEMS)])) == MAX_ITEMS
    with pytest.raises(InvalidReport) as info:
        check_items([make_test_item(f"h{i}") for i in range(MAX_ITEMS + 1)])
    assert info.value.code == "report-too-many-items"


def test_one_content_in_two_items_is_refused() -> None:
    shared = content_hash("shared")
    items = [
        make_test_item("a"),
        make_test_item(shared, content_hash("b", HashAlgorithm.MD5)),
        make_test_item(shared, classification=Classification.DOUBTFUL),
    ]
    with pytest.raises(InvalidReport) as info:
        check_items(items)
    assert info.value.code == "report-duplicate-item"
    assert "items[2]" in info.value.message
    assert "items[1]" in info.value.message


# -- report ids ---------------------------------------------------------------------------------


def test_report_id_shape_and_determinism() -> None:
    items = [make_test_item("a"), make_test_item("b")]
    rid = report_id_for("nl-eokm", URL_KEY, items)
    assert rid == report_id_for("nl-eokm", URL_KEY, list(items))
    assert rid.startswith("r-")
    assert len(rid) == 34


# -- case ids -----------------------------------------------------------------------------------


def test_a_case_id_is_its_opening_millisecond_then_its_reports_digits() -> None:
    rid = report_id_for("nl-eokm", URL_KEY, [make_test_item("a")])
    at = datetime(2026, 12, 7, 3, 0, 0, 123_456, tzinfo=UTC)
    case_id = case_id_for(rid, at)
    assert is_case_id(case_id)
    ms = int(case_id[2:14], 16)
    assert datetime.fromtimestamp(ms / 1000, UTC) == at.replace(microsecond=123_000)
    assert case_id[14:] == rid[2:22]
    assert case_id_for(rid, at) == case_id
    assert case_id_for(rid, at + timedelta(microseconds=500)) == case_id


def test_case_ids_sort_by_when_they_were_opened_whatever_their_reports() -> None:
    """The point of the time first: a new case's key is the largest yet, in every index."""
    start = datetime(2026, 12, 7, tzinfo=UTC)
    rids = [report_id_for("nl-eokm", URL_KEY, [make_test_item(str(i))]) for i in range(50)]
    opened = [case_id_for(rid, start + timedelta(milliseconds=i)) for i, rid in enumerate(rids)]
    assert sorted(opened) == opened
    assert sorted(rids) != rids  # the reports' own ids are in no such order
    assert len({case_id_for(rid, start) for rid in rids}) == len(rids)


def test_report_id_ignores_item_and_hash_order() -> None:
    sha_a, md5_a = content_hash("a"), content_hash("a", HashAlgorithm.MD5)
    one = [make_item([sha_a, md5_a], Classification.BASELINE), make_test_item("b")]
    two = [make_test_item("b"), make_item([md5_a, sha_a], Classification.BASELINE)]
    assert report_id_for("nl-eokm", URL_KEY, one) == report_id_for("nl-eokm", URL_KEY, two)


def test_report_id_ignores_the_assessment() -> None:
    baseline = [make_test_item("a", classification=Classification.BASELINE)]
    doubtful = [
        make_test_item(
            "a",
            classification=Classification.DOUBTFUL,
            media_type=MediaType.VIDEO,
            age_group=AgeGroup.INFANT,
        )
    ]
    assert report_id_for("nl-eokm", URL_KEY, baseline) == report_id_for(
        "nl-eokm", URL_KEY, doubtful
    )


def test_report_id_depends_on_origin_url_and_hashes() -> None:
    items = [make_test_item("a")]
    base = report_id_for("nl-eokm", URL_KEY, items)
    assert report_id_for("de-eco", URL_KEY, items) != base
    assert report_id_for("nl-eokm", OTHER_URL_KEY, items) != base
    assert report_id_for("nl-eokm", URL_KEY, [make_test_item("b")]) != base
    assert report_id_for("nl-eokm", URL_KEY, [make_test_item("a"), make_test_item("b")]) != base
    # Same hex, other algorithm: a different content hash.
    sha = content_hash("a")
    pdq = ContentHash(HashAlgorithm.PDQ, sha.hex)
    assert report_id_for("nl-eokm", URL_KEY, [make_item([pdq], Classification.BASELINE)]) != base


def test_a_foreign_errors_code_attribute_is_not_taken_for_ours() -> None:
    from exchange.errors import InvalidReport, error_code

    class DriverError(Exception):
        code = "9h9h"  # SQLAlchemy's link code: not one of ours

    assert error_code(DriverError("x")) == "internal"
    assert error_code(InvalidReport("x", code="notes-too-long")) == "notes-too-long"


def test_every_log_kind_fits_its_column() -> None:
    """PostgreSQL refuses a longer kind (SQLite would store it): the write would fail there."""
    from exchange.domain import LogKind
    from exchange.store.schema import routing_log

    width = routing_log.c.kind.type.length
    assert [k.value for k in LogKind if len(k.value) > width] == []
