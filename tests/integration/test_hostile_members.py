"""A hostile member attacks from the outside: valid signatures, insane content.

nl-eokm's real key is the attacker's: every envelope below is validly signed by a current
member, built by hand and sent over real gRPC to de-eco, which serves the law-enforcement
partner de-bka. Each test shows the refusal (status and reason, or the rejection inside the
signed receipt), that nothing was stored or indexed, that the partner cannot pull it, and that
de-eco keeps serving: a valid report from the same attacker goes through afterwards.

Classes (issue "Hostile members and overload"): media in unknown protobuf fields; members
rewriting each other's hash-index sightings; absurd times; envelope headers out of range
(sequence 0 / ≥ 2^63, an epoch from the future); a trace that puts a private address in the
receiver's country.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from auth.manifest import bump_epoch
from exchange.client.stubs import PartnerClient
from exchange.domain import Classification, KnownContent
from exchange.wire.codec import announcement_to_proto, timestamp
from exchange.wire.envelope import KIND_ANNOUNCEMENT, KIND_REPORT, seal
from exchange.wire.known_fields import find_unknown
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import report_pb2 as pb
from tests.exchange.factories import content_hash, length_delimited, make_submission, url_in
from tests.integration.conftest import MakeCluster
from tests.integration.partner_cluster import DE_BKA, partner_cluster, pull_token, stop_senders
from tests.integration.support import DE, NL, US, Cluster, wait_until

pytestmark = pytest.mark.timeout(90)

# ~45 kB shaped like a JPEG: what the red team smuggled in field 99 of a signed report.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 176


class Attacker:
    """nl-eokm's key in hostile hands, talking to de-eco's Exchange service directly."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.key = cluster.fed.keys[NL]
        self.channel = grpc.insecure_channel(cluster.address(DE))
        self.exchange = xgrpc.ExchangeStub(self.channel)
        self.sequences = itertools.count(9_000_000)
        self.serial = itertools.count()

    def close(self) -> None:
        self.channel.close()

    def report(self, **changes: Any) -> pb.Report:
        """A genuine DE-hosted report prepared by nl-eokm's own intake, as a message to edit."""
        i = next(self.serial)
        sub = make_submission(url_in("DE", f"/hostile/{i}.jpg"), hashes=[f"hostile-{i}"])
        msg = pb.Report.FromString(self.cluster.node(NL).intake.prepare(sub).wire)
        for name, value in changes.items():
            setattr(msg, name, value)
        return msg

    def epoch(self) -> int:
        return int(self.exchange.GetNodeInfo(xpb.NodeInfoRequest(), timeout=5).manifest_epoch)

    def deliver(
        self,
        payloads: list[bytes],
        *,
        kind: int = KIND_REPORT,
        sequence: int | None = None,
        epoch: int | None = None,
    ) -> xpb.ReceiptBody:
        sealed = seal(
            self.key,
            sender=NL,
            recipient=DE,
            sequence=sequence if sequence is not None else next(self.sequences),
            kind=kind,
            payloads=payloads,
            signed_at=datetime.now(UTC),
            manifest_epoch=epoch if epoch is not None else self.epoch(),
        )
        receipt = self.exchange.Deliver(sealed.to_proto(), timeout=20)
        return xpb.ReceiptBody.FromString(receipt.body)

    def refused(self, payload: bytes, kind: int = KIND_REPORT) -> str:
        """Deliver one payload; it must come back rejected in the signed receipt: the reason."""
        (outcome,) = self.deliver([payload], kind=kind).outcomes
        assert outcome.outcome == xpb.OUTCOME_REJECTED, outcome
        return outcome.reason

    def accepted_again(self) -> None:
        """The node keeps serving: a genuine report from the same member is a new case."""
        (outcome,) = self.deliver([self.report().SerializeToString()]).outcomes
        assert outcome.outcome == xpb.OUTCOME_NEW_CASE, outcome


@pytest.fixture
def cluster(make_cluster: MakeCluster) -> Iterator[Cluster]:
    cluster = partner_cluster(make_cluster)
    yield cluster
    stop_senders(cluster)


