"""CPU seconds per 1,000 reports of bulk intake, in one process: the number to cut for issue 16.

Why: exchange_throughput.py measures a node's whole CPU across two processes on a shared
machine, where one run's figure moves by ±10%. This drives node A's bulk-intake path alone —
``IntakeServicer.SubmitReports`` with 500-report messages (decode → canonicalise, trace, decide
→ prepared wire report → one group commit per coalesced batch into a real migrated SQLite file →
the answers) — and counts ``time.process_time`` (every thread of this process), which other
processes' load barely moves. Every report is hosted in DE, so each is stored and queued for
de-eco, as in exchange_throughput.py. For a profile, run it under
``py-spy record --gil -r 200 -f raw -- python intake_cpu.py --quick``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_common as common
from exchange_throughput import request

from auth.manifest import Manifest
from exchange.edge.intake_service import IntakeServicer
from exchange.intake import Intake
from exchange.store.engine import open_engine
from exchange.store.migrate import upgrade
from exchange.store.writer import Writer
from ihx.v1 import intake_pb2 as ipb
from routing.geoip import GeoIp
from routing.geoip_build import build_asn_db, build_country_db
from routing.resolver import StaticResolver
from routing.trace import Tracer

NOW = datetime(2026, 11, 22, tzinfo=UTC)
CHUNK = 500


def manifest() -> Manifest:
    return common.bench_manifest([("nl-eokm", "NL"), ("de-eco", "DE")], "nl-eokm", NOW)


class _Context:
    def is_active(self) -> bool:
        return True

    def abort(self, code: Any, message: str) -> None:
        raise RuntimeError(f"{code}: {message}")


def chunks(n: int, run: str) -> Iterator[ipb.SubmitReportsRequest]:
    for start in range(0, n, CHUNK):
        yield ipb.SubmitReportsRequest(
            reports=[request(i, run) for i in range(start, min(n, start + CHUNK))]
        )


def one_run(root: Path, geoip: GeoIp, n: int, run: str) -> float:
    engine = open_engine(f"sqlite:///{root / f'{run}.db'}")
    upgrade(engine)
    writer = Writer(engine)
    writer.start()
    m = manifest()
    tracer = Tracer(StaticResolver({"files.example.de": ["81.0.0.1"]}), geoip, lambda: NOW)
    intake = Intake(
        self_member="nl-eokm",
        tracer=tracer,
        manifest=lambda: m,
        writer=writer,
        clock=lambda: datetime.now(UTC),
        wake=lambda _: None,
    )
    servicer = IntakeServicer(intake)
    requests = list(chunks(n, run))  # built before the clock starts
    try:
        cpu = time.process_time()
        answered = 0
        for response in servicer.SubmitReports(iter(requests), _Context()):  # type: ignore[arg-type]
            answered += sum(1 for r in response.results if not r.error_code)
        spent = time.process_time() - cpu
    finally:
        writer.stop()
        engine.dispose()
    assert answered == n, answered
    return spent / n * 1000


def main() -> None:
    parser = common.parser(__doc__ or "")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n = 10_000 if args.quick else 40_000
    with common.scratch("ihx-intake-cpu-") as root:
        country = build_country_db(root / "c.mmdb", {"0.0.0.0/1": "DE", "128.0.0.0/1": "NL"})
        asn = build_asn_db(root / "a.mmdb", {"0.0.0.0/0": (64500, "Example")})
        figures = []
        with GeoIp(country, asn) as geoip:
            one_run(root, geoip, 1000, "warm")
            for i in range(args.runs):
                figures.append(one_run(root, geoip, n, f"r{i}"))
                print(f"  run {i + 1}: {figures[-1]:.3f} CPU s per 1,000 reports", flush=True)
        common.emit(
            {
                "bench": "intake_cpu",
                "reports": n,
                "cpu_s_per_1000_reports": round(common.median(figures), 3),
                "runs": [round(f, 3) for f in figures],
            }
        )


if __name__ == "__main__":
    main()
