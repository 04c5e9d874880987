"""How many batches a sender's window lets into flight: ``window`` full ones, or more that
are short (closed by bytes or by a change of kind) — counted by payloads, up to the receiver's
own window (16 envelopes verified ahead of their receipts), never more; full batches still stop
at ``window``. When a short batch is sealed at all is test_sender_pipeline's (EAGER_IN_FLIGHT).
"""

from __future__ import annotations

import collections

import pytest

from exchange.delivery.batches import Batch
from exchange.delivery.sender import RECEIVER_WINDOW
from exchange.settings import ExchangeTuning
from exchange.wire.envelope import KIND_EVENT
from ihx.v1 import exchange_pb2 as xpb
from tests.exchange.delivery.conftest import MakeSender
from tests.exchange.factories import T0


def batches(sizes: list[int]) -> collections.deque[Batch]:
    return collections.deque(
        Batch(i + 1, KIND_EVENT, xpb.Envelope(), b"", n, (), None, T0) for i, n in enumerate(sizes)
    )


@pytest.mark.parametrize(
    ("window", "in_flight", "room"),
    [
        (4, [500, 500, 500], True),  # under the window
        (4, [500, 500, 500, 500], False),  # four full batches: the window is full
        (4, [40] * 4, True),  # four small ones hold 160 payloads of 2,000
        (4, [40] * (RECEIVER_WINDOW - 1), True),
        (4, [40] * RECEIVER_WINDOW, False),  # never past the receiver's window
        (4, [500, 500, 500, 400, 99], True),  # 1,999 payloads
        (4, [500, 500, 500, 400, 100], False),  # 2,000: as much as four full batches
        (1, [10], True),  # a window of one full batch still lets small ones through …
        (1, [300, 200], False),  # … up to 500 payloads
        (32, [500] * 31, True),  # a window past the receiver's is the operator's to set
    ],
)
def test_room_for_another_batch(
    make_sender: MakeSender, window: int, in_flight: list[int], room: bool
) -> None:
    sender = make_sender(ExchangeTuning(window=window))
    assert sender.batches.max_batch == 500
    assert sender._room(batches(in_flight)) is room
