"""Every integer of every request, at every edge, gets a deliberate answer — never INTERNAL.

The table is built from the descriptors, not by hand: for each RPC of ``proto/ihx/v1`` every
integer (and enum) field reachable from its request is found (``tests.fuzz.messages``), and —
for the Exchange RPCs — every one inside the signed ``EnvelopeHeader`` and inside its report and
hash-announcement payloads, which a member's valid signature carries past the envelope checks
(and, for Hello, every one inside the signed hello body).
Each is sent at 0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**63 and 2**64 - 1 as a raw
client would put them on the wire (a 64-bit varint; a narrower field decodes it truncated, which
is how negative values reach signed fields), in an otherwise valid request with a valid token or
a valid de-eco signature, to nl-eokm running alone on loopback.

What must come back (DESIGN.md, "Trust between members": every integer is checked against its
range): never INTERNAL, UNKNOWN or a hang; a refusal carries a stable code and a reason
(``code: message``); and where the issue names the answer —

* envelope ``sequence`` 0 or >= 2**63 → INVALID_ARGUMENT; in range → a receipt;
* envelope ``manifest_epoch`` above the node's newest manifest → FAILED_PRECONDITION
  ``manifest-epoch-ahead``;
* ``ListRoutingLog.after_index`` / ``GetCheckpoint.size`` >= 2**63 → OUT_OF_RANGE;
* a payload integer outside what the node can store or understand (an undeclared enum number,
  a time outside 2000-01-01 .. now + skew, a manifest epoch the node never had) is never stored
  as is: the envelope is refused or the payload is rejected in the receipt with a reason.

Rows that share a sequence number reuse one envelope (Deliver and Stream get the same bytes),
so in-range sequences are a first delivery and an idempotent replay, never a conflict.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from exchange.wire.codec import submission_to_proto, timestamp
from exchange.wire.envelope import KIND_ANNOUNCEMENT, KIND_EVENT, KIND_REPORT
from exchange.wire.hello import DOMAIN as HELLO_DOMAIN
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import lifecycle_pb2 as cpb
from ihx.v1 import report_pb2 as pb
from ihx.v1 import routing_log_pb2 as lpb
from tests.exchange.factories import make_submission, url_in
from tests.fuzz.messages import EDGES, Path, integer_paths, path_name, set_path, wire_value
from tests.integration.hostile import FORBIDDEN, METHODS, Outcome, Target, request_class
from tests.integration.support import DE, NL

pytestmark = pytest.mark.timeout(60)

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
OUT_OF_RANGE = grpc.StatusCode.OUT_OF_RANGE
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
EXCHANGE = ("Exchange.Deliver", "Exchange.Stream")
INT63 = 2**63
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
SKEW = timedelta(minutes=5)
REASON = re.compile(r"^[a-z0-9][a-z0-9-]*: \S")
EDGE_NAMES = {
    0: "0",
    1: "1",
    2**31 - 1: "2^31-1",
    2**31: "2^31",
    2**32 - 1: "2^32-1",
    2**63 - 1: "2^63-1",
    2**63: "2^63",
    2**64 - 1: "2^64-1",
}


@dataclass(frozen=True)
class Row:
    rpc: str
    part: str  # "request"; inside an envelope "header", "report", …; "hello": its signed body
    path: Path
    value: int  # as a uint64 varint on the wire

    @property
    def field(self) -> str:
        return f"{self.part}.{path_name(self.path)}"

    @property
    def decoded(self) -> int:
        return wire_value(self.path[-1], self.value)

    def __str__(self) -> str:
        return f"{self.rpc}:{self.field}={EDGE_NAMES[self.value]}"


def _rows() -> list[Row]:
    parts: dict[str, list[tuple[str, Descriptor]]] = {
        rpc: [("request", request_class(m).DESCRIPTOR)] for rpc, m in METHODS.items()
    }
    for rpc in EXCHANGE:
        # An Envelope's own fields are bytes: its integers live in what it carries.
        parts[rpc] = [
            ("header", xpb.EnvelopeHeader.DESCRIPTOR),
            ("report", pb.Report.DESCRIPTOR),
            ("announcement", xpb.HashAnnouncement.DESCRIPTOR),
            ("event", cpb.CaseEvent.DESCRIPTOR),
        ]
    # A hello's integers (its time, its manifest epoch) are inside the signed body it carries.
    parts["Exchange.Hello"] = [("hello", xpb.HelloBody.DESCRIPTOR)]
    return [
        Row(rpc, part, path, value)
        for rpc, descriptors in parts.items()
        for part, descriptor in descriptors
        for path in integer_paths(descriptor)
        for value in EDGES
    ]


ROWS = _rows()


def test_the_table_reaches_every_rpc_with_integers() -> None:
    """These have no integer in their requests; the rest do."""
    without = {
        "Exchange.GetNodeInfo",
        "Partner.AckCases",
        "Partner.ReleaseHold",
        "Cases.GetCase",
        "Cases.GetReportStatus",
        "Cases.WatchCases",
        "Statistics.GetStatistics",
    }
    assert {r.rpc for r in ROWS} == set(METHODS) - without
    assert {r.field for r in ROWS if r.rpc == "Exchange.Deliver" and r.part == "header"} == {
        f"header.{f}"
        for f in (
            "sequence",
            "signed_at.seconds",
            "signed_at.nanos",
            "count",
            "kind",
            "manifest_epoch",
        )
    }
    assert len(ROWS) == 8 * len({(r.rpc, r.field) for r in ROWS})


# -- building the request of a row ---------------------------------------------------------------

_envelopes: dict[tuple[str, str, int], bytes] = {}


def _payload(target: Target, row: Row) -> tuple[int, bytes]:
    if row.part == "announcement":
        msg: Message = xpb.HashAnnouncement.FromString(target.announcement())
        kind = KIND_ANNOUNCEMENT
    elif row.part == "event":
        msg = cpb.CaseEvent.FromString(target.event())
        kind = KIND_EVENT
    else:
        msg = pb.Report.FromString(target.report())
        kind = KIND_REPORT
    if row.part != "header":
        set_path(msg, row.path, row.value)
    return kind, msg.SerializeToString()


def envelope_for(target: Target, row: Row) -> bytes:
    """A valid de-eco envelope with the row's value in its header or its one payload."""
    key = (row.part, row.field, row.decoded) if row.field == "header.sequence" else None
    if key is not None and key in _envelopes:
        return _envelopes[key]
    kind, payload = _payload(target, row)
    header = target.header([payload], kind)
    if row.part == "header":
        set_path(header, row.path, row.value)
    data = target.envelope([payload], header).SerializeToString()
    if key is not None:
        _envelopes[key] = data
    return data


