"""Access control over the wire: every protected RPC refuses what a token must not allow.

The seven token-protected RPCs of nl-eokm (intake unary and bulk, pull, ack, log listing,
checkpoints and statistics) are each called with no token, with a token of the wrong scope, and
with a catalogue of JWT attacks built by hand (tests/auth/token_factories.py) against the node's
real key, issuer and audience: ``alg: none`` in every case, HS256 keyed with the node's public key,
expired, not yet valid, wrong or missing audience, look-alike issuers, unknown ``crit``, ``kid``
path and SQL tricks, ``jku``/``x5u``/``jwk``/``x5c`` headers pointing at a server the test runs
(which must never be asked), tampered signatures and payloads, and malformed tokens. Each must be
refused with UNAUTHENTICATED, return nothing, store nothing, and be counted in the node's
``ihx_token_failures_total`` metric under the expected reason. A token of one node is refused by
another. The Exchange service needs no token. Afterwards a valid token still works.

All attacks share one federation (module scope): each test checks that the store of nl-eokm is
exactly as it was, so the tests stay independent of each other's order.
"""

from __future__ import annotations

import http.server
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from typer.testing import CliRunner

from auth.keys import SigningKey
from auth.tokens import Scope
from exchange.cli.main import app
from exchange.node import Node
from exchange.wire.codec import submission_to_proto
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import intake_pb2_grpc as igrpc
from ihx.v1 import partner_pb2 as ppb
from ihx.v1 import partner_pb2_grpc as pgrpc
from ihx.v1 import routing_log_pb2 as lpb
from ihx.v1 import routing_log_pb2_grpc as lgrpc
from ihx.v1 import statistics_pb2 as spb
from ihx.v1 import statistics_pb2_grpc as sgrpc
from tests.auth.token_factories import OMIT, b64url, compact, hmac_token, segment, sign
from tests.exchange.factories import make_submission, url_in
from tests.integration.partner_cluster import NL_POLICE, new_partner_cluster, stop_senders
from tests.integration.support import DE, NL, Cluster, wait_until

pytestmark = pytest.mark.timeout(60)

Metadata = tuple[tuple[str, str], ...]


# -- the federation, and a web server no token may make the node call ---------------------------


