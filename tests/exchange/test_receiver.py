"""The receiver (de-eco): verify, store, receipt — idempotent, atomic, per-payload verdicts."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Table, select

from auth.errors import SignatureInvalid
from auth.manifest import Manifest
from exchange.domain import Classification, Outcome, ReportFacts, make_facts
from exchange.errors import EpochAhead, InvalidEnvelope, SequenceConflict, WrongRecipient
from exchange.receiver import Receiver
from exchange.store import hash_index, schema
from exchange.wire.codec import timestamp
from exchange.wire.envelope import (
    KIND_ANNOUNCEMENT,
    Limits,
    Receipt,
    Sealed,
    open_receipt,
    verify_stored_leaf,
)
from ihx.v1 import exchange_pb2 as xpb
from tests.exchange.factories import (
    T0,
    FakeClock,
    announcement_bytes,
    content_hash,
    make_announcement,
    make_report,
    report_wire,
    seal_batch,
    signing_key,
    table_counts,
)


def rows(engine: Engine, table: Table, **where: object) -> list[Any]:
    stmt = select(table)
    for name, value in where.items():
        stmt = stmt.where(table.c[name] == value)
    with engine.connect() as conn:
        return list(conn.execute(stmt).all())


def verified(receipt: xpb.SignedReceipt, sealed: Sealed, manifest: Manifest) -> Receipt:
    """The receipt checked as the sender checks it: de-eco's signature over our batch."""
    return open_receipt(
        receipt,
        manifest=manifest,
        issuer="de-eco",
        sender="nl-eokm",
        sequence=_sequence(sealed),
        root=sealed.root,
        count=len(sealed.payloads),
    )


def _sequence(sealed: Sealed) -> int:
    return xpb.EnvelopeHeader.FromString(sealed.header).sequence


def reports_batch(seeds: Sequence[str], *, sequence: int = 1) -> Sealed:
    """A batch from nl-eokm to de-eco: one report per seed, each at its own DE URL."""
    reports = [make_report(url=f"https://hosting-de.example/{s}", hashes=[s]) for s in seeds]
    return seal_batch([report_wire(r) for r in reports], sequence=sequence)


# -- the happy path -----------------------------------------------------------------------------


def test_valid_envelope_gets_a_signed_receipt(
    receiver: Receiver, engine: Engine, manifest: Manifest, clock: FakeClock
) -> None:
    clock.advance(2)
    sealed = reports_batch(["a", "b", "c"], sequence=5)
    receipt = receiver.receive(sealed.to_proto())
    got = verified(receipt, sealed, manifest)
    assert got.received_at == clock()
    assert [r.outcome for r in got.results] == [Outcome.NEW_CASE] * 3
    assert [r.index for r in got.results] == [0, 1, 2]
    assert all(r.case_id.startswith("c-") for r in got.results)
    stored = {r.id: r for r in rows(engine, schema.reports)}
    assert set(stored) == {r.report_id for r in got.results}
    (inbox,) = rows(engine, schema.inbox)
    assert (inbox.sender, inbox.sequence, inbox.root) == ("nl-eokm", 5, sealed.root)
    assert inbox.receipt_body == receipt.body
    # Each stored report is verifiable on its own: its bytes, proof and the signed header.
    for row in stored.values():
        assert row.role == "received"
        assert row.sender == "nl-eokm"
        assert row.envelope_sequence == 5
        assert row.wire == sealed.payloads[row.leaf_index]
        verify_stored_leaf(row.wire, row.leaf_index, inbox.header, row.proof)
        manifest.verify_member_signature(
            "nl-eokm",
            xpb.EnvelopeHeader.FromString(inbox.header).key_id,
            T0,
            inbox.header,
            inbox.signature,
        )


def test_receipt_does_not_verify_with_another_key(receiver: Receiver, manifest: Manifest) -> None:
    receipt = receiver.receive(reports_batch(["a"]).to_proto())
    signing_key("de-eco").public.verify(receipt.signature, receipt.body)
    with pytest.raises(SignatureInvalid):
        signing_key("nl-eokm").public.verify(receipt.signature, receipt.body)


# -- replays and conflicts ----------------------------------------------------------------------


def test_replay_gets_the_same_receipt_and_stores_nothing(
    receiver: Receiver, engine: Engine, clock: FakeClock
) -> None:
    sealed = reports_batch(["a", "b"])
    first = receiver.receive(sealed.to_proto())
    before = table_counts(engine)
    clock.advance(3600)
    again = receiver.receive(sealed.to_proto())
    assert again.SerializeToString() == first.SerializeToString()
    assert table_counts(engine) == before


