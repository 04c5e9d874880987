"""Case transfers on the wire: what the old holder encodes is what the new one decodes, within
one payload's limit, and bytes that are not a canonical transfer are refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from exchange.errors import TransferRefused, UnknownFields
from exchange.wire.transfer_codec import (
    fitted_transfer,
    transfer_bytes,
    transfer_from_bytes,
    transfer_message,
)
from ihx.v1 import transfer_pb2 as tpb
from tests.exchange.factories import length_delimited
from tests.exchange.transfer.factories import make_kit


def test_a_transfer_decodes_to_what_was_encoded() -> None:
    kit = make_kit()
    t = kit.transfer()
    decoded = transfer_from_bytes(kit.payload(t))
    assert decoded == t


def test_the_newest_history_is_kept_and_the_rest_counted() -> None:
    kit = make_kit()
    steps = [
        replace(kit.assessed(sequence=n), at=kit.assessed().at + timedelta(seconds=n))
        for n in range(1, 40)
    ]
    whole = fitted_transfer(
        moved=kit.moved(sequence=40),
        trace=None,
        report=kit.wire,
        origin=kit.origin,
        history=steps,
        max_bytes=64 * 1024,
    )
    assert [e.sequence for e in transfer_from_bytes(whole).history] == list(range(1, 40))
    limit = len(whole) - 2000
    part = fitted_transfer(
        moved=kit.moved(sequence=40),
        trace=None,
        report=kit.wire,
        origin=kit.origin,
        history=steps,
        max_bytes=limit,
    )
    decoded = transfer_from_bytes(part)
    assert len(part) <= limit
    kept = [e.sequence for e in decoded.history]
    assert kept == list(range(40 - len(kept), 40))  # the newest, in order
    assert 0 < decoded.history_omitted == 39 - len(kept)


def test_a_transfer_that_cannot_fit_is_refused() -> None:
    kit = make_kit()
    with pytest.raises(TransferRefused) as info:
        fitted_transfer(
            moved=kit.moved(),
            trace=None,
            report=kit.wire,
            origin=kit.origin,
            history=(),
            max_bytes=len(kit.wire),
        )
    assert info.value.code == "transfer-too-large"


def test_bytes_that_are_not_a_canonical_transfer_are_refused() -> None:
    kit = make_kit()
    payload = kit.payload()
    with pytest.raises(UnknownFields):
        transfer_from_bytes(payload + length_delimited(42, b"media"))
    with pytest.raises(TransferRefused) as missing:
        transfer_from_bytes(transfer_bytes(tpb.CaseTransfer(report=kit.wire)))
    assert missing.value.message.startswith("moved: ")
    broken = transfer_message(moved=kit.moved(), trace=None, report=kit.wire, origin=None)
    broken.moved.id = "not an event id"
    with pytest.raises(TransferRefused) as bad_event:
        transfer_from_bytes(transfer_bytes(broken))
    assert bad_event.value.code == "transfer-invalid"
    with pytest.raises(TransferRefused):
        transfer_from_bytes(b"\xff\xff\xff")
