"""store/inbox.py: the accepted envelope's row, found again by (sender, sequence)."""

from __future__ import annotations

from sqlalchemy import Engine

from exchange.store import inbox
from tests.exchange.factories import T0


def accepted(sequence: int = 1, root: bytes = b"r" * 32) -> inbox.Accepted:
    return inbox.Accepted(
        sender="nl-eokm",
        sequence=sequence,
        root=root,
        header=b"header",
        signature=b"sig",
        payload_count=2,
        received_at=T0,
        receipt_body=b"body",
        receipt_signature=b"receipt-sig",
    )


def test_a_recorded_envelope_is_found_with_its_receipt(engine: Engine) -> None:
    with engine.begin() as conn:
        inbox.record(conn, accepted(sequence=5))
    with engine.connect() as conn:
        assert inbox.prior(conn, "nl-eokm", 5) == inbox.Receipt(b"r" * 32, b"body", b"receipt-sig")
        assert inbox.receipt_of(conn, "nl-eokm", 5) == (b"body", b"receipt-sig")


def test_another_sequence_or_sender_is_not_found(engine: Engine) -> None:
    with engine.begin() as conn:
        inbox.record(conn, accepted(sequence=5))
    with engine.connect() as conn:
        assert inbox.prior(conn, "nl-eokm", 6) is None
        assert inbox.prior(conn, "de-eco", 5) is None
        assert inbox.receipt_of(conn, "de-eco", 5) is None
