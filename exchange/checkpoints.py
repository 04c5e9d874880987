"""Signed checkpoints of the routing log, and verifying a whole log against them.

A checkpoint commits the node to (size, head hash, time) with its Ed25519 key, so a coordinator
holding one can prove later that the first ``size`` entries were never rewritten — even by
someone who recomputes every hash after an edit. The node writes one every N entries or T
seconds (``Checkpointer``), inside the writer so size and head always describe committed entries.

The rows live in exchange/store/routing_log.py (``load_entries``, ``load_checkpoints``).

``verify_log`` walks the chain (routing_log.verify_chain) and checks every checkpoint against it
and against the signer's key in the manifest, naming the first bad entry or checkpoint.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from auth.errors import AuthError
from auth.keys import SigningKey
from auth.manifest import Manifest
from common.clock import Clock
from exchange.routing_log import ChainBreak, Checkpoint, LogEntry, verify_chain
from exchange.store import routing_log as store
from exchange.store.writer import Priority, Tx, Writer
from exchange.times import to_micros

log = logging.getLogger(__name__)

_DOMAIN = b"ihx-routing-log-checkpoint-v1\n"


def checkpoint_bytes(member: str, size: int, head_hash: bytes, at: datetime) -> bytes:
    """The signed bytes: a domain tag and the fields, one per line (no ambiguity, no JSON)."""
    return _DOMAIN + f"{member}\n{size}\n{head_hash.hex()}\n{to_micros(at)}\n".encode()


def sign_checkpoint(
    key: SigningKey, member: str, size: int, head_hash: bytes, at: datetime
) -> Checkpoint:
    signature = key.sign(checkpoint_bytes(member, size, head_hash, at))
    return Checkpoint(member, size, head_hash, at, key.key_id, signature)


def verify_checkpoint(cp: Checkpoint, manifest: Manifest) -> None:
    """Raise an AuthError unless the member's key valid at ``cp.at`` signed it."""
    manifest.verify_member_signature(
        cp.member,
        cp.key_id,
        cp.at,
        checkpoint_bytes(cp.member, cp.size, cp.head_hash, cp.at),
        cp.signature,
    )


@dataclass(frozen=True, slots=True)
class LogVerdict:
    entries: int
    checkpoints: int
    first_bad: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.first_bad is None


def verify_log(
    entries: Iterable[LogEntry], checkpoints: Sequence[Checkpoint], manifest: Manifest
) -> LogVerdict:
    """Verify the chain from genesis and every checkpoint against it."""
    heads: dict[int, bytes] = {}
    wanted = {cp.size for cp in checkpoints}
    count = 0

    def walked() -> Iterable[LogEntry]:
        nonlocal count
        for e in entries:
            count += 1
            if e.idx + 1 in wanted:
                heads[e.idx + 1] = e.entry_hash
            yield e

    broken = verify_chain(walked())
    if broken is not None:
        return LogVerdict(count, len(checkpoints), broken)
    for cp in sorted(checkpoints, key=lambda c: c.size):
        try:
            verify_checkpoint(cp, manifest)
        except AuthError as error:
            return LogVerdict(
                count, len(checkpoints), ChainBreak(cp.size - 1, f"checkpoint {cp.size}: {error}")
            )
        head = heads.get(cp.size)
        if head is None:
            return LogVerdict(
                count,
                len(checkpoints),
                ChainBreak(
                    count, f"checkpoint {cp.size} covers entries that are missing (log has {count})"
                ),
            )
        if head != cp.head_hash:
            return LogVerdict(
                count,
                len(checkpoints),
                ChainBreak(
                    cp.size - 1,
                    f"entry {cp.size - 1} does not match signed checkpoint {cp.size}: "
                    "the log was rewritten",
                ),
            )
    return LogVerdict(count, len(checkpoints), None)


# -- on the node ----------------------------------------------------------------------------


class Checkpointer:
    """Writes a signed checkpoint every ``every`` entries or ``interval`` seconds."""

    def __init__(
        self,
        *,
        member: str,
        key: SigningKey,
        writer: Writer,
        clock: Clock,
        every: int,
        interval: float,
    ) -> None:
        self._member = member
        self._key = key
        self._writer = writer
        self._clock = clock
        self._every = every
        self._interval = interval
        self._stop = threading.Event()
        self._last_size = -1
        self._thread = threading.Thread(target=self._run, name="ihx-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # a node whose start failed never started it
            self._thread.join(5)

    def checkpoint_now(self) -> Checkpoint | None:
        return self._writer.execute(self._write, Priority.BACKGROUND)

    def _run(self) -> None:
        # Poll often but sign only when due: on size every few hundred ms, on time by interval.
        waited = 0.0
        tick = min(0.5, self._interval)
        while not self._stop.wait(tick):
            waited += tick
            size = self._writer.chain.next_index
            if size - max(self._last_size, 0) >= self._every or (
                waited >= self._interval and size != self._last_size
            ):
                waited = 0.0
                try:
                    self.checkpoint_now()
                except Exception:
                    log.exception("checkpoint failed")

    def _write(self, tx: Tx) -> Checkpoint | None:
        size = tx.chain.next_index
        if size in (0, self._last_size):
            return None
        existing = store.largest_checkpoint(tx.conn)
        if existing is not None and existing >= size:
            self._last_size = size
            return None
        cp = sign_checkpoint(self._key, self._member, size, tx.chain.head_hash, self._clock())
        store.add_checkpoint(tx.conn, cp)
        tx.after_commit.append(lambda: setattr(self, "_last_size", size))
        return cp