def hello_for(target: Target, row: Row) -> bytes:
    """A hello de-eco signs with its valid key, the row's value in its signed body."""
    body = xpb.HelloBody(
        sender=DE,
        recipient=NL,
        signed_at=timestamp(datetime.now(UTC)),
        manifest_epoch=target.epoch,
        key_id=target.key.key_id,
    )
    set_path(body, row.path, row.value)
    data = body.SerializeToString(deterministic=True)
    signed = xpb.SignedHello(body=data, signature=target.key.sign(HELLO_DOMAIN + data))
    return signed.SerializeToString()


def request_for(target: Target, row: Row) -> list[bytes]:
    if row.rpc in EXCHANGE:
        return [envelope_for(target, row)]
    if row.rpc == "Exchange.Hello":
        return [hello_for(target, row)]
    msg = request_class(METHODS[row.rpc])()
    submission = make_submission(
        url_in("NL", f"/ranges/{next(target.serial)}.jpg"), hashes=[f"ranges-{row}"]
    )
    if row.rpc == "Intake.SubmitReport":
        msg.CopyFrom(submission_to_proto(submission))
    elif row.rpc == "Intake.SubmitReports":
        msg.reports.add().CopyFrom(submission_to_proto(submission))  # type: ignore[attr-defined]
    set_path(msg, row.path, row.value)
    return [msg.SerializeToString()]


# -- what must come back -------------------------------------------------------------------------


