"""Coverage-guided fuzzing of the receiver's full path: decode → verify → store (atheris).

``fuzz_envelope.py`` stops at verification. This target goes on to the store: a real
``exchange.receiver.Receiver`` (de-eco) over a real SQLite file migrated by Alembic, behind the
real single writer, with the real two-member manifest and keys of ``fuzz_envelope.World`` —
because a signature proves who sent a batch, never that its content is sane, and the bugs that
answer INTERNAL (a sequence of 2**64 - 1 reaching a signed 64-bit column) live past the checks
that a random envelope never gets through.

So most inputs become *signed* envelopes. The first byte chooses the mode: a quarter are raw
``Envelope`` bytes; the rest are read as a recipe — the fuzzer's bytes decide every header field
(sender, recipient, sequence, signed_at, count, Merkle root, kind, key id, manifest epoch; each
either the valid value or an edge or arbitrary value) and one to four payloads (a valid report
or hash announcement with fuzzer-chosen protobuf bytes merged over it, or raw bytes) — and the
target signs the header with nl-eokm's real key and hands the envelope to ``Receiver.receive``.

A crash is any exception other than the typed refusals (``ExchangeError``, ``AuthError``,
``RoutingError``); the target records it and goes on (one artifact per distinct exception type
and place in ihx's code, a count per kind), so a known crash does not hide the next one.
Stored rows are checked against the invariants the issue names — a stored report's wire has no
unknown fields; its ``received_at`` lies within 2000-01-01 .. signed_at + clock skew — as
*soft* counters (the fixes are landing on main concurrently): the worker writes them to
``stats.json`` and the last line reports them.

``python bench/fuzz_receiver.py [--quick] [--seconds N]``: the parent process, the engines
(atheris, or the random-mutation fallback) and the output are those of ``fuzz_envelope.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import tempfile
import time
import traceback
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent


try:
    import atheris

    HAVE_ATHERIS = True
except ImportError:  # pragma: no cover - depends on the machine
    HAVE_ATHERIS = False

# Instrument the receiver's path for coverage only in the fuzzing child; fuzz_envelope then
# instruments what is left of the envelope and codec modules.
_INSTRUMENT = HAVE_ATHERIS and "--worker" in sys.argv
with (
    atheris.instrument_imports(include=["exchange", "auth", "routing"])
    if _INSTRUMENT
    else contextlib.nullcontext()
):
    from google.protobuf.message import DecodeError, Message
    from google.protobuf.unknown_fields import UnknownFieldSet
    from sqlalchemy import select

    from auth import merkle
    from auth.errors import AuthError
    from exchange import cases, receiver  # noqa: F401 - instrumented for coverage
    from exchange.domain import Classification, ContentHash, HashAlgorithm, KnownContent
    from exchange.errors import ExchangeError
    from exchange.receiver import Receiver
    from exchange.store import schema
    from exchange.store.engine import open_engine
    from exchange.store.migrate import upgrade
    from exchange.store.writer import Writer
    from exchange.wire.codec import announcement_to_proto, timestamp
    from exchange.wire.envelope import KIND_ANNOUNCEMENT, KIND_REPORT, Limits
    from ihx.v1 import exchange_pb2 as xpb
    from ihx.v1 import report_pb2 as pb
    from routing.errors import RoutingError

import fuzz_envelope  # a sibling script: the folder of the script run is first on sys.path

World = fuzz_envelope.World
NOW: datetime = fuzz_envelope.NOW
SENDER: str = fuzz_envelope.SENDER
RECEIVER: str = fuzz_envelope.RECEIVER

TYPED = (ExchangeError, AuthError, RoutingError)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
U64_EDGES = (0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1)


class Recipe:
    """The fuzzer's bytes read front to back; past the end every read answers zero."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, n: int) -> bytes:
        chunk = self._data[self._at : self._at + n]
        self._at += n
        return chunk.ljust(n, b"\0")

    def byte(self) -> int:
        return self.take(1)[0]

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def blob(self, limit: int = 512) -> bytes:
        """Up to ``limit`` bytes, as many as the input still has (no zero padding)."""
        n = min(self.uint(2), limit)
        chunk = self._data[self._at : self._at + n]
        self._at += n
        return chunk

    def pick(self, *options: Any) -> Any:
        return options[self.byte() % len(options)]