class Recorder(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Recorder.hits.append(self.path)
        body = b'{"keys": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def trap() -> Iterator[str]:
    """The base URL of a local web server that records every request made to it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    # The recorder records: a request made to it shows up (then the record starts empty).
    with urllib.request.urlopen(f"{base}/self-check", timeout=5) as answer:
        assert answer.status == 200
    assert Recorder.hits == ["/self-check"]
    Recorder.hits.clear()
    yield base
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = new_partner_cluster(tmp_path_factory.mktemp("access"))
    try:
        # Something to steal: two NL-hosted cases assigned to nl-police, and a routing log.
        cluster.submit(
            NL,
            [
                make_submission(url_in("NL", f"/access/{i}.jpg"), hashes=[f"acc-{i}"])
                for i in (1, 2)
            ],
        )
        wait_until(
            lambda: cluster.drained(NL) and cluster.count(NL, "partner_cases") == 2,
            30,
            what="nl-eokm's cases assigned and its announcements delivered",
        )
        yield cluster
    finally:
        stop_senders(cluster)
        cluster.close()


# -- the six protected RPCs ---------------------------------------------------------------------


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    returned: list[Any]


def call_rpc(
    channel: grpc.Channel, method: str, metadata: Metadata, case_ids: list[str]
) -> Outcome:
    """Call ``method`` with ``metadata``; what came back before the call ended, and its status."""
    returned: list[Any] = []
    submission = submission_to_proto(
        make_submission(url_in("NL", "/access/new.jpg"), hashes=["new"])
    )
    try:
        if method == "SubmitReport":
            returned.append(
                igrpc.IntakeStub(channel).SubmitReport(submission, metadata=metadata, timeout=10)
            )
        elif method == "SubmitReports":
            stream = igrpc.IntakeStub(channel).SubmitReports(
                iter([ipb.SubmitReportsRequest(reports=[submission])]),
                metadata=metadata,
                timeout=10,
            )
            returned.extend(stream)
        elif method == "PullCases":
            pulled = pgrpc.PartnerStub(channel).PullCases(
                ppb.PullCasesRequest(), metadata=metadata, timeout=10
            )
            returned.extend(case for chunk in pulled for case in chunk.cases)
        elif method == "AckCases":
            returned.append(
                pgrpc.PartnerStub(channel).AckCases(
                    ppb.AckCasesRequest(case_ids=case_ids), metadata=metadata, timeout=10
                )
            )
        elif method == "ListRoutingLog":
            returned.append(
                lgrpc.RoutingLogStub(channel).ListRoutingLog(
                    lpb.ListRoutingLogRequest(), metadata=metadata, timeout=10
                )
            )
        elif method == "GetStatistics":
            today = datetime.now(UTC).date()
            request = spb.StatisticsRequest(
                first_day=today.isoformat(), last_day=today.isoformat(), granularity="day"
            )
            returned.append(
                sgrpc.StatisticsStub(channel).GetStatistics(request, metadata=metadata, timeout=10)
            )
        elif method == "GetCheckpoint":
            returned.append(
                lgrpc.RoutingLogStub(channel).GetCheckpoint(
                    lpb.GetCheckpointRequest(), metadata=metadata, timeout=10
                )
            )
        else:
            raise AssertionError(method)
    except grpc.RpcError as error:
        call = cast(grpc.Call, error)
        return Outcome(call.code(), call.details() or "", returned)
    return Outcome(grpc.StatusCode.OK, "", returned)


METHODS = (
    "SubmitReport",
    "SubmitReports",
    "PullCases",
    "AckCases",
    "ListRoutingLog",
    "GetCheckpoint",
    "GetStatistics",
)
SCOPE_OF = {
    "SubmitReport": Scope.REPORTS_SUBMIT,
    "SubmitReports": Scope.REPORTS_SUBMIT,
    "PullCases": Scope.CASES_PULL,
    "AckCases": Scope.CASES_PULL,
    "ListRoutingLog": Scope.LOG_READ,
    "GetCheckpoint": Scope.LOG_READ,
    "GetStatistics": Scope.STATS_READ,
}


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


# -- what must not change ------------------------------------------------------------------------


def store_state(cluster: Cluster, member: str = NL) -> dict[str, object]:
    """Everything a call could have written: counts, pulls and acks, the head of the log."""
    return {
        "reports": cluster.count(member, "reports"),
        "cases": cluster.count(member, "cases"),
        "items": cluster.count(member, "items"),
        "outbox": cluster.count(member, "outbox"),
        "routing_log": cluster.count(member, "routing_log"),
        "log_head": cluster.scalar(member, "SELECT max(idx) FROM routing_log"),
        "pulls": cluster.scalar(member, "SELECT coalesce(sum(pulls), 0) FROM partner_cases"),
        "acked": cluster.count(member, "partner_cases", "acked_at IS NOT NULL"),
    }


def failures(node: Node) -> dict[str, float]:
    """``ihx_token_failures_total`` per reason, read from the node's Prometheus registry."""
    counts: dict[str, float] = {}
    for metric in node.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "ihx_token_failures_total":
                counts[sample.labels["reason"]] = sample.value
    return counts


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }


def case_ids(cluster: Cluster) -> list[str]:
    return [str(r.case_id) for r in cluster.rows(NL, "SELECT case_id FROM partner_cases")]


def refused_everywhere(
    cluster: Cluster, metadata: Metadata, code: grpc.StatusCode, reason: str
) -> None:
    """Each protected RPC at nl-eokm answers ``code``, ``reason``: nothing back, nothing kept."""
    node = cluster.node(NL)
    state, counted = store_state(cluster), failures(node)
    ids = case_ids(cluster)
    with grpc.insecure_channel(cluster.address(NL)) as channel:
        for method in METHODS:
            outcome = call_rpc(channel, method, metadata, ids)
            assert (outcome.code, outcome.returned) == (code, []), (method, outcome)
            assert outcome.details.startswith(f"{reason}: "), (method, outcome.details)
    assert store_state(cluster) == state
    assert delta(counted, failures(node)) == {reason: len(METHODS)}
    assert node.metrics.registry.get_sample_value(
        "ihx_token_failures_total", {"reason": reason}
    ) == counted.get(reason, 0) + len(METHODS)


