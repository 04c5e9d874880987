"""A case's PDQ items as the case shows them: exact known content apart from near-known content.

Computed when the case is read, from the node's index — never stored at intake. A hotline
analyst opening a case wants what is near *now*: a member may have announced a near-duplicate
since the report came in (or retracted one), and the index follows every sighting as it is
committed, so the answer is current and costs one vectorised search for the case's items.
Bounded: at most ``MAX_NEAR`` nearest per item (the intake answer's bound), one lookup of first
sightings for all hits. Sightings in the case itself never count — neither as the item's known
content nor as near (two items of one case are not news to each other).

An item's hash is near-matched when the item's own quality (``item_hashes.quality``, as its
report gave it) is at least ``[pdq] min_quality`` — the intake answer's rule; an item stored
before the column falls back to the best quality any sighting of its hash carries. Otherwise
the item says why, as the intake answer does. Where no index is open (yet), the case carries a
note instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from exchange.domain import ContentHash, HashAlgorithm, ItemPdq
from exchange.pdq.matcher import PdqMatcher
from exchange.store import hash_index, reports

OPENING = "near-known content: the PDQ index is still opening; show the case again shortly"
UNAVAILABLE = "near-known content: not available here (the PDQ index did not open); see the log"
NOT_KEPT = (
    "near-known content: not kept by the web view ([web] pdq_index = false); "
    "`ihx case show CASE` lists it"
)

ItemKey = tuple[str, int]  # (report id, index)


class CaseNear:
    """``lifecycle.views.NearOfCase`` over the matcher (node.py and the web app inject it)."""

    def __init__(self, matcher: PdqMatcher | None, engine: Engine) -> None:
        """``matcher`` None: this process keeps no index (``[web] pdq_index = false``)."""
        self._matcher = matcher
        self._engine = engine

    def of_case(self, case_id: str, items: Sequence[ItemKey]) -> tuple[tuple[ItemPdq, ...], str]:
        """Per PDQ item of ``items`` (in their order), its known and near-known content; or
        none and a note saying why it cannot be told now."""
        with self._engine.connect() as conn:
            held = reports.pdq_of_items(conn, sorted({r for r, _ in items}))
            keys = [k for k in dict.fromkeys(items) if k in held]
            if not keys:
                return (), ""  # no PDQ item: nothing to tell, index open or not
            if self._matcher is None:
                return (), NOT_KEPT
            if not self._matcher.opened:
                return (), UNAVAILABLE if self._matcher.failed else OPENING
            seen = hash_index.pdq_sightings(conn, sorted({held[k][0] for k in keys}), None)
        hashes = [ContentHash(HashAlgorithm.PDQ, held[k][0], held[k][1]) for k in keys]
        answers = self._matcher.match(hashes, own=[case_id] * len(hashes))
        out = []
        for (report_id, index), h, (near, why) in zip(keys, hashes, answers, strict=True):
            known = next((k.sighting() for k in seen.get(h.hex, ()) if k.case_id != case_id), None)
            out.append(ItemPdq(report_id, index, h.hex, known, near, why))
        return tuple(out), ""
