"""The routing log's hash chain: every entry commits to the one before it.

entry_hash = SHA-256(previous_hash ‖ canonical bytes of the entry), where the canonical bytes are
the length-prefixed UTF-8 fields in a fixed order. Editing, removing or reordering any entry
changes every later hash, so a verifier that walks the chain names the first bad entry. The
genesis entry's previous hash is 32 zero bytes.

``LogChain`` keeps the head in memory for the node's writer and hands out rows to insert; the
writer rolls the head back when a job or a transaction fails, so the chain on disk and in memory
never diverge. Replicas sharing a PostgreSQL database serialise appends with an advisory lock and
re-read the stored head at the start of each transaction (exchange/store/writer.py).
Entry times never go backwards along the chain (an entry stamped earlier than the
one before it, e.g. a receipt timed before its writer job ran, takes that entry's time), so one
node's log is time-ordered and several nodes' logs merge into one time-ordered view.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NewType

from exchange.times import to_micros

GENESIS = bytes(32)


@dataclass(frozen=True, slots=True)
class LogEntry:
    idx: int
    at: datetime
    # A ``LogKind`` value when this node writes it; read back as the stored text, because
    # verification hashes exactly what was stored (and a log read may come from a later version).
    kind: str
    report_id: str | None
    member: str | None
    country: str | None
    detail: str
    previous_hash: bytes
    entry_hash: bytes

    def as_row(self) -> dict[str, Any]:
        return {
            "idx": self.idx,
            "at": self.at,
            "kind": self.kind,
            "report_id": self.report_id,
            "member": self.member,
            "country": self.country,
            "detail": self.detail,
            "previous_hash": self.previous_hash,
            "entry_hash": self.entry_hash,
        }


_ABSENT = b"\xff\xff\xff\xff"  # a None field: no length a string can have


def compute_hash(
    previous_hash: bytes,
    idx: int,
    at: datetime,
    kind: str,
    report_id: str | None,
    member: str | None,
    country: str | None,
    detail: str,
) -> bytes:
    # One update of the joined fields: the same bytes hashed as field by field, with a fifth
    # of the calls (an entry or two is appended per report).
    parts = [previous_hash, struct.pack(">Qq", idx, to_micros(at))]
    for value in (kind, report_id, member, country, detail):
        if value is None:
            parts.append(_ABSENT)
        else:
            raw = value.encode()
            parts.append(len(raw).to_bytes(4, "big"))
            parts.append(raw)
    return hashlib.sha256(b"".join(parts)).digest()


DetailText = NewType("DetailText", str)
"""An entry's detail as the chain hashes and stores it: only ``detail_json`` makes one."""


# One encoder for every detail: ``json.dumps`` with any option builds a new encoder per call,
# which took half of its time (an entry or two per report, at both ends of a delivery).
_DETAIL_ENCODER: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def detail_json(detail: Mapping[str, Any]) -> DetailText:
    """The canonical text of a detail. A caller may make it off the writer's path (intake's
    prepare step, in the submitting thread) and hand it to ``LogChain.append``: json.dumps was
    a twentieth of a saturated writer's time, one call per entry."""
    return DetailText(_DETAIL_ENCODER.encode(detail))


class LogChain:
    """The in-memory head of the chain, owned by the writer."""

    def __init__(self, next_index: int, head_hash: bytes, last_at: datetime | None = None) -> None:
        self.next_index = next_index
        self.head_hash = head_hash
        # The time of the last entry handed out; not rolled back with the head (still a bound).
        self.last_at = last_at

    def append(
        self,
        at: datetime,
        kind: str,
        *,
        report_id: str | None = None,
        member: str | None = None,
        country: str | None = None,
        detail: Mapping[str, Any] | DetailText | None = None,
    ) -> LogEntry:
        text = detail if isinstance(detail, str) else detail_json(detail or {})
        if self.last_at is not None and at < self.last_at:
            at = self.last_at
        self.last_at = at
        idx = self.next_index
        digest = compute_hash(self.head_hash, idx, at, kind, report_id, member, country, text)
        entry = LogEntry(idx, at, kind, report_id, member, country, text, self.head_hash, digest)
        self.next_index = idx + 1
        self.head_hash = digest
        return entry

    def mark(self) -> tuple[int, bytes]:
        return self.next_index, self.head_hash

    def reset(self, mark: tuple[int, bytes]) -> None:
        self.next_index, self.head_hash = mark


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A member's signed commitment to the first ``size`` entries of its log (checkpoints.py)."""

    member: str
    size: int
    head_hash: bytes
    at: datetime
    key_id: str
    signature: bytes


@dataclass(frozen=True, slots=True)
class ChainBreak:
    idx: int
    problem: str


def verify_chain(
    entries: Iterable[LogEntry], *, start_index: int = 0, start_hash: bytes = GENESIS
) -> ChainBreak | None:
    """Walk entries in index order; the first break, or None when the chain is intact."""
    expected_idx = start_index
    previous = start_hash
    for e in entries:
        if e.idx != expected_idx:
            return ChainBreak(
                e.idx, f"expected entry {expected_idx}, found {e.idx}: entries missing or reordered"
            )
        if e.previous_hash != previous:
            return ChainBreak(e.idx, "previous hash does not match the entry before")
        digest = compute_hash(
            e.previous_hash, e.idx, e.at, e.kind, e.report_id, e.member, e.country, e.detail
        )
        if digest != e.entry_hash:
            return ChainBreak(e.idx, "entry hash does not match its contents")
        previous = e.entry_hash
        expected_idx = e.idx + 1
    return None
