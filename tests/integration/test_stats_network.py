"""``ihx stats --network`` across real nodes: the merge is the sum of the signed snapshots.

Four real nodes on loopback (nl-eokm, de-eco, us-ncmec and the coordinator inhope) exchange
reports from two origins until every batch is receipted; then us-ncmec stops. Asked from the
coordinator, the network's figures are exactly the sum of the snapshots of the three nodes that
answered — each taken from the node itself — and us-ncmec is named as missing with why, in the
table, in JSON and in CSV; the command exits 1 because the figures are incomplete. A member
whose token lacks ``stats:read`` is named as refusing it, never silently left out.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from auth.tokens import Scope
from common.clock import system_clock
from exchange.cli.main import app
from exchange.client.statistics import Gathering, gather
from exchange.client.stubs import IntakeClient
from exchange.stats.model import Figure, Granularity, Period, Snapshot, merge
from exchange.wire.stats_codec import request_from_period
from exchange.wire.stats_signed import sign_statistics
from ihx.v1 import statistics_pb2 as spb
from ihx.v1 import statistics_pb2_grpc as sgrpc
from tests.exchange.factories import make_submission, url_in
from tests.integration.support import (
    COORDINATOR,
    DE,
    NL,
    PLANS,
    US,
    Cluster,
    provision,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)

ANSWERING = (NL, DE, COORDINATOR)


def _period() -> Period:
    today = datetime.now(UTC).date()
    return Period(today - timedelta(days=2), today + timedelta(days=1), Granularity.DAY)


def _exchange(cluster: Cluster) -> None:
    """Reports from nl-eokm and de-eco to every member (and an orphan), all receipted."""
    plan = {NL: {"DE": 3, "US": 2, "JP": 1, "NL": 2}, DE: {"NL": 2, "US": 1, "DE": 1}}
    for origin, countries in plan.items():
        cluster.submit(
            origin,
            [
                make_submission(url_in(cc, f"/{origin}/{i}.jpg"), hashes=[f"{origin}-{cc}-{i}"])
                for cc, n in countries.items()
                for i in range(n)
            ],
        )
    wait_until(lambda: all(cluster.drained(m) for m in plan), what="every report receipted")


def _tokens(cluster: Cluster, scopes: dict[str, Scope] | None = None) -> dict[str, str]:
    """A token issued by each member's node for the coordinator, ``stats:read`` unless told."""
    return {
        m: cluster.fed.token(m, (scopes or {}).get(m, Scope.STATS_READ), subject="coordinator")
        for m in (NL, DE, US, COORDINATOR)
    }


def _options(tokens: dict[str, str]) -> list[str]:
    return [x for member, token in tokens.items() for x in ("--token", f"{member}={token}")]


def _own(cluster: Cluster, period: Period) -> dict[str, Snapshot]:
    return {m: cluster.node(m).figures.snapshot(period) for m in ANSWERING}


def test_the_network_figures_are_the_sum_of_the_members_that_answered(cluster: Cluster) -> None:
    _exchange(cluster)
    cluster.stop(US)
    period = _period()
    own = _own(cluster, period)
    expected = merge(period, list(own.values()), {}, datetime.now(UTC)).snapshot
    # 12 reports, 9 sent to others; us-ncmec's 4 received are missing with it.
    assert (expected.total(Figure.INTAKE), expected.total(Figure.SENT)) == (12, 9)
    assert expected.total(Figure.RECEIVED) == 9 - 4

    how = Gathering(
        tokens=_tokens(cluster),
        clock=system_clock,
        max_skew=timedelta(minutes=15),
        timeout=10,
    )
    merged = gather(cluster.fed.manifest, period, how)
    assert merged.answered == tuple(sorted(ANSWERING))
    assert list(merged.missing) == [US]
    assert merged.missing[US].startswith("unreachable: ")
    assert dict(merged.snapshot.counts) == dict(expected.counts)
    assert dict(merged.snapshot.histograms) == dict(expected.histograms)
    assert dict(merged.snapshot.gauges) == dict(expected.gauges)
    for figure in (Figure.INTAKE, Figure.SENT, Figure.RECEIVED, Figure.ITEMS):
        assert merged.snapshot.total(figure) == sum(s.total(figure) for s in own.values())


