"""The network's statistics gathered: signing, verifying and merging members' snapshots.

Each of N members (default 40; ``--quick`` 10) has a year of figures by day — the count figures
by country for 60 countries, 400 hosters, the durations in-network/orphan and per hoster, the
gauges — as large as a busy member's snapshot gets. Timed: encoding and signing one snapshot
(what ``GetStatistics`` adds to the engine's work), opening one member's answer (the signature,
then every field: what a gatherer spends per member) and its peak Python heap, merging all N,
and the whole ``gather`` against N in-process gRPC servers on loopback each answering its
member's pre-signed bytes (8 threads, the CLI's default). Nothing is asserted.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Callable
from concurrent import futures
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import bench_common as common
import grpc

from auth.keys import SigningKey
from auth.manifest import Manifest, Member, MemberKey
from exchange.client.statistics import Gathering, gather
from exchange.stats.model import EDGES_MS, Figure, Granularity, Histogram, Period, Snapshot, merge
from exchange.wire.stats_signed import open_statistics, sign_statistics

PERIOD = Period(date(2024, 1, 1), date(2024, 12, 31), Granularity.DAY)
NOW = datetime(2025, 1, 2, tzinfo=UTC)
COUNTRIES = [f"{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(60)]
HOSTERS = [f"AS{64500 + i} Hosting Company {i} B.V." for i in range(400)]
COUNT_FIGURES = (Figure.INTAKE, Figure.ITEMS, Figure.MOVED)


def _row(rng: random.Random) -> tuple[int, ...]:
    return tuple(rng.randrange(0, 40) for _ in PERIOD.starts)


def _histogram(rng: random.Random) -> Histogram:
    return Histogram(tuple(rng.randrange(0, 500) for _ in range(len(EDGES_MS) + 1)))


def member_snapshot(member: str, seed: int) -> Snapshot:
    rng = random.Random(seed)
    counts = {(f, cc): _row(rng) for f in COUNT_FIGURES for cc in COUNTRIES}
    counts.update({(Figure.HOSTER_ITEMS, h): _row(rng) for h in HOSTERS})
    histograms = {(f, k): _histogram(rng) for f in (Figure.TO_LEA, Figure.TO_REMOVAL)
                  for k in ("in_network", "orphan")}  # fmt: skip
    histograms.update({(Figure.HOSTER_REMOVAL, h): _histogram(rng) for h in HOSTERS})
    gauges = {(Figure.HOSTER_ONLINE, h): rng.randrange(0, 50) for h in HOSTERS}
    return Snapshot((member,), PERIOD, NOW, counts, histograms, gauges)


def network(n: int) -> tuple[Manifest, dict[str, SigningKey]]:
    keys = {f"m{i:03d}": SigningKey.generate() for i in range(n)}
    since = NOW.replace(year=2020)
    members = tuple(
        Member(m, m, frozenset(), "127.0.0.1:1", (MemberKey.of(k.public, not_before=since),))
        for m, k in keys.items()
    )
    coordinator = MemberKey.of(SigningKey.generate().public, not_before=since)
    manifest = Manifest("bench", 1, NOW, members, {}, members[0].id, (coordinator,))
    return manifest, keys


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _serve(answer: bytes) -> tuple[grpc.Server, str]:
    def get(request: bytes, context: grpc.ServicerContext) -> bytes:
        return answer

    handler = grpc.unary_unary_rpc_method_handler(get)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("ihx.v1.Statistics", {"GetStatistics": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def main() -> None:
    args = common.parser(__doc__ or "").parse_args()
    n = 10 if args.quick else 40
    manifest, keys = network(n)
    snapshots = {m: member_snapshot(m, i) for i, m in enumerate(keys)}
    sign_s, signed = _timed(lambda: {m: sign_statistics(keys[m], s) for m, s in snapshots.items()})
    answers = {m: s.SerializeToString() for m, s in signed.items()}  # type: ignore[attr-defined]
    first = next(iter(answers))
    skew = timedelta(minutes=15)

    def open_one(m: str) -> Snapshot:
        return open_statistics(
            answers[m], member=m, period=PERIOD, manifest=manifest, now=NOW, max_skew=skew
        )

    tracemalloc.start()
    open_s, _ = _timed(lambda: open_one(first))
    heap_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    opened = [open_one(m) for m in answers]
    merge_s, _ = _timed(lambda: merge(PERIOD, opened, {}, NOW))

    served = {m: _serve(a) for m, a in answers.items()}
    members = tuple(replace(x, endpoint=served[x.id][1]) for x in manifest.members)
    how = Gathering(tokens={m.id: "t" for m in members}, clock=lambda: NOW, max_skew=skew)
    gather_s, merged = _timed(lambda: gather(replace(manifest, members=members), PERIOD, how))
    for server, _ in served.values():
        server.stop(0)
    series = (
        len(snapshots[first].counts)
        + len(snapshots[first].histograms)
        + len(snapshots[first].gauges)
    )
    result = {
        "members": n,
        "series_per_member": series,
        "body_bytes": len(signed[first].body),  # type: ignore[index]
        "sign_ms_per_member": 1000 * sign_s / n,
        "open_ms_per_member": 1000 * open_s,
        "open_heap_peak_mb": heap_peak / 2**20,
        "merge_ms": 1000 * merge_s,
        "gather_s": gather_s,
        "gather_missing": len(merged.missing),  # type: ignore[attr-defined]
    }
    for key, value in result.items():
        print(f"{key:>22}: {value:,.1f}" if isinstance(value, float) else f"{key:>22}: {value:,}")
    common.emit(result)


if __name__ == "__main__":
    main()