class Target:
    """de-eco's receiver over a fresh SQLite file; ``one_input`` is the fuzz target."""

    def __init__(self, world: Any, db: Path) -> None:
        self.world = world
        self.engine = open_engine(f"sqlite:///{db}")
        upgrade(self.engine)
        self.writer = Writer(self.engine)
        self.writer.start()
        self.limits: Limits = world.limits
        self.receiver = Receiver(
            self_member=RECEIVER,
            key=world.keys[RECEIVER],
            manifest=lambda: world.manifest,
            writer=self.writer,
            clock=lambda: NOW,
            limits=self.limits,
        )
        self.sequence = 0
        self.stats: Counter[str] = Counter()
        self._last_write = 0.0
        self.stats_file: Path | None = None
        self.artifacts: Path | None = None
        self._crashes: set[str] = set()
        self.announcement = announcement_to_proto(
            KnownContent(
                ContentHash(HashAlgorithm.SHA256, hashlib.sha256(b"fuzz-known").hexdigest()),
                SENDER,
                "c-" + "0" * 32,
                Classification.BASELINE,
                NOW - timedelta(minutes=1),
                "r-" + "0" * 32,
            )
        ).SerializeToString(deterministic=True)

    # -- building an envelope from a recipe ---------------------------------------------------

    def payload(self, r: Recipe) -> tuple[int, bytes]:
        choice = r.byte() % 4
        if choice == 3:
            return KIND_REPORT, r.blob()
        kind = KIND_ANNOUNCEMENT if choice == 2 else KIND_REPORT
        base: Message = (
            xpb.HashAnnouncement.FromString(self.announcement)
            if kind == KIND_ANNOUNCEMENT
            else pb.Report.FromString(self.world.payloads[r.byte() % len(self.world.payloads)])
        )
        # Fuzzer-chosen protobuf bytes merged over a valid payload: fields it names replace
        # (or, repeated, extend) the valid ones; the rest stay valid.
        with contextlib.suppress(DecodeError):
            base.MergeFromString(r.blob())
        return kind, base.SerializeToString()

    def signed(self, r: Recipe) -> xpb.Envelope:
        payloads = [self.payload(r) for _ in range(1 + r.byte() % 4)]
        wires = [p for _, p in payloads]
        self.sequence += 1
        key = self.world.keys[SENDER]
        header = xpb.EnvelopeHeader(
            sender=r.pick(SENDER, SENDER, SENDER, RECEIVER, "inhope", "", "x" * 300),
            recipient=r.pick(RECEIVER, RECEIVER, RECEIVER, SENDER, "", "DE-ECO"),
            sequence=r.pick(self.sequence, self.sequence, r.pick(*U64_EDGES), r.uint(8)),
            count=r.pick(len(wires), len(wires), len(wires), r.uint(4)),
            merkle_root=r.pick(merkle.root(wires), merkle.root(wires), r.blob(64)),
            kind=r.pick(
                payloads[0][0], payloads[0][0], KIND_REPORT, KIND_ANNOUNCEMENT, r.uint(4) - 2**31
            ),
            key_id=r.pick(key.key_id, key.key_id, key.key_id, "", r.blob(32).hex()),
            manifest_epoch=r.pick(1, 1, 1, 0, 2, r.pick(*U64_EDGES)),
        )
        at = r.pick(
            timestamp(NOW - timedelta(seconds=r.uint(2))),
            timestamp(NOW + timedelta(seconds=r.uint(2))),
            timestamp(NOW),
        )
        seconds = r.pick(at.seconds, at.seconds, at.seconds, r.uint(8) - 2**63)
        nanos = r.pick(at.nanos, at.nanos, r.uint(4) - 2**31)
        header.signed_at.seconds = seconds
        header.signed_at.nanos = nanos
        head = header.SerializeToString()
        return xpb.Envelope(header=head, signature=key.sign(head), payloads=wires)

    # -- the target ---------------------------------------------------------------------------

    def one_input(self, data: bytes) -> None:
        if not data:
            return
        self.stats["executions"] += 1
        if data[0] % 4 == 0:
            envelope = xpb.Envelope()
            try:
                envelope.ParseFromString(data[1:])
            except DecodeError:
                self.stats["undecodable"] += 1
                return
        else:
            envelope = self.signed(Recipe(data[1:]))
        try:
            receipt = self.receiver.receive(envelope)
        except TYPED as error:
            self.stats[f"refused:{getattr(error, 'code', type(error).__name__)}"] += 1
        except Exception as error:  # anything untyped is a crash
            self.crashed(data, error)
        else:
            self.stats["receipted"] += 1
            self.check_stored(envelope, receipt)
        self._flush()

    def crashed(self, data: bytes, error: Exception) -> None:
        """Record a crash and keep fuzzing: one artifact per distinct (type, place in ihx).

        libFuzzer would stop at the first crash; the known ones (fixes landing on main) would
        then hide every other. Each distinct crash keeps its first input as ``crash-<sig>``.
        """
        frames = [
            f
            for f in traceback.extract_tb(error.__traceback__)
            if str(ROOT) in f.filename and "site-packages" not in f.filename
        ]
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
        signature = f"{type(error).__name__}@{where}"
        self.stats[f"crash:{signature}"] += 1
        if self.artifacts is not None and signature not in self._crashes:
            self._crashes.add(signature)
            name = hashlib.sha256(signature.encode()).hexdigest()[:12]
            (self.artifacts / f"crash-{name}").write_bytes(data)
            print(f"crash: {signature}: {type(error).__name__}: {error}", file=sys.stderr)

    def check_stored(self, envelope: xpb.Envelope, receipt: xpb.SignedReceipt) -> None:
        """Soft invariants of what the receipt says was stored (counted, never a crash)."""
        body = xpb.ReceiptBody.FromString(receipt.body)
        header = xpb.EnvelopeHeader.FromString(envelope.header)
        try:
            header.signed_at.ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            self.stats["violation:receipt-for-unrepresentable-signed_at"] += 1
            return
        ids = [
            o.report_id
            for o in body.outcomes
            if o.outcome in (xpb.OUTCOME_NEW_CASE, xpb.OUTCOME_MERGED) and o.report_id
        ]
        self.stats["reports_stored"] += len(ids)
        if not ids:
            return
        # Judge each stored report by the envelope that stored it: a replay of a held report id
        # in a later envelope is answered with the earlier outcome and stores nothing new.
        t, inbox = schema.reports, schema.inbox
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.wire, t.c.received_at, inbox.c.header)
                .join(
                    inbox,
                    (inbox.c.sender == t.c.sender) & (inbox.c.sequence == t.c.envelope_sequence),
                )
                .where(t.c.id.in_(ids))
            ).all()
        for row in rows:
            if _has_unknown_fields(pb.Report.FromString(row.wire)):
                self.stats["violation:stored-wire-has-unknown-fields"] += 1
            stored_by = xpb.EnvelopeHeader.FromString(row.header).signed_at.ToDatetime(tzinfo=UTC)
            if not EARLIEST <= row.received_at <= stored_by + self.limits.max_clock_skew:
                self.stats["violation:stored-received_at-outside-window"] += 1

    def _flush(self) -> None:
        # atheris exits from C (no atexit): keep the stats file current instead.
        now = time.monotonic()
        if self.stats_file is not None and now - self._last_write > 1.0:
            self._last_write = now
            self.stats_file.write_text(json.dumps(dict(self.stats), sort_keys=True))


