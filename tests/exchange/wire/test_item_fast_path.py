"""The common item's fast decoding path is the full path, only faster.

``items_from_proto`` tries ``_plain_item`` (no error strings built) before ``item_from_proto``:
for any item a peer or analyst can send — unknown enum numbers, zero values, odd hex, several
hashes, qualities — the fast path must either give exactly the item the full path gives, or step
aside (None) so the full path answers, refusals and messages included.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.errors import ExchangeError
from exchange.wire.codec import _plain_item, item_from_proto
from ihx.v1 import report_pb2 as pb

_HEX = st.one_of(
    st.text("0123456789abcdef", min_size=64, max_size=64),  # a sha256 / PDQ length
    st.text("0123456789abcdefABCDEF", min_size=0, max_size=70),
    st.text(max_size=8),
)
_HASH = st.builds(
    lambda algorithm, hex_, quality: (
        pb.ContentHash(algorithm=algorithm, hex=hex_, quality=quality)
        if quality is not None
        else pb.ContentHash(algorithm=algorithm, hex=hex_)
    ),
    st.integers(0, 6),
    _HEX,
    st.one_of(st.none(), st.integers(0, 120)),
)
_ITEM = st.builds(
    lambda hashes, c, m, a: pb.Item(hashes=hashes, classification=c, media_type=m, age_group=a),
    st.lists(_HASH, max_size=3),
    st.integers(0, 6),
    st.integers(0, 6),
    st.integers(0, 6),
)


@settings(max_examples=3000, deadline=None)
@given(_ITEM)
def test_the_fast_path_gives_the_full_paths_item_or_steps_aside(msg: pb.Item) -> None:
    fast = _plain_item(msg)
    try:
        full = item_from_proto(msg, "items[0]")
    except ExchangeError:
        assert fast is None  # what the full path refuses, the fast path never accepts
        return
    if fast is not None:
        assert fast == full
        assert [h.quality for h in fast.hashes] == [h.quality for h in full.hashes]