def test_same_sequence_other_content_is_a_conflict(receiver: Receiver, engine: Engine) -> None:
    receiver.receive(reports_batch(["a"], sequence=3).to_proto())
    before = table_counts(engine)
    with pytest.raises(SequenceConflict) as info:
        receiver.receive(reports_batch(["b"], sequence=3).to_proto())
    assert info.value.code == "sequence-conflict"
    assert table_counts(engine) == before
    assert not rows(engine, schema.reports, url="https://hosting-de.example/b")


def test_same_reports_in_a_new_batch_are_not_stored_twice(
    receiver: Receiver, engine: Engine, manifest: Manifest
) -> None:
    first_batch = reports_batch(["a", "b"], sequence=1)
    first = verified(receiver.receive(first_batch.to_proto()), first_batch, manifest)
    second_batch = reports_batch(["b", "a"], sequence=2)
    second = verified(receiver.receive(second_batch.to_proto()), second_batch, manifest)
    assert {(r.report_id, r.case_id) for r in second.results} == {
        (r.report_id, r.case_id) for r in first.results
    }
    assert len(rows(engine, schema.reports)) == 2
    assert len(rows(engine, schema.inbox)) == 2


def test_refused_envelope_stores_nothing(receiver: Receiver, engine: Engine) -> None:
    before = table_counts(engine)
    with pytest.raises(WrongRecipient):
        receiver.receive(seal_batch([report_wire(make_report())], recipient="us-ncmec").to_proto())
    tampered = seal_batch([report_wire(make_report())]).to_proto()
    tampered.payloads[0] = tampered.payloads[0] + b"\x00"
    with pytest.raises(InvalidEnvelope):
        receiver.receive(tampered)
    assert table_counts(engine) == before


# -- per-payload verdicts -----------------------------------------------------------------------


def test_bad_payloads_are_rejected_in_the_receipt_and_the_rest_accepted(
    receiver: Receiver, engine: Engine, manifest: Manifest
) -> None:
    good = make_report(url="https://hosting-de.example/good", hashes=["good"])
    also_good = make_report(url="https://hosting-de.example/also", hashes=["also"])
    cases = [
        ("good", report_wire(good)),
        ("origin-mismatch", report_wire(make_report(origin="us-ncmec", hashes=["x1"]))),
        ("not-responsible", report_wire(make_report(decision_member="us-ncmec", hashes=["x2"]))),
        (
            "url-not-canonical",
            report_wire(
                make_report(url="HTTPS://Hosting-DE.example:443/a", canonical=False, hashes=["x3"])
            ),
        ),
        (
            "url-key-mismatch",
            report_wire(make_report(url_key=hashlib.sha256(b"other").digest(), hashes=["x4"])),
        ),
        ("report-id-mismatch", report_wire(make_report(report_id="r-" + "0" * 32, hashes=["x5"]))),
        ("report-malformed", b"\xff\xff\xff"),
        ("text-bidi", report_wire(make_report(facts=_bidi_facts(), hashes=["x6"]))),
        (
            "scheme-not-allowed",
            report_wire(make_report(url="javascript:alert(1)", canonical=False, hashes=["x7"])),
        ),
        ("good", report_wire(also_good)),
    ]
    sealed = seal_batch([payload for _, payload in cases])
    got = verified(receiver.receive(sealed.to_proto()), sealed, manifest)
    for (expected, _), result in zip(cases, got.results, strict=True):
        if expected == "good":
            assert result.outcome is Outcome.NEW_CASE
        else:
            assert result.outcome is Outcome.REJECTED, expected
            assert result.reason.startswith(expected + ":"), (expected, result.reason)
            assert result.case_id == ""
    assert got.results[5].report_id == "r-" + "0" * 32  # named when it could be read
    assert {r.id for r in rows(engine, schema.reports)} == {good.id, also_good.id}
    rejected = [r for r in rows(engine, schema.routing_log) if r.kind == "rejected"]
    assert len(rejected) == 8
    assert all(r.member == "nl-eokm" for r in rejected)


def _bidi_facts() -> ReportFacts:
    # Built around the validating constructor: a peer's bytes can hold anything.
    facts = make_facts()
    return ReportFacts(facts.site_type, facts.commercial, (), "look \u202e here")


# -- announcements ------------------------------------------------------------------------------


def announce(receiver: Receiver, *items: bytes, sequence: int = 1, sender: str = "nl-eokm") -> Any:
    sealed = seal_batch(list(items), kind=KIND_ANNOUNCEMENT, sequence=sequence, sender=sender)
    return receiver.receive(sealed.to_proto()), sealed


