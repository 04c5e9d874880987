"""The routing-log entries a batch of reports leaves at its origin: one ``sent``, one ``receipted``.

Sending and receipting happen to a whole signed batch, so each is one entry naming the batch's
peer (``member``) and sequence, its reports listed in the hashed detail (issue 16: written per
report they were two of an origin's eight rows per report). A coordinator who walks the chain
still finds every report and, in the receipt's entry, what its holder answered for it:

- ``sent``: ``{"count", "reports": [id, …], "sequence"}``;
- ``receipted``: ``{"count", "receipt_time", "reports": [[id, outcome, holder's case], …],
  "sequence"}`` — the reports the holder took (``count`` of them, not the batch's size); one it
  refused keeps an entry of its own (``rejected``, with the holder's reason), as does a moved
  case's transfer, and a batch it refused whole has no ``receipted`` entry.

Such an entry names no report itself (``report_id`` is None): that, in the hashed entry, is
what tells it from an entry of one report, whatever the store's columns say.

Entries appended before 0019 name one report each (``report_id``, and no ``count``);
``reports_in`` and ``count_of`` read both forms. Pure: no storage, no wire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime

from exchange.domain import LogKind
from exchange.routing_log import LogChain, LogEntry

BATCH_KINDS = (str(LogKind.SENT), str(LogKind.RECEIPTED))


def sent_entry(
    chain: LogChain, at: datetime, peer: str, sequence: int, report_ids: Sequence[str]
) -> LogEntry:
    """The entry for reports sealed into batch ``sequence`` for ``peer``."""
    detail = {"count": len(report_ids), "reports": list(report_ids), "sequence": sequence}
    return chain.append(at, LogKind.SENT, member=peer, detail=detail)


def receipted_entry(
    chain: LogChain,
    at: datetime,
    peer: str,
    sequence: int,
    receipt_time: datetime,
    results: Sequence[tuple[str, str, str]],
) -> LogEntry:
    """The entry for ``peer``'s signed receipt of batch ``sequence``: each (report id, outcome,
    the holder's case id or "") it took."""
    detail = {
        "count": len(results),
        "receipt_time": receipt_time.isoformat(),
        "reports": [list(r) for r in results],
        "sequence": sequence,
    }
    return chain.append(at, LogKind.RECEIPTED, member=peer, detail=detail)


def named_in(report_id: str) -> str:
    """The text by which a batch entry's detail names ``report_id`` (a JSON string; an id needs
    no escaping): a listing's check that the hashed detail, not a stored column, names it."""
    return json.dumps(report_id)


# The first key of a batch entry's detail (sorted keys, compact): anchored, so no text inside
# another entry's detail (a peer's reason) can pass for it.
_COUNT = re.compile(r'^\{"count":(\d+),')


def count_of(detail: str) -> int:
    """How many reports a ``sent`` or ``receipted`` entry is about: its ``count``, or 1 for an
    entry of one report (before 0019). Read from the text: a batch's detail lists every id, and
    the count is all a tally needs."""
    m = _COUNT.match(detail)
    return int(m.group(1)) if m else 1


def reports_in(detail: str) -> list[str]:
    """The ids a batch entry lists (none for an entry of one report, which names it itself)."""
    try:
        value = json.loads(detail)
    except ValueError:
        return []
    listed = value.get("reports") if isinstance(value, dict) else None
    if not isinstance(listed, list):
        return []
    return [r if isinstance(r, str) else r[0] for r in listed if _id_of(r)]


def _id_of(r: object) -> bool:
    return isinstance(r, str) or (isinstance(r, list) and bool(r) and isinstance(r[0], str))


def described(detail: str, report_id: str | None = None) -> dict[str, object] | None:
    """A batch entry's detail for a person to read: its fields but the list of reports, and,
    with ``report_id``, what the entry says of that one (``outcome`` and ``case`` in a
    receipt; ``listed`` in either). None for any other entry."""
    try:
        fields = json.loads(detail)
    except ValueError:
        return None
    if not isinstance(fields, dict) or not isinstance(fields.get("reports"), list):
        return None
    if "count" not in fields:
        return None
    out = {k: v for k, v in fields.items() if k != "reports"}
    if report_id is None:
        return out
    for r in fields["reports"]:
        if r == report_id:
            return {**out, "listed": True}
        if isinstance(r, list) and len(r) == 3 and r[0] == report_id:
            return {**out, "listed": True, "outcome": r[1], "case": r[2]}
    return {**out, "listed": False}