def _run(
    cluster: Cluster,
    period: Period,
    *extra: str,
    plot: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    args = [
        "stats",
        *plot,
        "--network",
        "--config",
        str(cluster.config(COORDINATOR)),
        "--from",
        period.first.isoformat(),
        "--to",
        period.last.isoformat(),
        "--by",
        "day",
        *extra,
    ]
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.stdout, result.stderr


def test_ihx_stats_network_prints_the_sum_and_names_the_missing_member(cluster: Cluster) -> None:
    _exchange(cluster)
    cluster.stop(US)
    period = _period()
    own = _own(cluster, period)
    tokens = _options(_tokens(cluster))

    code, stdout, stderr = _run(cluster, period, "--json", *tokens)
    assert code == 1, stderr
    doc = json.loads(stdout)
    assert doc["scope"] == "network"
    assert doc["members"]["answered"] == sorted(ANSWERING)
    assert list(doc["members"]["missing"]) == [US]
    assert doc["members"]["missing"][US].startswith("unreachable")
    assert f"ihx: warning: {US} is missing" in stderr
    got = {(c["figure"], c["key"]): c.get("counts") for c in doc["counts"]}
    expected = merge(period, list(own.values()), {}, datetime.now(UTC)).snapshot
    for (fig, key), row in expected.counts.items():
        if not fig.finer_than_country:  # those are masked under 5
            assert got.pop((fig.value, key)) == list(row)
    assert all(fig.startswith("hoster.") for fig, _ in got)

    code, stdout, _ = _run(cluster, period, "--csv", *tokens)
    assert code == 1
    rows = list(csv.DictReader(io.StringIO(stdout)))
    members = [(r["figure"], r["key"], r["value"]) for r in rows if r["kind"] == "member"]
    assert members[:3] == [("answered", m, "") for m in sorted(ANSWERING)]
    assert members[3][:2] == ("missing", US)
    assert members[3][2].startswith("unreachable")
    totals: Counter[str] = Counter()
    for row in rows:
        if row["kind"] == "count" and row["figure"] in ("intake", "sent", "received", "items"):
            totals[row["figure"]] += int(row["value"])
    for figure in (Figure.INTAKE, Figure.SENT, Figure.RECEIVED, Figure.ITEMS):
        assert totals[figure.value] == sum(s.total(figure) for s in own.values())

    code, stdout, _ = _run(cluster, period, *tokens)
    assert code == 1
    assert f"MISSING {US}: unreachable" in stdout
    assert "Statistics of the network: 3 answered, 1 missing" in stdout


def test_ihx_stats_plot_network_writes_the_charts(cluster: Cluster, tmp_path: Path) -> None:
    _exchange(cluster)
    out = tmp_path / "charts"
    code, stdout, stderr = _run(
        cluster, _period(), *_options(_tokens(cluster)), plot=("plot", "--out", str(out))
    )
    assert code == 0, stderr
    written = [Path(line) for line in stdout.splitlines()]
    assert written
    assert {p.suffix for p in written} == {".png", ".svg"}
    assert all(p.parent == out and p.stat().st_size > 1000 for p in written)


def test_no_token_is_sent_to_a_member_it_was_not_given_for(cluster: Cluster) -> None:
    tokens = _tokens(cluster)
    # IHX_TOKEN (the operator's general token) is never sent: a member could replay it.
    env = {"IHX_TOKEN": tokens[NL]}
    code, stdout, _ = _run(cluster, _period(), "--json", env=env)
    assert code == 1
    doc = json.loads(stdout)
    assert doc["members"]["answered"] == []
    no_token = "not asked: no stats:read token for it (--token MEMBER=TOKEN or a network token)"
    assert doc["members"]["missing"] == {m: no_token for m in (COORDINATOR, DE, NL, US)}
    # Each member is asked with its own token only.
    code, stdout, _ = _run(cluster, _period(), "--json", *_options({DE: tokens[DE]}), env=env)
    doc = json.loads(stdout)
    assert doc["members"]["answered"] == [DE]
    assert doc["members"]["missing"] == {m: no_token for m in (COORDINATOR, NL, US)}


def test_a_member_refusing_the_token_is_named(cluster: Cluster) -> None:
    period = _period()
    tokens = _options(_tokens(cluster, {DE: Scope.LOG_READ}))
    code, stdout, _ = _run(cluster, period, "--json", *tokens)
    assert code == 1
    doc = json.loads(stdout)
    assert doc["members"]["answered"] == sorted((NL, US, COORDINATOR))
    assert doc["members"]["missing"][DE] == (
        "refused our token: permission-denied: the token does not grant scope stats:read "
        f"({cluster.address(DE)}: PERMISSION_DENIED)"
    )
    code, stdout, _ = _run(cluster, period, "--json", *_options(_tokens(cluster)))  # it serves on
    assert code == 0
    assert json.loads(stdout)["members"] == {
        "answered": sorted((NL, DE, US, COORDINATOR)),
        "missing": {},
    }


class Impostor:
    """A server at us-ncmec's endpoint (the node stopped) answering GetStatistics as told."""

    def __init__(self, address: str, answer: Callable[[spb.StatisticsRequest], bytes]) -> None:
        def get(request: bytes, context: grpc.ServicerContext) -> bytes:
            return answer(spb.StatisticsRequest.FromString(request))

        handler = grpc.unary_unary_rpc_method_handler(
            get, request_deserializer=None, response_serializer=None
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("ihx.v1.Statistics", {"GetStatistics": handler}),)
        )
        assert self.server.add_insecure_port(address), f"{address} is still taken"
        self.server.start()

    def close(self) -> None:
        self.server.stop(0)