# -- no token, wrong scope -----------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Basic bmwtcG9saWNlOnNlY3JldA=="),), (("x-token", "whatever"),)],
    ids=["none", "basic-scheme", "other-header"],
)
def test_no_bearer_token_is_unauthenticated(cluster: Cluster, metadata: Metadata) -> None:
    refused_everywhere(cluster, metadata, grpc.StatusCode.UNAUTHENTICATED, "token-missing")


@pytest.mark.timeout(30)
def test_a_token_without_the_methods_scope_is_permission_denied(cluster: Cluster) -> None:
    node = cluster.node(NL)
    state, counted = store_state(cluster), failures(node)
    ids = case_ids(cluster)
    with grpc.insecure_channel(cluster.address(NL)) as channel:
        for method in METHODS:
            others = [s for s in Scope if s not in (SCOPE_OF[method], Scope.ADMIN)]
            token = cluster.fed.token(NL, *others, subject=NL_POLICE)
            outcome = call_rpc(channel, method, bearer(token), ids)
            assert (outcome.code, outcome.returned) == (grpc.StatusCode.PERMISSION_DENIED, [])
            assert SCOPE_OF[method].value in outcome.details
    assert store_state(cluster) == state
    assert delta(counted, failures(node)) == {"permission-denied": len(METHODS)}


# -- JWT attacks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """What an attacker can know of nl-eokm (its public key) and what the test holds."""

    node: SigningKey
    kid: str
    attacker: SigningKey
    trap: str


def claims(**changes: Any) -> dict[str, Any]:
    """Claims nl-eokm's verifier would accept (admin, for nl-police), with ``changes``."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": NL,
        "sub": NL_POLICE,
        "aud": NL,
        "iat": now,
        "exp": now + 300,
        "scope": "admin",
        "jti": "attack-1",
    }
    merged = {**base, **changes}
    return {k: v for k, v in merged.items() if v is not OMIT}


def header(k: Keys, **changes: Any) -> dict[str, Any]:
    merged = {"alg": "EdDSA", "kid": k.kid, "typ": "JWT", **changes}
    return {name: v for name, v in merged.items() if v is not OMIT}


def signed(k: Keys, hdr: dict[str, Any] | None = None, **claim_changes: Any) -> str:
    """Signed with nl-eokm's real key: only what the test changed is wrong."""
    return sign(hdr or header(k), claims(**claim_changes), k.node)


def flip_last(token: str) -> str:
    head, _, last = token.rpartition(".")
    # Change the first signature character (the last one may only carry padding bits).
    swapped = ("A" if last[0] != "A" else "B") + last[1:]
    return f"{head}.{swapped}"


def forged_payload(k: Keys) -> str:
    """A real log:read token whose payload was swapped for an admin one, signature kept."""
    real = sign(header(k), claims(scope="log:read"), k.node)
    first, _, signature = real.split(".")
    return f"{first}.{segment(claims())}.{signature}"


def unsigned(alg: str, k: Keys) -> str:
    return compact({"alg": alg, "typ": "JWT"}, claims())


def with_issuer(iss: str, k: Keys) -> str:
    return signed(k, iss=iss)


def with_kid(kid: str, k: Keys) -> str:
    return signed(k, header(k, kid=kid))


Attack = Callable[[Keys], str]

