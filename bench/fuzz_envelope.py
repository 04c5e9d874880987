"""Coverage-guided fuzzing of envelope decoding and verification (atheris / libFuzzer).

Every input is one of three things, chosen by its first byte: the bytes of an ``Envelope`` as a
peer would send them (decoded and opened with ``exchange.wire.envelope.open_envelope`` against a
real two-member manifest); a report payload (decoded and checked as the receiver checks it: codec,
canonical URL, url_key, report id); or report payloads sealed into a validly signed envelope, so
the fuzzer gets past the signature and reaches the per-payload checks. The only acceptable
failures are the typed errors (``ExchangeError``, ``AuthError``, ``RoutingError``, and
protobuf's ``DecodeError`` at the edge); anything else is a crash.

``python bench/fuzz_envelope.py [--quick] [--seconds N]``: the fuzzer runs in a child process
for a bounded time (``--quick``: 30 s of fuzzing); the last line printed is one JSON object with the
executions and the crashes. Without atheris (``pip install atheris``) the same target runs under
a plain random-mutation loop seeded with the same corpus; the JSON says which engine ran.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

try:
    import atheris

    HAVE_ATHERIS = True
except ImportError:  # pragma: no cover - depends on the machine
    HAVE_ATHERIS = False


# Instrument ihx's modules for coverage only in the fuzzing child (instrumenting costs seconds).
_INSTRUMENT = HAVE_ATHERIS and "--worker" in sys.argv
with atheris.instrument_imports() if _INSTRUMENT else contextlib.nullcontext():
    from google.protobuf.message import DecodeError

    from auth.errors import AuthError
    from auth.keys import SigningKey
    from auth.manifest import Manifest, Member, MemberKey
    from exchange.domain import (
        Classification,
        ContentHash,
        HashAlgorithm,
        Report,
        make_facts,
        make_item,
        report_id_for,
    )
    from exchange.errors import ExchangeError
    from exchange.wire.codec import parse_report, report_from_proto, report_to_proto
    from exchange.wire.envelope import KIND_REPORT, Limits, open_envelope, seal
    from ihx.v1 import exchange_pb2 as xpb
    from routing.canonical import canonicalize
    from routing.decision import Decision, DecisionReason
    from routing.errors import RoutingError


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SENDER, RECEIVER = "nl-eokm", "de-eco"


class World:
    """A two-member manifest with real keys, and a valid envelope from nl-eokm to de-eco."""

    def __init__(self) -> None:
        def key(name: str) -> SigningKey:
            return SigningKey.from_seed(hashlib.sha256(name.encode()).digest())

        self.keys = {m: key(m) for m in (SENDER, RECEIVER, "inhope")}
        start = datetime(2025, 1, 1, tzinfo=UTC)
        members = tuple(
            Member(
                id=m,
                name=m,
                countries=frozenset(cc),
                endpoint=f"127.0.0.1:{7700 + i}",
                keys=(MemberKey.of(self.keys[m].public, start),),
            )
            for i, (m, cc) in enumerate(((SENDER, {"NL"}), (RECEIVER, {"DE"}), ("inhope", set())))
        )
        self.manifest = Manifest(
            network="ihx-fuzz",
            epoch=1,
            issued_at=start,
            members=members,
            orphan_rules={},
            coordinator="inhope",
            coordinator_keys=(MemberKey.of(self.keys["inhope"].public, start),),
        )
        self.limits = Limits()
        self.payloads = [self.report_wire(i) for i in range(3)]
        self.envelope = self.sealed(self.payloads)

    def report_wire(self, i: int) -> bytes:
        url = canonicalize(f"https://hosting-de.example/fuzz/{i}.jpg").url
        url_key = hashlib.sha256(url.encode()).digest()
        digest = hashlib.sha256(f"fuzz-{i}".encode()).hexdigest()
        items = (make_item([ContentHash(HashAlgorithm.SHA256, digest)], Classification.BASELINE),)
        report = Report(
            id=report_id_for(SENDER, url_key, items),
            origin_member=SENDER,
            url=url,
            url_key=url_key,
            received_at=NOW,
            facts=make_facts(),
            items=items,
            hosting_country="DE",
            decision_member=RECEIVER,
            decision_reason="served-member",
        )
        decision = Decision(
            member=RECEIVER,
            reason=DecisionReason.SERVED_MEMBER,
            country="DE",
            explanation="fuzz",
            manifest_epoch=1,
            local=False,
        )
        return report_to_proto(report, None, decision).SerializeToString(deterministic=True)

    def sealed(self, payloads: list[bytes]) -> bytes:
        return (
            seal(
                self.keys[SENDER],
                sender=SENDER,
                recipient=RECEIVER,
                sequence=1,
                kind=KIND_REPORT,
                payloads=payloads,
                signed_at=NOW,
                manifest_epoch=1,
            )
            .to_proto()
            .SerializeToString()
        )


def make_target(world: World) -> Callable[[bytes], None]:
    typed = (ExchangeError, AuthError, RoutingError, DecodeError)

    def check_payload(payload: bytes) -> None:
        # As the receiver checks a report payload (exchange/receiver.py).
        report = report_from_proto(parse_report(payload))
        canonical = canonicalize(report.url)
        if canonical.url == report.url:
            hashlib.sha256(report.url.encode()).digest()
        report_id_for(report.origin_member, report.url_key, report.items)

    def one_input(data: bytes) -> None:
        if not data:
            return
        mode, body = data[0] % 3, data[1:]
        try:
            if mode == 0:
                envelope = xpb.Envelope()
                envelope.ParseFromString(body)
                opened = open_envelope(
                    envelope,
                    manifest=world.manifest,
                    self_member=RECEIVER,
                    now=NOW,
                    limits=world.limits,
                )
                for p in opened.payloads:
                    with contextlib.suppress(*typed):
                        check_payload(p)
            elif mode == 1:
                check_payload(body)
            else:
                # Split into up to 4 payloads, seal validly, open, check each payload.
                parts = [body[i::4] for i in range(min(4, max(1, len(body))))]
                envelope = xpb.Envelope()
                envelope.ParseFromString(world.sealed(parts))
                opened = open_envelope(
                    envelope,
                    manifest=world.manifest,
                    self_member=RECEIVER,
                    now=NOW,
                    limits=world.limits,
                )
                for p in opened.payloads:
                    with contextlib.suppress(*typed):
                        check_payload(p)
        except typed:
            return

    return one_input


def seeds(world: World) -> list[bytes]:
    return [
        b"\x00" + world.envelope,
        b"\x01" + world.payloads[0],
        b"\x02" + world.payloads[1],
        b"\x00" + world.envelope[: len(world.envelope) // 2],
    ]


# -- the child: atheris, or the fallback loop -----------------------------------------------------


def worker(seconds: float, corpus: Path, artifacts: Path) -> int:
    world = World()
    return run_engine(make_target(world), seeds(world), seconds, corpus, artifacts)


def run_engine(
    target: Callable[[bytes], None],
    corpus_seeds: list[bytes],
    seconds: float,
    corpus: Path,
    artifacts: Path,
) -> int:
    """Fuzz ``target`` from ``corpus_seeds`` for ``seconds``: atheris, else the fallback loop."""
    for i, s in enumerate(corpus_seeds):
        (corpus / f"seed-{i}").write_bytes(s)
    if HAVE_ATHERIS:
        argv = [
            sys.argv[0],
            f"-max_total_time={int(seconds)}",
            "-print_final_stats=1",
            "-max_len=8192",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={artifacts}/",
            str(corpus),
        ]
        atheris.Setup(argv, target)
        atheris.Fuzz()
        return 0
    return _fallback(target, corpus_seeds, seconds, artifacts)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(5)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 2 and out:
            del out[at : at + rng.randint(1, 16)]
        elif op == 3 and out:
            out[min(at, len(out) - 1)] = rng.choice([0, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A])
        else:
            del out[at:]
            out += rng.randbytes(rng.randint(0, 4))
    return bytes(out)


def _fallback(
    target: Callable[[bytes], None], corpus: list[bytes], seconds: float, artifacts: Path
) -> int:
    rng = random.Random(0x1F0)  # reproducible mutations, not secrets
    deadline = time.monotonic() + seconds
    runs = crashes = 0
    while time.monotonic() < deadline:
        data = _mutate(rng, rng.choice(corpus))
        runs += 1
        try:
            target(data)
        except Exception as error:  # anything untyped is a crash
            crashes += 1
            (artifacts / f"crash-{crashes}").write_bytes(data)
            print(f"crash: {type(error).__name__}: {error}", file=sys.stderr)
    print(f"stat::number_of_executed_units: {runs}", file=sys.stderr)
    print(f"fallback-crashes: {crashes}", file=sys.stderr)
    return 1 if crashes else 0


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="finish within 60 s")
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dir", type=Path, default=None, help=argparse.SUPPRESS)
    args, _ = p.parse_known_args()
    if args.seconds is None:
        args.seconds = 30.0 if args.quick else 600.0
    return args


def supervise(
    script: Path,
    bench: str,
    seconds: float,
    extra: Callable[[Path], dict[str, Any]] | None = None,
) -> int:
    """Run ``script --worker`` for ``seconds`` in a child; print the figures and the JSON line.

    ``extra(work_dir)`` adds fields to the JSON (read from files the worker left there).
    """
    with tempfile.TemporaryDirectory(prefix="ihx-fuzz-") as tmp:
        work = Path(tmp)
        (work / "corpus").mkdir()
        (work / "artifacts").mkdir()
        started = time.monotonic()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "proto")])}
        proc = subprocess.run(
            [
                sys.executable,
                str(script),
                "--worker",
                "--seconds",
                str(seconds),
                "--dir",
                str(work),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=seconds + 60,
            check=False,
        )
        elapsed = time.monotonic() - started
        log = proc.stderr
        executions = sum(int(n) for n in re.findall(r"stat::number_of_executed_units: (\d+)", log))
        if not executions:  # libFuzzer prints "#N DONE" when stats are missing
            done = re.findall(r"#(\d+)\s+DONE", log)
            executions = int(done[-1]) if done else 0
        crash_files = sorted(p.name for p in (work / "artifacts").iterdir())
        crashes = len(crash_files)
        if proc.returncode != 0 and not crashes:
            crashes = 1  # the worker died without writing an artifact
        if crashes:
            print("\n".join(log.splitlines()[-40:]), file=sys.stderr)
        result: dict[str, Any] = {
            "bench": bench,
            "engine": "atheris" if HAVE_ATHERIS else "random-mutation",
            "seconds": round(elapsed, 1),
            "executions": executions,
            "executions_per_s": round(executions / elapsed) if elapsed else 0,
            "crashes": crashes,
            "crash_files": crash_files,
        }
        if extra is not None:
            result.update(extra(work))
        print(
            f"{bench}: {executions} executions in {elapsed:.0f} s "
            f"({result['executions_per_s']}/s), {crashes} crashes"
        )
        print(json.dumps(result, sort_keys=True))
    return 0 if crashes == 0 else 1


def main() -> int:
    args = arguments()
    if args.worker:
        assert args.dir is not None
        return worker(args.seconds, args.dir / "corpus", args.dir / "artifacts")
    return supervise(Path(__file__).resolve(), "fuzz_envelope", args.seconds)


if __name__ == "__main__":
    sys.exit(main())