def _signed(cluster: Cluster, snapshot: Snapshot) -> spb.SignedStatistics:
    return sign_statistics(cluster.fed.keys[US], snapshot)


def _tampered(cluster: Cluster, snapshot: Snapshot) -> bytes:
    signed = _signed(cluster, snapshot)
    body = bytearray(signed.body)
    body[-1] ^= 0x01
    signed.body = bytes(body)
    return signed.SerializeToString()


def _other_period(cluster: Cluster, snapshot: Snapshot) -> bytes:
    p = snapshot.period
    shifted = Period(p.first - timedelta(days=1), p.last, p.granularity)
    lying = Snapshot((US,), shifted, snapshot.generated_at, {}, {}, {})
    return _signed(cluster, lying).SerializeToString()


@pytest.mark.parametrize(
    ("lie", "why"),
    [
        (_tampered, "answer refused (stats-signature): signature of us-ncmec refused"),
        (_other_period, "answer refused (stats-period): the body counts"),
    ],
)
def test_a_lying_member_is_refused_and_named(
    cluster: Cluster,
    lie: Callable[[Cluster, Snapshot], bytes],
    why: str,
) -> None:
    _exchange(cluster)
    period = _period()
    real = cluster.node(US).figures.snapshot(period)
    address = cluster.address(US)
    cluster.stop(US)
    impostor = Impostor(address, lambda _: lie(cluster, real))
    try:
        code, stdout, _ = _run(cluster, period, "--json", *_options(_tokens(cluster)))
    finally:
        impostor.close()
    assert code == 1
    doc = json.loads(stdout)
    assert doc["members"]["answered"] == sorted(ANSWERING)
    assert doc["members"]["missing"][US].startswith(why)
    received = sum(c["total"] for c in doc["counts"] if c["figure"] == "received")
    assert received == 9 - real.total(Figure.RECEIVED)  # nothing of the lie was counted


def test_the_node_refuses_a_bad_request_and_a_token_without_the_scope(cluster: Cluster) -> None:
    good = _tokens(cluster)[NL]
    log_only = _tokens(cluster, {NL: Scope.LOG_READ})[NL]
    bad = spb.StatisticsRequest(first_day="2026-01-01", last_day="2025-01-01", granularity="day")
    asked = request_from_period(_period())
    with grpc.insecure_channel(cluster.address(NL)) as channel:
        stub = sgrpc.StatisticsStub(channel)
        refusals = []
        for request, token in ((bad, good), (asked, log_only)):
            with pytest.raises(grpc.RpcError) as raised:
                stub.GetStatistics(request, metadata=(("authorization", f"Bearer {token}"),))
            call: grpc.Call = raised.value  # type: ignore[assignment]
            refusals.append((call.code(), call.details()))
        answer = stub.GetStatistics(asked, metadata=(("authorization", f"Bearer {good}"),))
    assert refusals[0] == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "stats-period: last_day: 2025-01-01 is before first_day 2026-01-01",
    )
    assert refusals[1][0] is grpc.StatusCode.PERMISSION_DENIED
    assert "stats:read" in refusals[1][1]
    assert answer.key_id == cluster.fed.keys[NL].key_id  # the node serves on


def test_over_mutual_tls_the_node_presents_its_own_certificate(tmp_path: Path) -> None:
    """With TLS in its settings, the asking node's certificate opens every member's door."""
    cluster = Cluster(provision(tmp_path / "tls", tls=True))
    try:
        cluster.start(*(p.id for p in PLANS))
        tls, token = cluster.fed.client_tls(NL), cluster.token(NL)
        with IntakeClient(cluster.address(NL), token=token, tls=tls) as intake:
            for i in range(3):
                intake.submit(make_submission(url_in("DE", f"/tls/{i}.jpg"), hashes=[f"tls-{i}"]))
        wait_until(lambda: cluster.drained(NL), what="nl-eokm's reports receipted")
        code, stdout, stderr = _run(cluster, _period(), "--json", *_options(_tokens(cluster)))
    finally:
        cluster.close()
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["members"] == {"answered": sorted((NL, DE, US, COORDINATOR)), "missing": {}}
    assert sum(c["total"] for c in doc["counts"] if c["figure"] == "received") == 3