def _declared(field: FieldDescriptor, value: int) -> bool:
    return any(v.number == value for v in field.enum_type.values)


def _time_ok(row: Row) -> bool:
    """Whether the row leaves the payload's timestamp inside 2000-01-01 .. now + skew."""
    leaf = row.path[-1]
    if leaf.name == "nanos":
        return 0 <= row.decoded < 10**9
    try:
        at = datetime.fromtimestamp(row.decoded, UTC)
    except (OverflowError, ValueError, OSError):
        return False
    return EARLIEST <= at <= datetime.now(UTC) + SKEW


def payload_must_be_refused(target: Target, row: Row) -> bool:
    """The row puts a value into a payload that the node must not store as it is."""
    leaf = row.path[-1]
    if leaf.type == FieldDescriptor.TYPE_ENUM:
        return not _declared(leaf, row.decoded)
    if row.path[0].name in ("received_at", "first_seen", "at") or (
        row.path[-2:-1] and row.path[-2].name == "clock_started"
    ):
        return not _time_ok(row)
    if row.field == "report.decision.manifest_epoch":
        return not 1 <= row.decoded <= target.epoch
    return False


def check(target: Target, row: Row, outcome: Outcome) -> None:
    """Fail with the row and what came back when the answer is not what the row must get."""
    got = f"{row} → {outcome}"
    assert outcome.code not in FORBIDDEN, got
    if outcome.code is not OK:
        assert REASON.match(outcome.details), f"{got}: a refusal names its code and reason"
    v = row.decoded
    expected: dict[str, Callable[[], None]] = {
        "header.sequence": lambda: _expect(got, outcome, INVALID if v == 0 or v >= INT63 else OK),
        "header.manifest_epoch": lambda: _expect(
            got,
            outcome,
            PRECONDITION if v > target.epoch else outcome.code,
            "manifest-epoch-ahead" if v > target.epoch else "",
        ),
        "request.after_index": lambda: _expect(
            got, outcome, OUT_OF_RANGE if v >= INT63 else OK, "out-of-range" if v >= INT63 else ""
        ),
        "request.size": lambda: _expect(
            got,
            outcome,
            OUT_OF_RANGE
            if v >= INT63
            else (outcome.code if outcome.code is grpc.StatusCode.NOT_FOUND else OK),
            "out-of-range" if v >= INT63 else "",
        ),
    }
    if row.field in expected:
        expected[row.field]()
    if row.rpc in EXCHANGE and row.part != "header" and outcome.code is OK:
        body = xpb.ReceiptBody.FromString(xpb.SignedReceipt.FromString(outcome.responses[0]).body)
        (result,) = body.outcomes
        if result.outcome == xpb.OUTCOME_REJECTED:
            assert REASON.match(result.reason), f"{got}: rejected without a reason"
        elif payload_must_be_refused(target, row):
            raise AssertionError(
                f"{got}: payload stored as {xpb.Outcome.Name(result.outcome)}; "
                "it must be rejected with a reason"
            )


def _expect(got: str, outcome: Outcome, code: grpc.StatusCode, prefix: str = "") -> None:
    assert outcome.code is code, f"{got}: expected {code.name}"
    assert outcome.details.startswith(prefix), f"{got}: expected {prefix!r}"


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_integer_edge_gets_a_deliberate_answer(hostile_target: Target, row: Row) -> None:
    outcome = hostile_target.call(row.rpc, request_for(hostile_target, row))
    check(hostile_target, row, outcome)


def test_the_node_still_serves_after_the_table(hostile_target: Target) -> None:
    hostile_target.still_serves()


def test_routing_log_rows_are_range_checked(hostile_target: Target) -> None:
    """The control of the OUT_OF_RANGE rows: the last in-range index still pages normally."""
    last = lpb.ListRoutingLogRequest(after_index=INT63 - 1).SerializeToString()
    outcome = hostile_target.call("RoutingLog.ListRoutingLog", [last])
    assert outcome.code is OK, outcome
    assert lpb.ListRoutingLogResponse.FromString(outcome.responses[0]).entries == []
