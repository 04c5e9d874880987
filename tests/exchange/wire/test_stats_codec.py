"""Signed statistics: a round trip, and every way a member's answer is refused before a merge.

Each hostile body is built from a real snapshot, changed in one respect and — unless the test is
about the signature — signed again with the member's own key, so the refusal comes from the
check the test names and not from the signature.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest

from exchange.errors import StatisticsRefused
from exchange.stats.model import EDGES_MS, MAX_SERIES, Granularity, Period, merge
from exchange.wire.codec import timestamp
from exchange.wire.stats_codec import MAX_MEMBER_COUNT, body_from_snapshot
from exchange.wire.stats_signed import (
    MAX_BODY_BYTES,
    open_statistics,
    sign_statistics,
    signed_bytes,
)
from ihx.v1 import statistics_pb2 as spb
from tests.exchange.factories import T0, NetworkKit, length_delimited, make_network, signing_key
from tests.exchange.stats.hand_snapshots import PERIOD, hand_snapshot

NL, DE = "nl-eokm", "de-eco"
SKEW = timedelta(seconds=900)
NETWORK: NetworkKit = make_network()


def opened(data: bytes, member: str = NL, period: Period = PERIOD) -> object:
    return open_statistics(
        data, member=member, period=period, manifest=NETWORK.manifest, now=T0, max_skew=SKEW
    )


def answer(member: str = NL) -> spb.SignedStatistics:
    return sign_statistics(signing_key(member), hand_snapshot(member))


def resigned(body: bytes, member: str = NL) -> bytes:
    """``body`` signed by ``member``'s own key, as a hostile but key-holding member would."""
    key = signing_key(member)
    return spb.SignedStatistics(
        body=body, key_id=key.key_id, signature=key.sign(signed_bytes(body))
    ).SerializeToString()


def edited(change: Callable[[spb.StatisticsBody], None], member: str = NL) -> bytes:
    body = body_from_snapshot(hand_snapshot(member))
    change(body)
    return resigned(body.SerializeToString(deterministic=True), member)


def refused(data: bytes, code: str, message: str, **kwargs: object) -> None:
    with pytest.raises(StatisticsRefused) as caught:
        opened(data, **kwargs)  # type: ignore[arg-type]
    assert caught.value.code == code, caught.value.message
    assert message in caught.value.message


# -- the round trip ---------------------------------------------------------------------------


def test_a_signed_snapshot_opens_to_the_same_snapshot() -> None:
    snapshot = hand_snapshot(NL)
    assert opened(answer(NL).SerializeToString()) == snapshot


def test_encoding_is_canonical_whatever_the_order_of_the_series() -> None:
    snapshot = hand_snapshot(NL)
    reordered = type(snapshot)(
        snapshot.members,
        snapshot.period,
        snapshot.generated_at,
        dict(reversed(list(snapshot.counts.items()))),
        dict(reversed(list(snapshot.histograms.items()))),
        dict(reversed(list(snapshot.gauges.items()))),
    )
    key = signing_key(NL)
    assert sign_statistics(key, reordered).body == sign_statistics(key, snapshot).body
    body = spb.StatisticsBody.FromString(sign_statistics(key, snapshot).body)
    assert [(s.figure, s.key) for s in body.counts] == sorted(
        (f.value, k) for f, k in snapshot.counts
    )


def test_an_empty_snapshot_round_trips() -> None:
    period = Period(date(2026, 2, 1), date(2026, 2, 7), Granularity.DAY)
    empty = type(hand_snapshot(NL))((NL,), period, T0, {}, {}, {})
    data = sign_statistics(signing_key(NL), empty).SerializeToString()
    assert opened(data, period=period) == empty


def test_a_merge_has_no_single_signer_and_is_never_signed() -> None:
    merged = merge(PERIOD, [hand_snapshot(NL), hand_snapshot(DE, seed=2)], {}, T0).snapshot
    with pytest.raises(ValueError, match="one member's"):
        body_from_snapshot(merged)


# -- the signature, before anything is parsed -------------------------------------------------


