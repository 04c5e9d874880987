"""Retracting this node's own hash sightings when the report behind them leaves.

A withdrawn report and an anonymised one both take their content out of this node's view of
the network: each sighting of ours that points at such a report is retracted — here, and at
every peer through a retraction announcement — unless another live report held here still
carries the hash (then the content is still seen, and says so). One rule for both, so
withdrawal and retention cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from exchange.domain import KnownContent
from exchange.store import hash_index, reports
from exchange.store.writer import Tx
from exchange.wire.codec import announcement_bytes


def retract_unsupported(
    tx: Tx, member: str, report_ids: Sequence[str], now: datetime, *, leaving: str = ""
) -> list[KnownContent]:
    """Retract ``member``'s sightings of ``report_ids`` no live report still carries (the
    report ``leaving`` does not count: it is on its way out); the sightings retracted."""
    own = hash_index.own_sightings_of(tx.conn, member, report_ids)
    if not own:
        return []
    kept = reports.carried_elsewhere(tx.conn, [k.hash for k in own], leaving)
    gone = [k for k in own if k.hash not in kept]
    for k in gone:
        hash_index.retract(tx.conn, k)
    hash_index.queue_announcements(
        tx.conn, [announcement_bytes(replace(k, retracted=True)) for k in gone], now
    )
    return gone
