"""Only known bytes: unknown fields are refused at every depth, and signed bytes must be exact."""

from __future__ import annotations

import pytest

from exchange.errors import UnknownFields
from exchange.wire.known_fields import find_unknown, require_exact, require_known
from ihx.v1 import report_pb2 as pb
from tests.exchange.factories import length_delimited, make_report, report_wire

# Field 99, length-delimited: the shape a smuggled JPEG would take.
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4


def _parsed(data: bytes) -> pb.Report:
    msg = pb.Report()
    msg.ParseFromString(data)
    return msg


def test_exact_canonical_bytes_pass() -> None:
    wire = report_wire(make_report())
    require_exact(_parsed(wire), wire, "report")


def test_an_unknown_field_at_the_top_is_refused_by_number() -> None:
    wire = report_wire(make_report()) + length_delimited(99, JPEG)
    with pytest.raises(UnknownFields) as refused:
        require_exact(_parsed(wire), wire, "report")
    assert refused.value.code == "unknown-field"
    assert "#99" in refused.value.message


def test_an_unknown_field_inside_an_item_is_refused_with_its_path() -> None:
    msg = _parsed(report_wire(make_report()))
    item = msg.items[0].SerializeToString() + length_delimited(42, JPEG)
    msg.items[0].Clear()
    msg.items[0].MergeFromString(item)
    wire = msg.SerializeToString()
    assert find_unknown(_parsed(wire)) == "items[0].#42"
    with pytest.raises(UnknownFields):
        require_exact(_parsed(wire), wire, "report")
    with pytest.raises(UnknownFields):
        require_known(_parsed(wire), wire, "report")


def test_a_duplicated_field_is_not_canonical() -> None:
    # Protobuf keeps the last of two `notes`: the first could carry anything past every check.
    hidden = ("x" * 40_000).encode()  # a string field must hold UTF-8; any other byte can hide
    wire = report_wire(make_report()) + length_delimited(9, hidden) + length_delimited(9, b"fine")
    msg = _parsed(wire)
    assert msg.notes == "fine"
    with pytest.raises(UnknownFields) as refused:
        require_exact(msg, wire, "report")
    assert refused.value.code == "not-canonical"


def test_require_known_accepts_a_non_canonical_but_known_encoding() -> None:
    # Clients may encode differently (field order); only unknown fields are refused there.
    a = pb.Report(id="r-1").SerializeToString()
    b = pb.Report(url="u").SerializeToString()
    wire = b + a
    require_known(_parsed(wire), wire, "request")


def test_require_known_drops_nothing_it_accepts() -> None:
    wire = report_wire(make_report())
    msg = _parsed(wire)
    require_known(msg, wire, "request")
    assert msg.SerializeToString(deterministic=True) == wire