def test_announcements_are_recorded(receiver: Receiver, engine: Engine, manifest: Manifest) -> None:
    a = make_announcement("a", member="nl-eokm", first_seen=T0 - timedelta(minutes=3))
    b = make_announcement("b", member="nl-eokm", first_seen=T0 - timedelta(minutes=2))
    receipt, sealed = announce(receiver, announcement_bytes(a), announcement_bytes(b))
    got = verified(receipt, sealed, manifest)
    assert [r.outcome for r in got.results] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    index = {r.hex: r for r in rows(engine, schema.hash_index)}
    assert set(index) == {content_hash("a").hex, content_hash("b").hex}
    assert index[content_hash("a").hex].first_seen == T0 - timedelta(minutes=3)
    assert index[content_hash("a").hex].member == "nl-eokm"


EARLY_CASE = "c-" + "2" * 32


def test_earliest_first_sighting_wins_across_envelopes(make_receiver: Any, engine: Engine) -> None:
    receiver = make_receiver("de-eco")
    late = make_announcement("a", member="nl-eokm", case_id="c-" + "1" * 32, first_seen=T0)
    early = make_announcement(
        "a", member="us-ncmec", case_id=EARLY_CASE, first_seen=T0 - timedelta(hours=2)
    )
    later = make_announcement(
        "a", member="ro-safernet", case_id="c-" + "3" * 32, first_seen=T0 + timedelta(minutes=2)
    )
    announce(receiver, announcement_bytes(late), sender="nl-eokm")
    announce(receiver, announcement_bytes(early), sender="us-ncmec")
    announce(receiver, announcement_bytes(later), sender="ro-safernet")
    assert len(rows(engine, schema.hash_index)) == 3  # one sighting per member
    with engine.connect() as conn:
        first = hash_index.known_content(conn, [content_hash("a")])[content_hash("a")]
    assert (first.member, first.case_id, first.first_seen) == (
        "us-ncmec",
        EARLY_CASE,
        T0 - timedelta(hours=2),
    )


def test_malformed_announcement_is_rejected_alone(
    receiver: Receiver, engine: Engine, manifest: Manifest
) -> None:
    good = make_announcement("a", member="nl-eokm")
    receipt, sealed = announce(receiver, b"\xff\xff", announcement_bytes(good))
    got = verified(receipt, sealed, manifest)
    assert got.results[0].outcome is Outcome.REJECTED
    assert got.results[0].reason.startswith("announcement-malformed:")
    assert got.results[1].outcome is Outcome.ACCEPTED
    assert len(rows(engine, schema.hash_index)) == 1


def test_announcement_for_another_member_is_rejected(
    receiver: Receiver, engine: Engine, manifest: Manifest
) -> None:
    # nl-eokm may announce only its own first sightings, not attribute content to us-ncmec.
    forged = make_announcement("a", member="us-ncmec", first_seen=T0 - timedelta(days=9))
    receipt, sealed = announce(receiver, announcement_bytes(forged), sender="nl-eokm")
    (result,) = verified(receipt, sealed, manifest).results
    assert result.outcome is Outcome.REJECTED
    assert result.reason.startswith("origin-mismatch:")
    assert rows(engine, schema.hash_index) == []


def test_receive_async_refuses_before_queueing(
    receiver: Receiver, engine: Engine, manifest: Manifest
) -> None:
    before = table_counts(engine)
    wrong = seal_batch([report_wire(make_report())], recipient="us-ncmec")
    with pytest.raises(WrongRecipient):
        receiver.receive_async(wrong.to_proto())  # raised at once, not through the future
    assert table_counts(engine) == before
    sealed = reports_batch(["a"])
    receipt = receiver.receive_async(sealed.to_proto()).result(10)
    assert verified(receipt, sealed, manifest).results[0].outcome is Outcome.NEW_CASE


# -- hostile members: a valid signature, insane content ------------------------------------------


def _with_trace(report: Any, *addresses: tuple[str, str, str], country: str = "DE") -> bytes:
    """The report's wire bytes with a trace listing (address, country, special) as given."""
    msg = xpb_report(report)
    msg.trace.host = "hosting-de.example"
    msg.trace.country = country
    msg.trace.traced_at.CopyFrom(timestamp(report.received_at))
    for address, cc, special in addresses:
        msg.trace.addresses.add(address=address, country=cc, special=special)
    return msg.SerializeToString(deterministic=True)


def xpb_report(report: Any) -> Any:
    from ihx.v1 import report_pb2 as pb

    return pb.Report.FromString(report_wire(report))


