"""Back after maintenance: how soon a peer delivers to a node that restarts after a long outage.

Two nodes in this process (nl-eokm, de-eco; SQLite files), the production backoff (1 s to 5
minutes). de-eco is stopped, nl-eokm queues reports for it, and nl-eokm's sender fails for real
(connection refused) while the waits between its attempts are fast-forwarded until the backoff
has been at its maximum — an outage longer than 5 minutes as the sender sees it. Its next wait
is real (≥ 150 s). de-eco then starts again (same database, same port) with nothing to send;
the figure is the time from its ``start()`` returning (its server listening, its hellos on the
way) to every queued report receipted at nl-eokm. Without the hello it would be the remaining
backoff, printed beside it. Rounds after the fifth are spaced by the peer's hello allowance
(five at once, then one per 6 s), as real restarts are.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import bench_common
from sqlalchemy import text

from exchange.client.stubs import IntakeClient
from exchange.node import Node
from exchange.settings import Settings
from exchange.tools.provision import MemberPlan, provision_federation
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import report_pb2 as pb

NL, DE = "nl-eokm", "de-eco"
FAST_FORWARDED = 11  # ceilings 1 … 256 s, then two at the 300 s maximum
# The hello desk's allowance per member (exchange/hellos.py): five at once, then one per 6 s.
# Ten restarts seconds apart would spend it and measure the rate limit, not the resumption.
HELLO_BURST, HELLO_EVERY_S = 5, 6.5


class FastForward:
    def __init__(self) -> None:
        self.delays: list[float] = []
        self.sleeping = threading.Event()

    def __call__(self, event: threading.Event, seconds: float) -> bool:
        if threading.current_thread().name != f"ihx-send-{DE}":
            return event.wait(seconds)
        self.delays.append(seconds)
        if len(self.delays) % (FAST_FORWARDED + 1):
            return False
        self.sleeping.set()
        try:
            return event.wait(seconds)
        finally:
            self.sleeping.clear()


def request(i: int, run: str) -> ipb.SubmitReportRequest:
    digest = hashlib.sha256(f"{run}:{i}".encode()).hexdigest()
    return ipb.SubmitReportRequest(
        url=f"https://files.example.de/{run}/{i}.jpg",
        site_type=pb.SITE_TYPE_IMAGE_HOST,
        items=[
            pb.Item(
                hashes=[pb.ContentHash(algorithm=pb.HASH_ALGORITHM_SHA256, hex=digest)],
                classification=pb.CLASSIFICATION_BASELINE,
                media_type=pb.MEDIA_TYPE_IMAGE,
                age_group=pb.AGE_GROUP_PREPUBESCENT,
            )
        ],
        client_ref=str(i),
    )


def pending(node: Node) -> int:
    with node.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM outbox")).scalar() or 0)


def one_round(
    fed_settings: Mapping[str, Settings], nl: Node, waits: FastForward, run: int
) -> tuple[float, float]:
    """(seconds from de-eco's start to all receipted, the backoff it would have waited)."""
    token = nl.issue_token("bench", "reports:submit")
    with IntakeClient(nl.address, token=token, timeout=60) as client:
        list(client.submit_requests(request(i, f"r{run}") for i in range(20)))
    while not waits.sleeping.is_set():
        time.sleep(0.01)
    remaining = waits.delays[-1]
    de = Node(fed_settings[DE])
    de.start()
    t0 = time.monotonic()
    while pending(nl):
        time.sleep(0.005)
    took = time.monotonic() - t0
    de.stop()
    return took, remaining


def main() -> None:
    args = bench_common.parser(__doc__ or "").parse_args()
    rounds = 3 if args.quick else 10
    with tempfile.TemporaryDirectory() as tmp:
        fed = provision_federation(
            Path(tmp) / "fed",
            [MemberPlan(NL, "A", ("NL",)), MemberPlan(DE, "B", ("DE",))],
            coordinator=DE,
            now=datetime.now(UTC),
            orphan_rules={},
            country_networks={"185.107.56.0/22": "NL", "5.9.0.0/16": "DE"},
            asn_networks={},
            static_hosts={"files.example.de": ["5.9.10.20"]},
        )
        waits = FastForward()
        nl = Node(fed.settings[NL], wait=waits)
        nl.start()
        try:
            figures = []
            for r in range(rounds):
                if r >= HELLO_BURST - 1:
                    time.sleep(HELLO_EVERY_S)  # maintenance restarts are not seconds apart
                figures.append(one_round(fed.settings, nl, waits, r))
        finally:
            nl.stop()
    resumed = [f[0] for f in figures]
    print("rounds (ms):", [round(r * 1000) for r in resumed])
    remaining = [f[1] for f in figures]
    p50, top = bench_common.median(resumed) * 1000, max(resumed) * 1000
    print(f"outage beyond the maximum backoff ({FAST_FORWARDED} waits skipped), {rounds} rounds")
    print(f"  de-eco started → 20 reports receipted: p50 {p50:.0f} ms, max {top:.0f} ms")
    print(f"  the backoff would have waited: min {min(remaining):.0f} s")
    bench_common.emit(
        {
            "bench": "hello_resume",
            "rounds": rounds,
            "resume_p50_s": round(bench_common.median(resumed), 4),
            "resume_max_s": round(max(resumed), 4),
            "backoff_remaining_min_s": round(min(remaining), 1),
        }
    )


if __name__ == "__main__":
    main()