@pytest.fixture
def attacker(cluster: Cluster) -> Iterator[Attacker]:
    a = Attacker(cluster)
    yield a
    a.close()


def _stored(cluster: Cluster) -> dict[str, int]:
    return {t: cluster.count(DE, t) for t in ("reports", "cases", "hash_index", "announcements")}


def _pulled_bytes(cluster: Cluster) -> list[bytes]:
    with PartnerClient(cluster.address(DE), token=pull_token(cluster, DE, DE_BKA)) as client:
        return [c.SerializeToString() for c in client.pull("", 1000)]


# -- 1. only known bytes --------------------------------------------------------------------------


def test_media_in_an_unknown_field_is_refused_stored_nowhere_and_never_served(
    cluster: Cluster, attacker: Attacker
) -> None:
    before = _stored(cluster)
    top = attacker.report().SerializeToString() + length_delimited(99, JPEG)
    assert attacker.refused(top).startswith("unknown-field: report carries field #99")

    in_item = attacker.report()
    item = in_item.items[0].SerializeToString() + length_delimited(15, JPEG)
    in_item.items[0].Clear()
    in_item.items[0].MergeFromString(item)
    assert attacker.refused(in_item.SerializeToString()).startswith(
        "unknown-field: report carries field items[0].#15"
    )

    in_trace = attacker.report()
    address = in_trace.trace.addresses[0].SerializeToString() + length_delimited(9, JPEG)
    in_trace.trace.addresses[0].Clear()
    in_trace.trace.addresses[0].MergeFromString(address)
    assert "trace.addresses[0].#9" in attacker.refused(in_trace.SerializeToString())

    assert _stored(cluster) == before
    # Not one byte of the blob anywhere in de-eco's store, nor in what its partner can pull.
    rows = cluster.rows(DE, "SELECT wire FROM reports")
    assert not any(JPEG[:64] in bytes(r.wire) for r in rows)
    assert not any(JPEG[:64] in case for case in _pulled_bytes(cluster))
    attacker.accepted_again()


def test_unknown_fields_nested_thousands_deep_are_refused(
    cluster: Cluster, attacker: Attacker
) -> None:
    before = _stored(cluster)
    nested = b""
    for _ in range(3000):
        nested = length_delimited(77, nested)
    reason = attacker.refused(attacker.report().SerializeToString() + nested)
    assert reason.startswith("unknown-field: report carries field #77"), reason
    assert _stored(cluster) == before
    attacker.accepted_again()


def test_an_unknown_field_in_the_outer_envelope_or_a_request_is_invalid_argument(
    cluster: Cluster, attacker: Attacker
) -> None:
    sealed = seal(
        attacker.key,
        sender=NL,
        recipient=DE,
        sequence=next(attacker.sequences),
        kind=KIND_REPORT,
        payloads=[attacker.report().SerializeToString()],
        signed_at=datetime.now(UTC),
        manifest_epoch=attacker.epoch(),
    )
    raw = sealed.to_proto().SerializeToString() + length_delimited(40, JPEG)
    deliver = attacker.channel.unary_unary(
        "/ihx.v1.Exchange/Deliver", request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.RpcError) as refused:
        deliver(raw, timeout=10)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("unknown-field:")

    request = ipb.SubmitReportRequest.FromString(
        _submit_bytes(url_in("DE", "/intake-blob.jpg"), "intake-blob")
    )
    raw_request = request.SerializeToString() + length_delimited(50, JPEG)
    submit = grpc.insecure_channel(cluster.address(NL)).unary_unary(
        "/ihx.v1.Intake/SubmitReport", request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.RpcError) as refused_intake:
        submit(
            raw_request, timeout=10, metadata=(("authorization", f"Bearer {cluster.token(NL)}"),)
        )
    assert refused_intake.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert refused_intake.value.details().startswith("unknown-field:")
    assert cluster.count(NL, "reports", "url LIKE :u", u="%intake-blob%") == 0
    attacker.accepted_again()


def _submit_bytes(url: str, seed: str) -> bytes:
    from exchange.wire.codec import submission_to_proto

    return submission_to_proto(make_submission(url, hashes=[seed])).SerializeToString()