def test_a_tampered_byte_fails_the_signature() -> None:
    signed = answer(NL)
    body = bytearray(signed.body)
    body[-1] ^= 0x01  # the last gauge's value
    signed.body = bytes(body)
    refused(signed.SerializeToString(), "stats-signature", "does not verify")


def test_garbage_in_the_body_is_refused_by_the_signature_before_it_is_parsed() -> None:
    signed = answer(NL)
    signed.body = b"\xff\xff\xff not protobuf"
    refused(signed.SerializeToString(), "stats-signature", f"signature of {NL} refused")


def test_another_members_signature_is_refused() -> None:
    refused(answer(DE).SerializeToString(), "stats-signature", f'member "{NL}" has no key')


def test_another_key_under_the_members_key_id_is_refused() -> None:
    forged = answer(NL)
    forged.signature = signing_key(DE).sign(signed_bytes(forged.body))
    refused(forged.SerializeToString(), "stats-signature", "does not verify")


def test_a_signature_of_the_wrong_length_is_refused() -> None:
    signed = answer(NL)
    signed.signature = signed.signature[:10]
    refused(signed.SerializeToString(), "stats-signature", "expected 64 bytes, got 10")


def test_a_huge_key_id_is_refused_before_it_is_quoted() -> None:
    signed = answer(NL)
    signed.key_id = "k" * 100_000
    refused(signed.SerializeToString(), "stats-signature", "key_id of 100000 characters")


def test_a_member_not_in_the_manifest_is_refused() -> None:
    refused(answer(NL).SerializeToString(), "stats-signature", "unknown member", member="xx-new")


# -- the envelope of the answer ---------------------------------------------------------------


def test_bytes_that_are_not_an_answer_are_refused() -> None:
    refused(b"\x0a\xff", "stats-malformed", "not a SignedStatistics")


def test_an_unknown_field_beside_the_signature_is_refused() -> None:
    data = answer(NL).SerializeToString() + length_delimited(99, b"\x89PNG")
    refused(data, "stats-unknown-field", "field #99")


def test_an_oversized_answer_is_refused_unread() -> None:
    refused(b"\x00" * (MAX_BODY_BYTES + 2048), "stats-size", "at most")


# -- the body: signed by the right key, hostile inside ----------------------------------------


def test_an_unknown_field_in_the_signed_body_is_refused() -> None:
    body = body_from_snapshot(hand_snapshot(NL)).SerializeToString(deterministic=True)
    refused(resigned(body + length_delimited(42, b"x" * 100)), "stats-unknown-field", "#42")


def test_a_non_canonical_body_is_refused() -> None:
    body = body_from_snapshot(hand_snapshot(NL)).SerializeToString(deterministic=True)
    duplicate_version = b"\x08\x01"  # field 1 again, same value: parses, but not canonical
    refused(resigned(body + duplicate_version), "stats-not-canonical", "canonical")


def test_a_body_that_is_not_a_statistics_body_is_refused() -> None:
    refused(resigned(b"\xff\xff\xff"), "stats-malformed", "not a StatisticsBody")


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda b: setattr(b, "version", 2), "stats-version", "version 2"),
        (lambda b: setattr(b, "member", DE), "stats-member", f"counts member '{DE}', we asked"),
        (lambda b: setattr(b, "first_day", "2026-01-02"), "stats-period", "we asked '2026-01-01"),
        (lambda b: setattr(b, "last_day", "2026-04-30"), "stats-period", "2026-04-30"),
        (lambda b: setattr(b, "granularity", "week"), "stats-period", "month'"),
        (lambda b: b.edges_ms.append(400 * 86_400_000), "stats-edges", "never re-bucketed"),
        (lambda b: b.edges_ms.__setitem__(0, 11), "stats-edges", "edges differ"),
        (lambda b: b.ClearField("generated_at"), "stats-time", "generated_at is missing"),
        (
            lambda b: b.generated_at.CopyFrom(timestamp(T0 + timedelta(seconds=901))),
            "stats-time",
            "more than 900 s from our clock",
        ),
        (
            lambda b: b.generated_at.CopyFrom(timestamp(T0 - timedelta(hours=2))),
            "stats-time",
            "more than 900 s",
        ),
        (lambda b: setattr(b.generated_at, "nanos", -1), "stats-time", "representable"),
    ],
)
def test_a_header_that_is_not_what_was_asked_is_refused(
    change: Callable[[spb.StatisticsBody], None], code: str, message: str
) -> None:
    refused(edited(change), code, message)