def _has_unknown_fields(msg: Message) -> bool:
    if len(UnknownFieldSet(msg)):
        return True
    for field, value in msg.ListFields():
        if field.type == field.TYPE_MESSAGE:
            values = value if field.is_repeated else [value]
            if any(_has_unknown_fields(v) for v in values):
                return True
    return False


def seeds(target: Target) -> list[bytes]:
    """A raw valid envelope, and recipes that take every valid choice (all-zero reads)."""
    world = target.world
    return [
        b"\x00" + world.envelope,
        b"\x01" + bytes(64),
        b"\x02" + b"\x00\x00" + b"\x00" * 62,
        b"\x03" + b"\x02" + bytes(63),  # an announcement
        b"\x01" + b"\x03" + bytes(4) + b"\x02\x00" + b"\x18\x01",  # three payloads, one merged
    ]


def worker(seconds: float, work: Path) -> int:
    target = Target(World(), Path(tempfile.mkdtemp(dir=work)) / "receiver.db")
    target.stats_file = work / "stats.json"

    target.artifacts = work / "artifacts"
    code: int = fuzz_envelope.run_engine(
        target.one_input, seeds(target), seconds, work / "corpus", work / "artifacts"
    )
    target._last_write = 0.0
    target._flush()
    return code


def soft_counters(work: Path) -> dict[str, Any]:
    path = work / "stats.json"
    stats: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
    violations = {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("violation:")}
    refusals = {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("refused:")}
    crashes = {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("crash:")}
    print(f"receipted {stats.get('receipted', 0)}, reports stored {stats.get('reports_stored', 0)}")
    print(f"refusals: {json.dumps(refusals, sort_keys=True)}")
    print(f"soft invariant violations: {json.dumps(violations, sort_keys=True)}")
    print(f"crashing executions by kind: {json.dumps(crashes, sort_keys=True)}")
    return {
        "crash_kinds": crashes,
        "receipted": stats.get("receipted", 0),
        "reports_stored": stats.get("reports_stored", 0),
        "refusals": refusals,
        "soft_violations": violations,
    }


def main() -> int:
    args = fuzz_envelope.arguments()
    if args.worker:
        assert args.dir is not None
        return worker(args.seconds, args.dir)
    code: int = fuzz_envelope.supervise(
        Path(__file__).resolve(), "fuzz_receiver", args.seconds, soft_counters
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
