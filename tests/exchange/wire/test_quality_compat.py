"""PDQ quality on the wire, read-first/write-later: a node older than ``ContentHash.quality``
(field 3) parses ``ihx.v1`` strictly and refuses a report or announcement carrying it for good.
So quality is written only with ``[pdq] send_quality`` on; without it the bytes parse under the
schema without field 3. The old schema is rebuilt here from the current descriptors, less field 3.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FileDescriptor

from exchange.domain import ContentHash, HashAlgorithm
from exchange.errors import UnknownFields
from exchange.wire.codec import announcement_bytes, report_to_proto
from exchange.wire.known_fields import require_exact
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import report_pb2 as pb
from tests.exchange.factories import make_announcement, make_decision, make_report, make_test_item

PDQ = ContentHash(HashAlgorithm.PDQ, "c3" * 32, 90)


def _add(pool: descriptor_pool.DescriptorPool, fd: FileDescriptor, done: set[str]) -> None:
    if fd.name in done:
        return
    for dep in fd.dependencies:
        _add(pool, dep, done)
    proto = descriptor_pb2.FileDescriptorProto()
    fd.CopyToProto(proto)
    for msg in proto.message_type:
        if msg.name == "ContentHash":
            kept = [f for f in msg.field if f.number != 3]
            del msg.field[:]
            msg.field.extend(kept)
            del msg.oneof_decl[:]  # proto3 ``optional``'s synthetic oneof
    pool.Add(proto)
    done.add(fd.name)


@cache
def _old(name: str) -> Any:
    """The message ``name`` as a node before field 3 knows it."""
    pool = descriptor_pool.DescriptorPool()
    _add(pool, xpb.DESCRIPTOR, set())
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    assert 3 not in {f.number for f in pool.FindMessageTypeByName("ihx.v1.ContentHash").fields}
    return cls


def _old_node_accepts(name: str, data: bytes) -> None:
    require_exact(_old(name).FromString(data), data, name)


def _report_bytes(with_quality: bool) -> bytes:
    report = make_report(items=(make_test_item(PDQ),))
    msg = report_to_proto(report, None, make_decision("de-eco"), with_quality=with_quality)
    return msg.SerializeToString(deterministic=True)


def test_a_report_without_send_quality_has_no_field_3_and_an_old_node_takes_it() -> None:
    data = _report_bytes(with_quality=False)
    _old_node_accepts("ihx.v1.Report", data)
    assert not pb.Report.FromString(data).items[0].hashes[0].HasField("quality")


def test_a_report_with_send_quality_carries_it_and_an_old_node_refuses_it() -> None:
    data = _report_bytes(with_quality=True)
    assert pb.Report.FromString(data).items[0].hashes[0].quality == 90
    with pytest.raises(UnknownFields):
        _old_node_accepts("ihx.v1.Report", data)


def test_an_announcement_carries_quality_only_with_send_quality() -> None:
    k = make_announcement(PDQ)
    off = announcement_bytes(k)
    _old_node_accepts("ihx.v1.HashAnnouncement", off)
    assert not xpb.HashAnnouncement.FromString(off).hash.HasField("quality")
    on = announcement_bytes(k, with_quality=True)
    assert xpb.HashAnnouncement.FromString(on).hash.quality == 90
    with pytest.raises(UnknownFields):
        _old_node_accepts("ihx.v1.HashAnnouncement", on)