ATTACKS: dict[str, tuple[Attack, str]] = {
    # alg none in any case, with and without a signature segment
    **{
        f"alg-{alg}": (partial(unsigned, alg), "token-alg")
        for alg in ("none", "None", "NONE", "nOnE")
    },
    "alg-none-with-kid-and-signature": (
        lambda k: compact(header(k, alg="none"), claims(), b"\x01" * 64),
        "token-alg",
    ),
    # HS256/HS512 keyed with the node's public key, in every encoding an attacker might try
    "hs256-public-raw": (
        lambda k: hmac_token(header(k, alg="HS256"), claims(), k.node.public.raw),
        "token-alg",
    ),
    "hs256-public-pem": (
        lambda k: hmac_token(header(k, alg="HS256"), claims(), k.node.public.to_pem()),
        "token-alg",
    ),
    "hs256-public-b64": (
        lambda k: hmac_token(header(k, alg="HS256"), claims(), k.node.public.to_b64().encode()),
        "token-alg",
    ),
    "hs512-public-b64url": (
        lambda k: hmac_token(header(k, alg="HS512"), claims(), b64url(k.node.public.raw).encode()),
        "token-alg",
    ),
    # time
    "expired": (
        lambda k: signed(k, iat=int(time.time()) - 900, exp=int(time.time()) - 600),
        "token-expired",
    ),
    "nbf-in-the-future": (lambda k: signed(k, nbf=int(time.time()) + 3600), "token-not-yet-valid"),
    "iat-in-the-future": (
        lambda k: signed(k, iat=int(time.time()) + 3600, exp=int(time.time()) + 3700),
        "token-not-yet-valid",
    ),
    "lifetime-too-long": (lambda k: signed(k, exp=int(time.time()) + 86400), "token-lifetime"),
    # audience
    "aud-missing": (lambda k: signed(k, aud=OMIT), "token-claims"),
    "aud-other-node": (lambda k: signed(k, aud=DE), "token-audience"),
    "aud-other-nodes-list": (lambda k: signed(k, aud=[DE, "us-ncmec"]), "token-audience"),
    "aud-prefix": (lambda k: signed(k, aud="nl-eok"), "token-audience"),
    # issuer: look-alikes of the trusted "nl-eokm", signed with the node's own key
    **{
        f"iss-{name}": (partial(with_issuer, iss), "token-issuer")
        for name, iss in {
            "prefix": "nl-eok",
            "substring": "eokm",
            "superstring": "nl-eokm.evil.example",
            "trailing-space": "nl-eokm ",
            "upper-case": "NL-EOKM",
            "url": "https://nl-eokm",
        }.items()
    },
    "iss-missing": (lambda k: signed(k, iss=OMIT), "token-claims"),
    # headers that must never be trusted
    "crit-unknown": (
        lambda k: signed(k, header(k, crit=["x-ihx-ext"], **{"x-ihx-ext": True})),
        "token-crit",
    ),
    "crit-exp": (lambda k: signed(k, header(k, crit=["exp"])), "token-crit"),
    **{
        f"kid-{name}": (partial(with_kid, kid), "token-kid")
        for name, kid in {
            "path": "../../../../etc/passwd",
            "node-key-file": "node.key",
            "absolute": "/dev/null",
            "sql-or": "' OR '1'='1",
            "sql-drop": "x'; DROP TABLE reports; --",
            "url-encoded": "%2e%2e%2f%2e%2e%2fnode.key",
            "nul": "\x00",
        }.items()
    },
    "kid-missing": (lambda k: signed(k, header(k, kid=OMIT)), "token-kid"),
    "kid-number": (lambda k: signed(k, header(k, kid=1)), "token-kid"),
    "jku-attacker-key": (
        lambda k: sign(header(k, kid="attacker", jku=f"{k.trap}/jku.json"), claims(), k.attacker),
        "token-kid",
    ),
    "jku-node-kid-attacker-key": (
        lambda k: sign(header(k, jku=f"{k.trap}/jku2.json"), claims(), k.attacker),
        "token-signature",
    ),
    "x5u-attacker-key": (
        lambda k: sign(header(k, x5u=f"{k.trap}/x5u.pem"), claims(), k.attacker),
        "token-signature",
    ),
    "jwk-embedded-attacker-key": (
        lambda k: sign(
            header(
                k,
                jwk={"kty": "OKP", "crv": "Ed25519", "x": b64url(k.attacker.public.raw)},
                jku=f"{k.trap}/jwk.json",
            ),
            claims(),
            k.attacker,
        ),
        "token-signature",
    ),
    "x5c-and-x5u": (
        lambda k: sign(
            header(k, kid="attacker", x5c=["MIIB"], x5u=f"{k.trap}/x5c.pem"), claims(), k.attacker
        ),
        "token-kid",
    ),
    # signatures and payloads
    "signature-flipped": (lambda k: flip_last(signed(k)), "token-signature"),
    "signature-empty": (lambda k: signed(k).rpartition(".")[0] + ".", "token-signature"),
    "payload-swapped": (forged_payload, "token-signature"),
    "attacker-key": (lambda k: sign(header(k), claims(), k.attacker), "token-signature"),
    # claims
    "scope-unknown": (lambda k: signed(k, scope="admin root"), "token-scope"),
    "scope-empty": (lambda k: signed(k, scope=""), "token-scope"),
    "sub-missing": (lambda k: signed(k, sub=OMIT), "token-claims"),
    "sub-sql": (lambda k: signed(k, sub="x' OR 1=1 --"), "token-claims"),
    "exp-string": (lambda k: signed(k, exp=str(int(time.time()) + 60)), "token-claims"),
    # malformed, of every shape
    "empty": (lambda k: "", "token-malformed"),
    "one-segment": (lambda k: "eyJhbGciOiJFZERTQSJ9", "token-malformed"),
    "two-segments": (lambda k: ".".join(signed(k).split(".")[:2]), "token-malformed"),
    "four-segments": (lambda k: signed(k) + ".AAAA", "token-malformed"),
    "dots-only": (lambda k: "..", "token-malformed"),
    "padded": (lambda k: signed(k).replace(".", "=.", 1), "token-malformed"),
    "not-base64": (lambda k: "e*J.e*J.AAAA", "token-malformed"),
    "header-not-json": (
        lambda k: f"{b64url(b'not json')}.{segment(claims())}.AAAA",
        "token-malformed",
    ),
    "header-array": (lambda k: f"{segment([1, 2])}.{segment(claims())}.AAAA", "token-malformed"),
    "payload-not-json": (
        lambda k: sign(header(k), b"\xff\xfe not json", k.node),
        "token-malformed",
    ),
    "payload-array": (lambda k: sign(header(k), b'["iss", "nl-eokm"]', k.node), "token-malformed"),
    "header-duplicate-alg": (
        lambda k: (
            b64url(f'{{"alg":"EdDSA","alg":"none","kid":"{k.kid}"}}'.encode())
            + "."
            + signed(k).split(".", 1)[1]
        ),
        "token-malformed",
    ),
}


