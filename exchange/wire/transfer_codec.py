"""Protobuf ⇄ domain for case transfers (``transfer.proto``): what a moved case carries.

The old holder encodes one ``CaseTransfer`` per report whose items moved (``transfer_bytes``);
the new holder decodes it (``transfer_from_bytes``) like any signed payload: valid protobuf,
only known fields, the canonical encoding, every event sane (``case_codec``). What it decodes
to keeps the two parts the checks read as protobuf — the report's wire bytes (checked as the
origin signed them, ``codec.parse_report``) and the trace (``trace_review`` reads protobuf) —
and everything else as domain values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from exchange.errors import InvalidEvent, TransferRefused
from exchange.lifecycle.model import CaseEvent
from exchange.wire.case_codec import event_from_proto, event_to_proto
from exchange.wire.codec import trace_to_proto
from exchange.wire.known_fields import require_exact
from ihx.v1 import lifecycle_pb2 as lpb
from ihx.v1 import report_pb2 as pb
from ihx.v1 import transfer_pb2 as tpb
from routing.trace import Trace

MAX_HISTORY = 1000  # events of the old holder carried along (the oldest are left out first)


@dataclass(frozen=True, slots=True)
class OriginEvidence:
    """Where a report arrived at the old holder: the origin's signed envelope header, its
    signature and the report's leaf in it (as ``reports``/``inbox`` keep them)."""

    header: bytes
    signature: bytes
    leaf_index: int
    proof: bytes


@dataclass(frozen=True, slots=True)
class ReceivedTransfer:
    """A decoded transfer: the domain values, and the report bytes and trace to be checked."""

    moved: CaseEvent
    trace: pb.Trace | None
    report: bytes
    origin: OriginEvidence | None
    history: tuple[CaseEvent, ...]
    history_omitted: int


def transfer_message(
    *,
    moved: CaseEvent,
    trace: Trace | None,
    report: bytes,
    origin: OriginEvidence | None,
    history: Sequence[CaseEvent] = (),
    history_omitted: int = 0,
) -> tpb.CaseTransfer:
    msg = tpb.CaseTransfer(
        moved=event_to_proto(moved),
        report=report,
        history=[event_to_proto(e) for e in history],
        history_omitted=history_omitted,
    )
    if trace is not None:
        msg.trace.CopyFrom(trace_to_proto(trace))
    if origin is not None:
        msg.origin.CopyFrom(
            tpb.OriginEvidence(
                header=origin.header,
                signature=origin.signature,
                leaf_index=origin.leaf_index,
                proof=origin.proof,
            )
        )
    return msg


def transfer_bytes(msg: tpb.CaseTransfer) -> bytes:
    return msg.SerializeToString(deterministic=True)


# A history event's field framing (tag and length) and the ``history_omitted`` field, at most.
_FRAMING = 8


def fitted_transfer(
    *,
    moved: CaseEvent,
    trace: Trace | None,
    report: bytes,
    origin: OriginEvidence | None,
    history: Sequence[CaseEvent],
    max_bytes: int,
) -> bytes:
    """The transfer's bytes within ``max_bytes`` (what every receiver accepts as one payload):
    the newest history that fits, the oldest events left out and counted. Raises
    ``TransferRefused`` when even the move, the report and its evidence do not fit."""
    msg = transfer_message(moved=moved, trace=trace, report=report, origin=origin)
    size = msg.ByteSize() + _FRAMING
    if size > max_bytes:
        raise TransferRefused(
            f"the transfer of report {moved.items[0].report_id} would be {size} bytes with its "
            f"evidence; a member accepts at most {max_bytes} in one payload",
            code="transfer-too-large",
        )
    kept: list[lpb.CaseEvent] = []
    for event in reversed(history[-MAX_HISTORY:]):
        encoded = event_to_proto(event)
        size += encoded.ByteSize() + _FRAMING
        if size > max_bytes:
            break
        kept.append(encoded)
    msg.history.extend(reversed(kept))
    msg.history_omitted = len(history) - len(kept)
    return transfer_bytes(msg)


def _refuse(message: str) -> TransferRefused:
    return TransferRefused(message, code="transfer-invalid")


def transfer_from_bytes(data: bytes) -> ReceivedTransfer:
    """A transfer payload, decoded and validated field by field (``TransferRefused`` names
    the field; unknown or non-canonical bytes are ``UnknownFields``)."""
    msg = tpb.CaseTransfer()
    try:
        msg.ParseFromString(data)
    except DecodeError:
        raise _refuse("payload is not a valid ihx.v1.CaseTransfer") from None
    require_exact(msg, data, "case transfer")
    if not msg.HasField("moved"):
        raise _refuse("moved: the move's event is required")
    if not msg.report:
        raise _refuse("report: the report's bytes are required")
    if len(msg.history) > MAX_HISTORY:
        raise _refuse(f"history: at most {MAX_HISTORY} events")
    try:
        moved = event_from_proto(msg.moved)
        history = tuple(event_from_proto(e) for e in msg.history)
    except InvalidEvent as error:
        raise _refuse(f"an event: {error.message}") from None
    origin = None
    if msg.HasField("origin"):
        o = msg.origin
        origin = OriginEvidence(bytes(o.header), bytes(o.signature), o.leaf_index, bytes(o.proof))
    return ReceivedTransfer(
        moved=moved,
        trace=msg.trace if msg.HasField("trace") else None,
        report=bytes(msg.report),
        origin=origin,
        history=history,
        history_omitted=msg.history_omitted,
    )
