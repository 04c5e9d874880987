"""Partners: cases pulled per second by one partner, log entries verified/s, token checks/s.

- pull: a node process holding N local cases assigned to one partner; the partner streams them
  with ``PullCases`` pages of 1,000 and acknowledges each page (``ihx cases pull`` does the same);
- verify: the node's whole routing log (hash chain + signed checkpoints) verified from its DB;
- tokens: ``TokenVerifier.verify`` on distinct tokens (signature checked every time) and on one
  repeated token (a partner's session: the signature check is cached).
"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import bench_common as common

from auth.tokens import Scope, TokenIssuer, TokenPolicy, TokenVerifier
from exchange.checkpoints import verify_log
from exchange.client.stubs import IntakeClient, PartnerClient
from exchange.manifest_store import ManifestStore, trust_anchors
from exchange.settings import load_settings
from exchange.store.engine import open_engine
from exchange.store.routing_log import load_checkpoints, load_entries
from exchange.tools.provision import MemberPlan, provision_federation
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import report_pb2 as pb

PARTNERS = """
[partners]
visibility_timeout_s = 600.0
[[partners.rules]]
partner = "nl-police"
countries = ["NL"]
classifications = ["baseline", "national"]

[log]
checkpoint_every = 5000
checkpoint_interval_s = 5.0
"""


def request(i: int) -> ipb.SubmitReportRequest:
    return ipb.SubmitReportRequest(
        url=f"https://img.example.nl/a/{i}.jpg",
        items=[
            pb.Item(
                hashes=[pb.ContentHash(algorithm=pb.HASH_ALGORITHM_SHA256, hex=f"{i:064x}")],
                classification=pb.CLASSIFICATION_BASELINE,
            )
        ],
    )


def token_rates(seconds: float) -> tuple[float, float]:
    from auth.keys import SigningKey

    now = datetime.now(UTC)
    key = SigningKey.generate()
    issuer = TokenIssuer(key, "nl-eokm", "nl-eokm", lambda: now)
    verifier = TokenVerifier(
        TokenPolicy("nl-eokm", {"nl-eokm": issuer.trusted}), lambda: now, cache_size=0
    )
    tokens = [
        issuer.issue(f"p{i}", [Scope.CASES_PULL], ttl=timedelta(minutes=5)) for i in range(2000)
    ]
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        verifier.verify(tokens[n % len(tokens)])
        n += 1
    distinct = n / (time.perf_counter() - t)
    cached = TokenVerifier(TokenPolicy("nl-eokm", {"nl-eokm": issuer.trusted}), lambda: now)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        cached.verify(tokens[0])
        n += 1
    return distinct, n / (time.perf_counter() - t)


def main() -> None:
    args = common.parser(__doc__ or "").parse_args()
    n = 10_000 if args.quick else 50_000
    with common.scratch("ihx-bench-partners-") as root:
        fed = provision_federation(
            root / "fed",
            [MemberPlan("nl-eokm", "NL", ("NL",)), MemberPlan("inhope", "coordinator", ())],
            coordinator="inhope",
            now=datetime.now(UTC),
            orphan_rules={},
            country_networks={"185.107.56.0/22": "NL"},
            asn_networks={"185.107.56.0/22": (43350, "NForce Entertainment B.V.")},
            static_hosts={"img.example.nl": ["185.107.56.1"]},
            extra_settings=PARTNERS,
        )
        settings = fed.settings["nl-eokm"]
        proc = common.start_node(fed.config_path("nl-eokm"), root / "node.log")
        try:
            address = settings.listen
            common.wait_ready(address)
            print(f"loading {n:,} local cases …")
            submit = fed.token("nl-eokm")
            with IntakeClient(address, token=submit, timeout=600) as client:
                refused = sum(
                    1 for r in client.submit_requests(request(i) for i in range(n)) if r.error_code
                )
            if refused:
                raise SystemExit(f"{refused} reports refused")
            pull_token = fed.token("nl-eokm", Scope.CASES_PULL, subject="nl-police")
            pulled = 0
            t = time.perf_counter()
            with PartnerClient(address, token=pull_token, timeout=600) as partner:
                cursor = ""
                while True:
                    page = list(partner.pull(cursor, 1000))
                    if not page:
                        break
                    pulled += len(page)
                    partner.ack([c.id for c in page])
                    cursor = page[-1].cursor
            pull_rate = pulled / (time.perf_counter() - t)
            print(
                "cases pulled and acknowledged by one partner: "
                f"{pull_rate:,.0f}/s ({pulled:,} cases)"
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

        store = ManifestStore(
            settings.manifest_path, trust_anchors(settings.trusted_keys), lambda: datetime.now(UTC)
        )
        engine = open_engine(load_settings(fed.config_path("nl-eokm")).database_url)
        with engine.connect() as conn:
            entries = list(load_entries(conn))
            checkpoints = load_checkpoints(conn, "nl-eokm")
        engine.dispose()
        t = time.perf_counter()
        verdict = verify_log(entries, checkpoints, store.current())
        verify_rate = verdict.entries / (time.perf_counter() - t)
        print(
            f"routing log verified: {verify_rate:,.0f} entries/s ({verdict.entries:,} entries, "
            f"{verdict.checkpoints} checkpoints, {'intact' if verdict.ok else 'BROKEN'})"
        )
        distinct, cached = token_rates(1.0 if args.quick else 3.0)
        print(f"token checks: {distinct:,.0f}/s distinct tokens, {cached:,.0f}/s repeated token")
        common.emit(
            {
                "bench": "partners",
                "cases": pulled,
                "cases_pulled_per_s": round(pull_rate),
                "log_entries": verdict.entries,
                "log_entries_verified_per_s": round(verify_rate),
                "log_intact": verdict.ok,
                "token_checks_per_s_distinct": round(distinct),
                "token_checks_per_s_repeated": round(cached),
                "goal_cases_pulled_per_s": 5000,
                "goal_log_entries_verified_per_s": 100000,
            }
        )


if __name__ == "__main__":
    main()