# -- 3. each member speaks only for itself in the hash index -----------------------------------


def test_a_member_cannot_rewrite_anothers_first_sighting(
    cluster: Cluster, attacker: Attacker
) -> None:
    # us-ncmec reports DE-hosted content first: de-eco opens the case and holds the sighting.
    seed = "us-first"
    submitted = cluster.submit_one(
        US, make_submission(url_in("DE", "/us-first.jpg"), hashes=[seed])
    )
    h = content_hash(seed)
    wait_until(
        lambda: cluster.count(DE, "hash_index", "hex = :h", h=h.hex) >= 1,
        20,
        what="de-eco indexing us-ncmec's report",
    )
    case_id = cluster.scalar(DE, "SELECT case_id FROM reports WHERE id = :r", r=submitted.report_id)
    wait_until(
        lambda: cluster.count(NL, "hash_index", "hex = :h", h=h.hex) >= 1,
        20,
        what="the announcement reaching nl-eokm",
    )

    def announce(first_seen: datetime, member: str = NL) -> str:
        k = KnownContent(
            h, member, "c-" + "e" * 32, Classification.NOT_ILLEGAL, first_seen, "r-" + "e" * 32
        )
        payload = announcement_to_proto(k).SerializeToString(deterministic=True)
        (outcome,) = attacker.deliver([payload], kind=KIND_ANNOUNCEMENT).outcomes
        return outcome.reason or xpb.Outcome.Name(outcome.outcome)

    # The red team's exact move: 1970, not illegal. Refused by the time window.
    assert announce(datetime(1970, 1, 1, tzinfo=UTC)).startswith("sighting-time-range:")
    # Speaking for us-ncmec: refused.
    assert announce(datetime.now(UTC), member=US).startswith("origin-mismatch:")
    # As early as nl-eokm may truthfully claim: recorded as nl-eokm's own sighting only.
    joined = cluster.node(DE).manifests.current().member(NL).joined_at
    assert joined is not None
    assert announce(joined) == "OUTCOME_ACCEPTED"

    sightings = {
        r.member: r
        for r in cluster.rows(
            DE, "SELECT member, case_id, classification FROM hash_index WHERE hex = :h", h=h.hex
        )
    }
    assert set(sightings) == {DE, NL}
    assert (sightings[DE].case_id, sightings[DE].classification) == (case_id, "baseline")
    assert sightings[NL].classification == "not_illegal"
    # What analysts are told is derived from everyone's own rows: nl-eokm's claim is within its
    # window and earliest, so it is shown — as nl-eokm's, with nl-eokm's case — and de-eco's
    # own sighting stays as it was, for the day nl-eokm retracts or the coordinator looks.
    answer = cluster.submit_one(
        DE, make_submission(url_in("DE", "/second-look.jpg"), hashes=[seed])
    )
    (item,) = answer.items
    assert item.known_content
    assert (item.first_seen_member, item.first_seen_case) == (NL, "c-" + "e" * 32)
    after = cluster.rows(
        DE,
        "SELECT case_id, classification FROM hash_index WHERE hex = :h AND member = :m",
        h=h.hex,
        m=DE,
    )
    assert [(r.case_id, r.classification) for r in after] == [(case_id, "baseline")]
    attacker.accepted_again()


def test_case_ids_in_announcements_must_have_their_form(attacker: Attacker) -> None:
    msg = xpb.HashAnnouncement(
        hash=pb.ContentHash(algorithm=pb.HASH_ALGORITHM_SHA256, hex=content_hash("form").hex),
        case_id="c-'; DROP TABLE cases; --",
        member=NL,
        classification=pb.CLASSIFICATION_BASELINE,
        first_seen=timestamp(datetime.now(UTC)),
        report_id="r-" + "0" * 32,
    )
    reason = attacker.refused(msg.SerializeToString(), kind=KIND_ANNOUNCEMENT)
    assert reason.startswith("case-id:")
    attacker.accepted_again()


# -- 4. absurd times are refused and never spread ---------------------------------------------