def _one_result(receiver: Receiver, manifest: Manifest, payload: bytes, **seal: Any) -> Any:
    sealed = seal_batch([payload], **seal)
    (result,) = verified(receiver.receive(sealed.to_proto()), sealed, manifest).results
    return result


def test_a_report_with_an_unknown_field_is_refused_and_nothing_stored(
    receiver: Receiver, engine: Engine, manifest: Manifest
) -> None:
    before = table_counts(engine)
    payload = report_wire(make_report()) + b"\x9a\x06\x04\xff\xd8\xff\xe0"  # field 99: JPEG
    result = _one_result(receiver, manifest, payload)
    assert result.outcome is Outcome.REJECTED
    assert result.reason.startswith("unknown-field:")
    after = table_counts(engine)
    assert after["reports"] == before["reports"] == 0
    assert after["hash_index"] == 0


@pytest.mark.parametrize(
    ("received_at", "reason"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "report-time-range"),
        (datetime(1999, 12, 31, tzinfo=UTC), "report-time-range"),
        (datetime(9999, 12, 31, tzinfo=UTC), "report-time-range"),
        (T0 + timedelta(hours=1), "report-time-range"),  # after the envelope was signed
    ],
)
def test_absurd_report_times_are_refused_and_never_indexed(
    receiver: Receiver, engine: Engine, manifest: Manifest, received_at: datetime, reason: str
) -> None:
    result = _one_result(receiver, manifest, report_wire(make_report(received_at=received_at)))
    assert result.outcome is Outcome.REJECTED
    assert result.reason.startswith(f"{reason}:")
    assert rows(engine, schema.reports) == []
    assert rows(engine, schema.hash_index) == []
    assert rows(engine, schema.announcements) == []  # nothing re-announced under our name


def test_a_report_time_within_the_skew_is_accepted(receiver: Receiver, manifest: Manifest) -> None:
    report = make_report(received_at=T0 + timedelta(minutes=10))
    assert _one_result(receiver, manifest, report_wire(report)).outcome is Outcome.NEW_CASE


@pytest.mark.parametrize(
    "first_seen",
    [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=UTC) - timedelta(microseconds=1),
        T0 + timedelta(days=1),
    ],
)
def test_a_sighting_outside_the_members_window_is_refused(
    receiver: Receiver, engine: Engine, manifest: Manifest, first_seen: datetime
) -> None:
    k = make_announcement("a", member="nl-eokm", first_seen=first_seen)
    sealed = seal_batch([announcement_bytes(k)], kind=KIND_ANNOUNCEMENT)
    (result,) = verified(receiver.receive(sealed.to_proto()), sealed, manifest).results
    assert result.outcome is Outcome.REJECTED
    assert result.reason.startswith("sighting-time-range:")
    assert rows(engine, schema.hash_index) == []


def test_a_sighting_before_the_member_joined_is_refused(
    make_receiver: Any, engine: Engine, network: Any
) -> None:
    joined = network.manifest.member("nl-eokm").joined_at
    receiver = make_receiver("de-eco")
    k = make_announcement("a", member="nl-eokm", first_seen=joined - timedelta(seconds=1))
    sealed = seal_batch([announcement_bytes(k)], kind=KIND_ANNOUNCEMENT)
    (result,) = verified(receiver.receive(sealed.to_proto()), sealed, network.manifest).results
    assert result.reason.startswith("sighting-time-range:")
    assert rows(engine, schema.hash_index) == []


def test_a_member_cannot_displace_anothers_sighting(
    make_receiver: Any, engine: Engine, manifest: Manifest
) -> None:
    receiver = make_receiver("de-eco")
    mine = make_announcement("a", member="us-ncmec", first_seen=T0 - timedelta(minutes=5))
    announce(receiver, announcement_bytes(mine), sender="us-ncmec")
    # nl-eokm re-announces the same hash as "not illegal", as early as it may: only its own row.
    theirs = replace(
        make_announcement("a", member="nl-eokm", first_seen=T0 - timedelta(minutes=4)),
        classification=Classification.NOT_ILLEGAL,
    )
    announce(receiver, announcement_bytes(theirs), sender="nl-eokm")
    by_member = {r.member: r for r in rows(engine, schema.hash_index)}
    assert by_member["us-ncmec"].classification == "baseline"
    with engine.connect() as conn:
        first = hash_index.known_content(conn, [content_hash("a")])[content_hash("a")]
    assert (first.member, first.classification) == ("us-ncmec", Classification.BASELINE)
    # And nl-eokm cannot retract us-ncmec's sighting: a retraction names its signer only.
    forged = replace(mine, retracted=True)
    receipt, sealed = announce(receiver, announcement_bytes(forged), sender="nl-eokm", sequence=2)
    (result,) = verified(receipt, sealed, manifest).results
    assert result.reason.startswith("origin-mismatch:")
    assert "us-ncmec" in {r.member for r in rows(engine, schema.hash_index)}