def _add_count(body: spb.StatisticsBody, figure: str, key: str, counts: list[int]) -> None:
    body.counts.append(spb.CountSeries(figure=figure, key=key, counts=counts))


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (
            lambda b: _add_count(b, "urls", "NL", [1, 2, 3]),
            "stats-figure",
            "'urls' is not a figure",
        ),
        (
            lambda b: _add_count(b, "to_removal", "orphan", [1, 2, 3]),
            "stats-figure",
            "to_removal is a duration, not a count",
        ),
        (
            lambda b: _add_count(b, "backlog", "de-eco", [1, 2, 3]),
            "stats-figure",
            "backlog is a gauge, not a count",
        ),
        (
            lambda b: b.durations.append(spb.DurationSeries(figure="intake", key="NL")),
            "stats-figure",
            "intake is a count, not a duration",
        ),
        (
            lambda b: b.gauges.append(spb.Gauge(figure="delivery", key="", value=1)),
            "stats-figure",
            "delivery is a duration, not a gauge",
        ),
        (lambda b: _add_count(b, "intake", "DE", [1, 2, 3, 4]), "stats-width", "4 counts, the"),
        (lambda b: _add_count(b, "intake", "DE", []), "stats-width", "0 counts, the buckets"),
        (
            lambda b: b.durations[0].counts.append(0),
            "stats-width",
            f"{len(EDGES_MS) + 2} counts, the duration buckets are {len(EDGES_MS) + 1}",
        ),
        (lambda b: _add_count(b, "intake", "NL", [1, 1, 1]), "stats-duplicate", "'NL' appears"),
        (
            lambda b: b.gauges.append(spb.Gauge(figure="backlog", key="de-eco", value=1)),
            "stats-duplicate",
            "backlog 'de-eco' appears twice",
        ),
        (lambda b: _add_count(b, "intake", "x" * 129, [0, 0, 0]), "stats-key", "got 129"),
        (lambda b: _add_count(b, "intake", "N\nL", [0, 0, 0]), "stats-key", "printable"),
        (lambda b: _add_count(b, "intake", "NL\u202e", [0, 0, 0]), "stats-key", "printable"),
        (
            lambda b: _add_count(b, "intake", "DE", [0, MAX_MEMBER_COUNT + 1, 0]),
            "stats-count",
            f"counts[1]: {MAX_MEMBER_COUNT + 1} is above",
        ),
        (lambda b: _add_count(b, "intake", "DE", [2**64 - 1, 0, 0]), "stats-count", "is above"),
        (
            lambda b: b.durations[1].counts.__setitem__(3, 2**63),
            "stats-count",
            "durations[1].counts[3]",
        ),
        (lambda b: setattr(b.gauges[0], "value", 2**60), "stats-count", "gauges[0].value"),
    ],
)
def test_a_series_that_breaks_a_rule_is_refused(
    change: Callable[[spb.StatisticsBody], None], code: str, message: str
) -> None:
    refused(edited(change), code, message)


def test_more_series_than_allowed_are_refused_before_any_is_read() -> None:
    def flood(body: spb.StatisticsBody) -> None:
        body.gauges.extend(spb.Gauge(figure="open", key=str(i), value=0) for i in range(MAX_SERIES))

    refused(edited(flood), "stats-series", f"at most {MAX_SERIES}")


def test_the_largest_count_allowed_is_kept_exactly() -> None:
    def big(body: spb.StatisticsBody) -> None:
        body.counts[0].counts[0] = MAX_MEMBER_COUNT

    snapshot = opened(edited(big))
    assert max(max(row) for row in snapshot.counts.values()) == MAX_MEMBER_COUNT  # type: ignore[attr-defined]