@pytest.mark.parametrize("year", [1, 1970, 9999])
def test_a_report_from_an_absurd_year_is_refused_and_never_announced(
    cluster: Cluster, attacker: Attacker, year: int
) -> None:
    before = _stored(cluster)
    msg = attacker.report()
    msg.received_at.CopyFrom(timestamp(datetime(year, 6, 1, tzinfo=UTC)))
    assert attacker.refused(msg.SerializeToString()).startswith("report-time-range:")
    assert _stored(cluster) == before  # no case, no sighting, nothing announced in our name
    attacker.accepted_again()


def test_a_trace_from_the_future_is_refused(cluster: Cluster, attacker: Attacker) -> None:
    msg = attacker.report()
    msg.trace.traced_at.CopyFrom(timestamp(datetime.now(UTC) + timedelta(days=30)))
    assert attacker.refused(msg.SerializeToString()).startswith("trace-time-range:")
    attacker.accepted_again()


# -- 6. envelope headers -------------------------------------------------------------------------


@pytest.mark.parametrize("sequence", [0, 2**63, 2**64 - 1])
def test_a_sequence_out_of_range_is_invalid_argument(
    cluster: Cluster, attacker: Attacker, sequence: int
) -> None:
    before = cluster.count(DE, "inbox")
    with pytest.raises(grpc.RpcError) as refused:
        attacker.deliver([attacker.report().SerializeToString()], sequence=sequence)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("header-sequence:")
    assert cluster.count(DE, "inbox") == before
    attacker.accepted_again()


def test_an_epoch_from_the_future_waits_for_the_manifest_then_goes_through(
    cluster: Cluster, attacker: Attacker
) -> None:
    now = attacker.epoch()
    payload = attacker.report().SerializeToString()
    sequence = next(attacker.sequences)
    with pytest.raises(grpc.RpcError) as refused:
        attacker.deliver([payload], sequence=sequence, epoch=now + 1)
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details().startswith("manifest-epoch-ahead:")
    # The coordinator publishes the newer manifest; de-eco picks it up, the retry goes through.
    fed = cluster.fed
    fed.publish(bump_epoch(fed.manifest, issued_at=datetime.now(UTC)))
    wait_until(lambda: attacker.epoch() == now + 1, 20, what="de-eco taking the new manifest")
    (outcome,) = attacker.deliver([payload], sequence=sequence, epoch=now + 1).outcomes
    assert outcome.outcome == xpb.OUTCOME_NEW_CASE


# -- 7. the receiver re-checks the trace -----------------------------------------------------------


def test_a_private_address_placed_in_the_receivers_country_is_refused(
    cluster: Cluster, attacker: Attacker
) -> None:
    before = _stored(cluster)
    msg = attacker.report()
    del msg.trace.addresses[:]
    msg.trace.addresses.add(address="10.20.30.40", country="DE")
    msg.trace.country = "DE"
    assert attacker.refused(msg.SerializeToString()).startswith("trace-special-address:")
    assert _stored(cluster) == before
    assert not _pulled_bytes(cluster) or all(
        b"10.20.30.40" not in c for c in _pulled_bytes(cluster)
    )
    attacker.accepted_again()


def test_a_geoip_disagreement_is_accepted_flagged_and_logged(
    cluster: Cluster, attacker: Attacker
) -> None:
    # The sender claims DE for an address de-eco's own GeoIP database places in NL.
    msg = attacker.report()
    del msg.trace.addresses[:]
    msg.trace.addresses.add(address="185.107.56.10", country="DE")
    (outcome,) = attacker.deliver([msg.SerializeToString()]).outcomes
    assert outcome.outcome == xpb.OUTCOME_NEW_CASE
    (row,) = cluster.rows(
        DE, "SELECT geo_country, geo_agrees, reroute_to FROM reports WHERE id = :r", r=msg.id
    )
    assert (row.geo_country, bool(row.geo_agrees), row.reroute_to) == ("NL", False, NL)
    assert (
        cluster.count(DE, "routing_log", "kind = 'geo-disagreement' AND report_id = :r", r=msg.id)
        == 1
    )
    assert find_unknown(msg) is None