@pytest.mark.parametrize("sequence", [0, 2**63, 2**64 - 1])
def test_an_envelope_sequence_out_of_range_is_refused(
    receiver: Receiver, engine: Engine, sequence: int
) -> None:
    sealed = seal_batch([report_wire(make_report())], sequence=sequence)
    with pytest.raises(InvalidEnvelope) as refused:
        receiver.receive(sealed.to_proto())
    assert refused.value.code == "header-sequence"
    assert table_counts(engine)["inbox"] == 0


def test_an_envelope_from_a_newer_manifest_epoch_waits_for_it(
    receiver: Receiver, engine: Engine
) -> None:
    sealed = seal_batch([report_wire(make_report())], manifest_epoch=2)
    with pytest.raises(EpochAhead):
        receiver.receive(sealed.to_proto())
    assert table_counts(engine)["reports"] == 0


def test_a_private_address_placed_in_our_country_is_refused(
    receiver: Receiver, engine: Engine, manifest: Manifest
) -> None:
    wire = _with_trace(make_report(), ("10.1.2.3", "DE", ""))
    result = _one_result(receiver, manifest, wire)
    assert result.outcome is Outcome.REJECTED
    assert result.reason.startswith("trace-special-address:")
    assert rows(engine, schema.reports) == []


def test_a_special_address_marked_as_such_is_fine(receiver: Receiver, manifest: Manifest) -> None:
    wire = _with_trace(make_report(), ("10.1.2.3", "", "private-use"), ("5.9.1.1", "DE", ""))
    assert _one_result(receiver, manifest, wire).outcome is Outcome.NEW_CASE


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("host", "h" * 300),
        ("country", "de"),
        ("resolver_error", "bad\x00error"),
        ("flags", ["ok", "not a token!"]),
    ],
)
def test_trace_strings_must_have_their_form(
    receiver: Receiver, manifest: Manifest, field: str, value: Any
) -> None:
    msg = xpb_report(make_report())
    if isinstance(value, list):
        msg.trace.flags.extend(value)
    else:
        setattr(msg.trace, field, value)
    result = _one_result(receiver, manifest, msg.SerializeToString(deterministic=True))
    assert result.outcome is Outcome.REJECTED
    assert result.reason.startswith("trace-invalid:")


def test_our_own_geoip_is_recorded_and_a_disagreement_flagged(
    manifest: Manifest, writer: Any, clock: FakeClock, engine: Engine
) -> None:
    # This node's GeoIP places the sender's address in NL (nl-eokm's country), not DE.
    receiver = Receiver(
        self_member="de-eco",
        key=signing_key("de-eco"),
        manifest=lambda: manifest,
        writer=writer,
        clock=clock,
        limits=Limits(),
        locate=lambda addresses: "NL" if "5.9.1.1" in addresses else "DE",
    )
    disputed = _with_trace(make_report(hashes=["x"]), ("5.9.1.1", "DE", ""))
    agreed = _with_trace(
        make_report(url="https://hosting-de.example/y", hashes=["y"]), ("5.9.2.2", "DE", "")
    )
    sealed = seal_batch([disputed, agreed])
    results = verified(receiver.receive(sealed.to_proto()), sealed, manifest).results
    assert [r.outcome for r in results] == [Outcome.NEW_CASE, Outcome.NEW_CASE]
    stored = {r.id: r for r in rows(engine, schema.reports)}
    first, second = (stored[r.report_id] for r in results)
    assert (first.geo_country, first.geo_agrees, first.reroute_to) == ("NL", False, "nl-eokm")
    assert (second.geo_country, second.geo_agrees, second.reroute_to) == ("DE", True, None)
    flagged = [r for r in rows(engine, schema.routing_log) if r.kind == "geo-disagreement"]
    assert [(r.report_id, r.country) for r in flagged] == [(first.id, "NL")]


@pytest.mark.parametrize("epoch", [0, 2, 2**64 - 1])
def test_a_decision_epoch_beyond_the_envelopes_is_refused(
    receiver: Receiver, engine: Engine, manifest: Manifest, epoch: int
) -> None:
    msg = xpb_report(make_report())
    msg.decision.manifest_epoch = epoch
    result = _one_result(receiver, manifest, msg.SerializeToString(deterministic=True))
    assert result.reason.startswith("decision-epoch:")
    assert rows(engine, schema.reports) == []
