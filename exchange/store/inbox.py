"""The inbox: one row per envelope this node accepted, with the receipt it signed for it.

The row is what makes a replay idempotent (the same sender and sequence get the stored receipt
again, byte for byte) and what a partner's pull shows as the proof that the takedown clock
started. It is written in the same transaction as the envelope's reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select

from exchange.store import schema
from exchange.store.prepared import Prepared
from exchange.store.sql import insert_rows

INBOX = schema.inbox


@dataclass(frozen=True, slots=True)
class Receipt:
    """The receipt signed for an accepted envelope, and the envelope's Merkle root."""

    root: bytes
    body: bytes
    signature: bytes


def prior(conn: Connection, sender: str, sequence: int) -> Receipt | None:
    """The envelope ``sequence`` from ``sender`` as accepted before, or None."""
    row = _PRIOR.first(conn, sender=sender, sequence=sequence)
    return None if row is None else Receipt(row.root, row.receipt_body, row.receipt_signature)


# Asked for every envelope received: compiled once (store/prepared.py).
_PRIOR = Prepared(
    select(INBOX.c.root, INBOX.c.receipt_body, INBOX.c.receipt_signature).where(
        INBOX.c.sender == bindparam("sender"), INBOX.c.sequence == bindparam("sequence")
    )
)


@dataclass(frozen=True, slots=True)
class Accepted:
    """An envelope as accepted: its signed header, its size and the receipt given for it."""

    sender: str
    sequence: int
    root: bytes
    header: bytes
    signature: bytes
    payload_count: int
    received_at: datetime
    receipt_body: bytes
    receipt_signature: bytes


def record(conn: Connection, accepted: Accepted) -> None:
    insert_rows(
        conn,
        INBOX,
        [
            {
                "sender": accepted.sender,
                "sequence": accepted.sequence,
                "root": accepted.root,
                "header": accepted.header,
                "signature": accepted.signature,
                "payload_count": accepted.payload_count,
                "received_at": accepted.received_at,
                "receipt_body": accepted.receipt_body,
                "receipt_signature": accepted.receipt_signature,
            }
        ],
    )


def receipt_of(conn: Connection, sender: str, sequence: int) -> tuple[bytes, bytes] | None:
    """The (body, signature) of the receipt this node signed for an envelope, if it holds one."""
    found = prior(conn, sender, sequence)
    return None if found is None else (found.body, found.signature)