@pytest.fixture(scope="module")
def keys(cluster: Cluster, trap: str) -> Keys:
    node = cluster.fed.keys[NL]
    return Keys(node, node.key_id, SigningKey.generate(), trap)


@pytest.mark.timeout(30)
def test_the_unchanged_attack_token_is_accepted(cluster: Cluster, keys: Keys) -> None:
    """The control: the attacks' base token passes, so each refusal is the attack's doing."""
    with grpc.insecure_channel(cluster.address(NL)) as channel:
        outcome = call_rpc(channel, "ListRoutingLog", bearer(signed(keys)), [])
    assert outcome.code is grpc.StatusCode.OK
    assert outcome.returned[0].entries


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(ATTACKS))
def test_jwt_attack_is_refused_on_every_rpc(cluster: Cluster, keys: Keys, name: str) -> None:
    make, reason = ATTACKS[name]
    refused_everywhere(cluster, bearer(make(keys)), grpc.StatusCode.UNAUTHENTICATED, reason)
    assert Recorder.hits == []


@pytest.mark.timeout(30)
def test_an_oversized_token_is_refused(cluster: Cluster, keys: Keys) -> None:
    """Over 8 KiB: gRPC's metadata limit (8 KiB, soft) may refuse it before the verifier does."""
    token = signed(keys, pad="x" * 6000)
    assert 8 * 1024 < len(token) < 9 * 1024
    state = store_state(cluster)
    with grpc.insecure_channel(cluster.address(NL)) as channel:
        for method in METHODS:
            outcome = call_rpc(channel, method, bearer(token), case_ids(cluster))
            assert outcome.returned == []
            assert outcome.code in (
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            )
            if outcome.code is grpc.StatusCode.UNAUTHENTICATED:
                assert outcome.details.startswith("token-malformed: ")
    assert store_state(cluster) == state


