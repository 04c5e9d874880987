"""Near-known content on the wire: ``NearSighting`` (intake's answer, a case's PDQ items) and
``ItemPdq`` (a case's PDQ item, GetCase).

One conversion each way, so the intake answer and the case speak of a sighting alike (the way
out, ``near_to_proto``, lives in ``codec`` beside the intake answer that uses it). The
sighting's report id stays at the node (the wire names member, case and classification only).
"""

from __future__ import annotations

from exchange.domain import ItemPdq, NearSighting, Sighting
from exchange.wire.codec import classification_from_proto, from_timestamp, near_to_proto
from ihx.v1 import cases_pb2 as cpb
from ihx.v1 import intake_pb2 as ipb


def near_from_proto(msg: ipb.NearSighting) -> NearSighting:
    sighting = Sighting(
        msg.member,
        msg.case_id,
        classification_from_proto(msg.classification),
        from_timestamp(msg.first_seen),
        "",
    )
    return NearSighting(msg.hex, msg.distance, sighting)


def item_pdq_to_proto(p: ItemPdq) -> cpb.ItemPdq:
    msg = cpb.ItemPdq(
        report_id=p.report_id,
        index=p.index,
        hex=p.hex,
        near=[near_to_proto(n) for n in p.near],
        not_matched=p.not_matched,
    )
    if p.known is not None:
        msg.known.CopyFrom(near_to_proto(NearSighting(p.hex, 0, p.known)))
    return msg


def item_pdq_from_proto(msg: cpb.ItemPdq) -> ItemPdq:
    known = near_from_proto(msg.known).sighting if msg.HasField("known") else None
    return ItemPdq(
        report_id=msg.report_id,
        index=msg.index,
        hex=msg.hex,
        known=known,
        near=tuple(near_from_proto(n) for n in msg.near),
        not_matched=msg.not_matched,
    )
