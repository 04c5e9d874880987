"""The routing log's integrity as the log page shows it: cheap on every view, whole on request.

Every view shows the latest signed checkpoint and whether it holds: its signature verifies
against the signer's key in the manifest, and the stored entry it commits to still has the
hash it signed (two indexed reads). ``ihx log verify``'s whole walk — every entry's hash from
genesis and every checkpoint — reads the entire log, so it runs only when asked (one at a time,
see ``pages/log.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from auth.errors import AuthError
from auth.manifest import Manifest
from exchange.checkpoints import LogVerdict, verify_checkpoint, verify_log
from exchange.routing_log import Checkpoint
from exchange.store.routing_log import (
    LogFilter,
    find_checkpoint,
    list_entries,
    load_checkpoints,
    load_entries,
)


@dataclass(frozen=True, slots=True)
class CheckpointState:
    checkpoint: Checkpoint | None
    problem: str  # "" when the latest checkpoint holds

    @property
    def ok(self) -> bool:
        return self.checkpoint is not None and not self.problem


def latest_checkpoint(engine: Engine, member: str, manifest: Manifest) -> CheckpointState:
    with engine.connect() as conn:
        cp = find_checkpoint(conn, member, 0)
        if cp is None:
            return CheckpointState(None, "no checkpoint signed yet")
        entries, _ = list_entries(conn, LogFilter(after_index=cp.size - 2, page_size=1))
    try:
        verify_checkpoint(cp, manifest)
    except AuthError as error:
        return CheckpointState(cp, f"signature: {error}")
    if not entries or entries[0].idx != cp.size - 1:
        return CheckpointState(cp, f"entry {cp.size - 1}, which it signs, is missing")
    if entries[0].entry_hash != cp.head_hash:
        return CheckpointState(cp, f"entry {cp.size - 1} no longer has the hash it signed")
    return CheckpointState(cp, "")


def verify_whole_log(engine: Engine, member: str, manifest: Manifest) -> LogVerdict:
    with engine.connect() as conn:
        return verify_log(load_entries(conn), load_checkpoints(conn, member), manifest)