@pytest.mark.timeout(30)
def test_a_token_for_one_node_is_refused_by_another(cluster: Cluster) -> None:
    nl_token = cluster.fed.token(NL, Scope.ADMIN, subject=NL_POLICE)
    # de-eco's own issuer, but the audience is nl-eokm (as `ihx token issue --audience` makes it).
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "token",
            "issue",
            "--config",
            str(cluster.config(DE)),
            "--sub",
            NL_POLICE,
            "--scope",
            "admin",
            "--audience",
            NL,
        ],
    )
    assert result.exit_code == 0, result.stderr
    de_token_for_nl = result.stdout.strip()

    de, nl = cluster.node(DE), cluster.node(NL)
    de_state, de_counted = store_state(cluster, DE), failures(de)
    nl_state, nl_counted = store_state(cluster, NL), failures(nl)
    with grpc.insecure_channel(cluster.address(DE)) as channel:
        for method in METHODS:
            for token, reason in ((nl_token, "token-issuer"), (de_token_for_nl, "token-audience")):
                outcome = call_rpc(channel, method, bearer(token), [])
                assert (outcome.code, outcome.returned) == (grpc.StatusCode.UNAUTHENTICATED, [])
                assert outcome.details.startswith(f"{reason}: ")
    with grpc.insecure_channel(cluster.address(NL)) as channel:
        for method in METHODS:
            outcome = call_rpc(channel, method, bearer(de_token_for_nl), case_ids(cluster))
            assert (outcome.code, outcome.returned) == (grpc.StatusCode.UNAUTHENTICATED, [])
    assert store_state(cluster, DE) == de_state
    assert store_state(cluster, NL) == nl_state
    assert delta(de_counted, failures(de)) == {
        "token-issuer": len(METHODS),
        "token-audience": len(METHODS),
    }
    assert delta(nl_counted, failures(nl)) == {"token-issuer": len(METHODS)}


@pytest.mark.timeout(30)
def test_exchange_and_health_need_no_token(cluster: Cluster) -> None:
    with grpc.insecure_channel(cluster.address(NL)) as channel:
        info = xgrpc.ExchangeStub(channel).GetNodeInfo(xpb.NodeInfoRequest(), timeout=10)
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        # An envelope without a token reaches the receiver, which judges it on its own terms.
        with pytest.raises(grpc.RpcError) as error:
            xgrpc.ExchangeStub(channel).Deliver(xpb.Envelope(), timeout=10)
    assert info.member == NL
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    refusal = cast(grpc.Call, error.value)
    assert refusal.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (refusal.details() or "").startswith("envelope-empty: ")


@pytest.mark.timeout(30)
def test_the_node_keeps_serving_valid_tokens(cluster: Cluster, keys: Keys) -> None:
    """After every refusal above: a valid token still reaches every RPC."""
    token = cluster.fed.token(NL, Scope.ADMIN, subject=NL_POLICE)
    with grpc.insecure_channel(cluster.address(NL)) as channel:
        outcomes = {m: call_rpc(channel, m, bearer(token), case_ids(cluster)) for m in METHODS}
    assert {m: o.code for m, o in outcomes.items()} == dict.fromkeys(METHODS, grpc.StatusCode.OK)
    assert outcomes["SubmitReport"].returned[0].report_id
    # The two cases from the start, and the one SubmitReport just opened.
    assert len(outcomes["PullCases"].returned) == 3
    assert outcomes["ListRoutingLog"].returned[0].entries
    assert outcomes["GetStatistics"].returned[0].key_id == keys.kid
    assert outcomes["GetCheckpoint"].returned[0].size > 0
    assert Recorder.hits == []
